//! The databases the sink supports ([`Backend`]) and every statement the sink runs.
//!
//! All SQL lives here, written once and instantiated for each backend by a macro on concrete
//! types: sqlx's generic API would need a higher-ranked bound per column type on every
//! function of the sink. Fixed statements use `$n` parameters, which SQLite and PostgreSQL
//! both accept; the multi-row `INSERT` asks the driver for its placeholders.

use std::future::Future;
use std::time::Duration;

use futures_util::future::BoxFuture;
use millrace_core::positions::{Position, TrackedBatch};
use sqlx::{Database, Pool};

pub use super::direct::DirectWriter;

use super::row::{InsertRow, RowValues, Target};

/// The databases [`BatchInsert`](super::BatchInsert) supports: those whose SQL has
/// `INSERT … ON CONFLICT … DO NOTHING` and row locks for the offsets table
/// ([`Sqlite`](sqlx::Sqlite) and [`Postgres`](sqlx::Postgres)). Sealed.
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

    #[doc(hidden)]
    fn ops() -> &'static dyn Ops<Self>;

    /// Inserts `rows` with multi-row statements in one transaction; the rows inserted.
    #[doc(hidden)]
    fn insert_batch<T: InsertRow<Self>>(
        pool: &Pool<Self>,
        sql: &SinkSql,
        rows: &[T],
    ) -> impl Future<Output = Result<u64, sqlx::Error>>;

    /// Runs one commit through the pool: the fencing update of the offsets row first (it
    /// takes the row's lock, so a concurrent claim waits or fails), then the rows, then the
    /// dead letters, all in one transaction.
    #[doc(hidden)]
    fn commit<P: Position, T: InsertRow<Self>>(
        pool: &Pool<Self>,
        sql: &SinkSql,
        plan: &CommitPlan,
        batch: &TrackedBatch<P, T>,
    ) -> impl Future<Output = Result<CommitOutcome, sqlx::Error>>;

    /// [`commit`](Self::commit), owning what it needs: for the commits
    /// [`Claim::commit_each`](super::Claim::commit_each) sends ahead.
    #[doc(hidden)]
    fn commit_owned<P, T>(
        pool: Pool<Self>,
        sql: SinkSql,
        plan: CommitPlan,
        batch: TrackedBatch<P, T>,
    ) -> BoxFuture<'static, Result<CommitOutcome, sqlx::Error>>
    where
        P: Position,
        T: InsertRow<Self> + Send + Sync + 'static;

    /// A writer thread for [`Claim::commit_each`](super::Claim::commit_each), where the
    /// backend has one (SQLite on a file); `None` commits through the pool.
    #[doc(hidden)]
    fn open_writer(pool: &Pool<Self>) -> BoxFuture<'_, Option<DirectWriter>> {
        let _ = pool;
        Box::pin(async { None })
    }

    /// Commits `batch` on the writer thread (only called with a writer from
    /// [`open_writer`](Self::open_writer)).
    #[doc(hidden)]
    fn commit_on_writer<P, T>(
        writer: &DirectWriter,
        sql: &SinkSql,
        plan: CommitPlan,
        batch: TrackedBatch<P, T>,
    ) -> BoxFuture<'static, Result<CommitOutcome, sqlx::Error>>
    where
        P: Position,
        T: InsertRow<Self> + Send + 'static,
    {
        let _ = (writer, sql, plan, batch);
        unreachable!("only a backend with a writer thread is given one")
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for sqlx::Sqlite {}
    impl Sealed for sqlx::Postgres {}
}

/// The fixed parts of a sink's statements.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct SinkSql {
    pub insert: String,
    pub on_conflict: String,
    pub rows_per_statement: usize,
    pub offsets: String,
    pub dead_letters: String,
}

impl SinkSql {
    /// The fencing update of a commit: moves the position (`$1`), the heartbeat (`$2`) and the
    /// counts (`$3` rows, `$4` dead letters, `$5` filtered) of pipeline `$6` and source `$7`,
    /// only while epoch `$8` holds it. The parameters appear in order, so SQLite numbers them
    /// the same whether bound through sqlx or rusqlite.
    pub(super) fn fence(&self) -> String {
        format!(
            "UPDATE {} SET position = $1, heartbeat_ms = $2, committed = committed + $3, \
             dead_lettered = dead_lettered + $4, filtered = filtered + $5 \
             WHERE pipeline = $6 AND source = $7 AND epoch = $8",
            self.offsets
        )
    }

