//! `RedisStreamSource` / `RedisStreamSink` against a real redis-server.
//!
//! Needs `MILLRACE_TEST_REDIS_URL` (`source scripts/services.sh && start_redis`); fails with a
//! clear message when it is unset unless `MILLRACE_SKIP_REDIS=1`. The restart test starts its
//! own `redis-server` (with an append-only file, so data survives the restart).
#![cfg(feature = "redis")]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use millrace::adapters::redis::client::{self as redis, Client};
use millrace::adapters::redis::{
    ReconnectPolicy, RedisHashSink, RedisStreamError, RedisStreamSink, RedisStreamSource,
};

#[path = "support/redis.rs"]
mod support;
use support::{cleanup, conn, key, numbers, numbers_source, pending, server, xadd};

#[tokio::test]
async fn delivers_every_entry_and_acks_after_commit() {
    let Some(client) = server() else { return };
    let stream = key("basic");
    numbers(&client, &stream, 500).await;

    let source = numbers_source(&client, &stream, "c1", |b| {
        b.capacity(64).end_when_drained(Duration::from_millis(100))
    })
    .await;
    let acker = source.acker();
    let mut seen = Vec::new();
    let mut chunks = source.ready_chunks(50);
    while let Some(chunk) = chunks.next().await {
        let mut tokens = Vec::new();
        for item in chunk {
            let (n, token) = item.unwrap().into_parts();
            seen.push(n);
            tokens.push(token);
        }
        // Before the ack the entries are pending in the group.
        assert!(pending(&client, &stream, "g").await >= tokens.len() as u64);
        let k = tokens.len() as u64;
        assert_eq!(acker.ack(tokens).await.unwrap(), k);
    }
    assert_eq!(seen, (0..500).collect::<Vec<_>>());
    assert_eq!(pending(&client, &stream, "g").await, 0);
    cleanup(&client, &[&stream]).await;
}

#[tokio::test]
async fn malformed_entry_is_an_error_item_with_its_id() {
    let Some(client) = server() else { return };
    let stream = key("malformed");
    let ok1 = xadd(&client, &stream, &[("n", "1")]).await;
    let missing = xadd(&client, &stream, &[("x", "2")]).await;
    let bad = xadd(&client, &stream, &[("n", "abc")]).await;
    let ok2 = xadd(&client, &stream, &[("n", "4")]).await;

    let source = numbers_source(&client, &stream, "c1", |b| {
        b.end_when_drained(Duration::from_millis(100))
    })
    .await;
    let acker = source.acker();
    let items: Vec<_> = source.take(4).collect().await;
    let mut tokens = Vec::new();
    let mut summary = Vec::new();
    for item in items {
        match item {
            Ok(d) => {
                summary.push((d.id(), format!("ok {}", d.value())));
                tokens.push(d.into_parts().1);
            }
            Err(e) => {
                let id = e.entry_id().expect("malformed entries carry their id");
                let text = e.to_string();
                assert!(text.contains(&id.to_string()), "{text}");
                let reason = match &e {
                    RedisStreamError::Malformed { reason, .. } => reason.to_string(),
                    other => panic!("expected Malformed, got {other}"),
                };
                summary.push((id, reason));
                tokens.push(e.into_ack_token().unwrap());
            }
        }
    }
    assert_eq!(
        summary,
        vec![
            (ok1, "ok 1".to_owned()),
            (missing, "missing field `n`".to_owned()),
            (bad, "field `n` = \"abc\" does not parse as u32".to_owned()),
            (ok2, "ok 4".to_owned()),
        ]
    );
    // Malformed entries stay pending until their tokens are acknowledged (dead-lettered).
    assert_eq!(pending(&client, &stream, "g").await, 4);
    assert_eq!(acker.ack(tokens).await.unwrap(), 4);
    assert_eq!(pending(&client, &stream, "g").await, 0);
    cleanup(&client, &[&stream]).await;
}

