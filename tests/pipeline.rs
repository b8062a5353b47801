//! `pipeline!`: desugaring to plain calls, reusable `_` stages, equality with hand-chained calls.

use futures::future::ready;
use futures::{StreamExt, stream};
use millrace::prelude::*;

#[stream_stage(item = u32)]
async fn add(numbers: impl Stream<Item = u32> + Send, n: u32) {
    #[for_await]
    for x in numbers {
        yield_!(x + n);
    }
}

#[stream_stage(item = u32)]
async fn keep_odd(numbers: impl Stream<Item = u32> + Send) {
    #[for_await]
    for x in numbers {
        if x % 2 == 1 {
            yield_!(x);
        }
    }
}

fn times<S: Stream<Item = u32>>(s: S, k: u32) -> impl Stream<Item = u32> {
    s.map(move |x| x * k)
}

#[tokio::test]
async fn desugars_to_pipe_first_calls_and_methods() {
    let piped: Vec<u32> = pipeline! {
        stream::iter(0..10u32)
        => add(1)
        => keep_odd
        => times(10)
        => .filter(|x| ready(*x > 10))
        => .take(3)
    }
    .collect()
    .await;
    let by_hand: Vec<u32> = times(keep_odd(add(stream::iter(0..10u32), 1)), 10)
        .filter(|x| ready(*x > 10))
        .take(3)
        .collect()
        .await;
    assert_eq!(piped, by_hand);
    assert_eq!(piped, [30, 50, 70]);
}

#[tokio::test]
async fn method_stages_can_chain_and_use_turbofish() {
    let out: Vec<Vec<u32>> = pipeline! {
        stream::iter(1..=5u32)
        => .map(|x| x * 2).filter(|x| ready(*x != 4))
        => .chunks(2)
        => .take::<>(2)
    }
    .collect()
    .await;
    assert_eq!(out, vec![vec![2, 6], vec![8, 10]]);
}

#[tokio::test]
async fn reusable_stage_applies_to_two_sources() {
    let segment = pipeline! { _ => add(1) => keep_odd => times(2) };
    let a: Vec<u32> = stream::iter(vec![0u32, 1, 2]).wrap(segment).collect().await;
    let b: Vec<u32> = stream::iter(vec![10u32, 11]).wrap(segment).collect().await;
    assert_eq!(a, [2, 6]);
    assert_eq!(b, [22]);
}

#[tokio::test]
async fn the_source_can_be_any_expression() {
    let source = stream::iter([5u32, 6]);
    let out: Vec<u32> = pipeline! { source => add(100) }.collect().await;
    assert_eq!(out, [105, 106]);
    let out: Vec<u32> = pipeline! { stream::iter([1u32]).take(1) => .chain(stream::iter([2])) }
        .collect()
        .await;
    assert_eq!(out, [1, 2]);
}

#[test]
fn the_expansion_adds_nothing_to_the_stream_type() {
    // Plain nested calls: the pipeline's type is the hand-chained type, no box.
    fn same<T>(_: &T, _: &T) {}
    let piped = pipeline! { stream::iter(0..3u32) => add(1) => keep_odd };
    let by_hand = keep_odd(add(stream::iter(0..3u32), 1));
    same(&piped, &by_hand);
    assert_eq!(
        std::mem::size_of_val(&piped),
        std::mem::size_of_val(&by_hand)
    );
}

#[tokio::test]
async fn typed_reusable_stage_allows_method_stages() {
    type Numbers = stream::Iter<std::vec::IntoIter<u32>>;
    let segment = pipeline! { _: Numbers => .map(|x| x * 3) => keep_odd };
    let a: Vec<u32> = stream::iter(vec![1u32, 2, 3]).wrap(segment).collect().await;
    let b: Vec<u32> = stream::iter(vec![5u32]).wrap(segment).collect().await;
    assert_eq!((a, b), (vec![3, 9], vec![15]));
}
