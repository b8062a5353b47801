//! Spawned mode: every future that is not ready at once runs on its own tokio task.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use futures_util::task::AtomicWaker;
use pin_project_lite::pin_project;
use tokio::task::{JoinError, JoinSet};
use tokio_util::task::AbortOnDropHandle;

use crate::error::{ConfigError, nonzero};
use crate::metrics::{Observable, StageMetrics};

/// Tells whether an output is a failure (fail-fast mode only).
pub(super) type FailCheck<O> = fn(&O) -> bool;

/// State shared between the stream and its spawned tasks.
#[derive(Debug, Default)]
struct Shared {
    /// Spawned tasks whose future has completed, panicked or been aborted (monotonic).
    finished: AtomicUsize,
    /// Copy of `Engine::spawned` for the metrics gauges (written by the consumer only, on
    /// the spawn path).
    spawned: AtomicUsize,
    /// Copy of `Engine::held()` for the metrics gauges (written by the consumer only, when
    /// an item is kept or taken back, never on the ready-at-once path); 0 once dropped.
    held: AtomicUsize,
    /// Set by a task whose output is a failure (fail-fast mode only).
    failed: AtomicBool,
    /// The consumer, registered when it waits for a free in-flight slot.
    waker: AtomicWaker,
}

impl Shared {
    /// Futures running on their tasks: spawned and not finished.
    fn in_flight(&self) -> usize {
        // `finished` first: every finish we see was preceded by the spawn it finishes.
        let finished = self.finished.load(Ordering::Acquire);
        self.spawned
            .load(Ordering::Acquire)
            .saturating_sub(finished)
    }

    /// Results completed and not yet yielded.
    fn buffered(&self) -> usize {
        let in_flight = self.in_flight();
        self.held.load(Ordering::Acquire).saturating_sub(in_flight)
    }
}

/// The future a task runs: the user's future in the box it was first polled in.
///
/// Dropping it (completion, panic or abort) counts the task as finished and wakes the
/// consumer, so a free slot is seen before the task's output is even stored.
struct Task<Fut: Future> {
    fut: Pin<Box<Option<Fut>>>,
    shared: Arc<Shared>,
    fail: Option<FailCheck<Fut::Output>>,
}

impl<Fut: Future> Future for Task<Fut> {
    type Output = Fut::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Fut::Output> {
        let this = &mut *self;
        let fut = this
            .fut
            .as_mut()
            .as_pin_mut()
            .expect("task polled after completion");
        let out = ready!(fut.poll(cx));
        this.fut.set(None);
        if let Some(fail) = this.fail
            && fail(&out)
        {
            this.shared.failed.store(true, Ordering::Release);
        }
        Poll::Ready(out)
    }
}

impl<Fut: Future> Drop for Task<Fut> {
    fn drop(&mut self) {
        self.shared.finished.fetch_add(1, Ordering::AcqRel);
        self.shared.waker.wake();
    }
}

/// One position of the ordered output window.
enum Slot<O> {
    Running(AbortOnDropHandle<O>),
    Done(O),
}

/// Re-raises a task's panic on the consumer; a cancelled task is a bug or a runtime shutdown.
pub(crate) fn unwrap_join<O>(stage: &str, result: Result<O, JoinError>) -> O {
    match result {
        Ok(out) => out,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!(
            "`{stage}`: a task was cancelled before it finished ({e}); \
             is the tokio runtime shutting down while the stream is polled?"
        ),
    }
}

/// The bookkeeping of spawned mode, independent of the upstream and the closure.
pub(super) struct Engine<Fut: Future> {
    ordered: bool,
    /// At most this many futures in flight.
    limit: usize,
    /// At most this many items held (in flight + completed but not yet yielded).
    window: usize,
    /// Tasks spawned so far; `spawned - shared.finished` are in flight.
    spawned: usize,
    shared: Arc<Shared>,
    /// Ordered mode: the output window, oldest first.
    ring: VecDeque<Slot<Fut::Output>>,
    /// Unordered mode: the running tasks, joined in completion order.
    set: JoinSet<Fut::Output>,
    /// Reusable pinned storage for the inline first poll (moved into a task only when the
    /// future is pending, so ready futures cost no allocation).
    cache: Option<Pin<Box<Option<Fut>>>>,
    /// Whether futures are polled once inline before being spawned: only on a current-thread
    /// runtime, where it costs no parallelism (decided at the first item).
    inline: Option<bool>,
    fail: Option<FailCheck<Fut::Output>>,
}

