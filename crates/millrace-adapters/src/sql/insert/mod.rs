//! The batched-insert sink: [`BatchInsert`], and [`Claim`] for exactly-once delivery.

mod backend;
mod claim;
mod commit_each;
mod direct;
mod error;
mod lease;
mod row;

use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

use futures_util::stream::{Stream, StreamExt};
use millrace_core::ConfigError;
use millrace_core::positions::Position;
use sqlx::{Database, Pool};

pub use self::backend::Backend;
use self::backend::{DEFAULT_LEASE, SinkSql};

/// Types in the signature of [`Backend`]'s hidden method: not part of the API.
#[doc(hidden)]
pub mod internal {
    pub use super::backend::{
        CommitOutcome, CommitPlan, DirectWriter, Holder, OffsetsRow, Ops, SinkSql,
    };
}
pub use self::claim::Claim;
pub use self::commit_each::{CommitEach, IntoBatch};
pub use self::error::{Committed, InsertError, InsertReport};
pub use self::row::{InsertRow, RowValues};

/// The default number of rows per `INSERT` statement (a batch larger than this is inserted
/// with several statements, still in one transaction).
///
/// ```
/// assert_eq!(millrace::adapters::sql::DEFAULT_ROWS_PER_STATEMENT, 500);
/// ```
pub const DEFAULT_ROWS_PER_STATEMENT: usize = 500;

/// The default name of the table of committed positions (one row per pipeline and source).
///
/// ```
/// assert_eq!(millrace::adapters::sql::DEFAULT_OFFSETS_TABLE, "millrace_offsets");
/// ```
pub const DEFAULT_OFFSETS_TABLE: &str = "millrace_offsets";

/// The default name of the dead-letter table (`pipeline, source, position, reason`).
///
/// ```
/// assert_eq!(millrace::adapters::sql::DEFAULT_DEAD_LETTER_TABLE, "millrace_dead_letters");
/// ```
pub const DEFAULT_DEAD_LETTER_TABLE: &str = "millrace_dead_letters";

/// A sink that inserts batches of rows, **one transaction per batch**.
///
/// # Exactly once: [`claim`](Self::claim)
///
/// For a pipeline whose source reports positions (a
/// [`Tracked`](millrace_core::positions::Tracked) stream of
/// [`TrackedBatch`](millrace_core::positions::TrackedBatch)es), claim the pipeline first: the
/// [`Claim`] says where to resume, and commits every batch's rows, its dead letters and its
/// position **in one transaction**, in an offsets table keyed by pipeline and source. A crash
/// at any moment leaves either the whole batch with its position or neither, so a restart that
/// resumes after the committed position neither loses nor repeats a row, whatever the batch
/// boundaries or timings of either run. `ON CONFLICT` clauses are a second line of defence, not
/// the mechanism.
///
/// **One writer per pipeline, fenced.** The claim takes a lease (the holder's host and pid,
/// refreshed by a heartbeat) and increments the pipeline's *epoch*; every commit updates the
/// offsets row only if the epoch is still its own. A second process claiming a live pipeline is
/// refused with [`InsertError::Held`] naming the holder; a holder that died on this host (its
/// pid is gone) is taken over at once, one on another host after the lease (default 30 s) runs
/// out; a holder that was paused past its lease and wakes up finds its epoch gone and stops
/// with [`InsertError::Fenced`], its batch rolled back.
///
/// # Plain batches: [`run`](Self::run)
///
/// Without positions, [`run`](Self::run) inserts each `Vec` of rows in its own transaction
/// (at least once: give the rows a key and an `ON CONFLICT` clause to make a re-run
/// idempotent).
///
/// Works on [`Backend`]s: SQLite (the embedded default) and PostgreSQL. Table names and SQL
/// fragments are pasted into the statements as they are: pass trusted text, never user input.
///
/// # Examples
///
/// ```
/// use millrace::adapters::sql::BatchInsert;
/// use millrace::testing::tracked_source;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
/// sqlx::query("CREATE TABLE squares (n INTEGER PRIMARY KEY, sq INTEGER)").execute(&pool).await.unwrap();
/// let sink = BatchInsert::new(pool.clone(), "squares", "INSERT INTO squares (n, sq) ");
/// let numbers: Vec<i64> = (1..=10).collect();
///
/// // First run: the input has 4 numbers so far; batches of 2.
/// let claim = sink.claim::<u64>("numbers").await.unwrap();
/// let source = tracked_source(numbers[..4].to_vec(), claim.resume_after().copied());
/// claim.run(source.map(|n| (n, n * n)).batch(2)).await.unwrap();
///
/// // Second run, all 10 numbers, batches of 3: resumes after the committed position 4.
/// let claim = sink.claim::<u64>("numbers").await.unwrap();
/// assert_eq!(claim.resume_after(), Some(&4));
/// let source = tracked_source(numbers, claim.resume_after().copied());
/// let report = claim.run(source.map(|n| (n, n * n)).batch(3)).await.unwrap();
/// assert_eq!(report.rows_inserted, 6);
/// let total: i64 = sqlx::query_scalar("SELECT SUM(sq) FROM squares").fetch_one(&pool).await.unwrap();
/// assert_eq!(total, 385);
/// # }
/// ```
pub struct BatchInsert<DB: Database> {
    pool: Pool<DB>,
    pipeline: String,
    sql: SinkSql,
    lease: Duration,
}

