//! `#[stream_stage]` stages (fast and general paths, sources, fallible stages) under the same
//! conformance harness as the hand-written wrappers, and `pipeline!` against hand-chained calls.

mod support;
use support::reliability;

use std::time::Duration;

use futures::stream;
use millrace::prelude::*;
use millrace::testing::{DropCounter, Scripted, Step, consume, scripted};
use proptest::prelude::*;
use reliability::{Probe, check_stage, probe};

const MS: Duration = Duration::from_millis(1);

/// Fast path: one `#[for_await]` loop, no other `.await`.
#[stream_stage(item = u32)]
async fn add_fast(numbers: impl Stream<Item = u32> + Send, n: u32) {
    #[for_await]
    for x in numbers {
        yield_!(x + n);
    }
}

/// The same body with one more (ready) `.await`, which takes the general (generator) path.
#[stream_stage(item = u32, name = AddGeneral)]
async fn add_general(numbers: impl Stream<Item = u32> + Send, n: u32) {
    #[for_await]
    for x in numbers {
        std::future::ready(()).await; // an `.await` besides the upstream's: the general path
        yield_!(x + n);
    }
}

/// Fast path with filtering and an early `break`.
#[stream_stage(item = u32)]
async fn odd_until(numbers: impl Stream<Item = u32> + Send, stop_at: u32) {
    #[for_await]
    for x in numbers {
        if x == stop_at {
            break;
        }
        if x % 2 == 1 {
            yield_!(x);
        }
    }
}

/// General path: an `.await` between items.
#[stream_stage(item = u32)]
async fn slow_double(numbers: impl Stream<Item = u32> + Send) {
    #[for_await]
    for x in numbers {
        tokio::time::sleep(MS).await;
        yield_!(x * 2);
    }
}

/// A source stage (no stream parameter).
#[stream_stage(item = u32)]
async fn ticks(n: u32) {
    for i in 0..n {
        tokio::time::sleep(2 * MS).await;
        yield_!(i);
    }
}

/// A fallible stage: `?` yields the error and ends.
#[stream_stage(item = u32, error = String)]
async fn below(numbers: impl Stream<Item = u32> + Send, limit: u32) {
    #[for_await]
    for x in numbers {
        if x >= limit {
            Err(format!("{x} is not below {limit}"))?;
        }
        yield_!(x);
    }
}

/// `yield_all!` forwards a whole stream.
#[stream_stage(item = u32)]
async fn with_header(numbers: impl Stream<Item = u32> + Send, header: u32) {
    yield_!(header);
    yield_all!(numbers);
}

fn steps(n: u32) -> Vec<Step<u32>> {
    let mut v = Vec::new();
    for i in 0..n {
        if i == 1 {
            v.push(Step::Delay(10 * MS));
        }
        if i == 2 {
            v.push(Step::Pending);
        }
        v.push(Step::Item(i));
    }
    v
}

fn src(c: &DropCounter) -> Probe<Scripted<u32>> {
    probe(scripted(steps(5)), c)
}

#[tokio::test(start_paused = true)]
async fn stream_stage_conformance() {
    check_stage(
        "#[stream_stage] fast path",
        |c| add_fast(src(c), 1),
        (1..6).collect(),
        1,
    )
    .await;
    check_stage(
        "#[stream_stage] general path",
        |c| add_general(src(c), 1),
        (1..6).collect(),
        1,
    )
    .await;
    check_stage(
        "#[stream_stage] fast path, break",
        |c| odd_until(src(c), 4),
        vec![1, 3],
        1,
    )
    .await;
    check_stage(
        "#[stream_stage] general path, await",
        |c| slow_double(src(c)),
        vec![0, 2, 4, 6, 8],
        2,
    )
    .await;
    check_stage("#[stream_stage] source", |_c| ticks(4), vec![0, 1, 2, 3], 4).await;
    check_stage(
        "#[stream_stage] error = E",
        |c| below(src(c), 3),
        vec![Ok(0), Ok(1), Ok(2), Err("3 is not below 3".to_string())],
        1,
    )
    .await;
    check_stage(
        "#[stream_stage] yield_all!",
        |c| with_header(src(c), 9),
        vec![9, 0, 1, 2, 3, 4],
        1,
    )
    .await;
    check_stage(
        "#[stream_stage] stages around wrappers",
        |c| slow_double(add_fast(src(c), 1).prefetch(2)).batch(2),
        vec![vec![2, 4], vec![6, 8], vec![10]],
        2,
    )
    .await;
}

