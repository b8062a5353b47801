//! The batched-insert sink: [`BatchInsert`], [`InsertRow`], [`InsertReport`], [`InsertError`].

use std::convert::Infallible;
use std::fmt;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_util::future::BoxFuture;
use futures_util::stream::{FusedStream, Stream, StreamExt};
use millrace_core::ConfigError;
use pin_project_lite::pin_project;
use sqlx::error::BoxDynError;
use sqlx::{Arguments, Database, Encode, Executor, IntoArguments, Pool, Type};

/// The databases [`BatchInsert`] supports: those whose SQL has `INSERT … ON CONFLICT … DO
/// NOTHING` ([`Sqlite`](sqlx::Sqlite) and [`Postgres`](sqlx::Postgres)). Sealed.
///
/// sqlx has no database-generic "rows affected"; this trait supplies it.
///
/// ```
/// use millrace::adapters::sql::Backend;
///
/// fn supported<DB: Backend>() {}
/// supported::<sqlx::Sqlite>();
/// supported::<sqlx::Postgres>();
/// ```
pub trait Backend: Database + sealed::Sealed {
    /// The number of rows a statement inserted, updated or deleted.
    ///
    /// ```
    /// use millrace::adapters::sql::Backend;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let done = sqlx::query("CREATE TABLE t (x INTEGER)").execute(&pool).await.unwrap();
    /// assert_eq!(<sqlx::Sqlite as Backend>::rows_affected(&done), 0);
    /// # }
    /// ```
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for sqlx::Sqlite {}
    impl Sealed for sqlx::Postgres {}
}

impl Backend for sqlx::Sqlite {
    fn rows_affected(result: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

impl Backend for sqlx::Postgres {
    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// How a row binds its values into a multi-row `INSERT … VALUES (…), (…)` statement.
///
/// Bind one value per column, in the column order of [`BatchInsert::new`]'s statement.
/// Tuples of up to six bindable values implement it already.
///
/// ```
/// use millrace::adapters::sql::{BatchInsert, InsertRow, RowValues};
/// use futures::stream;
///
/// struct Book { id: i64, title: String }
///
/// impl InsertRow<sqlx::Sqlite> for Book {
///     fn push_values<'args>(&'args self, values: &mut RowValues<'_, 'args, sqlx::Sqlite>) {
///         values.bind(self.id).bind(&self.title);
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
/// sqlx::query("CREATE TABLE books (id INTEGER, title TEXT)").execute(&pool).await.unwrap();
/// let batch = vec![Book { id: 1, title: "Dune".into() }, Book { id: 2, title: "Emma".into() }];
/// let report = BatchInsert::new(pool, "books", "INSERT INTO books (id, title) ")
///     .run(stream::iter([batch]))
///     .await
///     .unwrap();
/// assert_eq!(report.rows_inserted, 2);
/// # }
/// ```
pub trait InsertRow<DB: Database> {
    /// Binds this row's values (`values.bind(…)` once per column).
    fn push_values<'args>(&'args self, values: &mut RowValues<'_, 'args, DB>);
}

/// The values of one row of a multi-row `INSERT`, handed to [`InsertRow::push_values`]: each
/// [`bind`](Self::bind) adds a placeholder (`?` or `$n`) and its value.
///
/// ```
/// use millrace::adapters::sql::{BatchInsert, InsertRow, RowValues};
/// use futures::stream;
///
/// struct Pair(i64, Option<String>);
///
/// // Generic over the backend: any database that can bind these column types.
/// impl<DB: sqlx::Database> InsertRow<DB> for Pair
/// where
///     for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
///     for<'a> Option<&'a str>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
/// {
///     fn push_values<'args>(&'args self, values: &mut RowValues<'_, 'args, DB>) {
///         values.bind(self.0).bind(self.1.as_deref());
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
/// sqlx::query("CREATE TABLE pairs (n INTEGER, label TEXT)").execute(&pool).await.unwrap();
/// let batch = vec![Pair(1, Some("one".into())), Pair(2, None)];
/// BatchInsert::new(pool.clone(), "pairs", "INSERT INTO pairs (n, label) ")
///     .run(stream::iter([batch]))
///     .await
///     .unwrap();
/// let nulls: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pairs WHERE label IS NULL")
///     .fetch_one(&pool).await.unwrap();
/// assert_eq!(nulls, 1);
/// # }
/// ```
pub struct RowValues<'a, 'args, DB: Database> {
    sql: &'a mut String,
    args: &'a mut DB::Arguments<'args>,
    first: bool,
    error: &'a mut Option<BoxDynError>,
}

impl<'args, DB: Database> RowValues<'_, 'args, DB> {
    /// Adds one column value (a placeholder in the statement and its bound value).
    ///
    /// ```
    /// use millrace::adapters::sql::{BatchInsert, InsertRow, RowValues};
    /// use futures::stream;
    ///
    /// struct Reading { sensor: String, celsius: f64 }
    ///
    /// impl InsertRow<sqlx::Sqlite> for Reading {
    ///     fn push_values<'args>(&'args self, values: &mut RowValues<'_, 'args, sqlx::Sqlite>) {
    ///         values.bind(self.sensor.as_str()).bind(self.celsius);
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// sqlx::query("CREATE TABLE readings (sensor TEXT, celsius REAL)").execute(&pool).await.unwrap();
    /// let batch = vec![Reading { sensor: "roof".into(), celsius: 21.5 }];
    /// let sink = BatchInsert::new(pool, "readings", "INSERT INTO readings (sensor, celsius) ");
    /// assert_eq!(sink.run(stream::iter([batch])).await.unwrap().rows_inserted, 1);
    /// # }
    /// ```
    pub fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'args + Encode<'args, DB> + Type<DB>,
    {
        if !self.first {
            self.sql.push_str(", ");
        }
        self.first = false;
        if let Err(e) = self.args.add(value) {
            // Reported as `sqlx::Error::Encode` before the statement runs.
            self.error.get_or_insert(e);
        }
        // Writing into a `String` cannot fail.
        let _ = self.args.format_placeholder(self.sql);
        self
    }
}

impl<DB: Database> fmt::Debug for RowValues<'_, '_, DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowValues")
            .field("sql", &self.sql)
            .field("bound", &self.args.len())
            .finish_non_exhaustive()
    }
}

