//! The flagship pipeline (`examples/library_dashboard`) on a small log, against the real
//! things: a generated file in a temp dir, the in-process catalog service on 127.0.0.1 with its
//! injected faults, and a SQLite database file.
//!
//! The example's own pipeline module is compiled in here, so the test runs exactly the code
//! that `cargo run --release --example library_dashboard` runs, with smaller batches.

// The example's `main.rs` uses a few items this test does not.
#[allow(dead_code)]
#[path = "../examples/library_dashboard/pipeline.rs"]
mod pipeline;

use std::path::Path;
use std::time::Duration;

use millrace::prelude::*;
use pipeline::{Config, Report, SkipReason};

const LINES: u64 = 5_000;

/// The bad lines of the generated 5,000-line log, worked out by hand from its rules (every
/// 1009th line is cut off, `n % 2503 == 7` has an unknown action, `n % 4999 == 13` is not
/// UTF-8, `n % 3001 == 11` names a book the catalog lacks).
const SKIPPED: [(u64, SkipReason); 9] = [
    (7, SkipReason::Invalid),
    (11, SkipReason::UnknownBook),
    (13, SkipReason::Unreadable),
    (1009, SkipReason::MalformedJson),
    (2018, SkipReason::MalformedJson),
    (2510, SkipReason::Invalid),
    (3012, SkipReason::UnknownBook),
    (3027, SkipReason::MalformedJson),
    (4036, SkipReason::MalformedJson),
];
/// Every other line is a row.
const ROWS: u64 = LINES - SKIPPED.len() as u64;
/// The sum of the line numbers of the rows: 1 + … + 5000 minus the skipped lines.
const LINE_SUM: i64 = 12_502_500 - (7 + 11 + 13 + 1009 + 2018 + 2510 + 3012 + 3027 + 4036);

/// The demo's pipeline with small batches (50 of 100 lines), so that an interruption after a
/// few commits leaves most of the log for the next run.
fn config(dir: &Path) -> Config {
    let mut config = Config::new(LINES, dir);
    config.batch_size = 100;
    config.in_flight = 4;
    config.lookups_per_second = 100;
    config
}

/// Runs the pipeline on a spawned task, bounded in time (a hang fails the test, never blocks it).
async fn run(config: &Config, token: CancellationToken) -> Report {
    let config = config.clone();
    let task = tokio::spawn(async move { pipeline::run(&config, token).await });
    match tokio::time::timeout(Duration::from_secs(60), task).await {
        Ok(Ok(Ok(report))) => report,
        Ok(Ok(Err(e))) => panic!("the run failed: {e}"),
        Ok(Err(join)) => std::panic::resume_unwind(join.into_panic()),
        Err(_) => panic!("the run hung for 60 s"),
    }
}

/// What the table holds: `(rows, distinct lines, distinct time stamps, sum of lines)`, and the
/// number of dead letters.
async fn table(config: &Config) -> ((i64, i64, i64, i64), i64) {
    let pool = pipeline::open_db(&config.db_path()).await.unwrap();
    let rows: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT line), COUNT(DISTINCT ts), COALESCE(SUM(line), 0) \
         FROM activity",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let (dead,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM millrace_dead_letters")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    (rows, dead)
}

fn skipped(report: &Report) -> Vec<(u64, SkipReason)> {
    report.skips.iter().map(|s| (s.line, s.reason)).collect()
}

