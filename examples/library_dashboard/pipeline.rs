//! The library dashboard pipeline, shared by the example (`main.rs`) and `tests/flagship.rs`.
//!
//! ```text
//! fs::lines ─ stop_on ─ (resume filter) ─ json::decode ─ validate_ok ─ on_error(Resume)
//!   ─ batch ─ prefetch ─ rate_limit ─ map_concurrent(32, catalog lookup) ─ commit_each (SQLite)
//! ```
//!
//! Before the log is read, the popular part of the catalog is loaded through the paginated
//! HTTP source (`restartable(..).retry(..)`, then `recover_with` to the mirror, resuming from
//! the checkpoint); the other books are looked up per batch with `/batch?ids=…`.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, future};
use millrace::adapters::http::reqwest::{self, Url};
use millrace::adapters::http::testserver::{Book, Faults, ServerStats, TestServer};
use millrace::adapters::http::{
    HttpError, HttpOptions, PageStyle, paginated, paginated_from, request_json,
};
use millrace::adapters::json::{self, Decoded, JsonLineError};
use millrace::adapters::sql::{BatchInsert, InsertError, InsertRow, RowValues};
use millrace::adapters::{fs, fs::LineError};
use millrace::policy::{ExponentialBuilder, Invalid};
use millrace::prelude::*;
use millrace::{PagePosition, StageSnapshot};
use serde::Deserialize;
use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// Books in the catalog service: ids `0..CATALOG_BOOKS`.
pub(crate) const CATALOG_BOOKS: u64 = 50_000;
/// The popular books (ids `0..POPULAR_BOOKS`, 80 % of the activity), loaded up front.
pub(crate) const POPULAR_BOOKS: u64 = 10_000;
/// Library members: `M00000` to `M19999`.
const MEMBERS: u64 = 20_000;
/// The time stamp of line 1 (2024-01-01T00:00:00Z); one event every 30 s after it.
const FIRST_TS: i64 = 1_704_067_200;
/// The name of the sink in the SQLite batch ledger.
const SINK: &str = "activity";

/// What one run does.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Lines in the generated activity log.
    pub(crate) lines: u64,
    /// Where the log and the SQLite database live.
    pub(crate) data_dir: PathBuf,
    /// Delete the database first (start over).
    pub(crate) fresh: bool,
    /// Cancel (as Ctrl-C does) once this many batches were committed.
    pub(crate) stop_after: Option<u64>,
    /// Print a live per-stage status line to stderr every 500 ms.
    pub(crate) progress: bool,
    /// Log lines per lookup batch and per SQLite transaction.
    pub(crate) batch_size: usize,
    /// Catalog lookups in flight at once.
    pub(crate) in_flight: usize,
    /// Catalog lookups per second (the burst is `in_flight`).
    pub(crate) lookups_per_second: u32,
}

impl Config {
    /// The demo's settings for a log of `lines` lines in `data_dir`.
    pub(crate) fn new(lines: u64, data_dir: impl Into<PathBuf>) -> Self {
        Config {
            lines,
            data_dir: data_dir.into(),
            fresh: false,
            stop_after: None,
            progress: false,
            batch_size: 1_000,
            in_flight: 32,
            lookups_per_second: 1_000,
        }
    }

    /// The generated activity log.
    pub(crate) fn log_path(&self) -> PathBuf {
        self.data_dir.join(format!("activity-{}.jsonl", self.lines))
    }

    /// The SQLite database (one per log size).
    pub(crate) fn db_path(&self) -> PathBuf {
        self.data_dir
            .join(format!("dashboard-{}.sqlite", self.lines))
    }
}

// ---------------------------------------------------------------------------------------------
// The generated activity log
// ---------------------------------------------------------------------------------------------

/// What line `n` (1-based) of the generated log holds. A few lines are bad on purpose, at fixed
/// positions, so that tests can name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineKind {
    /// A good checkout or return.
    Good,
    /// Cut off in the middle: not JSON (every 1009th line).
    BrokenJson,
    /// Valid JSON with an action that is neither `checkout` nor `return` (`n % 2503 == 7`).
    BadAction,
    /// A member name with bytes that are not UTF-8 (`n % 4999 == 13`).
    NotUtf8,
    /// A book id the catalog does not have (`n % 3001 == 11`).
    UnknownBook,
}

