//! Concurrency faults across stage boundaries: futurelock, panics crossing one or two task
//! boundaries, and graceful shutdown that loses nothing.
//!
//! The per-wrapper files cover each stage alone; these tests compose them, because that is
//! where a panic turns into a silent end or a wake-up gets lost between two tasks.

mod support;
use support::reliability;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{FutureExt, StreamExt, stream};
use millrace::prelude::*;
use millrace::testing::{Flaky, Step, alive_tasks, scripted};
use reliability::{settle, spawn_guarded};
use tokio::sync::{Mutex, mpsc};

const MS: Duration = Duration::from_millis(1);

// ------------------------------------------------------------------------------------------
// Futurelock
// ------------------------------------------------------------------------------------------

/// The consumer takes item 0, then — without polling the stream — waits for a lock that
/// in-flight work holds, and for signals that only in-flight work sends. In spawned mode the
/// work runs on its own tasks, so the consumer is never starved; `what` names the pipeline.
async fn consumer_waits_on_in_flight_work<S>(what: &'static str, build: impl FnOnce(Work) -> S)
where
    S: Stream<Item = u64> + Send + 'static,
{
    let lock = Arc::new(Mutex::new(()));
    let (tx, rx) = mpsc::unbounded_channel();
    let work = Work {
        lock: lock.clone(),
        done: tx,
    };
    let s = build(work);
    let out = spawn_guarded(what, async move {
        let mut s = Box::pin(s);
        let mut rx = rx;
        let first = s.next().await;
        // Between items: hold the lock the work needs while awaiting the work's signals.
        {
            let _guard = lock.lock().await;
            tokio::time::sleep(20 * MS).await;
        }
        let mut signals = Vec::new();
        for _ in 0..3 {
            signals.push(rx.recv().await.expect("work signals"));
        }
        let rest: Vec<u64> = s.collect().await;
        (first, signals, rest)
    })
    .await;
    assert_eq!(out.0, Some(0), "{what}");
    assert_eq!(out.1.len(), 3, "{what}");
    assert_eq!(
        out.2,
        (1..8).collect::<Vec<_>>(),
        "{what}: nothing lost after the stall"
    );
}

#[derive(Clone)]
struct Work {
    lock: Arc<Mutex<()>>,
    done: mpsc::UnboundedSender<u64>,
}

impl Work {
    fn run(&self, i: u64) -> impl Future<Output = u64> + Send + 'static + use<> {
        let (lock, done) = (self.lock.clone(), self.done.clone());
        async move {
            tokio::time::sleep(MS * (1 + i as u32 % 3)).await;
            let _g = lock.lock().await;
            tokio::time::sleep(MS).await;
            let _ = done.send(i);
            i
        }
    }
}