/// What happened to one batch in [`BatchInsert::insert_batch`].
///
/// ```
/// use millrace::adapters::sql::BatchOutcome;
///
/// let outcome = BatchOutcome::Committed { rows_inserted: 3 };
/// assert_ne!(outcome, BatchOutcome::AlreadyCommitted);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// The batch was inserted and committed now.
    Committed {
        /// Rows the statements inserted (fewer than the batch's rows when `ON CONFLICT DO
        /// NOTHING` dropped some).
        rows_inserted: u64,
    },
    /// A batch with this key was committed before (an earlier run); nothing was written.
    AlreadyCommitted,
}

/// The totals of a [`BatchInsert::run`].
///
/// ```
/// use millrace::adapters::sql::InsertReport;
///
/// let report = InsertReport::default();
/// assert_eq!(report.batches_committed + report.batches_skipped, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InsertReport {
    /// Batches inserted and committed by this run.
    pub batches_committed: u64,
    /// Rows inserted by this run.
    pub rows_inserted: u64,
    /// Rows of committed batches that were not inserted (dropped by `ON CONFLICT DO NOTHING`).
    pub rows_ignored: u64,
    /// Batches skipped because a previous run had committed them.
    pub batches_skipped: u64,
    /// The sequence number the next batch would get: pass it to [`BatchInsert::start_at`]
    /// to continue after the last batch seen.
    pub next_seq: u64,
}

/// An error of [`BatchInsert::run`] / [`BatchInsert::try_run`]. Every batch before `seq` is
/// committed (see `report`); batch `seq` was rolled back as a whole. Running the same batches
/// again is safe: committed batches are skipped.
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
/// assert!(matches!(err, InsertError::Batch { seq: 0, .. }));
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum InsertError<E = Infallible> {
    /// The ledger table could not be created.
    Setup {
        /// sqlx's error.
        source: sqlx::Error,
    },
    /// Batch `seq` failed and was rolled back.
    Batch {
        /// The batch's sequence number.
        seq: u64,
        /// What was committed before it.
        report: InsertReport,
        /// sqlx's error.
        source: sqlx::Error,
    },
    /// The upstream yielded an error in place of batch `seq`.
    Upstream {
        /// The sequence number the batch would have had.
        seq: u64,
        /// What was committed before it.
        report: InsertReport,
        /// The upstream's error.
        source: E,
    },
}