#[tokio::test]
async fn never_reads_more_than_the_capacity() {
    let Some(client) = server() else { return };
    let stream = key("backpressure");
    numbers(&client, &stream, 100).await;

    let mut source = numbers_source(&client, &stream, "c1", |b| b.capacity(10).no_claim()).await;
    let acker = source.acker();
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(source.next().await.unwrap().unwrap());
    }
    // Capacity exhausted: nothing more arrives, and the server delivered exactly 10.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), source.next())
            .await
            .is_err()
    );
    assert_eq!(pending(&client, &stream, "g").await, 10);
    assert_eq!(source.outstanding(), 10);

    // Acking 4 frees 4 units: exactly 4 more are read.
    let acked: Vec<_> = held.drain(..4).map(|d| d.into_parts().1).collect();
    assert_eq!(acker.ack(acked).await.unwrap(), 4);
    for _ in 0..4 {
        held.push(source.next().await.unwrap().unwrap());
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), source.next())
            .await
            .is_err()
    );
    assert_eq!(pending(&client, &stream, "g").await, 10);
    let values: Vec<u32> = held.iter().map(|d| *d.value()).collect();
    assert_eq!(values, (4..14).collect::<Vec<_>>());
    drop(source);
    cleanup(&client, &[&stream]).await;
}

#[tokio::test]
async fn reclaims_entries_of_a_dead_consumer() {
    let Some(client) = server() else { return };
    let stream = key("claim");
    numbers(&client, &stream, 20).await;

    // "dead" reads 5 entries and dies without acking them.
    let mut dead = numbers_source(&client, &stream, "dead", |b| b.capacity(5).no_claim()).await;
    let mut lost = Vec::new();
    for _ in 0..5 {
        lost.push(*dead.next().await.unwrap().unwrap().value());
    }
    drop(dead);
    assert_eq!(lost, vec![0, 1, 2, 3, 4]);
    assert_eq!(pending(&client, &stream, "g").await, 5);

    let alive = numbers_source(&client, &stream, "alive", |b| {
        b.claim_idle(Duration::from_millis(200))
            .end_when_drained(Duration::from_millis(300))
    })
    .await;
    let acker = alive.acker();
    let mut got = BTreeSet::new();
    let mut chunks = alive.ready_chunks(8);
    while let Some(chunk) = chunks.next().await {
        let mut tokens = Vec::new();
        for d in chunk {
            let (n, t) = d.unwrap().into_parts();
            got.insert(n);
            tokens.push(t);
        }
        acker.ack(tokens).await.unwrap();
    }
    assert_eq!(got, (0..20).collect::<BTreeSet<_>>());
    assert_eq!(pending(&client, &stream, "g").await, 0);
    cleanup(&client, &[&stream]).await;
}

#[tokio::test]
async fn dropping_the_source_aborts_its_reader_task() {
    let Some(client) = server() else { return };
    let stream = key("drop");
    let before = millrace::testing::alive_tasks();
    let source = numbers_source(&client, &stream, "c1", |b| b.block(Duration::from_secs(30))).await;
    assert!(millrace::testing::alive_tasks() > before);
    drop(source);
    for _ in 0..100 {
        if millrace::testing::alive_tasks() == before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(millrace::testing::alive_tasks(), before);
    cleanup(&client, &[&stream]).await;
}

#[tokio::test]
async fn sink_appends_in_batches_and_trims() {
    let Some(client) = server() else { return };
    let stream = key("sink");
    let mut sink = RedisStreamSink::connect(&client, &stream)
        .await
        .unwrap()
        .maxlen_approx(100);
    for chunk in 0..10u32 {
        let n = sink
            .send_batch((0..100u32).map(|i| [("n", chunk * 100 + i)]))
            .await
            .unwrap();
        assert_eq!(n, 100);
    }
    let len: u64 = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut conn(&client).await)
        .await
        .unwrap();
    assert!(
        (100..1000).contains(&len),
        "MAXLEN ~ 100 kept {len} entries"
    );

    let mut hash = RedisHashSink::connect(&client, key("hash")).await.unwrap();
    let first = hash.put_batch([("a", 1), ("b", 2)]).await.unwrap();
    let again = hash.put_batch([("b", 20), ("c", 3)]).await.unwrap();
    assert_eq!((first.inserted, first.duplicates), (2, 0));
    assert_eq!((again.inserted, again.duplicates), (1, 1));
    let b: u32 = redis::cmd("HGET")
        .arg(hash.key())
        .arg("b")
        .query_async(&mut conn(&client).await)
        .await
        .unwrap();
    assert_eq!(b, 2, "the first write wins");
    cleanup(&client, &[&stream, hash.key()]).await;
}