fn stage(report: &Report, name: &str) -> u64 {
    report
        .stages
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no stage {name}"))
        .items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_commits_every_good_line_and_names_the_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());

    let report = run(&config, CancellationToken::new()).await;

    assert_eq!(report.fatal, None);
    assert!(!report.interrupted);
    assert!(
        report.generated_in.is_some(),
        "the first run writes the log"
    );
    assert_eq!(report.resumed_after, 0);
    assert_eq!(skipped(&report), SKIPPED);
    assert_eq!(
        report.skips[3].detail,
        "line 1009 is not valid JSON for this type (EOF while parsing a value at line 1 \
         column 42): `{\"ts\":1704097470,\"member\":\"M05906\",\"book\":`; the line was skipped, \
         fix or remove it"
    );
    assert_eq!(stage(&report, "catalog"), pipeline::POPULAR_BOOKS);
    assert_eq!(stage(&report, "read"), LINES);
    assert_eq!(stage(&report, "committed"), report.batches_committed);
    assert!(report.batches_committed >= 50); // batches of 100 lines, or fewer when time closes one
    assert_eq!(report.rows_inserted, ROWS);
    assert_eq!(report.dead_lettered, SKIPPED.len() as u64);
    assert_eq!(report.unbalanced, None);
    assert_eq!(
        report.balance.to_string(),
        format!("read {LINES} = committed {ROWS} + dead-lettered 9 + filtered 0")
    );
    assert_eq!(report.rows_ignored, 0);
    assert_eq!(report.rows_in_db, ROWS);
    // The primary's outage while the catalog loads: the page is retried (twice per open), the
    // source is re-opened from its checkpoint twice, then the mirror takes over from there.
    assert_eq!(report.catalog_restarts, 2);
    assert_eq!(report.catalog_fallbacks, 1);
    // The per-stage table shows them too, with the skipped lines, and is timed.
    let snap = |name: &str| report.stages.iter().find(|s| s.name == name).unwrap();
    let catalog = snap("catalog");
    assert_eq!((catalog.retries, catalog.fallbacks), (Some(2), Some(1)));
    for s in &report.stages {
        assert!(
            s.latency.is_some() && s.self_busy.is_some(),
            "{} is timed",
            s.name
        );
    }
    let printed = report.to_string();
    let header = printed
        .lines()
        .find(|l| l.trim_start().starts_with("stage "))
        .unwrap_or_else(|| panic!("no per-stage table in:\n{printed}"));
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "stage",
            "items",
            "errors",
            "retries",
            "skipped",
            "fallbacks",
            "p50",
            "p99",
            "time"
        ]
    );
    assert!(report.request_retries >= 3, "{}", report.request_retries);
    assert!(report.server.mirror_requests >= 1);

    assert_eq!(
        table(&config).await,
        ((ROWS as i64, ROWS as i64, ROWS as i64, LINE_SUM), 9)
    );
    assert!(
        printed.contains("accounting: read 5000 = committed 4991 + dead-lettered 9 + filtered 0"),
        "{printed}"
    );

    // A second run finds everything committed: it seeks to the end, reads nothing and inserts
    // nothing.
    let again = run(&config, CancellationToken::new()).await;
    assert!(again.generated_in.is_none());
    assert_eq!(again.resumed_after, LINES); // line 5000 is a good line
    assert_eq!(stage(&again, "read"), 0);
    assert_eq!((again.batches_committed, again.rows_inserted), (0, 0));
    assert_eq!(again.unbalanced, None);
    assert_eq!(
        table(&config).await,
        ((ROWS as i64, ROWS as i64, ROWS as i64, LINE_SUM), 9)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_resumes_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let mut interrupted = config(dir.path());
    interrupted.stop_after = Some(3);

    // Run 1 stops after 3 committed batches (as Ctrl-C does): what was in flight drains and
    // commits, nothing more is read.
    let token = CancellationToken::new();
    let first = run(&interrupted, token.clone()).await;
    assert!(token.is_cancelled());
    assert!(first.interrupted);
    assert_eq!(first.fatal, None);
    assert!(first.batches_committed >= 3);
    assert!(
        first.rows_in_db < ROWS / 2,
        "the interruption left most of the log: {} rows",
        first.rows_in_db
    );
    let ((rows, lines, stamps, _), _) = table(&interrupted).await;
    assert_eq!((rows, lines, stamps), (first.rows_in_db as i64, rows, rows));
    // Drained: everything read was committed, dead-lettered or counted.
    assert_eq!(first.unbalanced, None);

    // Run 2 resumes after the last committed line and finishes the log.
    let second = run(&config(dir.path()), CancellationToken::new()).await;
    assert!(!second.interrupted);
    assert_eq!(second.fatal, None);
    assert!(second.resumed_after > 0);
    assert_eq!(stage(&second, "read"), LINES - second.resumed_after);
    assert_eq!(second.rows_ignored, 0, "no row was sent twice");
    assert_eq!(first.rows_inserted + second.rows_inserted, ROWS);
    assert_eq!(second.rows_in_db, ROWS);

    // No duplicates: one row per good line, each event (time stamp) once, every line there.
    let ((rows, lines, stamps, line_sum), dead) = table(&interrupted).await;
    assert_eq!(
        (rows, lines, stamps, line_sum),
        (ROWS as i64, ROWS as i64, ROWS as i64, LINE_SUM)
    );
    assert_eq!(
        dead,
        SKIPPED.len() as i64,
        "each bad line dead-lettered once"
    );

    // Together the two runs named exactly the bad lines, each once: run 2 seeked past what
    // run 1 committed.
    let mut named: Vec<(u64, SkipReason)> = skipped(&first);
    named.extend(skipped(&second));
    assert_eq!(named, SKIPPED);
    assert_eq!(second.balance.read, LINES - second.resumed_after);
}

