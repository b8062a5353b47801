//! `restartable(factory).retry(policy)`: every item exactly once, in order, with exact backoff.

use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt, stream};
use millrace::policy::{ConstantBuilder, ExponentialBuilder};
use millrace::prelude::*;
use millrace::testing::{
    DropCounter, Flaky, FlakyError, FlakyStream, alive_tasks, conformance, consume,
};
use millrace::wrappers::Retry;
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

/// A restart factory over a `Flaky<u64>` source.
trait Factory: FnMut(&Checkpoint<u64>) -> FlakyStream<u64> + Send + 'static {}
impl<F: FnMut(&Checkpoint<u64>) -> FlakyStream<u64> + Send + 'static> Factory for F {}

/// The instants at which a factory opened its source.
type OpenLog = Arc<Mutex<Vec<Instant>>>;

fn items(n: u64) -> Vec<Result<u64, FlakyError>> {
    (0..n).map(Ok).collect()
}

/// Checkpoint mode: the factory seeks to the first undelivered item.
fn seeking<B, P>(
    flaky: Flaky<u64>,
    policy: RetryPolicy<B, P>,
) -> Retry<impl Factory, FlakyStream<u64>, Checkpoint<u64>, B, P>
where
    B: millrace::policy::BackoffBuilder + Clone + Send + 'static,
    B::Backoff: Send,
    P: millrace::policy::RetryIf<FlakyError> + Send + 'static,
{
    restartable(move |cp: &Checkpoint<u64>| flaky.open(cp.delivered)).retry(policy)
}

/// Skip mode: the factory always re-opens from the start.
fn replaying<B, P>(
    flaky: Flaky<u64>,
    policy: RetryPolicy<B, P>,
) -> Retry<impl Factory, FlakyStream<u64>, Checkpoint<u64>, B, P>
where
    B: millrace::policy::BackoffBuilder + Clone + Send + 'static,
    B::Backoff: Send,
    P: millrace::policy::RetryIf<FlakyError> + Send + 'static,
{
    restartable(move |_: &Checkpoint<u64>| flaky.open(0))
        .skip_delivered()
        .retry(policy)
}

fn fixed(ms: u64, retries: usize) -> RetryPolicy<ConstantBuilder> {
    RetryPolicy::fixed(Duration::from_millis(ms), retries)
}

#[tokio::test(start_paused = true)]
async fn every_item_exactly_once_in_order_for_chosen_failure_points() {
    let plans: [&[u64]; 6] = [&[], &[0], &[5], &[0, 1, 2], &[3, 10, 49], &[99]];
    for plan in plans {
        let flaky = Flaky::new(0..100u64).fail_at(plan.iter().copied());
        let out: Vec<_> = seeking(flaky.clone(), fixed(1, 1)).collect().await;
        assert_eq!(out, items(100), "checkpoint mode, fail_at {plan:?}");
        assert_eq!(flaky.opens(), 1 + plan.len() as u64);

        let flaky = Flaky::new(0..100u64).fail_at(plan.iter().copied());
        let out: Vec<_> = replaying(flaky.clone(), fixed(1, 1)).collect().await;
        assert_eq!(out, items(100), "skip_delivered mode, fail_at {plan:?}");
        assert_eq!(flaky.opens(), 1 + plan.len() as u64);
    }
}

#[tokio::test(start_paused = true)]
async fn every_item_exactly_once_in_order_under_random_failures() {
    for seed in 0..200 {
        let flaky = Flaky::new(0..60u64)
            .fail_with_probability(0.2, seed)
            .fail_times(2);
        let s = seeking(flaky.clone(), fixed(1, 2));
        let stats = s.get_restartable().opens();
        assert_eq!(stats, 0, "opened lazily");
        let out: Vec<_> = s.collect().await;
        assert_eq!(out, items(60), "checkpoint mode, seed {seed}");
        assert_eq!(flaky.failures(), 2 * flaky.failure_positions().len() as u64);

        let flaky = Flaky::new(0..60u64)
            .fail_with_probability(0.2, seed)
            .fail_times(2);
        let out: Vec<_> = replaying(flaky.clone(), fixed(1, 2)).collect().await;
        assert_eq!(out, items(60), "skip_delivered mode, seed {seed}");
    }
}