impl<Fut: Future> fmt::Debug for Engine<Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("ordered", &self.ordered)
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("in_flight", &self.running())
            .field("held", &self.held())
            .finish()
    }
}

impl<Fut: Future> Engine<Fut> {
    pub(super) fn new(ordered: bool, limit: usize) -> Self {
        Engine {
            ordered,
            limit,
            window: limit.saturating_mul(2),
            spawned: 0,
            shared: Arc::new(Shared::default()),
            ring: VecDeque::new(),
            set: JoinSet::new(),
            cache: None,
            inline: None,
            fail: None,
        }
    }

    pub(super) fn set_output_buffer(&mut self, m: usize) {
        self.window = self.limit.saturating_add(m);
    }

    pub(super) fn set_fail_check(&mut self, fail: FailCheck<Fut::Output>) {
        self.fail = Some(fail);
    }

    pub(super) fn limit(&self) -> usize {
        self.limit
    }

    pub(super) fn output_buffer(&self) -> usize {
        self.window - self.limit
    }

    fn running(&self) -> usize {
        self.spawned
            .saturating_sub(self.shared.finished.load(Ordering::Acquire))
    }

    pub(super) fn held(&self) -> usize {
        if self.ordered {
            self.ring.len()
        } else {
            self.set.len()
        }
    }

    /// Publishes `held()` for the gauges (after the ring or the join set changed).
    fn publish_held(&self) {
        self.shared.held.store(self.held(), Ordering::Release);
    }

    /// Whether a new item may be started; registers the consumer for a free slot if not.
    pub(super) fn has_room(&self, cx: &mut Context<'_>) -> bool {
        if self.held() >= self.window {
            // The head (ordered) or the join set (unordered) wakes us when it moves.
            return false;
        }
        if self.fail.is_some() && self.shared.failed.load(Ordering::Acquire) {
            // Fail-fast: a failure is waiting to be yielded; pull nothing more.
            return false;
        }
        if self.running() < self.limit {
            return true;
        }
        self.shared.waker.register(cx.waker());
        self.running() < self.limit
    }

    /// Aborts every task and drops every held result.
    pub(super) fn abort_all(&mut self) {
        self.ring.clear();
        drop(std::mem::take(&mut self.set));
        self.publish_held();
    }
}

impl<Fut: Future> Drop for Engine<Fut> {
    fn drop(&mut self) {
        // Held results are dropped with the engine; aborted tasks count themselves finished.
        self.shared.held.store(0, Ordering::Release);
    }
}

