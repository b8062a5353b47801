//! Entries, entry ids and ack tokens.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use millrace_core::positions::Position;
use tokio::sync::Semaphore;

use super::error::DecodeError;

/// The id of a stream entry, `<milliseconds>-<sequence>` (e.g. `1700000000000-0`).
///
/// `Copy` and two words wide, so ack tokens cost no allocation.
///
/// ```
/// use millrace::adapters::redis::EntryId;
///
/// let id: EntryId = "1700000000000-3".parse().unwrap();
/// assert_eq!((id.ms(), id.seq()), (1_700_000_000_000, 3));
/// assert_eq!(id.to_string(), "1700000000000-3");
/// assert!("nope".parse::<EntryId>().is_err());
/// ```
///
/// It is the [`Position`] of a [tracked](super::RedisStreamSource::tracked) source's entries:
/// ordered like the stream (by milliseconds, then sequence), written as `ms-seq`. The default,
/// `0-0`, sorts before every entry Redis can add.
///
/// ```
/// use millrace::adapters::redis::EntryId;
/// use millrace::positions::Position;
///
/// let id = EntryId::new(1_700_000_000_000, 3);
/// assert_eq!(id.to_text(), "1700000000000-3");
/// assert_eq!(EntryId::from_text("1700000000000-3"), Some(id));
/// assert!(EntryId::new(1_700_000_000_001, 0) > id);
/// assert!(EntryId::default() < EntryId::new(0, 1));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId {
    ms: u64,
    seq: u64,
}

impl EntryId {
    /// The id `ms-seq`.
    pub const fn new(ms: u64, seq: u64) -> Self {
        Self { ms, seq }
    }

    /// Milliseconds part.
    pub const fn ms(&self) -> u64 {
        self.ms
    }

    /// Sequence part.
    pub const fn seq(&self) -> u64 {
        self.seq
    }

