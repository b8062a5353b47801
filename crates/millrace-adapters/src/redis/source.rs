//! The consumer-group source.

use std::fmt;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use millrace_core::{FusedStream, Stream};
use redis::aio::ConnectionManager;
use redis::{Client, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::ack::Acker;
use super::conn::{ReconnectPolicy, connect, with_retry};
use super::entry::{Delivery, EntryId, RawEntry, Shared};
use super::error::RedisStreamError;
use super::reader::Reader;

pub(super) type Item<T> = Result<Delivery<T>, RedisStreamError>;

/// Configuration of a [`RedisStreamSource`]; made by [`RedisStreamSource::builder`].
#[derive(Debug, Clone)]
pub struct RedisStreamSourceBuilder {
    pub(super) client: Client,
    pub(super) stream: String,
    pub(super) group: String,
    pub(super) consumer: String,
    pub(super) capacity: usize,
    pub(super) read_count: usize,
    pub(super) block: Duration,
    pub(super) claim_idle: Option<Duration>,
    pub(super) claim_interval: Option<Duration>,
    pub(super) start_id: String,
    pub(super) reconnect: ReconnectPolicy,
    pub(super) end_when_drained: Option<Duration>,
}

impl RedisStreamSourceBuilder {
    /// Most entries delivered but not yet acknowledged (or dropped) at any time — the
    /// back-pressure bound (default 1024). The source reads again only when tokens free up.
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = n;
        self
    }

    /// Most entries asked for by one XREADGROUP / XAUTOCLAIM (`COUNT`, default 512); never more
    /// than the free capacity.
    pub fn read_count(mut self, n: usize) -> Self {
        self.read_count = n;
        self
    }

    /// How long one XREADGROUP blocks waiting for new entries (default 1 s).
    pub fn block(mut self, d: Duration) -> Self {
        self.block = d;
        self
    }

    /// Reclaim with XAUTOCLAIM entries pending for longer than `idle` on any consumer of the
    /// group (default 30 s). Must exceed the longest time an entry may legitimately spend
    /// between delivery and ack, or live consumers' entries are reclaimed too (a duplicate,
    /// never a loss).
    pub fn claim_idle(mut self, idle: Duration) -> Self {
        self.claim_idle = Some(idle);
        self
    }

    /// Never reclaim other consumers' entries.
    pub fn no_claim(mut self) -> Self {
        self.claim_idle = None;
        self
    }

    /// How often to scan the group's pending list for reclaimable entries (default: half the
    /// claim idle time).
    pub fn claim_interval(mut self, every: Duration) -> Self {
        self.claim_interval = Some(every);
        self
    }

    /// Where a group created by this source starts: `"0"` (default, the whole stream) or `"$"`
    /// (only entries added from now on). Ignored when the group exists.
    pub fn start_id(mut self, id: impl Into<String>) -> Self {
        self.start_id = id.into();
        self
    }

    /// Backoff while the server is unreachable.
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }

    /// End the stream once the group is drained: no undelivered entries and nothing pending on
    /// any consumer (XPENDING count 0), continuously for `grace`. Without it the source waits
    /// for new entries forever (stop it with `stop_on`, or drop it).
    pub fn end_when_drained(mut self, grace: Duration) -> Self {
        self.end_when_drained = Some(grace);
        self
    }

    /// Connects, creates the group if missing (`XGROUP CREATE … MKSTREAM`, an existing group is
    /// fine), and starts reading on a spawned task. `decode` turns each entry into an item; an
    /// `Err` becomes a [`RedisStreamError::Malformed`] item carrying the entry id.
    ///
    /// # Errors
    /// A zero capacity or read count, or a server that cannot be reached within the reconnect
    /// policy, or a key that is not a stream.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn connect<T, F>(self, decode: F) -> Result<RedisStreamSource<T>, RedisStreamError>
    where
        T: Send + 'static,
        F: FnMut(RawEntry) -> Result<T, super::DecodeError> + Send + 'static,
    {
        if self.capacity == 0 {
            return Err(RedisStreamError::config(
                "capacity must be at least 1 (it bounds the entries delivered but not yet acknowledged)",
            ));
        }
        if self.read_count == 0 {
            return Err(RedisStreamError::config("read_count must be at least 1"));
        }
        let read_timeout = self.block + Duration::from_secs(5);
        let read_conn = connect(&self.client, read_timeout, &self.reconnect, &self.stream).await?;
        let ctl_conn = connect(
            &self.client,
            Duration::from_secs(5),
            &self.reconnect,
            &self.stream,
        )
        .await?;
        create_group(
            &ctl_conn,
            &self.stream,
            &self.group,
            &self.start_id,
            &self.reconnect,
        )
        .await?;
        let shared = Arc::new(Shared {
            stream: self.stream.clone(),
            group: self.group.clone(),
            permits: tokio::sync::Semaphore::new(self.capacity),
            capacity: self.capacity,
            live: std::sync::atomic::AtomicUsize::new(0),
            reconnects: std::sync::atomic::AtomicU64::new(0),
        });
        let acker = Acker::new(ctl_conn.clone(), self.reconnect);
        let (tx, rx) = mpsc::channel(2);
        let claim_interval = self
            .claim_interval
            .or(self.claim_idle.map(|d| d / 2))
            .unwrap_or(Duration::MAX)
            .max(Duration::from_millis(10));
        let reader = Reader {
            read_conn,
            ctl_conn,
            cfg: self,
            shared: shared.clone(),
            tx,
            decode,
            history: Some(EntryId::new(0, 0)),
            claim_cursor: EntryId::new(0, 0),
            next_claim: Instant::now(),
            claim_interval,
            drained_since: None,
        };
        let task = tokio::spawn(reader.run());
        Ok(RedisStreamSource {
            rx,
            buf: Vec::new().into_iter(),
            task: Some(AbortOnDrop(task)),
            acker,
            shared,
            done: false,
        })
    }
}