/// The kind of line `n`.
pub(crate) fn line_kind(n: u64) -> LineKind {
    if n % 1009 == 0 {
        LineKind::BrokenJson
    } else if n % 2503 == 7 {
        LineKind::BadAction
    } else if n % 4999 == 13 {
        LineKind::NotUtf8
    } else if n % 3001 == 11 {
        LineKind::UnknownBook
    } else {
        LineKind::Good
    }
}

/// SplitMix64: a fixed pseudo-random value per line, so the log is the same on every machine.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Appends line `n` (without its newline) to `out`.
fn write_line(out: &mut Vec<u8>, n: u64) {
    let r = mix(n);
    let ts = FIRST_TS + 30 * n as i64;
    let member = (r >> 32) % MEMBERS;
    let book = if r % 5 == 0 {
        POPULAR_BOOKS + (r >> 8) % (CATALOG_BOOKS - POPULAR_BOOKS)
    } else {
        (r >> 8) % POPULAR_BOOKS
    };
    let action = if (r >> 20) & 1 == 0 {
        "checkout"
    } else {
        "return"
    };
    // `write!` into a Vec cannot fail.
    let _ = match line_kind(n) {
        LineKind::Good => write!(
            out,
            r#"{{"ts":{ts},"member":"M{member:05}","book":{book},"action":"{action}"}}"#
        ),
        LineKind::BrokenJson => write!(out, r#"{{"ts":{ts},"member":"M{member:05}","book":"#),
        LineKind::BadAction => write!(
            out,
            r#"{{"ts":{ts},"member":"M{member:05}","book":{book},"action":"lost"}}"#
        ),
        LineKind::NotUtf8 => {
            out.extend_from_slice(format!(r#"{{"ts":{ts},"member":"M"#).as_bytes());
            out.extend_from_slice(b"\xff\xfe");
            write!(out, r#"","book":{book},"action":"{action}"}}"#)
        }
        LineKind::UnknownBook => write!(
            out,
            r#"{{"ts":{ts},"member":"M{member:05}","book":{},"action":"{action}"}}"#,
            CATALOG_BOOKS + r % 1_000
        ),
    };
}

/// Writes the log of `lines` lines to `path` unless it is already there; returns how long
/// generating took, or `None` if the file existed. The file is written to a temporary name
/// and renamed, so an interrupted generation never leaves a short log behind.
pub(crate) async fn ensure_log(path: &Path, lines: u64) -> io::Result<Option<Duration>> {
    if tokio::fs::try_exists(path).await? {
        return Ok(None);
    }
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let temp = path.with_extension("jsonl.partial");
        let mut file = io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&temp)?);
        let mut line = Vec::with_capacity(128);
        for n in 1..=lines {
            line.clear();
            write_line(&mut line, n);
            line.push(b'\n');
            file.write_all(&line)?;
        }
        file.into_inner()
            .map_err(io::IntoInnerError::into_error)?
            .sync_all()?;
        std::fs::rename(&temp, &path)?;
        Ok(Some(started.elapsed()))
    })
    .await
    .map_err(io::Error::other)?
}

// ---------------------------------------------------------------------------------------------
// Items, rows and skipped lines
// ---------------------------------------------------------------------------------------------

/// One line of the log, as decoded.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Event {
    ts: i64,
    member: String,
    book: u64,
    action: String,
}

/// The validation rule: a known action and a member id of the form `M<digits>`.
fn check_event(event: &Decoded<Event>) -> Result<(), &'static str> {
    let e = &event.value;
    if e.action != "checkout" && e.action != "return" {
        return Err("the action is neither \"checkout\" nor \"return\"");
    }
    if !(e.member.starts_with('M') && e.member[1..].bytes().all(|b| b.is_ascii_digit())) {
        return Err("the member id is not `M` followed by digits");
    }
    Ok(())
}

/// One row of the `activity` table: the event, enriched with its book's title and year.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    line: i64,
    ts: i64,
    member: String,
    book: i64,
    action: String,
    title: String,
    year: i64,
}

