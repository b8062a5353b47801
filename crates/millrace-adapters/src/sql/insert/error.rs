//! What the sink reports: [`InsertReport`], [`Committed`] and [`InsertError`].

use std::convert::Infallible;
use std::fmt;
use std::time::Duration;

/// The totals of one run of a sink ([`BatchInsert::run`](super::BatchInsert::run) or a
/// [`Claim`](super::Claim)).
///
/// ```
/// use millrace::adapters::sql::InsertReport;
///
/// let report = InsertReport::default();
/// assert_eq!(report.batches_committed + report.rows_inserted, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InsertReport {
    /// Batches committed by this run (each in its own transaction).
    pub batches_committed: u64,
    /// Rows inserted by this run.
    pub rows_inserted: u64,
    /// Rows of committed batches that were not inserted (dropped by an `ON CONFLICT … DO
    /// NOTHING` clause: already in the table).
    pub rows_ignored: u64,
    /// Dead letters written by this run.
    pub dead_lettered: u64,
    /// Filtered entries whose positions this run committed.
    pub filtered: u64,
}

/// One batch committed by a [`Claim`](super::Claim): what its transaction wrote.
///
/// ```
/// use millrace::adapters::sql::Committed;
///
/// let c = Committed { position: 10u64, rows: 3, rows_inserted: 3, dead_lettered: 1, filtered: 0 };
/// assert_eq!(c.rows - c.rows_inserted, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed<P> {
    /// The position committed with the batch: a restart resumes after it.
    pub position: P,
    /// Rows in the batch.
    pub rows: u64,
    /// Rows inserted (fewer than `rows` when `ON CONFLICT DO NOTHING` dropped some).
    pub rows_inserted: u64,
    /// Dead letters written.
    pub dead_lettered: u64,
    /// Filtered entries of the batch.
    pub filtered: u64,
}

/// An error of the batched-insert sink. Every batch before the failing one is committed (see
/// [`report`](Self::report)); the failing batch was rolled back as a whole, so running again
/// resumes after the last committed position and loses nothing.
///
/// ```
/// use millrace::adapters::sql::{BatchInsert, InsertError};
/// use futures::stream;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
/// let sink = BatchInsert::new(pool, "events", "INSERT INTO no_such_table (id) ");
/// let err = sink.run(stream::iter([vec![(1_i64,)]])).await.unwrap_err();
/// assert!(matches!(err, InsertError::Batch { .. }));
/// assert!(err.to_string().contains("no such table"));
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum InsertError<E = Infallible> {
    /// The sink's tables (offsets, dead letters) could not be created or read.
    Setup {
        /// sqlx's error.
        source: sqlx::Error,
    },
    /// Another process holds the pipeline: its lease is alive.
    Held {
        /// The pipeline.
        pipeline: String,
        /// The source.
        source_name: String,
        /// Who holds it (`pid N on HOST`).
        holder: String,
        /// How long ago it last proved alive.
        heartbeat_age: Duration,
        /// How long a silent holder keeps the lease.
        lease: Duration,
    },
    /// This run lost the pipeline to another process while it ran (its lease expired and was
    /// taken over); the batch was rolled back and nothing more is written by this run.
    Fenced {
        /// The pipeline.
        pipeline: String,
        /// The source.
        source_name: String,
        /// This run's epoch, which is no longer current.
        epoch: i64,
        /// What this run committed before.
        report: InsertReport,
    },
    /// The stored position is not one this source can read (a different source type wrote it).
    BadPosition {
        /// The pipeline.
        pipeline: String,
        /// The source.
        source_name: String,
        /// The stored text.
        stored: String,
    },
    /// A batch failed and was rolled back.
    Batch {
        /// What was committed before it.
        report: InsertReport,
        /// sqlx's error.
        source: sqlx::Error,
    },
    /// The upstream yielded an error in place of a batch.
    Upstream {
        /// What was committed before it.
        report: InsertReport,
        /// The upstream's error.
        source: E,
    },
}

