//! Run with: cargo run --release --example handwritten_baseline -- --fresh
//!
//! The main job **written by hand, without millrace**: the yardstick that
//! `scripts/mainjob_bench.sh` measures the flagship (`examples/library_dashboard`) against.
//! It does exactly the flagship's work, in the plainest Rust a careful programmer would write:
//!
//! - the same generated log (`library_dashboard/activity_log.rs`), read by a **reader thread**
//!   (`BufReader` of 64 KiB, one reused line buffer), the same rules for bad lines (not UTF-8,
//!   over 1 MiB, blank, malformed JSON: the same `serde_json` decode of the same `Event`), the
//!   same validation, cut into batches of 1,000 lines, each with the position after its last line;
//! - the same in-process catalog service with the same injected faults: the popular books
//!   loaded page by page up front (a retry per request, restarts, then the mirror), the others
//!   looked up per batch with `/batch?ids=…` (a retry, then the mirror), at most 32 lookups in
//!   flight and 1,000 per second (tokio tasks, a token bucket);
//! - the same rows in the same `activity` table, committed by a **database thread** with
//!   rusqlite (WAL, `synchronous = NORMAL`, cached prepared statements): per batch one
//!   transaction with the fenced update of the offsets row, the rows in statements of 500
//!   (`ON CONFLICT (line) DO NOTHING`), and the batch's dead letters, in the flagship's tables
//!   and with the flagship's reasons.
//!
//! `tests/baseline_equal.rs` checks that its tables equal the flagship's on a small log.
//! It has no resume, no graceful stop, no live progress and no per-stage metrics: what it
//! prints is the throughput, measured like the flagship's (catalog load included).
//!
//! Flags: `--lines N` (default 1,000,000), `--data-dir DIR` (default `target/millrace-demo`,
//! the flagship's, so both read the same log), `--fresh` (accepted; every run starts over),
//! `--quiet` (accepted; it prints no progress anyway).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use millrace_test_support::{Faults, TestServer};
use rusqlite::Connection;
use serde::Deserialize;

#[allow(dead_code)]
#[path = "library_dashboard/activity_log.rs"]
mod activity_log;

use activity_log::{CATALOG_BOOKS, POPULAR_BOOKS};

/// The flagship's names in the offsets and dead-letter tables.
const PIPELINE: &str = "library_dashboard";
/// The flagship's limits: the longest line, rows per `INSERT`.
const MAX_LINE: usize = 1 << 20;
const ROWS_PER_STATEMENT: usize = 500;
/// As `json::SNIPPET_CHARS`: the start of a malformed line quoted in its dead letter.
const SNIPPET_CHARS: usize = 80;

/// What one run does (the flagship's `Config`, less what the baseline does not do).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) lines: u64,
    pub(crate) data_dir: PathBuf,
    pub(crate) batch_size: usize,
    pub(crate) in_flight: usize,
    pub(crate) lookups_per_second: u32,
}

impl Config {
    pub(crate) fn new(lines: u64, data_dir: impl Into<PathBuf>) -> Self {
        Config {
            lines,
            data_dir: data_dir.into(),
            batch_size: 1_000,
            in_flight: 32,
            lookups_per_second: 1_000,
        }
    }

    /// The same log file as the flagship's.
    pub(crate) fn log_path(&self) -> PathBuf {
        self.data_dir.join(format!("activity-{}.jsonl", self.lines))
    }

    /// Its own database, beside the flagship's.
    pub(crate) fn db_path(&self) -> PathBuf {
        self.data_dir
            .join(format!("baseline-{}.sqlite", self.lines))
    }
}

/// One line of the log (the flagship's `Event`).
#[derive(Debug, Deserialize)]
struct Event {
    ts: i64,
    member: String,
    book: u64,
    action: String,
}

/// A book of the catalog service, as its JSON says.
#[derive(Debug, Deserialize)]
struct Book {
    id: u64,
    title: String,
    #[allow(dead_code)]
    author: String,
    year: u16,
}

#[derive(Debug, Deserialize)]
struct BatchReply {
    items: Vec<Book>,
}

#[derive(Debug, Deserialize)]
struct CursorPage {
    items: Vec<Book>,
    next: Option<String>,
}

/// `offset:line`, as `LinePosition` writes it.
fn position_text(offset: u64, line: u64) -> String {
    format!("{offset}:{line}")
}

/// A batch of lines as read: the valid events, the dead letters and where the batch ends.
#[derive(Debug, Default)]
struct ReadBatch {
    events: Vec<(u64, u64, Event)>, // (line, offset after it, event)
    dead: Vec<(String, String)>,    // (position, reason)
    filtered: u64,
    end: (u64, u64), // (offset, line) after the batch's last line
}

