//! SQL on sqlx: a streaming cursor source ([`rows`], [`rows_as`]) and a batched-insert sink
//! ([`BatchInsert`]), one transaction per batch. Feature `sql`.
//!
//! **Exactly once.** For a tracked pipeline (see `millrace::positions`), [`BatchInsert::claim`]
//! takes the pipeline (one writer, fenced by an epoch) and says where the last run's commits
//! ended; the [`Claim`] commits each batch's rows, its dead letters and its position in **one
//! transaction**. A crash at any moment leaves a batch whole with its position, or neither, and
//! the next run resumes after the committed position: no row lost, none written twice, whatever
//! the batch sizes or timings of either run. Tables: `millrace_offsets` (one row per pipeline
//! and source: position, epoch, holder, heartbeat, cumulative counts) and
//! `millrace_dead_letters` (pipeline, source, position, reason).
//!
//! **SQLite is the embedded default** (a file, or `sqlite::memory:` — no server); PostgreSQL is
//! the server option. Both come with sqlx's `runtime-tokio` and no TLS. The cursor works on any
//! sqlx database; the sink on the [`Backend`]s (SQLite, PostgreSQL).
//!
//! The sink is a consumer (`run(stream).await`, or the [`CommitEach`] stream of commits), not a
//! [`Stage`](millrace_core::Stage): it ends the pipeline and returns a report, like `collect`.
//!
//! ```
//! use millrace::adapters::sql::{self, BatchInsert};
//! use futures::{stream, StreamExt, TryStreamExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
//! sqlx::query("CREATE TABLE squares (n INTEGER PRIMARY KEY, sq INTEGER)").execute(&pool).await.unwrap();
//!
//! let batches = stream::iter(1..=10_i64).map(|n| (n, n * n)).chunks(4);
//! let report = BatchInsert::new(pool.clone(), "squares", "INSERT INTO squares (n, sq) ")
//!     .run(batches)
//!     .await
//!     .unwrap();
//! assert_eq!((report.batches_committed, report.rows_inserted), (3, 10));
//!
//! let query = sqlx::query("SELECT n, sq FROM squares WHERE sq > 50 ORDER BY n");
//! let big: Vec<(i64, i64)> = sql::rows_as::<(i64, i64), _, _>(&pool, query)
//!     .try_collect()
//!     .await
//!     .unwrap();
//! assert_eq!(big, [(8, 64), (9, 81), (10, 100)]);
//! # }
//! ```

mod insert;
mod keyset;
mod rows;

#[doc(hidden)]
pub use self::insert::internal;
pub use self::insert::{
    Backend, BatchInsert, Claim, CommitEach, Committed, DEFAULT_DEAD_LETTER_TABLE,
    DEFAULT_OFFSETS_TABLE, DEFAULT_ROWS_PER_STATEMENT, InsertError, InsertReport, InsertRow,
    IntoBatch, RowValues,
};
pub use self::keyset::{DEFAULT_PAGE_SIZE, Keyset, KeysetRows, keyset};
pub use self::rows::{Rows, RowsError, rows, rows_as};
