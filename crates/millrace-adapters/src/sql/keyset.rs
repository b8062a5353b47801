//! The keyset cursor: [`keyset`], the [`Keyset`] builder and the [`KeysetRows`] stream.

use std::fmt;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::future::BoxFuture;
use futures_util::stream::{FusedStream, Stream};
use millrace_core::ConfigError;
use millrace_core::positions::{CountRead, Positioned, Tracked};
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Row, Type,
};

use super::RowsError;

/// The default number of rows per page of a [`keyset`] cursor.
///
/// ```
/// assert_eq!(millrace::adapters::sql::DEFAULT_PAGE_SIZE, 1000);
/// ```
pub const DEFAULT_PAGE_SIZE: usize = 1000;

/// A **keyset cursor** over `select`, paged by its integer column `key`: each page is
/// `SELECT * FROM (select) WHERE key > $last ORDER BY key LIMIT n`, so a page costs an index
/// seek however deep the cursor is (no `OFFSET`), and the cursor can **resume after** a key.
///
/// Its [`tracked`](Keyset::tracked) form is an exactly-once source: every row's position is
/// its key (an `i64`), a sink commits the position with the batch (e.g.
/// [`Claim`](super::Claim)), and the next run resumes with
/// [`resume_after`](Keyset::resume_after)`(claim.resume_after().copied())`.
///
/// `key` must be a **unique, non-null integer** column of `select`'s result (a primary key, an
/// autoincrement id): rows are read in key order, each once. Rows added later are read if
/// their key is above the cursor; a row added *behind* the cursor (a smaller key) is not, so
/// use an increasing key (on PostgreSQL a sequence value can commit after a larger one: read
/// up to a key that is settled, or accept that). `select` and `key` are pasted into the
/// statement as they are: pass trusted text, never user input.
///
/// # Examples
///
/// ```
/// use millrace::adapters::sql::{self, BatchInsert};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
/// sqlx::query("CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT)").execute(&pool).await.unwrap();
/// sqlx::query("CREATE TABLE copies (id INTEGER, title TEXT)").execute(&pool).await.unwrap();
/// for (id, title) in [(3, "Dune"), (7, "Emma"), (9, "Ulysses")] {
///     sqlx::query("INSERT INTO books VALUES ($1, $2)").bind(id).bind(title).execute(&pool).await.unwrap();
/// }
///
/// // Copy the books exactly once: the claim says where the last run stopped.
/// let sink = BatchInsert::new(pool.clone(), "copy-books", "INSERT INTO copies (id, title) ");
/// let claim = sink.claim::<i64>("books").await.unwrap();
/// let rows = sql::keyset::<(i64, String), _>(&pool, "SELECT id, title FROM books", "id")
///     .page_size(2)
///     .resume_after(claim.resume_after().copied())
///     .tracked();
/// let report = claim
///     .run(rows.dead_letter_errors().batch_within(100, Duration::from_millis(10)))
///     .await
///     .unwrap();
/// assert_eq!(report.rows_inserted, 3);
///
/// // A second run finds nothing new after key 9.
/// let claim = sink.claim::<i64>("books").await.unwrap();
/// assert_eq!(claim.resume_after(), Some(&9));
/// # }
/// ```
pub fn keyset<O, DB: Database>(
    pool: &Pool<DB>,
    select: impl Into<String>,
    key: impl Into<String>,
) -> Keyset<DB, O> {
    Keyset {
        pool: pool.clone(),
        select: select.into(),
        key: key.into(),
        page_size: DEFAULT_PAGE_SIZE,
        after: None,
        _output: std::marker::PhantomData,
    }
}

/// The configuration of a [`keyset`] cursor; [`tracked`](Self::tracked) starts it.
pub struct Keyset<DB: Database, O> {
    pool: Pool<DB>,
    select: String,
    key: String,
    page_size: usize,
    after: Option<i64>,
    _output: std::marker::PhantomData<fn() -> O>,
}

