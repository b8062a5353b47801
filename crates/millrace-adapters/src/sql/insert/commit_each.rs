//! [`Claim::commit_each`] and [`Claim::run`]: a tracked stream's batches committed as they
//! arrive, the next one sent while the one before it commits.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};

use futures_util::future::BoxFuture;
use futures_util::stream::{FusedStream, Stream, StreamExt};
use millrace_core::positions::{Accounting, Position, Tracked, TrackedBatch};
use pin_project_lite::pin_project;
use sqlx::Database;

use super::backend::{Backend, CommitOutcome, DirectWriter};
use super::claim::{Claim, Counts, later};
use super::{Committed, InsertError, InsertReport, InsertRow};

/// What a [`Claim`] commits: a [`TrackedBatch`], or a `Result` of one (an upstream error ends
/// the commits with [`InsertError::Upstream`]).
///
/// ```
/// use millrace::adapters::sql::IntoBatch;
/// use millrace::positions::{Positioned, TrackedBatch};
///
/// let batch = TrackedBatch::from_entries(vec![Positioned::item(1u64, (1_i64,))]).unwrap();
/// assert!(IntoBatch::into_batch(Ok::<_, String>(batch)).is_ok());
/// ```
pub trait IntoBatch<P, T> {
    /// The upstream's error type.
    type Error;

    /// The batch, or the upstream's error.
    ///
    /// # Errors
    ///
    /// The upstream's error, if this item is one.
    fn into_batch(self) -> Result<TrackedBatch<P, T>, Self::Error>;
}

impl<P, T> IntoBatch<P, T> for TrackedBatch<P, T> {
    type Error = Infallible;

    fn into_batch(self) -> Result<TrackedBatch<P, T>, Infallible> {
        Ok(self)
    }
}

impl<P, T, E> IntoBatch<P, T> for Result<TrackedBatch<P, T>, E> {
    type Error = E;

    fn into_batch(self) -> Result<TrackedBatch<P, T>, E> {
        self
    }
}

