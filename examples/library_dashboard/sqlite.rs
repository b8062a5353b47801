//! The SQLite side: the `activity` table and its rows, and the claim of the pipeline (one
//! writer at a time, resuming after the position its last commit stored).

use std::io;
use std::path::Path;

use millrace::adapters::fs::LinePosition;
use millrace::adapters::sql::{BatchInsert, Claim, InsertRow, RowValues};
use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::Config;
use super::error::RunError;

/// The pipeline's name in the offsets table.
const PIPELINE: &str = "library_dashboard";

/// One row of the `activity` table: the event, enriched with its book's title and year.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) line: i64,
    pub(crate) ts: i64,
    pub(crate) member: String,
    pub(crate) book: i64,
    pub(crate) action: String,
    pub(crate) title: String,
    pub(crate) year: i64,
}

impl InsertRow<Sqlite> for Row {
    fn push_values<'args>(&'args self, values: &mut RowValues<'_, 'args, Sqlite>) {
        // Text as `&str`: bound by reference (a `&String` would be copied).
        values
            .bind(self.line)
            .bind(self.ts)
            .bind(self.member.as_str())
            .bind(self.book)
            .bind(self.action.as_str())
            .bind(self.title.as_str())
            .bind(self.year);
    }
}

/// Opens (creating if needed) the dashboard database.
pub(crate) async fn open_db(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS activity (line INTEGER PRIMARY KEY, ts INTEGER NOT NULL, \
         member TEXT NOT NULL, book INTEGER NOT NULL, action TEXT NOT NULL, \
         title TEXT NOT NULL, year INTEGER NOT NULL)",
    )
    .execute(&pool)
    .await?;
    Ok(pool)
}

/// Deletes the database and its WAL files.
async fn delete_db(path: &Path) -> io::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match tokio::fs::remove_file(&name).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Opens the database (deleting it first with `--fresh`) and claims the pipeline for the log
/// `source_name`: a second copy on the same data is refused here, naming the first. The claim
/// says where the last run's commits ended.
pub(crate) async fn claim(
    config: &Config,
    source_name: &str,
) -> Result<(SqlitePool, Claim<Sqlite, LinePosition>), RunError> {
    if config.fresh {
        delete_db(&config.db_path())
            .await
            .map_err(|source| RunError::Io {
                action: "delete the database",
                path: config.db_path(),
                source,
            })?;
    }
    let pool = open_db(&config.db_path())
        .await
        .map_err(|source| RunError::Db {
            path: config.db_path(),
            source,
        })?;
    let sink = BatchInsert::new(
        pool.clone(),
        PIPELINE,
        "INSERT INTO activity (line, ts, member, book, action, title, year) ",
    )
    .on_conflict("ON CONFLICT (line) DO NOTHING")
    .rows_per_statement(500);
    let claim = sink
        .claim::<LinePosition>(source_name)
        .await
        .map_err(|e| RunError::Insert(e.map_upstream(|never| match never {})))?;
    Ok((pool, claim))
}

/// The rows in the `activity` table; closes the pool.
pub(crate) async fn count_rows(pool: SqlitePool, config: &Config) -> Result<u64, RunError> {
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM activity")
        .fetch_one(&pool)
        .await
        .map_err(|source| RunError::Db {
            path: config.db_path(),
            source,
        })?;
    pool.close().await;
    Ok(rows as u64)
}
