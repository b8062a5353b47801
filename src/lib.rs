//! # millrace
//!
//! Composable asynchronous stream pipelines for Rust: retry, fall back, validate, batch,
//! prefetch, rate-limit, run concurrently, time out, scope to a resource and measure — each a
//! small wrapper around a `futures::Stream`, nested like onions, as cheap as hand-written
//! `impl Stream` code.
//!
//! Start with the prelude:
//!
//! ```
//! use millrace::prelude::*;
//! use futures::{stream, StreamExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let out: Vec<Vec<u32>> = stream::iter(0..5u32).prefetch(4).batch(2).collect().await;
//! assert_eq!(out, vec![vec![0, 1], vec![2, 3], vec![4]]);
//! # }
//! ```
//!
//! The crates behind this facade: `millrace-core` (wrappers, [`Stage`], [`PipelineExt`],
//! [`testing`]), `millrace-macros` ([`stream_stage`], [`pipeline!`]) and `millrace-adapters`
//! (files, JSON lines, HTTP, SQL, Redis Streams, progress; each behind a cargo feature of the
//! same name, `full` enables all).
#![doc(test(attr(deny(warnings))))]

pub use millrace_core::*;

/// Adapters: ready sources and sinks, each behind a feature of this crate.
pub use millrace_adapters as adapters;

pub use millrace_macros::stream_stage;

/// Everything a pipeline author needs in scope: `use millrace::prelude::*;`.
///
/// The core prelude (`Stream`, `FusedStream`, `PipelineExt`, `Stage`, `stage_fn`, …) plus the
/// macros: [`stream_stage`], [`pipeline!`], [`yield_!`], [`yield_all!`].
pub mod prelude {
    pub use millrace_core::prelude::*;

    pub use crate::stream_stage;
    pub use crate::{pipeline, yield_, yield_all};
}