impl<E> InsertError<E> {
    /// What was committed before the error (empty for [`Setup`](InsertError::Setup)).
    ///
    /// ```
    /// use millrace::adapters::sql::InsertError;
    ///
    /// let err: InsertError = InsertError::Setup { source: sqlx::Error::PoolClosed };
    /// assert_eq!(err.report().batches_committed, 0);
    /// ```
    pub fn report(&self) -> InsertReport {
        match self {
            InsertError::Setup { .. } => InsertReport::default(),
            InsertError::Batch { report, .. } | InsertError::Upstream { report, .. } => *report,
        }
    }
}

impl<E: fmt::Display> fmt::Display for InsertError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InsertError::Setup { source } => write!(
                f,
                "batch insert: cannot create the ledger table: {source}; check the connection \
                 and the permission to create tables"
            ),
            InsertError::Batch {
                seq,
                report,
                source,
            } => write!(
                f,
                "batch insert: batch {seq} failed and was rolled back ({} batches committed \
                 before it): {source}; fix the cause and run again, committed batches are skipped",
                report.batches_committed
            ),
            InsertError::Upstream {
                seq,
                report,
                source,
            } => write!(
                f,
                "batch insert: the input failed before batch {seq} ({} batches committed): \
                 {source}; run again, committed batches are skipped",
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
        }
    }
}

/// The default number of rows per `INSERT` statement (a batch larger than this is inserted
/// with several statements, still in one transaction).
///
/// ```
/// assert_eq!(millrace::adapters::sql::DEFAULT_ROWS_PER_STATEMENT, 500);
/// ```
pub const DEFAULT_ROWS_PER_STATEMENT: usize = 500;

/// The default name of the table that records committed batches.
///
/// ```
/// assert_eq!(millrace::adapters::sql::DEFAULT_LEDGER_TABLE, "millrace_batches");
/// ```
pub const DEFAULT_LEDGER_TABLE: &str = "millrace_batches";

/// A sink that inserts a stream of batches (`Vec<T>`), **one transaction per batch**, and never
/// commits a batch twice.
///
/// # How "never twice" works
///
/// Every batch gets a key: `(name, seq)`, where `name` is the sink's name and `seq` counts the
/// batches of a run from [`start_at`](Self::start_at) (default 0). In the batch's transaction
/// the sink first inserts that key into a ledger table (`millrace_batches (sink, seq,
/// row_count)`, created if missing) with `ON CONFLICT DO NOTHING`; if the key was already there
/// the batch was committed by an earlier run and is skipped (rolled back, counted in
/// [`InsertReport::batches_skipped`]). Otherwise the rows are inserted and the ledger row
/// commits **with** them, so a crash leaves both or neither.
///
/// This relies on a re-run producing the same batches in the same order (a deterministic
/// source and `batch(n)`; for resumed sources, `start_at` the checkpointed sequence). Where
/// batch boundaries may shift (time-based batching), also give the rows a key and end the
/// statement with `ON CONFLICT (key) DO NOTHING` ([`on_conflict`](Self::on_conflict)), which
/// makes each row idempotent on its own; the rows it drops are counted in
/// [`InsertReport::rows_ignored`].
///
/// Works on [`Backend`]s: SQLite (the embedded default: a file or `sqlite::memory:`) and
/// PostgreSQL. On PostgreSQL, sinks with the same name may run concurrently (a second claim of
/// a key waits for the first transaction and then skips). SQLite has one writer per file: run
/// one sink per database file at a time, or expect `database is locked` errors. The table names and SQL fragments are pasted into the statements as they are:
/// pass trusted text, never user input.
///
/// # Examples
///
/// ```
/// use millrace::adapters::sql::{BatchInsert, InsertRow, RowValues};
/// use futures::stream;
///
/// struct Checkout { id: i64, member: String }
///
/// impl InsertRow<sqlx::Sqlite> for Checkout {
///     fn push_values<'args>(&'args self, values: &mut RowValues<'_, 'args, sqlx::Sqlite>) {
///         values.bind(self.id).bind(&self.member);
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
/// sqlx::query("CREATE TABLE checkouts (id INTEGER PRIMARY KEY, member TEXT NOT NULL)")
///     .execute(&pool).await.unwrap();
///
/// let batches = || stream::iter((0..3).map(|b| {
///     (0..2).map(|i| Checkout { id: b * 2 + i, member: format!("m{i}") }).collect::<Vec<_>>()
/// }));
/// let sink = BatchInsert::new(pool.clone(), "checkouts", "INSERT INTO checkouts (id, member) ")
///     .on_conflict("ON CONFLICT (id) DO NOTHING");
///
/// let first = sink.run(batches()).await.unwrap();
/// assert_eq!((first.batches_committed, first.rows_inserted), (3, 6));
///
/// let again = sink.run(batches()).await.unwrap(); // a retry of the whole run
/// assert_eq!((again.batches_committed, again.batches_skipped), (0, 3));
///
/// let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM checkouts").fetch_one(&pool).await.unwrap();
/// assert_eq!(count, 6);
/// # }
/// ```
pub struct BatchInsert<DB: Database> {
    pool: Pool<DB>,
    name: String,
    insert: String,
    on_conflict: String,
    ledger: String,
    rows_per_statement: NonZeroUsize,
    start_at: u64,
}