impl<E> InsertError<E> {
    /// What was committed before the error (empty when nothing ran).
    ///
    /// ```
    /// use millrace::adapters::sql::InsertError;
    ///
    /// let err: InsertError = InsertError::Setup { source: sqlx::Error::PoolClosed };
    /// assert_eq!(err.report().batches_committed, 0);
    /// ```
    pub fn report(&self) -> InsertReport {
        match self {
            InsertError::Batch { report, .. }
            | InsertError::Upstream { report, .. }
            | InsertError::Fenced { report, .. } => *report,
            _ => InsertReport::default(),
        }
    }

    /// The same error with the upstream's error mapped by `f`.
    ///
    /// ```
    /// use millrace::adapters::sql::{InsertError, InsertReport};
    ///
    /// let err: InsertError<u8> = InsertError::Upstream { report: InsertReport::default(), source: 4 };
    /// assert!(matches!(err.map_upstream(|e| e * 2), InsertError::Upstream { source: 8, .. }));
    /// ```
    pub fn map_upstream<F>(self, f: impl FnOnce(E) -> F) -> InsertError<F> {
        match self {
            InsertError::Setup { source } => InsertError::Setup { source },
            InsertError::Held {
                pipeline,
                source_name,
                holder,
                heartbeat_age,
                lease,
            } => InsertError::Held {
                pipeline,
                source_name,
                holder,
                heartbeat_age,
                lease,
            },
            InsertError::Fenced {
                pipeline,
                source_name,
                epoch,
                report,
            } => InsertError::Fenced {
                pipeline,
                source_name,
                epoch,
                report,
            },
            InsertError::BadPosition {
                pipeline,
                source_name,
                stored,
            } => InsertError::BadPosition {
                pipeline,
                source_name,
                stored,
            },
            InsertError::Batch { report, source } => InsertError::Batch { report, source },
            InsertError::Upstream { report, source } => InsertError::Upstream {
                report,
                source: f(source),
            },
        }
    }
}

impl<E: fmt::Display> fmt::Display for InsertError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InsertError::Setup { source } => write!(
                f,
                "batch insert: cannot create or read the offsets and dead-letter tables: \
                 {source}; check the connection and the permission to create tables"
            ),
            InsertError::Held {
                pipeline,
                source_name,
                holder,
                heartbeat_age,
                lease,
            } => write!(
                f,
                "batch insert: pipeline `{pipeline}` (source `{source_name}`) is being written \
                 by {holder} (alive {:.1} s ago); two writers of one pipeline would race, so \
                 this run was refused: wait for it to finish or stop it; if it died on another \
                 machine its lease expires {} s after its last sign of life",
                heartbeat_age.as_secs_f64(),
                lease.as_secs()
            ),
            InsertError::Fenced {
                pipeline,
                source_name,
                epoch,
                report,
            } => write!(
                f,
                "batch insert: pipeline `{pipeline}` (source `{source_name}`) was taken over by \
                 another process while this run (epoch {epoch}) was writing; the batch was \
                 rolled back and this run stopped ({} batches committed before): let the other \
                 run finish, then run again if needed",
                report.batches_committed
            ),
            InsertError::BadPosition {
                pipeline,
                source_name,
                stored,
            } => write!(
                f,
                "batch insert: the committed position of pipeline `{pipeline}` (source \
                 `{source_name}`) is `{stored}`, which this source cannot read; it was written \
                 by a different kind of source: use another pipeline name"
            ),
            InsertError::Batch { report, source } => write!(
                f,
                "batch insert: a batch failed and was rolled back ({} batches committed \
                 before it): {source}; fix the cause and run again, it resumes after the last \
                 committed position",
                report.batches_committed
            ),
            InsertError::Upstream { report, source } => write!(
                f,
                "batch insert: the input failed ({} batches committed before): {source}; run \
                 again, it resumes after the last committed position",
                report.batches_committed
            ),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for InsertError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InsertError::Setup { source } | InsertError::Batch { source, .. } => Some(source),
            InsertError::Upstream { source, .. } => Some(source),
            _ => None,
        }
    }
}
