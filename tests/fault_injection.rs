//! Fault injection over thousands of seeds: retry, recover and supervise pipelines around the
//! kit's seeded [`Flaky`] sources, alone and with `prefetch` / `map_concurrent` in between.
//!
//! For every seed the **exact** output is asserted: every item exactly once, in order (or, for
//! unordered stages, exactly once), and every injected failure accounted for (retried,
//! recovered, counted as skipped, or yielded). Each seed fails at ~5% of 200 positions,
//! 1–3 times per position; odd seeds also return a spurious `Pending` before every source
//! item. Under miri the seed and item counts shrink (see `reliability::scaled`).

mod support;
use support::reliability;

use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::prelude::*;
use millrace::testing::{Flaky, FlakyError, StreamTestExt, alive_tasks};
use reliability::{scaled, settle};

fn seeds() -> u64 {
    scaled(2_000, 3)
}

/// Seeds for the pipelines with spawned stages (a task per chunk or per pending future).
fn spawned_seeds() -> u64 {
    scaled(400, 2)
}

fn items() -> u64 {
    scaled(200, 20)
}

/// The seeded plan: ~5% of positions fail, each 1 + seed % 3 times.
fn plan(seed: u64) -> Flaky<u64> {
    Flaky::new(0..items())
        .fail_with_probability(0.05, seed)
        .fail_times(1 + (seed % 3) as u32)
}

/// Opens the flaky source at `from`, interleaving spurious `Pending`s on odd seeds.
fn open(
    flaky: &Flaky<u64>,
    from: u64,
    seed: u64,
) -> std::pin::Pin<Box<dyn Stream<Item = Result<u64, FlakyError>> + Send>> {
    if seed % 2 == 1 {
        Box::pin(flaky.open(from).interleave_pending())
    } else {
        Box::pin(flaky.open(from))
    }
}

fn all_ok() -> Vec<Result<u64, FlakyError>> {
    (0..items()).map(Ok).collect()
}

/// Enough retries for the worst streak: a position failing 3 times, twice in a row.
fn policy() -> RetryPolicy<millrace::policy::ConstantBuilder> {
    RetryPolicy::fixed(Duration::from_millis(1), 8)
}

/// Every failure of the plan, as the number of injected errors.
fn planned_failures(flaky: &Flaky<u64>, seed: u64) -> u64 {
    flaky.failure_positions().len() as u64 * (1 + seed % 3)
}

#[tokio::test(start_paused = true)]
async fn retry_from_checkpoint_every_item_exactly_once() {
    let mut total_failures = 0;
    for seed in 0..seeds() {
        let flaky = plan(seed);
        let f2 = flaky.clone();
        let s =
            restartable(move |cp: &Checkpoint<u64>| open(&f2, cp.delivered, seed)).retry(policy());
        let stats = s.retries();
        let out: Vec<_> = s.collect().await;
        assert_eq!(out, all_ok(), "seed {seed}");
        assert_eq!(
            flaky.failures(),
            planned_failures(&flaky, seed),
            "seed {seed}"
        );
        assert_eq!(
            stats.get(),
            flaky.failures(),
            "seed {seed}: every failure retried once"
        );
        assert_eq!(flaky.opens(), 1 + flaky.failures(), "seed {seed}");
        total_failures += flaky.failures();
    }
    println!(
        "retry/checkpoint: {} seeds, {total_failures} injected failures",
        seeds()
    );
}

