//! [`Metered`]: counts what passes through a point of the pipeline; [`with_timing`] and
//! [`traced`] add the [`Timed`] and [`Traced`] layers under it.
//!
//! [`with_timing`]: Metered::with_timing
//! [`traced`]: Metered::traced

mod deprecated;
mod errors;
mod stage;

#[allow(deprecated)]
pub use self::deprecated::{Counted, MeterMode, Observed};
pub use self::errors::{ClassifyErrors, CountErrors, ErrorCounting, IgnoreErrors};
pub use self::stage::MeteredStage;

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;

use super::{Timed, Traced};
use crate::metrics::{Metrics, Observable, StageMetrics};

pin_project! {
    /// Stream for the [`metered`](crate::PipelineExt::metered) and
    /// [`metered_in`](crate::PipelineExt::metered_in) methods.
    ///
    /// It counts only: items, polls, `Pending` polls, the end, and (with `K`) errors. Timing
    /// ([`with_timing`](Self::with_timing)) and tracing ([`traced`](Self::traced)) are layers
    /// of their own under it, [`Timed`] and [`Traced`], so a counting stage carries neither.
    /// See the [`metrics`](crate::metrics) module for what it counts and what that costs.
    #[must_use = "streams do nothing unless polled"]
    pub struct Metered<S, K = IgnoreErrors> {
        #[pin]
        stream: S,
        // Boxed (one allocation, by the constructor) like `Prefetch`'s state: the `Arc` inside
        // is then released from the heap, so no call ever gets the address of a field inside
        // the consumer's future, and the consumer keeps the pipeline's state in registers
        // (`benches/RESULTS.md`, "metered").
        metrics: Box<StageMetrics>,
        counting: K,
    }
}

impl<S: fmt::Debug, K> fmt::Debug for Metered<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metered")
            .field("stream", &self.stream)
            .field("metrics", &self.metrics)
            .finish()
    }
}

impl<S: Stream> Metered<S> {
    /// Meters `stream` as a stage called `name` that is not in any registry; read it through
    /// [`metrics`](Metered::metrics).
    ///
    /// ```
    /// use millrace::wrappers::Metered;
    /// use futures::stream;
    ///
    /// let s = Metered::new(stream::iter([1]), "one");
    /// assert_eq!(s.metrics().snapshot().items, 0);
    /// ```
    pub fn new(stream: S, name: impl Into<String>) -> Self {
        Self::with_metrics(stream, StageMetrics::new(name.into()), IgnoreErrors)
    }

    /// Meters `stream` as a new stage called `name` registered in `metrics`.
    ///
    /// ```
    /// use millrace::Metrics;
    /// use millrace::wrappers::Metered;
    /// use futures::stream;
    ///
    /// let metrics = Metrics::new();
    /// let _s = Metered::new_in(stream::iter([1]), &metrics, "one");
    /// assert_eq!(metrics.snapshot()[0].name, "one");
    /// ```
    pub fn new_in(stream: S, metrics: &Metrics, name: impl Into<String>) -> Self {
        Self::with_metrics(stream, metrics.register(name.into()), IgnoreErrors)
    }
}

impl<S: Stream, K> Metered<S, K> {
    /// Meters `stream` into `metrics`, which this stream alone writes from now on.
    pub(crate) fn with_metrics(stream: S, metrics: StageMetrics, counting: K) -> Self {
        if let (lower, Some(upper)) = stream.size_hint()
            && lower == upper
        {
            metrics.set_expected(lower as u64);
        }
        Metered {
            stream,
            metrics: Box::new(metrics),
            counting,
        }
    }
}

impl<S, K> Metered<S, K> {
    /// The same stage over `layer(stream)`, counting errors with `recount(counting)`.
    fn remake<S2, K2>(
        self,
        layer: impl FnOnce(S, &StageMetrics) -> S2,
        recount: impl FnOnce(K) -> K2,
    ) -> Metered<S2, K2> {
        let Metered {
            stream,
            metrics,
            counting,
        } = self;
        Metered {
            stream: layer(stream, &metrics),
            metrics,
            counting: recount(counting),
        }
    }

    /// Counts `Err` items in [`StageSnapshot::errors`](crate::metrics::StageSnapshot::errors).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter([Ok(1), Err("x"), Err("y")]).metered("r").count_errors();
    /// let m = s.metrics();
    /// let _: Vec<Result<i32, &str>> = s.collect().await;
    /// assert_eq!(m.snapshot().errors, Some(2));
    /// # }
    /// ```
    pub fn count_errors<T, E>(self) -> Metered<S, CountErrors>
    where
        S: Stream<Item = Result<T, E>>,
    {
        self.metrics.set_counts_errors();
        self.remake(|s, _| s, |_| CountErrors)
    }

    /// Counts `Err` items, and counts them per kind in
    /// [`StageSnapshot::errors_by_kind`](crate::metrics::StageSnapshot::errors_by_kind):
    /// `classify` names the kind of each error (e.g. an enum's variant name, an HTTP status
    /// class, `io::ErrorKind`'s `Debug`).
    ///
    /// Counting a kind takes a lock (errors are the exceptional path); `Ok` items cost the
    /// same as with [`count_errors`](Self::count_errors). Kinds are listed in first-seen
    /// order; keep the number of distinct kinds small (they are labels, not messages).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// #[derive(Debug)]
    /// enum FetchError { Timeout, NotFound }
    ///
    /// impl FetchError {
    ///     fn kind(&self) -> &'static str {
    ///         match self { FetchError::Timeout => "timeout", FetchError::NotFound => "not_found" }
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let items = [Ok(1), Err(FetchError::Timeout), Err(FetchError::NotFound), Err(FetchError::Timeout)];
    /// let s = stream::iter(items).metered("fetch").count_errors_by(FetchError::kind);
    /// let m = s.metrics();
    /// let _: Vec<_> = s.collect().await;
    /// let snap = m.snapshot();
    /// assert_eq!(snap.errors, Some(3));
    /// assert_eq!(snap.errors_by_kind, [("timeout".to_owned(), 2), ("not_found".to_owned(), 1)]);
    /// # }
    /// ```
    pub fn count_errors_by<T, E, F, R>(self, classify: F) -> Metered<S, ClassifyErrors<F>>
    where
        S: Stream<Item = Result<T, E>>,
        F: Fn(&E) -> R,
        R: AsRef<str>,
    {
        self.metrics.set_counts_errors();
        self.remake(|s, _| s, |_| ClassifyErrors { classify })
    }

