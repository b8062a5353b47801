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
use super::conn::{ReconnectPolicy, connect, is_transient, with_retry};
use super::entry::{AckToken, Delivery, EntryId, RawEntry, Shared};
use super::error::RedisStreamError;
use super::reply;

type Item<T> = Result<Delivery<T>, RedisStreamError>;

/// Configuration of a [`RedisStreamSource`]; made by [`RedisStreamSource::builder`].
#[derive(Debug, Clone)]
pub struct RedisStreamSourceBuilder {
    client: Client,
    stream: String,
    group: String,
    consumer: String,
    capacity: usize,
    read_count: usize,
    block: Duration,
    claim_idle: Option<Duration>,
    claim_interval: Option<Duration>,
    start_id: String,
    reconnect: ReconnectPolicy,
    end_when_drained: Option<Duration>,
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

/// Capacity units taken from the semaphore and not yet handed to tokens; given back on drop.
struct Held<'a> {
    shared: &'a Shared,
    n: usize,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.n > 0 {
            self.shared.permits.add_permits(self.n);
        }
    }
}

struct Reader<T, F> {
    read_conn: ConnectionManager,
    ctl_conn: ConnectionManager,
    cfg: RedisStreamSourceBuilder,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Vec<Item<T>>>,
    decode: F,
    /// `Some(after)`: re-reading this consumer's own pending entries (at start and after every
    /// reconnect, because a lost XREADGROUP reply may have delivered entries we never saw).
    history: Option<EntryId>,
    claim_cursor: EntryId,
    next_claim: Instant,
    claim_interval: Duration,
    drained_since: Option<Instant>,
}

enum Step {
    Continue,
    End,
}

