//! The SQLite writer thread of [`Claim::commit_each`](super::Claim::commit_each): commits
//! batches on its own rusqlite connection, with cached prepared statements, one message per
//! batch.
//!
//! Why: through sqlx, every statement of a commit is a round trip to the connection's worker
//! thread, and every bound value is copied to be sent there (`SqliteArguments::into_static`);
//! a batch of 1,000 rows of 7 columns is 7 round trips and 7,000 values copied, and the rows
//! are encoded on the pipeline's own thread. Here the whole batch (owned, `Send`) moves to the
//! thread once; its values are encoded by reference straight into the prepared statement.
//! Measured on the main job (`scripts/mainjob_bench.sh`): see the [`sql`](crate::sql) module.
//!
//! The thread holds its own connection to the pool's database file, set up like the pool's
//! (`synchronous`, `foreign_keys`, `busy_timeout` read from a pool connection; WAL is a
//! property of the file). An in-memory database cannot be shared with a second connection, so
//! it keeps the sqlx path.
//!
//! Exactly once: jobs run one at a time in the order they were sent, each in one `BEGIN
//! IMMEDIATE` transaction with its position; after a failed or fenced commit the thread
//! refuses every later job of the claim (it answers without touching the database), so a
//! batch never commits after one before it failed.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::mpsc;

use futures_util::future::BoxFuture;
use millrace_core::positions::{Position, TrackedBatch};
use rusqlite::Connection;
use sqlx::sqlite::Sqlite;
use sqlx::{Pool, SqlitePool};

use self::transaction::commit_on;
use super::backend::{CommitOutcome, CommitPlan, SinkSql};
use super::row::InsertRow;

mod error;
mod transaction;

type Job = Box<dyn FnOnce(&mut Writer) + Send>;

/// The handle on a claim's SQLite writer thread. Dropping it lets the thread finish the jobs
/// already sent (each one checks first whether its answer is still awaited) and end.
pub struct DirectWriter {
    jobs: mpsc::Sender<Job>,
}

impl fmt::Debug for DirectWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectWriter").finish_non_exhaustive()
    }
}

/// What the thread keeps between jobs.
struct Writer {
    conn: Connection,
    /// A commit failed or was fenced: refuse the jobs after it.
    failed: bool,
    /// `INSERT` texts by `(rows, columns)`, built once.
    texts: HashMap<(usize, usize), String>,
}

/// How the pool's connections are set up, to set up the writer's the same way.
struct Setup {
    file: PathBuf,
    synchronous: i64,
    foreign_keys: i64,
    busy_timeout_ms: i64,
}

async fn read_setup(pool: &SqlitePool) -> Result<Option<Setup>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let file: String =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_optional(&mut *conn)
            .await?
            .unwrap_or_default();
    // An in-memory or temporary database has no file: another connection would see another
    // database.
    if file.is_empty() {
        return Ok(None);
    }
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await?;
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&mut *conn)
        .await?;
    let busy_timeout_ms: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(&mut *conn)
        .await?;
    Ok(Some(Setup {
        file: PathBuf::from(file),
        synchronous,
        foreign_keys,
        busy_timeout_ms,
    }))
}

fn open_connection(setup: &Setup) -> rusqlite::Result<Connection> {
    let conn = Connection::open(&setup.file)?;
    conn.busy_timeout(std::time::Duration::from_millis(
        u64::try_from(setup.busy_timeout_ms).unwrap_or(0),
    ))?;
    conn.pragma_update(None, "synchronous", setup.synchronous)?;
    conn.pragma_update(None, "foreign_keys", setup.foreign_keys)?;
    Ok(conn)
}

/// Starts a writer thread on the pool's database file, or `None` when the database has no
/// file (in memory) or the file cannot be opened a second time (the sqlx path then reports
/// the real error, if any).
pub(super) async fn open(pool: &Pool<Sqlite>) -> Option<DirectWriter> {
    let setup = read_setup(pool).await.ok()??;
    let (opened_tx, opened_rx) = tokio::sync::oneshot::channel();
    let (jobs, queue) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("millrace-sqlite-writer".to_owned())
        .spawn(move || {
            let conn = match open_connection(&setup) {
                Ok(conn) => conn,
                Err(_) => {
                    let _ = opened_tx.send(false);
                    return;
                }
            };
            let _ = opened_tx.send(true);
            let mut writer = Writer {
                conn,
                failed: false,
                texts: HashMap::new(),
            };
            while let Ok(job) = queue.recv() {
                job(&mut writer);
            }
        })
        .ok()?;
    matches!(opened_rx.await, Ok(true)).then_some(DirectWriter { jobs })
}

