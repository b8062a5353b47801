//! One producer, three worker **processes**, 100,000 entries, one worker SIGKILLed mid-way:
//! every entry is processed, the idempotent sink holds each exactly once, nothing stays pending.
//! The workers use the tracked source (entry ids as positions) and `commit_then_ack`.
//!
//! The workers are this test binary run again (`worker_process`, ignored unless asked for by
//! name with `MILLRACE_REDIS_WORKER` set), so `cargo test` needs no extra binary.
#![cfg(feature = "redis")]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use millrace::adapters::redis::client::{self as redis, Client};
use millrace::adapters::redis::{
    RedisHashSink, RedisStreamError, RedisStreamSink, RedisStreamSource,
};

const N: u64 = 100_000;

/// Worker role: read `stream` as `name` in group `g` through the tracked source (positions are
/// entry ids), double `n`, commit each batch into the hash `results` with HSETNX keyed by entry
/// id, and let `commit_then_ack` ack the batch after its commit. Ends when the group is drained.
///
/// `stall_after`: once this worker has committed that many entries, it hangs in the commit of
/// its next batch — so when it is killed it is certainly holding un-acked entries. (Killing at a
/// random moment was flaky: a worker that keeps up with the producer spends most of its time
/// with nothing pending.)
async fn worker(
    url: &str,
    stream: &str,
    results: &str,
    name: &str,
    stall_after: Option<u64>,
) -> (u64, u64) {
    let client = Client::open(url).unwrap();
    let (entries, acks) = RedisStreamSource::builder(client.clone(), stream, "g", name)
        .capacity(2048)
        .read_count(512)
        .block(Duration::from_millis(200))
        .claim_idle(Duration::from_millis(1500))
        .claim_interval(Duration::from_millis(300))
        .end_when_drained(Duration::from_millis(1500))
        .connect(|e| e.parse::<u64>("n"))
        .await
        .unwrap()
        .tracked();
    let accounting = entries.accounting();
    let sink = RedisHashSink::connect(&client, results).await.unwrap();
    let batches = entries
        .dead_letter_errors()
        .map(|n| n * 2)
        .prefetch(1024)
        .batch_within(1024, Duration::from_millis(20));
    let inserted = Arc::new(AtomicU64::new(0));
    let duplicates = Arc::new(AtomicU64::new(0));
    let report = acks
        .commit_then_ack(batches, |batch| {
            let mut sink = sink.clone();
            let (inserted, duplicates) = (Arc::clone(&inserted), Arc::clone(&duplicates));
            async move {
                assert!(batch.dead_letters().is_empty(), "well-formed entries");
                if stall_after.is_some_and(|k| inserted.load(Ordering::Relaxed) >= k) {
                    std::future::pending::<()>().await; // holds the batch un-acked until killed
                }
                let rows = batch.positions().iter().zip(batch.items());
                let report = sink.put_batch(rows.map(|(id, v)| (*id, *v))).await?;
                inserted.fetch_add(report.inserted, Ordering::Relaxed);
                duplicates.fetch_add(report.duplicates, Ordering::Relaxed);
                Ok::<_, RedisStreamError>(())
            }
        })
        .await
        .unwrap();
    // Every entry this worker read was committed and acked (or was a duplicate).
    let balance = accounting.check().unwrap();
    assert_eq!(balance.committed, report.committed);
    (
        inserted.load(Ordering::Relaxed),
        duplicates.load(Ordering::Relaxed),
    )
}

