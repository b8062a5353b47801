//! [`EventWindow`]: per-key aggregates over windows of event time, with allowed lateness;
//! built by [`window_event_time`](crate::PipelineExt::window_event_time).

use std::collections::VecDeque;
use std::fmt;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;

use super::{Aggregate, Panes, WindowSpec};

/// Items folded in one poll before the stage yields to the runtime.
const BUDGET: usize = 128;

/// What an event-time window stage yields: a closed window's aggregate for one key, or an item
/// that arrived too late for its window (routed to you, never dropped).
///
/// ```
/// use millrace::wrappers::{Aggregate, WindowEvent};
/// use std::time::Duration;
///
/// let e: WindowEvent<&str, u32, u32> = WindowEvent::Late(7);
/// assert_eq!(e.late(), Some(7));
/// let closed = WindowEvent::<_, _, u32>::Closed(Aggregate { key: "k", start: Duration::ZERO, end: Duration::from_secs(1), value: 2 });
/// assert_eq!(closed.closed().map(|a| a.value), Some(2));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowEvent<K, A, T> {
    /// A window closed: its aggregate for one key (times in event time).
    Closed(Aggregate<K, A, Duration>),
    /// An item whose earliest window had already closed when it arrived.
    Late(T),
}

impl<K, A, T> WindowEvent<K, A, T> {
    /// The aggregate, if this is one.
    ///
    /// ```
    /// use millrace::wrappers::WindowEvent;
    ///
    /// assert!(WindowEvent::<(), (), u8>::Late(1).closed().is_none());
    /// ```
    pub fn closed(self) -> Option<Aggregate<K, A, Duration>> {
        match self {
            WindowEvent::Closed(a) => Some(a),
            WindowEvent::Late(_) => None,
        }
    }

    /// The late item, if this is one.
    ///
    /// ```
    /// use millrace::wrappers::WindowEvent;
    ///
    /// assert_eq!(WindowEvent::<(), (), u8>::Late(1).late(), Some(1));
    /// ```
    pub fn late(self) -> Option<T> {
        match self {
            WindowEvent::Late(t) => Some(t),
            WindowEvent::Closed(_) => None,
        }
    }
}

/// The number of late items an [`EventWindow`] has yielded, readable from anywhere.
///
/// ```
/// use millrace::wrappers::LateCounter;
///
/// assert_eq!(LateCounter::default().get(), 0);
/// ```
#[derive(Debug, Clone, Default)]
pub struct LateCounter {
    count: Arc<AtomicU64>,
}

