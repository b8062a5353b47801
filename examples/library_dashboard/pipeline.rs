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
//!
//! This file holds the pipeline itself ([`run`]); its parts live beside it: `activity_log.rs`
//! generates the log (shared with the hand-written baseline), `input.rs` decodes and validates
//! its lines, `catalog.rs` loads and looks up books, `sqlite.rs` is the database side,
//! `report.rs` and `error.rs` say how a run went.

use std::path::PathBuf;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use millrace::adapters::http::HttpError;
use millrace::adapters::sql::InsertError;
use millrace::adapters::{fs, json};
use millrace::prelude::*;

// The parts of the job, beside this file (`#[path]`: the tests include this file by path).
#[path = "activity_log.rs"]
mod activity_log;
#[path = "catalog.rs"]
mod catalog;
#[path = "error.rs"]
mod error;
#[path = "input.rs"]
mod input;
#[path = "report.rs"]
mod report;
#[path = "sqlite.rs"]
mod sqlite;

// What `main.rs` and the tests (`tests/flagship*.rs`, `tests/baseline_equal.rs`) name.
#[allow(unused_imports)]
pub(crate) use self::{
    activity_log::POPULAR_BOOKS,
    error::RunError,
    input::{Skip, SkipReason, ensure_log},
    report::{Report, thousands},
    sqlite::open_db,
};

use self::catalog::Catalog;
use self::input::{Event, Fatal, Input, Skips, accept, dead_letter_reason, until_read_error};

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

