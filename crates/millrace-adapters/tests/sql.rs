//! The `sql` adapters against a real SQLite file and a real PostgreSQL server.
//!
//! PostgreSQL: `scripts/test.sh` starts a throwaway server (`start_postgres` in
//! `scripts/services.sh`) and exports `MILLRACE_TEST_POSTGRES_URL`. Without it these tests fail,
//! unless `MILLRACE_SKIP_POSTGRES=1` says to skip them on purpose.
#![cfg(feature = "sql")]

#[path = "support/db.rs"]
mod db;
use db::{postgres, sqlite, unique};

use futures::stream::FusedStream;
use futures::{StreamExt, TryStreamExt, stream};
use millrace::adapters::sql::{self, BatchInsert, InsertError, RowsError};
use millrace::positions::{Positioned, TrackedBatch};
use millrace::testing::tracked_source;
use sqlx::{Pool, Postgres, Sqlite};

/// The same scenarios on every backend: `$pool` is an async expression giving
/// `Option<(guard, Pool<$db>)>`.
macro_rules! scenarios {
    ($module:ident, $db:ty, bad_bigint = $bad:literal, fail_on_row = $fail:path, drop_trigger = $drop:path, $pool:expr) => {
        mod $module {
            use super::*;

            fn fail_on_row_sql(table: &str, trigger: &str, id: i64) -> Vec<String> {
                $fail(table, trigger, id)
            }

            fn drop_trigger_sql(table: &str, trigger: &str) -> String {
                $drop(table, trigger)
            }

            type Db = $db;

            async fn pool() -> Option<(Box<dyn std::any::Any>, Pool<Db>)> {
                $pool
            }

            pub(super) async fn count(pool: &Pool<Db>, sql: &str) -> i64 {
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
                let (table, sink) = table(&pool, "stream", "id BIGINT PRIMARY KEY, name TEXT NOT NULL").await;
                let report = sink
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
                let (table, _) = table(&pool, "decode", "id BIGINT PRIMARY KEY, n BIGINT").await;
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

            /// A new table of `columns` (a unique name from `prefix`), and a sink inserting
            /// `(id, name)` rows into it with its own offsets and dead-letter tables.
            pub(super) async fn table(pool: &Pool<Db>, prefix: &str, columns: &str) -> (String, BatchInsert<Db>) {
                let table = unique(prefix);
                sqlx::query(&format!("CREATE TABLE {table} ({columns})")).execute(pool).await.unwrap();
                let sink = BatchInsert::new(pool.clone(), table.clone(), format!("INSERT INTO {table} (id, name) "))
                    .offsets_table(format!("{table}_offsets"))
                    .dead_letter_table(format!("{table}_dead"));
                (table, sink)
            }

            pub(super) fn rows(n: i64) -> Vec<(i64, String)> {
                (0..n).map(|i| (i, format!("row {i}"))).collect()
            }

            pub(super) async fn ids(pool: &Pool<Db>, table: &str) -> Vec<i64> {
                sqlx::query_scalar::<Db, i64>(&format!("SELECT id FROM {table} ORDER BY id"))
                    .fetch_all(pool)
                    .await
                    .unwrap()
            }

            /// The data of the issue: run 1 commits rows 0..10 as batches of 5, run 2 re-reads
            /// rows 0..16 as batches of 8 (what time-based batching does when timings differ).
            /// The seq ledger lost rows 10..16 here; positions lose nothing.
            #[tokio::test]
            async fn shifted_batch_boundaries_lose_nothing() {
                let Some((_guard, pool)) = pool().await else { return };
                let (table, sink) = table(&pool, "shifted", "id BIGINT PRIMARY KEY, name TEXT NOT NULL").await;
                let sink = sink.on_conflict("ON CONFLICT (id) DO NOTHING");

                let claim = sink.claim::<u64>("input").await.unwrap();
                let report = claim.run(tracked_source(rows(10), None).batch(5)).await.unwrap();
                assert_eq!((report.batches_committed, report.rows_inserted), (2, 10));

                let claim = sink.claim::<u64>("input").await.unwrap();
                assert_eq!(claim.resume_after(), Some(&10));
                let source = tracked_source(rows(16), claim.resume_after().copied());
                let report = claim.run(source.batch(8)).await.unwrap();
                assert_eq!((report.batches_committed, report.rows_inserted, report.rows_ignored), (1, 6, 0));
                assert_eq!(ids(&pool, &table).await, (0..16).collect::<Vec<_>>());

                // Another input of the same pipeline has its own position: its rows go in.
                let claim = sink.claim::<u64>("other input").await.unwrap();
                assert_eq!(claim.resume_after(), None);
                let other: Vec<(i64, String)> = (100..103).map(|i| (i, format!("o{i}"))).collect();
                let report = claim.run(tracked_source(other, None).batch(8)).await.unwrap();
                assert_eq!(report.rows_inserted, 3);
                assert_eq!(count(&pool, &format!("SELECT COUNT(*) FROM {table}")).await, 19);
            }

            /// No key on `id`: only the committed position stands between a re-run and
            /// duplicates.
            #[tokio::test]
            async fn an_upstream_failure_midway_resumes_after_the_last_commit() {
                let Some((_guard, pool)) = pool().await else { return };
                let (table, sink) = table(&pool, "resume", "id BIGINT NOT NULL, name TEXT NOT NULL").await;
                let all = rows(60);

                let claim = sink.claim::<u64>("input").await.unwrap();
                let failing = tracked_source(all.clone(), None)
                    .map(|row| if row.0 == 35 { Err("source failed at row 35") } else { Ok(row) })
                    .batch(10)
                    .via(|batches| {
                        batches.map(|b| {
                            let failed = b.items().iter().any(Result::is_err);
                            if failed { Err("source failed at row 35") } else { Ok(b.map(Result::unwrap)) }
                        })
                    });
                let err = claim.run(failing).await.unwrap_err();
                assert!(matches!(err, InsertError::Upstream { source: "source failed at row 35", .. }), "{err:?}");
                assert_eq!((err.report().batches_committed, err.report().rows_inserted), (3, 30));
                assert_eq!(count(&pool, &format!("SELECT COUNT(*) FROM {table}")).await, 30);

                for _ in 0..2 {
                    // The retry, and a retry of the retry: each resumes where the last stopped.
                    let claim = sink.claim::<u64>("input").await.unwrap();
                    let source = tracked_source(all.clone(), claim.resume_after().copied());
                    claim.run(source.batch(7)).await.unwrap();
                }
                assert_eq!(ids(&pool, &table).await, (0..60).collect::<Vec<_>>());
            }

            #[tokio::test]
            async fn a_failing_batch_is_rolled_back_whole_with_its_position() {
                let Some((_guard, pool)) = pool().await else { return };
                let (table, sink) = table(
                    &pool,
                    "rollback",
                    "id BIGINT NOT NULL, name TEXT NOT NULL CHECK (name <> 'poison')",
                )
                .await;
                let sink = sink.rows_per_statement(100);
                let mut all = rows(1250); // batches of 250: 3 statements each
                all[990].1 = "poison".to_owned(); // in batch 3's last statement

                let claim = sink.claim::<u64>("input").await.unwrap();
                let err = claim.run(tracked_source(all.clone(), None).batch(250)).await.unwrap_err();
                assert!(matches!(err, InsertError::Batch { .. }), "{err:?}");
                assert!(err.to_string().starts_with("batch insert: a batch failed and was rolled back (3 batches committed before it)"), "{err}");
                assert_eq!(count(&pool, &format!("SELECT COUNT(*) FROM {table}")).await, 750);
                let position: String = sqlx::query_scalar(&format!("SELECT position FROM {table}_offsets"))
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                assert_eq!(position, "750", "the failed batch's position was rolled back with it");

                all[990].1 = "fixed".to_owned();
                let claim = sink.claim::<u64>("input").await.unwrap();
                let source = tracked_source(all, claim.resume_after().copied());
                let report = claim.run(source.batch(300)).await.unwrap();
                assert_eq!((report.batches_committed, report.rows_inserted), (2, 500));
                assert_eq!(ids(&pool, &table).await, (0..1250).collect::<Vec<_>>());
            }

            /// The database fails on the 4th commit (a trigger), then works again.
            #[tokio::test]
            async fn the_nth_commit_failing_in_the_database_loses_nothing() {
                let Some((_guard, pool)) = pool().await else { return };
                let (table, sink) = table(&pool, "trigger", "id BIGINT NOT NULL, name TEXT NOT NULL").await;
                let trigger = format!("{table}_fail");
                for statement in fail_on_row_sql(&table, &trigger, 35) {
                    sqlx::query(&statement).execute(&pool).await.unwrap();
                }
                let claim = sink.claim::<u64>("input").await.unwrap();
                let err = claim.run(tracked_source(rows(100), None).batch(10)).await.unwrap_err();
                assert!(matches!(err, InsertError::Batch { report, .. } if report.batches_committed == 3), "{err:?}");
                assert_eq!(count(&pool, &format!("SELECT COUNT(*) FROM {table}")).await, 30);

                sqlx::query(&drop_trigger_sql(&table, &trigger)).execute(&pool).await.unwrap();
                let claim = sink.claim::<u64>("input").await.unwrap();
                let source = tracked_source(rows(100), claim.resume_after().copied());
                claim.run(source.batch(10)).await.unwrap();
                assert_eq!(ids(&pool, &table).await, (0..100).collect::<Vec<_>>());
            }

            #[tokio::test]
            async fn a_second_writer_is_refused_and_a_fenced_writer_commits_nothing() {
                let Some((_guard, pool)) = pool().await else { return };
                let (table, sink) = table(&pool, "fence", "id BIGINT NOT NULL, name TEXT NOT NULL").await;
                let mut first = sink.claim::<u64>("input").await.unwrap();
                let err = sink.claim::<u64>("input").await.unwrap_err();
                assert!(matches!(err, InsertError::Held { .. }), "{err:?}");
                let text = err.to_string();
                assert!(text.contains(&format!("is being written by pid {} on ", std::process::id())), "{text}");
                assert!(text.contains("wait for it to finish or stop it"), "{text}");

                // The first writer goes silent past its lease (as a paused process would):
                // the next claim takes over with a new epoch.
                sqlx::query(&format!("UPDATE {table}_offsets SET heartbeat_ms = 0"))
                    .execute(&pool)
                    .await
                    .unwrap();
                let mut second = sink.claim::<u64>("input").await.unwrap();
                assert_eq!((first.epoch(), second.epoch()), (1, 2));

                // The first wakes up and commits: refused by the epoch check, nothing written.
                let batch = |from: i64| {
                    let entries = (from..from + 5)
                        .map(|i| Positioned::item(i as u64 + 1, (i, format!("row {i}"))))
                        .collect();
                    TrackedBatch::from_entries(entries).unwrap()
                };
                let err = first.commit(&batch(0)).await.unwrap_err();
                assert!(matches!(err, InsertError::Fenced { epoch: 1, .. }), "{err:?}");
                assert!(err.to_string().contains("was taken over by another process"), "{err}");
                assert_eq!(count(&pool, &format!("SELECT COUNT(*) FROM {table}")).await, 0);
                second.commit(&batch(0)).await.unwrap();
                assert_eq!(count(&pool, &format!("SELECT COUNT(*) FROM {table}")).await, 5);
                // The fenced claim stays fenced.
                assert!(matches!(first.commit(&batch(5)).await, Err(InsertError::Fenced { .. })));
            }

            #[tokio::test]
            async fn dead_letters_and_filtered_entries_commit_with_the_rows_and_balance() {
                let Some((_guard, pool)) = pool().await else { return };
                let (table, sink) = table(&pool, "dead", "id BIGINT NOT NULL, name TEXT NOT NULL").await;
                let claim = sink.claim::<u64>("input").await.unwrap();
                let source = tracked_source(rows(20), None);
                let accounting = source.accounting();
                let report = claim
                    .run(
                        source
                            .filter(|(id, _)| id % 5 != 0)
                            .validate(|(id, _)| if id % 7 == 3 { Err(format!("id {id} is bad")) } else { Ok(()) })
                            .batch_within(6, std::time::Duration::from_millis(50)),
                    )
                    .await
                    .unwrap();
                // Filtered: 0, 5, 10, 15; dead letters: 3 and 17 (10 was filtered before validation).
                assert_eq!((report.rows_inserted, report.dead_lettered, report.filtered), (14, 2, 4));
                assert_eq!(accounting.check().unwrap().to_string(), "read 20 = committed 14 + dead-lettered 2 + filtered 4");
                let dead: Vec<(String, String)> =
                    sqlx::query_as(&format!("SELECT position, reason FROM {table}_dead ORDER BY reason"))
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                assert_eq!(
                    dead,
                    [("18", "id 17 is bad"), ("4", "id 3 is bad")]
                        .map(|(p, r)| (p.to_owned(), r.to_owned()))
                );
                let totals: (i64, i64, i64) = sqlx::query_as(&format!(
                    "SELECT committed, dead_lettered, filtered FROM {table}_offsets"
                ))
                .fetch_one(&pool)
                .await
                .unwrap();
                assert_eq!(totals, (14, 2, 4));
            }

            #[tokio::test]
            async fn commit_each_yields_each_durable_batch_then_the_error_then_ends() {
                let Some((_guard, pool)) = pool().await else { return };
                let (table, sink) = table(
                    &pool,
                    "commit_each",
                    "id BIGINT NOT NULL, name TEXT NOT NULL CHECK (name <> 'poison')",
                )
                .await;
                let mut all = rows(95);
                all[34].1 = "poison".to_owned();
                let claim = sink.claim::<u64>("input").await.unwrap();
                let mut commits = claim.commit_each(tracked_source(all.clone(), None).batch(10));
                let mut items = Vec::new();
                while let Some(item) = commits.next().await {
                    items.push(item);
                }
                assert!(commits.is_terminated());
                assert_eq!(items.len(), 4);
                let positions: Vec<u64> = items[..3].iter().map(|c| c.as_ref().unwrap().position).collect();
                assert_eq!(positions, [10, 20, 30]);
                assert!(matches!(items[3], Err(InsertError::Batch { .. })));
                assert_eq!(commits.position(), Some(&30));
                assert_eq!(count(&pool, &format!("SELECT COUNT(*) FROM {table}")).await, 30);
                // The claim was released at the end: the next run claims at once.
                all[34].1 = "fixed".to_owned();
                let claim = sink.claim::<u64>("input").await.unwrap();
                let source = tracked_source(all, claim.resume_after().copied());
                assert_eq!(claim.run(source.batch(10)).await.unwrap().rows_inserted, 65);
                assert_eq!(ids(&pool, &table).await, (0..95).collect::<Vec<_>>());
            }

            #[tokio::test]
            async fn the_sink_runs_on_a_spawned_task_fed_by_a_pipeline() {
                let Some((_guard, pool)) = pool().await else { return };
                let (table, sink) = table(&pool, "spawned", "id BIGINT PRIMARY KEY, name TEXT NOT NULL").await;
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

/// A trigger that makes the insert of row `id` fail (SQLite).
fn sqlite_fail_on_row(table: &str, trigger: &str, id: i64) -> Vec<String> {
    vec![format!(
        "CREATE TRIGGER {trigger} BEFORE INSERT ON {table} WHEN NEW.id = {id} \
         BEGIN SELECT RAISE(ABORT, 'injected failure at row {id}'); END"
    )]
}

fn sqlite_drop_trigger(_table: &str, trigger: &str) -> String {
    format!("DROP TRIGGER {trigger}")
}

/// A trigger that makes the insert of row `id` fail (PostgreSQL).
fn postgres_fail_on_row(table: &str, trigger: &str, id: i64) -> Vec<String> {
    vec![
        format!(
            "CREATE FUNCTION {trigger}() RETURNS trigger AS $$ BEGIN \
             IF NEW.id = {id} THEN RAISE EXCEPTION 'injected failure at row {id}'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql"
        ),
        format!(
            "CREATE TRIGGER {trigger} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {trigger}()"
        ),
    ]
}

fn postgres_drop_trigger(table: &str, trigger: &str) -> String {
    format!("DROP TRIGGER {trigger} ON {table}")
}

// SQLite reads NULL as 0 for an integer, but refuses a text value; PostgreSQL refuses NULL.
scenarios!(
    on_sqlite,
    Sqlite,
    bad_bigint = "'ten'",
    fail_on_row = sqlite_fail_on_row,
    drop_trigger = sqlite_drop_trigger,
    {
        let (dir, pool) = sqlite().await;
        Some((Box::new(dir) as Box<dyn std::any::Any>, pool))
    }
);

scenarios!(
    on_postgres,
    Postgres,
    bad_bigint = "NULL",
    fail_on_row = postgres_fail_on_row,
    drop_trigger = postgres_drop_trigger,
    {
        postgres()
            .await
            .map(|pool| (Box::new(()) as Box<dyn std::any::Any>, pool))
    }
);

/// PostgreSQL: the server drops the sink's connection in the middle of a commit (a trigger
/// terminates its own backend at row 57): the batch is not half-committed, the error says
/// what happened, and the next run resumes and loses nothing.
#[tokio::test]
async fn postgres_connection_dropped_mid_transaction_loses_nothing() {
    let Some(pool) = postgres().await else { return };
    let (table, sink) =
        on_postgres::table(&pool, "dropped", "id BIGINT NOT NULL, name TEXT NOT NULL").await;
    let trigger = format!("{table}_kill");
    sqlx::query(&format!(
        "CREATE FUNCTION {trigger}() RETURNS trigger AS $$ BEGIN \
         IF NEW.id = 57 AND NOT EXISTS (SELECT 1 FROM {table}_armed) THEN \
         PERFORM pg_terminate_backend(pg_backend_pid()); END IF; RETURN NEW; END $$ \
         LANGUAGE plpgsql"
    ))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(&format!("CREATE TABLE {table}_armed (x INT)"))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(&format!(
        "CREATE TRIGGER {trigger} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {trigger}()"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let rows = on_postgres::rows(100);

    let claim = sink.claim::<u64>("input").await.unwrap();
    let err = claim
        .run(tracked_source(rows.clone(), None).batch(10))
        .await
        .unwrap_err();
    assert!(
        matches!(err, InsertError::Batch { report, .. } if report.batches_committed == 5),
        "{err:?}"
    );
    assert_eq!(
        on_postgres::count(&pool, &format!("SELECT COUNT(*) FROM {table}")).await,
        50,
        "batch 5 is all or nothing"
    );

    // The fault is gone (the trigger is disarmed); the next run resumes after row 49.
    sqlx::query(&format!("INSERT INTO {table}_armed VALUES (1)"))
        .execute(&pool)
        .await
        .unwrap();
    let claim = sink.claim::<u64>("input").await.unwrap();
    assert_eq!(claim.resume_after(), Some(&50));
    let source = tracked_source(rows, claim.resume_after().copied());
    claim.run(source.batch(10)).await.unwrap();
    assert_eq!(
        on_postgres::ids(&pool, &table).await,
        (0..100).collect::<Vec<_>>()
    );
}

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
