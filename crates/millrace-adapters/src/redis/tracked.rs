//! The tracked form of the source: positions are entry ids, and the ack is the source's commit.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use millrace_core::positions::{CountRead, Positioned, Tracked, TrackedBatch};
use millrace_core::{FusedStream, Stream};

use super::ack::Acker;
use super::entry::{AckToken, EntryId};
use super::error::{DecodeError, RedisStreamError};
use super::source::RedisStreamSource;

/// The entries a tracked source delivered and that are not acknowledged yet, in delivery order.
#[derive(Debug, Default)]
struct Ledger {
    tokens: VecDeque<AckToken>,
    /// The ids in `tokens`: a redelivery of an entry still held is not delivered twice.
    ids: HashSet<EntryId>,
    /// The error that ended the source, for [`BatchAcker::commit_then_ack`] to report.
    failure: Option<RedisStreamError>,
}

type Shared = Arc<Mutex<Ledger>>;

fn lock(ledger: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    // No critical section can panic half-way through an update.
    ledger.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T> RedisStreamSource<T> {
    /// The **tracked** form of the source: a [`Tracked`] stream whose positions are entry ids
    /// ([`EntryId`] is a [`Position`](millrace_core::positions::Position)), and the
    /// [`BatchAcker`] that acknowledges, after their commit, exactly the entries of each batch.
    ///
    /// Each entry becomes one positioned item: `Ok(value)`, or `Err(DecodeError)` for an entry
    /// the decoder rejected (turn those into dead letters with
    /// [`dead_letter_errors`](Tracked::dead_letter_errors); they are acknowledged with their
    /// batch like any other entry). Filtered entries are acknowledged with their batch too.
    /// An entry redelivered while this source still holds it (after a reconnect, or reclaimed
    /// from itself) is not delivered twice. An error that ends the source (the server stayed
    /// unreachable, …) ends the tracked stream; [`BatchAcker::commit_then_ack`] returns it.
    ///
    /// Batch with [`batch_within`](Tracked::batch_within) (size **or** time): the source holds
    /// at most its [`capacity`](super::RedisStreamSourceBuilder::capacity) of unacknowledged
    /// entries and (with [`end_when_drained`](super::RedisStreamSourceBuilder::end_when_drained))
    /// ends only when nothing is pending, so a size-only batch waiting for more entries would
    /// wait forever.
    ///
    /// See the [module docs](super) for the contract and an example.
    pub fn tracked(self) -> (Tracked<CountRead<TrackedEntries<T>>>, BatchAcker) {
        let ledger = Shared::default();
        let acker = BatchAcker {
            acker: self.acker(),
            ledger: Arc::clone(&ledger),
        };
        let entries = TrackedEntries {
            source: self,
            ledger,
            done: false,
        };
        (Tracked::new(entries), acker)
    }
}

/// The stream inside [`RedisStreamSource::tracked`]: every entry as a positioned item at its
/// id, its ack token kept for the [`BatchAcker`].
#[must_use = "streams do nothing unless polled"]
pub struct TrackedEntries<T> {
    source: RedisStreamSource<T>,
    ledger: Shared,
    done: bool,
}

impl<T> TrackedEntries<T> {
    /// The source inside.
    pub fn get_ref(&self) -> &RedisStreamSource<T> {
        &self.source
    }
}

impl<T> fmt::Debug for TrackedEntries<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackedEntries")
            .field("source", &self.source)
            .field("unacknowledged", &lock(&self.ledger).tokens.len())
            .field("done", &self.done)
            .finish()
    }
}

impl<T> Stream for TrackedEntries<T> {
    type Item = Positioned<EntryId, Result<T, DecodeError>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let (token, value) = match ready!(Pin::new(&mut this.source).poll_next(cx)) {
                None => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Some(Ok(delivery)) => {
                    let (value, token) = delivery.into_parts();
                    (token, Ok(value))
                }
                Some(Err(RedisStreamError::Malformed { reason, token, .. })) => {
                    (token, Err(reason))
                }
                Some(Err(e)) => {
                    lock(&this.ledger).failure = Some(e);
                    this.done = true;
                    return Poll::Ready(None);
                }
            };
            let id = token.id();
            let mut ledger = lock(&this.ledger);
            if !ledger.ids.insert(id) {
                // Still held from an earlier delivery: that one will be committed and acked.
                continue;
            }
            ledger.tokens.push_back(token);
            return Poll::Ready(Some(Positioned::item(id, value)));
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done { (0, Some(0)) } else { (0, None) }
    }
}