impl<T, F> Reader<T, F>
where
    T: Send + 'static,
    F: FnMut(RawEntry) -> Result<T, super::DecodeError> + Send + 'static,
{
    async fn run(mut self) {
        let mut failing_since: Option<Instant> = None;
        let mut attempt = 0u32;
        loop {
            match self.step().await {
                Ok(Step::Continue) => {
                    failing_since = None;
                    attempt = 0;
                }
                Ok(Step::End) => return,
                Err(e) if is_transient(&e) => {
                    // The reply may have been lost after the server delivered entries to us:
                    // re-read our own pending list once the connection is back.
                    self.history = Some(EntryId::new(0, 0));
                    self.shared
                        .reconnects
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.cfg.reconnect.give_up() {
                        let _ = self
                            .tx
                            .send(vec![Err(RedisStreamError::GaveUp {
                                command: "XREADGROUP",
                                stream: self.cfg.stream.clone(),
                                attempts: attempt + 1,
                                source: e,
                            })])
                            .await;
                        return;
                    }
                    tokio::time::sleep(self.cfg.reconnect.delay(attempt)).await;
                    attempt = attempt.saturating_add(1);
                }
                Err(e) if e.code() == Some("NOGROUP") => {
                    // The server lost the group (restart without persistence, or someone
                    // destroyed it): create it again and go on.
                    let cfg = &self.cfg;
                    if let Err(err) = create_group(
                        &self.ctl_conn,
                        &cfg.stream,
                        &cfg.group,
                        &cfg.start_id,
                        &cfg.reconnect,
                    )
                    .await
                    {
                        let _ = self.tx.send(vec![Err(err)]).await;
                        return;
                    }
                }
                Err(e) => {
                    let _ = self
                        .tx
                        .send(vec![Err(RedisStreamError::Redis {
                            command: "XREADGROUP",
                            stream: self.cfg.stream.clone(),
                            source: e,
                        })])
                        .await;
                    return;
                }
            }
        }
    }

    /// One read (or claim) of at most the free capacity.
    async fn step(&mut self) -> Result<Step, redis::RedisError> {
        let shared = self.shared.clone();
        // Back-pressure: wait for one free unit, then take whatever else is free right now.
        let Ok(first) = shared.permits.acquire().await else {
            return Ok(Step::End);
        };
        first.forget();
        let mut held = Held {
            shared: &shared,
            n: 1,
        };
        let extra = shared
            .permits
            .available_permits()
            .min(self.cfg.read_count - 1);
        if extra > 0 {
            if let Ok(p) = shared.permits.try_acquire_many(extra as u32) {
                p.forget();
                held.n += extra;
            }
        }

        if let Some(idle) = self.cfg.claim_idle {
            if Instant::now() >= self.next_claim {
                let claimed = self.claim(idle, held.n).await?;
                if !claimed.is_empty() {
                    self.drained_since = None;
                    return Ok(self.deliver(claimed, &mut held).await);
                }
            }
        }

        let (id_arg, block) = match self.history {
            Some(after) => (after.to_string(), None),
            None => {
                let until_claim = if self.cfg.claim_idle.is_some() {
                    self.next_claim.saturating_duration_since(Instant::now())
                } else {
                    self.cfg.block
                };
                let ms = self.cfg.block.min(until_claim).as_millis().max(1);
                (">".to_owned(), Some(ms))
            }
        };
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.cfg.group)
            .arg(&self.cfg.consumer)
            .arg("COUNT")
            .arg(held.n);
        if let Some(ms) = block {
            cmd.arg("BLOCK").arg(ms as u64);
        }
        cmd.arg("STREAMS").arg(&self.cfg.stream).arg(&id_arg);
        let value: Value = cmd.query_async(&mut self.read_conn).await?;
        let entries = match reply::read_reply(value) {
            Ok(e) => e,
            Err(reply) => return Ok(self.unexpected("XREADGROUP", reply).await),
        };
        if self.history.is_some() {
            match entries.last() {
                None => self.history = None,
                Some((last, _)) => self.history = Some(*last),
            }
            if entries.is_empty() {
                return Ok(Step::Continue);
            }
        } else if entries.is_empty() {
            return self.check_drained().await;
        }
        self.drained_since = None;
        Ok(self.deliver(entries, &mut held).await)
    }

    async fn claim(
        &mut self,
        idle: Duration,
        count: usize,
    ) -> Result<reply::Entries, redis::RedisError> {
        let value: Value = redis::cmd("XAUTOCLAIM")
            .arg(&self.cfg.stream)
            .arg(&self.cfg.group)
            .arg(&self.cfg.consumer)
            .arg(idle.as_millis() as u64)
            .arg(self.claim_cursor)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.ctl_conn)
            .await?;
        match reply::autoclaim_reply(value) {
            Ok((cursor, entries)) => {
                self.claim_cursor = cursor;
                if cursor == EntryId::new(0, 0) {
                    // A full pass over the pending list: rest until the next interval.
                    self.next_claim = Instant::now() + self.claim_interval;
                }
                Ok(entries)
            }
            Err(reply) => {
                let _ = self.unexpected("XAUTOCLAIM", reply).await;
                self.next_claim = Instant::now() + self.claim_interval;
                Ok(Vec::new())
            }
        }
    }

    async fn check_drained(&mut self) -> Result<Step, redis::RedisError> {
        let Some(grace) = self.cfg.end_when_drained else {
            return Ok(Step::Continue);
        };
        let value: Value = redis::cmd("XPENDING")
            .arg(&self.cfg.stream)
            .arg(&self.cfg.group)
            .query_async(&mut self.ctl_conn)
            .await?;
        let pending = match reply::pending_count(value) {
            Ok(n) => n,
            Err(reply) => return Ok(self.unexpected("XPENDING", reply).await),
        };
        if pending > 0 {
            self.drained_since = None;
            return Ok(Step::Continue);
        }
        let since = *self.drained_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= grace {
            Ok(Step::End)
        } else {
            Ok(Step::Continue)
        }
    }

    async fn unexpected(&mut self, command: &'static str, reply: String) -> Step {
        let _ = self
            .tx
            .send(vec![Err(RedisStreamError::UnexpectedReply {
                command,
                reply,
            })])
            .await;
        Step::End
    }

    async fn deliver(&mut self, entries: reply::Entries, held: &mut Held<'_>) -> Step {
        let mut chunk = Vec::with_capacity(entries.len());
        self.shared
            .live
            .fetch_add(entries.len(), std::sync::atomic::Ordering::Relaxed);
        for (id, fields) in entries {
            debug_assert!(held.n > 0, "never more entries than COUNT");
            held.n -= 1;
            let token = AckToken::new(id, self.shared.clone());
            let item = match fields {
                Some(fields) => match (self.decode)(RawEntry::new(id, fields)) {
                    Ok(value) => Ok(Delivery::new(value, token)),
                    Err(reason) => Err(malformed(&self.shared, id, reason, token)),
                },
                None => Err(malformed(
                    &self.shared,
                    id,
                    super::DecodeError::new("the entry was deleted from the stream while pending"),
                    token,
                )),
            };
            chunk.push(item);
        }
        if self.tx.send(chunk).await.is_err() {
            return Step::End; // the source was dropped
        }
        Step::Continue
    }
}

fn malformed(
    shared: &Shared,
    id: EntryId,
    reason: super::DecodeError,
    token: AckToken,
) -> RedisStreamError {
    RedisStreamError::Malformed {
        stream: shared.stream.clone(),
        id,
        reason,
        token,
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