impl<DB: Database> fmt::Debug for BatchInsert<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchInsert")
            .field("database", &DB::NAME)
            .field("name", &self.name)
            .field("insert", &self.insert)
            .field("on_conflict", &self.on_conflict)
            .field("ledger", &self.ledger)
            .field("rows_per_statement", &self.rows_per_statement)
            .field("start_at", &self.start_at)
            .finish()
    }
}

impl<DB: Database> Clone for BatchInsert<DB> {
    fn clone(&self) -> Self {
        BatchInsert {
            pool: self.pool.clone(),
            name: self.name.clone(),
            insert: self.insert.clone(),
            on_conflict: self.on_conflict.clone(),
            ledger: self.ledger.clone(),
            rows_per_statement: self.rows_per_statement,
            start_at: self.start_at,
        }
    }
}

impl<DB: Database> BatchInsert<DB> {
    /// A sink named `name` (its key in the ledger: two sinks writing different tables need
    /// different names) that inserts with `insert`, the statement up to `VALUES`, e.g.
    /// `"INSERT INTO events (id, kind) "`.
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let sink = BatchInsert::new(pool, "events", "INSERT INTO events (id, kind) ");
    /// assert_eq!(sink.name(), "events");
    /// # }
    /// ```
    pub fn new(pool: Pool<DB>, name: impl Into<String>, insert: impl Into<String>) -> Self {
        BatchInsert {
            pool,
            name: name.into(),
            insert: insert.into(),
            on_conflict: String::new(),
            ledger: DEFAULT_LEDGER_TABLE.to_owned(),
            rows_per_statement: NonZeroUsize::new(DEFAULT_ROWS_PER_STATEMENT)
                .expect("non-zero constant"),
            start_at: 0,
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
        self.on_conflict = clause.into();
        self
    }

    /// Uses `table` as the ledger of committed batches (default [`DEFAULT_LEDGER_TABLE`]).
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let _sink = BatchInsert::new(pool, "events", "INSERT INTO events (id) ")
    ///     .ledger_table("etl_batches");
    /// # }
    /// ```
    pub fn ledger_table(mut self, table: impl Into<String>) -> Self {
        self.ledger = table.into();
        self
    }

    /// Numbers the first batch `seq` instead of 0: for a source resumed from a checkpoint,
    /// pass the sequence of the first batch it will produce (e.g. [`InsertReport::next_seq`]).
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let _sink = BatchInsert::new(pool, "events", "INSERT INTO events (id) ").start_at(40);
    /// # }
    /// ```
    pub fn start_at(mut self, seq: u64) -> Self {
        self.start_at = seq;
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
    /// [`try_rows_per_statement`](Self::try_rows_per_statement)'s error.
    #[track_caller]
    pub fn rows_per_statement(self, n: usize) -> Self {
        match self.try_rows_per_statement(n) {
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
    /// let err = BatchInsert::new(pool, "t", "INSERT INTO t VALUES ").try_rows_per_statement(0).unwrap_err();
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
    pub fn try_rows_per_statement(mut self, n: usize) -> Result<Self, ConfigError> {
        self.rows_per_statement = NonZeroUsize::new(n)
            .ok_or_else(|| ConfigError::zero("BatchInsert", "rows_per_statement"))?;
        Ok(self)
    }

    /// The sink's name (its key in the ledger).
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// assert_eq!(BatchInsert::new(pool, "x", "INSERT INTO x VALUES ").name(), "x");
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// `n` placeholders in the database's syntax (`?, ?, ?` or `$1, $2, $3`).
fn placeholders<DB: Database>(n: usize) -> String
where
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    let mut args = DB::Arguments::default();
    let mut out = String::new();
    for i in 0..n {
        if i > 0 {
            out.push_str(", ");
        }
        // Only the count matters for the placeholder; the value is never sent.
        let _ = args.add(0_i64);
        let _ = args.format_placeholder(&mut out);
    }
    out
}

fn seq_i64(seq: u64) -> i64 {
    // 2^63 batches will not happen; saturating keeps the function total.
    i64::try_from(seq).unwrap_or(i64::MAX)
}

impl<DB> BatchInsert<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    /// Creates the ledger table if it does not exist ([`run`](Self::run) does this first).
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// BatchInsert::new(pool.clone(), "t", "INSERT INTO t VALUES ").prepare().await.unwrap();
    /// let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM millrace_batches").fetch_one(&pool).await.unwrap();
    /// assert_eq!(n, 0);
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// sqlx's error if the statement fails.
    pub async fn prepare(&self) -> Result<(), sqlx::Error> {
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {} (sink TEXT NOT NULL, seq BIGINT NOT NULL, \
             row_count BIGINT NOT NULL, PRIMARY KEY (sink, seq))",
            self.ledger
        );
        sqlx::query(&ddl).execute(&self.pool).await?;
        Ok(())
    }

    /// Inserts one batch under key `(name, seq)` in one transaction, unless that key was
    /// committed before. Assumes [`prepare`](Self::prepare) ran.
    ///
    /// ```
    /// use millrace::adapters::sql::{BatchInsert, BatchOutcome};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// sqlx::query("CREATE TABLE t (id INTEGER)").execute(&pool).await.unwrap();
    /// let sink = BatchInsert::new(pool, "t", "INSERT INTO t (id) ");
    /// sink.prepare().await.unwrap();
    /// let batch = vec![(1_i64,), (2,)];
    /// assert_eq!(sink.insert_batch(9, &batch).await.unwrap(), BatchOutcome::Committed { rows_inserted: 2 });
    /// assert_eq!(sink.insert_batch(9, &batch).await.unwrap(), BatchOutcome::AlreadyCommitted);
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// sqlx's error; the transaction was rolled back.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future rolls the transaction back (sqlx rolls back a dropped transaction
    /// when the connection is next used): the batch is either committed whole or not at all.
    pub async fn insert_batch<T>(&self, seq: u64, batch: &[T]) -> Result<BatchOutcome, sqlx::Error>
    where
        T: InsertRow<DB>,
    {
        let mut tx = self.pool.begin().await?;
        // The ledger row first: it claims the key, or tells us the batch is already in.
        let ledger_sql = format!(
            "INSERT INTO {} (sink, seq, row_count) VALUES ({}) ON CONFLICT (sink, seq) DO NOTHING",
            self.ledger,
            placeholders::<DB>(3)
        );
        let mut ledger_args = DB::Arguments::default();
        let added = ledger_args
            .add(self.name.clone())
            .and_then(|()| ledger_args.add(seq_i64(seq)))
            .and_then(|()| ledger_args.add(i64::try_from(batch.len()).unwrap_or(i64::MAX)));
        added.map_err(sqlx::Error::Encode)?;
        let claimed = sqlx::query_with(&ledger_sql, ledger_args)
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&claimed) == 0 {
            tx.rollback().await?;
            return Ok(BatchOutcome::AlreadyCommitted);
        }
        let mut rows_inserted = 0;
        let mut sql = String::new();
        for chunk in batch.chunks(self.rows_per_statement.get()) {
            sql.clear();
            sql.push_str(&self.insert);
            sql.push_str("VALUES ");
            let mut args = DB::Arguments::default();
            let mut error = None;
            for (i, row) in chunk.iter().enumerate() {
                sql.push_str(if i == 0 { "(" } else { ", (" });
                row.push_values(&mut RowValues {
                    sql: &mut sql,
                    args: &mut args,
                    first: true,
                    error: &mut error,
                });
                sql.push(')');
            }
            if !self.on_conflict.is_empty() {
                sql.push(' ');
                sql.push_str(&self.on_conflict);
            }
            if let Some(e) = error {
                // Dropping `tx` rolls the batch back.
                return Err(sqlx::Error::Encode(e));
            }
            let done = sqlx::query_with(&sql, args).execute(&mut *tx).await?;
            rows_inserted += DB::rows_affected(&done);
        }
        tx.commit().await?;
        Ok(BatchOutcome::Committed { rows_inserted })
    }

    /// Inserts every batch of `batches` (see the type's docs), returning the totals.
    /// Empty batches are recorded in the ledger but run no statement.
    ///
    /// See the [type-level example](Self#examples).
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    /// use futures::stream;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// sqlx::query("CREATE TABLE t (id INTEGER, name TEXT)").execute(&pool).await.unwrap();
    /// let sink = BatchInsert::new(pool, "t", "INSERT INTO t (id, name) ");
    /// let batches = stream::iter([vec![(1_i64, "a".to_owned())], vec![(2, "b".to_owned())]]);
    /// let report = sink.run(batches).await.unwrap();
    /// assert_eq!((report.batches_committed, report.rows_inserted, report.next_seq), (2, 2, 2));
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`InsertError::Setup`] or [`InsertError::Batch`]; batches before the failing one stay
    /// committed (listed in the error's report).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves every batch either committed or rolled back.
    pub async fn run<S, T>(&self, batches: S) -> Result<InsertReport, InsertError>
    where
        S: Stream<Item = Vec<T>>,
        T: InsertRow<DB>,
    {
        self.try_run(batches.map(Ok::<_, Infallible>))
            .await
            .map_err(|e| match e {
                InsertError::Setup { source } => InsertError::Setup { source },
                InsertError::Batch {
                    seq,
                    report,
                    source,
                } => InsertError::Batch {
                    seq,
                    report,
                    source,
                },
                InsertError::Upstream { source, .. } => match source {},
            })
    }

