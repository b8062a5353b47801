//! [`Claim`]: one writer's hold on a pipeline, and its exactly-once commits one batch at a time.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use millrace_core::positions::{Position, TrackedBatch};
use sqlx::Database;

use super::backend::{Backend, CommitOutcome, CommitPlan, DirectWriter, Holder};
use super::lease::{Heartbeat, host_name, now_ms, pid_alive, refresh};
use super::{BatchInsert, Committed, InsertError, InsertReport, InsertRow};

/// A writer's hold on a pipeline, from [`BatchInsert::claim`]: says where to resume, and
/// commits tracked batches exactly once (rows, dead letters and position in one transaction,
/// fenced by the claim's epoch). Dropping it stops its heartbeat; [`release`](Self::release)
/// (or the end of [`run`](Self::run) / [`commit_each`](Self::commit_each)) frees the pipeline
/// for the next run at once.
pub struct Claim<DB: Database, P> {
    pub(super) sink: BatchInsert<DB>,
    pub(super) source: String,
    pub(super) epoch: i64,
    pub(super) position: Option<P>,
    pub(super) report: InsertReport,
    pub(super) lost: Arc<AtomicBool>,
    pub(super) heartbeat: Heartbeat,
    /// The SQLite writer thread of `commit_each` (opened by its first poll), if any.
    pub(super) writer: Option<DirectWriter>,
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
            let heartbeat = Heartbeat::start(&sink, &source, epoch, Arc::clone(&lost));
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
        let plan = self.plan(&position);
        let outcome = DB::commit(&self.sink.pool, &self.sink.sql, &plan, batch).await;
        self.record(position, Counts::of(batch), outcome)
    }

    /// Books the outcome of a commit of `counts` at `position`.
    pub(super) fn record(
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

    /// What a commit at `position` writes besides the batch.
    pub(super) fn plan(&self, position: &P) -> CommitPlan {
        CommitPlan {
            pipeline: self.sink.pipeline.clone(),
            source: self.source.clone(),
            epoch: self.epoch,
            position: position.to_text(),
            now_ms: now_ms(),
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
        refresh(&self.sink, &self.source, self.epoch, true)
            .await
            .map(drop)
    }
}

/// The later of the position committed so far and a batch's: the position never moves
/// backwards.
pub(super) fn later<P: Position>(so_far: Option<&P>, batch: &P) -> P {
    match so_far {
        Some(at) if *at > *batch => at.clone(),
        _ => batch.clone(),
    }
}

/// What a batch holds, for the report and the accounting.
#[derive(Debug, Clone, Copy)]
pub(super) struct Counts {
    pub(super) rows: u64,
    pub(super) dead_lettered: u64,
    pub(super) filtered: u64,
}

impl Counts {
    pub(super) fn of<P, T>(batch: &TrackedBatch<P, T>) -> Self {
        Counts {
            rows: batch.items().len() as u64,
            dead_lettered: batch.dead_letters().len() as u64,
            filtered: batch.filtered(),
        }
    }
}