impl LateCounter {
    /// Late items so far.
    ///
    /// ```
    /// use millrace::wrappers::LateCounter;
    ///
    /// assert_eq!(LateCounter::default().clone().get(), 0);
    /// ```
    pub fn get(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

pin_project! {
    /// Stream for the [`window_event_time`](crate::PipelineExt::window_event_time) method.
    ///
    /// Each item carries its own time, `timestamp(&item)` (a [`Duration`] since any epoch you
    /// like, e.g. the UNIX epoch). The **watermark** is the largest timestamp seen minus the
    /// allowed lateness; a window closes (its aggregates are yielded, one per key in first-seen
    /// order, windows in time order) once the watermark reaches its end. An item is **late**
    /// when the earliest window it falls into has already closed: it is yielded as
    /// [`WindowEvent::Late`], counted ([`late`](EventWindow::late)) and folded nowhere. When the
    /// upstream ends every open window closes.
    ///
    /// ```
    /// use millrace::wrappers::{EventWindow, WindowEvent, WindowSpec};
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let secs = |s: &u64| Duration::from_secs(*s);
    /// let w = EventWindow::new(stream::iter([1u64, 12, 3]), WindowSpec::tumbling(Duration::from_secs(10)), Duration::ZERO, secs, |_: &u64| (), || 0, |n, _| *n += 1);
    /// let out: Vec<_> = w.collect().await;
    /// // 12 closes [0, 10) (1 item); 3 is late; the end closes [10, 20).
    /// assert!(matches!(out[0], WindowEvent::Closed(ref a) if a.value == 1));
    /// assert_eq!(out[1], WindowEvent::Late(3));
    /// assert!(matches!(out[2], WindowEvent::Closed(ref a) if a.value == 1));
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct EventWindow<S, K, TF, KF, A, I, F>
    where
        S: Stream,
    {
        #[pin]
        upstream: S,
        spec: WindowSpec,
        lateness: u64,
        timestamp: TF,
        key: KF,
        init: I,
        fold: F,
        panes: Panes<K, A>,
        // Windows ending at or before this (nanoseconds) are closed; `None` before any item.
        watermark: Option<u64>,
        out: VecDeque<WindowEvent<K, A, S::Item>>,
        late: LateCounter,
        upstream_done: bool,
        done: bool,
    }
}

impl<S, K, TF, KF, A, I, F> EventWindow<S, K, TF, KF, A, I, F>
where
    S: Stream,
    K: Hash + Eq + Clone,
    TF: FnMut(&S::Item) -> Duration,
    KF: FnMut(&S::Item) -> K,
    I: FnMut() -> A,
    F: FnMut(&mut A, &S::Item),
{
    /// Aggregates `upstream` per `key` over event-time windows of `spec`, waiting `lateness`
    /// behind the largest timestamp seen before closing a window.
    #[allow(clippy::too_many_arguments)] // the constructor behind a 5-argument method
    pub fn new(
        upstream: S,
        spec: WindowSpec,
        lateness: Duration,
        timestamp: TF,
        key: KF,
        init: I,
        fold: F,
    ) -> Self {
        EventWindow {
            upstream,
            spec,
            lateness: u64::try_from(lateness.as_nanos()).unwrap_or(u64::MAX),
            timestamp,
            key,
            init,
            fold,
            panes: Panes::new(),
            watermark: None,
            out: VecDeque::new(),
            late: LateCounter::default(),
            upstream_done: false,
            done: false,
        }
    }

    /// Sets the allowed lateness (default zero): how far behind the largest timestamp seen
    /// an item may be and still be counted in its window.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::WindowSpec;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let secs = |s: &u64| Duration::from_secs(*s);
    /// let w = stream::iter([1u64, 12, 3])
    ///     .window_event_time(WindowSpec::tumbling(Duration::from_secs(10)), secs, |_| (), || 0, |n, _| *n += 1)
    ///     .allowed_lateness(Duration::from_secs(5));
    /// let late = w.late_counter();
    /// let counts: Vec<u32> = w.filter_map(|e| async move { e.closed() }).map(|a| a.value).collect().await;
    /// assert_eq!(counts, [2, 1]); // 3 was within 5 s of 12: counted in [0, 10)
    /// assert_eq!(late.get(), 0);
    /// # }
    /// ```
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = u64::try_from(lateness.as_nanos()).unwrap_or(u64::MAX);
        self
    }
}

impl<S: Stream, K, TF, KF, A, I, F> EventWindow<S, K, TF, KF, A, I, F> {
    /// Late items so far.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::WindowSpec;
    /// use futures::stream;
    /// use std::time::Duration;
    ///
    /// let w = stream::iter([1u64])
    ///     .window_event_time(WindowSpec::tumbling(Duration::from_secs(1)), |s| Duration::from_secs(*s), |_| (), || 0, |n, _| *n += 1);
    /// assert_eq!(w.late(), 0);
    /// ```
    pub fn late(&self) -> u64 {
        self.late.get()
    }

    /// A handle on the late count that outlives the stream.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::WindowSpec;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let w = stream::iter([20u64, 1])
    ///     .window_event_time(WindowSpec::tumbling(Duration::from_secs(10)), |s| Duration::from_secs(*s), |_| (), || 0, |n, _| *n += 1);
    /// let late = w.late_counter();
    /// let _ = w.collect::<Vec<_>>().await;
    /// assert_eq!(late.get(), 1);
    /// # }
    /// ```
    pub fn late_counter(&self) -> LateCounter {
        self.late.clone()
    }

