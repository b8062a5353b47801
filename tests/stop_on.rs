//! `stop_on(token)`: graceful shutdown; stops pulling once the token fires, wakes a pending
//! consumer, and lets items already in flight downstream drain.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::prelude::*;
use millrace::testing::{DropCounter, Step, conformance, consume, scripted};
use millrace::wrappers::{StopOn, StopOnStage};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

fn assert_send<T: Send>(_: &T) {}

#[tokio::test(start_paused = true)]
async fn stops_pulling_after_cancel() {
    let pulled = Arc::new(AtomicU32::new(0));
    let p = Arc::clone(&pulled);
    let token = CancellationToken::new();
    let mut s = stream::iter(0..)
        .inspect(move |_| {
            p.fetch_add(1, Ordering::SeqCst);
        })
        .stop_on(token.clone());
    assert_eq!(s.next().await, Some(0));
    assert_eq!(s.next().await, Some(1));
    token.cancel();
    assert_eq!(s.next().await, None);
    assert!(s.is_terminated());
    assert_eq!(s.next().await, None);
    assert_eq!(pulled.load(Ordering::SeqCst), 2);
    assert_eq!(s.size_hint(), (0, Some(0)));
}

#[tokio::test(start_paused = true)]
async fn cancel_wakes_a_pending_consumer() {
    let token = CancellationToken::new();
    let s = scripted([Step::Item(1), Step::Item(2), Step::Hang]).stop_on(token.clone());
    let start = Instant::now();
    let consumer = tokio::spawn(async move {
        let out: Vec<u32> = s.collect().await;
        (out, start.elapsed())
    });
    tokio::time::sleep(50 * MS).await;
    assert!(
        !consumer.is_finished(),
        "the upstream hangs until the cancel"
    );
    token.cancel();
    let (out, ended) = tokio::time::timeout(Duration::from_secs(1), consumer)
        .await
        .expect("the cancel must wake the consumer")
        .unwrap();
    assert_eq!(out, [1, 2]);
    assert_eq!(ended, 50 * MS);
}

#[tokio::test(start_paused = true)]
async fn in_flight_items_drain_when_placed_after_the_source() {
    let pulled = Arc::new(AtomicU32::new(0));
    let p = Arc::clone(&pulled);
    let token = CancellationToken::new();
    let cancel = token.clone();
    let s = stream::iter(0u32..)
        .inspect(move |_| {
            p.fetch_add(1, Ordering::SeqCst);
        })
        .stop_on(token) // right after the source
        .map(|x| async move {
            tokio::time::sleep(Duration::from_millis(10 + u64::from(x % 7))).await;
            x
        })
        .buffer_unordered(8)
        .then(move |x| {
            if x == 20 {
                cancel.cancel();
            }
            async move { x }
        });
    let out = consume(s).await;
    let pulled = pulled.load(Ordering::SeqCst);
    assert!(pulled > 20 && pulled <= 20 + 8 + 8, "pulled {pulled}");
    // Every item pulled before the cancel came out: none was lost, none was extra.
    let got: BTreeSet<u32> = out.iter().copied().collect();
    assert_eq!(got.len(), out.len());
    assert_eq!(got, (0..pulled).collect::<BTreeSet<_>>());
}

#[tokio::test(start_paused = true)]
async fn upstream_end_ends_without_cancel() {
    let token = CancellationToken::new();
    conformance(
        || scripted([Step::Item(1), Step::Delay(5 * MS), Step::Item(2)]).stop_on(token.clone()),
        vec![1, 2],
    )
    .await;
    assert!(!token.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn conformance_when_cancelled_before_start() {
    let token = CancellationToken::new();
    token.cancel();
    conformance(
        || scripted([Step::Item(1), Step::Item(2)]).stop_on(token.clone()),
        vec![],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn stage_matches_method_and_clones_share_the_token() {
    let token = CancellationToken::new();
    let stage = StopOnStage::new(token.clone());
    let a = stream::iter([1, 2]).wrap(stage.clone());
    let b = stream::iter([3, 4]).wrap(stage);
    token.cancel();
    assert_eq!(consume(a).await, Vec::<i32>::new());
    assert_eq!(consume(b).await, Vec::<i32>::new());
}

#[tokio::test(start_paused = true)]
async fn drop_releases_the_upstream() {
    let counter = DropCounter::new();
    let token = counter.token();
    let s = stream::iter([1]).map(move |x| {
        let _keep = &token;
        x
    });
    let s = s.stop_on(CancellationToken::new());
    assert_eq!(counter.alive(), 1);
    drop(s);
    assert_eq!(counter.alive(), 0);
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "boom")]
async fn upstream_panic_reaches_consumer() {
    let _ =
        consume(scripted([Step::Item(1), Step::Panic("boom")]).stop_on(CancellationToken::new()))
            .await;
}

#[test]
fn send_unpin_and_accessors() {
    fn assert_unpin<T: Unpin>(_: &T) {}
    let token = CancellationToken::new();
    let s = StopOn::new(stream::iter([1, 2, 3]), token.clone());
    assert_send(&s);
    assert_unpin(&s);
    assert_eq!(s.size_hint(), (0, Some(3)));
    assert!(!s.token().is_cancelled());
    let inner = s.into_inner();
    assert_eq!(inner.size_hint(), (3, Some(3)));
}
