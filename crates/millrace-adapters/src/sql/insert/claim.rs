//! [`Claim`]: one writer's hold on a pipeline, and its exactly-once commits.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use futures_util::stream::{FusedStream, Stream, StreamExt};
use millrace_core::positions::{Accounting, Position, Tracked, TrackedBatch};
use pin_project_lite::pin_project;
use sqlx::{Database, Encode, Executor, IntoArguments, Type};

use super::backend::{self, Backend, CommitOutcome, CommitPlan, DirectWriter, Holder};
use super::direct::OwnedPlan;
use super::{BatchInsert, Committed, InsertError, InsertReport, InsertRow};

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

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// This machine's name, to tell holders on this host (whose liveness can be checked) from
/// others (whose lease must run out).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Whether process `pid` of this host is alive. Where that cannot be known (not Linux), it is
/// assumed alive and the lease has to run out.
fn pid_alive(pid: i64) -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses; a zombie has exited.
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next()),
            Some('Z' | 'X')
        ),
        Err(_) => false,
    }
}

/// The claim's heartbeat task, and the release of a claim dropped without
/// [`Claim::release`].
struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
    /// Set when the claim was released (or lost): nothing to do on drop.
    released: bool,
    release: Option<BoxFuture<'static, ()>>,
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
        // A dropped claim frees the pipeline on the runtime, best effort: a claim in the same
        // process right after may still find it held (await `release` to be sure); a crash
        // leaves it to the liveness check or the lease.
        if let (false, Some(release), Ok(runtime)) = (
            self.released,
            self.release.take(),
            tokio::runtime::Handle::try_current(),
        ) {
            runtime.spawn(release);
        }
    }
}

/// A writer's hold on a pipeline, from [`BatchInsert::claim`]: says where to resume, and
/// commits tracked batches exactly once (rows, dead letters and position in one transaction,
/// fenced by the claim's epoch). Dropping it stops its heartbeat; [`release`](Self::release)
/// (or the end of [`run`](Self::run) / [`commit_each`](Self::commit_each)) frees the pipeline
/// for the next run at once.
pub struct Claim<DB: Database, P> {
    sink: BatchInsert<DB>,
    source: String,
    epoch: i64,
    position: Option<P>,
    report: InsertReport,
    lost: Arc<AtomicBool>,
    heartbeat: Heartbeat,
    /// The SQLite writer thread of `commit_each` (opened by its first poll), if any.
    writer: Option<DirectWriter>,
}

impl<DB: Database, P: fmt::Debug> fmt::Debug for Claim<DB, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claim")
            .field("pipeline", &self.sink.pipeline)
            .field("source", &self.source)
            .field("epoch", &self.epoch)
            .field("position", &self.position)
            .field("report", &self.report)
            .finish()
    }
}

