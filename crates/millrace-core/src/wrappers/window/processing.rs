//! [`Window`]: per-key aggregates over windows of processing time; built by
//! [`window`](crate::PipelineExt::window).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future as _;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::{Aggregate, Panes, WindowSpec};

/// Items folded in one poll before the stage yields to the runtime (so an always-ready
/// upstream cannot starve the timer or other tasks).
const BUDGET: usize = 128;

pin_project! {
    /// Stream for the [`window`](crate::PipelineExt::window) method.
    ///
    /// An item belongs to the windows that contain the tokio instant at which this stage
    /// received it; windows are counted from the stage's first poll. When a window's end
    /// passes (a tokio timer wakes the stage even while the upstream is idle), one
    /// [`Aggregate`] per key seen in it is yielded, in the keys' first-seen order; windows
    /// close in time order. When the upstream ends, the windows still open are yielded at once
    /// with their nominal bounds.
    ///
    /// ```
    /// use millrace::wrappers::{Window, WindowSpec};
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let w = Window::new(stream::iter([1, 2, 3]), WindowSpec::tumbling(Duration::from_secs(1)), |_: &i32| (), || 0, |n, x| *n += x);
    /// let out: Vec<_> = w.map(|a| a.value).collect().await;
    /// assert_eq!(out, [6]);
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct Window<S, K, KF, A, I, F> {
        #[pin]
        upstream: S,
        spec: WindowSpec,
        key: KF,
        init: I,
        fold: F,
        origin: Option<Instant>,
        panes: Panes<K, A>,
        out: VecDeque<Aggregate<K, A, Instant>>,
        timer: Option<Pin<Box<Sleep>>>,
        upstream_done: bool,
        done: bool,
    }
}

impl<S, K, KF, A, I, F> Window<S, K, KF, A, I, F>
where
    S: Stream,
    K: Hash + Eq + Clone,
    KF: FnMut(&S::Item) -> K,
    I: FnMut() -> A,
    F: FnMut(&mut A, &S::Item),
{
    /// Aggregates `upstream` per `key` over windows of `spec`, starting each accumulator with
    /// `init()` and folding each item with `fold`.
    pub fn new(upstream: S, spec: WindowSpec, key: KF, init: I, fold: F) -> Self {
        Window {
            upstream,
            spec,
            key,
            init,
            fold,
            origin: None,
            panes: Panes::new(),
            out: VecDeque::new(),
            timer: None,
            upstream_done: false,
            done: false,
        }
    }
}

impl<S, K, KF, A, I, F> Window<S, K, KF, A, I, F> {
    /// The window shape.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::WindowSpec;
    /// use futures::stream;
    /// use std::time::Duration;
    ///
    /// let spec = WindowSpec::tumbling(Duration::from_secs(60));
    /// let w = stream::iter([1]).window(spec, |_| (), || 0, |n, _| *n += 1);
    /// assert_eq!(w.spec(), spec);
    /// ```
    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    delegate_access_inner!(upstream, S);
}

impl<S, K, KF, A, I, F> Window<S, K, KF, A, I, F>
where
    K: Hash + Eq + Clone,
{
    /// Moves the aggregates of every window ending at or before `now` (all, if `None`) to
    /// the output queue.
    fn close(
        spec: WindowSpec,
        origin: Instant,
        panes: &mut Panes<K, A>,
        out: &mut VecDeque<Aggregate<K, A, Instant>>,
        now: Option<Instant>,
    ) {
        while let Some(j) = panes.first() {
            let (start, end) = spec.bounds(j);
            let (start, end) = (
                origin + Duration::from_nanos(start),
                origin + Duration::from_nanos(end),
            );
            if now.is_some_and(|now| now < end) {
                break;
            }
            out.extend(panes.take(j).into_iter().map(|(key, value)| Aggregate {
                key,
                start,
                end,
                value,
            }));
        }
    }
}

impl<S, K, KF, A, I, F> Stream for Window<S, K, KF, A, I, F>
where
    S: Stream,
    K: Hash + Eq + Clone,
    KF: FnMut(&S::Item) -> K,
    I: FnMut() -> A,
    F: FnMut(&mut A, &S::Item),
{
    type Item = Aggregate<K, A, Instant>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let origin = *this.origin.get_or_insert_with(Instant::now);
        let spec = *this.spec;
        let mut budget = BUDGET;
        loop {
            if let Some(agg) = this.out.pop_front() {
                return Poll::Ready(Some(agg));
            }
            if *this.done {
                return Poll::Ready(None);
            }
            if *this.upstream_done {
                Self::close(spec, origin, this.panes, this.out, None);
                *this.done = true;
                *this.timer = None;
                continue;
            }
            Self::close(spec, origin, this.panes, this.out, Some(Instant::now()));
            if !this.out.is_empty() {
                continue;
            }
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    let at = Instant::now().saturating_duration_since(origin);
                    let at = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX);
                    let key = (this.key)(&item);
                    this.panes
                        .fold(spec.windows_of(at), key, &item, this.init, this.fold);
                    budget -= 1;
                    if budget == 0 {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
                Poll::Ready(None) => *this.upstream_done = true,
                Poll::Pending => {
                    let Some(j) = this.panes.first() else {
                        return Poll::Pending; // nothing open: only the upstream can wake us
                    };
                    let end = origin + Duration::from_nanos(spec.bounds(j).1);
                    let timer = this
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(end)));
                    if timer.deadline() != end {
                        timer.as_mut().reset(end);
                    }
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (self.out.len(), Some(self.out.len()));
        }
        let (_, hi) = self.upstream.size_hint();
        // Each upstream item adds at most one aggregate per window it falls into.
        let per_item = self.spec.size.div_ceil(self.spec.slide) as usize;
        let held = self.out.len() + self.panes.keys();
        (
            self.out.len(),
            hi.and_then(|h| h.checked_mul(per_item)?.checked_add(held)),
        )
    }
}

impl<S, K, KF, A, I, F> FusedStream for Window<S, K, KF, A, I, F>
where
    S: Stream,
    K: Hash + Eq + Clone,
    KF: FnMut(&S::Item) -> K,
    I: FnMut() -> A,
    F: FnMut(&mut A, &S::Item),
{
    fn is_terminated(&self) -> bool {
        self.done && self.out.is_empty()
    }
}

impl<S: fmt::Debug, K, KF, A, I, F> fmt::Debug for Window<S, K, KF, A, I, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Window")
            .field("upstream", &self.upstream)
            .field("spec", &self.spec)
            .field("open_windows", &self.panes.panes.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
