//! Run with: cargo run --example checkout_stats
//!
//! A real fan-out: the same validated checkout events go into SQLite (batched inserts) **and**
//! to the live dashboard: per-minute, per-branch checkout counts printed as each minute closes
//! (event-time windows keyed by branch, late events routed and counted), with the per-stage
//! progress dashboard of both branches alongside. Before the split,
//! each member's events are enriched concurrently with `map_concurrent_by_key`, so one
//! member's events stay in order while different members proceed in parallel. The program
//! checks its own accounting: every event is saved, counted in a window or counted late, or
//! rejected by validation with a count.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::Metrics;
use millrace::adapters::sql::{BatchInsert, InsertRow, RowValues};
use millrace::prelude::*;
use millrace::wrappers::WindowEvent;
use sqlx::Sqlite;

const EVENTS: u64 = 2_000;
const BRANCHES: [&str; 4] = ["central", "north", "harbour", "hill"];

#[derive(Debug, Clone)]
struct Checkout {
    /// Position in the feed.
    seq: u64,
    /// Seconds since the start of the day (event time, from the branch's scanner).
    at: u64,
    member: u32,
    branch: &'static str,
    isbn: String,
    /// Filled by the enrichment step.
    title: Option<String>,
}

/// Simulated scanner feed: one checkout every ~0.3 s of event time across the branches, a few
/// with a mangled ISBN, and a few scanners that upload late (their events arrive 2 minutes
/// behind the others).
fn feed() -> impl Stream<Item = Checkout> + Send + 'static {
    stream::iter(0..EVENTS).map(|i| {
        let late_upload = i % 97 == 0 && i > 1_000;
        Checkout {
            seq: i,
            at: i * 3 / 10 - if late_upload { 120 } else { 0 },
            member: (i * 7919 % 150) as u32,
            branch: BRANCHES[(i % 4) as usize],
            isbn: if i % 53 == 0 {
                "not-an-isbn".to_owned()
            } else {
                format!("978{:010}", i * 31 % 10_000_000_000)
            },
            title: None,
        }
    })
}

/// A checkout is one row of the `checkouts` table.
impl InsertRow<Sqlite> for Checkout {
    fn push_values<'args>(&'args self, values: &mut RowValues<'_, 'args, Sqlite>) {
        values
            .bind(self.seq as i64)
            .bind(self.at as i64)
            .bind(i64::from(self.member))
            .bind(self.branch)
            .bind(self.title.as_deref().unwrap_or(""));
    }
}

/// Why a checkout was rejected.
#[derive(Debug, Clone)]
struct BadIsbn;

impl std::fmt::Display for BadIsbn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ISBN must be 13 digits")
    }
}

fn valid_isbn(c: &Checkout) -> Result<(), BadIsbn> {
    if c.isbn.len() == 13 && c.isbn.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(BadIsbn)
    }
}

type Validated = Result<Checkout, Invalid<Checkout, BadIsbn>>;

/// After `Supervision::Resume` every item is `Ok`; unwraps it.
fn ok_only(r: Validated) -> std::future::Ready<Option<Checkout>> {
    std::future::ready(r.ok())
}

/// The catalog lookup: a little I/O per event.
async fn enrich(mut c: Checkout) -> Checkout {
    tokio::time::sleep(Duration::from_millis(1)).await;
    c.title = Some(format!("Book {}", &c.isbn[9..]));
    c
}

