//! The hand-written baseline (`examples/handwritten_baseline.rs`) does the flagship's work:
//! on the same small log, its tables hold exactly what the flagship's hold (every row and
//! column of `activity`, every dead letter with its position and reason, the final position
//! and counters of the offsets row). So the speed ratio `scripts/mainjob_bench.sh` reports
//! compares equal work.

#[allow(dead_code)]
#[path = "../examples/library_dashboard/pipeline.rs"]
mod pipeline;

// Both include the log generator (`activity_log.rs`), as their own binaries do.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../examples/handwritten_baseline.rs"]
mod baseline;

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use millrace::prelude::*;

const LINES: u64 = 5_000;

type Activity = Vec<(i64, i64, String, i64, String, String, i64)>;
type DeadLetters = Vec<(String, String, String, String)>;
type Offsets = Vec<(String, String, String, i64, i64, i64)>;

/// Everything the job writes: `activity` by line, the dead letters by position, the offsets
/// rows (pipeline, source, position, committed, dead-lettered, filtered).
fn tables(db: &Path) -> (Activity, DeadLetters, Offsets) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let activity = select(
        &conn,
        "SELECT line, ts, member, book, action, title, year FROM activity ORDER BY line",
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        },
    );
    let mut dead = select(
        &conn,
        "SELECT pipeline, source, position, reason FROM millrace_dead_letters",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    );
    dead.sort();
    let offsets = select(
        &conn,
        "SELECT pipeline, source, position, committed, dead_lettered, filtered \
         FROM millrace_offsets ORDER BY pipeline, source",
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        },
    );
    (activity, dead, offsets)
}

/// The rows of `sql`, each read by `row`.
fn select<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Vec<T> {
    conn.prepare(sql)
        .unwrap()
        .query_map([], row)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Runs the baseline on its own thread, bounded in time.
fn run_baseline(config: baseline::Config) -> baseline::Report {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(baseline::run(&config).map_err(|e| e.to_string()));
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(Ok(report)) => report,
        Ok(Err(e)) => panic!("the baseline failed: {e}"),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the baseline hung for 120 s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the baseline panicked"),
    }
}

/// Runs the flagship's pipeline on a spawned task, bounded in time.
fn run_flagship(config: pipeline::Config) -> pipeline::Report {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let task =
            tokio::spawn(async move { pipeline::run(&config, CancellationToken::new()).await });
        match tokio::time::timeout(Duration::from_secs(120), task).await {
            Ok(Ok(Ok(report))) => report,
            Ok(Ok(Err(e))) => panic!("the flagship failed: {e}"),
            Ok(Err(join)) => std::panic::resume_unwind(join.into_panic()),
            Err(_) => panic!("the flagship hung for 120 s"),
        }
    })
}

#[test]
fn the_baseline_writes_exactly_the_flagships_tables() {
    let dir = tempfile::tempdir().unwrap();
    // Batches of 100 lines: 50 transactions, so batch boundaries, positions and the dead
    // letters of many batches are compared.
    let mut flagship = pipeline::Config::new(LINES, dir.path());
    flagship.fresh = true;
    flagship.batch_size = 100;
    flagship.in_flight = 4;
    flagship.lookups_per_second = 1_000;
    let mut hand = baseline::Config::new(LINES, dir.path());
    hand.batch_size = 100;
    hand.in_flight = 4;

    let flagship_report = run_flagship(flagship.clone());
    let hand_report = run_baseline(hand.clone());
    assert_eq!(flagship.log_path(), hand.log_path(), "the same input");
    assert_ne!(flagship.db_path(), hand.db_path());

    let (activity, dead, offsets) = tables(&flagship.db_path());
    let (hand_activity, hand_dead, hand_offsets) = tables(&hand.db_path());
    // The flagship's own counts, so that equal tables are not equally empty.
    assert_eq!(activity.len() as u64, flagship_report.rows_in_db);
    assert_eq!(activity.len(), 4_991);
    assert_eq!(dead.len(), 9);
    assert_eq!(hand_report.lines_read, LINES);
    assert_eq!(hand_report.batches, LINES / 100);
    assert_eq!(hand_report.lookups, flagship_report.lookups);

    assert_eq!(hand_activity.len(), activity.len());
    for (hand_row, row) in hand_activity.iter().zip(&activity) {
        assert_eq!(hand_row, row, "the row of line {}", row.0);
    }
    assert_eq!(hand_dead, dead);
    assert_eq!(hand_offsets, offsets);
    assert_eq!(
        offsets[0].2,
        format!(
            "{}:{LINES}",
            std::fs::metadata(hand.log_path()).unwrap().len()
        )
    );
}