/// A batch ready for the database.
#[derive(Debug)]
struct RowBatch {
    rows: Vec<Row>,
    dead: Vec<(String, String)>,
    filtered: u64,
    end: (u64, u64),
}

#[derive(Debug)]
struct Row {
    line: i64,
    ts: i64,
    member: String,
    book: i64,
    action: String,
    title: String,
    year: i64,
}

/// What a run reports.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) lines_read: u64,
    pub(crate) rows_inserted: u64,
    pub(crate) dead_lettered: u64,
    pub(crate) batches: u64,
    pub(crate) rows_in_db: u64,
    pub(crate) lookups: u64,
    pub(crate) elapsed: Duration,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "== hand-written baseline: complete")?;
        writeln!(
            f,
            "sqlite: {} rows inserted in {} batches, {} dead letters; {} rows in the table; {} \
             batch lookups",
            self.rows_inserted, self.batches, self.dead_lettered, self.rows_in_db, self.lookups
        )?;
        write!(
            f,
            "throughput: {} lines/s ({:.2?} for the pipeline, catalog load included)",
            (self.lines_read as f64 / self.elapsed.as_secs_f64().max(1e-9)) as u64,
            self.elapsed
        )
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

// ---------------------------------------------------------------------------------------------
// The reader thread
// ---------------------------------------------------------------------------------------------

/// Why a line is a dead letter before enrichment (the flagship's words).
fn check(line: u64, content: &[u8]) -> Result<Option<Event>, String> {
    let content = content.strip_suffix(b"\r").unwrap_or(content);
    if content.len() > MAX_LINE {
        return Err(format!(
            "line {line} is too long: at least {} bytes, the limit is {MAX_LINE}; the line was \
             skipped, raise the limit with `max_line_length` if it is valid",
            content.len()
        ));
    }
    let text = std::str::from_utf8(content).map_err(|e| {
        format!(
            "line {line} is not valid UTF-8 (valid up to byte {}); the line was skipped, \
             re-encode the input as UTF-8",
            e.valid_up_to()
        )
    })?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let event: Event = serde_json::from_str(text).map_err(|e| {
        let snippet = match text.char_indices().nth(SNIPPET_CHARS) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.to_owned(),
        };
        format!(
            "line {line} is not valid JSON for this type ({e}): `{snippet}`; the line was \
             skipped, fix or remove it"
        )
    })?;
    if event.action != "checkout" && event.action != "return" {
        return Err(format!(
            "line {line}: the action is neither \"checkout\" nor \"return\""
        ));
    }
    if !(event.member.starts_with('M') && event.member[1..].bytes().all(|b| b.is_ascii_digit())) {
        return Err(format!(
            "line {line}: the member id is not `M` followed by digits"
        ));
    }
    Ok(Some(event))
}

/// Reads the log into batches of `batch_size` lines; the total of lines read.
fn read_log(
    path: &Path,
    batch_size: usize,
    out: tokio::sync::mpsc::Sender<ReadBatch>,
) -> io::Result<u64> {
    let mut reader = BufReader::with_capacity(64 * 1024, std::fs::File::open(path)?);
    let mut buf = Vec::with_capacity(256);
    let (mut offset, mut line) = (0u64, 0u64);
    let mut batch = ReadBatch::default();
    let mut in_batch = 0;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        offset += n as u64;
        line += 1;
        let content = buf.strip_suffix(b"\n").unwrap_or(&buf);
        match check(line, content) {
            Ok(Some(event)) => batch.events.push((line, offset, event)),
            Ok(None) => batch.filtered += 1,
            Err(reason) => batch.dead.push((position_text(offset, line), reason)),
        }
        in_batch += 1;
        if in_batch == batch_size {
            batch.end = (offset, line);
            if out.blocking_send(std::mem::take(&mut batch)).is_err() {
                return Ok(line); // the consumer stopped
            }
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        batch.end = (offset, line);
        let _ = out.blocking_send(batch);
    }
    Ok(line)
}

// ---------------------------------------------------------------------------------------------
// The catalog
// ---------------------------------------------------------------------------------------------

/// GET `url` as JSON: a 2-second timeout, one retry after a short backoff on a transient
/// failure (5xx, 429, a dropped connection, a timeout).
async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
) -> Result<T, String> {
    let mut last = String::new();
    for attempt in 0..2u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let sent = client.get(url).timeout(Duration::from_secs(2)).send().await;
        match sent {
            Ok(response) if response.status().is_success() => match response.json::<T>().await {
                Ok(value) => return Ok(value),
                Err(e) => last = format!("GET {url}: {e}"),
            },
            Ok(response)
                if response.status().is_server_error() || response.status().as_u16() == 429 =>
            {
                last = format!("GET {url}: {}", response.status());
            }
            Ok(response) => return Err(format!("GET {url}: {}", response.status())),
            Err(e) => last = format!("GET {url}: {e}"),
        }
    }
    Err(last)
}

