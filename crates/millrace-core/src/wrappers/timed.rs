//! [`Timed`]: the timing layer of a metered stage, built by
//! [`Metered::with_timing`](crate::wrappers::Metered::with_timing).

use std::cell::Cell;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;

use super::{Metered, TracedStage};
use crate::Stage;
use crate::metrics::{Observable, StageMetrics, nanos};

thread_local! {
    /// Nanoseconds spent in timed stages nested inside the timed poll running on this thread.
    static NESTED_NANOS: Cell<u64> = const { Cell::new(0) };
}

/// Runs one timed poll that started at `start` (read by the caller, who also uses it as the
/// start of the wait for an item); returns its result, the instant it ended, its total and its
/// self time (total minus the timed stages nested inside it, which report their totals through
/// `NESTED_NANOS`). Two clock reads per poll in all: the caller's `start` and the end here.
fn timed_poll<R>(start: Instant, f: impl FnOnce() -> R) -> (R, Instant, u64, u64) {
    let outer = NESTED_NANOS.with(|n| n.replace(0));
    let r = f();
    let end = Instant::now();
    let total = nanos(end.saturating_duration_since(start));
    let nested = NESTED_NANOS.with(|n| n.replace(outer.saturating_add(total)));
    (r, end, total, total.saturating_sub(nested))
}

pin_project! {
    /// Stream for the [`with_timing`](Metered::with_timing) method of [`Metered`]: times each
    /// poll of its upstream into a stage's [`busy`](crate::StageSnapshot::busy),
    /// [`self_busy`](crate::StageSnapshot::self_busy) and
    /// [`latency`](crate::StageSnapshot::latency).
    ///
    /// A layer of its own so that a stage that only counts reads no clock: `with_timing` puts
    /// it under the counters (`Metered<Timed<S>, K>`), and [`get_ref`](Metered::get_ref) on
    /// the metered stream returns it.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::Timed;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let counted = stream::iter(0..3).metered("source");
    /// let timed = Timed::new(stream::iter(0..3), counted.metrics());
    /// assert_eq!(timed.collect::<Vec<_>>().await, [0, 1, 2]);
    /// assert_eq!(counted.metrics().snapshot().latency.unwrap().count, 3);
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct Timed<S> {
        #[pin]
        stream: S,
        metrics: StageMetrics,
        // When the consumer started waiting for the next item.
        waiting_since: Option<Instant>,
    }
}

impl<S: fmt::Debug> fmt::Debug for Timed<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timed")
            .field("stream", &self.stream)
            .field("stage", &self.metrics.name())
            .finish_non_exhaustive()
    }
}

impl<S> Timed<S> {
    /// Times `stream`'s polls into `metrics` (which then reports `busy`, `self_busy` and
    /// `latency`); usually built by [`Metered::with_timing`].
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::Timed;
    /// use futures::stream;
    ///
    /// let counted = stream::iter([1]).metered("ones");
    /// let _timed = Timed::new(stream::iter([1]), counted.metrics());
    /// assert!(counted.metrics().snapshot().busy.is_some());
    /// ```
    pub fn new(stream: S, metrics: StageMetrics) -> Self {
        metrics.set_timed();
        Timed {
            stream,
            metrics,
            waiting_since: None,
        }
    }

    delegate_access_inner!(stream, S);
}

impl<S: Stream> Stream for Timed<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        // One clock read before the poll (also the start of the wait, if this poll starts one)
        // and one after it: the latency is measured to the poll's end.
        let start = Instant::now();
        let since = *this.waiting_since.get_or_insert(start);
        let stream = this.stream;
        let (polled, end, total, own) = timed_poll(start, || stream.poll_next(cx));
        this.metrics.add_busy(total, own);
        if polled.is_ready() {
            *this.waiting_since = None;
            if matches!(polled, Poll::Ready(Some(_))) {
                this.metrics
                    .record_latency(end.saturating_duration_since(since));
            }
        }
        polled
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S: FusedStream> FusedStream for Timed<S> {
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}

/// Passes on the counters of the wrapper it times, so that
/// [`with_events`](Metered::with_events) works after [`with_timing`](Metered::with_timing).
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let s = stream::iter([Ok(1), Err("bad")])
///     .on_error(Supervision::Resume)
///     .metered("parse")
///     .with_timing()
///     .with_events();
/// let m = s.metrics();
/// assert_eq!(s.collect::<Vec<_>>().await, [Ok(1)]);
/// assert_eq!(m.snapshot().skipped, Some(1));
/// # }
/// ```
impl<S: Observable> Observable for Timed<S> {
    fn observe_into(&self, stage: &StageMetrics) {
        self.stream.observe_into(stage);
    }
}

/// A [`Stage`] that adds [`with_timing`](Metered::with_timing) to the metered stage another
/// stage builds; made by [`MeteredStage::with_timing`](super::MeteredStage::with_timing).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::MeteredStage;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let s = stream::iter([1]).wrap(MeteredStage::new("t").with_timing());
/// let m = s.metrics();
/// let _: Vec<i32> = s.collect().await;
/// assert!(m.snapshot().busy.is_some());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TimedStage<St> {
    stage: St,
}

impl<St> TimedStage<St> {
    /// Times the metered stream that `stage` builds.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::{MeteredStage, TimedStage};
    /// use futures::stream;
    ///
    /// let s = stream::iter([1]).wrap(TimedStage::new(MeteredStage::new("t")));
    /// assert!(s.metrics().snapshot().busy.is_some());
    /// ```
    pub fn new(stage: St) -> Self {
        TimedStage { stage }
    }

    /// Also enters a tracing span per poll; see [`Metered::traced`].
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::MeteredStage;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter([1, 2]).wrap(MeteredStage::new("t").with_timing().traced());
    /// assert_eq!(s.collect::<Vec<i32>>().await, [1, 2]);
    /// # }
    /// ```
    pub fn traced(self) -> TracedStage<Self> {
        TracedStage::new(self)
    }
}

impl<S, St, S2, K> Stage<S> for TimedStage<St>
where
    St: Stage<S, Output = Metered<S2, K>>,
{
    type Output = Metered<Timed<S2>, K>;

    fn wrap(self, upstream: S) -> Self::Output {
        self.stage.wrap(upstream).with_timing()
    }
}
