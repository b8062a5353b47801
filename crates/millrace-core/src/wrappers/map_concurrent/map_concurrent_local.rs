//! Local mode: the futures run inside the stream's own `poll_next`, never spawned.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use futures_util::stream::FuturesUnordered;
use pin_project_lite::pin_project;

use super::engine::{FirstPoll, Limits};
use crate::metrics::{Observable, StageMetrics};

/// The in-flight and buffered counts as of the end of the last poll, for readers on other
/// threads (a metered stage's gauges). The stream's own state is not shareable (the futures
/// need not be `Send`), so once observed it publishes these two numbers with relaxed stores
/// after each poll; until then each poll pays one load and a branch (`map_concurrent_local_ready`
/// bench row: 77 instructions per item without gauges, 96.5 publishing on every poll, 85 with
/// this flag).
#[derive(Debug, Default)]
struct Gauges {
    observed: AtomicBool,
    in_flight: AtomicU64,
    buffered: AtomicU64,
}

impl Gauges {
    fn publish(&self, in_flight: usize, buffered: usize) {
        self.in_flight.store(in_flight as u64, Ordering::Relaxed);
        self.buffered.store(buffered as u64, Ordering::Relaxed);
    }
}

/// A pending future, still in the box it was first polled in, tagged with the input
/// position of its item.
struct Indexed<Fut> {
    fut: Pin<Box<Option<Fut>>>,
    seq: u64,
}

impl<Fut: Future> Future for Indexed<Fut> {
    type Output = (u64, Fut::Output);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self
            .fut
            .as_mut()
            .as_pin_mut()
            .expect("polled after completion");
        let out = ready!(fut.poll(cx));
        self.fut.set(None);
        Poll::Ready((self.seq, out))
    }
}

pin_project! {
    /// Stream for the [`map_concurrent_local`](crate::PipelineExt::map_concurrent_local) and
    /// [`map_concurrent_local_unordered`](crate::PipelineExt::map_concurrent_local_unordered)
    /// methods.
    ///
    /// Same limits and order semantics as [`MapConcurrent`](super::MapConcurrent): at most `n`
    /// futures in flight, at most `n + m` items outstanding (`m` = output buffer, default `n`).
    /// In the unordered variant a result is yielded as soon as it is seen, so nothing waits
    /// and `m` has no effect. The futures need not be `Send` or `'static`. As in spawned mode,
    /// each future is polled once inline when created; only a pending one is kept (boxed, in
    /// a `FuturesUnordered`) to be polled again.
    ///
    /// # Futurelock
    ///
    /// The futures are polled only while this stream is polled. If the consumer stops polling
    /// (it awaits something else between items, or holds a lock the futures need), the work
    /// in flight makes **no progress** and may deadlock. Pick the spawned
    /// [`map_concurrent`](crate::PipelineExt::map_concurrent) whenever the work is
    /// `Send + 'static`; pick this one for `!Send` or borrowing futures, or to keep all work
    /// on the consumer's task.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::rc::Rc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let base = Rc::new(100); // !Send: spawned mode could not capture it
    /// let out: Vec<i32> = stream::iter(1..=3)
    ///     .map_concurrent_local(2, |x| {
    ///         let base = Rc::clone(&base);
    ///         async move { *base + x }
    ///     })
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, [101, 102, 103]);
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct MapConcurrentLocal<S, F, Fut>
    where
        Fut: Future,
    {
        #[pin]
        upstream: S,
        f: F,
        running: FuturesUnordered<Indexed<Fut>>,
        // The inline first poll: a pending future keeps its box and joins `running`.
        first_poll: FirstPoll<Fut>,
        // Ordered: one entry per outstanding item, oldest first; `None` while it runs.
        done: VecDeque<Option<Fut::Output>>,
        next_seq: u64,
        limits: Limits,
        upstream_done: bool,
        finished: bool,
        gauges: Arc<Gauges>,
    }
}

impl<S, F, Fut> fmt::Debug for MapConcurrentLocal<S, F, Fut>
where
    S: fmt::Debug,
    Fut: Future,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapConcurrentLocal")
            .field("upstream", &self.upstream)
            .field("limits", &self.limits)
            .field("in_flight", &self.running.len())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<S, F, Fut> MapConcurrentLocal<S, F, Fut>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
{
    family_constructors! {
        type: "MapConcurrentLocal",
        names: ("map_concurrent_local", "map_concurrent_local_unordered"),
        unordered: (new_unordered, checked_new_unordered, try_new_unordered),
        params: (upstream: S),
        example: ("use futures::stream;", "stream::iter([1]), 0, |x| async move { x }")
    }

    fn from_limits(upstream: S, f: F, limits: Limits) -> Self {
        MapConcurrentLocal {
            upstream,
            f,
            running: FuturesUnordered::new(),
            first_poll: FirstPoll::new(),
            done: VecDeque::new(),
            next_seq: 0,
            limits,
            upstream_done: false,
            finished: false,
            gauges: Arc::default(),
        }
    }
}

impl<S, F, Fut: Future> MapConcurrentLocal<S, F, Fut> {
    delegate_access_inner!(upstream, S);