type Answer = Result<Result<CommitOutcome, sqlx::Error>, Box<dyn Any + Send>>;

/// Sends the commit of `batch` to the thread; the future resolves to its outcome. A panic of
/// the rows' `push_values` on the thread is resumed in the future (it reaches the consumer).
pub(super) fn commit<P, T>(
    writer: &DirectWriter,
    sql: &SinkSql,
    plan: CommitPlan,
    batch: TrackedBatch<P, T>,
) -> BoxFuture<'static, Result<CommitOutcome, sqlx::Error>>
where
    P: Position,
    T: InsertRow<Sqlite> + Send + 'static,
{
    let (answer_tx, answer_rx) = tokio::sync::oneshot::channel::<Answer>();
    let sql = sql.clone();
    let job: Job = Box::new(move |writer: &mut Writer| {
        // The consumer is gone: nothing waits for this commit, do not start it.
        if answer_tx.is_closed() {
            return;
        }
        let answer = if writer.failed {
            Ok(Err(not_attempted(
                "not attempted: an earlier batch of this claim failed to commit",
            )))
        } else {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                commit_on(writer, &sql, &plan, &batch)
            }))
        };
        if !matches!(answer, Ok(Ok(CommitOutcome::Committed { .. }))) {
            writer.failed = true;
        }
        // The rows are freed here, on the writer thread.
        drop(batch);
        let _ = answer_tx.send(answer);
    });
    let sent = writer.jobs.send(job);
    Box::pin(async move {
        if sent.is_err() {
            return Err(not_attempted("the SQLite writer thread has ended"));
        }
        match answer_rx.await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(not_attempted("the SQLite writer thread has ended")),
        }
    })
}

fn not_attempted(why: &str) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(why.to_owned()))
}

#[cfg(test)]
mod tests {
    use millrace_core::positions::Positioned;
    use sqlx::error::ErrorKind;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    use super::super::row::RowValues;

    use super::*;

    async fn file_pool(dir: &tempfile::TempDir) -> SqlitePool {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("db.sqlite"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap();
        for statement in [
            "CREATE TABLE t (x INTEGER NOT NULL CHECK (x <> 13))",
            "CREATE TABLE offsets (pipeline TEXT NOT NULL, source TEXT NOT NULL, position TEXT \
             NOT NULL, epoch BIGINT NOT NULL, holder_host TEXT NOT NULL, holder_pid BIGINT NOT \
             NULL, heartbeat_ms BIGINT NOT NULL, committed BIGINT NOT NULL, dead_lettered \
             BIGINT NOT NULL, filtered BIGINT NOT NULL, PRIMARY KEY (pipeline, source))",
            "CREATE TABLE dead (pipeline TEXT, source TEXT, position TEXT, reason TEXT)",
            "INSERT INTO offsets VALUES ('p', 's', '', 1, 'h', 1, 0, 0, 0, 0)",
        ] {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        pool
    }

    fn sql() -> SinkSql {
        SinkSql {
            insert: "INSERT INTO t (x) ".to_owned(),
            on_conflict: String::new(),
            rows_per_statement: 2,
            offsets: "offsets".to_owned(),
            dead_letters: "dead".to_owned(),
        }
    }

    fn plan(position: u64) -> CommitPlan {
        CommitPlan {
            pipeline: "p".to_owned(),
            source: "s".to_owned(),
            epoch: 1,
            position: position.to_text(),
            now_ms: 0,
        }
    }

    fn batch(xs: &[(u64, i64)]) -> TrackedBatch<u64, (i64,)> {
        TrackedBatch::from_entries(xs.iter().map(|&(p, x)| Positioned::item(p, (x,))).collect())
            .unwrap()
    }

    async fn xs(pool: &SqlitePool) -> Vec<i64> {
        sqlx::query_scalar("SELECT x FROM t ORDER BY rowid")
            .fetch_all(pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_in_memory_database_has_no_writer_a_file_has_one() {
        let memory = SqlitePool::connect("sqlite::memory:").await.unwrap();
        assert!(open(&memory).await.is_none());
        let dir = tempfile::tempdir().unwrap();
        assert!(open(&file_pool(&dir).await).await.is_some());
    }

    #[tokio::test]
    async fn queued_batches_commit_in_order_with_their_positions() {
        let dir = tempfile::tempdir().unwrap();
        let pool = file_pool(&dir).await;
        let writer = open(&pool).await.unwrap();
        // Both sent before either is awaited: the second is queued behind the first.
        let first = commit(&writer, &sql(), plan(3), batch(&[(1, 1), (2, 2), (3, 3)]));
        let second = commit(&writer, &sql(), plan(4), batch(&[(4, 4)]));
        assert_eq!(
            first.await.unwrap(),
            CommitOutcome::Committed { rows_inserted: 3 }
        );
        assert_eq!(
            second.await.unwrap(),
            CommitOutcome::Committed { rows_inserted: 1 }
        );
        assert_eq!(xs(&pool).await, [1, 2, 3, 4]);
        let position: String = sqlx::query_scalar("SELECT position FROM offsets")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(position, "4");
    }

    #[tokio::test]
    async fn after_a_failed_commit_the_queued_one_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let pool = file_pool(&dir).await;
        let writer = open(&pool).await.unwrap();
        let failing = commit(&writer, &sql(), plan(2), batch(&[(1, 1), (2, 13)]));
        let queued = commit(&writer, &sql(), plan(3), batch(&[(3, 3)]));
        let err = failing.await.unwrap_err();
        assert!(
            matches!(&err, sqlx::Error::Database(e) if e.kind() == ErrorKind::CheckViolation),
            "{err:?}"
        );
        assert!(err.to_string().contains("CHECK constraint failed"), "{err}");
        let refused = queued.await.unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("an earlier batch of this claim failed"),
            "{refused}"
        );
        assert!(
            xs(&pool).await.is_empty(),
            "the failed batch rolled back whole"
        );
        let position: String = sqlx::query_scalar("SELECT position FROM offsets")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(position, "", "no position moved");
    }

    #[tokio::test]
    async fn a_wrong_epoch_is_fenced_and_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let pool = file_pool(&dir).await;
        let writer = open(&pool).await.unwrap();
        let mut stale = plan(1);
        stale.epoch = 0;
        let outcome = commit(&writer, &sql(), stale, batch(&[(1, 1)])).await;
        assert_eq!(outcome.unwrap(), CommitOutcome::Fenced);
        assert!(xs(&pool).await.is_empty());
    }

    struct Explodes;

    impl InsertRow<Sqlite> for Explodes {
        fn push_values<'args>(&'args self, _: &mut RowValues<'_, 'args, Sqlite>) {
            panic!("row encoding exploded");
        }
    }