    /// Like [`run`](Self::run) for a fallible stream: the first `Err` stops the run and is
    /// returned as [`InsertError::Upstream`] (batches before it stay committed).
    ///
    /// ```
    /// use millrace::adapters::sql::{BatchInsert, InsertError};
    /// use futures::stream;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// sqlx::query("CREATE TABLE t (id INTEGER)").execute(&pool).await.unwrap();
    /// let sink = BatchInsert::new(pool, "t", "INSERT INTO t (id) ");
    /// let batches = stream::iter([Ok(vec![(1_i64,)]), Err("source lost")]);
    /// let err = sink.try_run(batches).await.unwrap_err();
    /// assert!(matches!(err, InsertError::Upstream { seq: 1, source: "source lost", .. }));
    /// assert_eq!(err.report().batches_committed, 1);
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run), plus [`InsertError::Upstream`].
    pub async fn try_run<S, T, E>(&self, batches: S) -> Result<InsertReport, InsertError<E>>
    where
        S: Stream<Item = Result<Vec<T>, E>>,
        T: InsertRow<DB>,
    {
        self.prepare()
            .await
            .map_err(|source| InsertError::Setup { source })?;
        let mut report = InsertReport {
            next_seq: self.start_at,
            ..InsertReport::default()
        };
        let mut batches = std::pin::pin!(batches);
        while let Some(batch) = batches.next().await {
            let seq = report.next_seq;
            let batch = batch.map_err(|source| InsertError::Upstream {
                seq,
                report,
                source,
            })?;
            match self.insert_batch(seq, &batch).await {
                Ok(BatchOutcome::Committed { rows_inserted }) => {
                    report.batches_committed += 1;
                    report.rows_inserted += rows_inserted;
                    report.rows_ignored += (batch.len() as u64).saturating_sub(rows_inserted);
                }
                Ok(BatchOutcome::AlreadyCommitted) => report.batches_skipped += 1,
                Err(source) => {
                    return Err(InsertError::Batch {
                        seq,
                        report,
                        source,
                    });
                }
            }
            report.next_seq += 1;
        }
        Ok(report)
    }
}