impl InsertRow<Sqlite> for Row {
    fn push_values<'args>(&'args self, values: &mut RowValues<'_, 'args, Sqlite>) {
        values
            .bind(self.line)
            .bind(self.ts)
            .bind(&self.member)
            .bind(self.book)
            .bind(&self.action)
            .bind(&self.title)
            .bind(self.year);
    }
}

/// Why a line was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum SkipReason {
    /// The line could not be read (not UTF-8, too long).
    Unreadable,
    /// The line is not JSON of the expected shape.
    MalformedJson,
    /// The event failed validation.
    Invalid,
    /// The catalog has no such book.
    UnknownBook,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::Unreadable => "unreadable line",
            SkipReason::MalformedJson => "malformed JSON",
            SkipReason::Invalid => "invalid event",
            SkipReason::UnknownBook => "unknown book",
        })
    }
}

/// A skipped line, with the reason and the error's own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Skip {
    pub(crate) line: u64,
    pub(crate) reason: SkipReason,
    pub(crate) detail: String,
}

/// The error items between decoding and supervision.
#[derive(Debug)]
enum Reject {
    Json(JsonLineError),
    Invalid(Invalid<Decoded<Event>, &'static str>),
}

impl From<JsonLineError> for Reject {
    fn from(e: JsonLineError) -> Self {
        Reject::Json(e)
    }
}

impl From<Invalid<Decoded<Event>, &'static str>> for Reject {
    fn from(e: Invalid<Decoded<Event>, &'static str>) -> Self {
        Reject::Invalid(e)
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::Json(e) => fmt::Display::fmt(e, f),
            Reject::Invalid(e) => write!(f, "line {}: {}", e.item.line, e.reason),
        }
    }
}

/// The skipped lines, shared between the stages that skip and the report. Only the consumer
/// side of the pipeline writes to it, a few thousand times in a million lines, so a mutex
/// costs nothing measurable.
#[derive(Debug, Clone, Default)]
struct Skips(Arc<Mutex<Vec<Skip>>>);

impl Skips {
    fn push(&self, skip: Skip) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(skip);
    }

    fn take(&self) -> Vec<Skip> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Turns an error item of the read/decode/validate stages into a [`Skip`], or into the fatal
