//! `map_blocking`: sync work on the blocking pool, bounded by `n`, in input order.
//!
//! Blocking threads do not use tokio time: these tests gate the work with barriers and
//! channels instead of sleeping.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::prelude::*;
use millrace::testing::{DropCounter, Step, conformance, consume, scripted};
use millrace::wrappers::{MapBlocking, MapBlockingStage};

/// Real-time bound for the multi-threaded tests (a guard, never a wait).
const GUARD: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_n_at_once_reaching_n_in_order() {
    let n = 4;
    let now = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    // Every call waits until n calls are inside at once: this only finishes if the stage
    // really runs n at a time; more than n would be seen by the gauge.
    let barrier = Arc::new(Barrier::new(n));
    let (nw, mx, b) = (now.clone(), max.clone(), barrier.clone());
    let s = stream::iter(0..(4 * n as u64)).map_blocking(n, move |x| {
        let inside = nw.fetch_add(1, Ordering::SeqCst) + 1;
        mx.fetch_max(inside, Ordering::SeqCst);
        b.wait();
        nw.fetch_sub(1, Ordering::SeqCst);
        x * 2
    });
    let out = tokio::time::timeout(GUARD, s.collect::<Vec<_>>())
        .await
        .expect("map_blocking did not run n calls at once");
    assert_eq!(out, (0..16).map(|x| x * 2).collect::<Vec<_>>());
    assert_eq!(max.load(Ordering::SeqCst), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_order_is_input_order_when_later_calls_finish_first() {
    // Item 0 waits until item 2 has finished: completion order 1, 2, 0 (or 2, 1, 0).
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = std::sync::Mutex::new(rx);
    let tx = std::sync::Mutex::new(tx);
    let s = stream::iter(0..3u32).map_blocking(3, move |x| {
        if x == 0 {
            rx.lock().unwrap().recv().unwrap();
        }
        if x == 2 {
            tx.lock().unwrap().send(()).unwrap();
        }
        x
    });
    let out = tokio::time::timeout(GUARD, s.collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(out, [0, 1, 2]);
}

#[tokio::test(start_paused = true)]
async fn conformance_and_stage() {
    let script = || {
        scripted([
            Step::Item(1u64),
            Step::Pending,
            Step::Item(2),
            Step::Delay(Duration::from_millis(5)),
            Step::Item(3),
        ])
    };
    conformance(|| script().map_blocking(2, |x| x * 10), vec![10, 20, 30]).await;
    conformance(|| script().map_blocking(1, |x| x + 1), vec![2, 3, 4]).await;
    conformance(
        || script().wrap(MapBlockingStage::new(3, |x: u64| x)),
        vec![1, 2, 3],
    )
    .await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "boom")]
async fn panic_in_f_reaches_the_consumer() {
    consume(stream::iter(0..3u32).map_blocking(2, |x| {
        assert!(x != 1, "boom");
        x
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_releases_f_once_running_calls_finish_and_starts_nothing_more() {
    let captured = DropCounter::new();
    let token = captured.token();
    let started = Arc::new(AtomicUsize::new(0));
    let st = started.clone();
    let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
    let gate_rx = std::sync::Mutex::new(gate_rx);
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut s = Box::pin(stream::iter(0..10u32).map_blocking(2, move |x| {
        let _ = &token;
        st.fetch_add(1, Ordering::SeqCst);
        started_tx.send(()).unwrap();
        gate_rx.lock().unwrap().recv().unwrap();
        x
    }));
    assert!(futures::poll!(s.next()).is_pending());
    // Only one call can hold the gate's receiver at a time; wait until one runs.
    tokio::time::timeout(GUARD, started_rx.recv())
        .await
        .unwrap();
    drop(s);
    // The running call cannot be interrupted: let both calls through. If the second call
    // was cancelled, the first one's return releases `f` and its receiver, so the second
    // send may find no one listening.
    gate_tx.send(()).unwrap();
    let _ = gate_tx.send(());
    let mut waited = 0;
    while captured.alive() > 0 {
        waited += 1;
        assert!(waited < 1_000_000, "the function was never released");
        tokio::task::yield_now().await;
    }
    assert!(
        started.load(Ordering::SeqCst) <= 2,
        "no call beyond the limit started"
    );
}

#[test]
#[should_panic(
    expected = "`map_blocking`: `limit` must be at least 1, got 0; pass a non-zero value"
)]
fn zero_limit_is_rejected() {
    let _ = stream::iter([1]).map_blocking(0, |x: i32| x);
}

#[test]
fn try_new_returns_the_config_error() {
    assert_eq!(
        MapBlocking::checked_new(stream::iter([1]), 0, |x: i32| x)
            .unwrap_err()
            .to_string(),
        "`map_blocking`: `limit` must be at least 1, got 0; pass a non-zero value"
    );
    assert!(MapBlockingStage::checked_new(0, |x: i32| x).is_err());
}

#[test]
fn wrapper_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    assert_send(&stream::iter([1]).map_blocking(2, |x: i32| x + 1));
    assert_send(&MapBlockingStage::new(2, |x: i32| x));
}

#[test]
fn drop_cancels_queued_calls_the_running_one_finishes() {
    // One blocking thread: with a limit of 2, one call runs and the other waits in the
    // pool's queue.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let captured = DropCounter::new();
    let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<u32>();
    let token = captured.token();
    let st = started.clone();
    let gate_rx = std::sync::Mutex::new(gate_rx);
    let started_tx = std::sync::Mutex::new(started_tx);
    rt.block_on(async move {
        let mut s = Box::pin(stream::iter(0..10u32).map_blocking(2, move |x| {
            let _ = &token;
            st.fetch_add(1, Ordering::SeqCst);
            started_tx.lock().unwrap().send(x).unwrap();
            gate_rx.lock().unwrap().recv().unwrap();
            x
        }));
        assert!(futures::poll!(s.next()).is_pending());
        // block_on's thread is not a worker: waiting here blocks nothing else.
        assert_eq!(started_rx.recv_timeout(GUARD).unwrap(), 0);
        drop(s);
        // Open the gate for both calls; a call that still ran would be counted. The second
        // send may find the receiver gone: once the running call returns, the dropped stage
        // releases `f` (and the receiver it owns) — which is the behaviour under test.
        gate_tx.send(()).unwrap();
        let _ = gate_tx.send(());
        // The pool runs its queue in order: once this sentinel has run, so would have the
        // queued call, had it not been cancelled.
        tokio::task::spawn_blocking(|| ()).await.unwrap();
    });
    assert_eq!(
        started.load(Ordering::SeqCst),
        1,
        "the queued call never started"
    );
    drop(rt);
    assert_eq!(captured.alive(), 0);
}
