//! The `sql` adapters against a real SQLite file and a real PostgreSQL server.
//!
//! PostgreSQL: `scripts/test.sh` starts a throwaway server (`start_postgres` in
//! `scripts/services.sh`) and exports `MILLRACE_TEST_POSTGRES_URL`. Without it these tests fail,
//! unless `MILLRACE_SKIP_POSTGRES=1` says to skip them on purpose.
#![cfg(feature = "sql")]

use std::sync::atomic::{AtomicU32, Ordering};

use futures::{StreamExt, TryStreamExt, stream};
use millrace::adapters::sql::{self, BatchInsert, InsertError, InsertReport, RowsError};
use sqlx::{Pool, Postgres, Sqlite};

/// A name no other test (or earlier run against the same database) uses.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn sqlite() -> (tempfile::TempDir, Pool<Sqlite>) {
    let dir = tempfile::tempdir().unwrap();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("test.db"))
        .create_if_missing(true);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap();
    (dir, pool)
}

async fn postgres() -> Option<Pool<Postgres>> {
    let url = match std::env::var("MILLRACE_TEST_POSTGRES_URL") {
        Ok(url) => url,
        Err(_) if std::env::var("MILLRACE_SKIP_POSTGRES").as_deref() == Ok("1") => {
            eprintln!(
                "SKIPPED: PostgreSQL test (MILLRACE_SKIP_POSTGRES=1 and no MILLRACE_TEST_POSTGRES_URL)"
            );
            return None;
        }
        Err(_) => panic!(
            "MILLRACE_TEST_POSTGRES_URL is not set: start a throwaway server with \
             `source scripts/services.sh && start_postgres` (scripts/test.sh does this), \
             or set MILLRACE_SKIP_POSTGRES=1 to skip the PostgreSQL tests on purpose"
        ),
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to MILLRACE_TEST_POSTGRES_URL={url}: {e}"));
    Some(pool)
}

/// The same scenarios on every backend: `$pool` is an async expression giving
/// `Option<(guard, Pool<$db>)>`.
macro_rules! scenarios {
    ($module:ident, $db:ty, bad_bigint = $bad:literal, $pool:expr) => {
        mod $module {
            use super::*;

            type Db = $db;

            async fn pool() -> Option<(Box<dyn std::any::Any>, Pool<Db>)> {
                $pool
            }

            async fn count(pool: &Pool<Db>, sql: &str) -> i64 {
                sqlx::query_scalar::<Db, i64>(sql).fetch_one(pool).await.unwrap()
            }

            fn batches(n_batches: i64, size: i64) -> Vec<Vec<(i64, String)>> {
                (0..n_batches)
                    .map(|b| (0..size).map(|i| (b * size + i, format!("row {}", b * size + i))).collect())
                    .collect()
            }

            #[tokio::test]
            async fn rows_are_streamed_in_order() {
                let Some((_guard, pool)) = pool().await else { return };
                let table = unique("stream");
                sqlx::query(&format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT NOT NULL)"))
                    .execute(&pool)
                    .await
                    .unwrap();
                let report = BatchInsert::new(pool.clone(), &table, format!("INSERT INTO {table} (id, name) "))
                    .ledger_table(format!("{table}_batches"))
                    .run(stream::iter(batches(20, 500)))
                    .await
                    .unwrap();
                assert_eq!(report.rows_inserted, 10_000);

                let sql_text = format!("SELECT id, name FROM {table} ORDER BY id");
                let mut rows = sql::rows_as::<(i64, String), _, _>(&pool, sqlx::query(&sql_text));
                let first = rows.next().await.unwrap().unwrap();
                assert_eq!(first, (0, "row 0".to_owned()));
                assert_eq!(rows.rows_read(), 1);
                let mut expected = 1;
                while let Some(row) = rows.next().await {
                    let (id, name) = row.unwrap();
                    assert_eq!(id, expected);
                    assert_eq!(name, format!("row {id}"));
                    expected += 1;
                }
                assert_eq!(expected, 10_000);
                assert_eq!(rows.rows_read(), 10_000);
                assert!(rows.next().await.is_none(), "finished stays finished");
            }

            #[tokio::test]
            async fn an_undecodable_row_is_an_error_item_and_the_cursor_goes_on() {
                let Some((_guard, pool)) = pool().await else { return };
                let table = unique("decode");
                sqlx::query(&format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY, n BIGINT)"))
                    .execute(&pool)
                    .await
                    .unwrap();
                sqlx::query(&format!("INSERT INTO {table} (id, n) VALUES (1, 10), (2, {}), (3, 30)", $bad))
                    .execute(&pool)
                    .await
                    .unwrap();
                let sql_text = format!("SELECT n FROM {table} ORDER BY id");
                let items: Vec<_> = sql::rows_as::<(i64,), _, _>(&pool, sqlx::query(&sql_text))
                    .collect()
                    .await;
                assert_eq!(items.len(), 3);
                assert_eq!(items[0].as_ref().unwrap(), &(10,));
                let err = items[1].as_ref().unwrap_err();
                assert!(matches!(err, RowsError::Decode { row: 2, .. }), "{err:?}");
                assert!(err.to_string().starts_with("row 2 cannot be decoded"), "{err}");
                assert_eq!(items[2].as_ref().unwrap(), &(30,));
            }

            #[tokio::test]
            async fn a_failing_query_is_one_error_then_the_end() {
                let Some((_guard, pool)) = pool().await else { return };
                let items: Vec<_> = sql::rows(&pool, sqlx::query("SELECT * FROM millrace_no_such_table"))
                    .collect()
                    .await;
                assert_eq!(items.len(), 1);
                let err = items[0].as_ref().err().expect("an error item");
                assert!(matches!(err, RowsError::Query { rows_read: 0, .. }), "{err:?}");
                assert!(std::error::Error::source(err).is_some());
            }

            #[tokio::test]
            async fn a_rerun_after_a_failure_midway_leaves_exactly_one_copy_of_each_row() {
                let Some((_guard, pool)) = pool().await else { return };
                let table = unique("retry");
                // No key on `id`: only the ledger stands between a re-run and duplicates.
                sqlx::query(&format!("CREATE TABLE {table} (id BIGINT NOT NULL, name TEXT NOT NULL)"))
                    .execute(&pool)
                    .await
                    .unwrap();
                let sink = BatchInsert::new(pool.clone(), &table, format!("INSERT INTO {table} (id, name) "))
                    .ledger_table(format!("{table}_batches"));
                let all = batches(6, 10);

                // Run 1: the source fails where batch 3 should be.
                let failing = stream::iter(all.clone().into_iter().enumerate().map(|(i, b)| {
                    if i == 3 { Err("source failed at batch 3") } else { Ok(b) }
                }));
                let err = sink.try_run(failing).await.unwrap_err();
                assert!(
                    matches!(err, InsertError::Upstream { seq: 3, source: "source failed at batch 3", .. }),
                    "{err:?}"
                );
                assert_eq!(err.report().batches_committed, 3);
                assert_eq!(err.report().rows_inserted, 30);
                assert_eq!(count(&pool, &format!("SELECT COUNT(*) FROM {table}")).await, 30);

                // Run 2 (the retry): the same batches from the start.
                let report = sink.run(stream::iter(all.clone())).await.unwrap();
                let mut expected = InsertReport::default();
                expected.batches_committed = 3;
                expected.rows_inserted = 30;
                expected.batches_skipped = 3;
                expected.next_seq = 6;
                assert_eq!(report, expected);

                // Run 3: everything is in already.
                let report = sink.run(stream::iter(all)).await.unwrap();
                assert_eq!((report.batches_committed, report.batches_skipped), (0, 6));

                assert_eq!(count(&pool, &format!("SELECT COUNT(*) FROM {table}")).await, 60);
                assert_eq!(count(&pool, &format!("SELECT COUNT(DISTINCT id) FROM {table}")).await, 60);
            }

            #[tokio::test]
            async fn a_failing_batch_is_rolled_back_whole_even_across_statements() {
                let Some((_guard, pool)) = pool().await else { return };
                let table = unique("rollback");
                sqlx::query(&format!(
                    "CREATE TABLE {table} (id BIGINT NOT NULL, name TEXT NOT NULL CHECK (name <> 'poison'))"
                ))
                .execute(&pool)
                .await
                .unwrap();
                let sink = BatchInsert::new(pool.clone(), &table, format!("INSERT INTO {table} (id, name) "))
                    .ledger_table(format!("{table}_batches"))
                    .rows_per_statement(100);
                let mut all = batches(5, 250); // 3 statements per batch
                all[3][240].1 = "poison".to_owned(); // in the batch's last statement

                let err = sink.run(stream::iter(all.clone())).await.unwrap_err();
                assert!(matches!(err, InsertError::Batch { seq: 3, .. }), "{err:?}");
                assert!(err.to_string().starts_with("batch insert: batch 3 failed and was rolled back (3 batches committed before it)"), "{err}");
                assert_eq!(count(&pool, &format!("SELECT COUNT(*) FROM {table}")).await, 750);
                let ledger = count(&pool, &format!("SELECT COUNT(*) FROM {table}_batches")).await;
                assert_eq!(ledger, 3, "the failed batch's key was rolled back with it");

                // Fixed input, re-run: batches 0-2 skipped, 3 and 4 committed.
                all[3][240].1 = "fixed".to_owned();
                let report = sink.run(stream::iter(all)).await.unwrap();
                assert_eq!((report.batches_committed, report.batches_skipped, report.rows_inserted), (2, 3, 500));
                assert_eq!(count(&pool, &format!("SELECT COUNT(DISTINCT id) FROM {table}")).await, 1250);
                assert_eq!(count(&pool, &format!("SELECT COUNT(*) FROM {table}")).await, 1250);
            }

            #[tokio::test]
            async fn keyed_rows_stay_single_when_batch_boundaries_shift() {
                let Some((_guard, pool)) = pool().await else { return };
                let table = unique("keyed");
                sqlx::query(&format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT NOT NULL)"))
                    .execute(&pool)
                    .await
                    .unwrap();
                let rows: Vec<(i64, String)> = (0..100).map(|i| (i, format!("r{i}"))).collect();
                let sink = BatchInsert::new(pool.clone(), &table, format!("INSERT INTO {table} (id, name) "))
                    .ledger_table(format!("{table}_batches"))
                    .on_conflict("ON CONFLICT (id) DO NOTHING");

                // First run: batches of 30, stopped after two batches.
                let first: Vec<Vec<_>> = rows.chunks(30).take(2).map(<[_]>::to_vec).collect();
                sink.run(stream::iter(first)).await.unwrap();
                // Re-run with batches of 40 (time-based batching shifts boundaries): the ledger
                // keys differ, so batch 0 and 1 are not skipped, but the rows are not doubled.
                let second: Vec<Vec<_>> = rows.chunks(40).map(<[_]>::to_vec).collect();
                let report = sink.start_at(100).run(stream::iter(second)).await.unwrap();
                assert_eq!(report.batches_committed, 3);
                assert_eq!(report.rows_inserted, 40);
                assert_eq!(report.rows_ignored, 60);
                assert_eq!(report.next_seq, 103);
                assert_eq!(count(&pool, &format!("SELECT COUNT(*) FROM {table}")).await, 100);
            }

            #[tokio::test]
            async fn sinks_with_different_names_share_a_ledger_independently() {
                let Some((_guard, pool)) = pool().await else { return };
                let table = unique("names");
                sqlx::query(&format!("CREATE TABLE {table} (id BIGINT NOT NULL, name TEXT NOT NULL)"))
                    .execute(&pool)
                    .await
                    .unwrap();
                let ledger = format!("{table}_batches");
                let insert = format!("INSERT INTO {table} (id, name) ");
                let a = BatchInsert::new(pool.clone(), "a", insert.clone()).ledger_table(&ledger);
                let b = BatchInsert::new(pool.clone(), "b", insert).ledger_table(&ledger);
                assert_eq!(a.run(stream::iter(batches(2, 3))).await.unwrap().batches_committed, 2);
                assert_eq!(b.run(stream::iter(batches(2, 3))).await.unwrap().batches_committed, 2);
                assert_eq!(a.run(stream::iter(batches(2, 3))).await.unwrap().batches_skipped, 2);
                assert_eq!(count(&pool, &format!("SELECT COUNT(*) FROM {table}")).await, 12);
            }

            #[tokio::test]
            async fn commit_each_after_batch_hands_on_durable_batches_and_reruns_cleanly() {
                use millrace::prelude::*;
                use millrace::adapters::sql::{BatchOutcome, Committed};
                let Some((_guard, pool)) = pool().await else { return };
                let table = unique("commit_each");
                sqlx::query(&format!(
                    "CREATE TABLE {table} (id BIGINT NOT NULL, name TEXT NOT NULL CHECK (name <> 'poison'))"
                ))
                .execute(&pool)
                .await
                .unwrap();
                let sink = BatchInsert::new(pool.clone(), &table, format!("INSERT INTO {table} (id, name) "))
                    .ledger_table(format!("{table}_batches"));
                let rows = |poison: bool| {
                    stream::iter(0..95_i64)
                        .map(move |i| (i, if poison && i == 34 { "poison".to_owned() } else { format!("n{i}") }))
                        .batch(10)
                };

                // Run 1: batch 3 (rows 30..40) violates the CHECK; the stream yields the three
                // durable batches, then the error, then ends.
                let items: Vec<_> = sink.clone().commit_each(rows(true)).collect().await;
                assert_eq!(items.len(), 4);
                for (seq, item) in items[..3].iter().enumerate() {
                    let Committed { seq: got, outcome, rows } = item.as_ref().unwrap();
                    assert_eq!(*got, seq as u64);
                    assert_eq!(*outcome, BatchOutcome::Committed { rows_inserted: 10 });
                    assert_eq!(rows[0].0, seq as i64 * 10);
                }
                let err = items[3].as_ref().unwrap_err();
                assert!(matches!(err, InsertError::Batch { seq: 3, .. }), "{err:?}");
                assert_eq!(err.report().batches_committed, 3);
                assert_eq!(count(&pool, &format!("SELECT COUNT(*) FROM {table}")).await, 30);

                // Run 2, the retry with the source fixed.
                let mut commits = sink.commit_each(rows(false));
                let mut outcomes = Vec::new();
                while let Some(item) = commits.next().await {
                    outcomes.push(item.unwrap().outcome);
                }
                assert_eq!(outcomes[..3], [BatchOutcome::AlreadyCommitted; 3]);
                assert_eq!(outcomes[9], BatchOutcome::Committed { rows_inserted: 5 });
                let report = commits.report();
                assert_eq!(
                    (report.batches_committed, report.batches_skipped, report.rows_inserted, report.next_seq),
                    (7, 3, 65, 10)
                );
                assert!(commits.is_terminated());
                assert_eq!(count(&pool, &format!("SELECT COUNT(*) FROM {table}")).await, 95);
                assert_eq!(count(&pool, &format!("SELECT COUNT(DISTINCT id) FROM {table}")).await, 95);
            }

            #[tokio::test]
            async fn the_sink_runs_on_a_spawned_task_fed_by_a_pipeline() {
                let Some((_guard, pool)) = pool().await else { return };
                let table = unique("spawned");
                sqlx::query(&format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT NOT NULL)"))
                    .execute(&pool)
                    .await
                    .unwrap();
                let sink = BatchInsert::new(pool.clone(), table.clone(), format!("INSERT INTO {table} (id, name) "))
                    .ledger_table(format!("{table}_batches"));
                let pipeline = stream::iter(0..1000_i64).map(|i| (i, i.to_string())).chunks(64);
                let report = tokio::spawn(async move { sink.run(pipeline).await }).await.unwrap().unwrap();
                assert_eq!((report.batches_committed, report.rows_inserted), (16, 1000));
                let select = format!("SELECT id FROM {table} ORDER BY id");
                let ids: Vec<i64> = sql::rows_as::<(i64,), _, _>(&pool, sqlx::query(&select))
                    .map_ok(|(id,)| id)
                    .try_collect()
                    .await
                    .unwrap();
                assert_eq!(ids, (0..1000).collect::<Vec<_>>());
            }
        }
    };
}

// SQLite reads NULL as 0 for an integer, but refuses a text value; PostgreSQL refuses NULL.
scenarios!(on_sqlite, Sqlite, bad_bigint = "'ten'", {
    let (dir, pool) = sqlite().await;
    Some((Box::new(dir) as Box<dyn std::any::Any>, pool))
});

scenarios!(on_postgres, Postgres, bad_bigint = "NULL", {
    postgres()
        .await
        .map(|pool| (Box::new(()) as Box<dyn std::any::Any>, pool))
});

#[tokio::test]
async fn sqlite_in_memory_is_shared_by_the_pool() {
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    sqlx::query("CREATE TABLE t (id INTEGER)")
        .execute(&pool)
        .await
        .unwrap();
    let sink = BatchInsert::new(pool.clone(), "t", "INSERT INTO t (id) ");
    let report = sink
        .run(stream::iter([vec![(1_i64,), (2,)], vec![(3,)]]))
        .await
        .unwrap();
    assert_eq!(report.rows_inserted, 3);
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 3);
}