    /// The window shape.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::WindowSpec;
    /// use futures::stream;
    /// use std::time::Duration;
    ///
    /// let spec = WindowSpec::tumbling(Duration::from_secs(1));
    /// let w = stream::iter([1u64]).window_event_time(spec, |s| Duration::from_secs(*s), |_| (), || 0, |n, _| *n += 1);
    /// assert_eq!(w.spec(), spec);
    /// ```
    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    delegate_access_inner!(upstream, S);
}

impl<S, K, TF, KF, A, I, F> Stream for EventWindow<S, K, TF, KF, A, I, F>
where
    S: Stream,
    K: Hash + Eq + Clone,
    TF: FnMut(&S::Item) -> Duration,
    KF: FnMut(&S::Item) -> K,
    I: FnMut() -> A,
    F: FnMut(&mut A, &S::Item),
{
    type Item = WindowEvent<K, A, S::Item>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let spec = *this.spec;
        let mut budget = BUDGET;
        loop {
            if let Some(event) = this.out.pop_front() {
                return Poll::Ready(Some(event));
            }
            if *this.done {
                return Poll::Ready(None);
            }
            if *this.upstream_done {
                close(spec, this.panes, this.out, u64::MAX);
                *this.done = true;
                continue;
            }
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    let t = (this.timestamp)(&item);
                    let t = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
                    let windows = spec.windows_of(t);
                    let earliest_end = spec.bounds(*windows.start()).1;
                    if this.watermark.is_some_and(|w| earliest_end <= w) {
                        this.late.count.fetch_add(1, Ordering::Relaxed);
                        return Poll::Ready(Some(WindowEvent::Late(item)));
                    }
                    let key = (this.key)(&item);
                    this.panes.fold(windows, key, &item, this.init, this.fold);
                    let mark = t.saturating_sub(*this.lateness);
                    if this.watermark.is_none_or(|w| mark > w) {
                        *this.watermark = Some(mark);
                        close(spec, this.panes, this.out, mark);
                    }
                    budget -= 1;
                    if budget == 0 && this.out.is_empty() {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
                Poll::Ready(None) => *this.upstream_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (self.out.len(), Some(self.out.len()));
        }
        let (_, hi) = self.upstream.size_hint();
        let per_item = self.spec.size.div_ceil(self.spec.slide) as usize;
        let held = self.out.len() + self.panes.keys();
        (
            self.out.len(),
            hi.and_then(|h| h.checked_mul(per_item)?.checked_add(held)),
        )
    }
}

/// Moves the aggregates of every window ending at or before `watermark` to the output queue.
fn close<K: Hash + Eq + Clone, A, T>(
    spec: WindowSpec,
    panes: &mut Panes<K, A>,
    out: &mut VecDeque<WindowEvent<K, A, T>>,
    watermark: u64,
) {
    while let Some(j) = panes.first() {
        let (start, end) = spec.bounds(j);
        if end > watermark {
            break;
        }
        let (start, end) = (Duration::from_nanos(start), Duration::from_nanos(end));
        out.extend(panes.take(j).into_iter().map(|(key, value)| {
            WindowEvent::Closed(Aggregate {
                key,
                start,
                end,
                value,
            })
        }));
    }
}

impl<S, K, TF, KF, A, I, F> FusedStream for EventWindow<S, K, TF, KF, A, I, F>
where
    S: Stream,
    K: Hash + Eq + Clone,
    TF: FnMut(&S::Item) -> Duration,
    KF: FnMut(&S::Item) -> K,
    I: FnMut() -> A,
    F: FnMut(&mut A, &S::Item),
{
    fn is_terminated(&self) -> bool {
        self.done && self.out.is_empty()
    }
}

impl<S, K, TF, KF, A, I, F> fmt::Debug for EventWindow<S, K, TF, KF, A, I, F>
where
    S: Stream + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventWindow")
            .field("upstream", &self.upstream)
            .field("spec", &self.spec)
            .field("lateness", &Duration::from_nanos(self.lateness))
            .field("watermark", &self.watermark.map(Duration::from_nanos))
            .field("open_windows", &self.panes.panes.len())
            .field("late", &self.late.get())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