impl<DB: Database> fmt::Debug for BatchInsert<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchInsert")
            .field("database", &DB::NAME)
            .field("pipeline", &self.pipeline)
            .field("sql", &self.sql)
            .field("lease", &self.lease)
            .finish()
    }
}

impl<DB: Database> Clone for BatchInsert<DB> {
    fn clone(&self) -> Self {
        BatchInsert {
            pool: self.pool.clone(),
            pipeline: self.pipeline.clone(),
            sql: self.sql.clone(),
            lease: self.lease,
        }
    }
}

impl<DB: Database> BatchInsert<DB> {
    /// A sink for pipeline `pipeline` (its key in the offsets table) that inserts with
    /// `insert`, the statement up to `VALUES`, e.g. `"INSERT INTO events (id, kind) "`.
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let sink = BatchInsert::new(pool, "events", "INSERT INTO events (id, kind) ");
    /// assert_eq!(sink.pipeline(), "events");
    /// # }
    /// ```
    pub fn new(pool: Pool<DB>, pipeline: impl Into<String>, insert: impl Into<String>) -> Self {
        BatchInsert {
            pool,
            pipeline: pipeline.into(),
            sql: SinkSql {
                insert: insert.into(),
                on_conflict: String::new(),
                rows_per_statement: DEFAULT_ROWS_PER_STATEMENT,
                offsets: DEFAULT_OFFSETS_TABLE.to_owned(),
                dead_letters: DEFAULT_DEAD_LETTER_TABLE.to_owned(),
            },
            lease: DEFAULT_LEASE,
        }
    }

    /// Appends `clause` after the `VALUES` list, e.g. `"ON CONFLICT (id) DO NOTHING"`, so that
    /// rows already present are dropped instead of failing the batch.
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let _sink = BatchInsert::new(pool, "events", "INSERT INTO events (id) ")
    ///     .on_conflict("ON CONFLICT (id) DO NOTHING");
    /// # }
    /// ```
    pub fn on_conflict(mut self, clause: impl Into<String>) -> Self {
        self.sql.on_conflict = clause.into();
        self
    }

    /// Uses `table` for the committed positions (default [`DEFAULT_OFFSETS_TABLE`]).
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let _sink = BatchInsert::new(pool, "events", "INSERT INTO events (id) ").offsets_table("etl_offsets");
    /// # }
    /// ```
    pub fn offsets_table(mut self, table: impl Into<String>) -> Self {
        self.sql.offsets = table.into();
        self
    }

    /// Uses `table` for dead letters (default [`DEFAULT_DEAD_LETTER_TABLE`]); it is written in
    /// the same transaction as the rows.
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let _sink = BatchInsert::new(pool, "events", "INSERT INTO events (id) ").dead_letter_table("bad_events");
    /// # }
    /// ```
    pub fn dead_letter_table(mut self, table: impl Into<String>) -> Self {
        self.sql.dead_letters = table.into();
        self
    }

    /// How long a claim stays valid without a sign of life from its holder (default 30 s; the
    /// holder refreshes it every third of that). A holder that died on this host is detected at
    /// once; this bounds the wait for one that died elsewhere.
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let _sink = BatchInsert::new(pool, "events", "INSERT INTO events (id) ").lease(Duration::from_secs(10));
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `lease` is under one second (the heartbeat could not keep up).
    #[track_caller]
    pub fn lease(mut self, lease: Duration) -> Self {
        assert!(
            lease >= Duration::from_secs(1),
            "`BatchInsert`: `lease` must be at least 1 s, got {lease:?}; pass a longer lease"
        );
        self.lease = lease;
        self
    }

    /// Sets the maximum rows per `INSERT` statement (default [`DEFAULT_ROWS_PER_STATEMENT`]).
    /// Keep `rows × columns` under the database's bind limit (SQLite 32,766; PostgreSQL
    /// 65,535).
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let _sink = BatchInsert::new(pool, "wide", "INSERT INTO wide VALUES ").rows_per_statement(50);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// Panics if `n` is 0, with the message of
    /// [`checked_rows_per_statement`](Self::checked_rows_per_statement)'s error.
    #[track_caller]
    pub fn rows_per_statement(self, n: usize) -> Self {
        match self.checked_rows_per_statement(n) {
            Ok(sink) => sink,
            Err(e) => panic!("{e}"),
        }
    }