    /// Sets the output buffer `m` (ordered variant): at most `n + m` items outstanding.
    /// Default `m = n`; `m = 0` behaves like `buffered(n)`.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<i32> = stream::iter(0..3)
    ///     .map_concurrent_local(2, |x| async move { x })
    ///     .with_output_buffer(0)
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, [0, 1, 2]);
    /// # }
    /// ```
    pub fn with_output_buffer(mut self, m: usize) -> Self {
        self.limits.set_output_buffer(m);
        self
    }

    fn held(&self) -> usize {
        if self.limits.ordered {
            self.done.len()
        } else {
            self.running.len()
        }
    }

    /// The most futures in flight at once (`n`).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = stream::iter([1]).map_concurrent_local(4, |x| async move { x });
    /// assert_eq!(s.limit(), 4);
    /// ```
    pub fn limit(&self) -> usize {
        self.limits.limit
    }

    /// Futures started and not finished (at most [`limit`](Self::limit)).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut s = stream::iter([10u64, 300, 300, 300]).map_concurrent_local(3, |ms| async move {
    ///     tokio::time::sleep(Duration::from_millis(ms)).await;
    ///     ms
    /// });
    /// assert_eq!(s.in_flight(), 0);
    /// assert_eq!(s.next().await, Some(10)); // 10, 300, 300 started; 10 done, the last 300 started
    /// assert_eq!(s.in_flight(), 3);
    /// # }
    /// ```
    pub fn in_flight(&self) -> usize {
        self.running.len()
    }

    /// Results completed and not yet yielded because an earlier item is still running
    /// (ordered variant; the unordered one yields each result as soon as it sees it, so
    /// this is 0 there).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // The first item is slow: the two behind it finish first and wait in order.
    /// let mut s = stream::iter([300u64, 100, 100]).map_concurrent_local(3, |ms| async move {
    ///     tokio::time::sleep(Duration::from_millis(ms)).await;
    ///     ms
    /// });
    /// assert_eq!(s.next().await, Some(300));
    /// assert_eq!((s.in_flight(), s.buffered_len()), (0, 2));
    /// # }
    /// ```
    pub fn buffered_len(&self) -> usize {
        if self.limits.ordered {
            self.done.len() - self.running.len()
        } else {
            0
        }
    }
}

/// In-flight and buffered gauges for [`Metered::with_events`](crate::wrappers::Metered::with_events):
/// the counts as of the end of the stream's last poll (the futures run only while it is
/// polled, so nothing changes in between).
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let s = stream::iter(0..3)
///     .map_concurrent_local(2, |x| async move { x })
///     .metered("work")
///     .with_events();
/// let m = s.metrics();
/// assert_eq!(s.collect::<Vec<_>>().await, [0, 1, 2]);
/// let snap = m.snapshot();
/// assert_eq!((snap.in_flight, snap.buffered), (Some(0), Some(0)));
/// # }
/// ```
impl<S, F, Fut: Future> Observable for MapConcurrentLocal<S, F, Fut> {
    fn observe_into(&self, stage: &StageMetrics) {
        self.gauges.publish(self.in_flight(), self.buffered_len());
        self.gauges.observed.store(true, Ordering::Relaxed);
        let gauges = Arc::clone(&self.gauges);
        stage.track_in_flight(move || gauges.in_flight.load(Ordering::Relaxed));
        let gauges = Arc::clone(&self.gauges);
        stage.track_buffered(move || gauges.buffered.load(Ordering::Relaxed));
    }
}

impl<S, F, Fut> Stream for MapConcurrentLocal<S, F, Fut>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
{
    type Item = Fut::Output;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Fut::Output>> {
        if self.finished {
            return Poll::Ready(None);
        }
        // Tokio's cooperative budget, as in spawned mode (free outside tokio).
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        let polled = self.as_mut().poll_work(cx);
        if let Poll::Ready(Some(_)) = polled {
            coop.made_progress();
        }
        if self.gauges.observed.load(Ordering::Relaxed) {
            self.gauges.publish(self.in_flight(), self.buffered_len());
        }
        polled
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.finished {
            return (0, Some(0));
        }
        let held = self.held();
        crate::wrappers::size_hint::plus_held(self.upstream_done, &self.upstream, held)
    }
}

impl<S, F, Fut> MapConcurrentLocal<S, F, Fut>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
{
    #[inline]
    fn poll_work(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Fut::Output>> {
        let mut this = self.project();
        if *this.finished {
            return Poll::Ready(None);
        }
        let limits: &Limits = this.limits;
        loop {
            while !*this.upstream_done && this.running.len() < limits.limit && {
                let held = if limits.ordered {
                    this.done.len()
                } else {
                    this.running.len()
                };
                held < limits.window
            } {
                match this.upstream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(item)) => {
                        let fut = (this.f)(item);
                        let seq = *this.next_seq;
                        *this.next_seq += 1;
                        match this.first_poll.poll(fut, cx) {
                            Ok(out) => {
                                if !limits.ordered || this.done.is_empty() {
                                    return Poll::Ready(Some(out));
                                }
                                this.done.push_back(Some(out));
                            }
                            Err(fut) => {
                                this.running.push(Indexed { fut, seq });
                                if limits.ordered {
                                    this.done.push_back(None);
                                }
                            }
                        }
                    }
                    Poll::Ready(None) => *this.upstream_done = true,
                    Poll::Pending => break,
                }
            }
            if let Some(Some(_)) = this.done.front() {
                return Poll::Ready(this.done.pop_front().flatten());
            }
            match Pin::new(&mut *this.running).poll_next(cx) {
                Poll::Ready(Some((seq, out))) => {
                    if !limits.ordered {
                        return Poll::Ready(Some(out));
                    }
                    let head = *this.next_seq - this.done.len() as u64;
                    this.done[(seq - head) as usize] = Some(out);
                }
                Poll::Ready(None) if *this.upstream_done => {
                    *this.finished = true;
                    return Poll::Ready(None);
                }
                // Nothing in flight and the upstream is pending: it has our waker.
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S, F, Fut> FusedStream for MapConcurrentLocal<S, F, Fut>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
{
    fn is_terminated(&self) -> bool {
        self.finished
    }
}