#[tokio::test(start_paused = true)]
async fn no_futurelock_in_spawned_map_concurrent_after_retry() {
    consumer_waits_on_in_flight_work("retry → map_concurrent(4)", |w| {
        let flaky = Flaky::new(0..8u64).fail_at([2, 5]);
        restartable(move |cp: &Checkpoint<u64>| flaky.open(cp.delivered))
            .retry(RetryPolicy::fixed(MS, 3))
            .map(|r| r.expect("retried"))
            .map_concurrent(4, move |i| w.run(i))
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn no_futurelock_in_spawned_map_concurrent_behind_prefetch() {
    consumer_waits_on_in_flight_work("map_concurrent(4) → prefetch(2)", |w| {
        stream::iter(0..8u64)
            .map_concurrent(4, move |i| w.run(i))
            .prefetch(2)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_futurelock_on_a_multi_threaded_runtime() {
    // Real time here (multi-thread runtimes cannot pause); the work waits 1-4 ms per item.
    consumer_waits_on_in_flight_work("map_concurrent(3) on 2 workers", |w| {
        stream::iter(0..8u64).map_concurrent(3, move |i| w.run(i))
    })
    .await;
}

/// The same consumer over local mode *does* stall (documented caveat): proof that the
/// scenario above really is a futurelock and that the hang guard catches it.
#[tokio::test(start_paused = true)]
async fn local_mode_futurelock_is_real_and_caught() {
    let lock = Arc::new(Mutex::new(()));
    let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
    let w = Work {
        lock: lock.clone(),
        done: tx,
    };
    let handle = tokio::spawn(async move {
        let mut s = Box::pin(stream::iter(0..8u64).map_concurrent_local(4, move |i| w.run(i)));
        let _first = s.next().await;
        for _ in 0..3 {
            rx.recv().await; // only in-flight work sends these, and nobody polls it
        }
    });
    let outcome = tokio::time::timeout(Duration::from_secs(3600), handle).await;
    assert!(
        outcome.is_err(),
        "local mode stalls while the consumer waits elsewhere"
    );
}

// ------------------------------------------------------------------------------------------
// Panics crossing task boundaries
// ------------------------------------------------------------------------------------------

/// Consumes `s` on a spawned task and returns the items before the panic and its message.
async fn items_then_panic<S>(s: S) -> (Vec<S::Item>, String)
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let got2 = got.clone();
    let handle = tokio::spawn(async move {
        let mut s = Box::pin(s);
        while let Some(x) = s.next().await {
            got2.lock().unwrap().push(x);
        }
    });
    let err = match tokio::time::timeout(Duration::from_secs(3600), handle).await {
        Ok(Err(e)) if e.is_panic() => e.into_panic(),
        Ok(Ok(())) => panic!("the stream ended normally: the panic was swallowed"),
        Ok(Err(e)) => panic!("cancelled: {e}"),
        Err(_) => panic!("hung instead of panicking"),
    };
    let msg = err
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| err.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    let items = std::mem::take(&mut *got.lock().unwrap());
    (items, msg)
}

#[tokio::test(start_paused = true)]
async fn panic_in_a_spawned_future_crosses_prefetch_after_the_items_before_it() {
    let s = stream::iter(0..10u64)
        .map_concurrent(3, |i| async move {
            tokio::time::sleep(MS * (10 - i as u32)).await;
            assert!(i != 6, "boom at 6");
            i
        })
        .prefetch(4);
    let (items, msg) = items_then_panic(s).await;
    assert_eq!(
        items,
        [0, 1, 2, 3, 4, 5],
        "ordered output up to the panicking item"
    );
    assert!(msg.contains("boom at 6"), "{msg}");
}

#[tokio::test(start_paused = true)]
async fn panic_in_the_upstream_of_prefetch_inside_a_retry_factory_is_not_retried() {
    let opens = Arc::new(AtomicU64::new(0));
    let opens2 = opens.clone();
    let s = restartable(move |cp: &Checkpoint<u64>| {
        opens2.fetch_add(1, Ordering::SeqCst);
        let from = cp.delivered;
        scripted(
            (from..3)
                .map(|i| Step::Item(Ok::<u64, String>(i)))
                .chain([Step::Panic("upstream boom")]),
        )
        .prefetch(2)
    })
    .retry(RetryPolicy::fixed(MS, 5));
    let (items, msg) = items_then_panic(s).await;
    assert_eq!(items, [Ok(0), Ok(1), Ok(2)]);
    assert_eq!(msg, "upstream boom");
    assert_eq!(
        opens.load(Ordering::SeqCst),
        1,
        "a panic is not an error to retry"
    );
}

#[tokio::test(start_paused = true)]
async fn panic_in_scoped_cleanup_crosses_prefetch() {
    let s = scoped(
        async { Ok::<_, String>(()) },
        |_: &()| stream::iter([Ok::<u32, String>(1), Ok(2)]),
        |_| async {
            tokio::time::sleep(MS).await;
            panic!("close boom");
        },
    )
    .prefetch(4);
    let (items, msg) = items_then_panic(s).await;
    assert_eq!(items, [Ok(1), Ok(2)]);
    assert_eq!(msg, "close boom");
}

#[tokio::test(start_paused = true)]
async fn panic_in_map_blocking_crosses_map_concurrent() {
    let s = stream::iter(0..6u64)
        .map_blocking(2, |i| {
            assert!(i != 4, "blocking boom");
            i
        })
        .map_concurrent(2, |i| async move { i * 10 });
    let (items, msg) = items_then_panic(s).await;
    assert_eq!(items, [0, 10, 20, 30]);
    assert_eq!(msg, "blocking boom");
}

#[tokio::test(start_paused = true)]
async fn panic_in_a_validate_closure_inside_prefetch() {
    let s = stream::iter(0..5u32)
        .validate(|x: &u32| {
            assert!(*x != 3, "validate boom");
            Ok::<(), ()>(())
        })
        .prefetch(8);
    let (items, msg) = items_then_panic(s).await;
    assert_eq!(items, [Ok(0), Ok(1), Ok(2)]);
    assert_eq!(msg, "validate boom");
}

#[tokio::test(start_paused = true)]
async fn panic_in_try_map_concurrent_is_not_an_error() {
    let s = stream::iter(0..5u32).try_map_concurrent(2, |x| async move {
        assert!(x != 2, "try boom");
        Ok::<u32, String>(x)
    });
    let caught = std::panic::AssertUnwindSafe(s.collect::<Vec<_>>())
        .catch_unwind()
        .await;
    let err = caught.expect_err("a panic is not an Err item nor a normal end");
    assert_eq!(err.downcast_ref::<&str>(), Some(&"try boom"));
}

// ------------------------------------------------------------------------------------------
// Graceful shutdown
// ------------------------------------------------------------------------------------------

/// Cancels after `cancel_after` items reached the consumer and checks that every item pulled
/// past `stop_on` reached the consumer: no gaps, no losses.
async fn stop_on_drains(what: &str, ordered: bool, cancel_after: usize) {
    let token = CancellationToken::new();
    let pulled = Arc::new(AtomicU64::new(0));
    let pulled2 = pulled.clone();
    let tasks = alive_tasks();
    let source = stream::iter(0..reliability::scaled(1000, 100))
        .stop_on(token.clone())
        .inspect(move |_| {
            pulled2.fetch_add(1, Ordering::SeqCst);
        });
    let work = |i: u64| async move {
        tokio::time::sleep(MS * (1 + (i * 37 % 5) as u32)).await;
        i
    };
    let s: std::pin::Pin<Box<dyn Stream<Item = u64> + Send>> = if ordered {
        Box::pin(source.map_concurrent(4, work).prefetch(3))
    } else {
        Box::pin(source.map_concurrent_unordered(4, work).prefetch(3))
    };
    let mut s = s;
    let mut got = Vec::new();
    while let Some(x) = s.next().await {
        got.push(x);
        if got.len() == cancel_after {
            token.cancel();
        }
    }
    let pulled = pulled.load(Ordering::SeqCst);
    assert!(
        pulled > cancel_after as u64,
        "{what}: items were in flight at the cancel"
    );
    assert!(
        pulled < reliability::scaled(1000, 100),
        "{what}: the cancel stopped the source"
    );
    if !ordered {
        got.sort_unstable();
    }
    assert_eq!(
        got,
        (0..pulled).collect::<Vec<_>>(),
        "{what}: every pulled item drained"
    );
    drop(s);
    settle().await;
    assert_eq!(alive_tasks(), tasks, "{what}: no task left");
}

#[tokio::test(start_paused = true)]
async fn stop_on_drains_in_flight_items_and_loses_none() {
    let points: &[usize] = if cfg!(miri) { &[2] } else { &[1, 2, 7, 30] };
    for &cancel_after in points {
        stop_on_drains("stop_on → map_concurrent → prefetch", true, cancel_after).await;
        stop_on_drains(
            "stop_on → map_concurrent_unordered → prefetch",
            false,
            cancel_after,
        )
        .await;
    }
}

#[tokio::test(start_paused = true)]
async fn stop_on_while_the_consumer_waits_on_a_pending_retry_backoff() {
    // The cancel arrives while the retry is in a 1 s backoff and the consumer is parked:
    // stop_on (after the retry) must wake it and end the stream at once.
    let token = CancellationToken::new();
    let flaky = Flaky::new(0..10u64).fail_at([3]);
    let s = restartable(move |cp: &Checkpoint<u64>| flaky.open(cp.delivered))
        .retry(RetryPolicy::fixed(Duration::from_secs(1), 3))
        .stop_on(token.clone());
    let t2 = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(100 * MS).await;
        t2.cancel();
    });
    let start = tokio::time::Instant::now();
    let out: Vec<_> = s.collect().await;
    assert_eq!(out, [Ok(0), Ok(1), Ok(2)]);
    assert_eq!(start.elapsed(), 100 * MS);
}

// ------------------------------------------------------------------------------------------
// A stage that ended early releases its upstream's tasks at once, not when it is dropped
// ------------------------------------------------------------------------------------------

/// Polls `s` to its end, then — while still holding it — checks that no task is left.
async fn ended_but_held<S: Stream + Unpin>(what: &str, mut s: S, tasks: usize) -> Vec<S::Item> {
    let mut got = Vec::new();
    while let Some(x) = s.next().await {
        got.push(x);
    }
    settle().await;
    assert_eq!(
        alive_tasks(),
        tasks,
        "{what}: ended, still held, but a task is alive"
    );
    drop(s);
    got
}

#[tokio::test(start_paused = true)]
async fn deadline_and_idle_timeout_abort_a_prefetch_producer_when_they_fire() {
    let slow = || {
        stream::iter(0..1000u32).then(|x| async move {
            tokio::time::sleep(10 * MS).await;
            x
        })
    };
    let tasks = alive_tasks();
    let got = ended_but_held(
        "prefetch → deadline",
        Box::pin(slow().prefetch(4).deadline(55 * MS)),
        tasks,
    )
    .await;
    assert_eq!(
        got.last(),
        Some(&Err(TimeoutError::Deadline { after: 55 * MS }))
    );

    let stalled = stream::iter(0..3u32)
        .chain(stream::pending())
        .prefetch(2)
        .idle_timeout(20 * MS);
    let got = ended_but_held("prefetch → idle_timeout", Box::pin(stalled), tasks).await;
    assert_eq!(got.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn fail_fast_aborts_in_flight_siblings_before_the_stream_is_dropped() {
    let tasks = alive_tasks();
    let s = stream::iter(0..10u32).try_map_concurrent(4, |x| async move {
        tokio::time::sleep(MS * (1 + x)).await;
        if x == 1 { Err("one") } else { Ok(x) }
    });
    let got = ended_but_held("try_map_concurrent", Box::pin(s), tasks).await;
    assert_eq!(got, [Ok(0), Err("one")]);
}

#[tokio::test(start_paused = true)]
async fn retry_giving_up_releases_a_prefetching_source() {
    let tasks = alive_tasks();
    let s = restartable(|cp: &Checkpoint<u64>| {
        let from = cp.delivered;
        stream::iter(from..from + 2)
            .map(Ok)
            .chain(stream::once(async { Err("down") }))
            .chain(stream::pending())
            .prefetch(3)
    })
    // Without the reset, the second failure exhausts the single retry (with it, every re-open
    // delivers two new items and the stream never ends).
    .retry(RetryPolicy::fixed(MS, 1).reset_after_success(false));
    let got = ended_but_held("retry(give up) over prefetch", Box::pin(s), tasks).await;
    assert_eq!(got, [Ok(0), Ok(1), Ok(2), Ok(3), Err("down")]);
}

// ------------------------------------------------------------------------------------------
// Wake-ups under real races: producers on other worker threads
// ------------------------------------------------------------------------------------------

/// Consumes `s` with per-poll counting wakers on a multi-threaded runtime, where the stage's
/// tasks run on another worker and race with the consumer's poll: a lost wake-up stalls the
/// consumer, and the real-time bound turns that into a failure.
async fn race(what: &str, s: impl FusedStream<Item = u64> + Send + 'static, n: u64) {
    let handle = tokio::spawn(reliability::poll_with_counting_wakers(s));
    // Real time: generous under miri, which runs a few thousand times slower.
    let bound = Duration::from_secs(reliability::scaled(20, 900));
    let report = tokio::time::timeout(bound, handle)
        .await
        .unwrap_or_else(|_| panic!("{what}: lost wake-up (no progress for {bound:?})"))
        .expect("consumer task");
    assert_eq!(report.items, (0..n).collect::<Vec<_>>(), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_lost_wake_up_when_producers_race_the_consumer() {
    let rounds = reliability::scaled(100, 1);
    let n = reliability::scaled(300, 20);
    for round in 0..rounds {
        let cap = 1 + (round % 5) as usize;
        race("prefetch", stream::iter(0..n).prefetch(cap), n).await;
        race(
            "map_concurrent",
            stream::iter(0..n).map_concurrent(cap, |x| async move {
                tokio::task::yield_now().await;
                x
            }),
            n,
        )
        .await;
        race(
            "map_concurrent → prefetch",
            stream::iter(0..n)
                .map_concurrent(cap, |x| async move {
                    if x % 2 == 0 {
                        tokio::task::yield_now().await;
                    }
                    x
                })
                .prefetch(cap),
            n,
        )
        .await;
        race(
            "map_blocking",
            stream::iter(0..n).map_blocking(cap, |x| x),
            n,
        )
        .await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_deadline_cutting_a_scope_closes_the_resource_exactly_once_at_once() {
    let closes = Arc::new(AtomicU64::new(0));
    let c2 = closes.clone();
    let tasks = alive_tasks();
    let s = scoped(
        async { Ok::<_, String>(()) },
        |_: &()| {
            stream::iter(0..100u32).then(|x| async move {
                tokio::time::sleep(10 * MS).await;
                Ok::<u32, String>(x)
            })
        },
        move |_| async move {
            tokio::time::sleep(5 * MS).await;
            c2.fetch_add(1, Ordering::SeqCst);
        },
    )
    .deadline(35 * MS);
    let got = ended_but_held("scoped → deadline", Box::pin(s), tasks).await;
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(
        closes.load(Ordering::SeqCst),
        1,
        "closed once, before the stream was dropped"
    );
    settle().await;
    assert_eq!(closes.load(Ordering::SeqCst), 1, "and never again");
}
