//! The databases the sink supports ([`Backend`]) and every statement the sink runs.
//!
//! All SQL lives here, written once and instantiated for each backend by a macro on concrete
//! types: sqlx's generic API would need a higher-ranked bound per column type on every
//! function of the sink. Fixed statements use `$n` parameters, which SQLite and PostgreSQL
//! both accept; the multi-row `INSERT` asks the driver for its placeholders.

use std::time::Duration;

use futures_util::future::BoxFuture;
use millrace_core::positions::{Position, TrackedBatch};
use sqlx::{Database, Pool};

pub use super::direct::DirectWriter;
use super::direct::OwnedPlan;

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
        plan: OwnedPlan,
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

/// What one commit writes besides the rows.
#[derive(Debug)]
pub(super) struct CommitPlan<'a> {
    pub(super) pipeline: &'a str,
    pub(super) source: &'a str,
    pub(super) epoch: i64,
    pub(super) position: String,
    pub(super) now_ms: i64,
    pub(super) dead_letters: Vec<(String, &'a str)>,
    pub(super) filtered: u64,
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

/// Inserts `rows` with multi-row statements on `conn`; the rows inserted.
pub(super) async fn insert_rows<DB, T>(
    conn: &mut DB::Connection,
    sql: &SinkSql,
    rows: &[T],
) -> Result<u64, sqlx::Error>
where
    DB: Backend,
    T: InsertRow<DB>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    let mut inserted = 0;
    let mut text = String::new();
    for chunk in rows.chunks(sql.rows_per_statement) {
        text.clear();
        text.push_str(&sql.insert);
        text.push_str("VALUES ");
        let mut args = DB::Arguments::default();
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
        inserted += DB::rows_affected(&done);
    }
    Ok(inserted)
}

/// Runs one commit: the fencing update of the offsets row first (it takes the row's lock, so
/// a concurrent claim waits or fails), then the rows, then the dead letters, all in one
/// transaction.
pub(super) async fn commit<DB, T>(
    pool: &Pool<DB>,
    sql: &SinkSql,
    plan: &CommitPlan<'_>,
    rows: &[T],
) -> Result<CommitOutcome, sqlx::Error>
where
    DB: Backend,
    T: InsertRow<DB>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut tx = pool.begin().await?;
    let fence = format!(
        "UPDATE {} SET position = $1, heartbeat_ms = $2, committed = committed + $3, \
         dead_lettered = dead_lettered + $4, filtered = filtered + $5 \
         WHERE pipeline = $6 AND source = $7 AND epoch = $8",
        sql.offsets
    );
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let done = sqlx::query(&fence)
        .bind(plan.position.as_str())
        .bind(plan.now_ms)
        .bind(count(rows.len() as u64))
        .bind(count(plan.dead_letters.len() as u64))
        .bind(count(plan.filtered))
        .bind(plan.pipeline)
        .bind(plan.source)
        .bind(plan.epoch)
        .execute(&mut *tx)
        .await?;
    if DB::rows_affected(&done) == 0 {
        tx.rollback().await?;
        return Ok(CommitOutcome::Fenced);
    }
    let rows_inserted = insert_rows::<DB, T>(&mut tx, sql, rows).await?;
    if !plan.dead_letters.is_empty() {
        let insert = format!(
            "INSERT INTO {} (pipeline, source, position, reason) VALUES ($1, $2, $3, $4)",
            sql.dead_letters
        );
        for (position, reason) in &plan.dead_letters {
            sqlx::query(&insert)
                .bind(plan.pipeline)
                .bind(plan.source)
                .bind(position.as_str())
                .bind(*reason)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(CommitOutcome::Committed { rows_inserted })
}

/// Runs a `CREATE TABLE IF NOT EXISTS`. On PostgreSQL two of them racing for a new table can
/// fail with a unique violation on the catalog (`pg_type_typname_nsp_index`, SQLSTATE 23505) or
/// `duplicate_table` (42P07) or `duplicate_object` (42710, the row type) although the table now exists: that loser runs it again, and the
/// second time finds the table.
async fn create_if_missing<DB: Database>(pool: &Pool<DB>, create: &str) -> Result<(), sqlx::Error>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
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

            $($writer)*
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
                    create_if_missing(pool, &offsets).await?;
                    let dead = format!(
                        "CREATE TABLE IF NOT EXISTS {} (pipeline TEXT NOT NULL, source TEXT NOT \
                         NULL, position TEXT NOT NULL, reason TEXT NOT NULL)",
                        sql.dead_letters
                    );
                    create_if_missing(pool, &dead).await?;
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
        plan: OwnedPlan,
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
