//! Overflow strategies in front of a slow consumer (backpressure, drop oldest, drop newest,
//! fail) and `conflate`/`latest`: nothing is lost without being counted, the producer task is
//! aborted on drop, panics reach the consumer. A fast source (an item every 1 ms) meets a slow
//! consumer (10 ms per item) under paused time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::prelude::*;
use millrace::testing::{HANG_BOUND, Step, alive_tasks, scripted};
use millrace::wrappers::Overflowed;

const MS: Duration = Duration::from_millis(1);
const N: u32 = 50;

/// `0..N`, one item per ms.
fn fast() -> impl Stream<Item = u32> + Send + 'static {
    scripted((0..N).flat_map(|i| [Step::Delay(MS), Step::Item(i)]))
}

/// Consumes with 10 ms of work per item, on a spawned task bounded by the hang guard.
async fn slowly<S>(s: S) -> Vec<S::Item>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    let h = tokio::spawn(
        s.then(|x| async move {
            tokio::time::sleep(10 * MS).await;
            x
        })
        .collect::<Vec<_>>(),
    );
    tokio::time::timeout(HANG_BOUND, h)
        .await
        .expect("consumer hung")
        .unwrap()
}

fn increasing(v: &[u32]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

#[tokio::test(start_paused = true)]
async fn backpressure_loses_nothing() {
    let s = fast().on_overflow(4, Overflow::Backpressure);
    let dropped = s.drop_counter();
    assert_eq!(slowly(s).await, (0..N).collect::<Vec<_>>());
    assert_eq!(dropped.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn drop_oldest_keeps_the_newest_and_counts_the_rest() {
    let s = fast().on_overflow(4, Overflow::DropOldest);
    let dropped = s.drop_counter();
    let out = slowly(s).await;
    assert!(increasing(&out));
    assert_eq!(out.len() as u64 + dropped.get(), u64::from(N));
    assert!(dropped.get() > 0);
    assert_eq!(
        &out[out.len() - 4..],
        [N - 4, N - 3, N - 2, N - 1],
        "the newest 4 survive"
    );
}

#[tokio::test(start_paused = true)]
async fn drop_newest_keeps_the_buffered_and_counts_the_rest() {
    let s = fast().on_overflow(4, Overflow::DropNewest);
    let dropped = s.drop_counter();
    let out = slowly(s).await;
    assert!(increasing(&out));
    assert_eq!(out.len() as u64 + dropped.get(), u64::from(N));
    assert!(dropped.get() > 0);
    assert_eq!(
        &out[..5],
        [0, 1, 2, 3, 4],
        "the first items are never dropped"
    );
    assert!(
        !out.contains(&(N - 1)),
        "the newest arrive while the buffer is full"
    );
}

#[tokio::test(start_paused = true)]
async fn fail_delivers_what_was_buffered_then_the_error() {
    let s = fast().fail_on_overflow(4);
    let out = slowly(s).await;
    let (last, items) = out.split_last().unwrap();
    assert_eq!(*last, Err(Overflowed { capacity: 4 }));
    let items: Vec<u32> = items.iter().map(|r| *r.as_ref().unwrap()).collect();
    assert_eq!(
        items,
        (0..items.len() as u32).collect::<Vec<_>>(),
        "a prefix, in order"
    );
    assert!(items.len() < N as usize);
}

#[tokio::test(start_paused = true)]
async fn conflate_merges_while_the_consumer_is_busy() {
    let s = fast().conflate(|a, b| a + b);
    let merged = s.drop_counter();
    let out = slowly(s).await;
    assert_eq!(
        out.iter().sum::<u32>(),
        (0..N).sum::<u32>(),
        "nothing lost from the sum"
    );
    assert_eq!(out.len() as u64 + merged.get(), u64::from(N));
    assert!(out.len() < 10, "about one output per 10 ms: {out:?}");
}

#[tokio::test(start_paused = true)]
async fn latest_yields_the_newest_value() {
    let s = fast().latest();
    let replaced = s.drop_counter();
    let out = slowly(s).await;
    assert!(increasing(&out));
    assert_eq!(out.last(), Some(&(N - 1)));
    assert_eq!(out.len() as u64 + replaced.get(), u64::from(N));
}

#[tokio::test(start_paused = true)]
async fn upstream_panic_comes_after_the_buffered_items() {
    let src = scripted([Step::Item(1), Step::Item(2), Step::Panic("feed broke")]);
    let seen = Arc::new(AtomicUsize::new(0));
    let s2 = Arc::clone(&seen);
    let h = tokio::spawn(src.on_overflow(8, Overflow::DropOldest).for_each(move |_| {
        s2.fetch_add(1, Ordering::SeqCst);
        async {}
    }));
    let err = tokio::time::timeout(HANG_BOUND, h)
        .await
        .unwrap()
        .unwrap_err();
    let payload = err.into_panic();
    let msg = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied());
    assert_eq!(msg, Some("feed broke"));
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn drop_aborts_the_producer() {
    let before = alive_tasks();
    let mut s = Box::pin(stream::pending::<u32>().on_overflow(2, Overflow::DropNewest));
    assert!(futures::poll!(s.next()).is_pending());
    assert_eq!(alive_tasks(), before + 1);
    drop(s);
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
    assert_eq!(alive_tasks(), before);
}

#[test]
fn zero_capacity_is_rejected() {
    let r = std::panic::catch_unwind(|| stream::iter([1]).on_overflow(0, Overflow::DropOldest));
    let msg = *r.unwrap_err().downcast::<String>().unwrap();
    assert_eq!(
        msg,
        "`on_overflow`: `capacity` must be at least 1, got 0; pass a non-zero value"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_merge_reaches_the_consumer() {
    // All three items are ready at once: the producer merges while the consumer waits.
    let s = stream::iter([1u32, 2, 3]).conflate(|a, b| {
        assert!(b != 3, "merge refused 3");
        a + b
    });
    let h = tokio::spawn(s.collect::<Vec<_>>());
    let err = tokio::time::timeout(HANG_BOUND, h)
        .await
        .unwrap()
        .unwrap_err();
    let payload = err.into_panic();
    assert_eq!(
        payload.downcast_ref::<&str>().copied(),
        Some("merge refused 3")
    );
}