/// error that ended the input (an I/O error).
fn classify(reject: &Reject) -> Result<Skip, String> {
    let (line, reason) = match reject {
        Reject::Json(JsonLineError::Malformed { line, .. }) => (*line, SkipReason::MalformedJson),
        Reject::Json(JsonLineError::Line(e)) if e.is_skipped_line() => {
            (e.line().unwrap_or(0), SkipReason::Unreadable)
        }
        Reject::Json(e) => return Err(e.to_string()),
        Reject::Invalid(e) => (e.item.line, SkipReason::Invalid),
    };
    Ok(Skip {
        line,
        reason,
        detail: reject.to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// The catalog: popular books up front, the rest per batch
// ---------------------------------------------------------------------------------------------

/// Counters of the HTTP side, for the report.
#[derive(Debug, Default)]
struct HttpCounters {
    /// Requests retried inside `HttpOptions` (5xx, dropped connections, timeouts).
    request_retries: AtomicU64,
    /// Catalog source re-opens from the checkpoint (`restartable(..).retry(..)`).
    catalog_restarts: AtomicU64,
    /// Switches of the catalog source to the mirror (`recover_with`).
    catalog_fallbacks: AtomicU64,
    /// Batch lookups answered by the mirror after the primary gave up.
    lookup_fallbacks: AtomicU64,
    /// Batch lookups sent.
    lookups: AtomicU64,
}

/// The request options of every catalog request: short timeouts and backoff, one retry, then
/// the caller's own recovery (source restart, mirror).
fn http_options(counters: &Arc<HttpCounters>) -> HttpOptions {
    let counters = Arc::clone(counters);
    HttpOptions::new()
        .timeout(Duration::from_secs(2))
        .retries(1)
        .backoff(Duration::from_millis(5), Duration::from_millis(50))
        .on_retry(move |_err, _delay| {
            counters.request_retries.fetch_add(1, Ordering::Relaxed);
        })
}

/// The faults of the demo's catalog service: some 5xx, dropped connections and slow answers
/// everywhere, and an outage of the primary while the catalog loads (6 requests from the 6th
/// on: enough to exhaust the page retries and the source restarts, so the load finishes on
/// the mirror).
fn demo_faults() -> Faults {
    Faults::seeded(2024)
        .errors(0.06)
        .drops(0.03)
        .slow(0.05, Duration::from_millis(40))
        .max_faults_per_key(2)
        .outage(5, 6)
}

/// Loads the popular books (`0..POPULAR_BOOKS`) page by page: each page is retried per
/// `HttpOptions`; a page that still fails ends the source, which is re-opened from its
/// checkpoint (the position after the last delivered book) twice; after that the mirror takes
/// over from the same checkpoint.
async fn load_popular(
    client: &reqwest::Client,
    server: &TestServer,
    metrics: &Metrics,
    counters: &Arc<HttpCounters>,
) -> Result<HashMap<u64, Book>, HttpError> {
    let style = PageStyle::cursor("cursor", "/next", "/items");
    let first = paginated::<Book>(
        client.clone(),
        server.url("/cursor?limit=500"),
        style.clone(),
    );
    let start = first.position().expect("the catalog URL is valid");
    let options = http_options(counters);

    let (c, s, o) = (client.clone(), style.clone(), options.clone());
    let primary = checkpoint_with(
        start.clone(),
        |at: &mut PagePosition<Url>, (_book, after): &(Book, PagePosition<Url>)| {
            at.clone_from(after)
        },
    )
    .restartable(move |at: &PagePosition<Url>| {
        paginated_from::<Book>(c.clone(), at.clone(), s.clone())
            .options(o.clone())
            .with_positions()
    })
    // Two restarts, 20 ms then about 40 ms apart (exponential, with jitter).
    .retry(RetryPolicy::new(
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(20))
            .with_max_delay(Duration::from_millis(200))
            .with_max_times(2)
            .with_jitter(),
    ));
    let restarts = primary.stats();

    let (c, fallback_counters) = (client.clone(), Arc::clone(counters));
    let recovered =
        primary.recover_with(move |_err, cp: &Checkpoint<(Book, PagePosition<Url>)>| {
            let n = fallback_counters
                .catalog_fallbacks
                .fetch_add(1, Ordering::Relaxed);
            if n >= 3 {
                return None; // the mirror failed too, three times: give up
            }
            let mut at = cp
                .last
                .as_ref()
                .map_or_else(|| start.clone(), |(_, after)| after.clone());
            at.cursor.set_path("/mirror/cursor");
            Some(
                paginated_from::<Book>(c.clone(), at, style.clone())
                    .options(options.clone())
                    .with_positions(),
            )
        });
    // The catalog stage shows the retries and fallbacks of the wrappers inside it.
    let fallbacks = recovered.fallback_counter();
    let catalog = recovered
        .take(POPULAR_BOOKS as usize)
        .metered_in(metrics, "catalog")
        .count_errors()
        .with_timing();
    catalog
        .metrics()
        .track_retries(&restarts)
        .track_fallbacks(&fallbacks);
    let books = catalog
        .try_fold(HashMap::new(), |mut books, (book, _)| {
            books.insert(book.id, book);
            future::ready(Ok(books))
        })
        .await;
    counters
        .catalog_restarts
        .store(restarts.retries(), Ordering::Relaxed);
    books
}

/// The answer of `/batch?ids=…`.
#[derive(Debug, Deserialize)]
struct BatchReply {
    items: Vec<Book>,
}

/// What the enrichment tasks share.
#[derive(Debug)]
struct Lookup {
    client: reqwest::Client,
    primary: String,
    mirror: String,
    options: HttpOptions,
    popular: HashMap<u64, Book>,
    counters: Arc<HttpCounters>,
}

impl Lookup {
    /// The books `ids` (sorted, distinct): from the primary, or from the mirror once the
    /// primary's retries are spent on a transient failure.
    async fn books(&self, ids: &[u64]) -> Result<Vec<Book>, HttpError> {
        let mut query = String::with_capacity(ids.len() * 6);
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                query.push(',');
            }
            query.push_str(&id.to_string());
        }
        self.counters.lookups.fetch_add(1, Ordering::Relaxed);
        let get = |base: &str| self.client.get(format!("{base}/batch?ids={query}"));
        match request_json::<BatchReply>(&self.client, get(&self.primary), &self.options).await {
            Ok(reply) => Ok(reply.items),
            Err(e) if e.is_transient() => {
                self.counters
                    .lookup_fallbacks
                    .fetch_add(1, Ordering::Relaxed);
                let reply: BatchReply =
                    request_json(&self.client, get(&self.mirror), &self.options).await?;
                Ok(reply.items)
            }
            Err(e) => Err(e),
        }
    }

    /// Enriches one batch: popular books from memory, the others with one lookup for the
    /// batch. Events whose book the catalog lacks are skipped.
    async fn enrich(&self, batch: Vec<Decoded<Event>>) -> Result<(Vec<Row>, Vec<Skip>), HttpError> {
        let mut missing: Vec<u64> = batch
            .iter()
            .map(|d| d.value.book)
            .filter(|id| !self.popular.contains_key(id))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        let fetched: HashMap<u64, Book> = if missing.is_empty() {
            HashMap::new()
        } else {
            self.books(&missing)
                .await?
                .into_iter()
                .map(|b| (b.id, b))
                .collect()
        };
        let mut rows = Vec::with_capacity(batch.len());
        let mut skips = Vec::new();
        for Decoded { line, value: e } in batch {
            match self.popular.get(&e.book).or_else(|| fetched.get(&e.book)) {
                Some(book) => rows.push(Row {
                    line: line as i64,
                    ts: e.ts,
                    member: e.member,
                    book: e.book as i64,
                    action: e.action,
                    title: book.title.clone(),
                    year: i64::from(book.year),
                }),
                None => skips.push(Skip {
                    line,
                    reason: SkipReason::UnknownBook,
                    detail: format!(
                        "line {line}: book {} is not in the catalog (ids 0..{CATALOG_BOOKS})",
                        e.book
                    ),
                }),
            }
        }
        Ok((rows, skips))
    }
}

