//! Redis Streams: spread one pipeline over many processes and machines (feature `redis`).
//!
//! * [`RedisStreamSource`] reads a stream as a member of a **consumer group** (`XREADGROUP`);
//!   every item carries an [`AckToken`]. Entries are acknowledged (`XACK`, batched, through the
//!   [`Acker`]) only **after the sink has committed them**. Entries left pending by a crashed
//!   consumer are reclaimed with `XAUTOCLAIM` once idle for
//!   [`claim_idle`](RedisStreamSourceBuilder::claim_idle). The group is created when missing.
//!   Back-pressure: at most [`capacity`](RedisStreamSourceBuilder::capacity) entries are
//!   delivered and not yet acknowledged; the source reads again only when tokens come back.
//!   Network errors are retried with backoff ([`ReconnectPolicy`]). An entry the decoder
//!   rejects becomes a [`RedisStreamError::Malformed`] item with the entry id, not a crash.
//!   [`tracked`](RedisStreamSource::tracked) gives the same source with entry ids as positions
//!   and a [`BatchAcker`] that acks each batch after its commit (see
//!   [below](#positions-the-ack-is-the-commit)).
//! * [`RedisStreamSink`] appends with `XADD` in pipelined batches, optionally `MAXLEN ~ n`.
//! * [`RedisHashSink`] is an idempotent sink (`HSETNX` keyed by entry id).
//!
//! # The delivery contract: at-least-once, exactly-once effect
//!
//! An entry leaves the group's pending list only when its token is acknowledged, and the token
//! should be acknowledged only once its effect is durable. So if a worker dies at any point —
//! before processing, mid-batch, after committing but before acking — the entry is still
//! pending and another worker reclaims it: **no entry is lost**. The price is that an entry can
//! be processed **more than once** (after a crash between commit and ack, after a reconnect,
//! which re-reads this consumer's own pending entries because a lost reply may have delivered
//! some, or when a live consumer holds an entry longer than `claim_idle`).
//!
//! The sink makes that harmless by being **idempotent, keyed by the entry id**: writing the
//! same id twice has the effect of writing it once. Then the *effect* is exactly once:
//!
//! * Redis: `HSETNX results <entry-id> <value>` ([`RedisHashSink`]), or `SADD processed <id>`
//!   in the same `MULTI` as the effect.
//! * SQL (the `sql` feature, sqlx): `INSERT INTO results (entry_id, …) VALUES (…) ON CONFLICT
//!   (entry_id) DO NOTHING` inside the transaction of the batch, and ack after `COMMIT`.
//!
//! Ack order is **commit, then ack**. Acking first turns at-least-once into at-most-once.
//!
//! # Positions: the ack is the commit
//!
//! In millrace's delivery model (see [`millrace::positions`](millrace_core::positions)) a
//! source's position travels with each item and a sink commits it; for a consumer group the
//! committed position *is* the acknowledgement: the group's pending list remembers what is not
//! done, and a restarted worker resumes from it (its own pending entries first, then new ones,
//! plus whatever it reclaims). [`RedisStreamSource::tracked`] gives the source in that form:
//!
//! * a [`Tracked`](millrace_core::positions::Tracked) stream whose positions are entry ids
//!   ([`EntryId`] implements [`Position`](millrace_core::positions::Position)), so the
//!   pipeline's stages (`map`, `validate`, `dead_letter_errors`, `map_concurrent`, unordered
//!   with its low-water mark, `batch_within`, …) carry them without hand-written threading;
//! * a [`BatchAcker`] that acknowledges **exactly the entries of a committed batch**: its
//!   items, dead letters and filtered entries (everything delivered up to the batch's
//!   position), in one XACK round trip, **after** the commit.
//!
//! [`BatchAcker::commit_then_ack`] drives the pipeline: for each batch, `commit` (your sink,
//! idempotent by entry id), then ack. The contract, and its limits:
//!
//! * **Nothing is lost**: an entry leaves the pending list only after its batch's commit
//!   returned. A crash anywhere (before the commit, inside it, between commit and ack) leaves
//!   it pending; a restart or another worker delivers it again.
//! * **The effect is exactly once if the sink is keyed by entry id**: a crash between commit
//!   and ack redelivers entries that are already committed, and the second commit must be a
//!   no-op for them (`HSETNX`, `INSERT … ON CONFLICT (entry_id) DO NOTHING`). The source never
//!   delivers an entry twice while it still holds it, but a reconnect or another consumer's
//!   reclaim (after `claim_idle`) can.
//! * Batch with `batch_within` (size or time): the source ends (with `end_when_drained`) only
//!   once nothing is pending, so a size-only batch can wait forever for its last entries.
//!
//! # Example
//!
//! The shape of a worker: read, transform, commit a batch idempotently, then ack it.
//!
//! ```
//! use std::time::Duration;
//! use millrace::adapters::redis::{
//!     client::Client, RedisHashSink, RedisStreamError, RedisStreamSink, RedisStreamSource,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let Some(url) = millrace::adapters::redis::test_server_url() else { return Ok(()) };
//! # let suffix = std::process::id();
//! # let (stream, results) = (format!("doc-jobs-{suffix}"), format!("doc-results-{suffix}"));
//! let client = Client::open(url)?;
//!
//! // Producer: 10 jobs, and one that is not a number.
//! let mut producer = RedisStreamSink::connect(&client, &stream).await?;
//! producer.send_batch((1..=10u32).map(|n| [("n", n.to_string())])).await?;
//! producer.send_batch([[("n", "eleven")]]).await?;
//!
//! // Worker: square each n into a sink keyed by entry id; ack each batch after its commit.
//! let (entries, acks) = RedisStreamSource::builder(client.clone(), &stream, "squarers", "worker-1")
//!     .end_when_drained(Duration::from_millis(200))
//!     .connect(|entry| entry.parse::<u64>("n"))
//!     .await?
//!     .tracked();
//! let accounting = entries.accounting();
//! let batches = entries
//!     .dead_letter_errors()                 // "eleven" becomes a dead letter at its id
//!     .map(|n| n * n)
//!     .batch_within(32, Duration::from_millis(50));
//! let sink = RedisHashSink::connect(&client, &results).await?;
//! let dead = RedisHashSink::connect(&client, format!("{results}:dead")).await?;
//! let report = acks
//!     .commit_then_ack(batches, |batch| {
//!         let (mut sink, mut dead) = (sink.clone(), dead.clone());
//!         async move {
//!             let rows = batch.positions().iter().zip(batch.items());
//!             sink.put_batch(rows.map(|(id, sq)| (*id, *sq))).await?; // commit …
//!             dead.put_batch(batch.dead_letters().iter().map(|d| (d.position, d.reason.as_str()))).await?;
//!             Ok::<_, RedisStreamError>(())
//!         } // … then `commit_then_ack` acks the batch's entries
//!     })
//!     .await?;
//! assert_eq!((report.committed, report.dead_lettered, report.acked), (10, 1, 11));
//! assert_eq!(accounting.check()?.to_string(), "read 11 = committed 10 + dead-lettered 1 + filtered 0");
//! let mut conn = client.get_multiplexed_async_connection().await?;
//! let sum: u64 = redis::cmd("HVALS").arg(&results).query_async::<Vec<u64>>(&mut conn).await?.iter().sum();
//! assert_eq!(sum, 385);
//! # let _: () = redis::cmd("DEL").arg(&stream).arg(&results).arg(format!("{results}:dead")).query_async(&mut conn).await?;
//! # Ok(())
//! # }
//! # use millrace::adapters::redis::client as redis;
//! ```
//!
//! Without positions, the source's items carry an [`AckToken`] each, for the [`Acker`]: the
//! same contract, written by hand (see [`RedisStreamSource`]).
//!
//! Doctests and tests that need a server read `MILLRACE_TEST_REDIS_URL` (set by
//! `scripts/services.sh`'s `start_redis`); see [`test_server_url`].