    /// Sets the maximum rows per statement, or returns a [`ConfigError`] if `n` is 0.
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let err = BatchInsert::new(pool, "t", "INSERT INTO t VALUES ").checked_rows_per_statement(0).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "`BatchInsert`: `rows_per_statement` must be at least 1, got 0; pass a non-zero value"
    /// );
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if `n` is 0.
    pub fn checked_rows_per_statement(mut self, n: usize) -> Result<Self, ConfigError> {
        self.sql.rows_per_statement = NonZeroUsize::new(n)
            .ok_or_else(|| ConfigError::zero("BatchInsert", "rows_per_statement"))?
            .get();
        Ok(self)
    }

    /// Renamed [`checked_rows_per_statement`](Self::checked_rows_per_statement).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_rows_per_statement`")]
    pub fn try_rows_per_statement(self, n: usize) -> Result<Self, ConfigError> {
        self.checked_rows_per_statement(n)
    }

    /// The pipeline's name (its key in the offsets table).
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// assert_eq!(BatchInsert::new(pool, "x", "INSERT INTO x VALUES ").pipeline(), "x");
    /// # }
    /// ```
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }
}

impl<DB: Backend> BatchInsert<DB> {
    /// Creates the offsets and dead-letter tables if they do not exist ([`claim`](Self::claim)
    /// does this first).
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// BatchInsert::new(pool.clone(), "t", "INSERT INTO t VALUES ").prepare().await.unwrap();
    /// let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM millrace_offsets").fetch_one(&pool).await.unwrap();
    /// assert_eq!(n, 0);
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// sqlx's error if a statement fails.
    pub async fn prepare(&self) -> Result<(), sqlx::Error> {
        DB::ops().prepare(&self.pool, &self.sql).await
    }

    /// Claims the pipeline for `source` (a name for the input, e.g. its file name): takes the
    /// lease, and reads the committed position to resume after. See the [type docs](Self).
    ///
    /// ```
    /// use millrace::adapters::sql::{BatchInsert, InsertError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let sink = BatchInsert::new(pool, "events", "INSERT INTO events (id) ");
    /// let claim = sink.claim::<u64>("events.log").await.unwrap();
    /// assert_eq!(claim.resume_after(), None); // nothing committed yet
    /// // A second claim while the first is alive is refused, naming the holder.
    /// let err = sink.claim::<u64>("events.log").await.unwrap_err();
    /// assert!(matches!(err, InsertError::Held { .. }));
    /// assert!(err.to_string().contains(&format!("pid {}", std::process::id())));
    /// claim.release().await.unwrap();
    /// assert!(sink.claim::<u64>("events.log").await.is_ok());
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`InsertError::Held`] if a live process holds the pipeline, [`InsertError::Setup`] if
    /// the tables cannot be created or read, [`InsertError::BadPosition`] if the stored
    /// position is not a `P`.
    pub async fn claim<P: Position>(&self, source: &str) -> Result<Claim<DB, P>, InsertError> {
        Claim::acquire(self.clone(), source.to_owned()).await
    }

    /// Inserts one batch of rows in one transaction, without positions (at least once).
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY)").execute(&pool).await.unwrap();
    /// let sink = BatchInsert::new(pool, "t", "INSERT INTO t (id) ").on_conflict("ON CONFLICT (id) DO NOTHING");
    /// assert_eq!(sink.insert_batch(&[(1_i64,), (2,)]).await.unwrap(), 2);
    /// assert_eq!(sink.insert_batch(&[(2_i64,), (3,)]).await.unwrap(), 1);
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// sqlx's error; the transaction was rolled back.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future rolls the transaction back: the batch is committed whole or not at
    /// all.
    pub async fn insert_batch<T: InsertRow<DB>>(&self, rows: &[T]) -> Result<u64, sqlx::Error> {
        DB::insert_batch(&self.pool, &self.sql, rows).await
    }

    /// Inserts every batch of `batches`, one transaction each, without positions (at least
    /// once; see the [type docs](Self) for exactly once).
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    /// use futures::stream;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// sqlx::query("CREATE TABLE t (id INTEGER)").execute(&pool).await.unwrap();
    /// let sink = BatchInsert::new(pool, "t", "INSERT INTO t (id) ");
    /// let report = sink.run(stream::iter([vec![(1_i64,)], vec![(2,), (3,)]])).await.unwrap();
    /// assert_eq!((report.batches_committed, report.rows_inserted), (2, 3));
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`InsertError::Batch`] for the first batch that fails (rolled back; the ones before it
    /// are committed).
    pub async fn run<S, T>(&self, batches: S) -> Result<InsertReport, InsertError>
    where
        S: Stream<Item = Vec<T>>,
        T: InsertRow<DB>,
    {
        let mut report = InsertReport::default();
        let mut batches = std::pin::pin!(batches);
        while let Some(batch) = batches.next().await {
            match self.insert_batch(&batch).await {
                Ok(inserted) => {
                    report.batches_committed += 1;
                    report.rows_inserted += inserted;
                    report.rows_ignored += (batch.len() as u64).saturating_sub(inserted);
                }
                Err(source) => return Err(InsertError::Batch { report, source }),
            }
        }
        Ok(report)
    }
}