#[test]
#[ignore = "helper: run as a child process by `three_worker_processes_one_killed`"]
fn worker_process() {
    let Ok(spec) = std::env::var("MILLRACE_REDIS_WORKER") else {
        eprintln!("worker_process is a helper run by three_worker_processes_one_killed");
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let [url, stream, results, name, stall_after] = parts[..] else {
        panic!("bad MILLRACE_REDIS_WORKER {spec:?}")
    };
    let stall_after = (!stall_after.is_empty()).then(|| stall_after.parse::<u64>().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (inserted, duplicates) = rt.block_on(worker(url, stream, results, name, stall_after));
    println!("WORKER {name} inserted={inserted} duplicates={duplicates}");
}

fn spawn_worker(
    url: &str,
    stream: &str,
    results: &str,
    name: &str,
    stall_after: Option<u64>,
) -> Child {
    let stall_after = stall_after.map_or_else(String::new, |k| k.to_string());
    Command::new(std::env::current_exe().unwrap())
        .args([
            "worker_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "MILLRACE_REDIS_WORKER",
            format!("{url}|{stream}|{results}|{name}|{stall_after}"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

async fn query<T: redis::FromRedisValue>(client: &Client, cmd: &redis::Cmd) -> T {
    let mut c = client
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(Duration::from_secs(20))),
        )
        .await
        .unwrap();
    cmd.query_async(&mut c).await.unwrap()
}

/// How many entries of group `g` `consumer` holds un-acked (counting at most `limit`).
async fn pending_for(client: &Client, stream: &str, consumer: &str, limit: usize) -> usize {
    let entries: redis::Value = query(
        client,
        redis::cmd("XPENDING")
            .arg(stream)
            .arg("g")
            .arg("-")
            .arg("+")
            .arg(limit)
            .arg(consumer),
    )
    .await;
    match entries {
        redis::Value::Array(entries) => entries.len(),
        other => panic!("unexpected XPENDING {other:?}"),
    }
}

fn pending_of(summary: &redis::Value) -> u64 {
    match summary {
        redis::Value::Array(items) => match items[0] {
            redis::Value::Int(n) => n as u64,
            _ => panic!("unexpected XPENDING {summary:?}"),
        },
        _ => panic!("unexpected XPENDING {summary:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_one_killed() {
    let Some(url) = millrace::adapters::redis::test_server_url() else {
        return;
    };
    let client = Client::open(url.as_str()).unwrap();
    let tag = std::process::id();
    let stream = format!("millrace-test:{tag}:jobs");
    let results = format!("millrace-test:{tag}:results");
    let started = Instant::now();

    // The group exists before the producer starts, so no entry is ever skipped.
    let _: redis::Value = query(
        &client,
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&stream)
            .arg("g")
            .arg("0")
            .arg("MKSTREAM"),
    )
    .await;

    // One producer (this task), three worker processes, concurrently.
    let producer = {
        let client = client.clone();
        let stream = stream.clone();
        tokio::spawn(async move {
            let mut sink = RedisStreamSink::connect(&client, &stream).await.unwrap();
            for chunk in 0..(N / 1000) {
                let base = chunk * 1000;
                sink.send_batch((base..base + 1000).map(|n| [("n", n)]))
                    .await
                    .unwrap();
            }
        })
    };
    // w0 stalls, holding its next batch un-acked, once it has committed N/10 entries.
    let mut workers: Vec<Child> = (0..3)
        .map(|i| {
            let stall_after = (i == 0).then_some(N / 10);
            spawn_worker(&url, &stream, &results, &format!("w{i}"), stall_after)
        })
        .collect();

    // Kill w0 with SIGKILL once a third of the work is committed and w0 holds entries.
    loop {
        let done: u64 = query(&client, redis::cmd("HLEN").arg(&results)).await;
        let held = pending_for(&client, &stream, "w0", 1).await;
        if done >= N / 3 && held > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "workers make no progress ({done} done, w0 holds {held})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    workers[0].kill().unwrap(); // SIGKILL on Unix
    workers[0].wait().unwrap();
    let orphaned = pending_for(&client, &stream, "w0", 100_000).await;
    eprintln!("w0 killed with {orphaned} entries pending");
    assert!(
        orphaned > 0,
        "w0 died holding un-acked entries, which the others must reclaim"
    );
    producer.await.unwrap();

    // The survivors finish (reclaiming w0's entries) and exit on their own.
    let mut inserted = 0;
    for w in workers.iter_mut().skip(1) {
        let out = tokio::task::block_in_place(|| {
            let mut out = String::new();
            std::io::Read::read_to_string(w.stdout.as_mut().unwrap(), &mut out).unwrap();
            out
        });
        assert!(w.wait().unwrap().success(), "worker failed: {out}");
        let line = out
            .lines()
            .find_map(|l| l.find("WORKER ").map(|at| &l[at..]))
            .unwrap_or_else(|| panic!("no WORKER line in {out:?}"));
        eprintln!("{line}");
        let field = |name: &str| -> u64 {
            line.split(' ')
                .find_map(|kv| kv.strip_prefix(name))
                .unwrap()
                .parse()
                .unwrap()
        };
        inserted += field("inserted=");
    }

    // Every entry processed, each exactly once in the sink, nothing pending.
    let values: Vec<u64> = query(&client, redis::cmd("HVALS").arg(&results)).await;
    let mut values = values;
    values.sort_unstable();
    assert_eq!(values.len() as u64, N);
    assert!(
        values.iter().copied().eq((0..N).map(|n| n * 2)),
        "each entry's result exactly once"
    );
    let summary: redis::Value = query(&client, redis::cmd("XPENDING").arg(&stream).arg("g")).await;
    assert_eq!(pending_of(&summary), 0);
    // w0's un-acked entries were committed again by the survivors or were already in the sink.
    assert!(inserted <= N);
    let _: () = query(&client, redis::cmd("DEL").arg(&stream).arg(&results)).await;
    eprintln!(
        "100,000 entries through 3 worker processes in {:?}",
        started.elapsed()
    );
}