// ---------------------------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// Everything a run reports.
#[derive(Debug)]
pub(crate) struct Report {
    /// Lines in the log.
    pub(crate) lines: u64,
    /// How long generating the log took, if this run generated it.
    pub(crate) generated_in: Option<Duration>,
    /// The run resumed after this line (0: from the start).
    pub(crate) resumed_after: u64,
    /// Per-stage counters, in pipeline order.
    pub(crate) stages: Vec<StageSnapshot>,
    /// The lines skipped by this run, in line order.
    pub(crate) skips: Vec<Skip>,
    /// Batches committed by this run.
    pub(crate) batches_committed: u64,
    /// Batches the ledger already had (never expected when resuming by line).
    pub(crate) batches_skipped: u64,
    /// Rows inserted by this run.
    pub(crate) rows_inserted: u64,
    /// Rows ignored by `ON CONFLICT DO NOTHING` (already in the table).
    pub(crate) rows_ignored: u64,
    /// Rows in the table after the run.
    pub(crate) rows_in_db: u64,
    /// HTTP requests retried with backoff.
    pub(crate) request_retries: u64,
    /// Catalog source restarts from the checkpoint.
    pub(crate) catalog_restarts: u64,
    /// Catalog source switches to the mirror.
    pub(crate) catalog_fallbacks: u64,
    /// Batch lookups sent.
    pub(crate) lookups: u64,
    /// The lookup limits: `(in flight, per second)`.
    pub(crate) lookup_limits: (usize, u32),
    /// Batch lookups answered by the mirror.
    pub(crate) lookup_fallbacks: u64,
    /// What the catalog service saw (requests, injected faults, peak concurrency).
    pub(crate) server: ServerStats,
    /// Whether the run was stopped (Ctrl-C or `--stop-after`) before the end of the log.
    pub(crate) interrupted: bool,
    /// The error that ended the run early, if any (everything before it is committed).
    pub(crate) fatal: Option<String>,
    /// Time from the start of the pipeline (catalog load included) to the last commit.
    pub(crate) elapsed: Duration,
}

