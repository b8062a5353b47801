//! `batch(n)` / `batch_within(n, d)`: size-or-time batching, never empty, tail flushed.
//! `try_batch(n)` / `try_batch_within(n, d)`: the same over `Ok` items, an `Err` flushing the
//! partial batch before itself: `[[Ok1, Ok2], Err, [Ok3]]`.

use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::prelude::*;
use millrace::testing::{DropCounter, Step, conformance, record, scripted};
use millrace::wrappers::{Batch, BatchStage, TryBatch, TryBatchStage};

const MS: Duration = Duration::from_millis(1);

fn assert_send<T: Send>(_: &T) {}

#[tokio::test(start_paused = true)]
async fn exact_batches_by_size_and_tail_flushed() {
    let out: Vec<Vec<u32>> = stream::iter(0..7).batch(3).collect().await;
    assert_eq!(out, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
    let out: Vec<Vec<u32>> = stream::iter(0..6).batch(3).collect().await;
    assert_eq!(out, vec![vec![0, 1, 2], vec![3, 4, 5]]);
}

#[tokio::test(start_paused = true)]
async fn empty_upstream_yields_no_batch() {
    let out: Vec<Vec<u32>> = stream::iter(0..0).batch(3).collect().await;
    assert!(out.is_empty());
    let out: Vec<Vec<u32>> = stream::iter(0..0).batch_within(3, 100 * MS).collect().await;
    assert!(out.is_empty());
}

#[tokio::test(start_paused = true)]
async fn batches_by_time_with_exact_flush_instants() {
    // Items at t = 0, 10, 20 and 150 ms; the clock of a batch starts at its first item.
    let source = scripted([
        Step::Item(0),
        Step::Delay(10 * MS),
        Step::Item(10),
        Step::Delay(10 * MS),
        Step::Item(20),
        Step::Delay(130 * MS),
        Step::Item(150),
        Step::Delay(500 * MS),
        Step::Item(650),
    ]);
    let rec = record(source.batch_within(10, 100 * MS)).await;
    assert_eq!(rec.items, vec![vec![0, 10, 20], vec![150], vec![650]]);
    // [0,10,20] leaves when its timer fires (t = 100), [150] at t = 250, and the tail [650]
    // the instant the upstream ends (t = 650), not at 750.
    assert_eq!(rec.times, [100 * MS, 250 * MS, 650 * MS]);
}

#[tokio::test(start_paused = true)]
async fn size_wins_before_time() {
    let source = scripted([
        Step::Item(1),
        Step::Delay(5 * MS),
        Step::Item(2),
        Step::Delay(5 * MS),
        Step::Item(3),
    ]);
    let rec = record(source.batch_within(2, 100 * MS)).await;
    assert_eq!(rec.items, vec![vec![1, 2], vec![3]]);
    assert_eq!(rec.times, [5 * MS, 10 * MS]);
}

#[tokio::test(start_paused = true)]
async fn never_an_empty_batch_while_idle() {
    // A long quiet gap: no empty batch appears at the timer's pace.
    let source = scripted([Step::Item(1), Step::Delay(1000 * MS), Step::Item(2)]);
    let rec = record(source.batch_within(5, 10 * MS)).await;
    assert_eq!(rec.items, vec![vec![1], vec![2]]);
    assert_eq!(rec.times, [10 * MS, 1000 * MS]);
}

#[tokio::test(start_paused = true)]
async fn upstream_end_while_timer_pending_flushes_at_once() {
    let source = scripted([Step::Item(1), Step::Delay(30 * MS), Step::Item(2)]);
    let rec = record(source.batch_within(10, 100 * MS)).await;
    assert_eq!(rec.items, vec![vec![1, 2]]);
    assert_eq!(rec.times, [30 * MS]);
}

#[tokio::test(start_paused = true)]
async fn conformance_by_size_and_by_time() {
    conformance(
        || scripted((0..7).map(Step::Item)).batch(3),
        vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]],
    )
    .await;
    conformance(
        || {
            scripted([
                Step::Item(1),
                Step::Item(2),
                Step::Delay(200 * MS),
                Step::Item(3),
            ])
            .batch_within(10, 100 * MS)
        },
        vec![vec![1, 2], vec![3]],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn stage_matches_method() {
    let out: Vec<Vec<u8>> = stream::iter(0..5u8)
        .wrap(BatchStage::within(2, 10 * MS))
        .collect()
        .await;
    assert_eq!(out, vec![vec![0, 1], vec![2, 3], vec![4]]);
}

#[tokio::test(start_paused = true)]
async fn drop_releases_upstream_and_buffered_items() {
    let counter = DropCounter::new();
    let token = counter.token();
    let source = scripted([Step::Item(counter.token()), Step::Hang]).map(move |t| {
        let _keep = &token;
        t
    });
    let mut batched = Box::pin(source.batch(10));
    // The one item sits in the unfinished batch while the upstream hangs.
    assert!(futures::poll!(batched.next()).is_pending());
    assert_eq!(counter.alive(), 2); // the buffered item and the closure's token
    drop(batched);
    assert_eq!(counter.alive(), 0);
}

#[test]
fn size_hint_is_honest() {
    let b = stream::iter(0..7).batch(3);
    assert_eq!(b.size_hint(), (3, Some(3)));
    let b = stream::iter(0..7).batch_within(3, MS);
    assert_eq!(b.size_hint(), (3, Some(7)));
}

#[test]
#[should_panic(expected = "`batch`: `size` must be at least 1, got 0; pass a non-zero value")]
fn zero_size_panics() {
    let _ = stream::iter([1]).batch(0);
}

#[test]
#[should_panic(
    expected = "`batch_within`: `within` must be a non-zero duration, got 0ns; pass a value in that range"
)]
fn zero_window_panics() {
    let _ = stream::iter([1]).batch_within(2, Duration::ZERO);
}

