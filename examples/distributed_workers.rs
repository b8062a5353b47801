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
//! Each worker reads as a member of the group `workers` (XREADGROUP), squares `n`, commits a
//! batch with `HSETNX millrace:results <entry-id> <n²>` (idempotent: a redelivered entry writes
//! nothing new) and **then** acknowledges the batch (XACK). Delivery is at-least-once; keying the
//! sink by entry id makes the effect exactly once. With SQL the sink would be
//! `INSERT … ON CONFLICT (entry_id) DO NOTHING` in the batch's transaction, acked after COMMIT.
//! A worker exits once the group is drained (nothing new, nothing pending) for `--drained-ms`.
//!
//! Options: `--redis-url URL` (default `$MILLRACE_REDIS_URL`, else `redis://127.0.0.1:6379/`),
//! `--stream KEY`, `--group NAME`, `--results KEY`, `--count N` (producer), `--name NAME`
//! (worker; default `worker-<pid>`), `--claim-idle-ms MS` (default 5000), `--drained-ms MS`
//! (default 3000), `--sink hash|none` (worker; `none` only acks, for benchmarks),
//! `--role producer|worker|report|reset`.

#[cfg(feature = "redis")]
mod app {
    use std::time::{Duration, Instant};

    use futures::StreamExt;
    use millrace::adapters::redis::client::{self as redis, Client};
    use millrace::adapters::redis::{RedisHashSink, RedisStreamSink, RedisStreamSource};
    use millrace::prelude::*;

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
        let source = RedisStreamSource::builder(client.clone(), &a.stream, &a.group, &a.name)
            .capacity(4096)
            .read_count(1024)
            .claim_idle(a.claim_idle)
            .end_when_drained(a.drained)
            .connect(|entry| entry.parse::<u64>("n"))
            .await?;
        let acker = source.acker();
        let mut sink = RedisHashSink::connect(client, &a.results).await?;
        let mut dead_letters =
            RedisHashSink::connect(client, format!("{}:dead", a.results)).await?;

        // The pipeline: square each n (carrying the ack token beside it), prefetch so reading,
        // decoding and squaring overlap the sink's round trips, and commit whatever is ready.
        let mut batches = source
            .map(|item| item.map(|delivery| delivery.map(|n| n * n)))
            .prefetch(1024)
            .ready_chunks(1024);
        let (mut inserted, mut duplicates, mut malformed) = (0, 0, 0);
        let mut first: Option<Instant> = None;
        let mut last = Instant::now();
        let mut entries = 0u64;
        while let Some(batch) = batches.next().await {
            first.get_or_insert_with(Instant::now);
            entries += batch.len() as u64;
            let mut rows = Vec::with_capacity(batch.len());
            let mut tokens = Vec::with_capacity(batch.len());
            let mut bad = Vec::new();
            for item in batch {
                match item {
                    Ok(delivery) => {
                        let (square, token) = delivery.into_parts();
                        rows.push((token.id(), square));
                        tokens.push(token);
                    }
                    Err(e) => {
                        let Some(id) = e.entry_id() else {
                            return Err(e.into());
                        };
                        eprintln!("{}: {e}", a.name);
                        bad.push((id, e.to_string()));
                        tokens.extend(e.into_ack_token());
                        malformed += 1;
                    }
                }
            }
            if a.sink {
                let report = sink.put_batch(rows).await?; // commit …
                dead_letters.put_batch(bad).await?;
                inserted += report.inserted;
                duplicates += report.duplicates;
            }
            acker.ack(tokens).await?; // … then ack
            last = Instant::now();
        }
        if let Some(first) = first {
            let busy = last.duration_since(first).as_secs_f64();
            println!(
                "{}: {entries} entries in {busy:.3} s from first delivery to last ack: {:.0} entries/s",
                a.name,
                entries as f64 / busy.max(1e-9)
            );
        }
        println!(
            "{}: {inserted} results written, {duplicates} redeliveries deduplicated, {malformed} dead-lettered, in {:?}",
            a.name,
            started.elapsed()
        );
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
