//! [`PipelineExt`]: every millrace wrapper as a method on every [`Stream`].
//!
//! This file is the index of the library: every method with its one-paragraph summary, its
//! signature and a one-line body that builds the wrapper. The rest of each method's docs
//! (`# Examples` and, where they apply, `# Errors`, `# Panics` and `# Cancel safety`) is in
//! `ext/<method>.md`, included with `#[doc = include_str!(..)]` as axum does for its routing
//! docs: rustdoc and the doc tests see one document per method, and this file stays one a
//! reader can hold. Method names never collide with `futures::StreamExt` or
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
    #[doc = include_str!("ext/wrap.md")]
    fn wrap<L>(self, stage: L) -> L::Output
    where
        L: Stage<Self>,
        Self: Sized,
    {
        stage.wrap(self)
    }

    /// On an error, switches to a fallback stream that resumes from the checkpoint.
    ///
    #[doc = include_str!("ext/recover_with.md")]
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
    #[doc = include_str!("ext/checkpoint_with.md")]
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
    #[doc = include_str!("ext/on_error.md")]
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
    #[doc = include_str!("ext/skip_errors.md")]
    fn skip_errors<T, E>(self) -> SkipErrors<Self>
    where
        Self: Stream<Item = Result<T, E>> + Sized,
    {
        SkipErrors::new(self)
    }

    /// Checks every item with `f`: passing items become `Ok(item)`, rejected ones
    /// `Err(Invalid { item, reason, index })`, so the invalid item is carried, never lost.
    ///
    #[doc = include_str!("ext/validate.md")]
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
    #[doc = include_str!("ext/validate_ok.md")]
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
    #[doc = include_str!("ext/map_concurrent.md")]
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
    #[doc = include_str!("ext/map_concurrent_unordered.md")]
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
    #[doc = include_str!("ext/map_retry.md")]
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
    #[doc = include_str!("ext/map_retry_unordered.md")]
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
    #[doc = include_str!("ext/map_concurrent_local.md")]
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
    #[doc = include_str!("ext/map_concurrent_local_unordered.md")]
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
    #[doc = include_str!("ext/try_map_concurrent.md")]
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
    #[doc = include_str!("ext/try_map_concurrent_unordered.md")]
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
    #[doc = include_str!("ext/map_blocking.md")]
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
    #[doc = include_str!("ext/rate_limit.md")]
    fn rate_limit(self, rate: impl Into<crate::policy::RateLimiter>) -> RateLimit<Self>
    where
        Self: Sized,
    {
        RateLimit::new(self, rate)
    }

    /// Groups items into `Vec`s of exactly `size` items; the last batch holds the rest.
    ///
    #[doc = include_str!("ext/batch.md")]
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
    #[doc = include_str!("ext/batch_within.md")]
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
    #[doc = include_str!("ext/try_batch.md")]
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
    #[doc = include_str!("ext/try_batch_within.md")]
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
    #[doc = include_str!("ext/prefetch.md")]
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
    #[doc = include_str!("ext/broadcast.md")]
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
    #[doc = include_str!("ext/partition.md")]
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
    #[doc = include_str!("ext/balance.md")]
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
    #[doc = include_str!("ext/map_concurrent_by_key.md")]
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
    #[doc = include_str!("ext/window.md")]
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
    #[doc = include_str!("ext/window_event_time.md")]
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
    #[doc = include_str!("ext/on_overflow.md")]
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
    #[doc = include_str!("ext/fail_on_overflow.md")]
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
    #[doc = include_str!("ext/conflate.md")]
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
    #[doc = include_str!("ext/latest.md")]
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
    #[doc = include_str!("ext/item_timeout.md")]
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
    #[doc = include_str!("ext/idle_timeout.md")]
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
    #[doc = include_str!("ext/timeout_each.md")]
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
    #[doc = include_str!("ext/deadline.md")]
    #[track_caller]
    fn deadline(self, limit: std::time::Duration) -> Deadline<Self>
    where
        Self: Sized,
    {
        crate::error::built(Deadline::checked_new(self, limit))
    }

    /// Graceful shutdown: once `token` is cancelled, stops pulling from this stream and ends.
    ///
    #[doc = include_str!("ext/stop_on.md")]
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
    #[doc = include_str!("ext/metered.md")]
    fn metered(self, name: impl Into<String>) -> Metered<Self>
    where
        Self: Sized,
    {
        Metered::new(self, name)
    }

    /// Like [`metered`](PipelineExt::metered), registering the stage in `metrics` so that
    /// [`Metrics::snapshot`](crate::Metrics::snapshot) lists it (in insertion order).
    ///
    #[doc = include_str!("ext/metered_in.md")]
    fn metered_in(self, metrics: &crate::Metrics, name: impl Into<String>) -> Metered<Self>
    where
        Self: Sized,
    {
        Metered::new_in(self, metrics, name)
    }
}

impl<S: Stream + ?Sized> PipelineExt for S {}
