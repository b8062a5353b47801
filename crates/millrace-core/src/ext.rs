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

    // BEGIN ext: errors (recover_with, checkpoint_with, on_error, validate, validate_ok)
    // END ext: errors

    // BEGIN ext: concurrency (map_concurrent*, try_map_concurrent, map_blocking, rate_limit)
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

    /// Releases items no faster than a rate: GCRA on tokio time, never more than the burst
    /// `b` at one instant, long-run rate `r`, and no burst beyond `b` after an idle time.
    ///
    /// Pass a [`Rate`](crate::policy::Rate) for a fresh budget, or a clone of a
    /// [`RateLimiter`](crate::policy::RateLimiter) to share one budget between streams and
    /// tasks (clones share state). To bound requests in flight as well:
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
    // END ext: concurrency

    // BEGIN ext: flow (batch, batch_within, prefetch, timeout_each, deadline, stop_on)
    // END ext: flow

    // BEGIN ext: resources (metered)
    // END ext: resources
}

impl<S: Stream + ?Sized> PipelineExt for S {}
