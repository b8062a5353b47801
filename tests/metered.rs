//! `metered(name)` / `metered_in(&metrics, name)`: lock-free per-stage counters, readable live.

use std::time::Duration;

use futures::StreamExt;
use millrace::metrics::{StageMetrics, StageSnapshot};
use millrace::prelude::*;
use millrace::testing::{DropCounter, Step, conformance, consume, scripted};
use millrace::wrappers::{Metered, MeteredStage};

fn script() -> Vec<Step<Result<u32, String>>> {
    vec![
        Step::ok(1),
        Step::Pending,
        Step::err("bad row".to_owned()),
        Step::Pending,
        Step::Pending,
        Step::ok(3),
        Step::err("bad row".to_owned()),
    ]
}

#[tokio::test(start_paused = true)]
async fn counters_are_exact_for_a_scripted_source() {
    let s = scripted(script()).metered("rows").count_errors();
    let m = s.metrics();
    let out = consume(s).await;
    assert_eq!(out.len(), 4);
    let snap = m.snapshot();
    assert_eq!(snap.name, "rows");
    assert_eq!(snap.items, 4);
    assert_eq!(snap.pending_polls, 3);
    assert_eq!(snap.polls, 4 + 3 + 1, "items + pendings + the final None");
    assert_eq!(snap.errors, Some(2));
    assert_eq!(snap.busy, None);
    assert!(snap.finished);
}