    /// The insert of one dead letter: pipeline `$1`, source `$2`, position `$3`, reason `$4`.
    pub(super) fn insert_dead_letter(&self) -> String {
        format!(
            "INSERT INTO {} (pipeline, source, position, reason) VALUES ($1, $2, $3, $4)",
            self.dead_letters
        )
    }
}

/// One row of the offsets table.
#[doc(hidden)]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetsRow {
    pub position: String,
    pub epoch: i64,
    pub holder: String,
    pub holder_host: String,
    pub holder_pid: i64,
    pub heartbeat_ms: i64,
}

/// Who is claiming a pipeline.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Holder {
    pub host: String,
    pub pid: i64,
}

impl Holder {
    pub(super) fn describe(host: &str, pid: i64) -> String {
        format!("pid {pid} on {host}")
    }
}

/// What one commit writes besides the rows and dead letters, owned (it may travel to the
/// SQLite writer thread).
#[doc(hidden)]
#[derive(Debug)]
pub struct CommitPlan {
    pub(super) pipeline: String,
    pub(super) source: String,
    pub(super) epoch: i64,
    pub(super) position: String,
    pub(super) now_ms: i64,
}

/// The outcome of a commit transaction.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed {
        rows_inserted: u64,
    },
    /// The epoch check matched no row: another process claimed the pipeline.
    Fenced,
}

/// The statements of the sink, per backend. Internal.
#[doc(hidden)]
pub trait Ops<DB: Database>: Send + Sync {
    fn prepare<'a>(
        &'a self,
        pool: &'a Pool<DB>,
        sql: &'a SinkSql,
    ) -> BoxFuture<'a, Result<(), sqlx::Error>>;

    fn read_offsets<'a>(
        &'a self,
        pool: &'a Pool<DB>,
        sql: &'a SinkSql,
        pipeline: &'a str,
        source: &'a str,
    ) -> BoxFuture<'a, Result<Option<OffsetsRow>, sqlx::Error>>;

    /// Sets the holder and increments the epoch if it is still `seen_epoch` and the position
    /// still `seen_position` (a commit of the previous holder that landed after the read, e.g.
    /// one finishing on a writer thread after its claim was dropped, makes the caller read
    /// again); whether it was.
    #[allow(clippy::too_many_arguments)]
    fn take_over<'a>(
        &'a self,
        pool: &'a Pool<DB>,
        sql: &'a SinkSql,
        pipeline: &'a str,
        source: &'a str,
        seen_epoch: i64,
        seen_position: &'a str,
        holder: &'a Holder,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<bool, sqlx::Error>>;

    /// Refreshes the heartbeat, or releases the lease (`release`); whether `epoch` still holds.
    #[allow(clippy::too_many_arguments)]
    fn heartbeat<'a>(
        &'a self,
        pool: &'a Pool<DB>,
        sql: &'a SinkSql,
        pipeline: &'a str,
        source: &'a str,
        epoch: i64,
        now_ms: i64,
        release: bool,
    ) -> BoxFuture<'a, Result<bool, sqlx::Error>>;
}

/// The lease a silent holder keeps by default.
pub(super) const DEFAULT_LEASE: Duration = Duration::from_secs(30);

