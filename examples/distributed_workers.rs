//! Run with: cargo run --features redis --example distributed_workers -- --role producer
//!
//! One pipeline spread over many processes (or machines) through a Redis stream and a consumer
//! group: a producer fills the stream, any number of workers process it through a millrace
//! pipeline into a shared **idempotent** sink, and a worker that dies loses nothing — its
//! un-acknowledged entries are reclaimed by the others.
//!
//! ## Running three workers
//!
//! ```text
//! # a throwaway server (or use your own and pass --redis-url / MILLRACE_REDIS_URL)
//! source scripts/services.sh && start_redis
//! export MILLRACE_REDIS_URL=$MILLRACE_TEST_REDIS_URL
//! cargo build --release --features redis --example distributed_workers
//! W=target/release/examples/distributed_workers
//!
//! $W --role producer --count 100000          # fill the stream `millrace:jobs`
//! $W --role worker --name w1 & $W --role worker --name w2 & $W --role worker --name w3 &
//! kill -9 %2                                   # a worker dies mid-way: nothing is lost
//! wait
//! $W --role report                             # 100000 results, each exactly once, 0 pending
//! ```
//!
//! Each worker reads as a member of the group `workers` (XREADGROUP) through the **tracked**
//! source, whose positions are entry ids: it squares `n`, batches by size or time, commits a
//! batch with `HSETNX millrace:results <entry-id> <n²>` (idempotent: a redelivered entry writes
//! nothing new) and `commit_then_ack` **then** acknowledges exactly that batch's entries (XACK):
//! the ack is the source's commit, and no ack loop is written by hand. Delivery is
//! at-least-once; keying the sink by entry id makes the effect exactly once (a crash between
//! commit and ack redelivers harmlessly). With SQL the sink would be `INSERT … ON CONFLICT
//! (entry_id) DO NOTHING` in the batch's transaction. Each worker ends with its accounting line
//! (`read = committed + dead-lettered + filtered`).
//! A worker exits once the group is drained (nothing new, nothing pending) for `--drained-ms`.
//!
//! Options: `--redis-url URL` (default `$MILLRACE_REDIS_URL`, else `redis://127.0.0.1:6379/`),
//! `--stream KEY`, `--group NAME`, `--results KEY`, `--count N` (producer), `--name NAME`
//! (worker; default `worker-<pid>`), `--claim-idle-ms MS` (default 5000), `--drained-ms MS`
//! (default 3000), `--sink hash|none` (worker; `none` only acks, for benchmarks),
//! `--role producer|worker|report|reset`.

