//! Fan-out (`broadcast`, `partition`, `balance`) and fan-in (`try_merge`, `merge_in_order`):
//! every branch gets its items in order, the slowest branch sets the pace within the bound, a
//! dropped branch does not stop the others, panics and errors reach every live branch.
//! Every consumer runs on a spawned task whose `JoinHandle` is bounded (`guard`), under paused
//! time.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{FutureExt, StreamExt, stream};
use millrace::prelude::*;
use millrace::testing::{HANG_BOUND, Step, alive_tasks, scripted};
use millrace::wrappers::{Balance, Broadcast, Partition};

const MS: Duration = Duration::from_millis(1);

/// Awaits a spawned consumer with a hang bound; returns its result or its panic message.
async fn guard<T: Send + 'static>(handle: tokio::task::JoinHandle<T>) -> Result<T, String> {
    match tokio::time::timeout(HANG_BOUND, handle).await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => {
            let payload = e.into_panic();
            Err(payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default())
        }
        Err(_) => panic!("a branch consumer hung for {HANG_BOUND:?}"),
    }
}

fn collect_on_task<S>(s: S) -> tokio::task::JoinHandle<Vec<S::Item>>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    tokio::spawn(s.collect::<Vec<_>>())
}

/// A source yielding `0..n` with `gap` of tokio time between items.
fn spaced(n: u32, gap: Duration) -> impl Stream<Item = u32> + Send + 'static {
    scripted((0..n).flat_map(move |i| [Step::Delay(gap), Step::Item(i)]))
}

// --- broadcast -------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn broadcast_every_branch_sees_every_item_in_order() {
    let branches = spaced(50, MS).broadcast(3);
    let handles: Vec<_> = branches.into_iter().map(collect_on_task).collect();
    for h in handles {
        assert_eq!(guard(h).await.unwrap(), (0..50).collect::<Vec<_>>());
    }
}

#[tokio::test(start_paused = true)]
async fn broadcast_slow_branch_sets_the_pace_within_the_bound() {
    const CAP: usize = 4;
    let slow_yielded = Arc::new(AtomicUsize::new(0));
    let max_lead = Arc::new(AtomicUsize::new(0));
    let [fast, slow] =
        <[_; 2]>::try_from(Broadcast::split(stream::iter(0..100u32), 2, CAP).unwrap()).unwrap();
    let (sy, ml) = (Arc::clone(&slow_yielded), Arc::clone(&max_lead));
    let fast = tokio::spawn(
        fast.inspect(move |x| {
            // Item x yielded by the fast branch: x + 1 items were pulled.
            let lead = (*x as usize + 1) - sy.load(Ordering::SeqCst);
            ml.fetch_max(lead, Ordering::SeqCst);
        })
        .count(),
    );
    let sy = Arc::clone(&slow_yielded);
    let start = tokio::time::Instant::now();
    let slow = tokio::spawn(
        slow.then(move |x| {
            let sy = Arc::clone(&sy);
            async move {
                tokio::time::sleep(10 * MS).await;
                sy.fetch_add(1, Ordering::SeqCst);
                x
            }
        })
        .collect::<Vec<_>>(),
    );
    assert_eq!(guard(fast).await.unwrap(), 100);
    assert_eq!(guard(slow).await.unwrap(), (0..100).collect::<Vec<_>>());
    assert!(
        max_lead.load(Ordering::SeqCst) <= CAP,
        "lead {}",
        max_lead.load(Ordering::SeqCst)
    );
    // The fast branch could not finish before the slow one was within CAP of the end.
    assert!(start.elapsed() >= 1000 * MS);
}