macro_rules! tuple_rows {
    ($($name:ident),+) => {
        /// Tuples bind their fields in order, for quick inserts without a row type.
        impl<DB: Database, $($name),+> InsertRow<DB> for ($($name,)+)
        where
            $(for<'a> &'a $name: Encode<'a, DB> + Type<DB>,)+
        {
            #[allow(non_snake_case)]
            fn push_values<'args>(&'args self, values: &mut RowValues<'_, 'args, DB>) {
                let ($($name,)+) = self;
                $(values.bind($name);)+
            }
        }
    };
}

tuple_rows!(A);
tuple_rows!(A, B);
tuple_rows!(A, B, C);
tuple_rows!(A, B, C, D);
tuple_rows!(A, B, C, D, E);
tuple_rows!(A, B, C, D, E, F);

/// One batch that went through [`BatchInsert::commit_each`]: its rows, its key and what
/// happened to it.
///
/// ```
/// use millrace::adapters::sql::{BatchOutcome, Committed};
///
/// let c = Committed { seq: 0, outcome: BatchOutcome::AlreadyCommitted, rows: vec![1, 2] };
/// assert_eq!(c.rows.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed<T> {
    /// The batch's sequence number (its key with the sink's name).
    pub seq: u64,
    /// Committed now, or by an earlier run.
    pub outcome: BatchOutcome,
    /// The batch's rows, handed on (e.g. to acknowledge them upstream).
    pub rows: Vec<T>,
}

