//! The library dashboard pipeline, shared by the example (`main.rs`) and `tests/flagship.rs`.
//!
//! ```text
//! claim (resume position) ─ fs::lines(..).resume_after(..).tracked() ─ stop_on ─ json::decode_tracked
//!   ─ validate ─ dead letters ─ batch_within ─ prefetch ─ rate_limit ─ map_concurrent(32, catalog lookup)
//!   ─ commit_each (SQLite: rows, dead letters and position in one transaction)
//! ```
//!
//! Every line read is committed as a row, dead-lettered with its reason (malformed, invalid,
//! unknown book: in the `millrace_dead_letters` table), or counted; the report ends with the
//! accounting line `read = committed + dead-lettered + filtered`.
//!
//! Before the log is read, the popular part of the catalog is loaded through the paginated
//! HTTP source (`restartable(..).retry(..)`, then `recover_with` to the mirror, resuming from
//! the checkpoint); the other books are looked up per batch with `/batch?ids=…`.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, future};
use millrace::adapters::http::reqwest::{self, Url};
use millrace::adapters::http::{
    HttpError, HttpOptions, PageStyle, paginated, paginated_from, request_json,
};
use millrace::adapters::json::{self, Decoded, JsonLineError};
use millrace::adapters::sql::{BatchInsert, InsertError, InsertRow, RowValues};
use millrace::adapters::{fs, fs::LinePosition};
use millrace::policy::ExponentialBuilder;
use millrace::positions::{Counts, Entry, Positioned, TrackedBatch};
use millrace::prelude::*;
use millrace::{PagePosition, StageSnapshot};
use millrace_test_support::{Book, Faults, ServerStats, TestServer};
use serde::Deserialize;
use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// The pipeline's name in the offsets table.
const PIPELINE: &str = "library_dashboard";

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
    /// Log lines per lookup batch and per SQLite transaction (at most).
    pub(crate) batch_size: usize,
    /// A batch is also closed this long after its first line (`batch_within`).
    pub(crate) batch_time: Duration,
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
            batch_time: Duration::from_millis(250),
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
// The generated activity log (in `activity_log.rs`, shared with the hand-written baseline)
// ---------------------------------------------------------------------------------------------

#[path = "activity_log.rs"]
mod activity_log;

pub(crate) use activity_log::{CATALOG_BOOKS, POPULAR_BOOKS};
#[allow(unused_imports)]
pub(crate) use activity_log::{LineKind, line_kind};

/// Writes the log of `lines` lines to `path` unless it is already there; returns how long
/// generating took, or `None` if the file existed (see [`activity_log::write_log`]).
pub(crate) async fn ensure_log(path: &Path, lines: u64) -> io::Result<Option<Duration>> {
    if tokio::fs::try_exists(path).await? {
        return Ok(None);
    }
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || activity_log::write_log(&path, lines))
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
        // Text as `&str`: bound by reference (a `&String` would be copied).
        values
            .bind(self.line)
            .bind(self.ts)
            .bind(self.member.as_str())
            .bind(self.book)
            .bind(self.action.as_str())
            .bind(self.title.as_str())
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

/// Why a line became a dead letter before enrichment.
#[derive(Debug)]
enum Reject {
    Json(JsonLineError),
    Invalid { line: u64, reason: &'static str },
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::Json(e) => fmt::Display::fmt(e, f),
            Reject::Invalid { line, reason } => write!(f, "line {line}: {reason}"),
        }
    }
}