/// Records the instant of every open, so the waits between them can be checked exactly.
fn timed_opens(flaky: &Flaky<u64>) -> (OpenLog, impl Factory) {
    let opens = Arc::new(Mutex::new(Vec::new()));
    let (flaky, log) = (flaky.clone(), Arc::clone(&opens));
    let factory = move |cp: &Checkpoint<u64>| {
        log.lock().unwrap().push(Instant::now());
        flaky.open(cp.delivered)
    };
    (opens, factory)
}

fn gaps(opens: &Mutex<Vec<Instant>>) -> Vec<Duration> {
    let opens = opens.lock().unwrap();
    opens.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn waits_follow_the_exponential_schedule_exactly() {
    let flaky = Flaky::new(0..10u64).fail_at([3]).fail_times(3);
    let (opens, factory) = timed_opens(&flaky);
    let policy = RetryPolicy::new(
        ExponentialBuilder::default()
            .with_min_delay(100 * MS)
            .with_max_times(5),
    );
    let s = restartable(factory).retry(policy);
    assert_eq!(s.collect::<Vec<_>>().await, items(10));
    assert_eq!(gaps(&opens), [100 * MS, 200 * MS, 400 * MS]);
}

#[tokio::test(start_paused = true)]
async fn jittered_waits_stay_within_documented_bounds() {
    // Documented: with jitter each wait lies in [d, 2d] for the nominal delay d.
    for _ in 0..50 {
        let flaky = Flaky::new(0..4u64).fail_at([1]).fail_times(4);
        let (opens, factory) = timed_opens(&flaky);
        let policy = RetryPolicy::new(
            ExponentialBuilder::default()
                .with_min_delay(100 * MS)
                .with_max_times(4)
                .with_jitter(),
        );
        let s = restartable(factory).retry(policy);
        assert_eq!(s.collect::<Vec<_>>().await, items(4));
        let gaps = gaps(&opens);
        assert_eq!(gaps.len(), 4);
        for (i, gap) in gaps.into_iter().enumerate() {
            let nominal = 100 * MS * 2u32.pow(i as u32);
            assert!(
                gap >= nominal && gap <= 2 * nominal,
                "wait #{i} was {gap:?}, nominal {nominal:?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_delivered_item_resets_the_attempts() {
    // One retry allowed per failure streak; two failures far apart both recover.
    let flaky = Flaky::new(0..20u64).fail_at([3, 10]);
    let s = seeking(flaky.clone(), fixed(10, 1));
    let stats = s.retries();
    assert_eq!(s.collect::<Vec<_>>().await, items(20));
    assert_eq!(stats.get(), 2);

    // The reset also restarts the delay schedule from its first step.
    let flaky = Flaky::new(0..20u64).fail_at([3, 10]);
    let (opens, factory) = timed_opens(&flaky);
    let policy = RetryPolicy::new(
        ExponentialBuilder::default()
            .with_min_delay(100 * MS)
            .with_max_times(3),
    );
    let s = restartable(factory).retry(policy);
    assert_eq!(s.collect::<Vec<_>>().await, items(20));
    assert_eq!(gaps(&opens), [100 * MS, 100 * MS]);
}

#[tokio::test(start_paused = true)]
async fn without_reset_the_attempts_accumulate_over_the_stream() {
    let flaky = Flaky::new(0..20u64).fail_at([3, 10]);
    let s = seeking(flaky.clone(), fixed(10, 1).reset_after_success(false));
    let mut expected = items(10);
    expected.push(Err(FlakyError {
        position: 10,
        attempt: 1,
    }));
    assert_eq!(s.collect::<Vec<_>>().await, expected);
}

#[tokio::test(start_paused = true)]
async fn the_last_error_is_yielded_when_attempts_run_out() {
    let flaky = Flaky::new(0..10u64).fail_at([5]).fail_times(4);
    let s = seeking(flaky.clone(), fixed(10, 2));
    let stats = s.retries();
    let start = Instant::now();
    let mut expected = items(5);
    // The first attempt and two retries failed: the third failure is the one surfaced.
    expected.push(Err(FlakyError {
        position: 5,
        attempt: 3,
    }));
    let mut s = pin!(s);
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        out.push(item);
    }
    assert_eq!(out, expected);
    assert_eq!(stats.get(), 2);
    assert_eq!(s.retries(), 2);
    assert_eq!(start.elapsed(), 20 * MS);
    assert!(s.is_terminated());
    assert_eq!(s.next().await, None);
    assert_eq!(flaky.opens(), 3);
}

#[tokio::test(start_paused = true)]
async fn max_total_delay_gives_up_before_the_summed_waits_exceed_it() {
    let flaky = Flaky::new(0..5u64).fail_at([2]).fail_times(10);
    let s = seeking(flaky.clone(), fixed(100, 10).max_total_delay(250 * MS));
    let stats = s.retries();
    let start = Instant::now();
    let out: Vec<_> = s.collect().await;
    let mut expected = items(2);
    expected.push(Err(FlakyError {
        position: 2,
        attempt: 3,
    }));
    assert_eq!(out, expected);
    assert_eq!(
        stats.get(),
        2,
        "100 + 100 fits in 250 ms, a third 100 does not"
    );
    assert_eq!(start.elapsed(), 200 * MS);
}

#[tokio::test(start_paused = true)]
async fn retry_if_yields_a_non_retryable_error_and_ends() {
    let flaky = Flaky::new(0..10u64).fail_at([2, 4]);
    let policy = fixed(10, 5).retry_if(|e: &FlakyError| e.position != 4);
    let s = seeking(flaky.clone(), policy);
    let stats = s.retries();
    let mut expected = items(4);
    expected.push(Err(FlakyError {
        position: 4,
        attempt: 1,
    }));
    assert_eq!(s.collect::<Vec<_>>().await, expected);
    assert_eq!(stats.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn restartable_alone_does_not_retry() {
    let flaky = Flaky::new(0..5u64).fail_at([2]);
    let f = flaky.clone();
    let s = restartable(move |cp: &Checkpoint<u64>| f.open(cp.delivered));
    assert_eq!(flaky.opens(), 0, "nothing opened before the first poll");
    let mut expected = items(2);
    expected.push(Err(FlakyError {
        position: 2,
        attempt: 1,
    }));
    let mut s = pin!(s);
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        out.push(item);
    }
    assert_eq!(out, expected);
    assert!(s.is_terminated());
    assert_eq!(flaky.opens(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_factory_receives_the_checkpoint() {
    let flaky = Flaky::new(10..20u64).fail_at([4]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (f, log) = (flaky.clone(), Arc::clone(&seen));
    let s = restartable(move |cp: &Checkpoint<u64>| {
        log.lock().unwrap().push(cp.clone());
        f.open(cp.delivered)
    })
    .retry(fixed(1, 1));
    let out: Vec<_> = s.collect().await;
    assert_eq!(out, (10..20).map(Ok).collect::<Vec<_>>());
    assert_eq!(
        *seen.lock().unwrap(),
        [
            Checkpoint {
                delivered: 0,
                last: None
            },
            Checkpoint {
                delivered: 4,
                last: Some(13)
            },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn custom_checkpoint_drives_the_factory() {
    let flaky = Flaky::new(0..30u64).fail_at([7, 8, 20]);
    let f = flaky.clone();
    let s = custom_checkpoint(0u64, |next: &mut u64, item: &u64| *next = item + 1)
        .restartable(move |next: &u64| f.open(*next))
        .retry(fixed(1, 1));
    let mut s = pin!(s);
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        out.push(item);
    }
    assert_eq!(out, items(30));
    assert_eq!(*s.checkpoint(), 30);
    assert_eq!(flaky.opens(), 4);
}

#[tokio::test(start_paused = true)]
async fn conformance_in_both_modes() {
    conformance(
        || seeking(Flaky::new(0..6u64).fail_at([0, 3]), fixed(5, 1)),
        items(6),
    )
    .await;
    conformance(
        || replaying(Flaky::new(0..6u64).fail_at([2, 5]), fixed(5, 1)),
        items(6),
    )
    .await;
    let mut last_error = items(2);
    last_error.push(Err(FlakyError {
        position: 2,
        attempt: 2,
    }));
    conformance(
        || seeking(Flaky::new(0..6u64).fail_at([2]).fail_times(3), fixed(5, 1)),
        last_error.clone(),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn dropping_during_backoff_stops_everything() {
    let tasks = alive_tasks();
    let counter = DropCounter::new();
    let token = counter.token();
    let flaky = Flaky::new(0..5u64).fail_at([1]);
    let f = flaky.clone();
    let s = restartable(move |cp: &Checkpoint<u64>| {
        let _held = &token;
        f.open(cp.delivered)
    })
    .retry(fixed(3_600_000, 3));
    let mut s = Box::pin(s);
    assert_eq!(s.next().await, Some(Ok(0)));
    // The next poll hits the failure and starts an hour-long backoff.
    assert!(futures::poll!(s.next()).is_pending());
    assert_eq!(counter.alive(), 1);
    assert_eq!(flaky.opens(), 1);
    drop(s);
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        counter.alive(),
        0,
        "the factory and its captures are released"
    );
    assert_eq!(alive_tasks(), tasks, "no task is left behind");
    tokio::time::sleep(Duration::from_secs(7200)).await;
    assert_eq!(
        flaky.opens(),
        1,
        "nothing re-opened the source after the drop"
    );
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "boom")]
async fn a_panic_in_the_factory_reaches_the_consumer() {
    let s = restartable(|_: &Checkpoint<u64>| -> FlakyStream<u64> { panic!("boom") })
        .retry(fixed(1, 1));
    consume(s).await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_factory_on_reopen_reaches_the_consumer() {
    let flaky = Flaky::new(0..5u64).fail_at([2]);
    let mut opened = false;
    let s = restartable(move |cp: &Checkpoint<u64>| {
        if std::mem::replace(&mut opened, true) {
            panic!("boom on re-open");
        }
        flaky.open(cp.delivered)
    })
    .retry(fixed(1, 1));
    let panic = std::panic::AssertUnwindSafe(consume(s))
        .catch_unwind()
        .await
        .unwrap_err();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"boom on re-open"));
}

#[tokio::test(start_paused = true)]
async fn exponential_convenience_retries_with_jitter() {
    let flaky = Flaky::new(0..3u64).fail_at([1]);
    let (opens, factory) = timed_opens(&flaky);
    let s = restartable(factory).retry(RetryPolicy::exponential());
    assert_eq!(s.collect::<Vec<_>>().await, items(3));
    let gaps = gaps(&opens);
    assert_eq!(gaps.len(), 1);
    assert!(gaps[0] >= 100 * MS && gaps[0] <= 200 * MS, "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn plain_streams_work_as_sources() {
    // Any stream of results: here one that fails once at item 2.
    let mut failed = false;
    let s = restartable(move |cp: &Checkpoint<u32>| {
        let fail = !std::mem::replace(&mut failed, true);
        stream::iter(cp.delivered as u32..4).map(move |i| {
            if fail && i == 2 {
                Err(format!("lost at {i}"))
            } else {
                Ok(i)
            }
        })
    })
    .retry(fixed(1, 1));
    assert_eq!(s.collect::<Vec<_>>().await, [Ok(0), Ok(1), Ok(2), Ok(3)]);
}

mod support;
use support::capture;

#[tokio::test(start_paused = true)]
async fn each_retry_emits_a_warning_with_attempt_delay_and_error() {
    let (events, _guard) = capture::capture();
    let flaky = Flaky::new(0..5u64).fail_at([2]).fail_times(2);
    let out: Vec<_> = seeking(flaky.clone(), fixed(10, 3)).collect().await;
    assert_eq!(out, items(5));
    let text = events.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("WARN"), "{text}");
    assert!(lines[0].contains("attempt=1"), "{text}");
    assert!(lines[0].contains("delay=10ms"), "{text}");
    assert!(lines[0].contains("delivered=2"), "{text}");
    assert!(
        lines[0].contains("error=injected failure before item #2 (attempt 1)"),
        "{text}"
    );
    assert!(lines[1].contains("attempt=2"), "{text}");
}

#[test]
fn retry_streams_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let flaky = Flaky::new(0..3u64);
    assert_send(&seeking(flaky.clone(), fixed(1, 1)));
    assert_send(&replaying(flaky.clone(), RetryPolicy::exponential()));
    let f = flaky.clone();
    assert_send(&restartable(move |cp: &Checkpoint<u64>| {
        f.open(cp.delivered)
    }));
}

#[tokio::test(start_paused = true)]
async fn a_stats_handle_taken_mid_stream_starts_at_the_current_count_and_handles_share_it() {
    let flaky = Flaky::new(0..8u64).fail_at([2, 5]);
    let mut s = pin!(seeking(flaky.clone(), fixed(10, 5)));
    for expected in items(3) {
        assert_eq!(s.next().await, Some(expected));
    }
    assert_eq!(s.retries(), 1);
    let first = s.retries();
    assert_eq!(first.get(), 1, "a late handle starts at the count so far");
    let second = s.retries();
    drop(first);
    let rest: Vec<_> = s.as_mut().collect().await;
    assert_eq!(rest.len(), 5);
    assert_eq!(second.get(), 2);
    drop(second);
    assert_eq!(
        s.retries().get(),
        2,
        "a handle taken after all others were dropped"
    );
}