/// Builds a pipeline that reads top to bottom like the data flows.
///
/// - `source => f(args)` calls `f(source, args)` (pipe-first); `=> f` calls `f(upstream)`;
/// - `=> .m(args)` calls `upstream.m(args)` (any `StreamExt`/`PipelineExt` method);
/// - starting with `_` (or `_: UpstreamType`) instead of a source builds a reusable [`Stage`]
///   (through [`stage_fn`]).
///
/// The expansion is plain nested calls: no boxing. Every stage must produce a `Stream`, and a
/// stage that is not one, or that cannot take its upstream, is reported at that stage (once:
/// the stages after it and the code using the pipeline raise nothing more).
///
/// # One stage per `=>`
///
/// Each `=>` starts exactly one stage: `=> .map(f) .batch(3)` is a compile error on `.batch`
/// (a missing `=>`), not a `map` stage that also batches. A chain of methods that should be
/// one stage (one name, one line in the metrics) goes in parentheses, `=> (.map(f).batch(3))`,
/// or in a function called as `=> f(args)`.
///
/// # Names
///
/// Every stage is named from its tokens (`enrich`, `prefetch`, `iter` for
/// `stream::iter(..)`); a name already used in the pipeline gets a suffix (`filter_map`,
/// `filter_map#2`). Name a stage (the source too) with a string before it: `"fetch": stage`.
/// A given name must be unique in the pipeline, not empty and without control characters.
///
/// # Metrics
///
/// Every stage (the source included) is **metered under its name** without extra code: by
/// default into the process-wide [`Metrics::global`] registry, which holds stages weakly (a
/// dropped pipeline disappears from it). Stages that keep event counters (`restartable(..).retry`,
/// `recover_with`, `on_error`, any [`Observable`](metrics::Observable) wrapper) have their
/// retries, fallbacks and skips adopted into their stage's snapshot, concurrent stages
/// (`prefetch`, `map_concurrent*`) their in-flight and buffered gauges; a stage whose items are
/// `Result`s counts its `Err` items in `errors`, and each stage's `items_in` is the item count
/// of the stage before it.
/// Options go before the source, each ending with `;`:
///
/// - `metrics = &registry;` meters into that [`Metrics`] registry instead (evaluated once);
/// - `metrics = off;` meters nothing: the expansion is exactly the hand-written nested calls;
/// - `timing = on;` also times every stage ([`with_timing`](wrappers::Metered::with_timing):
///   time spent, so the slowest stage shows, and p50/p99 latency; two clock reads per poll);
/// - `tracing = on;` also gives every stage a `tracing` span named after it
///   ([`traced`](wrappers::Metered::traced)), so the retry, fallback and skip events inside
///   carry the stage's name; install the subscriber before building the pipeline.
///
/// Counting costs a few instructions per item per stage (measured in `benches/RESULTS.md`);
/// the pipeline's value is then a [`Metered`](wrappers::Metered) wrapper around the last stage
/// (reach the stage itself with `get_ref()`, through a `Timed`/`Traced` layer with `timing`/`tracing` on).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::Metrics;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let metrics = Metrics::new();
/// let evens: Vec<u32> = pipeline! {
///     metrics = &metrics;
///     stream::iter(0..10u32)
///     => .filter(|x| futures::future::ready(x % 2 == 0))
///     => .batch(2)
/// }
/// .map(|b| b.len() as u32)
/// .collect()
/// .await;
/// assert_eq!(evens, [2, 2, 1]);
/// let counts: Vec<(String, Option<u64>, u64)> =
///     metrics.snapshot().into_iter().map(|s| (s.name, s.items_in, s.items)).collect();
/// assert_eq!(
///     counts,
///     [
///         ("iter".to_owned(), None, 10),
///         ("filter".to_owned(), Some(10), 5),
///         ("batch".to_owned(), Some(5), 3),
///     ]
/// );
///
/// // `timing = on;`: every stage also reports its latency and the time spent in it.
/// let timed = Metrics::new();
/// let _: Vec<u32> = pipeline! {
///     metrics = &timed;
///     timing = on;
///     stream::iter(0..4u32) => .map(|x| x + 1)
/// }
/// .collect()
/// .await;
/// assert!(timed.snapshot().iter().all(|s| s.latency.is_some() && s.busy.is_some()));
///
/// // `metrics = off;`: the same type as the calls written by hand.
/// let plain = pipeline! { metrics = off; stream::iter(0..3u8) => .batch(2) };
/// let _: millrace::wrappers::Batch<stream::Iter<std::ops::Range<u8>>> = plain;
/// # }
/// ```
///
/// Names, a chain in one stage, and the errors of a `Result` stage:
///
/// ```
/// use millrace::prelude::*;
/// use millrace::Metrics;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let metrics = Metrics::new();
/// let _: Vec<Result<u32, Invalid<u32, &str>>> = pipeline! {
///     metrics = &metrics;
///     "numbers": stream::iter(0..6u32)
///     => "tens": (.map(|x| x * 10).skip(1))
///     => .validate(|x: &u32| if *x < 40 { Ok(()) } else { Err("too big") })
/// }
/// .collect()
/// .await;
/// let rows: Vec<(String, u64, Option<u64>)> =
///     metrics.snapshot().into_iter().map(|s| (s.name, s.items, s.errors)).collect();
/// assert_eq!(
///     rows,
///     [
///         ("numbers".to_owned(), 6, None),
///         ("tens".to_owned(), 5, None),
///         ("validate".to_owned(), 5, Some(2)),
///     ]
/// );
/// # }
/// ```
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// #[stream_stage(item = u32)]
/// async fn add(numbers: impl Stream<Item = u32> + Send, n: u32) {
///     #[for_await]
///     for x in numbers {
///         yield_!(x + n);
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let out: Vec<Vec<u32>> = pipeline! {
///     stream::iter(1..=5u32)
///     => add(10)                // add(upstream, 10)
///     => .filter(|x| futures::future::ready(x % 2 == 1))
///     => .chunks(2)
/// }
/// .collect()
/// .await;
/// assert_eq!(out, vec![vec![11, 13], vec![15]]);
///
/// // A reusable segment, applied to two sources (of the same type).
/// let plus_one_twice = pipeline! { _ => add(1) => add(1) };
/// let a: Vec<u32> = stream::iter(vec![1u32]).wrap(plus_one_twice).collect().await;
/// let b: Vec<u32> = stream::iter(vec![5u32]).wrap(plus_one_twice).collect().await;
/// assert_eq!((a, b), (vec![3], vec![7]));
/// # }
/// ```
///
/// In a `_` pipeline the upstream's type is only known when the stage is applied, but a method
/// stage (`.m(args)`) needs it where it is written: name it with `_: Type`.
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// type Numbers = stream::Iter<std::vec::IntoIter<u32>>;
/// let tripled = pipeline! { _: Numbers => .map(|x| x * 3) => .take(2) };
/// let out: Vec<u32> = stream::iter(vec![1, 2, 3]).wrap(tripled).collect().await;
/// assert_eq!(out, [3, 6]);
/// # }
/// ```
///
/// `pipeline!` works through re-exports of millrace (it passes its own `$crate` path on).
#[macro_export]
macro_rules! pipeline {
    ($($t:tt)*) => {
        $crate::__private::pipeline_impl! { crate = $crate; $($t)* }
    };
}

/// Emits one item from a [`stream_stage`] body: `yield_!(value)`.
///
/// Outside a `#[stream_stage]` function (or inside a closure or async block in one) it is a
/// compile error; the attribute rewrites it before it expands.
///
/// ```
/// use millrace::prelude::*;
/// use futures::StreamExt;
///
/// #[stream_stage(item = &'static str)]
/// async fn greetings() {
///     yield_!("hello");
///     yield_!("world");
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// assert_eq!(greetings().collect::<Vec<_>>().await, ["hello", "world"]);
/// # }
/// ```
#[macro_export]
macro_rules! yield_ {
    ($($t:tt)*) => {
        ::core::compile_error!(
            "`yield_!` can only be used inside a `#[stream_stage]` function, directly in its body (not in a closure or a nested async block)"
        )
    };
}

/// Emits every item of a stream from a [`stream_stage`] body: `yield_all!(stream)`, like
/// Python's `yield from`.
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// #[stream_stage(item = u32)]
/// async fn twice(numbers: impl Stream<Item = u32> + Send) {
///     #[for_await]
///     for x in numbers {
///         yield_all!(stream::iter([x, x]));
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let out: Vec<u32> = twice(stream::iter([1, 2])).collect().await;
/// assert_eq!(out, [1, 1, 2, 2]);
/// # }
/// ```
#[macro_export]
macro_rules! yield_all {
    ($($t:tt)*) => {
        ::core::compile_error!(
            "`yield_all!` can only be used inside a `#[stream_stage]` function, directly in its body (not in a closure or a nested async block)"
        )
    };
}

/// Not public API: paths used by the code that millrace's macros generate. They live in
/// `millrace_core::__private` (so `#[stream_stage(crate = millrace_core)]` works without this
/// facade); the engine of `pipeline!` is added here.
#[doc(hidden)]
pub mod __private {
    pub use millrace_core::__private::*;
    pub use millrace_macros::pipeline_impl;
}

/// The Rust code blocks of `README.md`, compiled and run as doc tests so the README stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
