//! The `Stream` contract (`reliability::check_stage`, as in `tests/conformance.rs`) for the
//! stages of issue 13: fan-out branches (checked through a fan-in, and alone with their
//! siblings dropped), `try_merge`, `merge_in_order`, `map_concurrent_by_key`, both window
//! stages, the overflow strategies and `conflate`/`latest`. Each is checked for: same output on
//! a spawned hang-guarded consumer, in place and under spurious `Pending`s; honest `size_hint`;
//! finished stays finished; every `Pending` followed by a wake of that poll's waker; the pinned
//! upstream never moved; drop before the first poll, after the first item and after a
//! `Pending` releases every captured token and leaves no task alive.

mod support;
use support::reliability;

use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::prelude::*;
use millrace::testing::{DropCounter, Step, scripted};
use millrace::wrappers::{Broadcast, Partition, WindowEvent};
use reliability::{Probe, check_stage, probe, src};

const MS: Duration = Duration::from_millis(1);

type R = Result<u32, &'static str>;

/// 0..5, 1 ms apart: a consumer always takes an item before the next arrives.
fn spaced(c: &DropCounter) -> Probe<millrace::testing::Scripted<u32>> {
    probe(
        scripted((0..5).flat_map(|i| [Step::Delay(MS), Step::Item(i)])),
        c,
    )
}

fn res_src(c: &DropCounter) -> Probe<millrace::testing::Scripted<R>> {
    probe(
        scripted([
            Step::ok(0),
            Step::Delay(10 * MS),
            Step::ok(1),
            Step::err("e2"),
            Step::Pending,
            Step::ok(3),
        ]),
        c,
    )
}

fn two<T>(v: Vec<T>) -> [T; 2] {
    <[T; 2]>::try_from(v).unwrap_or_else(|_| panic!("two branches"))
}

#[tokio::test(start_paused = true)]
async fn fan_out_stages() {
    check_stage(
        "broadcast(2) zipped",
        |c| {
            let [a, b] = two(src(c).broadcast(2));
            // `fuse`: futures' `Zip` ends when either side ends but reports `is_terminated`
            // only when both have; a branch may still be parked when its sibling sees the end.
            a.zip(b).fuse()
        },
        (0..5).map(|x| (x, x)).collect(),
        1,
    )
    .await;
    check_stage(
        "Broadcast::split(3, 1), one dropped, two zipped",
        |c| {
            let mut v = Broadcast::split(src(c), 3, 1).unwrap();
            drop(v.remove(1));
            let [a, b] = two(v);
            a.zip(b).map(|(a, b)| a + b).fuse()
        },
        (0..5).map(|x| 2 * x).collect(),
        1,
    )
    .await;
    check_stage(
        "broadcast(2), one branch dropped",
        |c| {
            let [a, _] = two(src(c).broadcast(2));
            a
        },
        (0..5).collect(),
        1,
    )
    .await;
    check_stage(
        "partition(2) + merge_in_order",
        |c| {
            let parts = src(c).enumerate().partition(2, |(_, x)| (*x % 2) as usize);
            merge_in_order(parts).map(|(_, x)| x)
        },
        (0..5).collect(),
        1,
    )
    .await;
    check_stage(
        "Partition::split(2, 1), odd branch dropped",
        |c| {
            let [even, _] =
                two(Partition::split(src(c), 2, 1, |x: &u32| (*x % 2) as usize).unwrap());
            even
        },
        vec![0, 2, 4],
        1,
    )
    .await;
    check_stage(
        "balance(2) + select_all",
        |c| stream::select_all(src(c).balance(2)),
        (0..5).collect(),
        1,
    )
    .await;
    check_stage(
        "balance(3), two branches dropped",
        |c| src(c).balance(3).remove(1),
        (0..5).collect(),
        1,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn fan_in_stages() {
    check_stage(
        "try_merge",
        |c| try_merge([Box::pin(res_src(c)), Box::pin(res_src(c))]),
        vec![Ok(0), Ok(0), Ok(1), Ok(1), Err("e2")],
        1,
    )
    .await;
    check_stage(
        "merge_in_order of two enumerated halves",
        |c| {
            let parts = src(c)
                .enumerate()
                .partition(2, |(i, _)| usize::from(*i >= 2));
            merge_in_order(parts)
        },
        (0..5).map(|x| (x as usize, x)).collect(),
        1,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn keyed_and_window_stages() {
    check_stage(
        "map_concurrent_by_key(3, one key)",
        |c| src(c).map_concurrent_by_key(3, |_| (), |x| async move { x * 2 }),
        (0..5).map(|x| x * 2).collect(),
        1,
    )
    .await;
    check_stage(
        "map_concurrent_by_key(2, sleeping work)",
        |c| {
            src(c)
                .map_concurrent_by_key(
                    2,
                    |_| 0u8,
                    |x| async move {
                        tokio::time::sleep(MS).await;
                        x
                    },
                )
                .with_waiting(1)
        },
        (0..5).collect(),
        1,
    )
    .await;
    // 0 at t = 0 closes at 5 ms (timer); 1..=4 at 10 ms are flushed at the end.
    check_stage(
        "window(tumbling 5ms)",
        |c| {
            src(c)
                .window(
                    WindowSpec::tumbling(5 * MS),
                    |_| (),
                    || 0u32,
                    |n, _| *n += 1,
                )
                .map(|a| a.value)
        },
        vec![1, 4],
        1,
    )
    .await;
    check_stage(
        "window(sliding 10ms / 5ms)",
        |c| {
            src(c)
                .window(
                    WindowSpec::sliding(10 * MS, 5 * MS),
                    |x| x % 2,
                    || 0u32,
                    |n, _| *n += 1,
                )
                .map(|a| (a.key, a.value))
        },
        // [0, 10): 0 → (0, 1), closed at 10 ms before 1..=4 arrive; [5, 15) and [10, 20)
        // hold 1..=4 (keys 1 then 0), flushed at the end.
        vec![(0, 1), (1, 2), (0, 2), (1, 2), (0, 2)],
        1,
    )
    .await;
    check_stage(
        "window_event_time(tumbling 2s)",
        |c| {
            src(c)
                .window_event_time(
                    WindowSpec::tumbling(Duration::from_secs(2)),
                    |x| Duration::from_secs(u64::from(*x)),
                    |_| (),
                    || 0u32,
                    |n, _| *n += 1,
                )
                .map(|e| match e {
                    WindowEvent::Closed(a) => a.value,
                    WindowEvent::Late(_) => u32::MAX,
                })
        },
        vec![2, 2, 1],
        1,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn overflow_stages() {
    check_stage(
        "on_overflow(2, Backpressure)",
        |c| src(c).on_overflow(2, Overflow::Backpressure),
        (0..5).collect(),
        1,
    )
    .await;
    check_stage(
        "on_overflow(64, DropOldest)",
        |c| src(c).on_overflow(64, Overflow::DropOldest),
        (0..5).collect(),
        1,
    )
    .await;
    check_stage(
        "on_overflow(64, DropNewest)",
        |c| src(c).on_overflow(64, Overflow::DropNewest),
        (0..5).collect(),
        1,
    )
    .await;
    check_stage(
        "fail_on_overflow(64)",
        |c| src(c).fail_on_overflow(64),
        (0..5).map(Ok).collect(),
        1,
    )
    .await;
    check_stage(
        "conflate(sum) over spaced items",
        |c| spaced(c).conflate(|a, b| a + b),
        (0..5).collect(),
        1,
    )
    .await;
    check_stage(
        "latest() over spaced items",
        |c| spaced(c).latest(),
        (0..5).collect(),
        1,
    )
    .await;
}