#[cfg(feature = "redis")]
mod app {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};
    use std::time::{Duration, Instant};

    use millrace::adapters::redis::client::{self as redis, Client};
    use millrace::adapters::redis::{
        RedisHashSink, RedisStreamError, RedisStreamSink, RedisStreamSource,
    };

    pub(crate) struct Args {
        role: String,
        url: String,
        stream: String,
        group: String,
        results: String,
        count: u64,
        name: String,
        claim_idle: Duration,
        drained: Duration,
        sink: bool,
    }

    pub(crate) fn parse() -> Result<Args, String> {
        let mut a = Args {
            role: String::new(),
            url: std::env::var("MILLRACE_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned()),
            stream: "millrace:jobs".to_owned(),
            group: "workers".to_owned(),
            results: "millrace:results".to_owned(),
            count: 100_000,
            name: format!("worker-{}", std::process::id()),
            claim_idle: Duration::from_secs(5),
            drained: Duration::from_secs(3),
            sink: true,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            let ms = |v: String| {
                v.parse()
                    .map(Duration::from_millis)
                    .map_err(|e| format!("{e}"))
            };
            match flag.as_str() {
                "--role" => a.role = value()?,
                "--redis-url" => a.url = value()?,
                "--stream" => a.stream = value()?,
                "--group" => a.group = value()?,
                "--results" => a.results = value()?,
                "--count" => a.count = value()?.parse().map_err(|e| format!("--count: {e}"))?,
                "--name" => a.name = value()?,
                "--claim-idle-ms" => a.claim_idle = ms(value()?)?,
                "--drained-ms" => a.drained = ms(value()?)?,
                "--sink" => {
                    a.sink = match value()?.as_str() {
                        "hash" => true,
                        "none" => false,
                        other => return Err(format!("--sink hash|none, not {other}")),
                    }
                }
                other => return Err(format!("unknown option {other}")),
            }
        }
        if !matches!(a.role.as_str(), "producer" | "worker" | "report" | "reset") {
            return Err("--role producer|worker|report|reset is required".to_owned());
        }
        Ok(a)
    }

    pub(crate) async fn run(a: Args) -> Result<(), Box<dyn std::error::Error>> {
        let client = Client::open(a.url.as_str())?;
        match a.role.as_str() {
            "producer" => produce(&client, &a).await,
            "worker" => work(&client, &a).await,
            "report" => report(&client, &a).await,
            _ => {
                let mut c = client.get_multiplexed_async_connection().await?;
                let _: () = redis::cmd("DEL")
                    .arg(&a.stream)
                    .arg(&a.results)
                    .query_async(&mut c)
                    .await?;
                println!("deleted {} and {}", a.stream, a.results);
                Ok(())
            }
        }
    }

    async fn produce(client: &Client, a: &Args) -> Result<(), Box<dyn std::error::Error>> {
        let started = Instant::now();
        let mut sink = RedisStreamSink::connect(client, &a.stream).await?;
        let mut sent = 0;
        while sent < a.count {
            let end = (sent + 1000).min(a.count);
            sink.send_batch((sent..end).map(|n| [("n", n)])).await?;
            sent = end;
        }
        println!(
            "producer: {sent} entries appended to {} in {:?}",
            a.stream,
            started.elapsed()
        );
        Ok(())
    }

    async fn work(client: &Client, a: &Args) -> Result<(), Box<dyn std::error::Error>> {
        let started = Instant::now();
        // The tracked source: positions are entry ids, and `acks` acknowledges each batch's
        // entries after its commit (the ack is the source's commit).
        let (entries, acks) =
            RedisStreamSource::builder(client.clone(), &a.stream, &a.group, &a.name)
                .capacity(4096)
                .read_count(1024)
                .claim_idle(a.claim_idle)
                .end_when_drained(a.drained)
                .connect(|entry| entry.parse::<u64>("n"))
                .await?
                .tracked();
        let accounting = entries.accounting();
        let sink = RedisHashSink::connect(client, &a.results).await?;
        let dead_letters = RedisHashSink::connect(client, format!("{}:dead", a.results)).await?;

        // The pipeline: undecodable entries become dead letters at their id, square each n,
        // prefetch so reading, decoding and squaring overlap the sink's round trips, and close
        // a batch at 1024 entries or 20 ms.
        let batches = entries
            .dead_letter_errors()
            .map(|n| n * n)
            .prefetch(1024)
            .batch_within(1024, Duration::from_millis(20));
        let (inserted, duplicates) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let first: Arc<OnceLock<Instant>> = Arc::default();
        let last = Arc::new(Mutex::new(Instant::now()));
        let use_sink = a.sink;
        let name = a.name.clone();
        // Commit each batch (idempotent: keyed by entry id), then ack it.
        let report = acks
            .commit_then_ack(batches, |batch| {
                let (mut sink, mut dead_letters) = (sink.clone(), dead_letters.clone());
                let (inserted, duplicates) = (Arc::clone(&inserted), Arc::clone(&duplicates));
                let (first, last, name) = (Arc::clone(&first), Arc::clone(&last), name.clone());
                async move {
                    first.get_or_init(Instant::now);
                    for dead in batch.dead_letters() {
                        eprintln!("{name}: entry {}: {}", dead.position, dead.reason);
                    }
                    if use_sink {
                        let rows = batch.positions().iter().zip(batch.items());
                        let report = sink.put_batch(rows.map(|(id, sq)| (*id, *sq))).await?;
                        let bad = batch.dead_letters().iter();
                        dead_letters
                            .put_batch(bad.map(|d| (d.position, d.reason.as_str())))
                            .await?;
                        inserted.fetch_add(report.inserted, Ordering::Relaxed);
                        duplicates.fetch_add(report.duplicates, Ordering::Relaxed);
                    }
                    *last.lock().unwrap() = Instant::now();
                    Ok::<_, RedisStreamError>(())
                }
            })
            .await?;
        let entries = report.committed + report.dead_lettered;
        if let Some(first) = first.get() {
            let busy = last.lock().unwrap().duration_since(*first).as_secs_f64();
            println!(
                "{}: {entries} entries in {busy:.3} s from first commit to last: {:.0} entries/s",
                a.name,
                entries as f64 / busy.max(1e-9)
            );
        }
        println!(
            "{}: {} results written, {} redeliveries deduplicated, {} dead-lettered, {} acked, in {:?}",
            a.name,
            inserted.load(Ordering::Relaxed),
            duplicates.load(Ordering::Relaxed),
            report.dead_lettered,
            report.acked,
            started.elapsed()
        );
        println!("{}: {}", a.name, accounting.check()?);
        Ok(())
    }

    async fn report(client: &Client, a: &Args) -> Result<(), Box<dyn std::error::Error>> {
        let mut c = client.get_multiplexed_async_connection().await?;
        let len: u64 = redis::cmd("XLEN")
            .arg(&a.stream)
            .query_async(&mut c)
            .await?;
        let results: u64 = redis::cmd("HLEN")
            .arg(&a.results)
            .query_async(&mut c)
            .await?;
        let pending: redis::Value = redis::cmd("XPENDING")
            .arg(&a.stream)
            .arg(&a.group)
            .query_async(&mut c)
            .await?;
        let pending = match pending {
            redis::Value::Array(v) => match v.first() {
                Some(redis::Value::Int(n)) => *n,
                _ => 0,
            },
            _ => 0,
        };
        println!(
            "stream {}: {len} entries; results: {results}; pending in group {}: {pending}",
            a.stream, a.group
        );
        Ok(())
    }
}

#[cfg(feature = "redis")]
#[tokio::main]
async fn main() {
    let args = match app::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("distributed_workers: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = app::run(args).await {
        eprintln!("distributed_workers: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(feature = "redis"))]
fn main() {
    eprintln!(
        "distributed_workers needs the `redis` feature: cargo run --features redis --example distributed_workers -- --role producer"
    );
}
