//! `prefetch(n)`: production on its own task overlaps consumption, bounded to `n` items ahead,
//! in order, panics and errors delivered, the task aborted on drop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::prelude::*;
use millrace::testing::{DropCounter, Step, alive_tasks, conformance, consume, scripted};
use millrace::wrappers::{Prefetch, PrefetchStage};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

fn assert_send<T: Send>(_: &T) {}

async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// A ready source that counts the items pulled from it.
fn counted(n: u32) -> (impl Stream<Item = u32> + Send + 'static, Arc<AtomicUsize>) {
    let produced = Arc::new(AtomicUsize::new(0));
    let p = Arc::clone(&produced);
    let s = stream::iter(0..n).inspect(move |_| {
        p.fetch_add(1, Ordering::SeqCst);
    });
    (s, produced)
}

#[tokio::test(start_paused = true)]
async fn order_preserved_and_conformance() {
    let out: Vec<u32> = stream::iter(0..10_000).prefetch(7).collect().await;
    assert_eq!(out, (0..10_000).collect::<Vec<_>>());
    conformance(
        || {
            scripted([
                Step::Item(1),
                Step::Item(2),
                Step::Delay(10 * MS),
                Step::Item(3),
                Step::Pending,
                Step::Item(4),
            ])
            .prefetch(2)
        },
        vec![1, 2, 3, 4],
    )
    .await;
    conformance(
        || scripted((0..300).map(Step::Item)).prefetch(1000),
        (0..300).collect(),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn production_overlaps_consumption() {
    // Producer: 10 ms per item. Consumer: 10 ms per item. 100 items.
    let steps = (0..100).flat_map(|i| [Step::Delay(10 * MS), Step::Item(i)]);
    let start = Instant::now();
    let mut s = scripted(steps).prefetch(4);
    let mut got = Vec::new();
    while let Some(x) = s.next().await {
        got.push(x);
        tokio::time::sleep(10 * MS).await;
    }
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    // Sequentially this would take 2000 ms; overlapped, the first item at 10 ms and then one
    // per 10 ms: 1010 ms.
    assert_eq!(start.elapsed(), 1010 * MS);
}

#[tokio::test(start_paused = true)]
async fn bound_is_exactly_capacity_ahead_of_a_stalled_consumer() {
    let (source, produced) = counted(1000);
    let mut s = source.prefetch(10); // chunks of 10 / 2 = 5
    // The first poll starts the producer; nothing is pulled before it.
    settle().await;
    assert_eq!(produced.load(Ordering::SeqCst), 0);
    assert!(futures::poll!(s.next()).is_pending());
    settle().await;
    assert_eq!(produced.load(Ordering::SeqCst), 10, "consumer took 0");

    let mut consumed = 0;
    // (items to take, then the exact count pulled from the upstream once everything settles)
    for (take, expected) in [(3, 10), (2, 15), (2, 15), (3, 20), (10, 30)] {
        for _ in 0..take {
            assert_eq!(s.next().await, Some(consumed));
            consumed += 1;
        }
        settle().await;
        let pulled = produced.load(Ordering::SeqCst);
        assert_eq!(pulled, expected, "after the consumer took {consumed}");
        assert!(pulled - consumed as usize <= 10);
    }
}

#[tokio::test(start_paused = true)]
async fn bound_with_a_slow_producer_is_exactly_capacity() {
    // A producer whose every item follows a pause sends one-item chunks; a consumer that takes
    // three items and then stalls leaves it exactly 4 ahead.
    let produced = Arc::new(AtomicUsize::new(0));
    let p = Arc::clone(&produced);
    let steps = (0..100).flat_map(|i| [Step::Delay(MS), Step::Item(i)]);
    let mut s = scripted(steps)
        .inspect(move |_| {
            p.fetch_add(1, Ordering::SeqCst);
        })
        .prefetch(4);
    for i in 0..3 {
        assert_eq!(s.next().await, Some(i));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(produced.load(Ordering::SeqCst), 3 + 4);
}

#[tokio::test(start_paused = true)]
async fn drop_aborts_the_task_and_releases_the_upstream() {
    let before = alive_tasks();
    let counter = DropCounter::new();
    let token = counter.token();
    let source = scripted([Step::Item(1), Step::Item(2), Step::Hang]).map(move |x| {
        let _keep = &token;
        x
    });
    let mut s = source.prefetch(4);
    assert_eq!(s.next().await, Some(1));
    settle().await;
    assert_eq!(alive_tasks(), before + 1);
    assert_eq!(counter.alive(), 1);
    drop(s);
    settle().await;
    assert_eq!(alive_tasks(), before);
    assert_eq!(counter.alive(), 0);
}

#[tokio::test(start_paused = true)]
async fn drop_before_first_poll_spawns_nothing() {
    let before = alive_tasks();
    let counter = DropCounter::new();
    let token = counter.token();
    let s = stream::iter([1]).map(move |x| {
        let _keep = &token;
        x
    });
    let s = s.prefetch(4);
    assert_eq!(alive_tasks(), before);
    drop(s);
    assert_eq!(counter.alive(), 0);
}

async fn items_then_panic(steps: Vec<Step<u32>>) -> (Vec<u32>, String) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&got);
    let mut s = scripted(steps).prefetch(8);
    let consumer = tokio::spawn(async move {
        while let Some(x) = s.next().await {
            sink.lock().unwrap().push(x);
        }
    });
    let err = consumer
        .await
        .expect_err("the upstream panic must reach the consumer");
    let payload = err.into_panic();
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap();
    let got = got.lock().unwrap().clone();
    (got, msg)
}

#[tokio::test(start_paused = true)]
async fn upstream_panic_reaches_consumer_after_earlier_items() {
    // Items ready in the same chunk as the panic are not lost.
    let (got, msg) =
        items_then_panic(vec![Step::Item(1), Step::Item(2), Step::Panic("boom")]).await;
    assert_eq!((got, msg.as_str()), (vec![1, 2], "boom"));
    // And across chunks.
    let (got, msg) = items_then_panic(vec![
        Step::Item(1),
        Step::Delay(5 * MS),
        Step::Item(2),
        Step::Item(3),
        Step::Panic("boom"),
    ])
    .await;
    assert_eq!((got, msg.as_str()), (vec![1, 2, 3], "boom"));
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "boom")]
async fn upstream_panic_is_not_a_normal_end() {
    let _ = consume(scripted([Step::Item(1), Step::Panic("boom")]).prefetch(2)).await;
}

