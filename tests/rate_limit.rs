//! `rate_limit`: GCRA on tokio time, bursts, idle, shared limiters.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::prelude::*;
use millrace::testing::{DropCounter, Step, conformance, record, scripted};
use millrace::wrappers::{RateLimit, RateLimitStage};
use millrace_test_support::max_arrivals_within;
use tokio::time::Instant;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The largest number of items released at one instant.
fn max_at_one_instant(times: &[Duration]) -> usize {
    let mut by_time = BTreeMap::new();
    for t in times {
        *by_time.entry(*t).or_insert(0) += 1;
    }
    by_time.values().copied().max().unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn ten_seconds_release_rate_times_ten() {
    for r in [1u32, 3, 10, 50] {
        let rec = record(
            stream::iter(0..10_000u32)
                .rate_limit(Rate::per_second(r))
                .take_while({
                    let start = Instant::now();
                    move |_| std::future::ready(start.elapsed() < Duration::from_secs(10))
                }),
        )
        .await;
        let n = rec.items.len() as i64;
        assert!(
            (n - 10 * i64::from(r)).abs() <= 1,
            "r = {r}: {n} items in 10 s"
        );
        assert_eq!(max_at_one_instant(&rec.times), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn even_spacing_with_burst_one() {
    let rec = record(stream::iter(0..5).rate_limit(Rate::per_second(4))).await;
    assert_eq!(rec.items, [0, 1, 2, 3, 4]);
    assert_eq!(rec.times, [ms(0), ms(250), ms(500), ms(750), ms(1000)]);
}

#[tokio::test(start_paused = true)]
async fn never_more_than_the_burst_at_one_instant() {
    let rec = record(stream::iter(0..100).rate_limit(Rate::per_second(20).burst(4))).await;
    assert_eq!(max_at_one_instant(&rec.times), 4);
    // 4 at once, then one every 50 ms.
    assert_eq!(
        &rec.times[..6],
        [ms(0), ms(0), ms(0), ms(0), ms(50), ms(100)]
    );
    assert_eq!(*rec.times.last().unwrap(), ms(96 * 50));
}

#[tokio::test(start_paused = true)]
async fn no_burst_beyond_b_after_idle() {
    let mut steps: Vec<Step<u32>> = (0..5).map(Step::Item).collect();
    steps.push(Step::Delay(Duration::from_secs(5)));
    steps.extend((5..15).map(Step::Item));
    let rec = record(scripted(steps).rate_limit(Rate::per_second(10).burst(3))).await;
    assert_eq!(rec.items, (0..15).collect::<Vec<_>>());
    assert_eq!(max_at_one_instant(&rec.times), 3);
    // The source resumes at 5 s + 200 ms (it slept after item 4, released at 200 ms).
    let resume = ms(5200);
    let at_resume = rec.times.iter().filter(|t| **t == resume).count();
    assert_eq!(at_resume, 3, "times: {:?}", rec.times);
    assert_eq!(rec.times[8], resume + ms(100));
}

#[tokio::test(start_paused = true)]
async fn cloned_limiters_share_the_budget() {
    let limiter = RateLimiter::new(Rate::per_second(10));
    let start = Instant::now();
    let in_ten_s = move |_: &u32| std::future::ready(start.elapsed() < Duration::from_secs(10));
    let a = stream::iter(0..10_000u32)
        .rate_limit(limiter.clone())
        .take_while(in_ten_s);
    let b = stream::iter(0..10_000u32)
        .rate_limit(limiter.clone())
        .take_while(in_ten_s);
    let (a, b) = tokio::join!(a.count(), b.count());
    assert!((a + b).abs_diff(100) <= 1, "a = {a}, b = {b}");
    assert!(
        a >= 40 && b >= 40,
        "both streams progress: a = {a}, b = {b}"
    );

    // A fresh limiter from the same Rate does not share.
    let start = Instant::now();
    let fresh = stream::iter(0..10_000u32)
        .rate_limit(Rate::per_second(10))
        .take_while(move |_| std::future::ready(start.elapsed() < Duration::from_secs(10)));
    assert_eq!(fresh.count().await, 100);
}

#[tokio::test(start_paused = true)]
async fn acquire_shares_the_budget_with_streams() {
    let limiter = RateLimiter::new(Rate::per_second(2));
    let start = Instant::now();
    assert!(limiter.try_acquire());
    // The stream's first item must wait for the budget the handle took.
    let rec = record(stream::iter([1, 2]).rate_limit(limiter.clone())).await;
    assert_eq!(rec.times, [ms(500), ms(1000)]);
    limiter.acquire().await;
    assert_eq!(start.elapsed(), ms(1500));
}

#[tokio::test(start_paused = true)]
async fn limits_requests_per_second_and_in_flight_together() {
    let start = Instant::now();
    let rec = record(
        stream::iter(0..10u64)
            .rate_limit(Rate::per_second(10).burst(1))
            .map_concurrent(2, |x| async move {
                tokio::time::sleep(ms(300)).await;
                x
            }),
    )
    .await;
    assert_eq!(rec.items, (0..10).collect::<Vec<_>>());
    // Two in flight at 300 ms each: items 2k and 2k+1 start at 300k ms and 300k + 100 ms
    // (the rate spaces the pair), so item 9 starts at 1300 ms and ends at 1600 ms.
    assert_eq!(start.elapsed(), ms(1600));
}

#[tokio::test(start_paused = true)]
async fn conformance_and_stage() {
    let script = || {
        scripted([
            Step::Item(1),
            Step::Item(2),
            Step::Delay(ms(700)),
            Step::Item(3),
            Step::Pending,
            Step::Item(4),
        ])
    };
    conformance(
        || script().rate_limit(Rate::per_second(5).burst(2)),
        vec![1, 2, 3, 4],
    )
    .await;
    conformance(
        || script().wrap(RateLimitStage::new(Rate::per_second(5))),
        vec![1, 2, 3, 4],
    )
    .await;
    conformance(
        || RateLimit::new(script(), Rate::per(1, ms(10))),
        vec![1, 2, 3, 4],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn drop_releases_the_held_item_and_the_source() {
    let items = DropCounter::new();
    let source = DropCounter::new();
    let src_token = source.token();
    let tokens: Vec<_> = (0..3).map(|_| items.token()).collect();
    let mut s = Box::pin(
        stream::iter(tokens)
            .map(move |t| {
                let _ = &src_token;
                t
            })
            .rate_limit(Rate::per_second(1)),
    );
    assert!(s.next().await.is_some());
    // The second item is pulled and held while the budget refills.
    assert!(futures::poll!(s.next()).is_pending());
    assert_eq!(items.alive(), 2);
    drop(s);
    assert_eq!(items.alive(), 0);
    assert_eq!(source.alive(), 0);
}

#[test]
#[should_panic(expected = "`rate_limit`: `rate` must be at least 1, got 0; pass a non-zero value")]
fn zero_rate_is_rejected() {
    let _ = Rate::per_second(0);
}

#[test]
#[should_panic(expected = "`rate_limit`: `burst` must be at least 1, got 0; pass a non-zero value")]
fn zero_burst_is_rejected() {
    let _ = Rate::per_second(1).burst(0);
}

#[test]
#[should_panic(expected = "`rate_limit`: `count` must be at least 1, got 0; pass a non-zero value")]
fn zero_count_is_rejected() {
    let _ = Rate::per(0, Duration::from_secs(1));
}

#[test]
fn try_constructors_return_the_config_error() {
    assert_eq!(
        Rate::checked_per_second(0).unwrap_err().to_string(),
        "`rate_limit`: `rate` must be at least 1, got 0; pass a non-zero value"
    );
    assert_eq!(
        Rate::per_second(3)
            .checked_burst(0)
            .unwrap_err()
            .to_string(),
        "`rate_limit`: `burst` must be at least 1, got 0; pass a non-zero value"
    );
    assert_eq!(
        Rate::checked_per(1, Duration::ZERO)
            .unwrap_err()
            .to_string(),
        "`rate_limit`: `period` must be longer than zero, got 0s; pass a value in that range"
    );
    assert!(Rate::checked_per(10, Duration::from_nanos(5)).is_err());
    assert_eq!(Rate::checked_per_second(3).unwrap().burst_size(), 1);
}

#[test]
fn wrappers_are_send_and_sync() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_sync<T: Sync>(_: &T) {}
    let s = stream::iter([1]).rate_limit(Rate::per_second(1));
    assert_send(&s);
    assert_sync(&s);
    let l = RateLimiter::new(Rate::per_second(1));
    assert_send(&l);
    assert_sync(&l);
    assert_send(&RateLimitStage::new(l));
}

#[tokio::test(start_paused = true)]
async fn a_late_wake_up_catches_up_on_the_slots_that_passed() {
    use futures::poll;
    use std::task::Poll;
    let start = Instant::now();
    let mut s = std::pin::pin!(stream::iter(0..).rate_limit(Rate::per_second(100)));
    assert_eq!(poll!(s.next()), Poll::Ready(Some(0)));
    // Item 1 is due at 10 ms: the stream waits for it (demand is registered)…
    assert!(poll!(s.next()).is_pending());
    // …but wakes up late, at 55 ms: the slots of 10, 20, 30, 40 and 50 ms have passed.
    tokio::time::advance(ms(55)).await;
    for i in 1..=5 {
        assert_eq!(
            poll!(s.next()),
            Poll::Ready(Some(i)),
            "slot {i} is caught up"
        );
    }
    // Back on the schedule: item 6 is due at 60 ms, not at 55 + 10 ms.
    assert!(poll!(s.next()).is_pending());
    assert_eq!(s.next().await, Some(6));
    assert_eq!(start.elapsed(), ms(60));
    assert_eq!(s.next().await, Some(7));
    assert_eq!(start.elapsed(), ms(70));
}

#[tokio::test(start_paused = true)]
async fn a_wake_up_later_than_the_catch_up_horizon_restarts_the_schedule() {
    use futures::poll;
    use std::task::Poll;
    let start = Instant::now();
    let mut s = std::pin::pin!(stream::iter(0..).rate_limit(Rate::per_second(100)));
    assert_eq!(poll!(s.next()), Poll::Ready(Some(0)));
    assert!(poll!(s.next()).is_pending());
    // 10 ms + 200 ms (the horizon) + 1 ms: treated as idle, one item then even spacing.
    tokio::time::advance(ms(211)).await;
    assert_eq!(poll!(s.next()), Poll::Ready(Some(1)));
    assert!(poll!(s.next()).is_pending());
    assert_eq!(s.next().await, Some(2));
    assert_eq!(start.elapsed(), ms(221));
}

#[tokio::test(start_paused = true)]
async fn catching_up_never_puts_more_than_rate_plus_burst_in_a_second() {
    use futures::poll;
    use std::task::Poll;
    let start = Instant::now();
    let mut s = std::pin::pin!(stream::iter(0..).rate_limit(Rate::per_second(10)));
    let mut times = Vec::new();
    assert_eq!(poll!(s.next()), Poll::Ready(Some(0)));
    times.push(start.elapsed());
    assert!(poll!(s.next()).is_pending());
    // Late by 190 ms: the slots of 100 and 200 ms go at once at 290 ms.
    tokio::time::advance(ms(290)).await;
    for i in 1..=2 {
        assert_eq!(poll!(s.next()), Poll::Ready(Some(i)));
        times.push(start.elapsed());
    }
    for _ in 0..20 {
        s.next().await;
        times.push(start.elapsed());
    }
    // On schedule (300, 400, …), except the item due at 1200 ms: (200 ms, 1200 ms] already
    // holds 11 = rate + burst items, so it waits until the two of 290 ms leave the window
    // (1290 ms, plus the window's 1 ms safety margin, rounded up to tokio's 1 ms tick).
    assert_eq!(&times[..4], [ms(0), ms(290), ms(290), ms(300)]);
    assert_eq!(times[11], ms(1100));
    assert_eq!(times[12], ms(1292));
    assert_eq!(times[13], ms(1300));
    assert_eq!(max_arrivals_within(&times, Duration::from_secs(1)), 11);
    // The long-run rate is kept: the last item is on its slot.
    assert_eq!(times[22], ms(2200));
}

#[tokio::test(start_paused = true)]
async fn a_period_of_duration_max_does_not_overflow() {
    let mut s = std::pin::pin!(stream::iter(0..3).rate_limit(Rate::per(1, Duration::MAX)));
    assert_eq!(s.next().await, Some(0));
    assert!(futures::poll!(s.next()).is_pending());
}
