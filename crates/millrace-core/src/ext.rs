//! [`PipelineExt`]: every millrace wrapper as a method on every [`Stream`].
//!
//! This file is the index of the library: each method documents its wrapper (with `# Examples`
//! and, where they apply, `# Errors`, `# Panics` and `# Cancel safety`) and its body is one
//! line that builds the wrapper. Method names never collide with `futures::StreamExt` or
//! `tokio_stream::StreamExt`, so all three can be in scope together.

#[allow(unused_imports)] // each group below uses its own subset
use crate::wrappers::*;
use crate::{Stage, Stream};

/// Extension methods that wrap a stream in a millrace stage. Implemented for every [`Stream`].
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let sum: u64 = stream::iter(0..100u64).prefetch(16).fold(0, |a, x| async move { a + x }).await;
/// assert_eq!(sum, 4950);
/// # }
/// ```
pub trait PipelineExt: Stream {
    /// Wraps this stream in a reusable [`Stage`] (a pipeline segment).
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::BatchStage;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<Vec<i32>> = stream::iter([1, 2, 3]).wrap(BatchStage::new(2)).collect().await;
    /// assert_eq!(out, vec![vec![1, 2], vec![3]]);
    /// # }
    /// ```
    fn wrap<L>(self, stage: L) -> L::Output
    where
        L: Stage<Self>,
        Self: Sized,
    {
        stage.wrap(self)
    }