#[tokio::test(start_paused = true)]
async fn errors_are_items_in_order() {
    let source = scripted([
        Step::ok(1),
        Step::err("first"),
        Step::Delay(MS),
        Step::ok(2),
        Step::err("second"),
    ]);
    let out: Vec<Result<u32, &str>> = source.prefetch(3).collect().await;
    assert_eq!(out, [Ok(1), Err("first"), Ok(2), Err("second")]);
}

#[tokio::test(start_paused = true)]
async fn size_hint_is_honest_while_running() {
    let mut s = stream::iter(0..10).prefetch(4);
    assert_eq!(s.size_hint(), (10, Some(10)));
    assert_eq!(s.next().await, Some(0));
    assert_eq!(s.size_hint(), (9, Some(9)));
    let rest: Vec<_> = s.by_ref().collect().await;
    assert_eq!(rest.len(), 9);
    assert_eq!(s.size_hint(), (0, Some(0)));
    assert!(s.is_terminated());
}

#[tokio::test(start_paused = true)]
async fn stage_matches_method() {
    let out: Vec<u8> = stream::iter(0..50u8)
        .wrap(PrefetchStage::new(3))
        .collect()
        .await;
    assert_eq!(out, (0..50).collect::<Vec<_>>());
}

#[test]
fn construction_outside_a_runtime_is_fine() {
    let s = stream::iter(0..3).prefetch(2);
    assert_eq!(s.capacity(), 2);
    assert_send(&s);
    fn assert_unpin<T: Unpin>(_: &T) {}
    assert_unpin(&s);
}

#[test]
#[should_panic(
    expected = "`prefetch`: `capacity` must be at least 1, got 0; pass a non-zero value"
)]
fn zero_capacity_panics() {
    let _ = stream::iter([1]).prefetch(0);
}

#[test]
#[should_panic(expected = "`prefetch`: `capacity` must be at least 1, got 0")]
fn zero_stage_panics() {
    let _ = PrefetchStage::new(0);
}

#[test]
fn try_new_returns_the_error() {
    let err = Prefetch::checked_new(stream::iter([1]), 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`prefetch`: `capacity` must be at least 1, got 0; pass a non-zero value"
    );
    assert!(PrefetchStage::checked_new(0).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_preserved_on_a_multi_thread_runtime() {
    let (source, produced) = counted(100_000);
    let out: Vec<u32> = source.prefetch(64).collect().await;
    assert_eq!(out, (0..100_000).collect::<Vec<_>>());
    assert_eq!(produced.load(Ordering::SeqCst), 100_000);
}

#[test]
#[should_panic(expected = "must be called from the context of a Tokio 1.x runtime")]
fn polling_outside_a_runtime_panics_and_does_not_abort() {
    // The producer is spawned by the first poll (lazily, from the out-of-line slow path);
    // without a runtime `tokio::spawn` panics, and that panic must reach the caller.
    let mut s = stream::iter(0..3).prefetch(2);
    let _ = futures::executor::block_on(s.next());
}