impl Report {
    /// Lines read by this run per second of pipeline time.
    pub(crate) fn throughput(&self) -> f64 {
        let read = self.stage("read").map_or(0, |s| s.items);
        read as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn stage(&self, name: &str) -> Option<&StageSnapshot> {
        self.stages.iter().find(|s| s.name == name)
    }
}

/// Errors that stop a run before its pipeline starts, or from the database sink.
#[derive(Debug)]
pub(crate) enum RunError {
    /// Generating or opening the log, or deleting the database, failed.
    Io(io::Error),
    /// The database could not be opened or read.
    Db(sqlx::Error),
    /// The catalog could not be loaded, even from the mirror.
    Catalog(HttpError),
    /// A batch could not be committed.
    Insert(InsertError),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Io(e) => write!(f, "file error: {e}"),
            RunError::Db(e) => write!(f, "database error: {e}"),
            RunError::Catalog(e) => write!(f, "catalog unavailable: {e}"),
            RunError::Insert(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Io(e) => Some(e),
            RunError::Db(e) => Some(e),
            RunError::Catalog(e) => Some(e),
            RunError::Insert(e) => Some(e),
        }
    }
}

/// The line number an item of the line source concerns (`Open` errors: before every line).
fn line_of(item: &Result<fs::Line, LineError>) -> u64 {
    match item {
        Ok(line) => line.number,
        Err(e) => e.line().unwrap_or(u64::MAX),
    }
}