impl<DB, P> Claim<DB, P>
where
    DB: Backend,
    P: Position,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    pub(super) async fn acquire(
        sink: BatchInsert<DB>,
        source: String,
    ) -> Result<Self, InsertError> {
        let ops = DB::ops();
        let setup = |source| InsertError::Setup { source };
        ops.prepare(&sink.pool, &sink.sql).await.map_err(setup)?;
        let me = Holder {
            host: host_name(),
            pid: i64::from(std::process::id()),
        };
        let lease_ms = i64::try_from(sink.lease.as_millis()).unwrap_or(i64::MAX);
        // A lost race (another claim changed the epoch between our read and our update, or a
        // commit of the previous holder moved the position, e.g. one finishing on its writer
        // thread after its claim was dropped) is read again: it then shows the winner as the
        // live holder, or the position to resume after.
        for _ in 0..3 {
            let row = ops
                .read_offsets(&sink.pool, &sink.sql, &sink.pipeline, &source)
                .await
                .map_err(setup)?
                .unwrap_or_default();
            let now = now_ms();
            let age = now.saturating_sub(row.heartbeat_ms);
            let free = row.holder_pid == 0
                || age > lease_ms
                || (row.holder_host == me.host && !pid_alive(row.holder_pid));
            if !free {
                return Err(InsertError::Held {
                    pipeline: sink.pipeline.clone(),
                    source_name: source,
                    holder: row.holder,
                    heartbeat_age: Duration::from_millis(u64::try_from(age).unwrap_or(0)),
                    lease: sink.lease,
                });
            }
            let taken = ops
                .take_over(
                    &sink.pool,
                    &sink.sql,
                    &sink.pipeline,
                    &source,
                    row.epoch,
                    &row.position,
                    &me,
                    now,
                )
                .await
                .map_err(setup)?;
            if !taken {
                continue;
            }
            let position = if row.position.is_empty() {
                None
            } else {
                Some(
                    P::from_text(&row.position).ok_or_else(|| InsertError::BadPosition {
                        pipeline: sink.pipeline.clone(),
                        source_name: source.clone(),
                        stored: row.position.clone(),
                    })?,
                )
            };
            let epoch = row.epoch + 1;
            let lost = Arc::new(AtomicBool::new(false));
            let release = {
                let (sink, source) = (sink.clone(), source.clone());
                Box::pin(async move {
                    let _ = DB::ops()
                        .heartbeat(
                            &sink.pool,
                            &sink.sql,
                            &sink.pipeline,
                            &source,
                            epoch,
                            now_ms(),
                            true,
                        )
                        .await;
                }) as BoxFuture<'static, ()>
            };
            let heartbeat = Heartbeat {
                task: tokio::spawn(beat(sink.clone(), source.clone(), epoch, Arc::clone(&lost))),
                released: false,
                release: Some(release),
            };
            return Ok(Claim {
                sink,
                source,
                epoch,
                position,
                report: InsertReport::default(),
                lost,
                heartbeat,
                writer: None,
            });
        }
        let row = ops
            .read_offsets(&sink.pool, &sink.sql, &sink.pipeline, &source)
            .await
            .map_err(setup)?
            .unwrap_or_default();
        Err(InsertError::Held {
            pipeline: sink.pipeline.clone(),
            source_name: source,
            holder: row.holder,
            heartbeat_age: Duration::from_millis(
                u64::try_from(now_ms().saturating_sub(row.heartbeat_ms)).unwrap_or(0),
            ),
            lease: sink.lease,
        })
    }

    /// The committed position to resume after (`None`: nothing committed, start at the
    /// beginning). After commits of this claim, the last position committed.
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let claim = BatchInsert::new(pool, "p", "INSERT INTO t (x) ").claim::<u64>("s").await.unwrap();
    /// assert_eq!(claim.resume_after(), None);
    /// # }
    /// ```
    pub fn resume_after(&self) -> Option<&P> {
        self.position.as_ref()
    }

    /// The claim's epoch: incremented by every claim of the pipeline; a commit succeeds only
    /// while it is current.
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let sink = BatchInsert::new(pool, "p", "INSERT INTO t (x) ");
    /// let first = sink.claim::<u64>("s").await.unwrap();
    /// assert_eq!(first.epoch(), 1);
    /// first.release().await.unwrap();
    /// assert_eq!(sink.claim::<u64>("s").await.unwrap().epoch(), 2);
    /// # }
    /// ```
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// What this claim committed so far.
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let claim = BatchInsert::new(pool, "p", "INSERT INTO t (x) ").claim::<u64>("s").await.unwrap();
    /// assert_eq!(claim.report().batches_committed, 0);
    /// # }
    /// ```
    pub fn report(&self) -> InsertReport {
        self.report
    }

    /// Commits one batch: its rows, its dead letters and its position, in one transaction,
    /// only while this claim's epoch is current. The position never moves backwards.
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    /// use millrace::positions::{Positioned, TrackedBatch};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// sqlx::query("CREATE TABLE t (x INTEGER)").execute(&pool).await.unwrap();
    /// let sink = BatchInsert::new(pool.clone(), "p", "INSERT INTO t (x) ");
    /// let mut claim = sink.claim::<u64>("s").await.unwrap();
    /// let batch = TrackedBatch::from_entries(vec![
    ///     Positioned::item(1u64, (10_i64,)),
    ///     Positioned::dead(2, "no x"),
    /// ]).unwrap();
    /// let done = claim.commit(&batch).await.unwrap();
    /// assert_eq!((done.rows_inserted, done.dead_lettered, done.position), (1, 1, 2));
    /// let reason: String = sqlx::query_scalar("SELECT reason FROM millrace_dead_letters").fetch_one(&pool).await.unwrap();
    /// assert_eq!(reason, "no x");
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`InsertError::Batch`] (rolled back; commit again or run again), or
    /// [`InsertError::Fenced`] if another process took the pipeline over.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future rolls the transaction back.
    pub async fn commit<T: InsertRow<DB>>(
        &mut self,
        batch: &TrackedBatch<P, T>,
    ) -> Result<Committed<P>, InsertError> {
        if self.lost.load(Ordering::Relaxed) {
            return Err(self.fenced());
        }
        let position = later(self.position.as_ref(), batch.position());
        let plan = CommitPlan {
            pipeline: &self.sink.pipeline,
            source: &self.source,
            epoch: self.epoch,
            position: position.to_text(),
            now_ms: now_ms(),
            dead_letters: batch
                .dead_letters()
                .iter()
                .map(|d| (d.position.to_text(), d.reason.as_str()))
                .collect(),
            filtered: batch.filtered(),
        };
        let outcome = backend::commit(&self.sink.pool, &self.sink.sql, &plan, batch.items()).await;
        self.record(position, Counts::of(batch), outcome)
    }

    /// Books the outcome of a commit of `counts` at `position`.
    fn record(
        &mut self,
        position: P,
        counts: Counts,
        outcome: Result<CommitOutcome, sqlx::Error>,
    ) -> Result<Committed<P>, InsertError> {
        match outcome {
            Ok(CommitOutcome::Committed { rows_inserted }) => {
                self.report.batches_committed += 1;
                self.report.rows_inserted += rows_inserted;
                self.report.rows_ignored += counts.rows.saturating_sub(rows_inserted);
                self.report.dead_lettered += counts.dead_lettered;
                self.report.filtered += counts.filtered;
                self.position = Some(position.clone());
                Ok(Committed {
                    position,
                    rows: counts.rows,
                    rows_inserted,
                    dead_lettered: counts.dead_lettered,
                    filtered: counts.filtered,
                })
            }
            Ok(CommitOutcome::Fenced) => {
                self.lost.store(true, Ordering::Relaxed);
                Err(self.fenced())
            }
            Err(source) => Err(InsertError::Batch {
                report: self.report,
                source,
            }),
        }
    }

    fn fenced(&self) -> InsertError {
        InsertError::Fenced {
            pipeline: self.sink.pipeline.clone(),
            source_name: self.source.clone(),
            epoch: self.epoch,
            report: self.report,
        }
    }

    /// Frees the pipeline (the next claim need not wait for this process to exit or its lease
    /// to run out). Committed data and position stay.
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let sink = BatchInsert::new(pool, "p", "INSERT INTO t (x) ");
    /// sink.claim::<u64>("s").await.unwrap().release().await.unwrap();
    /// assert!(sink.claim::<u64>("s").await.is_ok());
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// sqlx's error (the lease then runs out by itself).
    pub async fn release(mut self) -> Result<(), sqlx::Error> {
        self.heartbeat.released = true;
        DB::ops()
            .heartbeat(
                &self.sink.pool,
                &self.sink.sql,
                &self.sink.pipeline,
                &self.source,
                self.epoch,
                now_ms(),
                true,
            )
            .await
            .map(drop)
    }
}