pub(crate) async fn create_group(
    conn: &ConnectionManager,
    stream: &str,
    group: &str,
    start: &str,
    policy: &ReconnectPolicy,
) -> Result<(), RedisStreamError> {
    let r: Result<Value, _> = with_retry(policy, "XGROUP CREATE", stream, || {
        let mut c = conn.clone();
        async move {
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(stream)
                .arg(group)
                .arg(start)
                .arg("MKSTREAM")
                .query_async(&mut c)
                .await
        }
    })
    .await;
    match r {
        Ok(_) => Ok(()),
        Err(RedisStreamError::Redis { source, .. }) if source.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(e),
    }
}

/// Aborts the reader task when the source is dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A Redis Streams consumer-group member as a millrace source: yields
/// `Result<Delivery<T>, RedisStreamError>`.
///
/// Reads with `XREADGROUP` on a spawned task (so reading overlaps processing), never holding
/// more than `capacity` delivered-but-unacknowledged entries; reclaims entries left pending by
/// dead consumers with `XAUTOCLAIM`; reconnects with backoff, re-reading its own pending list
/// after every reconnect so an entry delivered in a lost reply is not lost. Acknowledge with the
/// [`Acker`] from [`acker`](Self::acker) after the effect is committed. See the
/// [module docs](super) for the at-least-once contract and an end-to-end example.
///
/// Dropping the source aborts its reader task; entries it had delivered and that were not
/// acknowledged stay pending (and are reclaimed later).
///
/// ```
/// use std::time::Duration;
/// use futures::StreamExt;
/// use millrace::adapters::redis::{client::Client, RedisStreamSink, RedisStreamSource};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let Some(url) = millrace::adapters::redis::test_server_url() else { return Ok(()) };
/// # let stream = format!("doc-{}-{}", std::process::id(), line!());
/// let client = Client::open(url)?;
/// let mut producer = RedisStreamSink::connect(&client, &stream).await?;
/// producer.send_batch([[("n", "1")], [("n", "two")], [("n", "3")]]).await?;
///
/// let mut source = RedisStreamSource::builder(client.clone(), &stream, "doc", "c1")
///     .capacity(2) // at most 2 entries delivered and not yet acked
///     .end_when_drained(Duration::from_millis(100))
///     .connect(|entry| entry.parse::<u32>("n"))
///     .await?;
/// let acker = source.acker();
/// let mut good = Vec::new();
/// while let Some(item) = source.next().await {
///     match item {
///         Ok(delivery) => {
///             good.push(*delivery.value());
///             acker.ack([delivery.into_parts().1]).await?;
///         }
///         Err(e) => {
///             // A malformed entry: its id is in the error; dead-letter it, then ack it.
///             assert!(e.to_string().contains("does not parse as u32"));
///             acker.ack(e.into_ack_token()).await?;
///         }
///     }
/// }
/// assert_eq!(good, [1, 3]);
/// # let mut c = client.get_multiplexed_async_connection().await?;
/// # let _: () = millrace::adapters::redis::client::cmd("DEL").arg(&stream).query_async(&mut c).await?;
/// # Ok(())
/// # }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct RedisStreamSource<T> {
    rx: mpsc::Receiver<Vec<Item<T>>>,
    buf: std::vec::IntoIter<Item<T>>,
    task: Option<AbortOnDrop>,
    acker: Acker,
    shared: Arc<Shared>,
    done: bool,
}

