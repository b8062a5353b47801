//! Time-based stages together, under paused time with exact instants: retry schedules driven
//! by `idle_timeout`, jitter bounds over many runs, rate limits across retries and idle
//! periods, `batch_within` fed by a rate limit or a timeout, `deadline` over a backoff.
//!
//! The per-wrapper files check each stage alone; these check how their clocks interact.

mod support;
use support::reliability;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::policy::ExponentialBuilder;
use millrace::prelude::*;
use millrace::testing::{Flaky, Step, record, scripted};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

fn ms(v: &[u64]) -> Vec<Duration> {
    v.iter().map(|&x| Duration::from_millis(x)).collect()
}

/// Instants (since `start`) at which a factory opened its source.
#[derive(Clone)]
struct Opens {
    start: Instant,
    at: Arc<Mutex<Vec<Duration>>>,
}

impl Opens {
    fn new() -> Self {
        Opens {
            start: Instant::now(),
            at: Arc::default(),
        }
    }
    fn log(&self) {
        self.at.lock().unwrap().push(self.start.elapsed());
    }
    fn get(&self) -> Vec<Duration> {
        self.at.lock().unwrap().clone()
    }
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_inside_the_factory_drives_an_exact_exponential_schedule() {
    // Each attempt yields the next item, then hangs; `idle_timeout(50ms)` turns the hang into
    // an error 50 ms later and the retry re-opens after 100, 200, 400 ms (doubling) — except
    // that every delivered item resets the schedule, so every wait is 100 ms.
    let opens = Opens::new();
    let o2 = opens.clone();
    let s = restartable(move |cp: &Checkpoint<u32>| {
        o2.log();
        let from = cp.delivered as u32;
        scripted([Step::Item(from), Step::Hang]).idle_timeout(50 * MS)
    })
    .retry(RetryPolicy::new(
        ExponentialBuilder::new()
            .with_min_delay(100 * MS)
            .with_factor(2.0)
            .with_max_times(3),
    ))
    .take(4);
    let rec = record(s).await;
    assert_eq!(
        rec.items
            .iter()
            .map(|r| *r.as_ref().unwrap())
            .collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    // Item k at k × 150 ms: 50 ms timeout + 100 ms (reset) backoff per round.
    assert_eq!(rec.times, ms(&[0, 150, 300, 450]));
    assert_eq!(opens.get(), ms(&[0, 150, 300, 450]));
}

#[tokio::test(start_paused = true)]
async fn without_reset_the_schedule_doubles_across_timeouts_then_gives_up() {
    let opens = Opens::new();
    let o2 = opens.clone();
    let s = restartable(move |cp: &Checkpoint<u32>| {
        o2.log();
        scripted([Step::Item(cp.delivered as u32), Step::Hang]).idle_timeout(50 * MS)
    })
    .retry(
        RetryPolicy::new(
            ExponentialBuilder::new()
                .with_min_delay(100 * MS)
                .with_factor(2.0)
                .with_max_times(3),
        )
        .reset_after_success(false),
    );
    let rec = record(s).await;
    // Opens at 0; timeout 50 → wait 100 → 150; timeout 200 → wait 200 → 400; timeout 450 →
    // wait 400 → 850; timeout 900 → attempts exhausted: the timeout error ends the stream.
    assert_eq!(opens.get(), ms(&[0, 150, 400, 850]));
    assert_eq!(rec.times, ms(&[0, 150, 400, 850, 900]));
    assert_eq!(
        rec.items.last(),
        Some(&Err(TimeoutError::Item {
            after: 50 * MS,
            index: 1
        }))
    );
}

#[tokio::test(start_paused = true)]
async fn jittered_waits_stay_within_d_and_2d_and_do_vary() {
    let runs = reliability::scaled(200, 2);
    let mut above_nominal = 0;
    for run in 0..runs {
        let opens = Opens::new();
        let o2 = opens.clone();
        let flaky = Flaky::new(0..3u32).fail_at([1]).fail_times(4);
        let out: Vec<_> = restartable(move |cp: &Checkpoint<u32>| {
            o2.log();
            flaky.open(cp.delivered)
        })
        .retry(RetryPolicy::new(
            ExponentialBuilder::new()
                .with_min_delay(100 * MS)
                .with_factor(2.0)
                .with_max_delay(Duration::from_secs(10))
                .with_max_times(4)
                .with_jitter(),
        ))
        .collect()
        .await;
        assert_eq!(out.len(), 3, "run {run}: {out:?}");
        let at = opens.get();
        let waits: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(waits.len(), 4, "run {run}");
        for (i, wait) in waits.iter().enumerate() {
            let d = 100 * MS * 2u32.pow(i as u32);
            assert!(
                d <= *wait && *wait <= 2 * d,
                "run {run}: wait #{i} = {wait:?} outside [{d:?}, {:?}]",
                2 * d
            );
            if *wait > d {
                above_nominal += 1;
            }
        }
    }
    if !cfg!(miri) {
        assert!(
            above_nominal > runs * 2,
            "jitter never moved a wait: {above_nominal} of {} waits above nominal",
            runs * 4
        );
    }
}

#[tokio::test(start_paused = true)]
async fn rate_limit_stays_steady_across_retries_and_short_backoffs() {
    // Failures every few items with a 30 ms backoff, behind a 10/s limiter (burst 1): the
    // consumer still sees one item every 100 ms exactly — the backoff hides inside the gaps.
    let flaky = Flaky::new(0..20u32).fail_at([2, 3, 9, 15]);
    let s = restartable(move |cp: &Checkpoint<u32>| flaky.open(cp.delivered))
        .retry(RetryPolicy::fixed(30 * MS, 3))
        .rate_limit(Rate::per_second(10));
    let rec = record(s).await;
    assert_eq!(rec.items.len(), 20);
    let expected: Vec<Duration> = (0..20).map(|k| k * 100 * MS).collect();
    assert_eq!(rec.times, expected);
}

#[tokio::test(start_paused = true)]
async fn no_burst_beyond_b_after_a_long_retry_backoff() {
    // 5 items, then a 2 s backoff (idle), then 10 more: after the idle time at most `b = 3`
    // leave at one instant, then one per 100 ms again.
    let flaky = Flaky::new(0..15u32).fail_at([5]);
    let s = restartable(move |cp: &Checkpoint<u32>| flaky.open(cp.delivered))
        .retry(RetryPolicy::fixed(Duration::from_secs(2), 1))
        .rate_limit(Rate::per_second(10).burst(3));
    let rec = record(s).await;
    assert_eq!(rec.items.len(), 15);
    // A burst of 3 at 0, then one per 100 ms (the bucket refills one per 100 ms).
    assert_eq!(rec.times[..5], ms(&[0, 0, 0, 100, 200]));
    let resumed = rec.times[5];
    let after: Vec<Duration> = rec.times[5..].iter().map(|t| *t - resumed).collect();
    assert_eq!(after, ms(&[0, 0, 0, 100, 200, 300, 400, 500, 600, 700]));
    for w in rec.times.windows(4) {
        assert!(w[3] > w[0], "4 items at one instant: {:?}", rec.times);
    }
}

#[tokio::test(start_paused = true)]
async fn batch_within_fed_by_a_rate_limit_flushes_on_its_own_clock() {
    // Items leave the limiter at 0, 100, 200, …; each batch's timer starts at its first item.
    let s = stream::iter(0..7u32)
        .rate_limit(Rate::per_second(10))
        .batch_within(100, 250 * MS);
    let rec = record(s).await;
    assert_eq!(rec.items, [vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
    // 0 arms the timer at 0 → flush at 250; 3 (at 300) arms 550; 6 (at 600) is the tail,
    // flushed when the source ends at 600.
    assert_eq!(rec.times, ms(&[250, 550, 600]));
}

#[tokio::test(start_paused = true)]
async fn batch_within_carries_a_timeout_error_in_its_own_batch() {
    let s = scripted([
        Step::Item(0),
        Step::Delay(10 * MS),
        Step::Item(1),
        Step::Hang,
    ])
    .idle_timeout(100 * MS)
    .batch_within(10, 50 * MS);
    let rec = record(s).await;
    assert_eq!(
        rec.items,
        [
            vec![Ok(0), Ok(1)],
            vec![Err(TimeoutError::Item {
                after: 100 * MS,
                index: 2
            })]
        ]
    );
    // The first batch leaves on its timer (50 ms after item 0); the timeout fires 100 ms after
    // the wait for item 2 began (at 10 ms) and, the upstream ending with it, is flushed at once.
    assert_eq!(rec.times, ms(&[50, 110]));
}

#[tokio::test(start_paused = true)]
async fn deadline_cuts_a_retry_backoff_at_the_exact_instant() {
    let flaky = Flaky::new(0..10u32).fail_at([3]);
    let s = restartable(move |cp: &Checkpoint<u32>| {
        flaky
            .open(cp.delivered)
            .map(|r| r.map_err(|e| e.to_string()))
    })
    .retry(RetryPolicy::fixed(Duration::from_secs(1), 3))
    .deadline(500 * MS);
    let rec = record(s).await;
    assert_eq!(
        rec.items,
        [
            Ok(Ok(0)),
            Ok(Ok(1)),
            Ok(Ok(2)),
            Err(TimeoutError::Deadline { after: 500 * MS })
        ]
    );
    assert_eq!(rec.times, ms(&[0, 0, 0, 500]));
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_behind_prefetch_is_not_charged_for_a_slow_consumer() {
    // The source takes 30 ms per item; the consumer 80 ms. `idle_timeout(50ms)` after the
    // prefetch measures only the consumer's waits for an item, which never exceed 30 ms.
    let steps = (0..6).flat_map(|i| [Step::Delay(30 * MS), Step::Item(i)]);
    let mut s = Box::pin(scripted(steps).prefetch(2).idle_timeout(50 * MS));
    let start = Instant::now();
    let mut got = Vec::new();
    while let Some(x) = s.next().await {
        got.push((x, start.elapsed()));
        tokio::time::sleep(80 * MS).await;
    }
    let items: Vec<_> = got.iter().map(|(x, _)| x.clone()).collect();
    assert_eq!(items, (0..6).map(Ok).collect::<Vec<_>>());
    // The producer ran ahead: after the first, each item is ready when the consumer asks.
    let times: Vec<Duration> = got.iter().map(|(_, t)| *t).collect();
    assert_eq!(times, ms(&[30, 110, 190, 270, 350, 430]));
}

#[tokio::test(start_paused = true)]
async fn rate_limit_and_map_concurrent_and_deadline_together() {
    // 10/s, 3 in flight, 250 ms of work each, a 1 s deadline over everything: items start at
    // 0, 100, 200, … (the limiter), finish 250 ms later, in order; the deadline cuts at 1 s.
    let s = stream::iter(0..100u32)
        .rate_limit(Rate::per_second(10))
        .map_concurrent(3, |i| async move {
            tokio::time::sleep(250 * MS).await;
            i
        })
        .deadline(Duration::from_secs(1));
    let rec = record(s).await;
    let oks: Vec<u32> = rec
        .items
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    assert_eq!(oks, (0..oks.len() as u32).collect::<Vec<_>>());
    assert_eq!(
        rec.items.last(),
        Some(&Err(TimeoutError::Deadline {
            after: Duration::from_secs(1)
        }))
    );
    // With 3 in flight and 250 ms each, item k can start at max(100 k, finish of k-3).
    let mut start = Vec::<u64>::new();
    for k in 0..oks.len() {
        let by_rate = 100 * k as u64;
        let by_slots = if k >= 3 { start[k - 3] + 250 } else { 0 };
        start.push(by_rate.max(by_slots));
    }
    let expected: Vec<Duration> = start
        .iter()
        .map(|s| Duration::from_millis(s + 250))
        .collect();
    assert_eq!(rec.times[..oks.len()], expected[..]);
    assert_eq!(*rec.times.last().unwrap(), Duration::from_secs(1));
}