#[tokio::test]
async fn config_errors_are_reported() {
    let Some(client) = server() else { return };
    let err = RedisStreamSource::builder(client, key("cfg"), "g", "c")
        .capacity(0)
        .connect(|e| e.parse::<u32>("n"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid Redis stream configuration: capacity must be at least 1 (it bounds the entries delivered but not yet acknowledged)"
    );
}

/// A private redis-server with an append-only file, restartable on the same port.
struct OwnServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnServer {
    fn start(port: u16, dir: PathBuf) -> Self {
        let mut s = Self {
            port,
            dir,
            child: None,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/services.sh start_redis installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("private redis-server did not start on port {}", self.port);
    }

    /// SIGKILL: clients see their connections reset mid-command.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_mid_read_loses_nothing() {
    // Same rule as the other tests: the Redis suite needs redis-server, or an explicit skip.
    if server().is_none() {
        return;
    }
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("millrace-redis-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut own = OwnServer::start(port, dir);
    let client = Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let stream = "restart";
    const N: u32 = 2_000;
    numbers(&client, stream, N).await;

    let source = RedisStreamSource::builder(client.clone(), stream, "g", "c1")
        .capacity(100)
        .read_count(50)
        .block(Duration::from_millis(200))
        .claim_idle(Duration::from_secs(2))
        .reconnect(
            ReconnectPolicy::default()
                .min_delay(Duration::from_millis(20))
                .max_delay(Duration::from_millis(200))
                .give_up_after(Duration::from_secs(20)),
        )
        .end_when_drained(Duration::from_millis(500))
        .connect(|e| e.parse::<u32>("n"))
        .await
        .unwrap();
    let acker = source.acker();
    // The idempotent sink: a set keyed by value (= by entry, one value per entry).
    let mut committed = BTreeSet::new();
    let mut deliveries = 0u64;
    let mut restarted = false;
    let mut chunks = source.ready_chunks(25);
    while let Some(chunk) = chunks.next().await {
        let mut tokens = Vec::new();
        for item in chunk {
            let (n, token) = item
                .expect("no error item: the source rides out the restart")
                .into_parts();
            committed.insert(n);
            deliveries += 1;
            tokens.push(token);
        }
        if !restarted && committed.len() >= N as usize / 3 {
            restarted = true;
            own.kill();
            tokio::time::sleep(Duration::from_millis(500)).await;
            own.spawn();
        }
        tokio::time::sleep(Duration::from_millis(1)).await; // some work
        acker
            .ack(tokens)
            .await
            .expect("acks retry across the restart");
    }
    assert!(restarted);
    let reconnects = chunks.get_ref().reconnects();
    assert!(
        reconnects >= 1,
        "the reader saw the restart ({reconnects} reconnects)"
    );
    assert_eq!(committed, (0..N).collect::<BTreeSet<_>>(), "nothing lost");
    assert!(deliveries >= u64::from(N));
    assert_eq!(pending(&client, stream, "g").await, 0);
}

#[tokio::test]
async fn a_panicking_decoder_reaches_the_consumer() {
    let Some(client) = server() else { return };
    let stream = key("panic");
    xadd(&client, &stream, &[("n", "1")]).await;
    let source = RedisStreamSource::builder(client.clone(), &stream, "g", "c1")
        .connect(|_entry| -> Result<u32, millrace::adapters::redis::DecodeError> { panic!("boom") })
        .await
        .unwrap();
    let consumer = tokio::spawn(async move { source.count().await });
    let err = consumer
        .await
        .expect_err("the decoder's panic ends the consumer");
    let payload = err.into_panic();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    cleanup(&client, &[&stream]).await;
}

#[tokio::test]
async fn source_acker_and_tokens_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_sync<T: Sync>(_: &T) {}
    let Some(client) = server() else { return };
    let stream = key("send");
    xadd(&client, &stream, &[("n", "1")]).await;
    let mut source = numbers_source(&client, &stream, "c1", |b| b).await;
    let acker = source.acker();
    assert_send(&source);
    assert_send(&acker);
    assert_sync(&acker);
    let delivery = source.next().await.unwrap().unwrap();
    assert_send(&delivery);
    assert_sync(delivery.token());
    assert_eq!(acker.ack([delivery.into_parts().1]).await.unwrap(), 1);
    cleanup(&client, &[&stream]).await;
}