/// Runs the pipeline once: generates the log if needed, resumes after the last committed line,
/// stops gracefully when `token` fires (in-flight batches are enriched and committed), and
/// reports.
pub(crate) async fn run(config: &Config, token: CancellationToken) -> Result<Report, RunError> {
    let log = config.log_path();
    let generated_in = ensure_log(&log, config.lines).await.map_err(RunError::Io)?;
    if config.fresh {
        delete_db(&config.db_path()).await.map_err(RunError::Io)?;
    }
    let pool = open_db(&config.db_path()).await.map_err(RunError::Db)?;

    // Resume: every committed batch holds a run of lines in order, so the table's last line is
    // where the previous run stopped; new batches continue the ledger's sequence.
    let sink = BatchInsert::new(
        pool.clone(),
        SINK,
        "INSERT INTO activity (line, ts, member, book, action, title, year) ",
    )
    .on_conflict("ON CONFLICT (line) DO NOTHING")
    .rows_per_statement(500);
    sink.prepare().await.map_err(RunError::Db)?;
    let (resumed_after,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(line), 0) FROM activity")
        .fetch_one(&pool)
        .await
        .map_err(RunError::Db)?;
    let (next_seq,): (i64,) = sqlx::query_as(&format!(
        "SELECT COALESCE(MAX(seq) + 1, 0) FROM {} WHERE sink = ?",
        millrace::adapters::sql::DEFAULT_LEDGER_TABLE
    ))
    .bind(SINK)
    .fetch_one(&pool)
    .await
    .map_err(RunError::Db)?;
    let resumed_after = resumed_after as u64;
    let sink = sink.start_at(next_seq as u64);

    let started = Instant::now();
    let metrics = Metrics::new();
    let counters = Arc::new(HttpCounters::default());
    let server = TestServer::builder()
        .items(CATALOG_BOOKS)
        .faults(demo_faults())
        .start()
        .await
        .map_err(RunError::Io)?;
    let client = reqwest::Client::new();

    if config.progress && resumed_after > 0 {
        eprintln!("resuming after line {}", thousands(resumed_after));
    }
    // The live per-stage dashboard (bars on a terminal, plain lines otherwise), on its own
    // thread so a busy runtime never freezes it; dropping the handle stops it.
    let progress = config.progress.then(|| {
        millrace::adapters::progress::Dashboard::new(&metrics)
            .interval(Duration::from_millis(500))
            .start()
    });

    let popular = load_popular(&client, &server, &metrics, &counters)
        .await
        .map_err(RunError::Catalog)?;
    let lookup = Arc::new(Lookup {
        client,
        primary: server.base_url(),
        mirror: server.mirror_url(""),
        options: http_options(&counters),
        popular,
        counters: Arc::clone(&counters),
    });

    let skips = Skips::default();
    let fatal: Arc<Mutex<Option<String>>> = Arc::default();
    let (skips_in, fatal_in) = (skips.clone(), Arc::clone(&fatal));
    let (skips_out, fatal_out) = (skips.clone(), Arc::clone(&fatal));

    let supervised = fs::lines(&log)
        .stop_on(token.clone())
        .filter(move |item| future::ready(line_of(item) > resumed_after))
        .metered_in(&metrics, "read")
        .count_errors()
        .with_timing()
        .wrap(json::decode::<Event>())
        .map_err(Reject::from)
        .validate_ok(check_event)
        .inspect(move |item| {
            if let Err(reject) = item {
                match classify(reject) {
                    Ok(skip) => skips_in.push(skip),
                    Err(fatal) => {
                        *fatal_in.lock().unwrap_or_else(PoisonError::into_inner) = Some(fatal)
                    }
                }
            }
        })
        .on_error(Supervision::Resume);
    // The skipped lines show in the "valid" stage's report row.
    let skipped = supervised.skip_counter();
    let valid = supervised
        .filter_map(|item| future::ready(item.ok()))
        .metered_in(&metrics, "valid")
        .with_timing();
    valid.metrics().track_skips(&skipped);
    let events = valid
        .batch(config.batch_size)
        // Reading and decoding run on their own task, overlapping enrichment and inserts.
        .prefetch(4);

    let rows = events
        .rate_limit(Rate::per_second(config.lookups_per_second).burst(config.in_flight as u32))
        .map_concurrent(config.in_flight, move |batch| {
            let lookup = Arc::clone(&lookup);
            async move { lookup.enrich(batch).await }
        })
        // A batch that cannot be enriched, even by the mirror, ends the input: committing the
        // batches after it would leave a hole that resuming by line would never fill.
        .map(move |enriched| match enriched {
            Ok((rows, skipped)) => {
                for skip in skipped {
                    skips_out.push(skip);
                }
                Some(rows)
            }
            Err(e) => {
                *fatal_out.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(format!("catalog lookup failed: {e}"));
                None
            }
        })
        .take_while(|rows| future::ready(rows.is_some()))
        .filter_map(future::ready)
        .metered_in(&metrics, "enriched")
        .with_timing();

    let mut commits = std::pin::pin!(
        sink.commit_each(rows)
            .metered_in(&metrics, "committed")
            .count_errors()
            .with_timing()
    );
    let mut insert_error = None;
    while let Some(committed) = commits.next().await {
        match committed {
            Ok(_) => {
                let done = commits
                    .as_ref()
                    .get_ref()
                    .get_ref()
                    .report()
                    .batches_committed;
                if config.stop_after.is_some_and(|n| done >= n) && !token.is_cancelled() {
                    token.cancel(); // as Ctrl-C does: drain what is in flight, then stop
                }
            }
            Err(e) => insert_error = Some(e),
        }
    }
    let insert = commits.as_ref().get_ref().get_ref().report();
    let elapsed = started.elapsed();
    if let Some(progress) = progress {
        drop(progress);
        eprintln!();
    }
    if let Some(e) = insert_error {
        return Err(RunError::Insert(e));
    }

    let (rows_in_db,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM activity")
        .fetch_one(&pool)
        .await
        .map_err(RunError::Db)?;
    pool.close().await;

    let mut skips = skips.take();
    skips.sort_by_key(|s| s.line);
    let stages = metrics.snapshot();
    let read = stages
        .iter()
        .find(|s| s.name == "read")
        .map_or(0, |s| s.items);
    let read_all = read >= config.lines.saturating_sub(resumed_after);
    let fatal = fatal.lock().unwrap_or_else(PoisonError::into_inner).take();
    Ok(Report {
        lines: config.lines,
        generated_in,
        resumed_after,
        stages,
        skips,
        batches_committed: insert.batches_committed,
        batches_skipped: insert.batches_skipped,
        rows_inserted: insert.rows_inserted,
        rows_ignored: insert.rows_ignored,
        rows_in_db: rows_in_db as u64,
        request_retries: counters.request_retries.load(Ordering::Relaxed),
        catalog_restarts: counters.catalog_restarts.load(Ordering::Relaxed),
        catalog_fallbacks: counters.catalog_fallbacks.load(Ordering::Relaxed),
        lookups: counters.lookups.load(Ordering::Relaxed),
        lookup_limits: (config.in_flight, config.lookups_per_second),
        lookup_fallbacks: counters.lookup_fallbacks.load(Ordering::Relaxed),
        server: server.stats(),
        interrupted: !read_all && fatal.is_none(),
        fatal,
        elapsed,
    })
}

// ---------------------------------------------------------------------------------------------
// Live progress and the final report
// ---------------------------------------------------------------------------------------------

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = if let Some(fatal) = &self.fatal {
            format!("STOPPED by an error: {fatal}")
        } else if self.interrupted {
            "interrupted: in-flight batches drained and committed; run again to resume".to_owned()
        } else {
            "complete".to_owned()
        };
        writeln!(f, "== library dashboard: {status}")?;
        if let Some(t) = self.generated_in {
            writeln!(
                f,
                "log generated: {} lines in {t:.2?}",
                thousands(self.lines)
            )?;
        }
        if self.resumed_after > 0 {
            writeln!(
                f,
                "resumed after line {} (already committed by an earlier run)",
                thousands(self.resumed_after)
            )?;
        }
        // The end-of-run table of `millrace::metrics::Report`: the largest share of time is
        // the slowest stage.
        writeln!(
            f,
            "per stage (items: catalog books, read lines, valid events, enriched and committed \
             batches; p50/p99 = wait per item; time = share of the time spent in the stages):"
        )?;
        let table = millrace::metrics::Report::new(self.stages.clone()).to_string();
        for line in table.lines() {
            writeln!(f, "  {line}")?;
        }
        writeln!(
            f,
            "sqlite: {} rows inserted in {} batches ({} already present, {} batches already in \
             the ledger); {} rows in the table",
            thousands(self.rows_inserted),
            thousands(self.batches_committed),
            self.rows_ignored,
            self.batches_skipped,
            thousands(self.rows_in_db),
        )?;
        let mut by_reason: Vec<(SkipReason, Vec<&Skip>)> = Vec::new();
        for skip in &self.skips {
            match by_reason.iter_mut().find(|(r, _)| *r == skip.reason) {
                Some((_, list)) => list.push(skip),
                None => by_reason.push((skip.reason, vec![skip])),
            }
        }
        by_reason.sort_by_key(|(r, _)| *r);
        writeln!(f, "skipped lines: {}", self.skips.len())?;
        for (reason, list) in &by_reason {
            writeln!(f, "  {reason}: {}", list.len())?;
            for skip in list.iter().take(2) {
                writeln!(f, "    {}", skip.detail)?;
            }
        }
        writeln!(
            f,
            "http: {} requests retried with backoff; catalog source restarted {} times from its \
             checkpoint, fell back to the mirror {} times; {} batch lookups ({} answered by \
             the mirror; limits: {} in flight, {}/s)",
            self.request_retries,
            self.catalog_restarts,
            self.catalog_fallbacks,
            self.lookups,
            self.lookup_fallbacks,
            self.lookup_limits.0,
            self.lookup_limits.1,
        )?;
        writeln!(
            f,
            "catalog service: {} requests ({} to the mirror), injected {} errors, {} dropped \
             connections, {} slow answers; at most {} requests in flight",
            self.server.total_requests,
            self.server.mirror_requests,
            self.server.injected_errors,
            self.server.injected_drops,
            self.server.injected_delays,
            self.server.max_in_flight,
        )?;
        write!(
            f,
            "throughput: {} lines/s ({:.2?} for the pipeline, catalog load included)",
            thousands(self.throughput() as u64),
            self.elapsed
        )
    }
}