#[tokio::test(start_paused = true)]
async fn errors_are_not_counted_unless_asked() {
    let s = scripted(script()).metered("rows");
    let m = s.metrics();
    let _ = consume(s).await;
    assert_eq!(m.snapshot().errors, None);
    assert_eq!(m.snapshot().items, 4);
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_is_live_while_the_stream_runs() {
    let s = scripted([
        Step::Item(1),
        Step::Delay(Duration::from_millis(100)),
        Step::Item(2),
        Step::Hang,
    ])
    .metered("live");
    let m = s.metrics();
    let consumer = tokio::spawn(s.collect::<Vec<_>>());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let snap = m.snapshot();
    assert_eq!(
        (snap.items, snap.pending_polls, snap.finished),
        (1, 1, false)
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let snap = m.snapshot();
    assert_eq!(
        (snap.items, snap.pending_polls, snap.finished),
        (2, 2, false)
    );
    consumer.abort();
    let _ = consumer.await;
    // The handle outlives the stream.
    assert_eq!(m.snapshot().items, 2);
}

#[tokio::test(start_paused = true)]
async fn the_registry_lists_stages_in_insertion_order() {
    let metrics = Metrics::new();
    let s = scripted((0..10u32).map(Step::Item))
        .metered_in(&metrics, "source")
        .filter(|x| std::future::ready(x % 3 == 0))
        .metered_in(&metrics, "every third")
        .metered_in(&metrics, "after wrap");
    assert_eq!(consume(s).await, [0, 3, 6, 9]);
    let snap: Vec<(String, u64, bool)> = metrics
        .snapshot()
        .into_iter()
        .map(|s| (s.name, s.items, s.finished))
        .collect();
    assert_eq!(
        snap,
        [
            ("source".to_owned(), 10, true),
            ("every third".to_owned(), 4, true),
            ("after wrap".to_owned(), 4, true),
        ]
    );
    let clone = metrics.clone();
    assert_eq!(clone.stages().len(), 3, "clones share one registry");
}

// `registered_in` is deprecated (use `metered_in`) but must keep registering per wrap.
#[allow(deprecated)]
#[tokio::test(start_paused = true)]
async fn each_wrap_of_a_stage_gets_its_own_counters() {
    let metrics = Metrics::new();
    let stage = MeteredStage::new("shard")
        .registered_in(&metrics)
        .count_errors();
    let a = scripted([Step::ok(1), Step::err(())]).wrap(stage.clone());
    let b = scripted([Step::<Result<u8, ()>>::ok(1)]).wrap(stage);
    let _ = consume(a).await;
    let _ = consume(b).await;
    let snap = metrics.snapshot();
    assert_eq!(snap.len(), 2);
    assert_eq!(
        (snap[0].items, snap[0].errors, snap[1].items, snap[1].errors),
        (2, Some(1), 1, Some(0))
    );
}

#[tokio::test(start_paused = true)]
async fn timing_is_opt_in_and_measures_time_inside_the_upstream() {
    let busy_upstream = scripted((0..200u64).map(Step::Item)).map(|x| {
        // Real CPU work, so that the real clock moves while the upstream is polled.
        (0..2_000u64).fold(x, |a, b| std::hint::black_box(a ^ b))
    });
    let s = busy_upstream.metered("cpu").with_timing();
    let m = s.metrics();
    let _ = consume(s).await;
    let busy = m.snapshot().busy.expect("timing is on");
    assert!(busy > Duration::ZERO, "busy = {busy:?}");
}

#[tokio::test(start_paused = true)]
async fn conformance_metered() {
    conformance(
        || scripted((0..5u32).map(Step::Item)).metered("c"),
        vec![0, 1, 2, 3, 4],
    )
    .await;
    conformance(
        || {
            scripted([Step::ok(1), Step::err("e"), Step::ok(2)])
                .metered("c")
                .count_errors()
                .with_timing()
        },
        vec![Ok(1), Err("e"), Ok(2)],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn dropping_releases_the_upstream_but_not_the_handle() {
    let counter = DropCounter::new();
    let token = counter.token();
    let s = scripted([Step::Item(1)]).map(move |x| {
        let _keep = &token;
        x
    });
    let metered = s.metered("m");
    let handle = metered.metrics();
    assert_eq!(counter.alive(), 1);
    drop(metered);
    assert_eq!(counter.alive(), 0);
    assert_eq!(handle.snapshot().items, 0);
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "boom")]
async fn a_panic_upstream_reaches_the_consumer() {
    let _ = consume(scripted([Step::Item(1), Step::Panic("boom")]).metered("p")).await;
}

#[test]
fn handles_and_wrappers_are_send_and_sync() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_sync<T: Sync>(_: &T) {}
    let metrics = Metrics::new();
    let s: Metered<_> = scripted([Step::Item(1u8)]).metered_in(&metrics, "s");
    let handle: StageMetrics = s.metrics();
    let snap: StageSnapshot = handle.snapshot();
    assert_send(&s);
    assert_sync(&s);
    assert_send(&metrics);
    assert_sync(&metrics);
    assert_send(&handle);
    assert_sync(&handle);
    assert_send(&snap);
    assert_sync(&snap);
    assert_send(&MeteredStage::new("x").count_errors());
}

#[tokio::test]
async fn every_item_is_visible_as_soon_as_it_is_yielded() {
    // A source that never returns `Pending`: the count is exact after each item, not only
    // when the stage waits or ends.
    let mut s = futures::stream::iter(0..200u32).metered("busy");
    let m = s.metrics();
    for k in 1..=200u64 {
        assert!(s.next().await.is_some());
        assert_eq!(m.snapshot().items, k);
    }
    assert_eq!(s.next().await, None);
    let snap = m.snapshot();
    assert_eq!((snap.items, snap.finished), (200, true));
}

#[tokio::test]
async fn counts_stay_exact_when_the_consumer_stops_early() {
    let metrics = Metrics::new();
    let taken: Vec<u32> = futures::stream::iter(0..1_000u32)
        .metered_in(&metrics, "source")
        .take(7)
        .collect()
        .await;
    assert_eq!(taken.len(), 7);
    // The stage was dropped mid-stream, never having ended.
    let snap = &metrics.snapshot()[0];
    assert_eq!((snap.items, snap.finished), (7, false));
}

#[test]
fn a_counting_stage_holds_only_its_counters() {
    // A counting stage has no span, clock or flag fields (timing and tracing are the `Timed`
    // and `Traced` layers): one `Arc` beside the upstream.
    type Upstream = futures::stream::Iter<std::ops::Range<u64>>;
    assert_eq!(
        std::mem::size_of::<Metered<Upstream>>(),
        std::mem::size_of::<Upstream>() + std::mem::size_of::<usize>()
    );
}