impl<T> FusedStream for TrackedEntries<T> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

/// Acknowledges the entries of a [tracked](RedisStreamSource::tracked) source **after** their
/// batch was committed: the ack is the source's commit. From [`RedisStreamSource::tracked`].
///
/// A batch's entries are its items, dead letters and filtered entries: everything the source
/// delivered up to the batch's [position](TrackedBatch::position) (in delivery order; after
/// `map_concurrent_unordered` that position is the low-water mark, so an entry still in
/// flight is not acknowledged before it is done). Batches must be acknowledged in order;
/// [`commit_then_ack`](Self::commit_then_ack) does it for you.
///
/// Cheap to clone; `Send + Sync`.
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
/// RedisStreamSink::connect(&client, &stream).await?.send_batch((1..=5).map(|n| [("n", n)])).await?;
/// let (entries, acks) = RedisStreamSource::builder(client.clone(), &stream, "doc", "c1")
///     .end_when_drained(Duration::from_millis(100))
///     .connect(|entry| entry.parse::<u32>("n"))
///     .await?
///     .tracked();
/// let mut batches = entries.dead_letter_errors().batch_within(3, Duration::from_millis(50));
/// while let Some(batch) = batches.next().await {
///     // … commit `batch.items()` keyed by `batch.positions()` (entry ids), then:
///     assert_eq!(acks.ack(&batch).await?, batch.entries());
/// }
/// assert_eq!(acks.unacknowledged(), 0);
/// # let mut c = client.get_multiplexed_async_connection().await?;
/// # let _: () = millrace::adapters::redis::client::cmd("DEL").arg(&stream).query_async(&mut c).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct BatchAcker {
    acker: Acker,
    ledger: Shared,
}

impl fmt::Debug for BatchAcker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchAcker")
            .field("unacknowledged", &self.unacknowledged())
            .finish_non_exhaustive()
    }
}

impl BatchAcker {
    /// Entries delivered by the tracked source and not acknowledged yet.
    pub fn unacknowledged(&self) -> usize {
        lock(&self.ledger).tokens.len()
    }

    /// Acknowledges (XACK, one round trip) the entries of `batch`: every entry delivered up to
    /// its position. Call it only after the batch was committed. Returns how many entries the
    /// server removed from the pending list (an entry reclaimed and acknowledged by another
    /// consumer meanwhile does not count).
    ///
    /// A position this acker already passed acknowledges nothing (a batch after an unordered
    /// stage whose low-water mark did not move).
    ///
    /// # Errors
    ///
    /// Those of [`Acker::ack`]: the entries then stay pending and are delivered again (to a
    /// sink keyed by entry id, harmlessly).
    pub async fn ack<T>(&self, batch: &TrackedBatch<EntryId, T>) -> Result<u64, RedisStreamError> {
        self.ack_through(*batch.position()).await
    }

    async fn ack_through(&self, position: EntryId) -> Result<u64, RedisStreamError> {
        let tokens: Vec<AckToken> = {
            let mut ledger = lock(&self.ledger);
            let Some(at) = ledger.tokens.iter().position(|t| t.id() == position) else {
                return Ok(0);
            };
            let tokens: Vec<AckToken> = ledger.tokens.drain(..=at).collect();
            for t in &tokens {
                ledger.ids.remove(&t.id());
            }
            tokens
        };
        self.acker.ack(tokens).await
    }