/// Decodes and validates one entry: the event, or why the line is rejected.
fn accept(decoded: Result<Decoded<Event>, JsonLineError>) -> Result<Decoded<Event>, Reject> {
    let event = decoded.map_err(Reject::Json)?;
    match check_event(&event) {
        Ok(()) => Ok(event),
        Err(reason) => Err(Reject::Invalid {
            line: event.line,
            reason,
        }),
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

/// The [`Skip`] of a rejected line (its dead letter's reason is the detail).
fn skip_of(reject: &Reject) -> Skip {
    let (line, reason) = match reject {
        Reject::Json(JsonLineError::Malformed { line, .. }) => (*line, SkipReason::MalformedJson),
        Reject::Json(JsonLineError::Line(e)) => (e.line().unwrap_or(0), SkipReason::Unreadable),
        Reject::Json(_) => (0, SkipReason::MalformedJson),
        Reject::Invalid { line, .. } => (*line, SkipReason::Invalid),
    };
    Skip {
        line,
        reason,
        detail: reject.to_string(),
    }
}

/// An error of the line source that is not about one line (the file cannot be opened or
/// read): it ends the input instead of becoming a dead letter.
fn fatal_read_error(
    entry: &Positioned<LinePosition, Result<Decoded<Event>, JsonLineError>>,
) -> Option<String> {
    match &entry.entry {
        Entry::Item(Err(JsonLineError::Line(e))) if !e.is_skipped_line() => Some(e.to_string()),
        _ => None,
    }
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
    skips: Skips,
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
    /// batch. Events whose book the catalog lacks become dead letters.
    async fn enrich(
        &self,
        batch: TrackedBatch<LinePosition, Decoded<Event>>,
    ) -> Result<TrackedBatch<LinePosition, Row>, HttpError> {
        let mut missing: Vec<u64> = batch
            .items()
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
        Ok(batch.map_or_dead_letter(|Decoded { line, value: e }| {
            match self.popular.get(&e.book).or_else(|| fetched.get(&e.book)) {
                Some(book) => Ok(Row {
                    line: line as i64,
                    ts: e.ts,
                    member: e.member,
                    book: e.book as i64,
                    action: e.action,
                    title: book.title.clone(),
                    year: i64::from(book.year),
                }),
                None => {
                    let detail = format!(
                        "line {line}: book {} is not in the catalog (ids 0..{CATALOG_BOOKS})",
                        e.book
                    );
                    self.skips.push(Skip {
                        line,
                        reason: SkipReason::UnknownBook,
                        detail: detail.clone(),
                    });
                    Err(detail)
                }
            }
        }))
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
    /// Dead letters committed by this run (the skipped lines, with their reasons).
    pub(crate) dead_lettered: u64,
    /// The delivery accounting of this run: `read = committed + dead-lettered + filtered`.
    pub(crate) balance: Counts,
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
    /// The accounting does not balance: some lines read were neither committed, dead-lettered
    /// nor filtered (the run ended on an error; run again to resume).
    pub(crate) unbalanced: Option<String>,
    /// The input's last line has no newline: its number (the file may be cut, or still being
    /// written).
    pub(crate) ends_mid_line: Option<u64>,
    /// The input has no data line (empty, or blank lines only).
    pub(crate) no_data: bool,
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
    /// A file or directory of the run cannot be used (`action` says what was tried).
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The database cannot be opened or read.
    Db { path: PathBuf, source: sqlx::Error },
    /// The catalog could not be loaded, even from the mirror.
    Catalog(HttpError),
    /// The pipeline is held by another run, or a batch could not be committed.
    Insert(InsertError<HttpError>),
}

/// What to do about an I/O error at `path`, in words.
fn remedy(path: &Path, kind: io::ErrorKind) -> &'static str {
    match kind {
        _ if path.is_dir() => "move the directory away, or pass another --data-dir",
        io::ErrorKind::ReadOnlyFilesystem => {
            "the file system is read-only: pass a --data-dir on a writable one"
        }
        io::ErrorKind::PermissionDenied => "no permission: pass a --data-dir you can write to",
        io::ErrorKind::NotFound => "check that the path exists",
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            "the disk is full: free some space or pass another --data-dir"
        }
        _ => "check the path and the disk",
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Io {
                action,
                path,
                source,
            } => write!(
                f,
                "cannot {action} {}: {}; {}",
                path.display(),
                cause(source),
                remedy(path, source.kind())
            ),
            RunError::Db { path, source } => {
                let kind = match source {
                    sqlx::Error::Io(e) => e.kind(),
                    _ if path.parent().is_some_and(|dir| {
                        std::fs::metadata(dir).is_ok_and(|m| m.permissions().readonly())
                    }) =>
                    {
                        io::ErrorKind::ReadOnlyFilesystem
                    }
                    _ => io::ErrorKind::Other,
                };
                write!(
                    f,
                    "cannot open the database {}: {source}; {}",
                    path.display(),
                    remedy(path, kind)
                )
            }
            RunError::Catalog(e) => write!(f, "catalog unavailable: {e}"),
            RunError::Insert(e) => write!(f, "{e}"),
        }
    }
}