/// Fast-path stages are `Send + Sync + Unpin` over such an upstream; general-path stages hold
/// a `Pin<Box<dyn Stream + Send>>` (the generator), so they are `Send + Unpin` but **not
/// `Sync`** — harmless for a stream (polled through `&mut`), but it differs from the
/// hand-written wrappers (see `tests/auto_traits.rs`).
#[test]
fn stream_stage_auto_traits() {
    fn send_sync_unpin<T: Send + Sync + Unpin>(_: &T) {}
    fn send_unpin<T: Send + Unpin>(_: &T) {}
    send_sync_unpin(&add_fast(stream::iter(vec![1u32]), 1));
    send_sync_unpin(&odd_until(stream::iter(vec![1u32]), 1));
    send_unpin(&add_general(stream::iter(vec![1u32]), 1));
    send_unpin(&slow_double(stream::iter(vec![1u32])));
    send_unpin(&ticks(3));
}

/// Built and dropped outside any runtime (the general path must not spawn or touch a timer
/// before its first poll), releasing what it captured.
#[test]
fn stream_stages_construct_and_drop_outside_a_runtime() {
    let c = DropCounter::new();
    drop(add_fast(src(&c), 1));
    drop(add_general(src(&c), 1));
    drop(slow_double(src(&c)));
    drop(below(src(&c), 3));
    drop(with_header(src(&c), 1));
    drop(ticks(3));
    assert_eq!(c.alive(), 0);
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: reliability::scaled(128, 3) as u32, ..ProptestConfig::default() })]

    /// `pipeline!` expands to exactly the hand-chained calls.
    #[test]
    fn pipeline_equals_hand_chained_calls(
        v in prop::collection::vec(0u32..50, 0..40),
        n in 0u32..5,
        size in 1usize..5,
        cap in 1usize..5,
        limit in 0u32..60,
    ) {
        let rt = rt();
        let (a, b) = (v.clone(), v.clone());
        let piped: Vec<Vec<Result<u32, String>>> = rt.block_on(consume(pipeline! {
            stream::iter(a)
            => add_fast(n)
            => .prefetch(cap)
            => below(limit)
            => .batch(size)
        }));
        let chained: Vec<Vec<Result<u32, String>>> =
            rt.block_on(consume(below(add_fast(stream::iter(b), n).prefetch(cap), limit).batch(size)));
        prop_assert_eq!(&piped, &chained);
        // And both equal the list model.
        let mut model: Vec<Result<u32, String>> = Vec::new();
        for x in v.iter().map(|x| x + n) {
            if x >= limit {
                model.push(Err(format!("{x} is not below {limit}")));
                break;
            }
            model.push(Ok(x));
        }
        let model: Vec<Vec<_>> = model.chunks(size).map(<[_]>::to_vec).collect();
        prop_assert_eq!(piped, model);
    }

    /// A reusable `_` segment applies like the chained calls, to any number of sources.
    #[test]
    fn pipeline_segment_equals_hand_chained_calls(
        v in prop::collection::vec(0u32..50, 0..40),
        w in prop::collection::vec(0u32..50, 0..10),
        n in 0u32..5,
    ) {
        let rt = rt();
        let segment = pipeline! { _ => add_general(n) => odd_until(41) => slow_double };
        for src in [v, w] {
            let by_segment: Vec<u32> = rt.block_on(consume(stream::iter(src.clone()).wrap(segment)));
            let chained: Vec<u32> =
                rt.block_on(consume(slow_double(odd_until(add_general(stream::iter(src), n), 41))));
            prop_assert_eq!(by_segment, chained);
        }
    }
}