impl<DB, P> Claim<DB, P>
where
    DB: Backend,
    P: Position,
{
    /// Commits every batch of a tracked stream as it arrives (one transaction each), records
    /// each in the stream's [`Accounting`], and releases the pipeline at the end. A stream of
    /// the commits, for progress and metering; [`run`](Self::run) drives it to the end.
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    /// use millrace::testing::tracked_source;
    /// use futures::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// sqlx::query("CREATE TABLE t (x INTEGER)").execute(&pool).await.unwrap();
    /// let claim = BatchInsert::new(pool, "p", "INSERT INTO t (x) ").claim::<u64>("s").await.unwrap();
    /// let source = tracked_source(vec![1_i64, 2, 3], claim.resume_after().copied());
    /// let positions: Vec<u64> = claim
    ///     .commit_each(source.map(|x| (x,)).batch(2))
    ///     .map(|c| c.unwrap().position)
    ///     .collect()
    ///     .await;
    /// assert_eq!(positions, [2, 3]);
    /// # }
    /// ```
    pub fn commit_each<S, T>(self, batches: Tracked<S>) -> CommitEach<DB, P, S, T>
    where
        S: Stream,
        S::Item: IntoBatch<P, T>,
        T: InsertRow<DB> + Send + Sync + 'static,
    {
        let accounting = batches.accounting();
        let pool = self.sink.pool.clone();
        CommitEach {
            upstream: batches,
            accounting,
            report: self.report,
            position: self.position.clone(),
            planned: self.position.clone(),
            claim: Some(Box::new(self)),
            in_flight: VecDeque::new(),
            upstream_done: false,
            upstream_error: None,
            phase: Phase::Opening(Box::pin(async move { DB::open_writer(&pool).await })),
            _rows: std::marker::PhantomData,
        }
    }

    /// Commits every batch of a tracked stream ([`commit_each`](Self::commit_each)) and
    /// returns the totals.
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    /// use millrace::testing::tracked_source;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// sqlx::query("CREATE TABLE t (x INTEGER)").execute(&pool).await.unwrap();
    /// let claim = BatchInsert::new(pool, "p", "INSERT INTO t (x) ").claim::<u64>("s").await.unwrap();
    /// let source = tracked_source(vec![1_i64, -2, 3], None);
    /// let accounting = source.accounting();
    /// let report = claim
    ///     .run(source.validate(|x| if *x < 0 { Err("negative") } else { Ok(()) }).map(|x| (x,)).batch(2))
    ///     .await
    ///     .unwrap();
    /// assert_eq!((report.rows_inserted, report.dead_lettered), (2, 1));
    /// assert!(accounting.check().is_ok());
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// The first [`InsertError`]; everything before it is committed.
    pub async fn run<S, T>(
        self,
        batches: Tracked<S>,
    ) -> Result<InsertReport, InsertError<<S::Item as IntoBatch<P, T>>::Error>>
    where
        S: Stream,
        S::Item: IntoBatch<P, T>,
        T: InsertRow<DB> + Send + Sync + 'static,
    {
        let mut commits = std::pin::pin!(self.commit_each(batches));
        let mut failed = None;
        // After an error the stream releases the claim, then ends: drive it to the end.
        while let Some(commit) = commits.next().await {
            if let Err(e) = commit {
                failed.get_or_insert(e);
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(commits.report()),
        }
    }
}

/// Commits sent and not yet answered, at most this many: the one committing and the next one,
/// ready (on the SQLite writer thread: queued, so the thread goes on at once).
const COMMITS_IN_FLIGHT: usize = 2;

/// One commit sent: its position, what it holds, and its outcome to come. Through the pool the
/// future starts when it is polled, and only the oldest is polled, so those commits run one at a
/// time in order; on the writer thread it was queued when it was made, and the thread runs
/// them in order.
struct InFlight<P> {
    position: P,
    counts: Counts,
    outcome: BoxFuture<'static, Result<CommitOutcome, sqlx::Error>>,
}

enum Phase {
    /// Starting the SQLite writer thread (or finding there is none for this database).
    Opening(BoxFuture<'static, Option<DirectWriter>>),
    Running,
    Releasing(BoxFuture<'static, ()>),
    Done,
}

pin_project! {
    /// Stream for [`Claim::commit_each`]: one item per committed batch, in order; the first
    /// error is the last item.
    ///
    /// While a batch commits, the next one is taken from upstream and sent (bounded: two
    /// commits in flight at most). Commits still run one at a time, in order, each with its
    /// own position, and after a failed commit no later batch of the stream commits.
    #[must_use = "streams do nothing unless polled"]
    pub struct CommitEach<DB: Database, P, S: Stream, T>
    where
        S::Item: IntoBatch<P, T>,
    {
        #[pin]
        upstream: Tracked<S>,
        accounting: Accounting,
        report: InsertReport,
        position: Option<P>,
        // The position of the last batch sent (commits never move it backwards).
        planned: Option<P>,
        claim: Option<Box<Claim<DB, P>>>,
        in_flight: VecDeque<InFlight<P>>,
        upstream_done: bool,
        upstream_error: Option<<S::Item as IntoBatch<P, T>>::Error>,
        phase: Phase,
        _rows: std::marker::PhantomData<fn(T)>,
    }
}

impl<DB: Database, P: fmt::Debug, S: Stream, T> fmt::Debug for CommitEach<DB, P, S, T>
where
    S::Item: IntoBatch<P, T>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.phase {
            Phase::Opening(_) => "opening",
            Phase::Running if self.in_flight.is_empty() => "idle",
            Phase::Running => "committing",
            Phase::Releasing(_) => "releasing",
            Phase::Done => "done",
        };
        f.debug_struct("CommitEach")
            .field("state", &state)
            .field("in_flight", &self.in_flight.len())
            .field("report", &self.report)
            .field("position", &self.position)
            .field("accounting", &self.accounting.counts())
            .finish()
    }
}

impl<DB: Database, P, S: Stream, T> CommitEach<DB, P, S, T>
where
    S::Item: IntoBatch<P, T>,
{
    /// What was committed so far.
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    /// use millrace::testing::tracked_source;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let claim = BatchInsert::new(pool, "p", "INSERT INTO t (x) ").claim::<u64>("s").await.unwrap();
    /// let commits = claim.commit_each(tracked_source(vec![(1_i64,)], None).batch(1));
    /// assert_eq!(commits.report().batches_committed, 0);
    /// # }
    /// ```
    pub fn report(&self) -> InsertReport {
        self.report
    }

    /// The last committed position (or the one resumed after).
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    /// use millrace::testing::tracked_source;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let claim = BatchInsert::new(pool, "p", "INSERT INTO t (x) ").claim::<u64>("s").await.unwrap();
    /// let commits = claim.commit_each(tracked_source(vec![(1_i64,)], None).batch(1));
    /// assert_eq!(commits.position(), None);
    /// # }
    /// ```
    pub fn position(&self) -> Option<&P> {
        self.position.as_ref()
    }

    /// The accounting of the tracked stream being committed.
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    /// use millrace::testing::tracked_source;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let claim = BatchInsert::new(pool, "p", "INSERT INTO t (x) ").claim::<u64>("s").await.unwrap();
    /// let commits = claim.commit_each(tracked_source(vec![(1_i64,)], None).batch(1));
    /// assert_eq!(commits.accounting().read(), 0);
    /// # }
    /// ```
    pub fn accounting(&self) -> &Accounting {
        &self.accounting
    }
}

/// Frees the pipeline (best effort: if this fails the lease runs out by itself).
fn release<DB, P>(claim: Option<Box<Claim<DB, P>>>) -> BoxFuture<'static, ()>
where
    DB: Backend,
    P: Position,
{
    Box::pin(async move {
        if let Some(claim) = claim {
            let _ = claim.release().await;
        }
    })
}

/// Sends the commit of `batch` (on the writer thread, or as a future on the pool).
fn send<DB, P, T>(claim: &Claim<DB, P>, position: P, batch: TrackedBatch<P, T>) -> InFlight<P>
where
    DB: Backend,
    P: Position,
    T: InsertRow<DB> + Send + Sync + 'static,
{
    let counts = Counts::of(&batch);
    let outcome = if claim.lost.load(Ordering::Relaxed) {
        Box::pin(std::future::ready(Ok(CommitOutcome::Fenced))) as BoxFuture<'static, _>
    } else if let Some(writer) = &claim.writer {
        DB::commit_on_writer(writer, &claim.sink.sql, claim.plan(&position), batch)
    } else {
        let (pool, sql) = (claim.sink.pool.clone(), claim.sink.sql.clone());
        DB::commit_owned(pool, sql, claim.plan(&position), batch)
    };
    InFlight {
        position,
        counts,
        outcome,
    }
}

impl<DB, P, S, T> Stream for CommitEach<DB, P, S, T>
where
    DB: Backend,
    P: Position,
    S: Stream,
    S::Item: IntoBatch<P, T>,
    T: InsertRow<DB> + Send + Sync + 'static,
{
    type Item = Result<Committed<P>, InsertError<<S::Item as IntoBatch<P, T>>::Error>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            match this.phase {
                Phase::Opening(open) => {
                    let writer = ready!(open.as_mut().poll(cx));
                    if let Some(claim) = this.claim.as_mut() {
                        claim.writer = writer;
                    }
                    *this.phase = Phase::Running;
                }
                Phase::Running => {
                    // The oldest commit's outcome, in order.
                    if let Some(oldest) = this.in_flight.front_mut()
                        && let Poll::Ready(outcome) = oldest.outcome.as_mut().poll(cx)
                    {
                        let done = this.in_flight.pop_front().expect("polled above");
                        let claim = this
                            .claim
                            .as_mut()
                            .expect("a running CommitEach holds its claim");
                        let result = claim.record(done.position, done.counts, outcome);
                        *this.report = claim.report();
                        match result {
                            Ok(committed) => {
                                this.accounting.record(
                                    done.counts.rows,
                                    done.counts.dead_lettered,
                                    done.counts.filtered,
                                );
                                *this.position = Some(committed.position.clone());
                                return Poll::Ready(Some(Ok(committed)));
                            }
                            Err(e) => {
                                // No later batch commits: through the pool their futures are
                                // dropped unpolled; the writer thread refuses them. A fenced
                                // claim's release is a no-op (its epoch check).
                                this.in_flight.clear();
                                *this.phase = Phase::Releasing(release(this.claim.take()));
                                return Poll::Ready(Some(Err(
                                    e.map_upstream(|never| match never {})
                                )));
                            }
                        }
                    }
                    // The next batch, while the ones before it commit.
                    if !*this.upstream_done
                        && this.upstream_error.is_none()
                        && this.in_flight.len() < COMMITS_IN_FLIGHT
                        && let Poll::Ready(item) = this.upstream.as_mut().poll_next(cx)
                    {
                        match item {
                            Some(item) => match item.into_batch() {
                                Ok(batch) => {
                                    let claim = this
                                        .claim
                                        .as_ref()
                                        .expect("a running CommitEach holds its claim");
                                    let position = later(this.planned.as_ref(), batch.position());
                                    *this.planned = Some(position.clone());
                                    this.in_flight.push_back(send(claim, position, batch));
                                }
                                Err(source) => *this.upstream_error = Some(source),
                            },
                            None => *this.upstream_done = true,
                        }
                        continue;
                    }
                    if this.in_flight.is_empty() {
                        if let Some(source) = this.upstream_error.take() {
                            *this.phase = Phase::Releasing(release(this.claim.take()));
                            return Poll::Ready(Some(Err(InsertError::Upstream {
                                report: *this.report,
                                source,
                            })));
                        }
                        if *this.upstream_done {
                            *this.phase = Phase::Releasing(release(this.claim.take()));
                            continue;
                        }
                    }
                    return Poll::Pending;
                }
                Phase::Releasing(release) => {
                    ready!(release.as_mut().poll(cx));
                    *this.phase = Phase::Done;
                    return Poll::Ready(None);
                }
                Phase::Done => return Poll::Ready(None),
            }
        }
    }
}

impl<DB, P, S, T> FusedStream for CommitEach<DB, P, S, T>
where
    DB: Backend,
    P: Position,
    S: Stream,
    S::Item: IntoBatch<P, T>,
    T: InsertRow<DB> + Send + Sync + 'static,
{
    fn is_terminated(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }
}
