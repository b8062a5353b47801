//! Acknowledging entries after the sink committed them.

use std::fmt;
use std::sync::Arc;

use redis::aio::ConnectionManager;

use super::conn::{ReconnectPolicy, with_retry};
use super::entry::AckToken;
use super::error::RedisStreamError;

/// Most ids in one XACK command; larger acks are split and pipelined.
const XACK_CHUNK: usize = 4096;

/// Acknowledges entries (XACK) of a [`RedisStreamSource`](super::RedisStreamSource), in
/// batches: one call sends one pipelined round trip whatever the number of tokens.
///
/// Call it **after** the effect of the entries is durable (the sink committed), never before:
/// that ordering is what makes the pipeline at-least-once. Tokens are consumed; their capacity
/// returns to the source once the XACK has been answered (or has failed — then the entries stay
/// pending and are reclaimed later). Transient network errors are retried per the source's
/// [`ReconnectPolicy`].
///
/// Cheap to clone (one reference count), `Send + Sync`; it uses its own connection, never the
/// reader's blocking one.
///
/// ```
/// use futures::StreamExt;
/// use millrace::adapters::redis::{client::Client, RedisStreamSink, RedisStreamSource};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let Some(url) = millrace::adapters::redis::test_server_url() else { return Ok(()) };
/// # let stream = format!("doc-{}-{}", std::process::id(), line!());
/// let client = Client::open(url)?;
/// let mut producer = RedisStreamSink::connect(&client, &stream).await?;
/// producer.send_batch((0..5).map(|n| [("n", n)])).await?;
/// let source = RedisStreamSource::builder(client.clone(), &stream, "doc", "c1")
///     .connect(|entry| entry.parse::<u32>("n"))
///     .await?;
/// let acker = source.acker();
/// // Commit five entries somewhere, then ack them in one round trip.
/// let batch: Vec<_> = source.take(5).collect().await;
/// let tokens: Vec<_> = batch
///     .into_iter()
///     .map(|item| item.map(|d| d.into_parts().1))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(acker.ack(tokens).await?, 5);
/// # let mut c = client.get_multiplexed_async_connection().await?;
/// # let _: () = millrace::adapters::redis::client::cmd("DEL").arg(&stream).query_async(&mut c).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Acker {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    reconnect: ReconnectPolicy,
}

impl fmt::Debug for Acker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acker")
            .field("reconnect", &self.inner.reconnect)
            .finish_non_exhaustive()
    }
}

impl Acker {
    pub(crate) fn new(conn: ConnectionManager, reconnect: ReconnectPolicy) -> Self {
        Self {
            inner: Arc::new(Inner { conn, reconnect }),
        }
    }

    /// XACKs every token in one pipelined round trip; returns how many entries the server
    /// removed from the pending list (an entry already acknowledged, or reclaimed and
    /// acknowledged by another consumer, does not count).
    ///
    /// # Errors
    /// [`RedisStreamError::GaveUp`] when the server stayed unreachable for the reconnect
    /// limit, [`RedisStreamError::Redis`] for other failures. Either way the entries stay
    /// pending and will be delivered again: at-least-once is kept.
    ///
    /// # Cancel safety
    /// Dropping the future before it completes may or may not have acknowledged the entries;
    /// in both cases none is lost.
    pub async fn ack(
        &self,
        tokens: impl IntoIterator<Item = AckToken>,
    ) -> Result<u64, RedisStreamError> {
        // Kept alive until the reply arrives, so the source does not read past its capacity
        // while acks are in flight.
        let tokens: Vec<AckToken> = tokens.into_iter().collect();
        if tokens.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        let mut start = 0;
        while start < tokens.len() {
            let shared = tokens[start].shared();
            let mut end = start + 1;
            while end < tokens.len()
                && end - start < XACK_CHUNK
                && Arc::ptr_eq(tokens[end].shared(), shared)
            {
                end += 1;
            }
            let cmd = pipe.cmd("XACK").arg(&shared.stream).arg(&shared.group);
            for t in &tokens[start..end] {
                cmd.arg(t.id());
            }
            start = end;
        }
        let stream = tokens[0].stream().to_owned();
        let counts: Vec<u64> = with_retry(&self.inner.reconnect, "XACK", &stream, || {
            let mut c = self.inner.conn.clone();
            let pipe = &pipe;
            async move { pipe.query_async(&mut c).await }
        })
        .await?;
        // Give the capacity back per source in one call (one lock) rather than per token.
        let mut tokens = tokens;
        let mut start = 0;
        while start < tokens.len() {
            let shared = tokens[start].shared().clone();
            let mut end = start;
            while end < tokens.len() && Arc::ptr_eq(tokens[end].shared(), &shared) {
                tokens[end].disarm();
                end += 1;
            }
            shared.release(end - start);
            start = end;
        }
        drop(tokens);
        Ok(counts.iter().sum())
    }
}
