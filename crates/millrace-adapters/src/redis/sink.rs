//! XADD sink and an idempotent hash sink.

use std::fmt;

use redis::aio::ConnectionManager;
use redis::{Client, ToRedisArgs};
use std::time::Duration;

use super::conn::{ReconnectPolicy, connect};
use super::error::RedisStreamError;

/// Appends entries to a stream with `XADD`, one pipelined round trip per batch, optionally
/// trimming with `MAXLEN ~ n`.
///
/// A failed batch is reported and not retried (a retry could append entries twice); the
/// caller decides. Feed it batches from `batch(n)` / `ready_chunks(n)`.
///
/// ```
/// use futures::{stream, StreamExt};
/// use millrace::prelude::*;
/// use millrace::adapters::redis::{client::Client, RedisStreamSink};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let Some(url) = millrace::adapters::redis::test_server_url() else { return Ok(()) };
/// # let stream = format!("doc-{}-{}", std::process::id(), line!());
/// let client = Client::open(url)?;
/// let mut sink = RedisStreamSink::connect(&client, &stream).await?.maxlen_approx(10_000);
/// let mut batches = stream::iter(0..1000u32).map(|n| [("n", n)]).batch(100);
/// let mut appended = 0;
/// while let Some(batch) = batches.next().await {
///     appended += sink.send_batch(batch).await?; // one round trip per 100 entries
/// }
/// assert_eq!(appended, 1000);
/// # let mut c = client.get_multiplexed_async_connection().await?;
/// # let _: () = millrace::adapters::redis::client::cmd("DEL").arg(&stream).query_async(&mut c).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStreamSink {
    conn: ConnectionManager,
    stream: String,
    maxlen: Option<usize>,
}

impl fmt::Debug for RedisStreamSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStreamSink")
            .field("stream", &self.stream)
            .field("maxlen", &self.maxlen)
            .finish_non_exhaustive()
    }
}

impl RedisStreamSink {
    /// Connects (retrying per the default [`ReconnectPolicy`]).
    ///
    /// # Errors
    /// The server could not be reached.
    pub async fn connect(
        client: &Client,
        stream: impl Into<String>,
    ) -> Result<Self, RedisStreamError> {
        let stream = stream.into();
        let conn = connect(
            client,
            Duration::from_secs(10),
            &ReconnectPolicy::default(),
            &stream,
        )
        .await?;
        Ok(Self {
            conn,
            stream,
            maxlen: None,
        })
    }

    /// Trim the stream to about `n` entries on every append (`MAXLEN ~ n`: whole macro nodes
    /// are trimmed, so it may keep a few more). Trimming deletes entries whether or not a
    /// group has read them: size `n` well above the consumers' lag.
    pub fn maxlen_approx(mut self, n: usize) -> Self {
        self.maxlen = Some(n);
        self
    }

    /// The stream key.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Appends every entry (each an iterator of field/value pairs) with auto-generated ids,
    /// in one pipelined round trip; returns how many were appended.
    ///
    /// # Errors
    /// [`RedisStreamError::Redis`] when the round trip failed; some entries of the batch may
    /// have been appended.
    pub async fn send_batch<I, E, K, V>(&mut self, entries: I) -> Result<usize, RedisStreamError>
    where
        I: IntoIterator<Item = E>,
        E: IntoIterator<Item = (K, V)>,
        K: ToRedisArgs,
        V: ToRedisArgs,
    {
        let mut pipe = redis::pipe();
        let mut n = 0;
        for fields in entries {
            let cmd = pipe.cmd("XADD").arg(&self.stream);
            if let Some(max) = self.maxlen {
                cmd.arg("MAXLEN").arg("~").arg(max);
            }
            cmd.arg("*");
            for (k, v) in fields {
                cmd.arg(k).arg(v);
            }
            cmd.ignore();
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        pipe.exec_async(&mut self.conn)
            .await
            .map_err(|source| RedisStreamError::Redis {
                command: "XADD",
                stream: self.stream.clone(),
                source,
            })?;
        Ok(n)
    }
}

/// An **idempotent** sink: `HSETNX key <id> <value>` per item, pipelined. Writing the same id
/// twice keeps the first value, so at-least-once delivery keyed by entry id gives an
/// exactly-once effect. (With SQL the same pattern is `INSERT … ON CONFLICT (entry_id) DO
/// NOTHING` in the transaction that commits the batch.)
///
/// ```
/// use millrace::adapters::redis::{client::Client, PutReport, RedisHashSink};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let Some(url) = millrace::adapters::redis::test_server_url() else { return Ok(()) };
/// # let stream = format!("doc-{}-{}", std::process::id(), line!());
/// let client = Client::open(url)?;
/// let mut sink = RedisHashSink::connect(&client, &stream).await?;
/// let first = sink.put_batch([("1-0", 10), ("2-0", 20)]).await?;
/// let again = sink.put_batch([("2-0", 99), ("3-0", 30)]).await?; // 2-0 redelivered
/// assert_eq!(first, PutReport { inserted: 2, duplicates: 0 });
/// assert_eq!(again, PutReport { inserted: 1, duplicates: 1 });
/// # let mut c = client.get_multiplexed_async_connection().await?;
/// # let _: () = millrace::adapters::redis::client::cmd("DEL").arg(&stream).query_async(&mut c).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisHashSink {
    conn: ConnectionManager,
    key: String,
}

impl fmt::Debug for RedisHashSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisHashSink")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// What one [`RedisHashSink::put_batch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PutReport {
    /// Ids written for the first time.
    pub inserted: u64,
    /// Ids that were already present (redeliveries); their values were left alone.
    pub duplicates: u64,
}

impl RedisHashSink {
    /// Connects (retrying per the default [`ReconnectPolicy`]).
    ///
    /// # Errors
    /// The server could not be reached.
    pub async fn connect(
        client: &Client,
        key: impl Into<String>,
    ) -> Result<Self, RedisStreamError> {
        let key = key.into();
        let conn = connect(
            client,
            Duration::from_secs(10),
            &ReconnectPolicy::default(),
            &key,
        )
        .await?;
        Ok(Self { conn, key })
    }

    /// The hash key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Writes every `(id, value)` pair with HSETNX in one pipelined round trip (in a
    /// MULTI/EXEC transaction, so the batch commits whole or not at all).
    ///
    /// # Errors
    /// [`RedisStreamError::Redis`] when the round trip failed; then nothing was written and the
    /// batch may be retried (or left to redelivery).
    pub async fn put_batch<I, K, V>(&mut self, items: I) -> Result<PutReport, RedisStreamError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: ToRedisArgs,
        V: ToRedisArgs,
    {
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut n = 0u64;
        for (k, v) in items {
            pipe.cmd("HSETNX").arg(&self.key).arg(k).arg(v);
            n += 1;
        }
        if n == 0 {
            return Ok(PutReport::default());
        }
        let set: Vec<u64> =
            pipe.query_async(&mut self.conn)
                .await
                .map_err(|source| RedisStreamError::Redis {
                    command: "HSETNX",
                    stream: self.key.clone(),
                    source,
                })?;
        let inserted = set.iter().sum();
        Ok(PutReport {
            inserted,
            duplicates: n - inserted,
        })
    }
}