#[test]
fn try_constructors_return_the_error() {
    let err = Batch::checked_new(stream::iter([1]), 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`batch`: `size` must be at least 1, got 0; pass a non-zero value"
    );
    let err = Batch::checked_within(stream::iter([1]), 0, MS).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`batch_within`: `size` must be at least 1, got 0; pass a non-zero value"
    );
    assert!(BatchStage::checked_new(0).is_err());
    assert!(BatchStage::checked_within(1, Duration::ZERO).is_err());
}

#[test]
#[should_panic(expected = "`batch`: `size` must be at least 1, got 0")]
fn zero_stage_panics() {
    let _ = BatchStage::new(0);
}

#[test]
fn send_and_unpin() {
    fn assert_unpin<T: Unpin>(_: &T) {}
    let b = stream::iter(0..3).batch_within(2, MS);
    assert_send(&b);
    assert_unpin(&b);
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "boom")]
async fn upstream_panic_reaches_consumer() {
    let _ =
        millrace::testing::consume(scripted([Step::Item(1), Step::Panic("boom")]).batch(5)).await;
}

// ---- Duration::MAX saturates (issue 14, bad input) ----

#[tokio::test(start_paused = true)]
async fn batch_within_duration_max_is_valid() {
    // Used to panic with "overflow when adding duration to instant" at the first item.
    let slow = scripted([Step::Item(1), Step::Delay(1000 * MS), Step::Item(2)]);
    let rec = record(slow.batch_within(2, Duration::MAX)).await;
    assert_eq!(rec.items, vec![vec![1, 2]]);
    assert_eq!(rec.times, [1000 * MS]);
}

// ---- try_batch: the fallible form ----

type R = Result<u32, &'static str>;

#[tokio::test(start_paused = true)]
async fn try_batch_flushes_the_partial_batch_then_the_error_then_goes_on() {
    let rows: Vec<R> = vec![Ok(1), Ok(2), Err("bad"), Ok(3)];
    let out: Vec<Result<Vec<u32>, &str>> = stream::iter(rows).try_batch(10).collect().await;
    assert_eq!(out, [Ok(vec![1, 2]), Err("bad"), Ok(vec![3])]);
    // `batch` keeps the error inside a batch, as documented.
    let rows: Vec<R> = vec![Ok(1), Ok(2), Err("bad"), Ok(3)];
    let out: Vec<Vec<R>> = stream::iter(rows).batch(10).collect().await;
    assert_eq!(out, [vec![Ok(1), Ok(2), Err("bad"), Ok(3)]]);
}