impl RedisStreamSource<()> {
    /// Starts the configuration of a source reading `stream` as `consumer` in `group`.
    /// Consumer names must be unique among live workers of a group.
    pub fn builder(
        client: Client,
        stream: impl Into<String>,
        group: impl Into<String>,
        consumer: impl Into<String>,
    ) -> RedisStreamSourceBuilder {
        RedisStreamSourceBuilder {
            client,
            stream: stream.into(),
            group: group.into(),
            consumer: consumer.into(),
            capacity: 1024,
            read_count: 512,
            block: Duration::from_secs(1),
            claim_idle: Some(Duration::from_secs(30)),
            claim_interval: None,
            start_id: "0".to_owned(),
            reconnect: ReconnectPolicy::default(),
            end_when_drained: None,
        }
    }
}

impl<T> RedisStreamSource<T> {
    /// The handle that acknowledges this source's entries (cheap to clone, `Send + Sync`).
    pub fn acker(&self) -> Acker {
        self.acker.clone()
    }

    /// How many times reading failed with a network error and was retried after a backoff
    /// (a restart of the server counts once per failed attempt).
    pub fn reconnects(&self) -> u64 {
        self.shared
            .reconnects
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Entries delivered (by this source) and not yet acknowledged or dropped.
    pub fn outstanding(&self) -> usize {
        self.shared.live.load(std::sync::atomic::Ordering::Relaxed)
    }
}

// Nothing is ever pinned structurally: items are moved out of a plain buffer.
impl<T> Unpin for RedisStreamSource<T> {}

impl<T> fmt::Debug for RedisStreamSource<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStreamSource")
            .field("stream", &self.shared.stream)
            .field("group", &self.shared.group)
            .field("buffered", &self.buf.len())
            .field("capacity", &self.shared.capacity)
            .field("outstanding", &self.outstanding())
            .field("done", &self.done)
            .finish()
    }
}

impl<T> Stream for RedisStreamSource<T> {
    type Item = Item<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(item) = this.buf.next() {
                return Poll::Ready(Some(item));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match ready!(this.rx.poll_recv(cx)) {
                Some(chunk) => this.buf = chunk.into_iter(),
                None => {
                    // The reader ended: normally, or by a panic that must reach the consumer.
                    if let Some(task) = this.task.as_mut() {
                        let res = ready!(Pin::new(&mut task.0).poll(cx));
                        this.task = None;
                        if let Err(e) = res {
                            if e.is_panic() {
                                this.done = true;
                                std::panic::resume_unwind(e.into_panic());
                            }
                        }
                    }
                    this.done = true;
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (self.buf.len(), Some(self.buf.len()))
        } else {
            (self.buf.len(), None)
        }
    }
}

impl<T> FusedStream for RedisStreamSource<T> {
    fn is_terminated(&self) -> bool {
        self.done && self.buf.len() == 0
    }
}