impl<DB: Database, O> fmt::Debug for Keyset<DB, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyset")
            .field("database", &DB::NAME)
            .field("select", &self.select)
            .field("key", &self.key)
            .field("page_size", &self.page_size)
            .field("after", &self.after)
            .finish()
    }
}

impl<DB: Database, O> Keyset<DB, O> {
    /// Rows per page (default [`DEFAULT_PAGE_SIZE`]): one query per page, at most this many
    /// rows in memory.
    ///
    /// ```
    /// use millrace::adapters::sql;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let _cursor = sql::keyset::<(i64,), _>(&pool, "SELECT id FROM t", "id").page_size(500);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `n` is 0, with the message of [`checked_page_size`](Self::checked_page_size)'s error.
    #[track_caller]
    pub fn page_size(self, n: usize) -> Self {
        match self.checked_page_size(n) {
            Ok(cursor) => cursor,
            Err(e) => panic!("{e}"),
        }
    }

    /// Sets the rows per page, or returns a [`ConfigError`] if `n` is 0.
    ///
    /// ```
    /// use millrace::adapters::sql;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let err = sql::keyset::<(i64,), _>(&pool, "SELECT id FROM t", "id").checked_page_size(0).unwrap_err();
    /// assert_eq!(err.to_string(), "`keyset`: `page_size` must be at least 1, got 0; pass a non-zero value");
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if `n` is 0.
    pub fn checked_page_size(mut self, n: usize) -> Result<Self, ConfigError> {
        self.page_size = NonZeroUsize::new(n)
            .ok_or_else(|| ConfigError::zero("keyset", "page_size"))?
            .get();
        Ok(self)
    }

    /// Renamed [`checked_page_size`](Self::checked_page_size).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_page_size`")]
    pub fn try_page_size(self, n: usize) -> Result<Self, ConfigError> {
        self.checked_page_size(n)
    }

    /// Starts after the row with key `key` (a committed position; `None`: from the first row).
    ///
    /// ```
    /// use millrace::adapters::sql;
    /// use futures::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let select = "SELECT 1 AS id UNION ALL SELECT 2 UNION ALL SELECT 3";
    /// let rows: Vec<_> = sql::keyset::<(i64,), _>(&pool, select, "id")
    ///     .resume_after(Some(1))
    ///     .tracked()
    ///     .collect()
    ///     .await;
    /// let keys: Vec<i64> = rows.iter().map(|p| p.position).collect();
    /// assert_eq!(keys, [2, 3]);
    /// # }
    /// ```
    pub fn resume_after(mut self, key: Option<i64>) -> Self {
        self.after = key;
        self
    }
}

impl<DB, O> Keyset<DB, O>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    O: for<'r> FromRow<'r, DB::Row>,
{
    /// The cursor as a tracked source: each row is an item `Ok(row)` at its key, counted in
    /// the stream's [`Accounting`](millrace_core::positions::Accounting).
    ///
    /// A row that does not convert to `O` is an `Err(`[`RowsError::Decode`]`)` item at its key
    /// (make it a dead letter with [`dead_letter_errors`](Tracked::dead_letter_errors)), and
    /// the cursor goes on. A failed query, or a key that is missing, NULL or not an integer, is
    /// an `Err(`[`RowsError::Query`]`)` item at the last key read (so its commit skips
    /// nothing), and the cursor ends: run again to resume after the last committed key.
    ///
    /// ```
    /// use millrace::adapters::sql;
    /// use millrace::positions::Entry;
    /// use futures::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// let select = "SELECT 10 AS id, 'ten' AS name UNION ALL SELECT 20, x'ff'"; // a BLOB
    /// let out: Vec<_> = sql::keyset::<(i64, String), _>(&pool, select, "id")
    ///     .tracked()
    ///     .dead_letter_errors()
    ///     .collect()
    ///     .await;
    /// assert_eq!((out[0].position, &out[0].entry), (10, &Entry::Item((10, "ten".to_owned()))));
    /// assert!(matches!(&out[1].entry, Entry::Dead(reason) if reason.starts_with("row 2 cannot be decoded")), "{:?}", out[1]);
    /// # }
    /// ```
    pub fn tracked(self) -> Tracked<CountRead<KeysetRows<DB, O>>> {
        Tracked::new(KeysetRows {
            query: None,
            page: Vec::new().into_iter(),
            page_full: true,
            last: self.after,
            read: 0,
            done: false,
            decode: |row| O::from_row(&row),
            cfg: self,
        })
    }
}

