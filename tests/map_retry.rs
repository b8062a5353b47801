//! `map_retry` / `map_retry_unordered` (per-item retry), `RetryPolicy::retry` (one future),
//! `Backoff` (caps that hold with jitter, `delay(n)`), and `Throttle` (limits every attempt).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::Metrics;
use millrace::pipeline;
use millrace::policy::{Backoff, Throttle};
use millrace::prelude::*;
use millrace::testing::DropCounter;
use tokio::time::Instant;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// When each attempt of each item started, relative to `start`: `(item, at)`.
#[derive(Clone)]
struct Log {
    start: Instant,
    starts: Arc<Mutex<Vec<(u32, Duration)>>>,
}

impl Log {
    fn new() -> Self {
        Log {
            start: Instant::now(),
            starts: Arc::default(),
        }
    }
    fn attempt(&self, item: u32) -> usize {
        let mut starts = self.starts.lock().unwrap();
        starts.push((item, self.start.elapsed()));
        starts.iter().filter(|(i, _)| *i == item).count()
    }
    fn of(&self, item: u32) -> Vec<Duration> {
        let starts = self.starts.lock().unwrap();
        starts
            .iter()
            .filter(|(i, _)| *i == item)
            .map(|(_, t)| *t)
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn failed_items_are_retried_on_the_exact_schedule_then_yield_their_last_error() {
    let log = Log::new();
    let l = log.clone();
    let policy = RetryPolicy::new(Backoff::exponential(ms(100)).max_retries(3));
    let s = stream::iter([7u32]).map_retry(1, policy, move |item| {
        let n = l.attempt(item);
        async move { Err::<u32, _>(format!("attempt {n} failed")) }
    });
    let stats = s.retries();
    let out: Vec<_> = s.collect().await;
    assert_eq!(out, [Err("attempt 4 failed".to_owned())]);
    assert_eq!(log.of(7), [ms(0), ms(100), ms(300), ms(700)]);
    assert_eq!(stats.get(), 3);
}

#[tokio::test(start_paused = true)]
async fn errors_the_predicate_rejects_are_not_retried() {
    let log = Log::new();
    let l = log.clone();
    let policy = RetryPolicy::fixed(ms(10), 5).retry_if(|e: &&str| *e == "busy");
    let s = stream::iter([1u32, 2]).map_retry(2, policy, move |item| {
        let n = l.attempt(item);
        async move {
            match (item, n) {
                (1, 1) => Err("busy"),
                (1, _) => Ok(10),
                _ => Err("forbidden"),
            }
        }
    });
    let stats = s.retries();
    assert_eq!(s.collect::<Vec<_>>().await, [Ok(10), Err("forbidden")]);
    assert_eq!(log.of(1), [ms(0), ms(10)]);
    assert_eq!(log.of(2), [ms(0)]);
    assert_eq!(stats.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_backing_off_item_keeps_its_slot() {
    // n = 1: item 0 fails once and waits 100 ms; item 1 may not start meanwhile.
    let log = Log::new();
    let l = log.clone();
    let s = stream::iter([0u32, 1]).map_retry(1, RetryPolicy::fixed(ms(100), 1), move |item| {
        let n = l.attempt(item);
        async move {
            if item == 0 && n == 1 {
                Err("busy")
            } else {
                Ok(item)
            }
        }
    });
    assert_eq!(s.collect::<Vec<_>>().await, [Ok(0), Ok(1)]);
    assert_eq!(log.of(0), [ms(0), ms(100)]);
    assert_eq!(log.of(1), [ms(100)], "item 1 waited for item 0's retry");
}

#[tokio::test(start_paused = true)]
async fn unordered_yields_a_retried_item_after_the_ones_that_passed_it() {
    let log = Log::new();
    let l = log.clone();
    let s =
        stream::iter(0u32..4).map_retry_unordered(4, RetryPolicy::fixed(ms(50), 2), move |item| {
            let n = l.attempt(item);
            async move { if item == 1 && n < 3 { Err(n) } else { Ok(item) } }
        });
    let stats = s.retries();
    assert_eq!(s.collect::<Vec<_>>().await, [Ok(0), Ok(2), Ok(3), Ok(1)]);
    assert_eq!(log.of(1), [ms(0), ms(50), ms(100)]);
    assert_eq!(stats.get(), 2);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_stream_during_a_backoff_releases_everything() {
    let items = DropCounter::new();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let mut s = Box::pin(stream::iter((0..3).map(|_| items.token())).map_retry(
        2,
        RetryPolicy::fixed(Duration::from_secs(3600), 5),
        move |_t| {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async { Err::<(), _>("down") }
        },
    ));
    // Two items start, fail, and back off for an hour.
    assert!(futures::poll!(s.next()).is_pending());
    tokio::task::yield_now().await;
    assert!(futures::poll!(s.next()).is_pending());
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert!(items.alive() >= 2);
    drop(s);
    // Aborted tasks drop their futures when the runtime gets to them.
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        items.alive(),
        0,
        "the items held by backing-off tasks are dropped"
    );
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::Relaxed),
        2,
        "no attempt after the drop"
    );
}

#[tokio::test(start_paused = true)]
async fn every_attempt_takes_the_throttle_retries_included() {
    // 12 items, every other one failing twice: 24 attempts, at most 2 running, 10 per second.
    let throttle = Throttle::new().rate(Rate::per_second(10)).max_in_flight(2);
    let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let log = Log::new();
    let (r, p, l) = (Arc::clone(&running), Arc::clone(&peak), log.clone());
    let s = stream::iter(0u32..12)
        .map_retry(8, RetryPolicy::fixed(ms(1), 2), move |item| {
            let (r, p, l) = (Arc::clone(&r), Arc::clone(&p), l.clone());
            async move {
                // Logged when the attempt runs, i.e. once it holds the throttle.
                let n = l.attempt(item);
                let now = r.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                p.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(ms(150)).await;
                r.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                if item % 2 == 0 && n < 3 {
                    Err("busy")
                } else {
                    Ok(item)
                }
            }
        })
        .throttle(throttle.clone());
    let stats = s.retries();
    let out: Vec<_> = s.collect().await;
    assert_eq!(out, (0..12).map(Ok).collect::<Vec<_>>());
    assert_eq!(stats.get(), 12);
    assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(throttle.in_flight(), 0);
    let mut starts: Vec<Duration> = log.starts.lock().unwrap().iter().map(|(_, t)| *t).collect();
    starts.sort();
    assert_eq!(starts.len(), 24);
    for (i, t) in starts.iter().enumerate() {
        let in_window = starts[i..]
            .iter()
            .take_while(|u| **u - *t < Duration::from_secs(1))
            .count();
        assert!(
            in_window <= 11,
            "{in_window} attempts in the second from {t:?}: {starts:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_pipeline_with_retries_reports_their_exact_count() {
    let metrics = Metrics::new();
    // Items 3 and 5 fail twice, item 8 for good: 2 + 2 + 3 retries.
    let tries = Arc::new(Mutex::new(std::collections::HashMap::<u32, u32>::new()));
    let t = Arc::clone(&tries);
    let s = stream::iter(0u32..10)
        .map_retry(4, RetryPolicy::fixed(ms(10), 3), move |item| {
            let n = {
                let mut tries = t.lock().unwrap();
                let n = tries.entry(item).or_insert(0);
                *n += 1;
                *n
            };
            async move {
                match item {
                    3 | 5 if n <= 2 => Err(format!("{item} busy")),
                    8 => Err(format!("{item} down")),
                    _ => Ok(item),
                }
            }
        })
        .metered_in(&metrics, "fetch")
        .with_events()
        .count_errors();
    let out: Vec<_> = s.collect().await;
    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 9);
    let snap = &metrics.snapshot()[0];
    assert_eq!(
        (snap.items, snap.errors, snap.retries),
        (10, Some(1), Some(7))
    );
    let report = metrics.report().to_string();
    assert_eq!(
        report,
        "stage  items  errors  retries  skipped  fallbacks  p50  p99  time\n\
         fetch     10       1        7        -          -    -    -     -\n"
    );
}

#[tokio::test(start_paused = true)]
async fn pipeline_adopts_the_retries_of_a_map_retry_stage() {
    let metrics = Metrics::new();
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let s = pipeline! {
        metrics = &metrics;
        stream::iter(0u32..3)
        => .map_retry(2, RetryPolicy::fixed(ms(5), 2), move |x| {
            let fail = x == 1 && first.swap(false, std::sync::atomic::Ordering::Relaxed);
            async move { if fail { Err("busy") } else { Ok(x) } }
        })
    };
    assert_eq!(s.collect::<Vec<_>>().await, [Ok(0), Ok(1), Ok(2)]);
    let retries: Vec<_> = metrics.snapshot().iter().map(|s| s.retries).collect();
    assert_eq!(retries, [None, Some(1)]);
}

#[tokio::test(start_paused = true)]
async fn one_future_retries_on_schedule_and_gives_up_with_the_last_error() {
    let log = Log::new();
    let policy = RetryPolicy::new(Backoff::exponential(ms(20)).max_retries(2));
    let out = policy
        .retry(|| {
            let n = log.attempt(0);
            async move { Err::<(), _>(n) }
        })
        .await;
    assert_eq!(out, Err(3));
    assert_eq!(log.of(0), [ms(0), ms(20), ms(60)]);
}

#[tokio::test(start_paused = true)]
async fn dropping_one_future_during_its_backoff_stops_it() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let fut = RetryPolicy::fixed(Duration::from_secs(10), 3).retry(move || {
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async { Err::<(), _>("down") }
    });
    let timed_out = tokio::time::timeout(Duration::from_secs(1), fut).await;
    assert!(timed_out.is_err());
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn max_delay_caps_the_wait_with_jitter() {
    use millrace::policy::BackoffBuilder;
    let backoff = Backoff::exponential(Duration::from_secs(10))
        .max_delay(Duration::from_secs(10))
        .max_retries(1_000)
        .jitter(1.0);
    assert!(
        backoff
            .build()
            .all(|d| d >= Duration::from_secs(10) && d <= Duration::from_secs(10))
    );
    let jittered = Backoff::constant(ms(100)).max_retries(1_000).jitter(0.5);
    let waits: Vec<_> = jittered.build().collect();
    assert!(waits.iter().all(|d| *d >= ms(100) && *d <= ms(150)));
    assert!(waits.iter().any(|d| *d != waits[0]), "jitter varies");
    // A backon builder's jitter, capped by the policy: never the 19.96 s of the issue.
    assert_eq!(RetryPolicy::exponential().builder().max_wait(100), None);
    assert_eq!(
        RetryPolicy::exponential().builder().max_wait(5),
        Some(ms(3200))
    );
}

#[test]
fn delay_of_attempt_n_is_computed() {
    let policy = RetryPolicy::new(Backoff::exponential(ms(100)).factor(3.0).max_retries(50));
    assert_eq!(policy.delay(1), Some(ms(100)));
    assert_eq!(policy.delay(4), Some(ms(2700)));
    assert_eq!(policy.delay(0), None);
    assert_eq!(policy.delay(51), None);
    // Huge exponents saturate instead of overflowing.
    assert!(policy.delay(50).unwrap() > Duration::from_secs(1_000_000));
    let capped = policy.max_delay(Duration::from_secs(1));
    assert_eq!(capped.delay(50), Some(Duration::from_secs(1)));
}

#[test]
#[should_panic(expected = "`backoff`: `factor` must be a finite number of at least 1.0, got NaN")]
fn a_nan_factor_is_rejected() {
    let _ = Backoff::exponential(ms(1)).factor(f64::NAN);
}

#[test]
fn bad_jitter_and_factor_are_rejected_naming_the_value() {
    for bad in [0.0, -0.5, 1.5, f64::NAN] {
        let err = Backoff::constant(ms(1))
            .checked_jitter(bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`jitter` must be a ratio in (0, 1]"), "{err}");
        assert!(err.contains(&format!("got {bad}")), "{err}");
    }
    for bad in [0.5, -1.0, f64::INFINITY] {
        assert!(Backoff::constant(ms(1)).checked_factor(bad).is_err());
    }
    assert_eq!(
        Throttle::new()
            .checked_max_in_flight(0)
            .unwrap_err()
            .to_string(),
        "`throttle`: `max_in_flight` must be at least 1, got 0; pass a non-zero value"
    );
}

#[test]
#[should_panic(expected = "`map_retry`: `limit` must be at least 1, got 0")]
fn a_zero_limit_is_rejected() {
    let _ =
        stream::iter([1u32]).map_retry(
            0,
            RetryPolicy::exponential(),
            |x| async move { Ok::<_, ()>(x) },
        );
}

#[test]
fn map_retry_is_send_sync_and_unpin() {
    fn assert_ssu<T: Send + Sync + Unpin>(_: &T) {}
    let s = stream::iter([1u32]).map_retry(2, RetryPolicy::exponential(), |x| async move {
        Ok::<_, String>(x)
    });
    assert_ssu(&s);
    assert_ssu(&Throttle::new().max_in_flight(1));
}

#[tokio::test(start_paused = true)]
async fn map_retry_honours_the_stream_contract() {
    let make = || {
        stream::iter(0u32..6).map_retry(2, RetryPolicy::fixed(ms(3), 1), |x| async move {
            tokio::time::sleep(ms(u64::from(x % 3))).await;
            if x == 4 { Err(x) } else { Ok(x * 2) }
        })
    };
    millrace::testing::conformance(make, vec![Ok(0), Ok(2), Ok(4), Ok(6), Err(4), Ok(10)]).await;
}
