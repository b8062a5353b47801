//! The main job's pipeline as real processes, broken the way users break it: SIGKILLed at
//! seeded random moments (during the catalog load, the reads, the lookups and the commits) and
//! restarted with other batch sizes and timings, and two copies started on the same data. The
//! final tables must equal an uninterrupted run's, row for row and dead letter for dead letter.
//!
//! A test binary without the libtest harness: run as the parent it spawns itself as the child
//! (`MILLRACE_FLAGSHIP_CHILD=1`), which runs exactly the pipeline of
//! `examples/library_dashboard` on a small log.

#[allow(dead_code)]
#[path = "../examples/library_dashboard/pipeline.rs"]
mod pipeline;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use millrace::adapters::sql::InsertError;
use millrace::prelude::*;
use pipeline::{Config, RunError};

const LINES: u64 = 20_000;
/// Lookups per second in the crash loop: paces a run to a few seconds, so kills land all over it.
const PACE: u64 = 15;
/// The child's exit status when the pipeline is held by another run.
const HELD: i32 = 3;

fn main() {
    if std::env::var_os("MILLRACE_FLAGSHIP_CHILD").is_some() {
        std::process::exit(child());
    }
    let mut passed = 0;
    let mut failed = 0;
    for (name, test) in [
        (
            "sigkill_at_random_moments_then_completion_equals_an_uninterrupted_run",
            crash_loop as fn(),
        ),
        (
            "two_copies_on_one_data_dir_one_is_refused_and_nothing_is_lost",
            concurrent_runs,
        ),
    ] {
        let started = Instant::now();
        match std::panic::catch_unwind(test) {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok ({:.1?})", started.elapsed());
            }
            Err(_) => {
                failed += 1;
                println!("test {name} ... FAILED");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

/// The child: one run of the pipeline with the batch size, batch time and pace from the
/// environment.
fn child() -> i32 {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let mut config = Config::new(LINES, PathBuf::from(var("MILLRACE_DATA_DIR")));
    config.batch_size = var("MILLRACE_BATCH_SIZE").parse().unwrap();
    config.batch_time = Duration::from_millis(var("MILLRACE_BATCH_MS").parse().unwrap());
    config.in_flight = 4;
    config.lookups_per_second = var("MILLRACE_LOOKUPS_PER_SECOND").parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match runtime.block_on(pipeline::run(&config, CancellationToken::new())) {
        Ok(report) if report.fatal.is_none() && report.unbalanced.is_none() => 0,
        Ok(report) => {
            eprintln!("{report}");
            1
        }
        Err(RunError::Insert(e @ InsertError::Held { .. })) => {
            eprintln!("refused: {e}");
            HELD
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// SplitMix64, for seeded choices.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn spawn(dir: &Path, batch_size: u64, batch_ms: u64, lookups_per_second: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env("MILLRACE_FLAGSHIP_CHILD", "1")
        .env("MILLRACE_DATA_DIR", dir)
        .env("MILLRACE_BATCH_SIZE", batch_size.to_string())
        .env("MILLRACE_BATCH_MS", batch_ms.to_string())
        .env(
            "MILLRACE_LOOKUPS_PER_SECOND",
            lookups_per_second.to_string(),
        )
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn wait(child: &mut Child, bound: Duration) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            panic!("a child ran longer than {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What a data dir's database holds: `(rows, dead letters, hash over both)`, rows in line order
/// with every column, dead letters in position order with their reasons.
fn contents(dir: &Path) -> (u64, u64, u64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pool = pipeline::open_db(&Config::new(LINES, dir).db_path())
            .await
            .unwrap();
        let rows: Vec<(i64, i64, String, i64, String, String, i64)> = sqlx::query_as(
            "SELECT line, ts, member, book, action, title, year FROM activity ORDER BY line",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let mut dead: Vec<(String, String)> =
            sqlx::query_as("SELECT position, reason FROM millrace_dead_letters")
                .fetch_all(&pool)
                .await
                .unwrap();
        dead.sort();
        pool.close().await;
        let mut hasher = DefaultHasher::new();
        rows.hash(&mut hasher);
        dead.hash(&mut hasher);
        (rows.len() as u64, dead.len() as u64, hasher.finish())
    })
}

fn reference(dir: &Path) -> (u64, u64, u64) {
    let status = wait(&mut spawn(dir, 500, 200, 100_000), Duration::from_secs(120));
    assert!(status.success(), "the uninterrupted run failed: {status}");
    contents(dir)
}

fn crash_loop() {
    let reference_dir = tempfile::tempdir().unwrap();
    let expected = reference(reference_dir.path());
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::copy(
        Config::new(LINES, reference_dir.path()).log_path(),
        Config::new(LINES, dir.path()).log_path(),
    )
    .unwrap();
    let mut rng = Seeded(20_261_206);
    // Kills that hit the job while rows were still missing, and all kills.
    let (mut kills_mid_job, mut kills) = (0, 0);
    let mut completed_early = 0;
    while kills_mid_job < 24 {
        let batch_size = 20 + rng.below(400);
        let batch_ms = 1 + rng.below(100);
        let mut child = spawn(dir.path(), batch_size, batch_ms, PACE);
        // Anywhere in a run's first 800 ms: the catalog load, reads, lookups, commits.
        std::thread::sleep(Duration::from_millis(rng.below(800)));
        if child.try_wait().unwrap().is_some() {
            // It finished before the kill; a failure is a defect.
            let status = child.wait().unwrap();
            assert!(status.success(), "a run between kills failed: {status}");
            completed_early += 1;
            assert!(
                completed_early < 10,
                "the runs finish before the kills land"
            );
            continue;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        if contents(dir.path()).0 < expected.0 {
            kills_mid_job += 1;
        } else {
            break;
        }
    }
    let status = wait(
        &mut spawn(dir.path(), 137, 30, 100_000),
        Duration::from_secs(120),
    );
    assert!(status.success(), "the completing run failed: {status}");
    let got = contents(dir.path());
    println!(
        "  crash loop: {kills} SIGKILLs, {kills_mid_job} of them with rows still missing; \
         {completed_early} runs finished between kills; rows {} / dead letters {} / hash {:016x} \
         (reference: {} / {} / {:016x}) in {:.1?}",
        got.0,
        got.1,
        got.2,
        expected.0,
        expected.1,
        expected.2,
        started.elapsed()
    );
    assert!(
        kills_mid_job >= 20,
        "only {kills_mid_job} kills landed before the job was done"
    );
    assert_eq!(got, expected);
}

fn concurrent_runs() {
    let reference_dir = tempfile::tempdir().unwrap();
    let expected = reference(reference_dir.path());
    let mut rng = Seeded(7);
    let mut refusals = 0;
    for stagger_ms in [0, 500 + rng.below(1_500), 500 + rng.below(1_500)] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            Config::new(LINES, reference_dir.path()).log_path(),
            Config::new(LINES, dir.path()).log_path(),
        )
        .unwrap();
        // Slow lookups (100 batches a second) keep the first run going for a few seconds.
        let mut first = spawn(dir.path(), 100, 50, 100);
        std::thread::sleep(Duration::from_millis(stagger_ms));
        let mut second = spawn(dir.path(), 70, 20, 100);
        let statuses = [
            wait(&mut first, Duration::from_secs(120)),
            wait(&mut second, Duration::from_secs(120)),
        ];
        let codes: Vec<i32> = statuses.iter().map(|s| s.code().unwrap_or(-1)).collect();
        assert!(
            codes.iter().all(|c| *c == 0 || *c == HELD) && codes.contains(&0),
            "stagger {stagger_ms} ms: exit codes {codes:?}"
        );
        refusals += codes.iter().filter(|c| **c == HELD).count();
        // Whatever happened, a last run completes the job; the data equals the reference.
        assert!(
            wait(
                &mut spawn(dir.path(), 300, 50, 100_000),
                Duration::from_secs(120)
            )
            .success()
        );
        assert_eq!(contents(dir.path()), expected, "stagger {stagger_ms} ms");
        println!("  concurrent: stagger {stagger_ms} ms → exit codes {codes:?}");
    }
    assert!(
        refusals >= 2,
        "overlapping copies were refused {refusals} times"
    );
}
