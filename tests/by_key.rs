//! `map_concurrent_by_key(n, key, f)`: at most `n` in flight, one per key, items of a key in
//! input order, different keys in parallel, bounded waiting; panics surface, drop aborts.
//! The property runs each case under a fresh paused current-thread runtime, consumed on a
//! spawned hang-guarded task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::prelude::*;
use millrace::testing::{alive_tasks, consume};
use proptest::prelude::*;

const MS: Duration = Duration::from_millis(1);

/// What the work futures saw: in flight overall and per key, and the start order per key.
#[derive(Default)]
struct Probe {
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    per_key: Mutex<HashMap<u8, usize>>,
    max_per_key: AtomicUsize,
    started: Mutex<HashMap<u8, Vec<usize>>>,
}

fn run_case(items: Vec<(u8, u8)>, n: usize, waiting: usize) -> (Vec<(u8, usize)>, Arc<Probe>) {
    let probe = Arc::new(Probe::default());
    let p = Arc::clone(&probe);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let out = rt.block_on(async move {
        let s = stream::iter(items.into_iter().enumerate())
            .map_concurrent_by_key(
                n,
                |(_, (key, _))| *key,
                move |(i, (key, delay))| {
                    let p = Arc::clone(&p);
                    async move {
                        let now = p.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        p.max_in_flight.fetch_max(now, Ordering::SeqCst);
                        {
                            let mut per_key = p.per_key.lock().unwrap();
                            let k = per_key.entry(key).or_default();
                            *k += 1;
                            p.max_per_key.fetch_max(*k, Ordering::SeqCst);
                        }
                        p.started.lock().unwrap().entry(key).or_default().push(i);
                        tokio::time::sleep(MS * u32::from(delay)).await;
                        *p.per_key.lock().unwrap().get_mut(&key).unwrap() -= 1;
                        p.in_flight.fetch_sub(1, Ordering::SeqCst);
                        (key, i)
                    }
                },
            )
            .with_waiting(waiting);
        consume(s).await
    });
    (out, probe)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Per key the outputs (and the starts) come in input order; never more than `n` in
    /// flight, never two of one key; every item exactly once.
    #[test]
    fn per_key_order_and_in_flight_bound(
        items in prop::collection::vec((0u8..5, 0u8..20), 0..60),
        n in 1usize..6,
        waiting in 1usize..6,
    ) {
        let (out, probe) = run_case(items.clone(), n, waiting);
        prop_assert_eq!(out.len(), items.len());
        let mut by_key_in: HashMap<u8, Vec<usize>> = HashMap::new();
        for (i, (k, _)) in items.iter().enumerate() {
            by_key_in.entry(*k).or_default().push(i);
        }
        let mut by_key_out: HashMap<u8, Vec<usize>> = HashMap::new();
        for (k, i) in &out {
            by_key_out.entry(*k).or_default().push(*i);
        }
        prop_assert_eq!(&by_key_out, &by_key_in);
        prop_assert_eq!(&*probe.started.lock().unwrap(), &by_key_in);
        prop_assert!(probe.max_in_flight.load(Ordering::SeqCst) <= n);
        prop_assert!(probe.max_per_key.load(Ordering::SeqCst) <= 1);
    }
}

#[tokio::test(start_paused = true)]
async fn different_keys_run_in_parallel_same_key_in_sequence() {
    let start = tokio::time::Instant::now();
    // 3 keys × 4 items × 10 ms with n = 3: 40 ms (each key sequential, keys in parallel).
    let items: Vec<(u8, u32)> = (0..12).map(|i| ((i % 3) as u8, i)).collect();
    let out = consume(stream::iter(items).map_concurrent_by_key(
        3,
        |(k, _)| *k,
        |(k, i)| async move {
            tokio::time::sleep(10 * MS).await;
            (k, i)
        },
    ))
    .await;
    assert_eq!(start.elapsed(), 40 * MS);
    for k in 0..3u8 {
        let got: Vec<u32> = out
            .iter()
            .filter(|(kk, _)| *kk == k)
            .map(|(_, i)| *i)
            .collect();
        let want: Vec<u32> = (0..12).filter(|i| (i % 3) as u8 == k).collect();
        assert_eq!(got, want);
    }
}

#[tokio::test(start_paused = true)]
async fn a_hot_key_is_bounded_by_the_waiting_limit() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let p = Arc::clone(&pulled);
    let src = stream::iter(0..100u32).inspect(move |_| {
        p.fetch_add(1, Ordering::SeqCst);
    });
    let mut s = Box::pin(
        src.map_concurrent_by_key(
            4,
            |_| "hot",
            |x| async move {
                tokio::time::sleep(10 * MS).await;
                x
            },
        )
        .with_waiting(3),
    );
    assert_eq!(s.next().await, Some(0));
    // One in flight (the key is busy) and 3 waiting: 1 yielded + 1 + 3 pulled at most.
    assert!(
        pulled.load(Ordering::SeqCst) <= 5,
        "pulled {}",
        pulled.load(Ordering::SeqCst)
    );
    assert!(s.waiting() <= 3 && s.in_flight() <= 1);
    assert_eq!(s.collect::<Vec<_>>().await, (1..100).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_work_reaches_the_consumer() {
    let s = stream::iter(0..5u32).map_concurrent_by_key(
        2,
        |x| x % 2,
        |x| async move {
            tokio::time::sleep(MS).await;
            assert!(x != 3, "work failed on 3");
            x
        },
    );
    let handle = tokio::spawn(s.collect::<Vec<_>>());
    let err = tokio::time::timeout(millrace::testing::HANG_BOUND, handle)
        .await
        .expect("hung")
        .unwrap_err();
    let payload = err.into_panic();
    let msg = payload.downcast_ref::<&str>().copied().unwrap_or_default();
    assert_eq!(msg, "work failed on 3");
}

#[tokio::test(start_paused = true)]
async fn drop_aborts_the_tasks_in_flight() {
    let before = alive_tasks();
    let mut s = Box::pin(stream::iter(0..10u32).map_concurrent_by_key(
        4,
        |x| *x,
        |x| async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            x
        },
    ));
    assert!(futures::poll!(s.next()).is_pending());
    assert_eq!(alive_tasks(), before + 4);
    drop(s);
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
    assert_eq!(alive_tasks(), before);
}

#[test]
fn zero_limit_is_rejected() {
    let e = millrace::wrappers::MapConcurrentByKey::checked_new(
        stream::iter([1]),
        0,
        |x: &i32| *x,
        |x| async move { x },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "`map_concurrent_by_key`: `n` must be at least 1, got 0; pass a non-zero value"
    );
}