/// An I/O error's cause in words ("is a directory", "read-only file system", …).
fn cause(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::IsADirectory => "is a directory".to_owned(),
        io::ErrorKind::ReadOnlyFilesystem => "read-only file system".to_owned(),
        io::ErrorKind::NotADirectory => "a part of the path is not a directory".to_owned(),
        _ => e.to_string(),
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Io { source, .. } => Some(source),
            RunError::Db { source, .. } => Some(source),
            RunError::Catalog(e) => Some(e),
            RunError::Insert(e) => Some(e),
        }
    }
}

/// How the input ends, for the report: `(ends mid-line, has a data line)`.
fn input_shape(log: &Path) -> io::Result<(bool, bool)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(log)?;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok((false, false));
    }
    let mut last = [0u8];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    // Blank-only inputs are small in practice; a large input has data.
    let has_data = len > 1 << 20 || {
        let mut all = Vec::new();
        file.seek(SeekFrom::Start(0))?;
        file.read_to_end(&mut all)?;
        all.iter().any(|b| !b.is_ascii_whitespace())
    };
    Ok((last[0] != b'\n', has_data))
}

/// Runs the pipeline once: generates the log if needed, claims the pipeline and resumes after
/// its committed position, stops gracefully when `token` fires (in-flight batches are enriched
/// and committed), and reports.
pub(crate) async fn run(config: &Config, token: CancellationToken) -> Result<Report, RunError> {
    let log = config.log_path();
    let generated_in = ensure_log(&log, config.lines)
        .await
        .map_err(|source| RunError::Io {
            action: "write the log",
            path: log.clone(),
            source,
        })?;
    let (ends_mid_line, has_data) = input_shape(&log).map_err(|source| RunError::Io {
        action: "read the log",
        path: log.clone(),
        source,
    })?;
    if config.fresh {
        delete_db(&config.db_path())
            .await
            .map_err(|source| RunError::Io {
                action: "delete the database",
                path: config.db_path(),
                source,
            })?;
    }
    let pool = open_db(&config.db_path())
        .await
        .map_err(|source| RunError::Db {
            path: config.db_path(),
            source,
        })?;

    // One writer per pipeline: a second copy on the same data is refused here, naming the
    // first. The claim says where the last run's commits ended.
    let sink = BatchInsert::new(
        pool.clone(),
        PIPELINE,
        "INSERT INTO activity (line, ts, member, book, action, title, year) ",
    )
    .on_conflict("ON CONFLICT (line) DO NOTHING")
    .rows_per_statement(500);
    let source_name = log.file_name().map_or_else(
        || log.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let claim = sink
        .claim::<LinePosition>(&source_name)
        .await
        .map_err(|e| RunError::Insert(e.map_upstream(|never| match never {})))?;
    let resume = claim.resume_after().copied();
    let resumed_after = resume.map_or(0, |at| at.line);

    let started = Instant::now();
    let metrics = Metrics::new();
    let counters = Arc::new(HttpCounters::default());
    let server = TestServer::builder()
        .items(CATALOG_BOOKS)
        .faults(demo_faults())
        .start()
        .await
        .map_err(|source| RunError::Io {
            action: "start the catalog service on",
            path: PathBuf::from("127.0.0.1"),
            source,
        })?;
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
    let skips = Skips::default();
    let lookup = Arc::new(Lookup {
        client,
        primary: server.base_url(),
        mirror: server.mirror_url(""),
        options: http_options(&counters),
        popular,
        counters: Arc::clone(&counters),
        skips: skips.clone(),
    });

    let fatal: Arc<Mutex<Option<String>>> = Arc::default();
    let fatal_in = Arc::clone(&fatal);
    let skips_in = skips.clone();
    let lines = fs::lines(&log)
        .resume_after(resume)
        .tracked()
        .stop_on(token.clone())
        .via(|s| s.metered_in(&metrics, "read").with_timing());
    let batches = json::decode_tracked::<Event, _>(lines)
        // An I/O error ends the input (it is not about one line): the run stops, and the
        // accounting shows the entries not done.
        .via(move |s| {
            s.take_while(move |entry| {
                let fatal_error = fatal_read_error(entry);
                let go_on = fatal_error.is_none();
                if let Some(e) = fatal_error {
                    *fatal_in.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                }
                future::ready(go_on)
            })
        })
        .map(accept)
        .dead_letter_with(move |reject| {
            let skip = skip_of(&reject);
            let reason = skip.detail.clone();
            skips_in.push(skip);
            reason
        })
        .batch_within(config.batch_size, config.batch_time)
        // Reading and decoding run on their own task, overlapping enrichment and inserts.
        .prefetch(4);

    let limit = Rate::per_second(config.lookups_per_second).burst(config.in_flight as u32);
    let in_flight = config.in_flight;
    let rows = batches.via(|s| {
        s.rate_limit(limit)
            .map_concurrent(in_flight, move |batch| {
                let lookup = Arc::clone(&lookup);
                async move { lookup.enrich(batch).await }
            })
            // Enriched batches wait for the database here: 4 are plenty (the commit takes
            // the next one while the previous commits), and each holds 1,000 rows.
            .with_output_buffer(4)
            .metered_in(&metrics, "enriched")
            .with_timing()
    });

    let mut commits = std::pin::pin!(
        claim
            .commit_each(rows)
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
            // A batch that cannot be enriched, even by the mirror, ends the run: the batches
            // after it are not committed (the position cannot pass over it).
            Err(InsertError::Upstream { source, .. }) => {
                *fatal.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(format!("catalog lookup failed: {source}"));
            }
            Err(e) => insert_error = Some(e),
        }
    }
    let insert = commits.as_ref().get_ref().get_ref().report();
    let accounting = commits.as_ref().get_ref().get_ref().accounting().clone();
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
        .map_err(|source| RunError::Db {
            path: config.db_path(),
            source,
        })?;
    pool.close().await;

    let mut skips = skips.take();
    skips.sort_by_key(|s| s.line);
    let fatal = fatal.lock().unwrap_or_else(PoisonError::into_inner).take();
    Ok(Report {
        lines: config.lines,
        generated_in,
        resumed_after,
        stages: metrics.snapshot(),
        skips,
        batches_committed: insert.batches_committed,
        dead_lettered: insert.dead_lettered,
        balance: accounting.counts(),
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
        interrupted: token.is_cancelled() && fatal.is_none(),
        unbalanced: accounting.check().err().map(|e| e.to_string()),
        // Every line is one entry read, so the last line's number is this.
        ends_mid_line: ends_mid_line.then(|| resumed_after + accounting.read()),
        no_data: !has_data,
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
        } else if self.unbalanced.is_some() {
            "INCOMPLETE: the accounting does not balance".to_owned()
        } else {
            "complete".to_owned()
        };
        writeln!(f, "== library dashboard: {status}")?;
        if self.no_data {
            writeln!(
                f,
                "the input has no data: it is empty or holds only blank lines; nothing to do"
            )?;
        }
        if let Some(line) = self.ends_mid_line {
            writeln!(
                f,
                "the input ends mid-line at line {line} (no newline after it): the file was cut \
                 or is still being written; that line was read as it is"
            )?;
        }
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
            "sqlite: {} rows inserted in {} batches ({} already present), {} dead letters (table \
             millrace_dead_letters); {} rows in the table",
            thousands(self.rows_inserted),
            thousands(self.batches_committed),
            self.rows_ignored,
            thousands(self.dead_lettered),
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
        writeln!(f, "accounting: {}", self.balance)?;
        if let Some(unbalanced) = &self.unbalanced {
            writeln!(f, "  {unbalanced}")?;
        }
        write!(
            f,
            "throughput: {} lines/s ({:.2?} for the pipeline, catalog load included)",
            thousands(self.throughput() as u64),
            self.elapsed
        )
    }
}
