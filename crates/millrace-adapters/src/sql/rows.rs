//! The cursor source: [`rows`], [`rows_as`] and the [`Rows`] stream.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::stream::{BoxStream, FusedStream, Stream};
use sqlx::query::Query;
use sqlx::{Database, Executor, FromRow, IntoArguments, Pool};

/// An error item of the [`rows`] / [`rows_as`] cursor.
///
/// ```
/// use millrace::adapters::sql::{self, RowsError};
/// use futures::StreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
/// let mut rows = sql::rows(&pool, sqlx::query("SELECT * FROM no_such_table"));
/// let err = rows.next().await.unwrap().err().unwrap();
/// assert!(matches!(err, RowsError::Query { rows_read: 0, .. }));
/// assert!(rows.next().await.is_none());
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum RowsError {
    /// The query or the connection failed; the stream ends after this error.
    Query {
        /// Rows delivered before the failure (resume after them).
        rows_read: u64,
        /// sqlx's error.
        source: sqlx::Error,
    },
    /// One row could not be converted to the output type; the stream goes on with the next
    /// row.
    Decode {
        /// The position of the row (1-based) in the result.
        row: u64,
        /// sqlx's error (`ColumnDecode`, `ColumnNotFound`, …).
        source: sqlx::Error,
    },
}

impl fmt::Display for RowsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowsError::Query { rows_read, source } => write!(
                f,
                "query failed after {rows_read} rows: {source}; the cursor ended, check the \
                 query and the database, then resume after row {rows_read}"
            ),
            RowsError::Decode { row, source } => write!(
                f,
                "row {row} cannot be decoded: {source}; the row was skipped, make the output \
                 type match the selected columns"
            ),
        }
    }
}

impl std::error::Error for RowsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RowsError::Query { source, .. } | RowsError::Decode { source, .. } => Some(source),
        }
    }
}

/// Streams the rows of `query` from a connection of `pool`, one at a time: the result is never
/// loaded whole (sqlx reads PostgreSQL rows from the socket as they arrive and SQLite rows
/// through a small bounded channel from its worker thread).
///
/// Items are `Ok(row)` or a [`RowsError`]: a query or connection error is the last item.
/// The connection goes back to the pool when the stream ends or is dropped. The stream
/// borrows the SQL text (`'q`) like sqlx's own `fetch`; a `&'static str` query gives a
/// `'static` stream that can be moved into a task.
///
/// ```
/// use millrace::adapters::sql;
/// use futures::TryStreamExt;
/// use sqlx::Row;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
/// let q = sqlx::query("SELECT value FROM (SELECT 1 AS value UNION ALL SELECT 2) WHERE value >= ? ORDER BY value")
///     .bind(1_i64);
/// let values: Vec<i64> = sql::rows(&pool, q)
///     .map_ok(|row| row.get::<i64, _>("value"))
///     .try_collect()
///     .await
///     .unwrap();
/// assert_eq!(values, [1, 2]);
/// # }
/// ```
pub fn rows<'q, DB, A>(pool: &Pool<DB>, query: Query<'q, DB, A>) -> Rows<'q, DB, DB::Row>
where
    DB: Database,
    A: 'q + IntoArguments<'q, DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    Rows {
        inner: pool.fetch(query),
        decode: Ok,
        read: 0,
        done: false,
    }
}

/// Like [`rows`], converting every row to `O` with its [`FromRow`] impl (derive it with
/// `#[derive(sqlx::FromRow)]` or implement it by hand). A row that does not convert is one
/// [`RowsError::Decode`] item and the stream goes on.
///
/// ```
/// use millrace::adapters::sql;
/// use futures::TryStreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
/// let q = sqlx::query("SELECT 7 AS id, 'dune' AS title");
/// let books: Vec<(i64, String)> = sql::rows_as::<(i64, String), _, _>(&pool, q)
///     .try_collect()
///     .await
///     .unwrap();
/// assert_eq!(books, [(7, "dune".to_owned())]);
/// # }
/// ```
pub fn rows_as<'q, O, DB, A>(pool: &Pool<DB>, query: Query<'q, DB, A>) -> Rows<'q, DB, O>
where
    DB: Database,
    A: 'q + IntoArguments<'q, DB>,
    O: for<'r> FromRow<'r, DB::Row>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    Rows {
        inner: pool.fetch(query),
        decode: |row| O::from_row(&row),
        read: 0,
        done: false,
    }
}

/// Stream for the [`rows`] and [`rows_as`] cursors.
///
/// sqlx hands out its cursor as a boxed stream, which this wraps (one allocation per query,
/// none per row); there is therefore no `get_ref`/`into_inner`.
#[must_use = "streams do nothing unless polled"]
pub struct Rows<'q, DB: Database, O> {
    inner: BoxStream<'q, Result<DB::Row, sqlx::Error>>,
    decode: fn(DB::Row) -> Result<O, sqlx::Error>,
    read: u64,
    done: bool,
}

impl<DB: Database, O> Rows<'_, DB, O> {
    /// Rows delivered (or skipped as undecodable) so far.
    ///
    /// ```
    /// use millrace::adapters::sql;
    /// use futures::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let mut rows = sql::rows(&pool, sqlx::query("SELECT 1 UNION ALL SELECT 2"));
    /// rows.next().await;
    /// assert_eq!(rows.rows_read(), 1);
    /// # }
    /// ```
    pub fn rows_read(&self) -> u64 {
        self.read
    }
}

impl<DB: Database, O> fmt::Debug for Rows<'_, DB, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rows")
            .field("database", &DB::NAME)
            .field("rows_read", &self.read)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<DB: Database, O> Stream for Rows<'_, DB, O> {
    type Item = Result<O, RowsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let item = match ready!(this.inner.as_mut().poll_next(cx)) {
            None => {
                this.done = true;
                return Poll::Ready(None);
            }
            Some(Ok(row)) => {
                this.read += 1;
                (this.decode)(row).map_err(|source| RowsError::Decode {
                    row: this.read,
                    source,
                })
            }
            Some(Err(source)) => {
                this.done = true;
                Err(RowsError::Query {
                    rows_read: this.read,
                    source,
                })
            }
        };
        Poll::Ready(Some(item))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done { (0, Some(0)) } else { (0, None) }
    }
}

impl<DB: Database, O> FusedStream for Rows<'_, DB, O> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}