type InsertFuture<T> = BoxFuture<'static, (u64, Vec<T>, Result<BatchOutcome, sqlx::Error>)>;

impl<DB> BatchInsert<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    /// The sink as a pass-through stage: inserts each batch like [`run`](Self::run) and then
    /// yields it as [`Committed`], so the pipeline can go on (acknowledge the source, count,
    /// report progress) knowing the batch is durable. One batch is in flight at a time; the
    /// upstream is not polled while a batch commits. After an error item the stream ends.
    ///
    /// ```
    /// use millrace::adapters::sql::{BatchInsert, BatchOutcome};
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// sqlx::query("CREATE TABLE t (id INTEGER)").execute(&pool).await.unwrap();
    /// let sink = BatchInsert::new(pool, "t", "INSERT INTO t (id) ");
    /// let acked: Vec<(u64, BatchOutcome)> = sink
    ///     .commit_each(stream::iter([vec![(1_i64,)], vec![(2,), (3,)]]))
    ///     .map(|c| c.map(|c| (c.seq, c.outcome)).unwrap())
    ///     .collect()
    ///     .await;
    /// assert_eq!(acked, [
    ///     (0, BatchOutcome::Committed { rows_inserted: 1 }),
    ///     (1, BatchOutcome::Committed { rows_inserted: 2 }),
    /// ]);
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// An [`InsertError::Setup`] or [`InsertError::Batch`] item (its report counts this
    /// stream's batches before it), then the end.
    pub fn commit_each<S, T>(self, batches: S) -> CommitEach<S, DB, T>
    where
        S: Stream<Item = Vec<T>>,
        T: InsertRow<DB> + Send + Sync + 'static,
        DB: 'static,
    {
        let sink = Arc::new(self);
        let prepare_sink = Arc::clone(&sink);
        let preparing: BoxFuture<'static, Result<(), sqlx::Error>> =
            Box::pin(async move { prepare_sink.prepare().await });
        CommitEach {
            upstream: batches,
            report: InsertReport {
                next_seq: sink.start_at,
                ..InsertReport::default()
            },
            sink,
            preparing: Some(preparing),
            pending: None,
            done: false,
        }
    }
}

