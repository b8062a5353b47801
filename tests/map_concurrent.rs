//! `map_concurrent` and its variants: bounds, order, no futurelock, drop, panics, fail-fast.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::prelude::*;
use millrace::testing::{self, DropCounter, Step, conformance, consume, record, scripted};
use millrace::wrappers::{
    MapConcurrent, MapConcurrentLocal, MapConcurrentStage, TryMapConcurrent, TryMapConcurrentStage,
};
use tokio::time::{Instant, sleep};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Counts futures in flight and remembers the maximum.
#[derive(Clone, Default)]
struct Gauge {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
}

impl Gauge {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
    }
    fn exit(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

fn gauged(g: &Gauge, delay: Duration, x: u64) -> impl Future<Output = u64> + Send + use<> {
    let g = g.clone();
    async move {
        g.enter();
        sleep(delay).await;
        g.exit();
        x
    }
}

async fn yield_a_few() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn in_flight_never_exceeds_n_and_reaches_n() {
    for n in [1, 3, 7] {
        let g = Gauge::default();
        let gg = g.clone();
        let out = consume(
            stream::iter(0..50u64).map_concurrent(n, move |x| gauged(&gg, ms(1 + x % 5), x)),
        )
        .await;
        assert_eq!(out, (0..50).collect::<Vec<_>>());
        assert_eq!(g.max(), n, "ordered, n = {n}");

        let g = Gauge::default();
        let gg = g.clone();
        let mut out = consume(
            stream::iter(0..50u64)
                .map_concurrent_unordered(n, move |x| gauged(&gg, ms(1 + x % 5), x)),
        )
        .await;
        out.sort();
        assert_eq!(out, (0..50).collect::<Vec<_>>());
        assert_eq!(g.max(), n, "unordered, n = {n}");
    }
}

#[tokio::test(start_paused = true)]
async fn ordered_keeps_input_order_unordered_yields_completion_order() {
    let delays = [50u64, 10, 40, 20, 30];
    let ordered = record(stream::iter(delays).map_concurrent(5, |d| async move {
        sleep(ms(d)).await;
        d
    }))
    .await;
    assert_eq!(ordered.items, delays);
    // Every item waits for the 50 ms head.
    assert_eq!(ordered.times, vec![ms(50); 5]);

    let unordered = record(
        stream::iter(delays).map_concurrent_unordered(5, |d| async move {
            sleep(ms(d)).await;
            d
        }),
    )
    .await;
    assert_eq!(unordered.items, [10, 20, 30, 40, 50]);
    assert_eq!(unordered.times, [ms(10), ms(20), ms(30), ms(40), ms(50)]);
}

#[tokio::test(start_paused = true)]
async fn thousand_sleeps_take_n_times_sleep_over_c() {
    for (c, expected) in [(10, ms(1000)), (100, ms(100))] {
        for ordered in [true, false] {
            let start = Instant::now();
            let work = |x: u32| async move {
                sleep(ms(10)).await;
                x
            };
            let count = if ordered {
                stream::iter(0..1000).map_concurrent(c, work).count().await
            } else {
                stream::iter(0..1000)
                    .map_concurrent_unordered(c, work)
                    .count()
                    .await
            };
            assert_eq!(count, 1000);
            let took = start.elapsed();
            assert!(
                took >= expected && took <= expected + ms(1),
                "c = {c}, ordered = {ordered}: took {took:?}, expected {expected:?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn work_progresses_while_the_consumer_is_busy() {
    let finished: Arc<std::sync::Mutex<Vec<Duration>>> = Arc::default();
    let start = Instant::now();
    let f = finished.clone();
    let mut s = stream::iter(0..4u64).map_concurrent(4, move |x| {
        let f = f.clone();
        async move {
            sleep(ms(10 * (x + 1))).await;
            f.lock().unwrap().push(start.elapsed());
            x
        }
    });
    assert_eq!(s.next().await, Some(0));
    assert_eq!(start.elapsed(), ms(10));
    // The consumer is busy for a second and does not poll the stream.
    sleep(ms(1000)).await;
    // The other three completed on their own tasks meanwhile, on time.
    assert_eq!(*finished.lock().unwrap(), [ms(10), ms(20), ms(30), ms(40)]);
    assert_eq!(s.collect::<Vec<_>>().await, [1, 2, 3]);
    assert_eq!(start.elapsed(), ms(1010));
}

#[tokio::test(start_paused = true)]
async fn no_futurelock_when_the_consumer_takes_a_lock_the_work_holds() {
    let lock = Arc::new(tokio::sync::Mutex::new(0u32));
    let l = lock.clone();
    let consumer = async move {
        let mut s = stream::iter(0..3u32).map_concurrent(2, move |x| {
            let l = l.clone();
            async move {
                if x == 0 {
                    sleep(ms(1)).await;
                }
                if x == 1 {
                    // Item 1 takes the lock and needs to be polled again to release it.
                    let mut g = l.lock().await;
                    sleep(ms(50)).await;
                    *g += 1;
                }
                x
            }
        });
        assert_eq!(s.next().await, Some(0));
        // Item 1 holds the lock; waiting for it without polling the stream would deadlock
        // in local mode. In spawned mode item 1 finishes on its own task.
        let seen = *lock.lock().await;
        let rest: Vec<u32> = s.collect().await;
        (seen, rest)
    };
    let (seen, rest) = tokio::time::timeout(Duration::from_secs(3600), tokio::spawn(consumer))
        .await
        .expect("futurelock: the consumer hung")
        .unwrap();
    assert_eq!(seen, 1);
    assert_eq!(rest, [1, 2]);
}

#[tokio::test(start_paused = true)]
async fn output_buffer_bounds_outstanding_items() {
    // Head takes 100 ms, the rest 1 ms each; n = 2 in flight.
    for (m, outstanding) in [(None, 4), (Some(0), 2), (Some(1), 3), (Some(5), 7)] {
        let pulled = Arc::new(AtomicUsize::new(0));
        let p = pulled.clone();
        let g = Gauge::default();
        let gg = g.clone();
        let s = stream::iter(0..20u64)
            .inspect(move |_| {
                p.fetch_add(1, Ordering::SeqCst);
            })
            .map_concurrent(2, move |x| {
                gauged(&gg, if x == 0 { ms(100) } else { ms(1) }, x)
            });
        let s = match m {
            Some(m) => s.with_output_buffer(m),
            None => s,
        };
        let consumer = tokio::spawn(s.collect::<Vec<_>>());
        sleep(ms(50)).await;
        assert_eq!(pulled.load(Ordering::SeqCst), outstanding, "m = {m:?}");
        assert_eq!(consumer.await.unwrap(), (0..20).collect::<Vec<_>>());
        assert_eq!(g.max(), 2);
    }
}

#[tokio::test(start_paused = true)]
async fn ready_futures_are_not_spawned() {
    let before = testing::alive_tasks();
    let mut s = stream::iter(0..100u32).map_concurrent(4, |x| async move { x + 1 });
    let mut max_tasks = 0;
    let mut out = Vec::new();
    while let Some(x) = s.next().await {
        max_tasks = max_tasks.max(testing::alive_tasks());
        out.push(x);
    }
    assert_eq!(out, (1..=100).collect::<Vec<_>>());
    assert_eq!(max_tasks, before);
}

type Boxed = std::pin::Pin<Box<dyn Stream<Item = u32> + Send>>;

/// `make(f)` wraps `0..10` with `f` and a limit of 4; every future holds a drop token and
/// never finishes.
async fn drop_case(name: &str, spawned: bool, make: fn(PendingFn) -> Boxed) {
    let before = testing::alive_tasks();
    let tokens = DropCounter::new();
    let captured = DropCounter::new();
    let t = tokens.clone();
    let c = captured.token();
    let f: PendingFn = Box::new(move |x| {
        let _ = &c;
        let token = t.token();
        Box::pin(async move {
            let _token = token;
            std::future::pending::<()>().await;
            x
        })
    });
    let mut s = make(f);
    assert!(futures::poll!(s.next()).is_pending());
    yield_a_few().await;
    assert_eq!(tokens.alive(), 4, "{name}");
    let tasks = if spawned { 4 } else { 0 };
    assert_eq!(testing::alive_tasks(), before + tasks, "{name}");
    assert_eq!(captured.alive(), 1, "{name}");
    drop(s);
    yield_a_few().await;
    assert_eq!(tokens.alive(), 0, "{name}");
    assert_eq!(testing::alive_tasks(), before, "{name}");
    assert_eq!(captured.alive(), 0, "{name}");
}

type PendingFn = Box<dyn FnMut(u32) -> std::pin::Pin<Box<dyn Future<Output = u32> + Send>> + Send>;

#[tokio::test(start_paused = true)]
async fn drop_aborts_every_task_in_flight() {
    drop_case("ordered", true, |f| {
        Box::pin(stream::iter(0..10).map_concurrent(4, f))
    })
    .await;
    drop_case("unordered", true, |f| {
        Box::pin(stream::iter(0..10).map_concurrent_unordered(4, f))
    })
    .await;
    drop_case("local", false, |f| {
        Box::pin(stream::iter(0..10).map_concurrent_local(4, f))
    })
    .await;
    drop_case("fail-fast", true, |mut f| {
        Box::pin(
            stream::iter(0..10)
                .try_map_concurrent(4, move |x| {
                    let fut = f(x);
                    async move { Ok::<u32, ()>(fut.await) }
                })
                .map(Result::unwrap),
        )
    })
    .await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "boom")]
async fn panic_in_f_reaches_the_consumer() {
    consume(stream::iter(0..3u32).map_concurrent(2, |x| {
        if x == 1 {
            panic!("boom");
        }
        async move { x }
    }))
    .await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "boom")]
async fn panic_in_a_spawned_future_reaches_the_consumer() {
    consume(stream::iter(0..3u32).map_concurrent(2, |x| async move {
        sleep(ms(5)).await;
        if x == 1 {
            panic!("boom");
        }
        x
    }))
    .await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "boom")]
async fn panic_in_an_unordered_future_reaches_the_consumer() {
    consume(
        stream::iter(0..3u32).map_concurrent_unordered(2, |x| async move {
            sleep(ms(5)).await;
            if x == 2 {
                panic!("boom");
            }
            x
        }),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn panic_is_never_a_normal_end() {
    let handle = tokio::spawn(
        stream::iter(0..3u32)
            .map_concurrent(2, |x| async move {
                sleep(ms(1)).await;
                assert!(x != 2, "boom");
                x
            })
            .collect::<Vec<_>>(),
    );
    let err = handle.await.unwrap_err();
    assert!(err.is_panic());
}

async fn fail_fast_case(ordered: bool) {
    let tokens = DropCounter::new();
    let pulled = Arc::new(AtomicUsize::new(0));
    let p = pulled.clone();
    let t = tokens.clone();
    let work = move |d: u64| {
        let token = t.token();
        async move {
            let _token = token;
            sleep(ms(d)).await;
            if d == 5 {
                Err(format!("failed after {d} ms"))
            } else {
                Ok(d)
            }
        }
    };
    let source = stream::iter([1000u64, 5, 2000, 1, 1, 1]).inspect(move |_| {
        p.fetch_add(1, Ordering::SeqCst);
    });
    let start = Instant::now();
    let mut s = if ordered {
        source.try_map_concurrent(3, work)
    } else {
        source.try_map_concurrent_unordered(3, work)
    };
    assert_eq!(s.next().await, Some(Err("failed after 5 ms".to_string())));
    assert_eq!(start.elapsed(), ms(5));
    yield_a_few().await;
    assert_eq!(tokens.alive(), 0, "siblings aborted");
    assert_eq!(s.next().await, None);
    assert!(s.is_terminated());
    assert_eq!(s.next().await, None);
    assert_eq!(
        pulled.load(Ordering::SeqCst),
        3,
        "upstream not pulled after the error"
    );
}

#[tokio::test(start_paused = true)]
async fn fail_fast_ordered_aborts_siblings_yields_err_then_ends() {
    fail_fast_case(true).await;
}

#[tokio::test(start_paused = true)]
async fn fail_fast_unordered_aborts_siblings_yields_err_then_ends() {
    fail_fast_case(false).await;
}

#[tokio::test(start_paused = true)]
async fn fail_fast_yields_oks_before_the_error() {
    let out: Vec<Result<u32, u32>> = stream::iter(0..10u32)
        .try_map_concurrent(2, |x| async move {
            sleep(ms(1)).await;
            if x == 4 { Err(x) } else { Ok(x) }
        })
        .collect()
        .await;
    assert_eq!(out, [Ok(0), Ok(1), Ok(2), Ok(3), Err(4)]);
}

#[tokio::test(start_paused = true)]
async fn fail_fast_ready_error_behind_a_slow_head() {
    let start = Instant::now();
    let out: Vec<Result<u64, u64>> = stream::iter([100u64, 0])
        .try_map_concurrent(2, |d| async move {
            if d == 0 {
                return Err(0);
            }
            sleep(ms(d)).await;
            Ok(d)
        })
        .collect()
        .await;
    assert_eq!(out, [Err(0)]);
    assert_eq!(start.elapsed(), ms(0));
}

fn script() -> Scripted3 {
    scripted([
        Step::Item(30u64),
        Step::Delay(ms(5)),
        Step::Item(10),
        Step::Item(20),
        Step::Pending,
        Step::Item(1),
    ])
}
type Scripted3 = millrace::testing::Scripted<u64>;

async fn wait_then(d: u64) -> u64 {
    sleep(ms(d)).await;
    d
}

#[tokio::test(start_paused = true)]
async fn conformance_of_every_variant() {
    conformance(
        || script().map_concurrent(2, wait_then),
        vec![30, 10, 20, 1],
    )
    .await;
    conformance(
        || script().map_concurrent(2, wait_then).with_output_buffer(0),
        vec![30, 10, 20, 1],
    )
    .await;
    conformance(
        || script().map_concurrent(1, |x| async move { x }),
        vec![30, 10, 20, 1],
    )
    .await;
    conformance(
        || script().map_concurrent_unordered(4, wait_then),
        vec![1, 10, 20, 30],
    )
    .await;
    conformance(
        || script().map_concurrent_local(2, wait_then),
        vec![30, 10, 20, 1],
    )
    .await;
    conformance(
        || script().map_concurrent_local_unordered(4, wait_then),
        vec![1, 10, 20, 30],
    )
    .await;
    conformance(
        || script().try_map_concurrent(2, |x| async move { Ok::<_, ()>(wait_then(x).await) }),
        vec![Ok(30), Ok(10), Ok(20), Ok(1)],
    )
    .await;
    conformance(
        || {
            script().try_map_concurrent_unordered(2, |x| async move {
                if x == 10 {
                    Err(x)
                } else {
                    Ok(wait_then(x).await)
                }
            })
        },
        vec![Err(10)],
    )
    .await;
    conformance(
        || script().wrap(MapConcurrentStage::new(2, wait_then)),
        vec![30, 10, 20, 1],
    )
    .await;
    conformance(
        || script().wrap(MapConcurrentStage::unordered(4, wait_then).output_buffer(0)),
        vec![1, 10, 20, 30],
    )
    .await;
    conformance(
        || {
            script().wrap(TryMapConcurrentStage::new(2, |x| async move {
                if x == 20 {
                    Err(x)
                } else {
                    Ok(wait_then(x).await)
                }
            }))
        },
        // 20 fails at once while 30 and 10 still run: fail-fast aborts them.
        vec![Err(20)],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn local_mode_bound_and_order() {
    let g = Gauge::default();
    let gg = g.clone();
    let out: Vec<u64> = stream::iter(0..30u64)
        .map_concurrent_local(3, move |x| gauged(&gg, ms(1 + (7 * x) % 5), x))
        .collect()
        .await;
    assert_eq!(out, (0..30).collect::<Vec<_>>());
    assert_eq!(g.max(), 3);

    let r =
        record(stream::iter([30u64, 10, 20]).map_concurrent_local_unordered(3, wait_then)).await;
    assert_eq!(r.items, [10, 20, 30]);
    assert_eq!(r.times, [ms(10), ms(20), ms(30)]);
}

#[tokio::test(start_paused = true)]
async fn local_mode_only_progresses_while_polled() {
    let start = Instant::now();
    let mut s = Box::pin(stream::iter([10u64, 20]).map_concurrent_local(2, wait_then));
    assert_eq!(s.next().await, Some(10));
    sleep(ms(100)).await; // busy consumer: item 20 is not polled meanwhile...
    assert_eq!(s.next().await, Some(20));
    // ...but its timer still ran, so it is ready at once (no extra 10 ms): the caveat is
    // about work that needs polling to make progress, as the futurelock test shows.
    assert_eq!(start.elapsed(), ms(110));
}

#[test]
#[should_panic(
    expected = "`map_concurrent`: `limit` must be at least 1, got 0; pass a non-zero value"
)]
fn zero_limit_is_rejected() {
    let _ = stream::iter([1]).map_concurrent(0, |x| async move { x });
}

#[test]
#[should_panic(
    expected = "`map_concurrent_unordered`: `limit` must be at least 1, got 0; pass a non-zero value"
)]
fn zero_limit_is_rejected_unordered() {
    let _ = stream::iter([1]).map_concurrent_unordered(0, |x| async move { x });
}

#[test]
#[should_panic(expected = "`map_concurrent_local`: `limit` must be at least 1, got 0")]
fn zero_limit_is_rejected_local() {
    let _ = stream::iter([1]).map_concurrent_local(0, |x| async move { x });
}

#[test]
#[should_panic(expected = "`try_map_concurrent`: `limit` must be at least 1, got 0")]
fn zero_limit_is_rejected_fail_fast() {
    let _ = stream::iter([1]).try_map_concurrent(0, |x| async move { Ok::<_, ()>(x) });
}

#[test]
#[should_panic(expected = "`map_concurrent`: `limit` must be at least 1, got 0")]
fn zero_limit_stage_is_rejected() {
    let _ = MapConcurrentStage::new(0, |x: u8| async move { x });
}

#[test]
fn checked_constructors_return_the_config_error() {
    let msg = |e: millrace::ConfigError| e.to_string();
    let f = |x: u8| async move { x };
    assert_eq!(
        msg(MapConcurrent::checked_new(stream::iter([1u8]), 0, f).unwrap_err()),
        "`map_concurrent`: `limit` must be at least 1, got 0; pass a non-zero value"
    );
    assert!(MapConcurrent::checked_new_unordered(stream::iter([1u8]), 0, f).is_err());
    assert!(MapConcurrentLocal::checked_new(stream::iter([1u8]), 0, f).is_err());
    assert!(MapConcurrentLocal::checked_new_unordered(stream::iter([1u8]), 0, f).is_err());
    let g = |x: u8| async move { Ok::<_, ()>(x) };
    assert!(TryMapConcurrent::checked_new(stream::iter([1u8]), 0, g).is_err());
    assert!(TryMapConcurrent::checked_new_unordered(stream::iter([1u8]), 0, g).is_err());
    assert!(MapConcurrentStage::checked_new(0, f).is_err());
    assert!(MapConcurrentStage::checked_unordered(0, f).is_err());
    assert!(TryMapConcurrentStage::checked_new(0, g).is_err());
    assert_eq!(
        TryMapConcurrentStage::checked_unordered(0, g)
            .unwrap_err()
            .to_string(),
        "`try_map_concurrent_unordered`: `limit` must be at least 1, got 0; pass a non-zero value"
    );
    assert!(MapConcurrent::checked_new(stream::iter([1u8]), 1, f).is_ok());
}

#[test]
#[allow(deprecated)]
fn the_old_try_constructor_names_still_work() {
    let f = |x: u8| async move { x };
    let g = |x: u8| async move { Ok::<_, ()>(x) };
    assert!(MapConcurrent::try_new(stream::iter([1u8]), 0, f).is_err());
    assert!(MapConcurrent::try_new_unordered(stream::iter([1u8]), 1, f).is_ok());
    assert!(MapConcurrentLocal::try_new(stream::iter([1u8]), 0, f).is_err());
    assert!(MapConcurrentLocal::try_new_unordered(stream::iter([1u8]), 0, f).is_err());
    assert!(TryMapConcurrent::try_new(stream::iter([1u8]), 0, g).is_err());
    assert!(TryMapConcurrent::try_new_unordered(stream::iter([1u8]), 0, g).is_err());
    assert!(MapConcurrentStage::try_new(0, f).is_err());
    assert!(MapConcurrentStage::try_unordered(0, f).is_err());
    assert!(TryMapConcurrentStage::try_new(0, g).is_err());
    assert!(TryMapConcurrentStage::try_unordered(0, g).is_err());
}

#[test]
fn wrappers_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let f = |x: u32| async move { x };
    assert_send(&stream::iter([1u32]).map_concurrent(2, f));
    assert_send(&stream::iter([1u32]).map_concurrent_unordered(2, f));
    assert_send(&stream::iter([1u32]).map_concurrent_local(2, f));
    assert_send(&stream::iter([1u32]).try_map_concurrent(2, |x| async move { Ok::<_, ()>(x) }));
    assert_send(&MapConcurrentStage::new(2, f));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounds_hold_on_a_multi_threaded_runtime() {
    for ordered in [true, false] {
        let g = Gauge::default();
        let gg = g.clone();
        let work = move |x: u64| {
            let g = gg.clone();
            async move {
                g.enter();
                for _ in 0..(x % 4) {
                    tokio::task::yield_now().await;
                }
                g.exit();
                x
            }
        };
        let s = stream::iter(0..5_000u64);
        let mut out: Vec<u64> = if ordered {
            s.map_concurrent(8, work).collect().await
        } else {
            s.map_concurrent_unordered(8, work).collect().await
        };
        if !ordered {
            out.sort();
        }
        assert_eq!(out, (0..5_000).collect::<Vec<_>>(), "ordered = {ordered}");
        assert!(g.max() <= 8, "ordered = {ordered}: {} in flight", g.max());
    }
}

#[tokio::test(start_paused = true)]
async fn mixed_ready_and_pending_futures_keep_order_in_every_mode() {
    let work = |x: u64| async move {
        if x % 3 == 1 {
            sleep(ms(1 + x % 7)).await;
        }
        x
    };
    let expected: Vec<u64> = (0..200).collect();
    let spawned: Vec<u64> = stream::iter(0..200).map_concurrent(5, work).collect().await;
    assert_eq!(spawned, expected);
    let local: Vec<u64> = stream::iter(0..200)
        .map_concurrent_local(5, work)
        .collect()
        .await;
    assert_eq!(local, expected);
    let tight: Vec<u64> = stream::iter(0..200)
        .map_concurrent_local(2, work)
        .with_output_buffer(0)
        .collect()
        .await;
    assert_eq!(tight, expected);
    for mut out in [
        stream::iter(0..200)
            .map_concurrent_unordered(5, work)
            .collect::<Vec<_>>()
            .await,
        stream::iter(0..200)
            .map_concurrent_local_unordered(5, work)
            .collect::<Vec<_>>()
            .await,
    ] {
        out.sort();
        assert_eq!(out, expected);
    }
}

// ---- cooperative scheduling (tokio's budget) and parallelism on a multi-threaded runtime ----

#[tokio::test(flavor = "current_thread")]
async fn ready_futures_do_not_starve_a_neighbour_task() {
    // A ticker on the same current-thread runtime counts its turns.
    let ticks = Arc::new(AtomicUsize::new(0));
    let t = ticks.clone();
    let ticker = tokio::spawn(async move {
        loop {
            t.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
        }
    });
    tokio::task::yield_now().await; // let the ticker start
    for ordered in [true, false] {
        let t = ticks.clone();
        let consumer = tokio::spawn(async move {
            let s = stream::iter(0..10_000u64);
            let mut s = if ordered {
                s.map_concurrent(16, std::future::ready).boxed()
            } else {
                s.map_concurrent_unordered(16, std::future::ready).boxed()
            };
            let first = t.load(Ordering::SeqCst);
            let mut n = 0u64;
            while let Some(_x) = s.next().await {
                n += 1;
            }
            (n, t.load(Ordering::SeqCst) - first)
        });
        let (n, ticks_during) = consumer.await.unwrap();
        assert_eq!(n, 10_000);
        // Tokio's budget is 128 units per task turn: the consumer gives way at least once per
        // ~128 items, so the ticker runs about 78 times; without the budget it ran 0 times.
        assert!(
            ticks_during >= 10_000 / 128 / 2,
            "ordered: {ordered}: the neighbour ran {ticks_during} times during 10,000 items"
        );
    }
    // The local mode takes part in the budget too.
    let t = ticks.clone();
    let consumer = tokio::spawn(async move {
        let mut s = stream::iter(0..10_000u64).map_concurrent_local(16, std::future::ready);
        let first = t.load(Ordering::SeqCst);
        while s.next().await.is_some() {}
        t.load(Ordering::SeqCst) - first
    });
    let ticks_during = consumer.await.unwrap();
    assert!(ticks_during >= 10_000 / 128 / 2, "local: {ticks_during}");
    ticker.abort();
}

/// Waits (spinning: this is CPU work before any `.await`) until `peers` futures have arrived
/// at `gate`, or gives up after 10 s of real time; returns whether they all arrived.
fn rendezvous(gate: &AtomicUsize, peers: usize) -> bool {
    gate.fetch_add(1, Ordering::SeqCst);
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while gate.load(Ordering::SeqCst) < peers {
        if std::time::Instant::now() > give_up {
            return false;
        }
        std::hint::spin_loop();
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_work_before_the_first_await_runs_in_parallel_on_a_multi_threaded_runtime() {
    // Two futures that each must see the other running at the same time before they finish:
    // polled one at a time (inline on the consumer) the first one would wait in vain.
    for ordered in [true, false] {
        let gate = Arc::new(AtomicUsize::new(0));
        let f = move |_: u32| {
            let gate = gate.clone();
            async move { rendezvous(&gate, 2) }
        };
        let out: Vec<bool> = if ordered {
            stream::iter(0..2u32).map_concurrent(2, f).collect().await
        } else {
            stream::iter(0..2u32)
                .map_concurrent_unordered(2, f)
                .collect()
                .await
        };
        assert_eq!(out, [true, true], "ordered: {ordered}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn on_a_current_thread_runtime_ready_futures_still_cost_no_task() {
    let tasks = testing::alive_tasks();
    let mut s = stream::iter(0..100u32).map_concurrent(4, |x| std::future::ready(x + 1));
    assert_eq!(s.next().await, Some(1));
    assert_eq!(s.in_flight(), 0);
    assert_eq!(testing::alive_tasks(), tasks);
    assert_eq!(s.count().await, 99);
}
