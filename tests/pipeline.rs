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
async fn method_stages_can_chain_in_parentheses_and_use_turbofish() {
    let out: Vec<Vec<u32>> = pipeline! {
        stream::iter(1..=5u32)
        => (.map(|x| x * 2).filter(|x| ready(*x != 4)))
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
fn with_metrics_off_the_expansion_adds_nothing_to_the_stream_type() {
    // Plain nested calls: the pipeline's type is the hand-chained type, no box.
    fn same<T>(_: &T, _: &T) {}
    let piped = pipeline! { metrics = off; stream::iter(0..3u32) => add(1) => keep_odd };
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

#[tokio::test]
async fn every_stage_is_metered_under_its_name_by_default() {
    let piped = pipeline! { stream::iter(0..6u32) => add(1) => keep_odd => times(2) };
    // The value is the last stage, metered into the global registry (where the stages below
    // it are too: tests run in parallel, so this one only looks at its own handle).
    let times = piped.metrics();
    assert_eq!(times.name(), "times");
    assert!(
        millrace::Metrics::global()
            .stages()
            .iter()
            .any(|s| s.same_stage(&times)),
        "the stage is registered in the global registry"
    );
    let out: Vec<u32> = piped.collect().await;
    assert_eq!(out, [2, 6, 10]);
    assert_eq!(times.snapshot().items, 3);
}

#[tokio::test]
async fn metrics_into_a_registry_counts_each_stage_exactly() {
    let metrics = millrace::Metrics::new();
    let out: Vec<u32> = pipeline! {
        metrics = &metrics;
        stream::iter(0..6u32) => add(1) => keep_odd => times(2)
    }
    .collect()
    .await;
    assert_eq!(out, [2, 6, 10]);
    let counts: Vec<(String, u64)> = metrics
        .snapshot()
        .into_iter()
        .map(|s| (s.name, s.items))
        .collect();
    assert_eq!(
        counts,
        [
            ("iter".to_owned(), 6),
            ("add".to_owned(), 6),
            ("keep_odd".to_owned(), 3),
            ("times".to_owned(), 3)
        ]
    );
}

#[tokio::test]
async fn a_pipeline_stage_adopts_retries_and_skips() {
    use millrace::policy::{RetryPolicy, Supervision};
    use millrace::testing::Flaky;
    let metrics = millrace::Metrics::new();
    let flaky = Flaky::new(0..5u64).fail_at([2]);
    let f = flaky.clone();
    let out: Vec<Result<u64, millrace::testing::FlakyError>> = pipeline! {
        metrics = &metrics;
        restartable(move |cp: &Checkpoint<u64>| f.open(cp.delivered))
            .retry(RetryPolicy::fixed(std::time::Duration::from_millis(1), 3))
        => .on_error(Supervision::Resume)
    }
    .collect()
    .await;
    assert_eq!(out, [Ok(0), Ok(1), Ok(2), Ok(3), Ok(4)]);
    let snap = metrics.snapshot();
    assert_eq!((snap[0].name.as_str(), snap[0].retries), ("retry", Some(1)));
    assert_eq!(
        (snap[1].name.as_str(), snap[1].skipped),
        ("on_error", Some(0))
    );
}

#[tokio::test]
async fn stages_can_be_named_and_repeated_names_are_told_apart() {
    let metrics = millrace::Metrics::new();
    let out: Vec<u32> = pipeline! {
        metrics = &metrics;
        "numbers": stream::iter(0..8u32)
        => .filter_map(|x| ready((x % 2 == 0).then_some(x)))
        => .filter_map(|x| ready((x > 0).then_some(x * 10)))
        => "plus one": add(1)
        => add(1)
        => add(1)
    }
    .collect()
    .await;
    assert_eq!(out, [23, 43, 63]);
    let names: Vec<(String, u64)> = metrics
        .snapshot()
        .into_iter()
        .map(|s| (s.name, s.items))
        .collect();
    assert_eq!(
        names,
        [
            ("numbers".to_owned(), 8),
            ("filter_map".to_owned(), 4),
            ("filter_map#2".to_owned(), 3),
            ("plus one".to_owned(), 3),
            ("add".to_owned(), 3),
            ("add#2".to_owned(), 3),
        ]
    );
}

#[tokio::test]
async fn a_derived_name_that_a_given_name_took_gets_a_suffix() {
    let metrics = millrace::Metrics::new();
    let _: Vec<u32> = pipeline! {
        metrics = &metrics;
        stream::iter(0..2u32) => add(1) => "add": add(2)
    }
    .collect()
    .await;
    let names: Vec<String> = metrics.snapshot().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["iter", "add#2", "add"]);
}

#[tokio::test(start_paused = true)]
async fn the_report_of_a_pipeline_with_validation_errors_and_retries_has_exact_counts() {
    use millrace::policy::{RetryPolicy, Supervision};
    use millrace::testing::Flaky;
    let metrics = millrace::Metrics::new();
    // 0..10, failing once at item 2 (one retry); 0, 3, 6 and 9 are invalid (four errors,
    // which `on_error(Resume)` then skips).
    let flaky = Flaky::new(0..10u64).fail_at([2]);
    let f = flaky.clone();
    let out: Vec<u64> = pipeline! {
        metrics = &metrics;
        "fetch": restartable(move |cp: &Checkpoint<u64>| f.open(cp.delivered))
            .retry(RetryPolicy::fixed(std::time::Duration::from_millis(10), 3))
        => .map(|r| r.expect("retried"))
        => .validate(|x: &u64| if x % 3 == 0 { Err("multiple of three") } else { Ok(()) })
        => .on_error(Supervision::Resume)
    }
    .map(|r| r.expect("skipped"))
    .collect()
    .await;
    assert_eq!(out, [1, 2, 4, 5, 7, 8]);
    let counts: Vec<_> = metrics
        .snapshot()
        .into_iter()
        .map(|s| (s.name, s.items, s.errors, s.retries, s.skipped))
        .collect();
    assert_eq!(
        counts,
        [
            ("fetch".to_owned(), 10, Some(0), Some(1), None),
            ("map".to_owned(), 10, None, None, None),
            ("validate".to_owned(), 10, Some(4), None, None),
            ("on_error".to_owned(), 6, Some(0), None, Some(4)),
        ]
    );
    assert_eq!(
        metrics.report().to_string(),
        "stage     items  errors  retries  skipped  fallbacks  p50  p99  time\n\
         fetch        10       0        1        -          -    -    -     -\n\
         map          10       -        -        -          -    -    -     -\n\
         validate     10       4        -        -          -    -    -     -\n\
         on_error      6       0        -        4          -    -    -     -\n"
    );
}