pin_project! {
    /// Stream for the [`BatchInsert::commit_each`] stage.
    ///
    /// Each batch's transaction runs in one boxed future (one allocation per batch, none per
    /// row), because sqlx's futures cannot be named.
    #[must_use = "streams do nothing unless polled"]
    pub struct CommitEach<S, DB: Database, T> {
        #[pin]
        upstream: S,
        sink: Arc<BatchInsert<DB>>,
        report: InsertReport,
        preparing: Option<BoxFuture<'static, Result<(), sqlx::Error>>>,
        pending: Option<InsertFuture<T>>,
        done: bool,
    }
}

impl<S: fmt::Debug, DB: Database, T> fmt::Debug for CommitEach<S, DB, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommitEach")
            .field("upstream", &self.upstream)
            .field("sink", &self.sink)
            .field("report", &self.report)
            .field("committing", &self.pending.is_some())
            .field("done", &self.done)
            .finish()
    }
}

impl<S, DB: Database, T> CommitEach<S, DB, T> {
    /// The totals so far.
    ///
    /// ```
    /// use millrace::adapters::sql::BatchInsert;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// sqlx::query("CREATE TABLE t (id INTEGER)").execute(&pool).await.unwrap();
    /// let mut commits = BatchInsert::new(pool, "t", "INSERT INTO t (id) ")
    ///     .commit_each(stream::iter([vec![(1_i64,)]]));
    /// while commits.next().await.is_some() {}
    /// assert_eq!(commits.report().rows_inserted, 1);
    /// # }
    /// ```
    pub fn report(&self) -> InsertReport {
        self.report
    }
}

impl<S, DB, T> Stream for CommitEach<S, DB, T>
where
    S: Stream<Item = Vec<T>>,
    T: InsertRow<DB> + Send + Sync + 'static,
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    type Item = Result<Committed<T>, InsertError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        if let Some(preparing) = this.preparing.as_mut() {
            let result = ready!(preparing.as_mut().poll(cx));
            *this.preparing = None;
            if let Err(source) = result {
                *this.done = true;
                return Poll::Ready(Some(Err(InsertError::Setup { source })));
            }
        }
        if this.pending.is_none() {
            let Some(rows) = ready!(this.upstream.as_mut().poll_next(cx)) else {
                *this.done = true;
                return Poll::Ready(None);
            };
            let seq = this.report.next_seq;
            this.report.next_seq += 1;
            let sink = Arc::clone(this.sink);
            *this.pending = Some(Box::pin(async move {
                let result = sink.insert_batch(seq, &rows).await;
                (seq, rows, result)
            }));
        }
        let pending = this.pending.as_mut().expect("a batch in flight");
        let (seq, rows, result) = ready!(pending.as_mut().poll(cx));
        *this.pending = None;
        Poll::Ready(Some(match result {
            Ok(outcome) => {
                match outcome {
                    BatchOutcome::Committed { rows_inserted } => {
                        this.report.batches_committed += 1;
                        this.report.rows_inserted += rows_inserted;
                        this.report.rows_ignored +=
                            (rows.len() as u64).saturating_sub(rows_inserted);
                    }
                    BatchOutcome::AlreadyCommitted => this.report.batches_skipped += 1,
                }
                Ok(Committed { seq, outcome, rows })
            }
            Err(source) => {
                *this.done = true;
                Err(InsertError::Batch {
                    seq,
                    report: *this.report,
                    source,
                })
            }
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        let in_flight = usize::from(self.pending.is_some());
        let (low, high) = self.upstream.size_hint();
        // An error ends the stream early, so the lower bound is at most 1.
        (
            low.saturating_add(in_flight).min(1),
            high.and_then(|h| h.checked_add(in_flight)),
        )
    }
}

impl<S, DB, T> FusedStream for CommitEach<S, DB, T>
where
    S: Stream<Item = Vec<T>>,
    T: InsertRow<DB> + Send + Sync + 'static,
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}