/// Runs the pipeline once: generates the log if needed, claims the pipeline and resumes after
/// its committed position, stops gracefully when `token` fires (in-flight batches are enriched
/// and committed), and reports.
pub(crate) async fn run(config: &Config, token: CancellationToken) -> Result<Report, RunError> {
    let log = config.log_path();
    let input = Input::prepare(&log, config.lines).await?;
    let source_name = log.file_name().map_or_else(
        || log.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let (pool, claim) = sqlite::claim(config, &source_name).await?;
    let resume = claim.resume_after().copied();
    let resumed_after = resume.map_or(0, |at| at.line);

    let started = Instant::now();
    let metrics = Metrics::new();
    let catalog = Catalog::start().await?;
    let progress = start_progress(config, &metrics, resumed_after);
    let skips = Skips::default();
    let lookup = Arc::new(catalog.lookup(&metrics, skips.clone()).await?);

    let fatal = Fatal::default();
    let lines = fs::lines(&log)
        .resume_after(resume)
        .tracked()
        .stop_on(token.clone())
        .via(|s| s.metered_in(&metrics, "read").with_timing());
    let batches = json::decode_tracked::<Event, _>(lines)
        // An I/O error ends the input (it is not about one line): the run stops, and the
        // accounting shows the entries not done.
        .via(|s| s.take_while(until_read_error(fatal.clone())))
        .map(accept)
        .dead_letter_with(dead_letter_reason(skips.clone()))
        .batch_within(config.batch_size, config.batch_time)
        // Reading and decoding run on their own task, overlapping enrichment and inserts.
        .prefetch(4);

    let limit = Rate::per_second(config.lookups_per_second).burst(config.in_flight as u32);
    let rows = batches.via(|s| {
        s.rate_limit(limit)
            .map_concurrent(config.in_flight, move |batch| {
                let lookup = Arc::clone(&lookup);
                async move { lookup.enrich(batch).await }
            })
            // Enriched batches wait for the database here: 4 are plenty (the commit takes
            // the next one while the previous commits), and each holds 1,000 rows.
            .with_output_buffer(4)
            .metered_in(&metrics, "enriched")
            .with_timing()
    });

    let mut commits = pin!(
        claim
            .commit_each(rows)
            .metered_in(&metrics, "committed")
            .count_errors()
            .with_timing()
    );
    let insert_error = drive(
        commits.as_mut(),
        |c| c.get_ref().get_ref().report().batches_committed,
        config.stop_after,
        &token,
        &fatal,
    )
    .await;
    // Pin, then the metered stage, then its timing layer, then the sink.
    let sink = commits.as_ref().get_ref().get_ref().get_ref();
    let insert = sink.report();
    let accounting = sink.accounting().clone();
    let elapsed = started.elapsed();
    if let Some(progress) = progress {
        drop(progress);
        eprintln!();
    }
    if let Some(e) = insert_error {
        return Err(RunError::Insert(e));
    }
    let rows_in_db = sqlite::count_rows(pool, config).await?;

    let mut skips = skips.take();
    skips.sort_by_key(|s| s.line);
    let fatal = fatal.take();
    let counters = &catalog.counters;
    Ok(Report {
        lines: config.lines,
        generated_in: input.generated_in,
        resumed_after,
        stages: metrics.snapshot(),
        skips,
        batches_committed: insert.batches_committed,
        dead_lettered: insert.dead_lettered,
        balance: accounting.counts(),
        rows_inserted: insert.rows_inserted,
        rows_ignored: insert.rows_ignored,
        rows_in_db,
        request_retries: counters.request_retries.load(Ordering::Relaxed),
        catalog_restarts: counters.catalog_restarts.load(Ordering::Relaxed),
        catalog_fallbacks: counters.catalog_fallbacks.load(Ordering::Relaxed),
        lookups: counters.lookups.load(Ordering::Relaxed),
        lookup_limits: (config.in_flight, config.lookups_per_second),
        lookup_fallbacks: counters.lookup_fallbacks.load(Ordering::Relaxed),
        server: catalog.server.stats(),
        interrupted: token.is_cancelled() && fatal.is_none(),
        unbalanced: accounting.check().err().map(|e| e.to_string()),
        // Every line is one entry read, so the last line's number is this.
        ends_mid_line: input
            .ends_mid_line
            .then(|| resumed_after + accounting.read()),
        no_data: !input.has_data,
        fatal,
        elapsed,
    })
}

/// Drives `commits` to the end: cancels `token` (as Ctrl-C does) once `stop_after` batches are
/// committed (`batches_committed` reads the count), keeps a batch that could not be enriched in
/// `fatal`, and returns the database error that stopped the sink, if any.
async fn drive<S, T>(
    mut commits: Pin<&mut S>,
    batches_committed: impl Fn(&S) -> u64,
    stop_after: Option<u64>,
    token: &CancellationToken,
    fatal: &Fatal,
) -> Option<InsertError<HttpError>>
where
    S: Stream<Item = Result<T, InsertError<HttpError>>>,
{
    let mut insert_error = None;
    while let Some(committed) = commits.next().await {
        match committed {
            Ok(_) => {
                let done = batches_committed(commits.as_ref().get_ref());
                if stop_after.is_some_and(|n| done >= n) && !token.is_cancelled() {
                    token.cancel(); // as Ctrl-C does: drain what is in flight, then stop
                }
            }
            // A batch that cannot be enriched, even by the mirror, ends the run: the batches
            // after it are not committed (the position cannot pass over it).
            Err(InsertError::Upstream { source, .. }) => {
                fatal.set(format!("catalog lookup failed: {source}"));
            }
            Err(e) => insert_error = Some(e),
        }
    }
    insert_error
}

/// The live per-stage dashboard (bars on a terminal, plain lines otherwise) unless `--quiet`,
/// on its own thread so a busy runtime never freezes it; dropping the handle stops it.
fn start_progress(
    config: &Config,
    metrics: &Metrics,
    resumed_after: u64,
) -> Option<millrace::adapters::progress::DashboardHandle> {
    if config.progress && resumed_after > 0 {
        eprintln!("resuming after line {}", thousands(resumed_after));
    }
    config.progress.then(|| {
        millrace::adapters::progress::Dashboard::new(metrics)
            .interval(Duration::from_millis(500))
            .start()
    })
}