    #[tokio::test]
    async fn a_panic_while_encoding_a_row_reaches_the_awaiting_task() {
        let dir = tempfile::tempdir().unwrap();
        let pool = file_pool(&dir).await;
        let writer = open(&pool).await.unwrap();
        let batch = TrackedBatch::from_entries(vec![Positioned::item(1u64, Explodes)]).unwrap();
        let awaited = tokio::spawn(commit(&writer, &sql(), plan(1), batch));
        let panic = tokio::time::timeout(std::time::Duration::from_secs(10), awaited)
            .await
            .expect("the commit answered")
            .unwrap_err();
        assert!(panic.is_panic());
        let message = panic.into_panic();
        assert_eq!(
            message.downcast_ref::<&str>(),
            Some(&"row encoding exploded")
        );
        assert!(xs(&pool).await.is_empty());
    }

    #[tokio::test]
    async fn a_commit_after_a_claimants_read_makes_its_take_over_fail() {
        use super::super::backend::{Backend, Holder};

        let dir = tempfile::tempdir().unwrap();
        let pool = file_pool(&dir).await;
        let ops = <Sqlite as Backend>::ops();
        let seen = ops
            .read_offsets(&pool, &sql(), "p", "s")
            .await
            .unwrap()
            .unwrap();
        // The previous holder's writer thread commits after that read (its claim was dropped
        // while the commit ran).
        let writer = open(&pool).await.unwrap();
        commit(&writer, &sql(), plan(1), batch(&[(1, 1)]))
            .await
            .unwrap();
        let me = Holder {
            host: "h2".to_owned(),
            pid: 2,
        };
        let stale = ops
            .take_over(&pool, &sql(), "p", "s", seen.epoch, &seen.position, &me, 0)
            .await
            .unwrap();
        assert!(
            !stale,
            "a take-over on a stale position must fail (it would resume too early)"
        );
        let fresh = ops
            .read_offsets(&pool, &sql(), "p", "s")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(fresh.position, "1");
        assert!(
            ops.take_over(
                &pool,
                &sql(),
                "p",
                "s",
                fresh.epoch,
                &fresh.position,
                &me,
                0
            )
            .await
            .unwrap()
        );
    }
}