mod ack;
mod conn;
mod entry;
mod error;
mod reader;
mod reply;
mod sink;
mod source;
mod tracked;

pub use self::ack::Acker;
pub use self::conn::ReconnectPolicy;
pub use self::entry::{AckToken, Delivery, EntryId, RawEntry};
pub use self::error::{DecodeError, RedisStreamError};
pub use self::sink::{PutReport, RedisHashSink, RedisStreamSink};
pub use self::source::{RedisStreamSource, RedisStreamSourceBuilder};
pub use self::tracked::{AckReport, BatchAcker, CommitAckError, TrackedEntries};

/// The `redis` client crate this adapter is built on (for `Client`, commands and pipelines).
pub use ::redis as client;

/// The URL of the Redis server for tests and doctests: `MILLRACE_TEST_REDIS_URL`.
///
/// When it is unset this **panics** with a message saying how to start one
/// (`source scripts/services.sh && start_redis`), unless `MILLRACE_SKIP_REDIS=1`, in which case
/// it prints that the Redis test is skipped and returns `None`. CI never skips silently.
///
/// ```
/// if let Some(url) = millrace::adapters::redis::test_server_url() {
///     assert!(url.starts_with("redis://"));
/// }
/// ```
///
/// # Panics
/// When neither variable is set.
pub fn test_server_url() -> Option<String> {
    match std::env::var("MILLRACE_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("MILLRACE_SKIP_REDIS").as_deref() == Ok("1") => {
            eprintln!("MILLRACE_SKIP_REDIS=1: skipping a test that needs redis-server");
            None
        }
        _ => panic!(
            "MILLRACE_TEST_REDIS_URL is not set: this test needs a redis-server. Run \
             `source scripts/services.sh && start_redis` (or scripts/test.sh), or set \
             MILLRACE_SKIP_REDIS=1 to skip the Redis tests explicitly"
        ),
    }
}