impl<DB, P> Claim<DB, P>
where
    DB: Backend,
    P: Position,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
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

/// The later of the position committed so far and a batch's: the position never moves
/// backwards.
fn later<P: Position>(so_far: Option<&P>, batch: &P) -> P {
    match so_far {
        Some(at) if *at > *batch => at.clone(),
        _ => batch.clone(),
    }
}

/// What a batch holds, for the report and the accounting.
#[derive(Debug, Clone, Copy)]
struct Counts {
    rows: u64,
    dead_lettered: u64,
    filtered: u64,
}

impl Counts {
    fn of<P, T>(batch: &TrackedBatch<P, T>) -> Self {
        Counts {
            rows: batch.items().len() as u64,
            dead_lettered: batch.dead_letters().len() as u64,
            filtered: batch.filtered(),
        }
    }
}

/// Refreshes the claim's heartbeat every third of the lease; marks the claim lost if its epoch
/// is no longer current.
async fn beat<DB>(sink: BatchInsert<DB>, source: String, epoch: i64, lost: Arc<AtomicBool>)
where
    DB: Backend,
{
    let mut tick = tokio::time::interval(sink.lease / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let beat = DB::ops().heartbeat(
            &sink.pool,
            &sink.sql,
            &sink.pipeline,
            &source,
            epoch,
            now_ms(),
            false,
        );
        // A failed heartbeat is retried on the next tick; the commit's epoch check is what
        // keeps the data safe.
        if let Ok(false) = beat.await {
            lost.store(true, Ordering::Relaxed);
            return;
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
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
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
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    let counts = Counts::of(&batch);
    let outcome = if claim.lost.load(Ordering::Relaxed) {
        Box::pin(std::future::ready(Ok(CommitOutcome::Fenced))) as BoxFuture<'static, _>
    } else if let Some(writer) = &claim.writer {
        let plan = OwnedPlan {
            pipeline: claim.sink.pipeline.clone(),
            source: claim.source.clone(),
            epoch: claim.epoch,
            position: position.to_text(),
            now_ms: now_ms(),
        };
        DB::commit_on_writer(writer, &claim.sink.sql, plan, batch)
    } else {
        let (pool, sql) = (claim.sink.pool.clone(), claim.sink.sql.clone());
        let (pipeline, source, epoch) = (
            claim.sink.pipeline.clone(),
            claim.source.clone(),
            claim.epoch,
        );
        let position = position.to_text();
        Box::pin(async move {
            let plan = CommitPlan {
                pipeline: &pipeline,
                source: &source,
                epoch,
                position,
                now_ms: now_ms(),
                dead_letters: batch
                    .dead_letters()
                    .iter()
                    .map(|d| (d.position.to_text(), d.reason.as_str()))
                    .collect(),
                filtered: batch.filtered(),
            };
            backend::commit(&pool, &sql, &plan, batch.items()).await
        })
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
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
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
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    fn is_terminated(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }
}