#[tokio::test(start_paused = true)]
async fn retry_skip_delivered_every_item_exactly_once() {
    for seed in 0..seeds() {
        let flaky = plan(seed);
        let f2 = flaky.clone();
        let out: Vec<_> = restartable(move |_: &Checkpoint<u64>| open(&f2, 0, seed))
            .skip_delivered()
            .retry(policy())
            .collect()
            .await;
        assert_eq!(out, all_ok(), "seed {seed}");
        assert_eq!(
            flaky.opens(),
            1 + planned_failures(&flaky, seed),
            "seed {seed}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn retry_gives_up_with_the_last_error_and_loses_nothing_before_it() {
    // Too few retries for a position failing 3 times: the stream must end with exactly the
    // items before the first such position, then that position's 3rd error.
    for seed in (0..seeds()).filter(|s| s % 3 == 2) {
        let flaky = plan(seed);
        let f2 = flaky.clone();
        let out: Vec<_> = restartable(move |cp: &Checkpoint<u64>| open(&f2, cp.delivered, seed))
            .retry(RetryPolicy::fixed(Duration::from_millis(1), 2))
            .collect()
            .await;
        let expected: Vec<_> = match flaky.failure_positions().first() {
            None => all_ok(),
            Some(&k) => (0..k)
                .map(Ok)
                .chain([Err(FlakyError {
                    position: k,
                    attempt: 3,
                })])
                .collect(),
        };
        assert_eq!(out, expected, "seed {seed}");
    }
}

#[tokio::test(start_paused = true)]
async fn recover_with_chained_fallbacks_every_item_exactly_once() {
    for seed in 0..seeds() {
        let flaky = plan(seed);
        let f2 = flaky.clone();
        let s = open(&flaky, 0, seed)
            .recover_with(move |_e, cp: &Checkpoint<u64>| Some(open(&f2, cp.delivered, seed)));
        let out: Vec<_> = s.collect().await;
        assert_eq!(out, all_ok(), "seed {seed}");
        assert_eq!(
            flaky.opens(),
            1 + planned_failures(&flaky, seed),
            "seed {seed}"
        );
    }
}

/// A source whose errors do not end it: the plan's positions are `Err`, the rest `Ok`.
fn erring(flaky: &Flaky<u64>) -> (Vec<Result<u64, FlakyError>>, Vec<u64>) {
    let bad = flaky.failure_positions();
    let v = (0..items())
        .map(|k| {
            if bad.contains(&k) {
                Err(FlakyError {
                    position: k,
                    attempt: 1,
                })
            } else {
                Ok(k)
            }
        })
        .collect();
    (v, bad)
}

#[tokio::test(start_paused = true)]
async fn supervise_resume_replace_stop_account_for_every_error() {
    for seed in 0..seeds() {
        let flaky = plan(seed);
        let (source, bad) = erring(&flaky);

        let resumed = stream::iter(source.clone()).on_error(Supervision::Resume);
        let skipped = resumed.skipped();
        let out: Vec<_> = resumed.collect().await;
        let expected: Vec<_> = (0..items()).filter(|k| !bad.contains(k)).map(Ok).collect();
        assert_eq!(out, expected, "seed {seed}: Resume");
        assert_eq!(
            skipped.get(),
            bad.len() as u64,
            "seed {seed}: every skip counted"
        );

        let out: Vec<_> = stream::iter(source.clone())
            .on_error(Supervision::replace(|e: FlakyError| e.position))
            .collect()
            .await;
        assert_eq!(out, all_ok(), "seed {seed}: Replace");

        let out: Vec<_> = stream::iter(source.clone())
            .on_error(Supervision::Stop)
            .collect()
            .await;
        let cut = bad.first().map_or(source.len(), |&k| k as usize + 1);
        assert_eq!(out, source[..cut], "seed {seed}: Stop");
    }
}

#[tokio::test(start_paused = true)]
async fn retry_then_prefetch_and_prefetch_inside_the_factory() {
    let tasks = alive_tasks();
    for seed in 0..spawned_seeds() {
        // Prefetch after retry: one producer task drives the retrying source.
        let flaky = plan(seed);
        let f2 = flaky.clone();
        let out: Vec<_> = restartable(move |cp: &Checkpoint<u64>| open(&f2, cp.delivered, seed))
            .retry(policy())
            .prefetch(1 + (seed % 16) as usize)
            .collect()
            .await;
        assert_eq!(out, all_ok(), "seed {seed}: retry → prefetch");

        // Prefetch inside the factory: every re-open spawns a producer and drops the old one
        // (which may have run ahead past the failure: nothing it held may leak through).
        let flaky = plan(seed);
        let f2 = flaky.clone();
        let out: Vec<_> = restartable(move |cp: &Checkpoint<u64>| {
            open(&f2, cp.delivered, seed).prefetch(1 + (seed % 7) as usize)
        })
        .retry(policy())
        .collect()
        .await;
        assert_eq!(out, all_ok(), "seed {seed}: prefetch inside retry");
    }
    settle().await;
    assert_eq!(alive_tasks(), tasks, "every producer task ended");
}

#[tokio::test(start_paused = true)]
async fn retry_then_map_concurrent_ordered_and_unordered() {
    let tasks = alive_tasks();
    for seed in 0..spawned_seeds() {
        let n = 1 + (seed % 8) as usize;
        let work = move |r: Result<u64, FlakyError>| async move {
            let x = r?;
            // Uneven work so completions overtake each other; a third is ready at once (the
            // inline path, no task).
            if x % 3 != 0 {
                tokio::time::sleep(Duration::from_micros((x * 7919 + seed) % 5 * 100)).await;
            }
            Ok::<u64, FlakyError>(x * 2)
        };
        let doubled: Vec<_> = (0..items()).map(|x| Ok(x * 2)).collect();

        let flaky = plan(seed);
        let f2 = flaky.clone();
        let out: Vec<_> = restartable(move |cp: &Checkpoint<u64>| open(&f2, cp.delivered, seed))
            .retry(policy())
            .map_concurrent(n, work)
            .collect()
            .await;
        assert_eq!(out, doubled, "seed {seed}: map_concurrent({n}) keeps order");

        let flaky = plan(seed);
        let f2 = flaky.clone();
        let mut out: Vec<u64> =
            restartable(move |cp: &Checkpoint<u64>| open(&f2, cp.delivered, seed))
                .retry(policy())
                .map_concurrent_unordered(n, work)
                .map(|r| r.expect("no error survives the retry"))
                .collect()
                .await;
        out.sort_unstable();
        let expected: Vec<u64> = (0..items()).map(|x| x * 2).collect();
        assert_eq!(out, expected, "seed {seed}: unordered, each exactly once");
    }
    settle().await;
    assert_eq!(alive_tasks(), tasks, "every work task ended");
}

#[tokio::test(start_paused = true)]
async fn recover_validate_supervise_prefetch_pipeline() {
    #[derive(Debug, PartialEq)]
    enum E {
        Flaky(FlakyError),
        Invalid(u64),
    }
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }
    impl From<Invalid<u64, ()>> for E {
        fn from(e: Invalid<u64, ()>) -> Self {
            E::Invalid(e.item)
        }
    }
    for seed in 0..seeds() {
        let flaky = plan(seed);
        let f2 = flaky.clone();
        let s = open(&flaky, 0, seed)
            .recover_with(move |_e, cp: &Checkpoint<u64>| Some(open(&f2, cp.delivered, seed)))
            .map(|r| r.map_err(E::Flaky))
            .prefetch(8)
            .validate_ok(move |x: &u64| {
                if (x + seed) % 13 == 0 {
                    Err(())
                } else {
                    Ok(())
                }
            })
            .on_error(Supervision::Resume);
        let skipped = s.skipped();
        let out: Vec<_> = s.collect().await;
        let expected: Vec<_> = (0..items())
            .filter(|x| (x + seed) % 13 != 0)
            .map(Ok)
            .collect();
        assert_eq!(
            skipped.get(),
            items() - expected.len() as u64,
            "seed {seed}"
        );
        assert_eq!(out, expected, "seed {seed}");
    }
}
