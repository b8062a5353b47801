//! In-flight and buffered gauges reported by `prefetch` and `map_concurrent` (spawned and
//! local) themselves:
//! the accessors, `.metered(..).with_events()` and `pipeline!` fill `in_flight`/`buffered`.

use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::Metrics;
use millrace::prelude::*;
use millrace::testing::{Step, scripted};
use tokio::time::sleep;

/// Lets spawned tasks run (virtual time, so exact).
async fn settle() {
    sleep(Duration::from_millis(1)).await;
}

#[tokio::test(start_paused = true)]
async fn prefetch_buffers_exactly_capacity_when_the_consumer_stops() {
    let mut s = stream::iter(0..100u32)
        .prefetch(8)
        .metered("ahead")
        .with_events();
    let m = s.metrics();
    assert_eq!(m.snapshot().buffered, Some(0), "idle: nothing produced");
    assert_eq!(s.get_ref().buffered_len(), 0);

    // Chunks of min(8 / 2, 128) = 4: one whole chunk yielded, then the consumer stops.
    for want in 0..4 {
        assert_eq!(s.next().await, Some(want));
    }
    settle().await;
    assert_eq!(m.snapshot().buffered, Some(8));
    assert_eq!(s.get_ref().buffered_len(), 8);

    // Mid-chunk: the accessor is exact, the gauge counts the chunk in hand until its end.
    assert_eq!(s.next().await, Some(4));
    settle().await;
    assert_eq!(s.get_ref().buffered_len(), 7);
    assert_eq!(m.snapshot().buffered, Some(8));

    drop(s);
    assert_eq!(
        m.snapshot().buffered,
        Some(0),
        "dropped: nothing is buffered"
    );
}

#[tokio::test(start_paused = true)]
async fn prefetch_counts_items_not_reserved_slots() {
    // Two items, then an upstream that never answers: the producer reserves slots for the
    // next chunk, but only the two items are buffered.
    let mut s = scripted([Step::Item(0u32), Step::Item(1), Step::Hang])
        .prefetch(8)
        .metered("slow")
        .with_events();
    let m = s.metrics();
    assert_eq!(s.next().await, Some(0));
    settle().await;
    assert_eq!(s.get_ref().buffered_len(), 1);
    assert_eq!(m.snapshot().buffered, Some(2));
    assert_eq!(s.next().await, Some(1));
    assert_eq!(s.get_ref().buffered_len(), 0);
    assert_eq!(m.snapshot().buffered, Some(0));
}

#[tokio::test(start_paused = true)]
async fn prefetch_buffers_nothing_after_the_end() {
    let s = stream::iter(0..20u32)
        .prefetch(4)
        .metered("all")
        .with_events();
    let m = s.metrics();
    assert_eq!(s.collect::<Vec<_>>().await, (0..20).collect::<Vec<_>>());
    let snap = m.snapshot();
    assert_eq!(
        (snap.items, snap.buffered, snap.finished),
        (20, Some(0), true)
    );
}

/// Sleeps `ms` milliseconds, then returns `ms`.
async fn sleeper(ms: u64) -> u64 {
    sleep(Duration::from_millis(ms)).await;
    ms
}

#[tokio::test(start_paused = true)]
async fn map_concurrent_reports_in_flight_while_futures_sleep() {
    let metrics = Metrics::new();
    let s = stream::iter(0..6u64)
        .map_concurrent(3, |i| async move {
            sleep(Duration::from_millis(100)).await;
            i
        })
        .metered_in(&metrics, "fetch")
        .with_events();
    let m = s.metrics();
    let snap = m.snapshot();
    assert_eq!((snap.in_flight, snap.buffered), (Some(0), Some(0)));

    let start = tokio::time::Instant::now();
    let consumer = tokio::spawn(s.collect::<Vec<_>>());
    sleep(Duration::from_millis(50)).await;
    let snap = m.snapshot();
    assert_eq!((snap.in_flight, snap.buffered), (Some(3), Some(0)));
    sleep(Duration::from_millis(100)).await; // t = 150 ms: 0..3 done, 3..6 started at 100
    let snap = m.snapshot();
    assert_eq!(
        (snap.items, snap.in_flight, snap.buffered),
        (3, Some(3), Some(0))
    );

    assert_eq!(consumer.await.unwrap(), (0..6).collect::<Vec<_>>());
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    let snap = &metrics.snapshot()[0];
    assert_eq!((snap.in_flight, snap.buffered), (Some(0), Some(0)));
}

