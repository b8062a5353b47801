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
//! ## SQLite commits: a writer thread of the claim's own
//!
//! [`Claim::commit_each`] (and [`Claim::run`], which drives it) commits to a SQLite **file** on
//! a thread of its own, with its own [rusqlite](https://docs.rs/rusqlite) connection (rusqlite
//! 0.32 links the same bundled `libsqlite3-sys` 0.30 as sqlx-sqlite 0.8.6, so the process has
//! one SQLite library) and cached prepared statements: a batch moves to the thread in one
//! message and its values are encoded by reference straight into the statement. Through sqlx,
//! each statement of a commit is a round trip to the connection's worker thread, and every
//! bound value is copied on the pipeline's thread to be sent there. While one batch commits, the
//! next is already queued (two in flight): the thread runs them one at a time in order, each in
//! one `BEGIN IMMEDIATE` transaction with its position, and refuses every batch after one that
//! failed or was fenced, so exactly once holds as before. The writer's connection is set up like
//! the pool's (`synchronous`, `foreign_keys`, `busy_timeout`; WAL belongs to the file);
//! functions or collations a pool registers on its connections (`after_connect`) are not on it.
//! PostgreSQL, an in-memory SQLite database (a second connection would see another database),
//! [`Claim::commit`] and [`BatchInsert::run`] go through the pool as before.
//!
//! Measured on the main job (`scripts/mainjob_bench.sh`: 1,000,000 lines, 1,000 batches of
//! 1,000 rows, against a hand-written rusqlite program doing the same work; medians of 5
//! alternating pairs on a shared 2-core machine, see `benches/RESULTS.md`):
//!
//! | commits through | flagship ÷ hand-written, CPU time | wall time |
//! |---|---:|---:|
//! | sqlx (one statement per round trip, values copied, one batch at a time) | 1.72× | 1.26× |
//! | the writer thread, next batch queued while one commits | 1.44× | 1.06× |
//!
//! (The hand-written program's own SQLite thread is the same rusqlite code: the rest of the
//! gap is the pipeline's, not the sink's.)

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