#[tokio::test(start_paused = true)]
async fn broadcast_dropped_branch_does_not_stop_the_others() {
    let [a, b, c] = <[_; 3]>::try_from(Broadcast::split(spaced(20, MS), 3, 2).unwrap()).unwrap();
    drop(b); // before anything
    let a = collect_on_task(a);
    // c stops after 5 items: dropped mid-stream with a capacity of 2.
    let c = tokio::spawn(c.take(5).collect::<Vec<_>>());
    assert_eq!(guard(c).await.unwrap(), [0, 1, 2, 3, 4]);
    assert_eq!(guard(a).await.unwrap(), (0..20).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn broadcast_panic_in_one_branch_consumer_leaves_the_others_running() {
    let [a, b] = <[_; 2]>::try_from(Broadcast::split(spaced(10, MS), 2, 2).unwrap()).unwrap();
    let a = collect_on_task(a);
    let b = tokio::spawn(
        b.map(|x| {
            if x == 3 {
                panic!("consumer b failed at 3")
            } else {
                x
            }
        })
        .count(),
    );
    assert!(
        guard(b)
            .await
            .unwrap_err()
            .contains("consumer b failed at 3")
    );
    assert_eq!(guard(a).await.unwrap(), (0..10).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn broadcast_upstream_errors_and_panic_reach_every_branch() {
    let src = scripted([
        Step::ok(1),
        Step::err("bad row"),
        Step::Delay(MS),
        Step::ok(2),
        Step::Panic("source exploded"),
    ]);
    let branches = src.broadcast(3);
    let seen: Vec<_> = (0..3)
        .map(|_| Arc::new(std::sync::Mutex::new(Vec::new())))
        .collect();
    let handles: Vec<_> = branches
        .into_iter()
        .zip(seen.iter().cloned())
        .map(|(b, log)| {
            tokio::spawn(b.for_each(move |x| {
                log.lock().unwrap().push(x);
                async {}
            }))
        })
        .collect();
    let mut original = 0;
    for h in handles {
        let msg = guard(h).await.unwrap_err();
        if msg == "source exploded" {
            original += 1;
        } else {
            assert_eq!(
                msg,
                "`broadcast`: the shared upstream panicked: source exploded"
            );
        }
    }
    assert_eq!(
        original, 1,
        "exactly one branch re-raises the original payload"
    );
    for log in seen {
        assert_eq!(*log.lock().unwrap(), [Ok(1), Err("bad row"), Ok(2)]);
    }
}

#[tokio::test(start_paused = true)]
async fn broadcast_buffer_is_bounded() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let p = Arc::clone(&pulled);
    let src = stream::iter(0..1000).inspect(move |_| {
        p.fetch_add(1, Ordering::SeqCst);
    });
    let mut branches = Broadcast::split(src, 2, 8).unwrap();
    // Branch 0 runs ahead; branch 1 never polls: at most 8 pulled.
    let mut a = branches.remove(0);
    let mut got = Vec::new();
    while let Some(Some(x)) = a.next().now_or_never() {
        got.push(x);
    }
    assert_eq!(got, (0..8).collect::<Vec<_>>());
    assert_eq!(pulled.load(Ordering::SeqCst), 8);
    assert_eq!(a.buffered_len(), 8);
    // Dropping the laggard frees the others.
    drop(branches);
    assert_eq!(a.count().await, 992);
}

// --- partition -------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn partition_routes_each_item_once_in_order() {
    let parts = spaced(30, MS).partition(3, |x| (*x % 3) as usize);
    let handles: Vec<_> = parts.into_iter().map(collect_on_task).collect();
    for (i, h) in handles.into_iter().enumerate() {
        let want: Vec<u32> = (0..30).filter(|x| (*x % 3) as usize == i).collect();
        assert_eq!(guard(h).await.unwrap(), want);
    }
}

#[tokio::test(start_paused = true)]
async fn partition_dropped_branch_discards_and_counts() {
    let mut parts = Partition::split(spaced(20, MS), 2, 4, |x: &u32| (*x % 2) as usize).unwrap();
    let odd = parts.pop().unwrap();
    let even = parts.pop().unwrap();
    let discarded = even.discard_counter();
    let odd = tokio::spawn(odd.take(3).collect::<Vec<_>>()); // then dropped
    let even = collect_on_task(even);
    assert_eq!(guard(odd).await.unwrap(), [1, 3, 5]);
    assert_eq!(
        guard(even).await.unwrap(),
        (0..20).step_by(2).collect::<Vec<_>>()
    );
    assert_eq!(discarded.get(), 7, "odd items after the third: 7..=19");
}

#[tokio::test(start_paused = true)]
async fn partition_slow_branch_holds_back_within_the_bound() {
    const CAP: usize = 6;
    let pulled = Arc::new(AtomicUsize::new(0));
    let p = Arc::clone(&pulled);
    let src = stream::iter(0..40u32).inspect(move |_| {
        p.fetch_add(1, Ordering::SeqCst);
    });
    let [a, b] =
        <[_; 2]>::try_from(Partition::split(src, 2, CAP, |x: &u32| (*x % 2) as usize).unwrap())
            .unwrap();
    let b_yielded = Arc::new(AtomicUsize::new(0));
    let a = tokio::spawn(a.count());
    let by = Arc::clone(&b_yielded);
    let pl = Arc::clone(&pulled);
    let b = tokio::spawn(
        b.then(move |x| {
            let (by, pl) = (Arc::clone(&by), Arc::clone(&pl));
            async move {
                tokio::time::sleep(10 * MS).await;
                let yielded_b = by.fetch_add(1, Ordering::SeqCst);
                // `a` yields every even item at once, so the outstanding items are b's odd
                // ones: at most CAP of them. Odd items pulled ≤ b's yielded + CAP, and evens
                // alternate with them.
                let pulled = pl.load(Ordering::SeqCst);
                assert!(
                    pulled <= 2 * (yielded_b + 1 + CAP) + 1,
                    "pulled {pulled} with b at {yielded_b}"
                );
                x
            }
        })
        .collect::<Vec<_>>(),
    );
    assert_eq!(guard(a).await.unwrap(), 20);
    assert_eq!(
        guard(b).await.unwrap(),
        (1..40).step_by(2).collect::<Vec<_>>()
    );
}

#[tokio::test(start_paused = true)]
async fn partition_bad_route_panics_in_every_branch() {
    let parts = spaced(5, MS).partition(2, |x| if *x == 3 { 7 } else { (*x % 2) as usize });
    let handles: Vec<_> = parts.into_iter().map(collect_on_task).collect();
    let mut msgs = Vec::new();
    for h in handles {
        msgs.push(guard(h).await.unwrap_err());
    }
    let original = "`partition`: the routing function returned branch 7 for 2 branches; return an index below 2";
    assert!(msgs.contains(&original.to_string()), "{msgs:?}");
    assert!(msgs.iter().all(|m| m.contains(original)), "{msgs:?}");
}

// --- balance ---------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn balance_gives_each_item_to_one_free_branch() {
    let workers = spaced(40, MS).balance(3);
    let handles: Vec<_> = workers
        .into_iter()
        .map(|w| {
            let pause = 2 * MS * (w.index() as u32 + 1);
            tokio::spawn(
                w.then(move |x| async move {
                    tokio::time::sleep(pause).await;
                    x
                })
                .collect::<Vec<_>>(),
            )
        })
        .collect();
    let mut all = Vec::new();
    let mut counts = Vec::new();
    for h in handles {
        let got = guard(h).await.unwrap();
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "each branch in upstream order"
        );
        counts.push(got.len());
        all.extend(got);
    }
    all.sort();
    assert_eq!(all, (0..40).collect::<Vec<_>>(), "every item exactly once");
    assert!(
        counts[0] > counts[2],
        "the fastest worker took the most: {counts:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn balance_dropped_branch_does_not_stop_the_others() {
    let [a, b] = <[_; 2]>::try_from(Balance::split(spaced(10, MS), 2).unwrap()).unwrap();
    let b = tokio::spawn(b.take(2).collect::<Vec<_>>());
    let a = collect_on_task(a);
    let b = guard(b).await.unwrap();
    let a = guard(a).await.unwrap();
    assert_eq!(a.len() + b.len(), 10);
}

#[tokio::test(start_paused = true)]
async fn balance_upstream_panic_reaches_every_branch() {
    let src = scripted([Step::Item(1), Step::Delay(MS), Step::Panic("gone")]);
    let handles: Vec<_> = src.balance(2).into_iter().map(collect_on_task).collect();
    let mut msgs = Vec::new();
    for h in handles {
        msgs.push(guard(h).await.unwrap_err());
    }
    msgs.sort();
    assert_eq!(
        msgs,
        ["`balance`: the shared upstream panicked: gone", "gone"]
    );
}

#[tokio::test(start_paused = true)]
async fn fan_out_drop_releases_the_upstream_and_tasks() {
    let counter = millrace::testing::DropCounter::new();
    let before = alive_tasks();
    let token = counter.token();
    let src = spaced(10, MS).map(move |x| {
        let _ = &token;
        x
    });
    let mut branches = src.broadcast(2);
    let _ = branches[0].next().await;
    drop(branches);
    assert_eq!(counter.alive(), 0);
    let token = counter.token();
    let parts = spaced(10, MS)
        .map(move |x| {
            let _ = &token;
            x
        })
        .partition(2, |x| *x as usize % 2);
    drop(parts);
    let token = counter.token();
    let mut workers = spaced(10, MS)
        .map(move |x| {
            let _ = &token;
            x
        })
        .balance(2);
    let _ = workers[1].next().await;
    drop(workers);
    assert_eq!(counter.alive(), 0);
    assert_eq!(alive_tasks(), before);
}

// --- fan-in ----------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn try_merge_ends_on_the_first_error_and_drops_every_stream() {
    let counter = millrace::testing::DropCounter::new();
    let (ta, tb) = (counter.token(), counter.token());
    let a = scripted([
        Step::ok(1),
        Step::Delay(5 * MS),
        Step::err("a failed"),
        Step::ok(99),
    ])
    .map(move |x| {
        let _ = &ta;
        x
    });
    let b = spaced(100, MS).map(Ok).map(move |x| {
        let _ = &tb;
        x
    });
    let merged = try_merge([a.boxed(), b.boxed()]);
    let out = guard(tokio::spawn(merged.collect::<Vec<Result<u32, &str>>>()))
        .await
        .unwrap();
    assert_eq!(out.last(), Some(&Err("a failed")));
    assert!(!out.contains(&Ok(99)));
    assert!(out.len() < 10, "b stopped when a failed: {out:?}");
    assert_eq!(
        counter.alive(),
        0,
        "both streams dropped once the error was yielded"
    );
}