#[tokio::test]
#[should_panic(
    expected = "`BatchInsert`: `rows_per_statement` must be at least 1, got 0; pass a non-zero value"
)]
async fn zero_rows_per_statement_panics() {
    let pool = sqlx::SqlitePool::connect_lazy("sqlite::memory:").unwrap();
    let _ = BatchInsert::new(pool, "t", "INSERT INTO t VALUES ").rows_per_statement(0);
}

#[test]
fn streams_and_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let pool = sqlx::SqlitePool::connect_lazy("sqlite::memory:").unwrap();
    assert_send(&sql::rows(&pool, sqlx::query("SELECT 1")));
    let sink = BatchInsert::new(pool, "t", "INSERT INTO t (id) ");
    assert_send(&sink);
    assert_send(&sink.run(stream::iter([vec![(1_i64,)]])));
}

#[tokio::test]
async fn the_cursor_streams_a_huge_result_without_loading_it() {
    // A billion rows: only a cursor that streams can hand out the first three at once.
    let (_dir, pool) = sqlite().await;
    let query = sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) \
         SELECT i FROM n",
    );
    let first = async {
        sql::rows_as::<(i64,), _, _>(&pool, query)
            .take(3)
            .map_ok(|(i,)| i)
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
    };
    // Real-time bound as a hang guard only; the answer takes milliseconds.
    let first = tokio::time::timeout(std::time::Duration::from_secs(60), first)
        .await
        .expect("the cursor must not load the whole result");
    assert_eq!(first, [1, 2, 3]);
    // The connection is usable again afterwards.
    let n: i64 = sqlx::query_scalar("SELECT 41 + 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 42);
}
