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
        CheckpointWith::new(self, crate::checkpoint_with(init, update))
    }

    /// Decides what happens to `Err` items, per [`Supervision`](crate::policy::Supervision):
    /// `Stop` yields the error and ends, `Resume` drops it and continues, `Replace(f)` turns it
    /// into an item.
    ///
    /// Skipped errors are never silently lost: each is counted ([`Supervise::skipped`],
    /// [`Supervise::skip_counter`]) and reported as a `tracing` warning with the error.
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
    /// let skipped = s.skip_counter();
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
    /// `index` counts every upstream item, errors included.
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
    /// them (no "futurelock"). Each future is first polled once inline; one that is ready at
    /// once costs no task and no allocation. At most `n` futures are in flight and at most
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
    /// If `n` is 0 (the message names the stage; [`MapConcurrent::try_new`] returns the
    /// [`ConfigError`](crate::ConfigError)). When polled outside a tokio runtime. A panic in `f`
    /// or in a future is resumed on the consumer.
    ///
    /// # Cancel safety
    ///
    /// Dropping the stream aborts every task in flight at once and drops held results.
    #[track_caller]
    fn map_concurrent<F, Fut>(self, n: usize, f: F) -> MapConcurrent<Self, F, Fut>
    where
        Self: Sized,
        F: FnMut(Self::Item) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        crate::error::built(MapConcurrent::try_new(self, n, f))
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
        crate::error::built(MapConcurrent::try_new_unordered(self, n, f))
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
    /// let stats = s.stats();
    /// let out: Vec<_> = s.collect().await;
    /// assert_eq!(out, [Ok(10), Ok(20), Err(Fetch::NotFound)]);
    /// assert_eq!(stats.retries(), 1); // item 2 once; the 404 is not retried
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `n` is 0 ([`MapRetry::try_new`] returns the [`ConfigError`](crate::ConfigError)).
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
        crate::error::built(MapRetry::try_new(self, n, policy, f))
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
        crate::error::built(MapRetry::try_new_unordered(self, n, policy, f))
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
        crate::error::built(MapConcurrentLocal::try_new(self, n, f))
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
        crate::error::built(MapConcurrentLocal::try_new_unordered(self, n, f))
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
        crate::error::built(TryMapConcurrent::try_new(self, n, f))
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
        crate::error::built(TryMapConcurrent::try_new_unordered(self, n, f))
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
        crate::error::built(MapBlocking::try_new(self, n, f))
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
    /// [`Batch::try_new`] returns the error instead.
    #[track_caller]
    fn batch(self, size: usize) -> Batch<Self>
    where
        Self: Sized,
    {
        crate::error::built(Batch::try_new(self, size))
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
    /// `ready_chunks`). [`Batch::try_within`] returns the error instead.
    #[track_caller]
    fn batch_within(self, size: usize, within: std::time::Duration) -> Batch<Self>
    where
        Self: Sized,
    {
        crate::error::built(Batch::try_within(self, size, within))
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
    /// pass a non-zero value" ([`Prefetch::try_new`] returns the error instead). Polling panics
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
        crate::error::built(Prefetch::try_new(self, capacity))
    }

    /// Limits the wait for **each** item to `limit`; yields `Ok(item)`, or
    /// `Err(TimeoutError::Item { after, index })` and ends when the upstream takes longer.
    ///
    /// The clock for an item starts at the first poll that finds the upstream pending after
    /// the previous item, so time the consumer spends between polls is not charged to the
    /// upstream; an item that is ready when the timer fires wins. One tokio timer per wrapper,
    /// re-armed for every wait. Must be polled inside a tokio runtime with time enabled.
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
    /// let out: Vec<_> = slow_third.timeout_each(Duration::from_secs(1)).collect().await;
    /// assert_eq!(
    ///     out,
    ///     [Ok(1), Ok(2), Err(TimeoutError::Item { after: Duration::from_secs(1), index: 2 })]
    /// );
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `limit` is zero: "`timeout_each`: `limit` must be a non-zero duration, got 0ns; pass
    /// a value in that range" ([`TimeoutEach::try_new`] returns the error instead).
    ///
    /// # Cancel safety
    ///
    /// After a timeout the stream **ends and the upstream is dropped** (cancelled), because a
    /// stream whose poll was abandoned mid-item may not be resumable. To try again, put it
    /// inside `restartable(..).retry(..)` (which re-opens the source from the checkpoint) or
    /// let `on_error` decide.
    #[track_caller]
    fn timeout_each(self, limit: std::time::Duration) -> TimeoutEach<Self>
    where
        Self: Sized,
    {
        crate::error::built(TimeoutEach::try_new(self, limit))
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
    /// value in that range" ([`Deadline::try_new`] returns the error instead).
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
        crate::error::built(Deadline::try_new(self, limit))
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
