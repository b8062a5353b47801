//! Run with: cargo run --release --example user_pipeline
//!
//! fetch → enrich → validate → save, each a stage, over a million users in constant memory:
//! users arrive page by page, are enriched, validated (invalid ones skipped and counted),
//! batched and saved; at no point does the program hold more than a few pages of users.
//! It prints the peak resident memory, which stays flat whatever the number of users. The
//! enrich stage is an async generator made a named stream by `#[stream_stage]`, and the
//! pipeline is written top to bottom with `pipeline!`, which meters every stage by name.

use futures::{Stream, StreamExt};
use millrace::policy::Supervision;
use millrace::prelude::*;

const USERS: u64 = 1_000_000;
const PAGE: u64 = 1_000;

#[derive(Debug, Clone)]
struct User {
    id: u64,
    name: String,
    email: String,
    profile_complete: bool,
}

/// The user API: pages of `PAGE` users behind a cursor.
async fn fetch_users(offset: u64) -> Result<Page<User, u64>, UserError> {
    tokio::task::yield_now().await; // stands in for the network
    let end = (offset + PAGE).min(USERS);
    let users = (offset..end)
        .map(|id| User {
            id,
            name: format!("user{id}"),
            // Every 10,000th user has a broken address.
            email: if id % 10_000 == 7 {
                format!("user{id}.example.com")
            } else {
                format!("user{id}@example.com")
            },
            profile_complete: false,
        })
        .collect();
    Ok(if end < USERS {
        Page::next(users, end)
    } else {
        Page::last(users)
    })
}

/// The "database": a sink that commits batches and keeps only totals.
#[derive(Default)]
struct Db {
    rows: u64,
    batches: u64,
    complete_profiles: u64,
}

impl Db {
    async fn save(&mut self, batch: Vec<User>) {
        tokio::task::yield_now().await; // stands in for a round trip
        self.batches += 1;
        self.rows += batch.len() as u64;
        self.complete_profiles += batch.iter().filter(|u| u.profile_complete).count() as u64;
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The enrich stage, written as an async generator: loop over the upstream, yield.
///
/// `#[stream_stage]` turns it into a named `Enrich<S>` stream struct; a body that is one
/// `#[for_await]` loop with no other `.await` compiles to a hand-written-style `poll_next`.
#[stream_stage(item = Result<User, UserError>)]
async fn enrich(users: impl Stream<Item = Result<User, UserError>> + Send, min_name_len: usize) {
    #[for_await]
    for user in users {
        yield_!(user.map(|mut u| {
            u.profile_complete = u.name.len() > min_name_len;
            u
        }));
    }
}

/// The validation rule: an address must contain `@`.
fn check_email(u: &User) -> Result<(), &'static str> {
    if u.email.contains('@') {
        Ok(())
    } else {
        Err("email without @")
    }
}

#[tokio::main]
async fn main() {
    let started = std::time::Instant::now();
    let metrics = Metrics::new();

    // fetch → enrich → validate → skip (and count) invalid users → batch; every stage is
    // metered under its name into `metrics`.
    let mut batches = std::pin::pin!(pipeline! {
        metrics = &metrics;
        paginate(0u64, fetch_users).prefetch_next_page()
        => enrich(8)
        => .validate_ok(check_email)
        => .on_error(Supervision::Resume)
        => .map(|r| r.expect("Resume lets no error through"))
        => .batch(5_000)
    });

    let mut db = Db::default();
    while let Some(batch) = batches.next().await {
        db.save(batch).await;
    }
    let stages = metrics.snapshot();
    let skipped = stages
        .iter()
        .find(|s| s.name == "on_error")
        .and_then(|s| s.skipped)
        .expect("the on_error stage adopts its skip counter");

    println!("saved {} users in {} batches", db.rows, db.batches);
    println!("skipped {skipped} invalid users");
    println!("complete profiles: {}", db.complete_profiles);
    for stage in &stages {
        println!("stage {:<18} items {:>8}", stage.name, stage.items);
    }
    println!(
        "elapsed {:?}, peak RSS {} KiB (collecting {USERS} users first would take ~{} MiB)",
        started.elapsed(),
        peak_rss_kib(),
        USERS * (std::mem::size_of::<User>() as u64 + 40) / (1 << 20)
    );
    assert_eq!(db.rows + skipped, USERS, "every user saved or reported");
}

/// The pipeline's error type: an invalid user carries the user itself, so nothing is lost.
#[derive(Debug)]
enum UserError {
    Invalid(millrace::policy::Invalid<User, &'static str>),
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserError::Invalid(i) => write!(f, "user {} rejected: {}", i.item.id, i.reason),
        }
    }
}

impl From<millrace::policy::Invalid<User, &'static str>> for UserError {
    fn from(invalid: millrace::policy::Invalid<User, &'static str>) -> Self {
        UserError::Invalid(invalid)
    }
}