#[tokio::test(start_paused = true)]
async fn map_concurrent_ordered_buffers_results_behind_a_slow_head() {
    let mut s = stream::iter([300u64, 100, 200])
        .map_concurrent(3, sleeper)
        .metered("ordered")
        .with_events();
    let m = s.metrics();
    assert!(futures::poll!(s.next()).is_pending());
    assert_eq!(
        (s.get_ref().in_flight(), s.get_ref().buffered_len()),
        (3, 0)
    );

    sleep(Duration::from_millis(250)).await;
    assert_eq!(
        (s.get_ref().in_flight(), s.get_ref().buffered_len()),
        (1, 2)
    );
    let snap = m.snapshot();
    assert_eq!((snap.in_flight, snap.buffered), (Some(1), Some(2)));

    assert_eq!(s.next().await, Some(300));
    assert_eq!(
        (s.get_ref().in_flight(), s.get_ref().buffered_len()),
        (0, 2)
    );
    assert_eq!(s.next().await, Some(100));
    assert_eq!(
        (s.get_ref().in_flight(), s.get_ref().buffered_len()),
        (0, 1)
    );
    assert_eq!(s.next().await, Some(200));
    assert_eq!(s.next().await, None);
    let snap = m.snapshot();
    assert_eq!((snap.in_flight, snap.buffered), (Some(0), Some(0)));
}

#[tokio::test(start_paused = true)]
async fn map_concurrent_unordered_buffers_completed_results_until_asked() {
    let mut s = stream::iter([300u64, 100, 200]).map_concurrent_unordered(3, sleeper);
    assert!(futures::poll!(s.next()).is_pending());
    sleep(Duration::from_millis(150)).await;
    assert_eq!((s.in_flight(), s.buffered_len()), (2, 1));
    sleep(Duration::from_millis(200)).await; // t = 350 ms: all done, none asked for
    assert_eq!((s.in_flight(), s.buffered_len()), (0, 3));
    assert_eq!(s.next().await, Some(100));
    assert_eq!((s.in_flight(), s.buffered_len()), (0, 2));
    assert_eq!(s.collect::<Vec<_>>().await, [200, 300]);
}

#[tokio::test(start_paused = true)]
async fn map_concurrent_gauges_fall_to_zero_when_dropped() {
    let mut s = stream::iter(0..10u64)
        .map_concurrent(4, |_| sleeper(1_000))
        .metered("dropped")
        .with_events();
    let m = s.metrics();
    assert!(futures::poll!(s.next()).is_pending());
    assert_eq!(m.snapshot().in_flight, Some(4));
    drop(s);
    for _ in 0..4 {
        tokio::task::yield_now().await; // the aborted tasks drop their futures
    }
    let snap = m.snapshot();
    assert_eq!((snap.in_flight, snap.buffered), (Some(0), Some(0)));
}

#[tokio::test(start_paused = true)]
async fn try_map_concurrent_reports_its_inner_gauges() {
    let mut s = stream::iter([100u64, 200])
        .try_map_concurrent(2, |ms| async move { Ok::<_, ()>(sleeper(ms).await) })
        .metered("checked")
        .with_events();
    let m = s.metrics();
    assert!(futures::poll!(s.next()).is_pending());
    assert_eq!(m.snapshot().in_flight, Some(2));
    assert_eq!(s.next().await, Some(Ok(100)));
    assert_eq!(m.snapshot().in_flight, Some(1));
}