impl<Fut> Engine<Fut>
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    /// Whether to poll futures once inline before spawning them: on a current-thread runtime
    /// (every task runs on the consumer's thread anyway, so a future that is ready at once
    /// loses nothing by running there, and costs no task). On a multi-threaded runtime every
    /// future goes to its own task at once, so CPU work before its first `.await` runs in
    /// parallel on the workers. Outside a runtime: inline (a pending future then fails to
    /// spawn, with tokio's message).
    fn inline_first_poll(&mut self) -> bool {
        *self.inline.get_or_insert_with(|| {
            tokio::runtime::Handle::try_current().map_or(true, |h| {
                h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread
            })
        })
    }

    /// Starts `fut`. On a current-thread runtime it is polled once inline first: returns its
    /// output if it may be yielded right now; otherwise keeps it (ready, behind earlier items)
    /// or spawns it (pending). On a multi-threaded runtime it is spawned at once.
    pub(super) fn start(&mut self, fut: Fut, cx: &mut Context<'_>) -> Option<Fut::Output> {
        if !self.inline_first_poll() {
            self.spawn(Box::pin(Some(fut)));
            return None;
        }
        let cell = self.cache.get_or_insert_with(|| Box::pin(None));
        cell.set(Some(fut));
        let polled = cell
            .as_mut()
            .as_pin_mut()
            .expect("future was just stored")
            .poll(cx);
        match polled {
            Poll::Ready(out) => {
                cell.set(None);
                if self.ordered && !self.ring.is_empty() {
                    if let Some(fail) = self.fail
                        && fail(&out)
                    {
                        self.shared.failed.store(true, Ordering::Release);
                    }
                    self.ring.push_back(Slot::Done(out));
                    self.publish_held();
                    None
                } else {
                    Some(out)
                }
            }
            Poll::Pending => {
                // Slow path: the box becomes the task's storage (the future stays where it was
                // pinned); the next item allocates a fresh box.
                let fut = self.cache.take().expect("cache was just filled");
                self.spawn(fut);
                None
            }
        }
    }

    /// Runs `fut` (pinned in its box) on a new task, in the window.
    fn spawn(&mut self, fut: Pin<Box<Option<Fut>>>) {
        let task = Task {
            fut,
            shared: Arc::clone(&self.shared),
            fail: self.fail,
        };
        self.spawned += 1;
        // Published before the task can finish (see `Shared::in_flight`).
        self.shared.spawned.store(self.spawned, Ordering::Release);
        if self.ordered {
            let handle = AbortOnDropHandle::new(tokio::spawn(task));
            self.ring.push_back(Slot::Running(handle));
        } else {
            self.set.spawn(task);
        }
        self.publish_held();
    }

    /// The next output: `Ready(None)` when nothing is held.
    pub(super) fn poll_output(
        &mut self,
        stage: &str,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Fut::Output>> {
        if !self.ordered {
            return match self.set.poll_join_next(cx) {
                Poll::Ready(Some(r)) => {
                    self.publish_held();
                    Poll::Ready(Some(unwrap_join(stage, r)))
                }
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
        if self.fail.is_some()
            && self.shared.failed.load(Ordering::Acquire)
            && let Some(out) = self.take_failure(stage, cx)
        {
            return Poll::Ready(Some(out));
        }
        match self.ring.front_mut() {
            None => Poll::Ready(None),
            Some(Slot::Done(_)) => match self.ring.pop_front() {
                Some(Slot::Done(out)) => {
                    self.publish_held();
                    Poll::Ready(Some(out))
                }
                _ => unreachable!("front slot was done"),
            },
            Some(Slot::Running(handle)) => {
                let r = ready!(Pin::new(handle).poll(cx));
                self.ring.pop_front();
                self.publish_held();
                Poll::Ready(Some(unwrap_join(stage, r)))
            }
        }
    }

    /// Fail-fast, ordered: finds a failed output anywhere in the window (not only at the head).
    fn take_failure(&mut self, stage: &str, cx: &mut Context<'_>) -> Option<Fut::Output> {
        let fail = self.fail?;
        for i in 0..self.ring.len() {
            let slot = &mut self.ring[i];
            if let Slot::Running(handle) = slot
                && let Poll::Ready(r) = Pin::new(handle).poll(cx)
            {
                *slot = Slot::Done(unwrap_join(stage, r));
            }
            if let Slot::Done(out) = slot
                && fail(out)
            {
                self.shared.failed.store(false, Ordering::Release);
                let removed = self.ring.remove(i);
                self.publish_held();
                return match removed {
                    Some(Slot::Done(out)) => Some(out),
                    _ => unreachable!("slot was done"),
                };
            }
        }
        None
    }
}

pin_project! {
    /// Stream for the [`map_concurrent`](crate::PipelineExt::map_concurrent) and
    /// [`map_concurrent_unordered`](crate::PipelineExt::map_concurrent_unordered) methods.
    ///
    /// # Limits
    ///
    /// With in-flight limit `n` and output buffer `m` (default `m = n`, see
    /// [`with_output_buffer`](MapConcurrent::with_output_buffer)), at every moment:
    ///
    /// * at most `n` futures are in flight (started and not finished);
    /// * at most `n + m` items are **outstanding**: pulled from upstream and not yet yielded,
    ///   whether still running or completed and waiting (behind a slower earlier item in the
    ///   ordered variant, or for the consumer to ask in either variant). So at most
    ///   `n + m - 1` completed results wait behind one slow item.
    ///
    /// `m = 0` gives the behaviour of `futures`' `buffered(n)`: a completed result keeps its
    /// in-flight slot until it is yielded.
    ///
    /// # Execution
    ///
    /// **On a multi-threaded runtime** each future is spawned on its own tokio task as soon as
    /// `f` creates it, so the work runs in parallel on the workers, CPU work before the first
    /// `.await` included. **On a current-thread runtime** (where tasks cannot run in parallel
    /// anyway) each future is first polled **once inline**, in the consumer's `poll_next`: one
    /// that is ready at once is yielded (or kept in order) without any allocation or task;
    /// only a pending future is moved, already pinned in its box, onto a new task
    /// (`tokio::spawn`), where it keeps running while the consumer is busy. Either way, new
    /// items are pulled from the upstream (and `f` called) only while the consumer polls.
    /// Spawning needs a tokio runtime.
    ///
    /// # Cooperative scheduling
    ///
    /// The stream takes part in tokio's cooperative budget (`tokio::task::coop`), as tokio's
    /// own streams do: each item yielded spends one unit, and once the task's budget is spent
    /// the stream returns `Pending` (and is woken at once), so a stage whose futures are all
    /// ready cannot starve the other tasks of a current-thread runtime.
    ///
    /// # Panics
    ///
    /// A panic in `f` or in a future's inline first poll unwinds straight out of `poll_next`; a
    /// panic in a spawned future is resumed on the consumer (`resume_unwind`) where its output would
    /// have been yielded (at its input position in the ordered variant). It never looks like
    /// a normal end of the stream.
    ///
    /// ```
    /// use millrace::wrappers::MapConcurrent;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = MapConcurrent::new(stream::iter(1..=4), 2, |x| async move { x * 10 })
    ///     .with_output_buffer(8);
    /// assert_eq!(s.collect::<Vec<_>>().await, [10, 20, 30, 40]);
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct MapConcurrent<S, F, Fut>
    where
        Fut: Future,
    {
        #[pin]
        upstream: S,
        f: F,
        engine: Engine<Fut>,
        upstream_done: bool,
        finished: bool,
        stage: &'static str,
    }
}

impl<S, F, Fut> fmt::Debug for MapConcurrent<S, F, Fut>
where
    S: fmt::Debug,
    Fut: Future,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapConcurrent")
            .field("upstream", &self.upstream)
            .field("engine", &self.engine)
            .field("upstream_done", &self.upstream_done)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<S, F, Fut> MapConcurrent<S, F, Fut>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    /// Ordered: outputs in input order, at most `limit` in flight.
    ///
    /// # Panics
    ///
    /// If `limit` is 0 (see [`try_new`](Self::try_new)).
    pub fn new(upstream: S, limit: usize, f: F) -> Self {
        crate::error::built(Self::try_new(upstream, limit, f))
    }

    /// Ordered, or a [`ConfigError`] if `limit` is 0.
    ///
    /// ```
    /// use millrace::wrappers::MapConcurrent;
    /// use futures::stream;
    ///
    /// let err = MapConcurrent::try_new(stream::iter([1]), 0, |x| async move { x }).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "`map_concurrent`: `limit` must be at least 1, got 0; pass a non-zero value"
    /// );
    /// ```
    pub fn try_new(upstream: S, limit: usize, f: F) -> Result<Self, ConfigError> {
        Self::build(upstream, limit, f, true, "map_concurrent")
    }

    /// Unordered: outputs in completion order, at most `limit` in flight.
    ///
    /// # Panics
    ///
    /// If `limit` is 0 (see [`try_new_unordered`](Self::try_new_unordered)).
    pub fn new_unordered(upstream: S, limit: usize, f: F) -> Self {
        crate::error::built(Self::try_new_unordered(upstream, limit, f))
    }

    /// Unordered, or a [`ConfigError`] if `limit` is 0.
    ///
    /// ```
    /// use millrace::wrappers::MapConcurrent;
    /// use futures::stream;
    ///
    /// let res = MapConcurrent::try_new_unordered(stream::iter([1]), 0, |x| async move { x });
    /// assert_eq!(
    ///     res.unwrap_err().to_string(),
    ///     "`map_concurrent_unordered`: `limit` must be at least 1, got 0; pass a non-zero value"
    /// );
    /// ```
    pub fn try_new_unordered(upstream: S, limit: usize, f: F) -> Result<Self, ConfigError> {
        Self::build(upstream, limit, f, false, "map_concurrent_unordered")
    }

    pub(super) fn build(
        upstream: S,
        limit: usize,
        f: F,
        ordered: bool,
        stage: &'static str,
    ) -> Result<Self, ConfigError> {
        let limit = nonzero(stage, "limit", limit)?.get();
        Ok(MapConcurrent {
            upstream,
            f,
            engine: Engine::new(ordered, limit),
            upstream_done: false,
            finished: false,
            stage,
        })
    }
}

impl<S, F, Fut: Future> MapConcurrent<S, F, Fut> {
    delegate_access_inner!(upstream, S);

    /// Sets the output buffer `m`: how many items beyond the in-flight limit `n` may be
    /// outstanding (so `n + m` in all). Default `m = n`; `m = 0` behaves like `buffered(n)`.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter(0..3).map_concurrent(4, |x| async move { x + 1 }).with_output_buffer(0);
    /// assert_eq!(s.output_buffer(), 0);
    /// assert_eq!(s.collect::<Vec<_>>().await, [1, 2, 3]);
    /// # }
    /// ```
    pub fn with_output_buffer(mut self, m: usize) -> Self {
        self.engine.set_output_buffer(m);
        self
    }

    /// The in-flight limit `n`.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = stream::iter([1]).map_concurrent(3, |x| async move { x });
    /// assert_eq!((s.limit(), s.output_buffer()), (3, 3));
    /// ```
    pub fn limit(&self) -> usize {
        self.engine.limit()
    }

    /// The output buffer `m` (see [`with_output_buffer`](Self::with_output_buffer)).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = stream::iter([1]).map_concurrent(3, |x| async move { x }).with_output_buffer(1);
    /// assert_eq!(s.output_buffer(), 1);
    /// ```
    pub fn output_buffer(&self) -> usize {
        self.engine.output_buffer()
    }

    /// Futures started and not finished: running on their tasks now (at most
    /// [`limit`](Self::limit)). A future that is ready at its first (inline) poll is never in
    /// flight.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut s = stream::iter(1..=5u64).map_concurrent(3, |x| async move {
    ///     tokio::time::sleep(Duration::from_millis(100 * x)).await;
    ///     x
    /// });
    /// assert_eq!(s.in_flight(), 0);
    /// assert_eq!(s.next().await, Some(1)); // 1, 2, 3 started; 1 done at 100 ms, 4 started
    /// assert_eq!(s.in_flight(), 3); // 2, 3, 4
    /// # }
    /// ```
    pub fn in_flight(&self) -> usize {
        self.engine.shared.in_flight()
    }

    /// Results completed and not yet yielded: waiting behind a slower earlier item (ordered)
    /// or for the consumer to ask (at most [`limit`](Self::limit) `+`
    /// [`output_buffer`](Self::output_buffer) together with the in-flight ones).
    ///
    /// (Not called `buffered`: with `futures::StreamExt` in scope, `s.buffered()` would resolve
    /// to `StreamExt::buffered(self, n)`, which takes `self` by value and so wins.)
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // The first item is slow: the two behind it finish first and wait in order.
    /// let mut s = stream::iter([300u64, 100, 100]).map_concurrent(3, |ms| async move {
    ///     tokio::time::sleep(Duration::from_millis(ms)).await;
    ///     ms
    /// });
    /// let first = tokio::spawn(async move { let x = s.next().await; (x, s) });
    /// tokio::time::sleep(Duration::from_millis(200)).await;
    /// let (x, s) = first.await.unwrap();
    /// assert_eq!(x, Some(300));
    /// assert_eq!((s.in_flight(), s.buffered_len()), (0, 2));
    /// # }
    /// ```
    pub fn buffered_len(&self) -> usize {
        self.engine.shared.buffered()
    }

    pub(super) fn set_fail_check(&mut self, fail: FailCheck<Fut::Output>) {
        self.engine.set_fail_check(fail);
    }

    /// Fail-fast: abort everything in flight and end after the current item.
    pub(super) fn stop(self: Pin<&mut Self>) {
        let this = self.project();
        this.engine.abort_all();
        *this.upstream_done = true;
        *this.finished = true;
    }

    pub(super) fn is_finished(&self) -> bool {
        self.finished
    }
}

impl<S, F, Fut> Stream for MapConcurrent<S, F, Fut>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    type Item = Fut::Output;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Fut::Output>> {
        if self.finished {
            return Poll::Ready(None);
        }
        // Tokio's cooperative budget, as its own streams do: a stream that is always ready
        // (futures ready at once) yields to the scheduler every budget's worth of items, so it
        // cannot starve the other tasks of its thread. Outside tokio this is free.
        let coop = ready!(tokio::task::coop::poll_proceed(cx));
        let polled = self.poll_items(cx);
        if let Poll::Ready(Some(_)) = polled {
            coop.made_progress();
        }
        polled
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.finished {
            return (0, Some(0));
        }
        let held = self.engine.held();
        let (lo, hi) = if self.upstream_done {
            (0, Some(0))
        } else {
            self.upstream.size_hint()
        };
        (
            lo.saturating_add(held),
            hi.and_then(|h| h.checked_add(held)),
        )
    }
}

