//! `recover_with(f)`: fallbacks resume from the checkpoint without loss or duplicates.

use std::sync::{Arc, Mutex};

use futures::{FutureExt, StreamExt, stream};
use millrace::prelude::*;
use millrace::testing::{
    DropCounter, Flaky, FlakyError, FlakyStream, Step, alive_tasks, conformance, consume, scripted,
};

fn items(n: u64) -> Vec<Result<u64, FlakyError>> {
    (0..n).map(Ok).collect()
}

#[tokio::test(start_paused = true)]
async fn the_fallback_receives_the_checkpoint_and_resumes_without_loss() {
    let flaky = Flaky::new(0..10u64).fail_at([4]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (f, log) = (flaky.clone(), Arc::clone(&seen));
    let s = flaky
        .open(0)
        .recover_with(move |e: &FlakyError, cp: &Checkpoint<u64>| {
            log.lock().unwrap().push((*e, cp.clone()));
            Some(f.open(cp.delivered))
        });
    assert_eq!(s.collect::<Vec<_>>().await, items(10));
    assert_eq!(
        *seen.lock().unwrap(),
        [(
            FlakyError {
                position: 4,
                attempt: 1
            },
            Checkpoint {
                delivered: 4,
                last: Some(3)
            }
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn every_item_exactly_once_under_random_failures() {
    for seed in 0..200 {
        let flaky = Flaky::new(0..40u64).fail_with_probability(0.25, seed);
        let f = flaky.clone();
        let s = flaky
            .open(0)
            .recover_with(move |_, cp: &Checkpoint<u64>| Some(f.open(cp.delivered)));
        assert_eq!(s.collect::<Vec<_>>().await, items(40), "seed {seed}");
    }
}

#[tokio::test(start_paused = true)]
async fn none_propagates_the_error_and_ends() {
    let flaky = Flaky::new(0..10u64).fail_at([2]);
    let mut s = Box::pin(
        flaky
            .open(0)
            .recover_with(|_, _: &Checkpoint<u64>| None::<FlakyStream<u64>>),
    );
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        out.push(item);
    }
    let mut expected = items(2);
    expected.push(Err(FlakyError {
        position: 2,
        attempt: 1,
    }));
    assert_eq!(out, expected);
    assert!(s.is_terminated());
    assert_eq!(s.next().await, None);
    assert_eq!(s.fallbacks(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_fallback_can_have_a_fallback_and_f_can_count() {
    let flaky = Flaky::new(0..10u64).fail_at([2, 5, 7]);
    let f = flaky.clone();
    let mut calls = 0;
    let mut s = Box::pin(flaky.open(0).recover_with(move |_, cp: &Checkpoint<u64>| {
        calls += 1;
        (calls <= 2).then(|| f.open(cp.delivered))
    }));
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        out.push(item);
    }
    let mut expected = items(7);
    expected.push(Err(FlakyError {
        position: 7,
        attempt: 1,
    }));
    assert_eq!(
        out, expected,
        "two fallbacks, then the third error propagates"
    );
    assert_eq!(s.fallbacks(), 2);
}

#[tokio::test(start_paused = true)]
async fn recover_with_calls_nest() {
    let flaky = Flaky::new(0..10u64).fail_at([3, 6]);
    let (f, g) = (flaky.clone(), flaky.clone());
    // The inner recovery handles only the failure at #3; the outer one catches the rest.
    let s = flaky
        .open(0)
        .recover_with(move |e: &FlakyError, cp: &Checkpoint<u64>| {
            (e.position == 3).then(|| f.open(cp.delivered))
        })
        .recover_with(move |_, cp: &Checkpoint<u64>| Some(g.open(cp.delivered)));
    assert_eq!(s.collect::<Vec<_>>().await, items(10));
    assert_eq!(flaky.opens(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_custom_checkpoint_reaches_the_fallback() {
    let flaky = Flaky::new(100..120u64).fail_at([5, 12]);
    let f = flaky.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let s = flaky
        .open(0)
        // Only the next position to read, not the item.
        .checkpoint_with(0u64, |next: &mut u64, _: &u64| *next += 1)
        .recover_with(move |_, next: &u64| {
            log.lock().unwrap().push(*next);
            Some(f.open(*next))
        });
    assert_eq!(
        s.collect::<Vec<_>>().await,
        (100..120).map(Ok).collect::<Vec<_>>()
    );
    assert_eq!(*seen.lock().unwrap(), [5, 12]);
}

#[tokio::test(start_paused = true)]
async fn checkpoint_with_alone_passes_items_through() {
    let mut s = Box::pin(
        stream::iter([Ok(3u32), Err("bad"), Ok(4)]).checkpoint_with(0u32, |sum, x| *sum += x),
    );
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        out.push(item);
    }
    assert_eq!(out, [Ok(3), Err("bad"), Ok(4)]);
    assert_eq!(*s.checkpoint(), 7);
}

#[tokio::test(start_paused = true)]
async fn conformance_with_and_without_fallbacks() {
    conformance(
        || {
            let flaky = Flaky::new(0..6u64).fail_at([0, 3]);
            let f = flaky.clone();
            flaky
                .open(0)
                .recover_with(move |_, cp: &Checkpoint<u64>| Some(f.open(cp.delivered)))
        },
        items(6),
    )
    .await;
    conformance(
        || {
            scripted([Step::ok(1), Step::err("bad"), Step::ok(3)])
                .recover_with(|_, _: &Checkpoint<i32>| None::<stream::Empty<_>>)
        },
        vec![Ok(1), Err("bad")],
    )
    .await;
    conformance(
        || {
            scripted([Step::ok(1u64), Step::err("bad")])
                .checkpoint_with(0u64, |n, _| *n += 1)
                .recover_with(|_, n: &u64| Some(stream::iter((*n + 1..4).map(Ok))))
        },
        vec![Ok(1), Ok(2), Ok(3)],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn dropping_releases_the_upstream_the_fallback_and_f() {
    let tasks = alive_tasks();
    let counter = DropCounter::new();
    let (t1, t2) = (counter.token(), counter.token());
    let upstream = stream::pending::<Result<u32, String>>().map(move |x| {
        let _held = &t1;
        x
    });
    let s = upstream.recover_with(move |_, _: &Checkpoint<u32>| {
        let _held = &t2;
        None::<stream::Empty<_>>
    });
    let mut s = Box::pin(s);
    assert!(futures::poll!(s.next()).is_pending());
    assert_eq!(counter.alive(), 2);
    drop(s);
    tokio::task::yield_now().await;
    assert_eq!(counter.alive(), 0);
    assert_eq!(alive_tasks(), tasks);
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "boom")]
async fn a_panic_in_f_reaches_the_consumer() {
    let s = stream::iter([Ok(1), Err("down")])
        .recover_with(|_, _: &Checkpoint<i32>| -> Option<stream::Empty<_>> { panic!("boom") });
    consume(s).await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_fallback_reaches_the_consumer() {
    let s = stream::iter([Ok(1), Err("down")])
        .recover_with(|_, _: &Checkpoint<i32>| Some(scripted([Step::Panic("boom in fallback")])));
    let panic = std::panic::AssertUnwindSafe(consume(s))
        .catch_unwind()
        .await
        .unwrap_err();
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
    assert_eq!(message.as_deref(), Some("boom in fallback"));
}

#[test]
fn recover_streams_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let flaky = Flaky::new(0..3u64);
    let f = flaky.clone();
    assert_send(
        &flaky
            .open(0)
            .recover_with(move |_, cp: &Checkpoint<u64>| Some(f.open(cp.delivered))),
    );
    assert_send(&flaky.open(0).checkpoint_with(0u64, |n, _| *n += 1));
}

#[tokio::test]
async fn max_fallbacks_stops_a_handler_that_always_falls_back() {
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let a = std::sync::Arc::clone(&asked);
    let s = futures::stream::iter([Ok(1), Err("primary down")])
        .recover_with(move |_, cp: &Checkpoint<i32>| {
            a.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let next = cp.last.unwrap_or(0) + 1;
            Some(futures::stream::iter([Ok(next), Err("mirror down")]))
        })
        .max_fallbacks(3);
    let counter = s.fallbacks();
    let out: Vec<_> = futures::StreamExt::collect(s).await;
    assert_eq!(out, [Ok(1), Ok(2), Ok(3), Ok(4), Err("mirror down")]);
    assert_eq!(counter.get(), 3);
    assert_eq!(
        asked.load(std::sync::atomic::Ordering::Relaxed),
        3,
        "not asked after the cap"
    );
}

#[tokio::test]
async fn max_fallbacks_zero_never_falls_back() {
    let s = futures::stream::iter([Ok(1), Err("down")])
        .recover_with(|_, _: &Checkpoint<i32>| Some(futures::stream::iter([Ok(9)])))
        .max_fallbacks(0);
    assert_eq!(
        futures::StreamExt::collect::<Vec<_>>(s).await,
        [Ok(1), Err("down")]
    );
}
