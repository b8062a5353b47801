//! [`MapConcurrent`]: spawned mode, where every future that is not ready at once runs on its
//! own tokio task.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;

use super::engine::{Engine, FailCheck, Limits};
use crate::metrics::{Observable, StageMetrics};

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
    family_constructors! {
        type: "MapConcurrent",
        names: ("map_concurrent", "map_concurrent_unordered"),
        unordered: (new_unordered, checked_new_unordered, try_new_unordered),
        params: (upstream: S),
        example: ("use futures::stream;", "stream::iter([1]), 0, |x| async move { x }")
    }

    pub(super) fn from_limits(upstream: S, f: F, limits: Limits) -> Self {
        MapConcurrent {
            upstream,
            f,
            engine: Engine::new(limits),
            upstream_done: false,
            finished: false,
        }
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
        self.engine.limits.set_output_buffer(m);
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
        self.engine.limits.limit
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
        self.engine.limits.output_buffer()
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
        crate::wrappers::size_hint::plus_held(self.upstream_done, &self.upstream, held)
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
        match this.engine.poll_output(cx) {
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