#[tokio::test(start_paused = true)]
async fn pipeline_adopts_the_gauges_of_its_stages() {
    let metrics = Metrics::new();
    let mut s = pipeline! {
        metrics = &metrics;
        stream::iter(0..100u64)
        => .prefetch(8)
        => .map_concurrent(2, |x| sleeper(1_000 + x))
    };
    assert!(futures::poll!(s.next()).is_pending()); // starts the producer
    settle().await;
    assert!(futures::poll!(s.next()).is_pending()); // starts two futures
    settle().await;
    let by_name = |name: &str| {
        metrics
            .snapshot()
            .into_iter()
            .find(|snap| snap.name == name)
            .unwrap_or_else(|| panic!("no stage named {name}"))
    };
    let prefetch = by_name("prefetch");
    // 2 items pulled into map_concurrent from the first chunk of 4, which keeps its slots
    // until its last item is yielded: the gauge (per chunk) says 8, the exact count is 6.
    assert_eq!((prefetch.buffered, prefetch.in_flight), (Some(8), None));
    let mapped = by_name("map_concurrent");
    assert_eq!((mapped.in_flight, mapped.buffered), (Some(2), Some(0)));
}

#[tokio::test(start_paused = true)]
async fn map_concurrent_local_ordered_reports_in_flight_and_buffered() {
    let mut s = stream::iter([300u64, 100, 200, 20])
        .map_concurrent_local(3, sleeper)
        .metered("local")
        .with_events();
    let m = s.metrics();
    let snap = m.snapshot();
    assert_eq!((snap.in_flight, snap.buffered), (Some(0), Some(0)));

    assert!(futures::poll!(s.next()).is_pending());
    assert_eq!(
        (s.get_ref().in_flight(), s.get_ref().buffered_len()),
        (3, 0)
    );
    let snap = m.snapshot();
    assert_eq!((snap.in_flight, snap.buffered), (Some(3), Some(0)));

    // Local futures run only while the stream is polled: at t = 250 ms the 100 and 200 ms
    // ones are done but unseen until the next poll, which buffers both behind the head.
    sleep(Duration::from_millis(250)).await;
    assert!(futures::poll!(s.next()).is_pending());
    assert_eq!(
        (s.get_ref().in_flight(), s.get_ref().buffered_len()),
        (2, 2)
    ); // 300 and the 4th item (20 ms, started once a slot freed) run; 100, 200 wait
    let snap = m.snapshot();
    assert_eq!((snap.in_flight, snap.buffered), (Some(2), Some(2)));

    assert_eq!(s.next().await, Some(300));
    let snap = m.snapshot();
    assert_eq!((snap.in_flight, snap.buffered), (Some(0), Some(3)));
    assert_eq!(s.collect::<Vec<_>>().await, [100, 200, 20]);
    let snap = m.snapshot();
    assert_eq!(
        (snap.items, snap.in_flight, snap.buffered),
        (4, Some(0), Some(0))
    );
}

#[tokio::test(start_paused = true)]
async fn map_concurrent_local_unordered_never_buffers() {
    let mut s = stream::iter([300u64, 100, 200])
        .map_concurrent_local_unordered(3, sleeper)
        .metered("local_unordered")
        .with_events();
    let m = s.metrics();
    assert!(futures::poll!(s.next()).is_pending());
    assert_eq!(m.snapshot().in_flight, Some(3));
    assert_eq!(s.next().await, Some(100));
    let snap = m.snapshot();
    assert_eq!((snap.in_flight, snap.buffered), (Some(2), Some(0)));
    assert_eq!(s.collect::<Vec<_>>().await, [200, 300]);
    let snap = m.snapshot();
    assert_eq!((snap.in_flight, snap.buffered), (Some(0), Some(0)));
}

#[tokio::test(start_paused = true)]
async fn pipeline_adopts_the_gauges_of_map_concurrent_local() {
    let metrics = Metrics::new();
    let mut s = pipeline! {
        metrics = &metrics;
        stream::iter(0..10u64)
        => .map_concurrent_local(4, |x| sleeper(1_000 + x))
    };
    assert!(futures::poll!(s.next()).is_pending());
    let mapped = metrics
        .snapshot()
        .into_iter()
        .find(|snap| snap.name == "map_concurrent_local")
        .expect("a stage named map_concurrent_local");
    assert_eq!((mapped.in_flight, mapped.buffered), (Some(4), Some(0)));
}