/// Loads the popular books page by page from the primary; a page that fails even after its
/// retry is asked again twice (20 ms, then 40 ms later), then the mirror serves the rest.
async fn load_popular(
    client: &reqwest::Client,
    server: &TestServer,
) -> Result<HashMap<u64, Book>, String> {
    let mut books = HashMap::with_capacity(POPULAR_BOOKS as usize);
    let mut cursor: Option<String> = None;
    let (mut base, mut failures) = (server.url("/cursor"), 0u32);
    while (books.len() as u64) < POPULAR_BOOKS {
        let url = match &cursor {
            None => format!("{base}?limit=500"),
            Some(c) => format!("{base}?limit=500&cursor={c}"),
        };
        match get_json::<CursorPage>(client, &url).await {
            Ok(page) => {
                for book in page.items {
                    if (books.len() as u64) < POPULAR_BOOKS {
                        books.insert(book.id, book);
                    }
                }
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            Err(e) if failures >= 5 => return Err(e),
            Err(_) => {
                failures += 1;
                if failures < 3 {
                    tokio::time::sleep(Duration::from_millis(20 << (failures - 1))).await;
                } else {
                    base = server.mirror_url("/cursor");
                }
            }
        }
    }
    Ok(books)
}

/// Enriches one batch: popular books from memory, the others with one `/batch` lookup (the
/// mirror if the primary fails); an unknown book makes the line a dead letter.
async fn enrich(
    client: reqwest::Client,
    primary: String,
    mirror: String,
    popular: &HashMap<u64, Book>,
    batch: ReadBatch,
) -> Result<RowBatch, String> {
    let mut missing: Vec<u64> = batch
        .events
        .iter()
        .map(|(_, _, e)| e.book)
        .filter(|id| !popular.contains_key(id))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    let fetched: HashMap<u64, Book> = if missing.is_empty() {
        HashMap::new()
    } else {
        let mut ids = String::with_capacity(missing.len() * 6);
        for (i, id) in missing.iter().enumerate() {
            if i > 0 {
                ids.push(',');
            }
            ids.push_str(&id.to_string());
        }
        let reply = match get_json::<BatchReply>(&client, &format!("{primary}/batch?ids={ids}"))
            .await
        {
            Ok(reply) => reply,
            Err(_) => get_json::<BatchReply>(&client, &format!("{mirror}/batch?ids={ids}")).await?,
        };
        reply.items.into_iter().map(|b| (b.id, b)).collect()
    };
    let mut rows = Vec::with_capacity(batch.events.len());
    let mut dead = batch.dead;
    for (line, offset, e) in batch.events {
        match popular.get(&e.book).or_else(|| fetched.get(&e.book)) {
            Some(book) => rows.push(Row {
                line: line as i64,
                ts: e.ts,
                member: e.member,
                book: e.book as i64,
                action: e.action,
                title: book.title.clone(),
                year: i64::from(book.year),
            }),
            None => dead.push((
                position_text(offset, line),
                format!(
                    "line {line}: book {} is not in the catalog (ids 0..{CATALOG_BOOKS})",
                    e.book
                ),
            )),
        }
    }
    Ok(RowBatch {
        rows,
        dead,
        filtered: batch.filtered,
        end: batch.end,
    })
}

/// Takes batches from the reader, enriches up to `in_flight` at once (at most
/// `per_second` lookups a second, a burst of `in_flight`), and hands them on in order.
async fn enrich_all(
    config: &Config,
    client: reqwest::Client,
    server: &TestServer,
    popular: HashMap<u64, Book>,
    mut input: tokio::sync::mpsc::Receiver<ReadBatch>,
    output: tokio::sync::mpsc::Sender<RowBatch>,
) -> Result<u64, String> {
    let popular = std::sync::Arc::new(popular);
    let (primary, mirror) = (server.base_url(), server.mirror_url(""));
    let mut queue: VecDeque<tokio::task::JoinHandle<Result<RowBatch, String>>> = VecDeque::new();
    let (rate, burst) = (
        f64::from(config.lookups_per_second),
        config.in_flight as f64,
    );
    let (mut tokens, mut refilled) = (burst, Instant::now());
    let (mut input_done, mut lookups) = (false, 0u64);
    loop {
        let can_start = !input_done && queue.len() < config.in_flight;
        tokio::select! {
            biased;
            done = async { queue.front_mut().expect("not empty").await }, if !queue.is_empty() => {
                queue.pop_front();
                let batch = done.map_err(|e| e.to_string())??;
                if output.send(batch).await.is_err() {
                    return Err("the database thread stopped".to_owned());
                }
            }
            batch = input.recv(), if can_start => match batch {
                Some(batch) => {
                    let now = Instant::now();
                    tokens = (tokens + now.duration_since(refilled).as_secs_f64() * rate).min(burst);
                    refilled = now;
                    if tokens < 1.0 {
                        tokio::time::sleep(Duration::from_secs_f64((1.0 - tokens) / rate)).await;
                        tokens = 1.0;
                        refilled = Instant::now();
                    }
                    tokens -= 1.0;
                    lookups += 1;
                    let (client, primary, mirror, popular) =
                        (client.clone(), primary.clone(), mirror.clone(), popular.clone());
                    queue.push_back(tokio::spawn(async move {
                        enrich(client, primary, mirror, &popular, batch).await
                    }));
                }
                None => input_done = true,
            },
            else => return Ok(lookups),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The database thread
// ---------------------------------------------------------------------------------------------

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Creates the flagship's tables and claims the pipeline (epoch 1).
fn open_db(path: &Path, source: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", "normal")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS activity (line INTEGER PRIMARY KEY, ts INTEGER NOT NULL, \
         member TEXT NOT NULL, book INTEGER NOT NULL, action TEXT NOT NULL, \
         title TEXT NOT NULL, year INTEGER NOT NULL); \
         CREATE TABLE IF NOT EXISTS millrace_offsets (pipeline TEXT NOT NULL, source TEXT NOT \
         NULL, position TEXT NOT NULL, epoch BIGINT NOT NULL, holder_host TEXT NOT NULL, \
         holder_pid BIGINT NOT NULL, heartbeat_ms BIGINT NOT NULL, committed BIGINT NOT NULL, \
         dead_lettered BIGINT NOT NULL, filtered BIGINT NOT NULL, PRIMARY KEY (pipeline, source)); \
         CREATE TABLE IF NOT EXISTS millrace_dead_letters (pipeline TEXT NOT NULL, source TEXT \
         NOT NULL, position TEXT NOT NULL, reason TEXT NOT NULL);",
    )?;
    conn.execute(
        "INSERT INTO millrace_offsets (pipeline, source, position, epoch, holder_host, \
         holder_pid, heartbeat_ms, committed, dead_lettered, filtered) VALUES \
         (?1, ?2, '', 0, '', 0, 0, 0, 0, 0) ON CONFLICT (pipeline, source) DO NOTHING",
        (PIPELINE, source),
    )?;
    conn.execute(
        "UPDATE millrace_offsets SET epoch = epoch + 1, holder_host = ?1, holder_pid = ?2, \
         heartbeat_ms = ?3 WHERE pipeline = ?4 AND source = ?5",
        (
            "localhost",
            i64::from(std::process::id()),
            now_ms(),
            PIPELINE,
            source,
        ),
    )?;
    Ok(conn)
}

/// `INSERT … VALUES (?, …), … ON CONFLICT (line) DO NOTHING` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    let mut sql =
        String::from("INSERT INTO activity (line, ts, member, book, action, title, year) VALUES ");
    for i in 0..rows {
        sql.push_str(if i == 0 { "(" } else { ", (" });
        sql.push_str("?, ?, ?, ?, ?, ?, ?)");
    }
    sql.push_str(" ON CONFLICT (line) DO NOTHING");
    sql
}

/// Commits every batch: fenced position update, rows, dead letters, one transaction each.
/// The totals `(batches, rows inserted, dead letters)`.
fn write_db(
    mut conn: Connection,
    source: &str,
    mut input: tokio::sync::mpsc::Receiver<RowBatch>,
) -> Result<(u64, u64, u64), BoxError> {
    let full = insert_sql(ROWS_PER_STATEMENT);
    let (mut batches, mut inserted, mut dead) = (0, 0, 0);
    while let Some(batch) = input.blocking_recv() {
        let tx = conn.transaction()?;
        let fenced = tx
            .prepare_cached(
                "UPDATE millrace_offsets SET position = ?1, heartbeat_ms = ?2, committed = \
                 committed + ?3, dead_lettered = dead_lettered + ?4, filtered = filtered + ?5 \
                 WHERE pipeline = ?6 AND source = ?7 AND epoch = ?8",
            )?
            .execute((
                position_text(batch.end.0, batch.end.1),
                now_ms(),
                batch.rows.len() as i64,
                batch.dead.len() as i64,
                batch.filtered as i64,
                PIPELINE,
                source,
                1_i64,
            ))?;
        if fenced == 0 {
            return Err("another process took the pipeline over".into());
        }
        for chunk in batch.rows.chunks(ROWS_PER_STATEMENT) {
            let partial;
            let sql = if chunk.len() == ROWS_PER_STATEMENT {
                &full
            } else {
                partial = insert_sql(chunk.len());
                &partial
            };
            let mut insert = tx.prepare_cached(sql)?;
            let mut i = 0;
            for row in chunk {
                insert.raw_bind_parameter(i + 1, row.line)?;
                insert.raw_bind_parameter(i + 2, row.ts)?;
                insert.raw_bind_parameter(i + 3, row.member.as_str())?;
                insert.raw_bind_parameter(i + 4, row.book)?;
                insert.raw_bind_parameter(i + 5, row.action.as_str())?;
                insert.raw_bind_parameter(i + 6, row.title.as_str())?;
                insert.raw_bind_parameter(i + 7, row.year)?;
                i += 7;
            }
            inserted += insert.raw_execute()? as u64;
        }
        {
            let mut letter = tx.prepare_cached(
                "INSERT INTO millrace_dead_letters (pipeline, source, position, reason) VALUES \
                 (?1, ?2, ?3, ?4)",
            )?;
            for (position, reason) in &batch.dead {
                letter.execute((PIPELINE, source, position, reason))?;
            }
        }
        tx.commit()?;
        batches += 1;
        dead += batch.dead.len() as u64;
    }
    conn.execute(
        "UPDATE millrace_offsets SET holder_host = '', holder_pid = 0, heartbeat_ms = ?1 \
         WHERE pipeline = ?2 AND source = ?3 AND epoch = 1",
        (now_ms(), PIPELINE, source),
    )?;
    Ok((batches, inserted, dead))
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// Runs the job once, from a fresh database. Call it outside an async runtime: it starts its
/// own (for the catalog service and the lookups) and two threads.
pub(crate) fn run(config: &Config) -> Result<Report, BoxError> {
    let log = config.log_path();
    activity_log::write_log(&log, config.lines)?;
    let db = config.db_path();
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::remove_file(&name) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    let source = log
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let conn = open_db(&db, &source)?;

    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let server = runtime.block_on(
        TestServer::builder()
            .items(CATALOG_BOOKS)
            .faults(Faults::main_job())
            .start(),
    )?;
    let client = reqwest::Client::new();
    let popular = runtime.block_on(load_popular(&client, &server))?;

    let (read_tx, read_rx) = tokio::sync::mpsc::channel(4);
    let (rows_tx, rows_rx) = tokio::sync::mpsc::channel(4);
    let reader = {
        let (log, size) = (log.clone(), config.batch_size);
        std::thread::spawn(move || read_log(&log, size, read_tx))
    };
    let writer = {
        let source = source.clone();
        std::thread::spawn(move || write_db(conn, &source, rows_rx))
    };
    let lookups = runtime.block_on(enrich_all(
        config, client, &server, popular, read_rx, rows_tx,
    ));
    let lines_read = reader.join().expect("the reader thread panicked")?;
    let (batches, rows_inserted, dead_lettered) =
        writer.join().expect("the database thread panicked")?;
    let lookups = lookups?;
    let elapsed = started.elapsed();

    let conn = Connection::open(&db)?;
    let rows_in_db: i64 = conn.query_row("SELECT COUNT(*) FROM activity", [], |r| r.get(0))?;
    drop(server);
    Ok(Report {
        lines_read,
        rows_inserted,
        dead_lettered,
        batches,
        rows_in_db: rows_in_db as u64,
        lookups,
        elapsed,
    })
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
    let default_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/millrace-demo");
    let mut config = Config::new(1_000_000, default_dir);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--lines" => {
                let value = args.next().ok_or("--lines needs a value")?;
                config.lines = value
                    .replace(['_', ','], "")
                    .parse::<u64>()
                    .map_err(|e| format!("--lines {value:?}: {e}"))?
                    .max(1);
            }
            "--data-dir" => config.data_dir = args.next().ok_or("--data-dir needs a value")?.into(),
            "--fresh" | "--quiet" => {}
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(config)
}

fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}\nusage: handwritten_baseline [--lines N] [--data-dir DIR]");
            return ExitCode::from(2);
        }
    };
    println!(
        "log: {}\ndatabase: {}",
        config.log_path().display(),
        config.db_path().display()
    );
    match run(&config) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
