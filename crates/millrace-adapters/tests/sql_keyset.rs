//! `sql::keyset`, the keyset cursor source, against a real SQLite file and a real PostgreSQL
//! server.
//!
//! PostgreSQL: `scripts/test.sh` starts a throwaway server (`start_postgres` in
//! `scripts/services.sh`) and exports `MILLRACE_TEST_POSTGRES_URL`. Without it these tests fail,
//! unless `MILLRACE_SKIP_POSTGRES=1` says to skip them on purpose.
#![cfg(feature = "sql")]

#[path = "support/db.rs"]
mod db;
use db::{postgres, sqlite, unique};

use std::time::Duration;

use futures::StreamExt;
use millrace::adapters::sql::{self, BatchInsert, InsertError, RowsError};
use millrace::positions::Entry;
use sqlx::{Pool, Postgres, Sqlite};

/// The same scenarios on every backend: `$pool` is an async expression giving
/// `Option<(guard, Pool<$db>)>`.
macro_rules! scenarios {
    ($module:ident, $db:ty, $pool:expr) => {
        mod $module {
            use super::*;

            type Db = $db;

            async fn pool() -> Option<(Box<dyn std::any::Any>, Pool<Db>)> {
                $pool
            }

            /// A table `(id BIGINT PRIMARY KEY, name TEXT)` with `keys`, inserted in reverse
            /// order (so the physical order is not the key order).
            async fn books(pool: &Pool<Db>, keys: impl DoubleEndedIterator<Item = i64>) -> String {
                let table = unique("keyset_books");
                sqlx::query(&format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT NOT NULL)"))
                    .execute(pool)
                    .await
                    .unwrap();
                let insert = format!("INSERT INTO {table} (id, name) ");
                let rows: Vec<(i64, String)> = keys.rev().map(|k| (k, format!("book {k}"))).collect();
                BatchInsert::new(pool.clone(), "setup", insert)
                    .run(futures::stream::iter(rows.chunks(400).map(<[_]>::to_vec)))
                    .await
                    .unwrap();
                table
            }

            #[tokio::test]
            async fn pages_in_key_order_and_resumes_after_a_key() {
                let Some((_guard, pool)) = pool().await else { return };
                let keys: Vec<i64> = (1..=2_500).map(|i| i * 3).collect();
                let table = books(&pool, keys.iter().copied()).await;
                let select = format!("SELECT id, name FROM {table}");

                let all: Vec<_> = sql::keyset::<(i64, String), _>(&pool, select.as_str(), "id")
                    .page_size(100)
                    .tracked()
                    .collect()
                    .await;
                let positions: Vec<i64> = all.iter().map(|p| p.position).collect();
                assert_eq!(positions, keys, "every row once, in key order, at its key");
                assert!(all.iter().all(|p| matches!(&p.entry,
                    Entry::Item(Ok((id, name))) if *id == p.position && *name == format!("book {id}"))));

                // Resume after key 3000 (row 1000): rows 1001..=2500, and a page boundary that
                // does not fall on a multiple of the page size.
                let rest: Vec<_> = sql::keyset::<(i64, String), _>(&pool, select.as_str(), "id")
                    .page_size(7)
                    .resume_after(Some(3_000))
                    .tracked()
                    .collect()
                    .await;
                let positions: Vec<i64> = rest.iter().map(|p| p.position).collect();
                assert_eq!(positions, keys[1_000..]);

                // Resuming after the last key reads nothing.
                let none = sql::keyset::<(i64, String), _>(&pool, select.as_str(), "id")
                    .resume_after(Some(7_500))
                    .tracked()
                    .count()
                    .await;
                assert_eq!(none, 0);
            }

            #[tokio::test]
            async fn a_where_clause_in_the_select_is_kept() {
                let Some((_guard, pool)) = pool().await else { return };
                let table = books(&pool, 1..=100).await;
                let select = format!("SELECT id, name FROM {table} WHERE id % 10 = 0");
                let rows: Vec<_> = sql::keyset::<(i64, String), _>(&pool, select, "id")
                    .page_size(3)
                    .resume_after(Some(20))
                    .tracked()
                    .collect()
                    .await;
                let positions: Vec<i64> = rows.iter().map(|p| p.position).collect();
                assert_eq!(positions, [30, 40, 50, 60, 70, 80, 90, 100]);
            }

            #[tokio::test]
            async fn copies_a_table_exactly_once_across_an_interrupted_run() {
                let Some((_guard, pool)) = pool().await else { return };
                let table = books(&pool, (1..=1_000).map(|i| i * 2 + 1)).await;
                let copies = unique("keyset_copies");
                // No unique key: only the committed position prevents duplicates.
                sqlx::query(&format!("CREATE TABLE {copies} (id BIGINT NOT NULL, name TEXT NOT NULL)"))
                    .execute(&pool)
                    .await
                    .unwrap();
                let select = format!("SELECT id, name FROM {table}");
                let sink = BatchInsert::new(pool.clone(), copies.as_str(), format!("INSERT INTO {copies} (id, name) "));

                // Run 1: batches of 45 rows, stopped after 7 commits.
                let claim = sink.claim::<i64>("books").await.unwrap();
                let rows = sql::keyset::<(i64, String), _>(&pool, select.as_str(), "id")
                    .page_size(100)
                    .resume_after(claim.resume_after().copied())
                    .tracked();
                let commits: Vec<_> = claim
                    .commit_each(rows.dead_letter_errors().batch(45))
                    .take(7)
                    .collect()
                    .await;
                assert!(commits.iter().all(Result::is_ok));
                let stopped_at = commits.last().unwrap().as_ref().unwrap().position;
                assert_eq!(stopped_at, 315 * 2 + 1, "the key of row 315");
                drop(commits);

                // Run 2: other page and batch sizes, resumes after the committed key.
                let mut attempts = 0;
                let claim = loop {
                    // The dropped claim is released on the runtime, best effort: wait for it.
                    match sink.claim::<i64>("books").await {
                        Ok(claim) => break claim,
                        Err(InsertError::Held { .. }) if attempts < 200 => {
                            attempts += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Err(e) => panic!("{e}"),
                    }
                };
                // `take(7)` dropped the stream after the 7th commit, but the 8th batch may
                // already have been handed to the writer (commits are pipelined; the writer
                // finishes what it was sent): the claim resumes after whichever is committed,
                // and the rows in the table agree with it.
                let resumed = *claim.resume_after().unwrap();
                let already: Vec<(i64,)> = sqlx::query_as(&format!("SELECT id FROM {copies} ORDER BY id"))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                assert!(
                    resumed == stopped_at || resumed == 360 * 2 + 1,
                    "resumed after {resumed}: neither the 7th nor the 8th batch's last key"
                );
                assert_eq!(already.last().map(|r| r.0), Some(resumed), "the position is the last committed row");
                let committed_before = already.len() as u64;
                let rows = sql::keyset::<(i64, String), _>(&pool, select.as_str(), "id")
                    .page_size(64)
                    .resume_after(claim.resume_after().copied())
                    .tracked();
                let accounting = rows.accounting();
                let report = claim
                    .run(rows.dead_letter_errors().batch_within(77, Duration::from_millis(5)))
                    .await
                    .unwrap();
                assert_eq!(report.rows_inserted, 1_000 - committed_before);
                assert_eq!(accounting.check().unwrap().read, 1_000 - committed_before);

                let copied: Vec<(i64, String)> =
                    sqlx::query_as(&format!("SELECT id, name FROM {copies} ORDER BY id"))
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                let expected: Vec<(i64, String)> =
                    (1..=1_000).map(|i| (i * 2 + 1, format!("book {}", i * 2 + 1))).collect();
                assert_eq!(copied, expected, "every row exactly once");
            }

            #[tokio::test]
            async fn a_failed_query_ends_the_cursor_at_the_last_key() {
                let Some((_guard, pool)) = pool().await else { return };
                let table = books(&pool, 1..=30).await;
                let mut rows = std::pin::pin!(
                    sql::keyset::<(i64, String), _>(&pool, format!("SELECT id, name FROM {table}"), "id")
                        .page_size(10)
                        .tracked()
                );
                for key in 1..=10 {
                    assert_eq!(rows.next().await.unwrap().position, key);
                }
                sqlx::query(&format!("DROP TABLE {table}")).execute(&pool).await.unwrap();
                let failed = rows.next().await.unwrap();
                assert_eq!(failed.position, 10, "at the last key read: committing it skips nothing");
                match failed.entry {
                    Entry::Item(Err(e @ RowsError::Query { rows_read: 10, .. })) => {
                        assert!(e.to_string().starts_with("query failed after 10 rows"), "{e}");
                    }
                    other => panic!("expected a query error, got {other:?}"),
                }
                assert!(rows.next().await.is_none());
                assert!(futures::stream::FusedStream::is_terminated(&*rows));
            }

            #[tokio::test]
            async fn a_key_column_that_is_not_an_integer_ends_the_cursor() {
                let Some((_guard, pool)) = pool().await else { return };
                let table = books(&pool, 1..=3).await;
                let rows: Vec<_> =
                    sql::keyset::<(i64, String), _>(&pool, format!("SELECT id, name FROM {table}"), "name")
                        .tracked()
                        .collect()
                        .await;
                assert_eq!(rows.len(), 1, "{rows:?}");
                assert!(matches!(&rows[0].entry, Entry::Item(Err(RowsError::Query { rows_read: 0, .. }))));
            }
        }
    };
}

scenarios!(sqlite_keyset, Sqlite, {
    let (dir, pool) = sqlite().await;
    Some((Box::new(dir) as Box<dyn std::any::Any>, pool))
});

scenarios!(postgres_keyset, Postgres, {
    postgres()
        .await
        .map(|pool| (Box::new(()) as Box<dyn std::any::Any>, pool))
});