    /// Drives a tracked pipeline of batches to its end: **commits** each batch with `commit`
    /// (e.g. a transaction keyed by entry id), records it in the pipeline's accounting, then
    /// **acknowledges** its entries. Returns the totals; the accounting
    /// (`batches.accounting()`, taken before) then balances.
    ///
    /// A crash between a commit and its ack leaves the entries pending: they are delivered
    /// again and committed again, so the commit must be idempotent by entry id (`HSETNX`,
    /// `INSERT … ON CONFLICT (entry_id) DO NOTHING`). See the [module docs](super).
    ///
    /// # Errors
    ///
    /// The first failure, after which nothing more is committed or acknowledged (the entries
    /// not acknowledged stay pending and are delivered again): [`CommitAckError::Commit`] if
    /// `commit` failed, [`CommitAckError::Ack`] if the acknowledgement failed,
    /// [`CommitAckError::Source`] if the source ended with an error.
    pub async fn commit_then_ack<S, T, F, Fut, E>(
        &self,
        batches: Tracked<S>,
        mut commit: F,
    ) -> Result<AckReport, CommitAckError<E>>
    where
        S: Stream<Item = TrackedBatch<EntryId, T>>,
        F: FnMut(TrackedBatch<EntryId, T>) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let accounting = batches.accounting();
        let mut batches = std::pin::pin!(batches);
        let mut report = AckReport::default();
        while let Some(batch) = poll_fn(|cx| batches.as_mut().poll_next(cx)).await {
            let position = *batch.position();
            let (items, dead, filtered) = (
                batch.items().len() as u64,
                batch.dead_letters().len() as u64,
                batch.filtered(),
            );
            if let Err(source) = commit(batch).await {
                return Err(CommitAckError::Commit { source, report });
            }
            accounting.record(items, dead, filtered);
            report.batches += 1;
            report.committed += items;
            report.dead_lettered += dead;
            report.filtered += filtered;
            match self.ack_through(position).await {
                Ok(acked) => report.acked += acked,
                Err(source) => return Err(CommitAckError::Ack { source, report }),
            }
        }
        match lock(&self.ledger).failure.take() {
            Some(source) => Err(CommitAckError::Source { source, report }),
            None => Ok(report),
        }
    }
}

/// The totals of [`BatchAcker::commit_then_ack`].
///
/// ```
/// use millrace::adapters::redis::AckReport;
///
/// let report = AckReport::default();
/// assert_eq!(report.committed + report.dead_lettered + report.filtered, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AckReport {
    /// Batches committed and acknowledged.
    pub batches: u64,
    /// Items committed.
    pub committed: u64,
    /// Dead letters committed.
    pub dead_lettered: u64,
    /// Filtered entries (acknowledged with their batch).
    pub filtered: u64,
    /// Entries the server removed from the pending list (fewer than the entries committed when
    /// another consumer reclaimed and acknowledged some of them meanwhile).
    pub acked: u64,
}

/// Why [`BatchAcker::commit_then_ack`] stopped. Entries not acknowledged stay pending in the
/// group and are delivered again: nothing is lost.
///
/// ```
/// use millrace::adapters::redis::{AckReport, CommitAckError};
///
/// let err = CommitAckError::Commit { source: "disk full", report: AckReport::default() };
/// assert_eq!(
///     err.to_string(),
///     "committing a batch failed after 0 batches: disk full; its entries were not \
///      acknowledged and will be delivered again: fix the sink and run again"
/// );
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum CommitAckError<E> {
    /// The commit of a batch failed; its entries were not acknowledged.
    Commit {
        /// The commit's error.
        source: E,
        /// What was committed and acknowledged before.
        report: AckReport,
    },
    /// A batch was committed but its acknowledgement failed.
    Ack {
        /// The acker's error.
        source: RedisStreamError,
        /// What was committed before (the failing batch included).
        report: AckReport,
    },
    /// The source ended with an error (e.g. the server stayed unreachable).
    Source {
        /// The source's error.
        source: RedisStreamError,
        /// What was committed and acknowledged before.
        report: AckReport,
    },
}

impl<E> CommitAckError<E> {
    /// What was committed before the failure.
    pub fn report(&self) -> AckReport {
        match self {
            CommitAckError::Commit { report, .. }
            | CommitAckError::Ack { report, .. }
            | CommitAckError::Source { report, .. } => *report,
        }
    }
}

impl<E: fmt::Display> fmt::Display for CommitAckError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommitAckError::Commit { source, report } => write!(
                f,
                "committing a batch failed after {} batches: {source}; its entries were not \
                 acknowledged and will be delivered again: fix the sink and run again",
                report.batches
            ),
            CommitAckError::Ack { source, report } => write!(
                f,
                "batch {} was committed but acknowledging it failed: {source}; its entries \
                 will be delivered again, which a sink keyed by entry id absorbs",
                report.batches
            ),
            CommitAckError::Source { source, report } => write!(
                f,
                "the stream source failed after {} committed batches: {source}; run again \
                 once the server is reachable: unacknowledged entries are still pending",
                report.batches
            ),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CommitAckError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CommitAckError::Commit { source, .. } => Some(source),
            CommitAckError::Ack { source, .. } | CommitAckError::Source { source, .. } => {
                Some(source)
            }
        }
    }
}