macro_rules! backend {
    ($db:ty, $result:ty, $ops:ident $(, $writer:item)*) => {
        struct $ops;

        impl Backend for $db {
            fn rows_affected(result: &$result) -> u64 {
                result.rows_affected()
            }

            fn ops() -> &'static dyn Ops<Self> {
                &$ops
            }

            async fn insert_batch<T: InsertRow<Self>>(
                pool: &Pool<Self>,
                sql: &SinkSql,
                rows: &[T],
            ) -> Result<u64, sqlx::Error> {
                let mut tx = pool.begin().await?;
                let inserted = $ops::insert_rows(&mut tx, sql, rows).await?;
                tx.commit().await?;
                Ok(inserted)
            }

            async fn commit<P: Position, T: InsertRow<Self>>(
                pool: &Pool<Self>,
                sql: &SinkSql,
                plan: &CommitPlan,
                batch: &TrackedBatch<P, T>,
            ) -> Result<CommitOutcome, sqlx::Error> {
                let rows = batch.items();
                let dead_letters = batch.dead_letters();
                let mut tx = pool.begin().await?;
                let fence = sql.fence();
                let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                let done = sqlx::query(&fence)
                    .bind(plan.position.as_str())
                    .bind(plan.now_ms)
                    .bind(count(rows.len() as u64))
                    .bind(count(dead_letters.len() as u64))
                    .bind(count(batch.filtered()))
                    .bind(plan.pipeline.as_str())
                    .bind(plan.source.as_str())
                    .bind(plan.epoch)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(CommitOutcome::Fenced);
                }
                let rows_inserted = $ops::insert_rows(&mut tx, sql, rows).await?;
                if !dead_letters.is_empty() {
                    let insert = sql.insert_dead_letter();
                    for dead in dead_letters {
                        sqlx::query(&insert)
                            .bind(plan.pipeline.as_str())
                            .bind(plan.source.as_str())
                            .bind(dead.position.to_text())
                            .bind(dead.reason.as_str())
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
                Ok(CommitOutcome::Committed { rows_inserted })
            }

            fn commit_owned<P, T>(
                pool: Pool<Self>,
                sql: SinkSql,
                plan: CommitPlan,
                batch: TrackedBatch<P, T>,
            ) -> BoxFuture<'static, Result<CommitOutcome, sqlx::Error>>
            where
                P: Position,
                T: InsertRow<Self> + Send + Sync + 'static,
            {
                Box::pin(async move { Self::commit(&pool, &sql, &plan, &batch).await })
            }

            $($writer)*
        }

        impl $ops {
            /// Inserts `rows` with multi-row statements on `conn`; the rows inserted.
            async fn insert_rows<T: InsertRow<$db>>(
                conn: &mut <$db as Database>::Connection,
                sql: &SinkSql,
                rows: &[T],
            ) -> Result<u64, sqlx::Error> {
                let mut inserted = 0;
                let mut text = String::new();
                for chunk in rows.chunks(sql.rows_per_statement) {
                    text.clear();
                    text.push_str(&sql.insert);
                    text.push_str("VALUES ");
                    let mut args = <$db as Database>::Arguments::default();
                    let mut error = None;
                    for (i, row) in chunk.iter().enumerate() {
                        text.push_str(if i == 0 { "(" } else { ", (" });
                        row.push_values(&mut RowValues {
                            target: Target::Arguments {
                                sql: &mut text,
                                args: &mut args,
                            },
                            first: true,
                            error: &mut error,
                        });
                        text.push(')');
                    }
                    if !sql.on_conflict.is_empty() {
                        text.push(' ');
                        text.push_str(&sql.on_conflict);
                    }
                    if let Some(e) = error {
                        return Err(sqlx::Error::Encode(e));
                    }
                    let done = sqlx::query_with(&text, args).execute(&mut *conn).await?;
                    inserted += done.rows_affected();
                }
                Ok(inserted)
            }

            /// Runs a `CREATE TABLE IF NOT EXISTS`. On PostgreSQL two of them racing for a new
            /// table can fail with a unique violation on the catalog (`pg_type_typname_nsp_index`,
            /// SQLSTATE 23505) or `duplicate_table` (42P07) or `duplicate_object` (42710, the row
            /// type) although the table now exists: that loser runs it again, and the second time
            /// finds the table.
            async fn create_if_missing(pool: &Pool<$db>, create: &str) -> Result<(), sqlx::Error> {
                match sqlx::query(create).execute(pool).await {
                    Ok(_) => Ok(()),
                    Err(sqlx::Error::Database(e))
                        if matches!(e.code().as_deref(), Some("23505" | "42P07" | "42710")) =>
                    {
                        sqlx::query(create).execute(pool).await.map(drop)
                    }
                    Err(e) => Err(e),
                }
            }
        }

        impl Ops<$db> for $ops {
            fn prepare<'a>(
                &'a self,
                pool: &'a Pool<$db>,
                sql: &'a SinkSql,
            ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
                Box::pin(async move {
                    let offsets = format!(
                        "CREATE TABLE IF NOT EXISTS {} (pipeline TEXT NOT NULL, source TEXT NOT \
                         NULL, position TEXT NOT NULL, epoch BIGINT NOT NULL, holder_host TEXT \
                         NOT NULL, holder_pid BIGINT NOT NULL, heartbeat_ms BIGINT NOT NULL, \
                         committed BIGINT NOT NULL, dead_lettered BIGINT NOT NULL, filtered \
                         BIGINT NOT NULL, PRIMARY KEY (pipeline, source))",
                        sql.offsets
                    );
                    $ops::create_if_missing(pool, &offsets).await?;
                    let dead = format!(
                        "CREATE TABLE IF NOT EXISTS {} (pipeline TEXT NOT NULL, source TEXT NOT \
                         NULL, position TEXT NOT NULL, reason TEXT NOT NULL)",
                        sql.dead_letters
                    );
                    $ops::create_if_missing(pool, &dead).await?;
                    Ok(())
                })
            }

            fn read_offsets<'a>(
                &'a self,
                pool: &'a Pool<$db>,
                sql: &'a SinkSql,
                pipeline: &'a str,
                source: &'a str,
            ) -> BoxFuture<'a, Result<Option<OffsetsRow>, sqlx::Error>> {
                Box::pin(async move {
                    let select = format!(
                        "SELECT position, epoch, holder_host, holder_pid, heartbeat_ms FROM {} \
                         WHERE pipeline = $1 AND source = $2",
                        sql.offsets
                    );
                    let row: Option<(String, i64, String, i64, i64)> = sqlx::query_as(&select)
                        .bind(pipeline)
                        .bind(source)
                        .fetch_optional(pool)
                        .await?;
                    Ok(row.map(
                        |(position, epoch, holder_host, holder_pid, heartbeat_ms)| OffsetsRow {
                            position,
                            epoch,
                            holder: Holder::describe(&holder_host, holder_pid),
                            holder_host,
                            holder_pid,
                            heartbeat_ms,
                        },
                    ))
                })
            }

            fn take_over<'a>(
                &'a self,
                pool: &'a Pool<$db>,
                sql: &'a SinkSql,
                pipeline: &'a str,
                source: &'a str,
                seen_epoch: i64,
                seen_position: &'a str,
                holder: &'a Holder,
                now_ms: i64,
            ) -> BoxFuture<'a, Result<bool, sqlx::Error>> {
                Box::pin(async move {
                    // A first claim creates the row (epoch 0, free); the update below then
                    // takes it like any other free row.
                    let create = format!(
                        "INSERT INTO {} (pipeline, source, position, epoch, holder_host, \
                         holder_pid, heartbeat_ms, committed, dead_lettered, filtered) VALUES \
                         ($1, $2, '', 0, '', 0, 0, 0, 0, 0) ON CONFLICT (pipeline, source) DO \
                         NOTHING",
                        sql.offsets
                    );
                    sqlx::query(&create)
                        .bind(pipeline)
                        .bind(source)
                        .execute(pool)
                        .await?;
                    let take = format!(
                        "UPDATE {} SET epoch = epoch + 1, holder_host = $1, holder_pid = $2, \
                         heartbeat_ms = $3 WHERE pipeline = $4 AND source = $5 AND epoch = $6 \
                         AND position = $7",
                        sql.offsets
                    );
                    let done = sqlx::query(&take)
                        .bind(holder.host.as_str())
                        .bind(holder.pid)
                        .bind(now_ms)
                        .bind(pipeline)
                        .bind(source)
                        .bind(seen_epoch)
                        .bind(seen_position)
                        .execute(pool)
                        .await?;
                    Ok(done.rows_affected() == 1)
                })
            }

            fn heartbeat<'a>(
                &'a self,
                pool: &'a Pool<$db>,
                sql: &'a SinkSql,
                pipeline: &'a str,
                source: &'a str,
                epoch: i64,
                now_ms: i64,
                release: bool,
            ) -> BoxFuture<'a, Result<bool, sqlx::Error>> {
                Box::pin(async move {
                    let set = if release {
                        "holder_host = '', holder_pid = 0, heartbeat_ms = $1"
                    } else {
                        "heartbeat_ms = $1"
                    };
                    let beat = format!(
                        "UPDATE {} SET {set} WHERE pipeline = $2 AND source = $3 AND epoch = $4",
                        sql.offsets
                    );
                    let done = sqlx::query(&beat)
                        .bind(now_ms)
                        .bind(pipeline)
                        .bind(source)
                        .bind(epoch)
                        .execute(pool)
                        .await?;
                    Ok(done.rows_affected() == 1)
                })
            }
        }
    };
}

backend!(
    sqlx::Sqlite,
    sqlx::sqlite::SqliteQueryResult,
    SqliteOps,
    fn open_writer(pool: &Pool<Self>) -> BoxFuture<'_, Option<DirectWriter>> {
        Box::pin(super::direct::open(pool))
    },
    fn commit_on_writer<P, T>(
        writer: &DirectWriter,
        sql: &SinkSql,
        plan: CommitPlan,
        batch: TrackedBatch<P, T>,
    ) -> BoxFuture<'static, Result<CommitOutcome, sqlx::Error>>
    where
        P: Position,
        T: InsertRow<Self> + Send + 'static,
    {
        super::direct::commit(writer, sql, plan, batch)
    }
);
backend!(sqlx::Postgres, sqlx::postgres::PgQueryResult, PostgresOps);
