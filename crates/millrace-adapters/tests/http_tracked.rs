//! HTTP pages into SQLite exactly once: a paginated source tracked by `PageCursor`, committed
//! with its position by the SQL sink, interrupted after a few batches and resumed with other
//! batch sizes, into a table with no key (only the positions prevent duplicates), with the
//! server failing some requests on the way.
#![cfg(all(feature = "http", feature = "sql"))]

use futures::StreamExt;
use millrace::adapters::http::{PageCursor, PageStyle, paginated_after, reqwest};
use millrace::adapters::sql::BatchInsert;
use millrace_test_support::{Book, Faults, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_resume_after_the_committed_cursor_and_land_once() {
    let faults = Faults::seeded(11).errors(0.1).max_faults_per_key(1);
    let server = TestServer::builder()
        .items(95)
        .faults(faults)
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("books.db"))
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::query("CREATE TABLE books (id INTEGER NOT NULL, title TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let sink = BatchInsert::new(pool.clone(), "books", "INSERT INTO books (id, title) ");
    let client = reqwest::Client::new();
    let url = server.url("/cursor?limit=10");
    let style = || PageStyle::cursor("cursor", "/next", "/items");

    for (batch, stop_after) in [(7, Some(3)), (12, Some(2)), (9, None)] {
        let claim = sink.claim::<PageCursor>("catalog").await.unwrap();
        let source =
            paginated_after::<Book>(client.clone(), &url, style(), claim.resume_after().cloned())
                .dead_letter_errors()
                .map(|book| (book.id as i64, book.title));
        let batches = source.batch(batch);
        let report = match stop_after {
            // An interrupted run: only the first batches reach the sink.
            Some(n) => claim.run(batches.via(move |s| s.take(n))).await.unwrap(),
            None => claim.run(batches).await.unwrap(),
        };
        assert_eq!(report.dead_lettered, 0, "every page fetched in the end");
    }
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM books ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(ids, (0..95).collect::<Vec<_>>());
}