    pub(crate) fn parse_bytes(bytes: &[u8]) -> Option<Self> {
        let s = std::str::from_utf8(bytes).ok()?;
        s.parse().ok()
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl Position for EntryId {
    fn to_text(&self) -> String {
        self.to_string()
    }

    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl FromStr for EntryId {
    type Err = DecodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            DecodeError::new(format!(
                "`{s}` is not a stream entry id (expected `<ms>-<seq>`)"
            ))
        };
        let (ms, seq) = s.split_once('-').ok_or_else(bad)?;
        Ok(Self {
            ms: ms.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

/// One stream entry as read from Redis: its id and its field/value pairs (as bytes).
///
/// This is what a decoder receives; it owns its bytes, so a decoder can move them into the item
/// without copying.
///
/// ```
/// use millrace::adapters::redis::{EntryId, RawEntry};
///
/// let e = RawEntry::new(EntryId::new(1, 0), vec![(b"n".to_vec(), b"42".to_vec())]);
/// assert_eq!(e.parse::<u32>("n"), Ok(42));
/// assert_eq!(e.str("n"), Ok("42"));
/// assert_eq!(e.parse::<u32>("m").unwrap_err().to_string(), "missing field `m`");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    id: EntryId,
    fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl RawEntry {
    /// An entry with these fields (useful in tests of a decoder).
    pub fn new(id: EntryId, fields: Vec<(Vec<u8>, Vec<u8>)>) -> Self {
        Self { id, fields }
    }

    /// The entry id.
    pub fn id(&self) -> EntryId {
        self.id
    }

    /// All field/value pairs in stream order.
    pub fn fields(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.fields
    }

    /// The pairs, by value.
    pub fn into_fields(self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.fields
    }

    /// The value of the first field called `name`.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k.as_slice() == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    /// The value of `name` as UTF-8 text; a missing field or invalid UTF-8 is a [`DecodeError`].
    pub fn str(&self, name: &str) -> Result<&str, DecodeError> {
        let bytes = self
            .field(name)
            .ok_or_else(|| DecodeError::missing_field(name))?;
        std::str::from_utf8(bytes)
            .map_err(|_| DecodeError::new(format!("field `{name}` is not valid UTF-8")))
    }

    /// The value of `name` parsed with [`FromStr`]; a missing or unparsable field is a
    /// [`DecodeError`] that quotes the value.
    pub fn parse<T: FromStr>(&self, name: &str) -> Result<T, DecodeError> {
        let text = self.str(name)?;
        text.parse().map_err(|_| {
            DecodeError::new(format!(
                "field `{name}` = {text:?} does not parse as {}",
                std::any::type_name::<T>()
            ))
        })
    }
}

/// State shared by a source and the ack tokens of its entries.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) stream: String,
    pub(crate) group: String,
    /// One permit per entry the downstream may still take; a token gives its permit back when
    /// it is dropped (after the ack, or unacknowledged).
    pub(crate) permits: Semaphore,
    pub(crate) capacity: usize,
    /// Tokens alive (delivered, neither acknowledged nor dropped).
    pub(crate) live: AtomicUsize,
    /// Transient read failures recovered from (each followed by a backoff and a reconnect).
    pub(crate) reconnects: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// Gives back the capacity of `n` tokens that are gone.
    pub(crate) fn release(&self, n: usize) {
        if n > 0 {
            self.live.fetch_sub(n, Ordering::Relaxed);
            self.permits.add_permits(n);
        }
    }
}

/// Proof of delivery of one entry: the entry id plus the stream and group it was read from.
///
/// Hand it to [`Acker::ack`](super::Acker::ack) **after** the entry's effect has been committed
/// downstream. While a token is alive it holds one unit of the source's capacity; dropping it
/// without acknowledging frees that unit and leaves the entry pending in the group, where
/// another consumer (or this one) reclaims it after the claim idle time — never lost.
///
/// Costs one reference-count increment, no allocation.
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
/// RedisStreamSink::connect(&client, &stream).await?.send_batch([[("n", 7)]]).await?;
/// let mut source = RedisStreamSource::builder(client.clone(), &stream, "doc", "c1")
///     .connect(|entry| entry.parse::<u32>("n"))
///     .await?;
/// let (value, token) = source.next().await.unwrap()?.into_parts();
/// assert_eq!((value, token.stream(), token.group()), (7, stream.as_str(), "doc"));
/// assert_eq!(source.outstanding(), 1); // the token holds one unit of capacity
/// drop(token); // not acked: the entry stays pending and will be reclaimed
/// assert_eq!(source.outstanding(), 0);
/// # let mut c = client.get_multiplexed_async_connection().await?;
/// # let _: () = millrace::adapters::redis::client::cmd("DEL").arg(&stream).query_async(&mut c).await?;
/// # Ok(())
/// # }
/// ```
pub struct AckToken {
    id: EntryId,
    shared: Arc<Shared>,
    /// Cleared when the acker gives back the capacity of a whole batch at once.
    armed: bool,
}

impl AckToken {
    pub(crate) fn new(id: EntryId, shared: Arc<Shared>) -> Self {
        Self {
            id,
            shared,
            armed: true,
        }
    }

    /// The caller takes over giving back this token's capacity (in bulk).
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }

    /// The entry id.
    pub fn id(&self) -> EntryId {
        self.id
    }

    /// The stream key the entry was read from.
    pub fn stream(&self) -> &str {
        &self.shared.stream
    }

    /// The consumer group the entry was delivered to.
    pub fn group(&self) -> &str {
        &self.shared.group
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        if self.armed {
            self.shared.release(1);
        }
    }
}

impl fmt::Debug for AckToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AckToken")
            .field("id", &self.id)
            .field("stream", &self.shared.stream)
            .field("group", &self.shared.group)
            .finish()
    }
}

/// An item of [`RedisStreamSource`](super::RedisStreamSource): the decoded value and the
/// [`AckToken`] of its entry.
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
/// RedisStreamSink::connect(&client, &stream).await?.send_batch([[("n", 7)]]).await?;
/// let mut source = RedisStreamSource::builder(client.clone(), &stream, "doc", "c1")
///     .connect(|entry| entry.parse::<u32>("n"))
///     .await?;
/// let delivery = source.next().await.unwrap()?.map(|n| n * 6);
/// assert_eq!(*delivery.value(), 42);
/// assert_eq!(delivery.id(), delivery.token().id());
/// source.acker().ack([delivery.into_parts().1]).await?;
/// # let mut c = client.get_multiplexed_async_connection().await?;
/// # let _: () = millrace::adapters::redis::client::cmd("DEL").arg(&stream).query_async(&mut c).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Delivery<T> {
    value: T,
    token: AckToken,
}

impl<T> Delivery<T> {
    pub(crate) fn new(value: T, token: AckToken) -> Self {
        Self { value, token }
    }

    /// The entry id.
    pub fn id(&self) -> EntryId {
        self.token.id
    }

    /// The decoded value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The token that acknowledges this entry.
    pub fn token(&self) -> &AckToken {
        &self.token
    }

    /// Value and token, e.g. to carry the token beside a result through the pipeline.
    pub fn into_parts(self) -> (T, AckToken) {
        (self.value, self.token)
    }

    /// Transforms the value, keeping the token.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Delivery<U> {
        Delivery {
            value: f(self.value),
            token: self.token,
        }
    }
}

impl redis::ToRedisArgs for EntryId {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + redis::RedisWrite,
    {
        out.write_arg_fmt(self);
    }
}

impl redis::ToSingleRedisArg for EntryId {}