#[tokio::test(start_paused = true)]
async fn merge_in_order_restores_upstream_order_after_partitioned_concurrent_work() {
    // Branch work takes a different time per item, so the branches finish out of step.
    let parts = stream::iter(0..60u64)
        .enumerate()
        .partition(3, |(_, x)| (*x % 3) as usize);
    let branches = parts.into_iter().map(|p| {
        p.map_concurrent(4, |(i, x)| async move {
            tokio::time::sleep(MS * ((x * 7 % 11) as u32)).await;
            (i, x * 2)
        })
    });
    let merged = merge_in_order(branches).map(|(_, v)| v);
    let out = guard(tokio::spawn(merged.collect::<Vec<_>>()))
        .await
        .unwrap();
    assert_eq!(out, (0..60).map(|x| x * 2).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn merge_in_order_waits_through_gaps() {
    // Branch 1 filters out odd indices: the merge must not wait for them forever.
    let a = stream::iter([(0usize, 'a'), (2, 'c'), (5, 'f')]);
    let b = stream::iter([(1usize, 'b'), (4, 'e')]);
    let out: String = merge_in_order([a.boxed(), b.boxed()])
        .map(|(_, c)| c)
        .collect()
        .await;
    assert_eq!(out, "abcef");
}

#[tokio::test(start_paused = true)]
async fn futures_select_all_and_zip_cover_the_rest_of_fan_in() {
    // Shown, not rewritten: zip pairs two broadcast branches in lock step.
    let [a, b] = <[_; 2]>::try_from(stream::iter(0..4).broadcast(2)).unwrap();
    let pairs: Vec<(i32, i32)> = a.zip(b.map(|x| x * 10)).collect().await;
    assert_eq!(pairs, [(0, 0), (1, 10), (2, 20), (3, 30)]);
    let mut all: Vec<i32> = stream::select_all(stream::iter(0..6).balance(3))
        .collect()
        .await;
    all.sort();
    assert_eq!(all, (0..6).collect::<Vec<_>>());
}

#[test]
fn zero_branches_or_capacity_is_rejected() {
    let e = Broadcast::split(stream::iter([1]), 0, 1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "`broadcast`: `n` must be at least 1, got 0; pass a non-zero value"
    );
    let e = Partition::split(stream::iter([1]), 2, 0, |_: &i32| 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "`partition`: `capacity` must be at least 1, got 0; pass a non-zero value"
    );
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| stream::iter([1]).balance(0)));
    assert!(r.is_err());
}