#[tokio::main]
async fn main() {
    let validated = feed().validate(valid_isbn).on_error(Supervision::Resume);
    let rejected = validated.skipped();

    // One member's events in order, 16 lookups in flight across members.
    let enriched = validated
        .filter_map(ok_only) // only `Ok` is left after `Resume`
        .map_concurrent_by_key(16, |c| c.member, enrich);

    // The fan-out: every event to both branches; the slower one sets the pace.
    let [to_db, to_dashboard] = <[_; 2]>::try_from(enriched.broadcast(2)).expect("two branches");

    // Branch 1: SQLite, 100 rows per transaction.
    let pool = sqlx::SqlitePool::connect("sqlite::memory:")
        .await
        .expect("in-memory SQLite");
    sqlx::query(
        "CREATE TABLE checkouts (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, \
         member INTEGER NOT NULL, branch TEXT NOT NULL, title TEXT NOT NULL)",
    )
    .execute(&pool)
    .await
    .expect("create the table");
    let metrics = Metrics::new();
    let live = millrace::adapters::progress::Dashboard::new(&metrics)
        .interval(Duration::from_millis(250))
        .start();
    let sink = BatchInsert::new(
        pool.clone(),
        "checkouts",
        "INSERT INTO checkouts (seq, at, member, branch, title) ",
    )
    .on_conflict("ON CONFLICT (seq) DO NOTHING");
    let to_db = to_db.metered_in(&metrics, "to sqlite").batch(100);
    let db = tokio::spawn(async move { sink.run(to_db).await });

    // Branch 2: checkouts per minute per branch, event time, 30 s of allowed lateness.
    let windows = to_dashboard
        .metered_in(&metrics, "to dashboard")
        .window_event_time(
            WindowSpec::tumbling(Duration::from_secs(60)),
            |c| Duration::from_secs(c.at),
            |c| c.branch,
            || 0u32,
            |n, _| *n += 1,
        )
        .allowed_lateness(Duration::from_secs(30));
    let late = windows.late_counter();
    let dashboard = tokio::spawn(async move {
        let mut per_minute: BTreeMap<u64, BTreeMap<&'static str, u32>> = BTreeMap::new();
        let mut late_events = Vec::new();
        let mut windows = Box::pin(windows);
        while let Some(event) = windows.next().await {
            match event {
                WindowEvent::Closed(w) => {
                    let minute = w.start.as_secs() / 60;
                    if minute < 3 {
                        // The live view: each minute's count per branch as its window closes.
                        println!("minute {minute} closed: {} {} checkouts", w.key, w.value);
                    }
                    per_minute
                        .entry(w.start.as_secs() / 60)
                        .or_default()
                        .insert(w.key, w.value);
                }
                // Routed, not dropped: a real job would correct yesterday's totals with these.
                WindowEvent::Late(c) => late_events.push(c),
            }
        }
        (per_minute, late_events)
    });

    let report = db.await.expect("db branch").expect("the inserts commit");
    let (per_minute, late_events) = dashboard.await.expect("dashboard branch");
    drop(live);
    let saved: Vec<(i64, i64, String)> =
        sqlx::query_as("SELECT seq, member, title FROM checkouts ORDER BY rowid")
            .fetch_all(&pool)
            .await
            .expect("read the table back");
    assert_eq!(report.rows_inserted, saved.len() as u64);

    println!("minute  {}", BRANCHES.map(|b| format!("{b:>8}")).join(""));
    for (minute, counts) in per_minute.iter().take(5) {
        let row: String = BRANCHES
            .iter()
            .map(|b| format!("{:>8}", counts.get(b).copied().unwrap_or(0)))
            .collect();
        println!("{minute:>6}  {row}");
    }
    println!("   ...  ({} minutes)", per_minute.len());

    let windowed: u64 = per_minute
        .values()
        .flat_map(|m| m.values())
        .map(|&n| u64::from(n))
        .sum();
    let late_n = late.get();
    println!(
        "read {EVENTS}: rejected {}, saved {}, in windows {windowed}, late {late_n}",
        rejected.get(),
        saved.len()
    );
    assert_eq!(
        rejected.get() + saved.len() as u64,
        EVENTS,
        "every event saved or rejected"
    );
    assert_eq!(
        windowed + late_n,
        saved.len() as u64,
        "every saved event counted once"
    );
    assert_eq!(late_events.len() as u64, late_n);
    assert!(saved.iter().all(|(_, _, title)| title.starts_with("Book ")));
    // map_concurrent_by_key kept each member's events in their original order (the table's
    // insertion order is the order the events reached the database branch).
    let mut last_seq: BTreeMap<i64, i64> = BTreeMap::new();
    for (seq, member, _) in &saved {
        if let Some(prev) = last_seq.insert(*member, *seq) {
            assert!(prev < *seq, "member {member}: event {seq} after {prev}");
        }
    }
    println!("accounting balances");
}