/// Runs the pipeline expecting an error before it starts; its message.
async fn run_error(config: &Config) -> String {
    let config = config.clone();
    let task = tokio::spawn(async move { pipeline::run(&config, CancellationToken::new()).await });
    match tokio::time::timeout(Duration::from_secs(60), task).await {
        Ok(Ok(Err(e))) => e.to_string(),
        Ok(Ok(Ok(report))) => panic!("the run succeeded: {report}"),
        Ok(Err(join)) => std::panic::resume_unwind(join.into_panic()),
        Err(_) => panic!("the run hung for 60 s"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_where_a_file_is_expected_is_named_with_the_cause_and_the_remedy() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    std::fs::create_dir_all(config.log_path()).unwrap();
    let message = run_error(&config).await;
    assert_eq!(
        message,
        format!(
            "cannot read the log {}: is a directory; move the directory away, or pass another \
             --data-dir",
            config.log_path().display()
        )
    );

    let dir = tempfile::tempdir().unwrap();
    let config = self::config(dir.path());
    std::fs::create_dir_all(config.db_path()).unwrap();
    let message = run_error(&config).await;
    assert!(
        message.starts_with(&format!(
            "cannot open the database {}: ",
            config.db_path().display()
        )),
        "{message}"
    );
    assert!(
        message.ends_with("; move the directory away, or pass another --data-dir"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_cut_mid_line_says_so_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    pipeline::ensure_log(&config.log_path(), LINES)
        .await
        .unwrap();
    // Cut the log in the middle of line 4,000.
    let bytes = std::fs::read(config.log_path()).unwrap();
    let end_of_3999 = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(3998)
        .map(|(i, _)| i)
        .unwrap();
    std::fs::write(config.log_path(), &bytes[..end_of_3999 + 20]).unwrap();

    let report = run(&config, CancellationToken::new()).await;
    assert_eq!(report.ends_mid_line, Some(4000));
    assert!(!report.interrupted);
    assert_eq!(report.unbalanced, None, "every line read is accounted for");
    assert_eq!(report.balance.read, 4000);
    let printed = report.to_string();
    assert!(
        printed.contains("the input ends mid-line at line 4000 (no newline after it)"),
        "{printed}"
    );
    // The cut line is a dead letter like any malformed line, named by its number.
    assert!(
        report
            .skips
            .iter()
            .any(|s| s.line == 4000 && s.reason == SkipReason::MalformedJson),
        "{:?}",
        report.skips.last()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_or_blank_input_says_it_has_no_data() {
    for content in ["", "\n  \n\n"] {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        std::fs::create_dir_all(dir.path()).unwrap();
        std::fs::write(config.log_path(), content).unwrap();
        let report = run(&config, CancellationToken::new()).await;
        assert!(report.no_data, "{content:?}");
        assert_eq!(report.rows_inserted, 0);
        assert_eq!(report.unbalanced, None);
        assert_eq!(
            report.balance.filtered,
            content.matches('\n').count() as u64
        );
        assert!(
            report
                .to_string()
                .contains("the input has no data: it is empty or holds only blank lines"),
            "{report}"
        );
    }
}