    /// On an error, switches to a fallback stream that resumes from the checkpoint.
    ///
    /// Every `Ok` item is recorded in a [`Checkpoint`](crate::Checkpoint) (`delivered` count and
    /// a clone of the `last` item; see [`checkpoint_with`](PipelineExt::checkpoint_with) for a
    /// custom one). On `Err(e)`, `f(&e, &checkpoint)` decides: `Some(fallback)` replaces the
    /// current stream (which is dropped) and should resume after what was already delivered;
    /// `None` yields the error and ends the stream. An error from the fallback calls `f` again,
    /// so fallbacks chain (`f` may count its calls), and `recover_with` calls nest.
    /// Each switch is counted ([`Recover::fallbacks`]) and reported as a `tracing` warning.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let primary = stream::iter([Ok(1), Ok(2), Err("primary down")]);
    /// let replica = |from: u64| stream::iter((from + 1..=4).map(Ok));
    /// let out: Vec<Result<u64, &str>> = primary
    ///     .recover_with(move |_, cp: &Checkpoint<u64>| Some(replica(cp.delivered)))
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, [Ok(1), Ok(2), Ok(3), Ok(4)]);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// A panic in `f` propagates to the consumer's poll.
    fn recover_with<F, S2, T, E>(self, f: F) -> Recover<Self, F, S2, crate::Checkpoint<T>>
    where
        Self: Stream<Item = Result<T, E>> + Sized,
        F: FnMut(&E, &crate::Checkpoint<T>) -> Option<S2>,
        S2: Stream<Item = Result<T, E>>,
        T: Clone,
    {
        Recover::new(self, f)
    }

    /// Records a custom checkpoint of the `Ok` items: `init` is the state before any item and
    /// `update(&mut state, &item)` runs for each one. Memory is whatever the state holds.
    ///
    /// Pass-through on its own; follow it with
    /// [`recover_with`](CheckpointWith::recover_with) so fallbacks receive the state (a
    /// cursor, the last id) instead of the default [`Checkpoint`](crate::Checkpoint).
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<Result<u32, &str>> = stream::iter([Ok(10), Err("down")])
    ///     .checkpoint_with(0u32, |next, x: &u32| *next = x + 1)
    ///     .recover_with(|_, next: &u32| Some(stream::iter((*next..13).map(Ok))))
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, [Ok(10), Ok(11), Ok(12)]);
    /// # }
    /// ```
    fn checkpoint_with<C, U, T, E>(
        self,
        init: C,
        update: U,
    ) -> CheckpointWith<Self, crate::checkpoint::CustomCheckpoint<C, U>>
    where
        Self: Stream<Item = Result<T, E>> + Sized,
        U: FnMut(&mut C, &T),
    {
        CheckpointWith::new(self, crate::custom_checkpoint(init, update))
    }

    /// Decides what happens to `Err` items, per [`Supervision`](crate::policy::Supervision):
    /// `Stop` yields the error and ends, `Resume` drops it and continues, `Replace(f)` turns it
    /// into an item.
    ///
    /// Skipped errors are never silently lost: each is counted ([`Supervise::skipped`]) and
    /// reported as a `tracing` warning with the error.
    /// `Ok` items pass straight through. See [the `# Order` section](crate::wrappers::Validate)
    /// of the validation module for how this combines with `validate_ok`.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter([Ok(1), Err("bad row"), Ok(3)]).on_error(Supervision::Resume);
    /// let skipped = s.skipped();
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(1), Ok(3)]);
    /// assert_eq!(skipped.get(), 1);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// A panic in a `Replace` closure propagates to the consumer's poll.
    fn on_error<T, E>(self, supervision: crate::policy::Supervision<T, E>) -> Supervise<Self, T, E>
    where
        Self: Stream<Item = Result<T, E>> + Sized,
    {
        Supervise::new(self, supervision)
    }

    /// Drops the `Err` items and yields the plain `T` of every `Ok(T)`: what
    /// `on_error(Supervision::Resume)` followed by `filter_map(|r| ready(r.ok()))` does, in
    /// one stage (aiostream's and Akka's resume).
    ///
    /// Skipped errors are never silently lost: each is counted ([`SkipErrors::skipped`]) and
    /// reported as a `tracing` warning with the error, and a
    /// metered stage adopts the count as `skipped` (with
    /// [`with_events`](crate::wrappers::Metered::with_events), and automatically under
    /// `pipeline!`). To keep the errors, use [`on_error`](Self::on_error).
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter([Ok(1), Err("bad row"), Ok(3)]).skip_errors();
    /// let skipped = s.skipped();
    /// assert_eq!(s.collect::<Vec<i32>>().await, [1, 3]);
    /// assert_eq!(skipped.get(), 1);
    /// # }
    /// ```
    fn skip_errors<T, E>(self) -> SkipErrors<Self>
    where
        Self: Stream<Item = Result<T, E>> + Sized,
    {
        SkipErrors::new(self)
    }

    /// Checks every item with `f`: passing items become `Ok(item)`, rejected ones
    /// `Err(Invalid { item, reason, index })`, so the invalid item is carried, never lost.
    ///
    /// The stream continues after an invalid item; put
    /// [`on_error`](PipelineExt::on_error) after it to decide what happens to them.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let isbn = |s: &&str| if s.len() == 13 { Ok(()) } else { Err("wrong length") };
    /// let out: Vec<_> = stream::iter(["9780306406157", "123"]).validate(isbn).collect().await;
    /// assert_eq!(out, [Ok("9780306406157"), Err(Invalid::new("123", 1, "wrong length"))]);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// A panic in `f` propagates to the consumer's poll.
    fn validate<F, R>(self, f: F) -> Validate<Self, F>
    where
        Self: Sized,
        F: FnMut(&Self::Item) -> Result<(), R>,
    {
        Validate::new(self, f)
    }

    /// Checks the `Ok` items of a fallible stream with `f`; rejected items become
    /// `Err(E::from(Invalid { item, reason, index }))` and upstream errors pass through.
    ///
    /// `index` counts every upstream item, errors included. The error type `E` needs
    /// `From<Invalid<T, R>>`: implement it for your error enum (keeping the item), or use
    /// `String` (the message `"item #<index> rejected: <reason>"`) or `&str` with `&str`
    /// reasons (the reason), for which millrace provides the conversion.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// #[derive(Debug, PartialEq)]
    /// enum RowError {
    ///     Io(&'static str),
    ///     Invalid(Invalid<i32, &'static str>),
    /// }
    /// impl From<Invalid<i32, &'static str>> for RowError {
    ///     fn from(e: Invalid<i32, &'static str>) -> Self {
    ///         RowError::Invalid(e)
    ///     }
    /// }
    /// let rows = stream::iter([Ok(1), Err(RowError::Io("eof")), Ok(-1)]);
    /// let out: Vec<_> = rows.validate_ok(|x: &i32| if *x > 0 { Ok(()) } else { Err("not positive") }).collect().await;
    /// assert_eq!(
    ///     out,
    ///     [Ok(1), Err(RowError::Io("eof")), Err(RowError::Invalid(Invalid::new(-1, 2, "not positive")))]
    /// );
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// A panic in `f` propagates to the consumer's poll.
    fn validate_ok<F, T, E, R>(self, f: F) -> ValidateOk<Self, F>
    where
        Self: Stream<Item = Result<T, E>> + Sized,
        F: FnMut(&T) -> Result<(), R>,
        E: From<crate::policy::Invalid<T, R>>,
    {
        ValidateOk::new(self, f)
    }

    /// Maps each item to a future and runs at most `n` of them at once on tokio tasks,
    /// yielding their outputs **in input order**.
    ///
    /// Spawned mode: the futures (`Send + 'static`) keep running while the consumer is busy
    /// between items, so a slow consumer or one holding a lock the work needs cannot stall
    /// them (no "futurelock"). On a multi-threaded runtime every future runs on its own task,
    /// so CPU work gets parallelism; on a current-thread runtime each future is first polled
    /// once inline, so one that is ready at once costs no task and no allocation (see
    /// [`MapConcurrent`]'s `# Execution`). The stream spends tokio's cooperative budget per
    /// item, so ready futures cannot starve the neighbour tasks. At most `n` futures are in
    /// flight and at most
    /// `n + m` items outstanding, where `m` is the output buffer (default `n`, see
    /// [`MapConcurrent::with_output_buffer`]). For `!Send` or borrowing futures use
    /// [`map_concurrent_local`](Self::map_concurrent_local).
    ///
    /// Combine with [`rate_limit`](Self::rate_limit) to bound requests per second too:
    /// `stream.rate_limit(Rate::per_second(10).burst(1)).map_concurrent(5, fetch)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let start = tokio::time::Instant::now();
    /// let out: Vec<u64> = stream::iter([30u64, 10, 20])
    ///     .map_concurrent(3, |ms| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await;
    ///         ms
    ///     })
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, [30, 10, 20]); // input order
    /// assert!(start.elapsed() < Duration::from_millis(40)); // ran concurrently
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `n` is 0 (the message names the stage; [`MapConcurrent::checked_new`] returns the
    /// [`ConfigError`](crate::ConfigError)). When polled outside a tokio runtime. A panic in `f`
    /// or in a future is resumed on the consumer.
    ///
    /// # Cancel safety
    ///
    /// Dropping the stream aborts every task in flight at once and drops held results.
    ///
    /// # Spawning a pipeline whose items borrow (`&'static str` errors)
    ///
    /// `tokio::spawn(async move { stream.map_concurrent(n, f).collect().await })` can fail with
    /// E0308 "one type is more general than the other" when the items hold a reference such as
    /// a `&'static str` error: rustc's `Send` check of the `async` block loses the `'static`
    /// (rust-lang/rust#102211; nothing in millrace's bounds is higher-ranked). Build the
    /// pipeline **before** the block and spawn its future (`tokio::spawn(pipeline.collect::<Vec<_>>())`),
    /// or in a function returning `impl Stream<Item = …> + Send + 'static`, or use an owned
    /// error type (`String`, your own enum). `tests/spawn_pipeline.rs` keeps both ways compiling.
    #[track_caller]
    fn map_concurrent<F, Fut>(self, n: usize, f: F) -> MapConcurrent<Self, F, Fut>
    where
        Self: Sized,
        F: FnMut(Self::Item) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        crate::error::built(MapConcurrent::checked_new(self, n, f))
    }

    /// Like [`map_concurrent`](Self::map_concurrent), but yields outputs **in completion
    /// order**.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let out: Vec<u64> = stream::iter([30u64, 10, 20])
    ///     .map_concurrent_unordered(3, |ms| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await;
    ///         ms
    ///     })
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, [10, 20, 30]);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `n` is 0; when polled outside a tokio runtime; a panic in `f` or a future is
    /// resumed on the consumer.
    ///
    /// # Cancel safety
    ///
    /// Dropping the stream aborts every task in flight at once.
    #[track_caller]
    fn map_concurrent_unordered<F, Fut>(self, n: usize, f: F) -> MapConcurrent<Self, F, Fut>
    where
        Self: Sized,
        F: FnMut(Self::Item) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        crate::error::built(MapConcurrent::checked_new_unordered(self, n, f))
    }

    /// A fallible concurrent map that **retries each failed item** per `policy`: at most `n`
    /// items in progress, outputs in input order; an item whose retries run out (or whose
    /// error the policy's [`retry_if`](crate::policy::RetryPolicy::retry_if) rejects) yields
    /// its last error and the stream goes on. `f` is called once per attempt with a clone of
    /// the item. See [`MapRetry`] for why a backing-off item keeps its place among the `n`,
    /// and [`MapRetry::throttle`] to put every attempt under a shared rate and in-flight
    /// bound.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// #[derive(Debug, PartialEq)]
    /// enum Fetch { Busy, NotFound }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let tries = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    /// let t = tries.clone();
    /// let policy = RetryPolicy::fixed(Duration::from_millis(100), 3)
    ///     .retry_if(|e: &Fetch| *e == Fetch::Busy); // only transient errors
    /// let s = stream::iter([1, 2, 404]).map_retry(4, policy, move |id: u32| {
    ///     let n = t.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ///     async move {
    ///         match id {
    ///             404 => Err(Fetch::NotFound),
    ///             2 if n < 3 => Err(Fetch::Busy), // item 2 fails on its first try
    ///             _ => Ok(id * 10),
    ///         }
    ///     }
    /// });
    /// let retries = s.retries();
    /// let out: Vec<_> = s.collect().await;
    /// assert_eq!(out, [Ok(10), Ok(20), Err(Fetch::NotFound)]);
    /// assert_eq!(retries.get(), 1); // item 2 once; the 404 is not retried
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `n` is 0 ([`MapRetry::checked_new`] returns the [`ConfigError`](crate::ConfigError)).
    /// When polled outside a tokio runtime. A panic in `f` or in an attempt is resumed on
    /// the consumer.
    ///
    /// # Cancel safety
    ///
    /// Dropping the stream aborts every item in progress at once, backoff waits included.
    #[track_caller]
    fn map_retry<F, Fut, U, E, B, P>(
        self,
        n: usize,
        policy: crate::policy::RetryPolicy<B, P>,
        f: F,
    ) -> MapRetry<Self, U, E>
    where
        Self: Sized,
        Self::Item: Clone + Send + 'static,
        F: Fn(Self::Item) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        U: Send + 'static,
        E: Send + 'static,
        B: backon::BackoffBuilder + Clone + Send + 'static,
        P: crate::policy::RetryIf<E> + Clone + Send + Sync + 'static,
    {
        crate::error::built(MapRetry::checked_new(self, n, policy, f))
    }

    /// Like [`map_retry`](Self::map_retry), but yields outputs **in completion order** (a
    /// backing-off item no longer holds back the ones after it).
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let first = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    /// let out: Vec<_> = stream::iter([1, 2, 3])
    ///     .map_retry_unordered(3, RetryPolicy::fixed(Duration::from_millis(50), 1), move |x: u32| {
    ///         let fail = x == 1 && first.swap(false, std::sync::atomic::Ordering::Relaxed);
    ///         async move { if fail { Err("busy") } else { Ok(x) } }
    ///     })
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, [Ok(2), Ok(3), Ok(1)]); // item 1 came back after its retry
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `n` is 0; when polled outside a tokio runtime; a panic in `f` or an attempt is
    /// resumed on the consumer.
    ///
    /// # Cancel safety
    ///
    /// Dropping the stream aborts every item in progress at once.
    #[track_caller]
    fn map_retry_unordered<F, Fut, U, E, B, P>(
        self,
        n: usize,
        policy: crate::policy::RetryPolicy<B, P>,
        f: F,
    ) -> MapRetry<Self, U, E>
    where
        Self: Sized,
        Self::Item: Clone + Send + 'static,
        F: Fn(Self::Item) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        U: Send + 'static,
        E: Send + 'static,
        B: backon::BackoffBuilder + Clone + Send + 'static,
        P: crate::policy::RetryIf<E> + Clone + Send + Sync + 'static,
    {
        crate::error::built(MapRetry::checked_new_unordered(self, n, policy, f))
    }

    /// Local mode of [`map_concurrent`](Self::map_concurrent): the futures (which may be
    /// `!Send` or borrow) run inside this stream's own `poll_next`, at most `n` at once,
    /// outputs in input order.
    ///
    /// Caveat (futurelock): the work only progresses while the stream is polled. A consumer
    /// that awaits something else between items, or holds a lock the futures need, stalls
    /// them. Prefer the spawned mode whenever the work is `Send + 'static`.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let names = vec!["ada".to_string(), "bob".to_string()];
    /// let lens: Vec<usize> = stream::iter(0..2)
    ///     .map_concurrent_local(2, |i| {
    ///         let name = &names[i]; // borrows: fine in local mode
    ///         async move { name.len() }
    ///     })
    ///     .collect()
    ///     .await;
    /// assert_eq!(lens, [3, 3]);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `n` is 0. A panic in `f` or a future unwinds through `poll_next`.
    #[track_caller]
    fn map_concurrent_local<F, Fut>(self, n: usize, f: F) -> MapConcurrentLocal<Self, F, Fut>
    where
        Self: Sized,
        F: FnMut(Self::Item) -> Fut,
        Fut: Future,
    {
        crate::error::built(MapConcurrentLocal::checked_new(self, n, f))
    }

    /// Local mode, outputs in completion order; see
    /// [`map_concurrent_local`](Self::map_concurrent_local) for the futurelock caveat.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let out: Vec<u64> = stream::iter([20u64, 10])
    ///     .map_concurrent_local_unordered(2, |ms| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await;
    ///         ms
    ///     })
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, [10, 20]);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    #[track_caller]
    fn map_concurrent_local_unordered<F, Fut>(
        self,
        n: usize,
        f: F,
    ) -> MapConcurrentLocal<Self, F, Fut>
    where
        Self: Sized,
        F: FnMut(Self::Item) -> Fut,
        Fut: Future,
    {
        crate::error::built(MapConcurrentLocal::checked_new_unordered(self, n, f))
    }

    /// Fail-fast [`map_concurrent`](Self::map_concurrent) for fallible work: the first
    /// future to return `Err` (even one behind a slower earlier item) aborts every sibling in
    /// flight, the upstream is no longer pulled, the `Err` is yielded and the stream ends.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let start = tokio::time::Instant::now();
    /// let out: Vec<Result<u64, String>> = stream::iter([1000u64, 5, 2000])
    ///     .try_map_concurrent(3, |ms| async move {
    ///         tokio::time::sleep(Duration::from_millis(ms)).await;
    ///         if ms == 5 { Err(format!("item {ms} failed")) } else { Ok(ms) }
    ///     })
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, [Err("item 5 failed".to_string())]);
    /// assert_eq!(start.elapsed(), Duration::from_millis(5)); // the slow siblings were aborted
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `n` is 0; as [`map_concurrent`](Self::map_concurrent) otherwise.
    ///
    /// # Cancel safety
    ///
    /// Dropping the stream aborts every task in flight at once.
    #[track_caller]
    fn try_map_concurrent<F, Fut, U, E>(self, n: usize, f: F) -> TryMapConcurrent<Self, F, Fut>
    where
        Self: Sized,
        F: FnMut(Self::Item) -> Fut,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        U: Send + 'static,
        E: Send + 'static,
    {
        crate::error::built(TryMapConcurrent::checked_new(self, n, f))
    }

    /// Fail-fast [`map_concurrent_unordered`](Self::map_concurrent_unordered): outputs in
    /// completion order; the first `Err` aborts every sibling, is yielded, and ends the stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<Result<i32, i32>> = stream::iter([1, -2, 3])
    ///     .try_map_concurrent_unordered(1, |x| async move { if x < 0 { Err(x) } else { Ok(x) } })
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, [Ok(1), Err(-2)]);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// # Cancel safety
    ///
    /// Dropping the stream aborts every task in flight at once.
    #[track_caller]
    fn try_map_concurrent_unordered<F, Fut, U, E>(
        self,
        n: usize,
        f: F,
    ) -> TryMapConcurrent<Self, F, Fut>
    where
        Self: Sized,
        F: FnMut(Self::Item) -> Fut,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        U: Send + 'static,
        E: Send + 'static,
    {
        crate::error::built(TryMapConcurrent::checked_new_unordered(self, n, f))
    }

    /// Runs the synchronous `f` on tokio's blocking pool (`spawn_blocking`), at most `n`
    /// calls outstanding, outputs in input order.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let digests: Vec<u64> = stream::iter(1..=4u64)
    ///     .map_blocking(2, |x| (0..x * 1000).sum::<u64>()) // CPU work off the async threads
    ///     .collect()
    ///     .await;
    /// assert_eq!(digests, [499_500, 1_999_000, 4_498_500, 7_998_000]);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `n` is 0; when polled outside a tokio runtime; a panic in `f` is resumed on the
    /// consumer.
    ///
    /// # Cancel safety
    ///
    /// Dropping the stream aborts the calls not yet started; calls already running on a
    /// blocking thread cannot be interrupted and run to completion (outputs dropped).
    #[track_caller]
    fn map_blocking<F, U>(self, n: usize, f: F) -> MapBlocking<Self, F, U>
    where
        Self: Sized,
        Self::Item: Send + 'static,
        F: Fn(Self::Item) -> U + Send + Sync + 'static,
        U: Send + 'static,
    {
        crate::error::built(MapBlocking::checked_new(self, n, f))
    }

    /// Releases items no faster than a rate: GCRA on tokio time, long-run rate `r` (on the
    /// real clock too: slots passed during a late timer wake-up are caught up), no window of
    /// one period over `r + b`, and no burst beyond `b` after an idle time. Below about
    /// 1,000 items/s items are spaced; above, they leave in groups per 1 ms timer tick (see
    /// [`RateLimiter`](crate::policy::RateLimiter), "Real time").
    ///
    /// Pass a [`Rate`](crate::policy::Rate) for a fresh budget, or a clone of a
    /// [`RateLimiter`](crate::policy::RateLimiter) to share one budget between streams and
    /// tasks (clones share state). To bound requests in flight as well:
    /// `stream.rate_limit(Rate::per_second(10).burst(1)).map_concurrent(5, fetch)`. This limits
    /// the *items*: for requests that are retried, put the limits on every attempt with
    /// [`map_retry`](Self::map_retry) and a [`Throttle`](crate::policy::Throttle) instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let start = tokio::time::Instant::now();
    /// let out: Vec<u32> = stream::iter(0..10)
    ///     .rate_limit(Rate::per_second(4).burst(2))
    ///     .collect()
    ///     .await;
    /// assert_eq!(out.len(), 10);
    /// // 2 at once, then one every 250 ms: the 10th at 8 × 250 ms.
    /// assert_eq!(start.elapsed(), Duration::from_secs(2));
    ///
    /// async fn fetch(id: u32) -> u32 { id }
    /// let fetched: Vec<u32> = stream::iter(0..3)
    ///     .rate_limit(Rate::per_second(10).burst(1))
    ///     .map_concurrent(5, fetch)
    ///     .collect()
    ///     .await;
    /// assert_eq!(fetched, [0, 1, 2]);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// When it must wait outside a tokio runtime (it uses tokio's timer).
    ///
    /// # Cancel safety
    ///
    /// A budget is taken only when an item is released; dropping the stream takes nothing.
    fn rate_limit(self, rate: impl Into<crate::policy::RateLimiter>) -> RateLimit<Self>
    where
        Self: Sized,
    {
        RateLimit::new(self, rate)
    }

    /// Groups items into `Vec`s of exactly `size` items; the last batch holds the rest.
    ///
    /// Never yields an empty batch. Each batch reserves its capacity once, at its first item
    /// (at most 1024 slots up front, growing only if more items actually arrive).
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let batches: Vec<Vec<u32>> = stream::iter(1..=5).batch(2).collect().await;
    /// assert_eq!(batches, vec![vec![1, 2], vec![3, 4], vec![5]]);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `size == 0`: "`batch`: `size` must be at least 1, got 0; pass a non-zero value".
    /// [`Batch::checked_new`] returns the error instead.
    #[track_caller]
    fn batch(self, size: usize) -> Batch<Self>
    where
        Self: Sized,
    {
        crate::error::built(Batch::checked_new(self, size))
    }

    /// Groups items into `Vec`s of at most `size` items, flushing a batch early when `within`
    /// has passed since **its first item** arrived (size-or-time batching).
    ///
    /// Never yields an empty batch (an idle upstream yields nothing); the tail batch is
    /// flushed as soon as the upstream ends, even while its timer is still running. One tokio
    /// timer per wrapper is created at the first batch and re-armed for every later one. An
    /// item that is ready in the same poll in which the timer fires still joins the batch.
    /// Must be polled inside a tokio runtime with time enabled.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // Two items at once, then one after 300 ms: the first batch leaves after 100 ms.
    /// let slow = stream::iter([1, 2, 3]).then(|x| async move {
    ///     if x == 3 {
    ///         tokio::time::sleep(Duration::from_millis(300)).await;
    ///     }
    ///     x
    /// });
    /// let start = tokio::time::Instant::now();
    /// let mut batches = Box::pin(slow.batch_within(10, Duration::from_millis(100)));
    /// assert_eq!(batches.next().await, Some(vec![1, 2]));
    /// assert_eq!(start.elapsed(), Duration::from_millis(100));
    /// assert_eq!(batches.next().await, Some(vec![3]));
    /// assert_eq!(start.elapsed(), Duration::from_millis(300));
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `size == 0` or `within` is zero (for "whatever is ready right now" use futures'
    /// `ready_chunks`). [`Batch::checked_within`] returns the error instead.
    #[track_caller]
    fn batch_within(self, size: usize, within: std::time::Duration) -> Batch<Self>
    where
        Self: Sized,
    {
        crate::error::built(Batch::checked_within(self, size, within))
    }

    /// Batches the `Ok` items of a fallible stream into `Vec`s of `size`; an `Err` **flushes
    /// the partial batch first**, is yielded as itself, and batching goes on:
    /// `[Ok(1), Ok(2), Err(e), Ok(3)]` with `try_batch(10)` gives `[Ok([1, 2]), Err(e), Ok([3])]`.
    ///
    /// Use it instead of [`batch`](Self::batch) when a batch goes to a sink that must not see
    /// errors (`batch` would put the `Err` inside a batch: `[[Ok(1), Ok(2), Err(e), Ok(3)]]`).
    /// Never yields an empty batch; items keep their order around the error. Stop at the first
    /// error with `try_collect`/`?` on the consumer side, or drop errors before batching with
    /// [`skip_errors`](Self::skip_errors).
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let rows = stream::iter([Ok(1), Ok(2), Err("bad row"), Ok(3), Ok(4), Ok(5)]);
    /// let out: Vec<Result<Vec<u32>, &str>> = rows.try_batch(2).collect().await;
    /// assert_eq!(out, [Ok(vec![1, 2]), Err("bad row"), Ok(vec![3, 4]), Ok(vec![5])]);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `size == 0`: "`try_batch`: `size` must be at least 1, got 0; pass a non-zero
    /// value". [`TryBatch::checked_new`] returns the error instead.
    #[track_caller]
    fn try_batch<T, E>(self, size: usize) -> TryBatch<Self, T, E>
    where
        Self: Stream<Item = Result<T, E>> + Sized,
    {
        crate::error::built(TryBatch::checked_new(self, size))
    }

    /// [`try_batch`](Self::try_batch) by size or time: a batch of `Ok` items is flushed when
    /// it holds `size` items, when `within` has passed since its first item, or when an `Err`
    /// arrives (the batch first, then the error).
    ///
    /// Timer behaviour as in [`batch_within`](Self::batch_within); any `within` up to
    /// `Duration::MAX` works (the deadline saturates).
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let rows = stream::iter([Ok(1), Err("bad"), Ok(2), Ok(3)]).then(|r| async move {
    ///     if r == Ok(3) {
    ///         tokio::time::sleep(Duration::from_millis(300)).await;
    ///     }
    ///     r
    /// });
    /// let out: Vec<_> = rows.try_batch_within(10, Duration::from_millis(100)).collect().await;
    /// assert_eq!(out, [Ok(vec![1]), Err("bad"), Ok(vec![2]), Ok(vec![3])]);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `size == 0` or `within` is zero. [`TryBatch::checked_within`] returns the error instead.
    #[track_caller]
    fn try_batch_within<T, E>(
        self,
        size: usize,
        within: std::time::Duration,
    ) -> TryBatch<Self, T, E>
    where
        Self: Stream<Item = Result<T, E>> + Sized,
    {
        crate::error::built(TryBatch::checked_within(self, size, within))
    }

    /// Drives this stream on its own tokio task, up to `capacity` items ahead of the consumer,
    /// so production overlaps consumption.
    ///
    /// **Bound**: at most `capacity` items are ever pulled from this stream and not yet yielded
    /// to the consumer (counting the producer's partial chunk, the chunks in flight and the
    /// consumer's current chunk). A consumer that stops between chunks leaves the producer
    /// exactly `capacity` items ahead; one that stops inside a chunk leaves it
    /// `capacity − (items already yielded from that chunk)` ahead, because a chunk's room is
    /// given back when its last item is yielded.
    ///
    /// **Hand-over**: the producer collects items while the upstream is ready into chunks of up
    /// to `clamp(capacity / 2, 1, 128)` items and sends a chunk when it is full or the upstream
    /// is pending, so a slow upstream's items are handed over at once and a fast upstream's in
    /// bulk (a few instructions per item instead of a channel operation per item).
    ///
    /// **Start**: the task is spawned on the current tokio runtime at the **first poll**, not at
    /// construction (so building the pipeline outside a runtime is fine, and nothing is pulled
    /// before someone asks). Upstream errors are ordinary items and arrive in order; an upstream
    /// **panic** is re-raised in the consumer after every item produced before it.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // A producer and a consumer that both take 10 ms per item overlap: ~100 ms, not ~200.
    /// let produced = stream::iter(0..10).then(|x| async move {
    ///     tokio::time::sleep(Duration::from_millis(10)).await;
    ///     x
    /// });
    /// let start = tokio::time::Instant::now();
    /// let mut ahead = produced.prefetch(4);
    /// while let Some(_item) = ahead.next().await {
    ///     tokio::time::sleep(Duration::from_millis(10)).await; // consume
    /// }
    /// assert!(start.elapsed() < Duration::from_millis(120));
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// Building panics if `capacity == 0`: "`prefetch`: `capacity` must be at least 1, got 0;
    /// pass a non-zero value" ([`Prefetch::checked_new`] returns the error instead). Polling panics
    /// outside a tokio runtime, and re-raises a panic of the upstream.
    ///
    /// # Cancel safety
    ///
    /// Dropping the stream aborts the producer task at once; the upstream and any items
    /// produced ahead are dropped with it (at the runtime's next turn for the task).
    #[track_caller]
    fn prefetch(self, capacity: usize) -> Prefetch<Self>
    where
        Self: Sized + Send + 'static,
        Self::Item: Send,
    {
        crate::error::built(Prefetch::checked_new(self, capacity))
    }

    /// Splits this stream into `n` branches that **each see every item** (a clone; the last
    /// branch to take an item gets the original), sharing a buffer of
    /// [`DEFAULT_FAN_CAPACITY`] items. For another capacity use [`Broadcast::split`].
    ///
    /// The slowest live branch sets the pace: at most the capacity items are pulled and not yet
    /// yielded by every live branch. A **dropped branch does not stop the others**; it simply
    /// stops counting. No background task: whichever branch needs an item pulls it.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let [to_db, to_dashboard] = <[_; 2]>::try_from(stream::iter(1..=3).broadcast(2)).unwrap();
    /// let (saved, shown) = futures::join!(
    ///     to_db.collect::<Vec<_>>(),
    ///     to_dashboard.map(|x| x * 100).collect::<Vec<_>>(),
    /// );
    /// assert_eq!((saved, shown), (vec![1, 2, 3], vec![100, 200, 300]));
    /// # }
    /// ```
    ///
    /// # Order
    ///
    /// Each branch yields the items in upstream order. Consume the branches **concurrently**
    /// (`join!`, separate tasks): one branch consumed to its end before the other starts stalls
    /// once the buffer is full.
    ///
    /// # Panics
    ///
    /// If `n == 0`. An upstream panic reaches every live branch after the items before it (see
    /// [`Broadcast`]); upstream `Err` items are cloned to every branch like any item.
    ///
    /// # Cancel safety
    ///
    /// Dropping a branch drops the items only it still needed; dropping the last drops the
    /// upstream.
    #[track_caller]
    fn broadcast(self, n: usize) -> Vec<Broadcast<Self>>
    where
        Self: Sized,
        Self::Item: Clone,
    {
        crate::error::built(Broadcast::split(self, n, DEFAULT_FAN_CAPACITY))
    }

    /// Splits this stream into `n` branches; `route(&item)` picks the branch (`0..n`) of each
    /// item. At most [`DEFAULT_FAN_CAPACITY`] items wait across the branches (for another
    /// capacity use [`Partition::split`]).
    ///
    /// Items routed to a dropped branch are discarded and counted ([`Partition::discarded`]);
    /// the other branches continue. To merge the branches back in upstream order, partition an
    /// `enumerate()`d stream and use [`merge_in_order`](crate::merge_in_order).
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let [small, large] = <[_; 2]>::try_from(
    ///     stream::iter([5, 500, 7, 700]).partition(2, |x| usize::from(*x >= 100)),
    /// )
    /// .unwrap();
    /// let (small, large) = futures::join!(small.collect::<Vec<_>>(), large.collect::<Vec<_>>());
    /// assert_eq!((small, large), (vec![5, 7], vec![500, 700]));
    /// # }
    /// ```
    ///
    /// # Order
    ///
    /// Each branch yields its items in upstream order. Consume the branches concurrently.
    ///
    /// # Panics
    ///
    /// If `n == 0`. A panic in `route` (or a route of `n` or more) or in the upstream reaches
    /// every live branch. Upstream `Err` items are routed by `route` like any item.
    ///
    /// # Cancel safety
    ///
    /// Dropping a branch discards (and counts) the items waiting for it; dropping the last
    /// drops the upstream.
    #[track_caller]
    fn partition<F>(self, n: usize, route: F) -> Vec<Partition<Self, F>>
    where
        Self: Sized,
        F: FnMut(&Self::Item) -> usize,
    {
        crate::error::built(Partition::split(self, n, DEFAULT_FAN_CAPACITY, route))
    }

    /// Splits this stream into `n` branches for **work distribution**: each item goes to
    /// whichever branch asks for one first. Nothing is buffered.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // A slow worker and a fast one: the fast one takes more of the work.
    /// let workers = stream::iter(0..10).balance(2).into_iter().map(|w| {
    ///     let pause = Duration::from_millis(if w.index() == 0 { 50 } else { 10 });
    ///     tokio::spawn(w.then(move |x| async move {
    ///         tokio::time::sleep(pause).await;
    ///         x
    ///     }).count())
    /// });
    /// let done: Vec<usize> = futures::future::try_join_all(workers).await.unwrap();
    /// assert_eq!(done.iter().sum::<usize>(), 10);
    /// assert!(done[1] > done[0]);
    /// # }
    /// ```
    ///
    /// # Order
    ///
    /// Each branch yields its items in upstream order; which branch gets which item depends on
    /// when each asks.
    ///
    /// # Panics
    ///
    /// If `n == 0`. An upstream panic reaches every live branch (see [`Balance`]).
    ///
    /// # Cancel safety
    ///
    /// A branch holds no item between polls: dropping one loses nothing. Dropping the last
    /// drops the upstream.
    #[track_caller]
    fn balance(self, n: usize) -> Vec<Balance<Self>>
    where
        Self: Sized,
    {
        crate::error::built(Balance::split(self, n))
    }

    /// Maps each item to a future on a tokio task, at most `n` at once, with **items of the
    /// same key processed one after another in input order** and different keys in parallel
    /// (Akka's `mapAsyncPartitioned`).
    ///
    /// At most `n` futures run (one per key); at most `m` items (default `n`,
    /// [`MapConcurrentByKey::with_waiting`]) wait behind an earlier item of their key, so at
    /// most `n + m` distinct keys are held.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // (member, event): one member's events in order, members in parallel.
    /// let events = [("ada", 1), ("bob", 1), ("ada", 2), ("bob", 2)];
    /// let start = tokio::time::Instant::now();
    /// let out: Vec<(&str, i32)> = stream::iter(events)
    ///     .map_concurrent_by_key(4, |(member, _)| *member, |e| async move {
    ///         tokio::time::sleep(Duration::from_millis(10)).await;
    ///         e
    ///     })
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, events); // per member: 1 then 2
    /// assert_eq!(start.elapsed(), Duration::from_millis(20)); // two members in parallel
    /// # }
    /// ```
    ///
    /// # Order
    ///
    /// Outputs of one key come out in input order; outputs of different keys in completion
    /// order.
    ///
    /// # Panics
    ///
    /// If `n == 0`; when polled outside a tokio runtime. A panic in a future is resumed on the
    /// consumer; a panic in `key` or `f` unwinds out of `poll_next`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the stream aborts every task in flight at once and drops the waiting items.
    #[track_caller]
    fn map_concurrent_by_key<K, KF, F, Fut>(
        self,
        n: usize,
        key: KF,
        f: F,
    ) -> MapConcurrentByKey<Self, K, KF, F, Fut>
    where
        Self: Sized,
        K: std::hash::Hash + Eq + Clone,
        KF: FnMut(&Self::Item) -> K,
        F: FnMut(Self::Item) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        crate::error::built(MapConcurrentByKey::checked_new(self, n, key, f))
    }

    /// Per-key aggregates over windows of **processing time** (the tokio instant each item
    /// arrives): one [`Aggregate`] per key and window, made by `init()` and
    /// `fold(&mut acc, &item)`, yielded when the window's end passes.
    ///
    /// `spec` is [`WindowSpec::tumbling`] or [`WindowSpec::sliding`]; windows count from the
    /// first poll. Memory per open window: one accumulator per key seen in it (items are
    /// never kept). A tokio timer closes windows while the upstream is idle.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // Checkouts per branch per minute; the third arrives at 61 s.
    /// let checkouts = stream::iter(["north", "south", "north"]).enumerate().then(|(i, b)| async move {
    ///     if i == 2 {
    ///         tokio::time::sleep(Duration::from_secs(61)).await;
    ///     }
    ///     b
    /// });
    /// let counts: Vec<(&str, u32)> = checkouts
    ///     .window(WindowSpec::tumbling(Duration::from_secs(60)), |b| *b, || 0, |n, _| *n += 1)
    ///     .map(|a| (a.key, a.value))
    ///     .collect()
    ///     .await;
    /// assert_eq!(counts, [("north", 1), ("south", 1), ("north", 1)]);
    /// # }
    /// ```
    ///
    /// # Order
    ///
    /// Windows in time order; within a window, keys in first-seen order. Open windows are
    /// yielded when the upstream ends.
    ///
    /// # Panics
    ///
    /// A panic in `key`, `init` or `fold` unwinds out of `poll_next`. Needs tokio's timer.
    ///
    /// # Cancel safety
    ///
    /// Dropping the stream drops the open windows' accumulators.
    fn window<K, KF, A, I, F>(
        self,
        spec: WindowSpec,
        key: KF,
        init: I,
        fold: F,
    ) -> Window<Self, K, KF, A, I, F>
    where
        Self: Sized,
        K: std::hash::Hash + Eq + Clone,
        KF: FnMut(&Self::Item) -> K,
        I: FnMut() -> A,
        F: FnMut(&mut A, &Self::Item),
    {
        Window::new(self, spec, key, init, fold)
    }

    /// Per-key aggregates over windows of **event time**: `timestamp(&item)` gives each item's
    /// time (a `Duration` since your epoch). A window closes once the largest timestamp seen,
    /// minus the allowed lateness ([`EventWindow::allowed_lateness`], default zero), reaches
    /// its end; it yields [`WindowEvent::Closed`] per key. An item whose window already closed
    /// is yielded as [`WindowEvent::Late`] and counted ([`EventWindow::late`]): routed, never
    /// silently dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::WindowEvent;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // (second, branch)
    /// let events = [(5u64, "north"), (30, "north"), (65, "south"), (20, "north")];
    /// let w = stream::iter(events).window_event_time(
    ///     WindowSpec::tumbling(Duration::from_secs(60)),
    ///     |(s, _)| Duration::from_secs(*s),
    ///     |(_, b)| *b,
    ///     || 0u32,
    ///     |n, _| *n += 1,
    /// );
    /// let late = w.late_counter();
    /// let out: Vec<_> = w.collect().await;
    /// assert!(matches!(&out[0], WindowEvent::Closed(a) if a.key == "north" && a.value == 2));
    /// assert_eq!(out[1], WindowEvent::Late((20, "north"))); // its minute closed at 65 s
    /// assert!(matches!(&out[2], WindowEvent::Closed(a) if a.key == "south" && a.value == 1));
    /// assert_eq!(late.get(), 1);
    /// # }
    /// ```
    ///
    /// # Order
    ///
    /// Windows in event-time order, keys in first-seen order; a late item comes out where it
    /// arrived. Open windows close when the upstream ends.
    ///
    /// # Panics
    ///
    /// A panic in `timestamp`, `key`, `init` or `fold` unwinds out of `poll_next`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the stream drops the open windows' accumulators.
    fn window_event_time<K, TF, KF, A, I, F>(
        self,
        spec: WindowSpec,
        timestamp: TF,
        key: KF,
        init: I,
        fold: F,
    ) -> EventWindow<Self, K, TF, KF, A, I, F>
    where
        Self: Sized,
        K: std::hash::Hash + Eq + Clone,
        TF: FnMut(&Self::Item) -> std::time::Duration,
        KF: FnMut(&Self::Item) -> K,
        I: FnMut() -> A,
        F: FnMut(&mut A, &Self::Item),
    {
        EventWindow::new(
            self,
            spec,
            std::time::Duration::ZERO,
            timestamp,
            key,
            init,
            fold,
        )
    }

    /// A bounded buffer of `capacity` items in front of a slow consumer, filled by a producer
    /// task as fast as this stream yields; when it is full, [`Overflow`] decides:
    /// `Backpressure` (stop pulling), `DropOldest` or `DropNewest`. Dropped items are counted
    /// ([`OnOverflow::dropped`]). To fail instead see
    /// [`fail_on_overflow`](Self::fail_on_overflow).
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let live = stream::iter(0..10).on_overflow(3, Overflow::DropOldest);
    /// let dropped = live.drop_counter();
    /// // The producer task runs ahead of the consumer: when the consumer first looks, only
    /// // the newest 3 items wait.
    /// assert_eq!(live.collect::<Vec<_>>().await, [7, 8, 9]);
    /// assert_eq!(dropped.get(), 7);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `capacity == 0`; when polled outside a tokio runtime. An upstream panic is re-raised
    /// in the consumer after the items buffered before it.
    ///
    /// # Cancel safety
    ///
    /// Dropping the stream aborts the producer task at once; buffered items are dropped.
    #[track_caller]
    fn on_overflow(self, capacity: usize, strategy: Overflow) -> OnOverflow<Self>
    where
        Self: Sized + Send + 'static,
        Self::Item: Send + 'static,
    {
        crate::error::built(OnOverflow::checked_new(self, capacity, strategy))
    }

    /// A bounded buffer of `capacity` items that **fails** when it overflows: the consumer
    /// gets every item buffered before, then `Err(Overflowed)`, then the end (the upstream is
    /// dropped at once).
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::Overflowed;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // The producer task runs ahead of the consumer and overflows at item 3.
    /// let s = stream::iter(0..10).fail_on_overflow(3);
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(0), Ok(1), Ok(2), Err(Overflowed { capacity: 3 })]);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `capacity == 0`; when polled outside a tokio runtime.
    ///
    /// # Cancel safety
    ///
    /// Dropping the stream aborts the producer task at once.
    #[track_caller]
    fn fail_on_overflow(self, capacity: usize) -> FailOnOverflow<Self>
    where
        Self: Sized + Send + 'static,
        Self::Item: Send + 'static,
    {
        crate::error::built(FailOnOverflow::checked_new(self, capacity))
    }

    /// While the consumer is busy, merges the arriving items into the one waiting with
    /// `merge(pending, new)` (a producer task keeps pulling); merges are counted
    /// ([`Conflate::conflated`]). For a live view that only wants the newest value use
    /// [`latest`](Self::latest).
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // The producer task pulls all four before the consumer first looks.
    /// let mut sums = stream::iter(1..=4).conflate(|a, b| a + b);
    /// assert_eq!(sums.next().await, Some(10));
    /// assert_eq!(sums.conflated(), 3);
    /// assert_eq!(sums.next().await, None);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// When polled outside a tokio runtime. A panic in the upstream is re-raised in the
    /// consumer after the pending item; a panic in `merge` is re-raised too (the two items it
    /// was merging go with it).
    ///
    /// # Cancel safety
    ///
    /// Dropping the stream aborts the producer task at once.
    fn conflate<F>(self, merge: F) -> Conflate<Self, F>
    where
        Self: Sized + Send + 'static,
        Self::Item: Send + 'static,
        F: FnMut(Self::Item, Self::Item) -> Self::Item + Send + 'static,
    {
        Conflate::new(self, merge)
    }

    /// [`conflate`](Self::conflate) keeping only the newest item: the consumer always gets the
    /// latest value; the replaced ones are counted ([`Conflate::conflated`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut view = stream::iter(1..=4).latest();
    /// assert_eq!(view.next().await, Some(4));
    /// assert_eq!(view.conflated(), 3);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// When polled outside a tokio runtime; an upstream panic is re-raised in the consumer.
    ///
    /// # Cancel safety
    ///
    /// Dropping the stream aborts the producer task at once.
    #[allow(clippy::type_complexity)]
    fn latest(self) -> Conflate<Self, fn(Self::Item, Self::Item) -> Self::Item>
    where
        Self: Sized + Send + 'static,
        Self::Item: Send + 'static,
    {
        Conflate::new(self, |_, newest| newest)
    }

    /// Limits the wait for **each** item to `limit`; a late item is reported as
    /// `Err(TimeoutError::Elapsed { after, index })` and the stream **goes on** (tokio-stream's
    /// `timeout`): the upstream is kept and the item is yielded when it arrives.
    ///
    /// This is the per-item timeout to reach for. One error per late item: after reporting
    /// it, the stream waits for that item without a second error (the clock restarts for the
    /// next item). The clock for an item starts at the first poll that finds the upstream
    /// pending after the previous item, so time the consumer spends between polls is not
    /// charged to the upstream; an item that is ready when the timer fires wins. One tokio
    /// timer per wrapper, re-armed for every wait; any limit up to `Duration::MAX` works (the
    /// deadline saturates). Must be polled inside a tokio runtime with time enabled.
    ///
    /// To **end** the stream at the first late item instead, use
    /// [`idle_timeout`](Self::idle_timeout); to bound the whole stream,
    /// [`deadline`](Self::deadline). A late item is not cancelled (a stream has no handle on
    /// one item): to give up on slow requests, bound the request future itself, e.g.
    /// `map_concurrent(n, |x| tokio::time::timeout(d, fetch(x)))`.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let slow_second = stream::iter(1..=3).then(|x| async move {
    ///     if x == 2 {
    ///         tokio::time::sleep(Duration::from_secs(3)).await;
    ///     }
    ///     x
    /// });
    /// let out: Vec<_> = slow_second.item_timeout(Duration::from_secs(1)).collect().await;
    /// assert_eq!(
    ///     out,
    ///     [Ok(1), Err(TimeoutError::Elapsed { after: Duration::from_secs(1), index: 1 }), Ok(2), Ok(3)]
    /// );
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `limit` is zero: "`item_timeout`: `limit` must be a non-zero duration, got 0ns; pass
    /// a value in that range" ([`ItemTimeout::checked_new`] returns the error instead).
    ///
    /// # Cancel safety
    ///
    /// Nothing is cancelled by a timeout; dropping the stream drops the upstream as usual.
    #[doc(alias = "timeout")]
    #[track_caller]
    fn item_timeout(self, limit: std::time::Duration) -> ItemTimeout<Self>
    where
        Self: Sized,
    {
        crate::error::built(ItemTimeout::checked_new(self, limit))
    }

    /// Ends the stream when the upstream is idle too long: if **an** item takes longer than
    /// `limit`, yields `Err(TimeoutError::Item { after, index })`, drops the upstream and ends
    /// (Akka's `idleTimeout`). Formerly `timeout_each`.
    ///
    /// The clock for an item starts at the first poll that finds the upstream pending after
    /// the previous item, so time the consumer spends between polls is not charged to the
    /// upstream; an item that is ready when the timer fires wins. One tokio timer per wrapper,
    /// re-armed for every wait; any limit up to `Duration::MAX` works (the deadline
    /// saturates). Must be polled inside a tokio runtime with time enabled. For a per-item
    /// timeout that keeps the stream going, use [`item_timeout`](Self::item_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let slow_third = stream::iter(1..=3).then(|x| async move {
    ///     if x == 3 {
    ///         tokio::time::sleep(Duration::from_secs(10)).await;
    ///     }
    ///     x
    /// });
    /// let out: Vec<_> = slow_third.idle_timeout(Duration::from_secs(1)).collect().await;
    /// assert_eq!(
    ///     out,
    ///     [Ok(1), Ok(2), Err(TimeoutError::Item { after: Duration::from_secs(1), index: 2 })]
    /// );
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `limit` is zero: "`idle_timeout`: `limit` must be a non-zero duration, got 0ns; pass
    /// a value in that range" ([`IdleTimeout::checked_new`] returns the error instead).
    ///
    /// # Cancel safety
    ///
    /// After a timeout the stream **ends and the upstream is dropped** (cancelled), because a
    /// stream whose poll was abandoned mid-item may not be resumable. To try again, put it
    /// inside `restartable(..).retry(..)` (which re-opens the source from the checkpoint) or
    /// let `on_error` decide.
    #[track_caller]
    fn idle_timeout(self, limit: std::time::Duration) -> IdleTimeout<Self>
    where
        Self: Sized,
    {
        crate::error::built(IdleTimeout::checked_new(self, limit))
    }

    /// Deprecated: renamed [`idle_timeout`](Self::idle_timeout) (same behaviour: the stream
    /// **ends** at the first late item), because users reaching for a per-item timeout
    /// expected the stream to go on. For that, use [`item_timeout`](Self::item_timeout).
    ///
    /// # Panics
    ///
    /// If `limit` is zero: "`timeout_each`: `limit` must be a non-zero duration, got 0ns; pass
    /// a value in that range".
    #[deprecated(
        note = "renamed `idle_timeout` (ends the stream at the first late item); for a per-item \
                timeout that keeps the stream going, use `item_timeout`"
    )]
    #[track_caller]
    fn timeout_each(self, limit: std::time::Duration) -> IdleTimeout<Self>
    where
        Self: Sized,
    {
        crate::error::built(IdleTimeout::checked_named(self, limit, "timeout_each"))
    }

    /// The whole stream must end within `limit` of its first poll; when the deadline passes it
    /// yields `Err(TimeoutError::Deadline { after })` and ends.
    ///
    /// The timer is checked before every pull, so an always-ready upstream is cut off too, at
    /// the first pull after tokio fires the timer (tokio's timer driver runs whenever the
    /// consuming task yields to the runtime, so a consumer that never yields cannot observe
    /// any tokio timer).
    /// Must be polled inside a tokio runtime with time enabled.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let ticks = stream::iter(0..).then(|x| async move {
    ///     tokio::time::sleep(Duration::from_millis(40)).await;
    ///     x
    /// });
    /// let out: Vec<_> = ticks.deadline(Duration::from_millis(100)).collect().await;
    /// assert_eq!(
    ///     out,
    ///     [Ok(0), Ok(1), Err(TimeoutError::Deadline { after: Duration::from_millis(100) })]
    /// );
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `limit` is zero: "`deadline`: `limit` must be a non-zero duration, got 0ns; pass a
    /// value in that range" ([`Deadline::checked_new`] returns the error instead).
    ///
    /// # Cancel safety
    ///
    /// When the deadline passes the **upstream is dropped** (cancelled) at once, mid-item if
    /// need be; nothing more is pulled from it.
    #[track_caller]
    fn deadline(self, limit: std::time::Duration) -> Deadline<Self>
    where
        Self: Sized,
    {
        crate::error::built(Deadline::checked_new(self, limit))
    }

    /// Graceful shutdown: once `token` is cancelled, stops pulling from this stream and ends.
    ///
    /// The token is checked before every pull, and a consumer waiting on a pending upstream is
    /// woken by the cancel. Items already pulled are not affected: put `stop_on` **right after
    /// the source**, before `map_concurrent`, `buffer_unordered` or `prefetch`, and the
    /// in-flight items downstream still drain to the consumer; put it last and they are
    /// dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let token = CancellationToken::new();
    /// let mut out = Box::pin(
    ///     stream::iter(0..)
    ///         .stop_on(token.clone()) // right after the source
    ///         .map(|x| async move {
    ///             tokio::time::sleep(Duration::from_millis(10)).await;
    ///             x
    ///         })
    ///         .buffered(4),
    /// );
    /// assert_eq!(out.next().await, Some(0));
    /// token.cancel(); // 1, 2 and 3 are in flight: they still arrive, nothing more is pulled
    /// assert_eq!(out.collect::<Vec<_>>().await, [1, 2, 3]);
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// The upstream is never polled after the token fires, but it is not dropped until the
    /// wrapper is (use [`StopOn::into_inner`] to get it back).
    fn stop_on(self, token: tokio_util::sync::CancellationToken) -> StopOn<Self>
    where
        Self: Sized,
    {
        StopOn::new(self, token)
    }

    /// Counts what passes through this point of the pipeline: items, polls, `Pending` polls,
    /// the end of the stream, and optionally errors
    /// ([`count_errors`](crate::wrappers::Metered::count_errors)) and time spent upstream
    /// ([`with_timing`](crate::wrappers::Metered::with_timing)).
    ///
    /// The counters are read live through [`Metered::metrics`](crate::wrappers::Metered::metrics);
    /// to gather many stages in one place use [`metered_in`](PipelineExt::metered_in). Counting
    /// costs a few plain instructions per item (no lock, no atomic read-modify-write: each
    /// stage has one writer). Items pass through unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter(0..5).metered("source");
    /// let m = s.metrics();
    /// let out: Vec<i32> = s.collect().await;
    /// assert_eq!(out, [0, 1, 2, 3, 4]);
    /// let snap = m.snapshot();
    /// assert_eq!((snap.items, snap.pending_polls, snap.finished), (5, 0, true));
    /// # }
    /// ```
    fn metered(self, name: impl Into<String>) -> Metered<Self>
    where
        Self: Sized,
    {
        Metered::new(self, name)
    }

    /// Like [`metered`](PipelineExt::metered), registering the stage in `metrics` so that
    /// [`Metrics::snapshot`](crate::Metrics::snapshot) lists it (in insertion order).
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Metrics;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let metrics = Metrics::new();
    /// let _: Vec<u8> = stream::iter([1u8, 2, 3]).metered_in(&metrics, "bytes").collect().await;
    /// assert_eq!(metrics.snapshot()[0].items, 3);
    /// # }
    /// ```
    fn metered_in(self, metrics: &crate::Metrics, name: impl Into<String>) -> Metered<Self>
    where
        Self: Sized,
    {
        Metered::new_in(self, metrics, name)
    }
}

impl<S: Stream + ?Sized> PipelineExt for S {}