#[tokio::test(start_paused = true)]
async fn try_batch_by_size_errors_at_every_place() {
    let rows: Vec<R> = vec![
        Err("first"),
        Ok(1),
        Ok(2),
        Err("after a full batch"),
        Err("twice"),
        Ok(3),
        Err("last"),
    ];
    let out: Vec<Result<Vec<u32>, &str>> = stream::iter(rows).try_batch(2).collect().await;
    assert_eq!(
        out,
        [
            Err("first"),
            Ok(vec![1, 2]),
            Err("after a full batch"),
            Err("twice"),
            Ok(vec![3]),
            Err("last"),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn try_batch_within_exact_flush_instants() {
    let steps = || {
        scripted([
            Step::ok(1),
            Step::Delay(30 * MS),
            Step::ok(2),
            Step::Delay(30 * MS),
            Step::err("bad"), // at 60 ms: flushes [1, 2] before its 100 ms window, then itself
            Step::ok(3),
            Step::Delay(150 * MS), // [3]'s window closes at 160 ms
            Step::ok(4),
            Step::ok(5),
        ])
    };
    let rec = record(steps().try_batch_within(10, 100 * MS)).await;
    assert_eq!(
        rec.items,
        [Ok(vec![1, 2]), Err("bad"), Ok(vec![3]), Ok(vec![4, 5]),]
    );
    assert_eq!(rec.times, [60 * MS, 60 * MS, 160 * MS, 210 * MS]);
    let expected = rec.items;
    conformance(move || steps().try_batch_within(10, 100 * MS), expected).await;
}

#[tokio::test(start_paused = true)]
async fn try_batch_conformance_and_stage() {
    let steps = || {
        scripted([
            Step::ok(1),
            Step::ok(2),
            Step::ok(3),
            Step::err("bad"),
            Step::ok(4),
        ])
    };
    let expected = vec![Ok(vec![1, 2]), Ok(vec![3]), Err("bad"), Ok(vec![4])];
    conformance(move || steps().try_batch(2), expected.clone()).await;
    conformance(move || steps().wrap(TryBatchStage::new(2)), expected).await;
    let out: Vec<Result<Vec<u32>, &str>> = steps()
        .wrap(TryBatchStage::within(2, 5 * MS))
        .collect()
        .await;
    assert_eq!(out, [Ok(vec![1, 2]), Ok(vec![3]), Err("bad"), Ok(vec![4])]);
}

#[test]
fn try_batch_rejects_zero_size_and_window() {
    let src = || stream::iter(Vec::<R>::new());
    assert_eq!(
        TryBatch::checked_new(src(), 0).unwrap_err().to_string(),
        "`try_batch`: `size` must be at least 1, got 0; pass a non-zero value"
    );
    assert_eq!(
        TryBatch::checked_within(src(), 0, MS)
            .unwrap_err()
            .to_string(),
        "`try_batch_within`: `size` must be at least 1, got 0; pass a non-zero value"
    );
    assert_eq!(
        TryBatch::checked_within(src(), 2, Duration::ZERO)
            .unwrap_err()
            .to_string(),
        "`try_batch_within`: `within` must be a non-zero duration, got 0ns; pass a value in that range"
    );
    assert!(TryBatchStage::checked_new(0).is_err());
    assert!(TryBatchStage::checked_within(1, Duration::ZERO).is_err());
    let panicked = std::panic::catch_unwind(|| src().try_batch(0));
    assert!(panicked.is_err());
}

#[tokio::test(start_paused = true)]
async fn try_batch_within_duration_max_is_valid() {
    let slow = scripted([Step::ok(1), Step::Delay(1000 * MS), Step::ok(2)]);
    let out: Vec<Result<Vec<u32>, &str>> = slow.try_batch_within(2, Duration::MAX).collect().await;
    assert_eq!(out, [Ok(vec![1, 2])]);
}

#[test]
fn try_batch_send_unpin_and_size_hint() {
    fn assert_unpin<T: Unpin>(_: &T) {}
    let rows: Vec<R> = vec![Ok(1), Ok(2), Ok(3)];
    let s = stream::iter(rows).try_batch(2);
    assert_send(&s);
    assert_unpin(&s);
    assert_eq!(s.size_hint(), (1, Some(3)));
}