impl<S, F, Fut> MapConcurrent<S, F, Fut>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    /// `poll_next` without the cooperative budget.
    #[inline]
    fn poll_items(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Fut::Output>> {
        let mut this = self.project();
        while !*this.upstream_done && this.engine.has_room(cx) {
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    let fut = (this.f)(item);
                    if let Some(out) = this.engine.start(fut, cx) {
                        return Poll::Ready(Some(out));
                    }
                }
                Poll::Ready(None) => *this.upstream_done = true,
                Poll::Pending => break,
            }
        }
        match this.engine.poll_output(this.stage, cx) {
            Poll::Ready(Some(out)) => Poll::Ready(Some(out)),
            Poll::Ready(None) if *this.upstream_done => {
                *this.finished = true;
                Poll::Ready(None)
            }
            // Nothing held and the upstream is pending: it has our waker.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

impl<S, F, Fut> FusedStream for MapConcurrent<S, F, Fut>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.finished
    }
}

/// Reports [`StageSnapshot::in_flight`](crate::metrics::StageSnapshot::in_flight)
/// ([`MapConcurrent::in_flight`]) and [`StageSnapshot::buffered`](crate::metrics::StageSnapshot::buffered)
/// ([`MapConcurrent::buffered_len`]), read from the counters the stream shares with its tasks;
/// both drop to 0 once the stream is dropped and its tasks are aborted.
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let s = stream::iter(0..3)
///     .map_concurrent(3, |x| async move {
///         tokio::time::sleep(Duration::from_millis(100)).await;
///         x
///     })
///     .metered("fetch")
///     .with_events();
/// let m = s.metrics();
/// assert_eq!(s.collect::<Vec<_>>().await, [0, 1, 2]);
/// let snap = m.snapshot();
/// assert_eq!((snap.in_flight, snap.buffered), (Some(0), Some(0)));
/// # }
/// ```
impl<S, F, Fut: Future> Observable for MapConcurrent<S, F, Fut> {
    fn observe_into(&self, stage: &StageMetrics) {
        let shared = Arc::clone(&self.engine.shared);
        stage.track_in_flight(move || shared.in_flight() as u64);
        let shared = Arc::clone(&self.engine.shared);
        stage.track_buffered(move || shared.buffered() as u64);
    }
}