type Page<DB> = BoxFuture<'static, Result<Vec<<DB as Database>::Row>, sqlx::Error>>;

/// The stream inside [`Keyset::tracked`]: rows beside their keys, one query per page.
#[must_use = "streams do nothing unless polled"]
pub struct KeysetRows<DB: Database, O> {
    cfg: Keyset<DB, O>,
    query: Option<Page<DB>>,
    page: std::vec::IntoIter<DB::Row>,
    /// Whether the last page was full (so there may be more rows).
    page_full: bool,
    last: Option<i64>,
    read: u64,
    done: bool,
    decode: fn(DB::Row) -> Result<O, sqlx::Error>,
}

impl<DB: Database, O> KeysetRows<DB, O> {
    fn failed(&mut self, source: sqlx::Error) -> Positioned<i64, Result<O, RowsError>> {
        self.done = true;
        self.query = None;
        Positioned::item(
            self.last.unwrap_or(i64::MIN),
            Err(RowsError::Query {
                rows_read: self.read,
                source,
            }),
        )
    }
}

impl<DB: Database, O> fmt::Debug for KeysetRows<DB, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeysetRows")
            .field("cursor", &self.cfg)
            .field("last_key", &self.last)
            .field("rows_read", &self.read)
            .field("querying", &self.query.is_some())
            .field("done", &self.done)
            .finish()
    }
}

impl<DB, O> Stream for KeysetRows<DB, O>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    type Item = Positioned<i64, Result<O, RowsError>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Nothing is pinned structurally: the page query is boxed.
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(row) = this.page.next() {
                let key = match row.try_get::<i64, _>(this.cfg.key.as_str()) {
                    Ok(key) => key,
                    Err(e) => return Poll::Ready(Some(this.failed(e))),
                };
                this.last = Some(key);
                this.read += 1;
                let item = (this.decode)(row).map_err(|source| RowsError::Decode {
                    row: this.read,
                    source,
                });
                return Poll::Ready(Some(Positioned::item(key, item)));
            }
            if let Some(query) = this.query.as_mut() {
                let rows = match ready!(query.as_mut().poll(cx)) {
                    Ok(rows) => rows,
                    Err(e) => return Poll::Ready(Some(this.failed(e))),
                };
                this.query = None;
                this.page_full = rows.len() >= this.cfg.page_size;
                if rows.is_empty() {
                    this.done = true;
                }
                this.page = rows.into_iter();
                continue;
            }
            if !this.page_full {
                this.done = true;
                continue;
            }
            this.query = Some(page(&this.cfg, this.last));
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            (self.page.len(), None)
        }
    }
}

impl<DB, O> FusedStream for KeysetRows<DB, O>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}

/// The query for the page after `after`.
fn page<DB, O>(cfg: &Keyset<DB, O>, after: Option<i64>) -> Page<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    let (select, key) = (&cfg.select, &cfg.key);
    let limit = i64::try_from(cfg.page_size).unwrap_or(i64::MAX);
    let pool = cfg.pool.clone();
    let sql = match after {
        Some(_) => format!(
            "SELECT * FROM ({select}) AS millrace_keyset WHERE {key} > $1 ORDER BY {key} LIMIT $2"
        ),
        None => format!("SELECT * FROM ({select}) AS millrace_keyset ORDER BY {key} LIMIT $1"),
    };
    Box::pin(async move {
        let query = sqlx::query(&sql);
        let query = match after {
            Some(after) => query.bind(after).bind(limit),
            None => query.bind(limit),
        };
        query.fetch_all(&pool).await
    })
}