    /// Adopts the event counters of the wrapper being metered: the retries of a
    /// [`Retry`](crate::wrappers::Retry), the fallbacks of a
    /// [`Recover`](crate::wrappers::Recover) or the skipped errors of a
    /// [`Supervise`](crate::wrappers::Supervise) show in this stage's snapshot, and so do
    /// the in-flight and buffered counts of a [`Prefetch`](crate::wrappers::Prefetch), a
    /// [`MapConcurrent`](crate::wrappers::MapConcurrent) or a
    /// [`MapConcurrentLocal`](crate::wrappers::MapConcurrentLocal) (see [`Observable`]).
    ///
    /// Place `.metered(..)` directly after the wrapper (the metered stream must *be* the
    /// wrapper, or a [`Timed`] or [`Traced`] layer over it); elsewhere, use [`StageMetrics::track_retries`] & co. with the wrapper's handle.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter([Ok(1), Err("bad"), Ok(3), Err("worse")])
    ///     .on_error(Supervision::Resume)
    ///     .metered("parse")
    ///     .with_events();
    /// let m = s.metrics();
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(1), Ok(3)]);
    /// let snap = m.snapshot();
    /// assert_eq!((snap.items, snap.skipped), (2, Some(2)));
    /// # }
    /// ```
    pub fn with_events(self) -> Self
    where
        S: Observable,
    {
        self.stream.observe_into(&self.metrics);
        self
    }

    /// Also measures time: the time spent inside the upstream's `poll_next`
    /// ([`busy`](crate::metrics::StageSnapshot::busy), and
    /// [`self_busy`](crate::metrics::StageSnapshot::self_busy) without the timed stages
    /// nested inside) and the per-item latency histogram
    /// ([`latency`](crate::metrics::StageSnapshot::latency), p50/p90/p99/max).
    ///
    /// Off by default: it reads `std::time::Instant` twice per poll, which costs more than all
    /// the counters together (tens of nanoseconds). The clock is the real one, not tokio's
    /// (paused) clock: `busy` is the CPU time the upstream took to answer, not the time it
    /// spent waiting; latency includes the waiting. The stream becomes a [`Timed`] layer under
    /// the counters.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter(0..3).metered("timed").with_timing();
    /// let m = s.metrics();
    /// let _: Vec<i32> = s.collect().await;
    /// let snap = m.snapshot();
    /// assert!(snap.busy.is_some());
    /// assert_eq!(snap.latency.unwrap().count, 3);
    /// # }
    /// ```
    pub fn with_timing(self) -> Metered<Timed<S>, K> {
        self.remake(|s, metrics| Timed::new(s, metrics.clone()), |k| k)
    }

    /// Enters a `tracing` span `stage` (field `stage = name`, level `TRACE`) around every
    /// poll, so the events of the wrappers inside (retries, fallbacks, skipped errors,
    /// give-ups) carry the stage's name.
    ///
    /// The span is built here, once: when no subscriber wants `TRACE` spans at this moment
    /// it is disabled and each poll pays one predictable branch. Install the subscriber before
    /// building the pipeline. The stream becomes a [`Traced`] layer under the counters.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // With a subscriber such as `tracing_subscriber::fmt().with_max_level(TRACE)`, the
    /// // warning below reads `stage{stage=parse}: millrace on_error(Resume): skipped …`.
    /// let s = stream::iter([Ok(1), Err("bad")]).on_error(Supervision::Resume).metered("parse").traced();
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(1)]);
    /// # }
    /// ```
    pub fn traced(self) -> Metered<Traced<S>, K> {
        self.remake(|s, metrics| Traced::new(s, metrics.name()), |k| k)
    }

    /// A live handle on this stage's counters; it stays readable after the stream is dropped.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter([7]).metered("sevens");
    /// let m = s.metrics();
    /// drop(s.collect::<Vec<_>>().await);
    /// assert_eq!(m.snapshot().items, 1);
    /// # }
    /// ```
    pub fn metrics(&self) -> StageMetrics {
        StageMetrics::clone(&self.metrics)
    }

    delegate_access_inner!(stream, S);
}

impl<S, K> Stream for Metered<S, K>
where
    S: Stream,
    K: ErrorCounting<S::Item>,
{
    type Item = S::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        // Each arm rebuilds its own `Poll`, so every path leaves with a known variant and the
        // consumer's `match` on it folds away once inlined.
        match this.stream.poll_next(cx) {
            Poll::Ready(Some(item)) => {
                this.metrics.record_item();
                if K::COUNTS && this.counting.is_error(&item, this.metrics) {
                    this.metrics.record_error();
                }
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => {
                this.metrics.record_end();
                Poll::Ready(None)
            }
            Poll::Pending => {
                this.metrics.record_pending();
                Poll::Pending
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S, K> FusedStream for Metered<S, K>
where
    S: FusedStream,
    K: ErrorCounting<S::Item>,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}
