//! [`Metered`]: counts what passes through a point of the pipeline.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;

use crate::Stage;
use crate::metrics::{Metrics, StageMetrics};

/// How a [`Metered`] stage classifies items as errors.
///
/// Rust has no specialisation, so error counting is a type-level choice: [`IgnoreErrors`]
/// (the default, works for every item type and costs nothing) or [`CountErrors`] (for
/// `Result` items, chosen by [`Metered::count_errors`]).
pub trait ErrorCounting<I> {
    /// Whether this choice counts errors at all (shown as `Some` in the snapshot).
    const COUNTS: bool;

    /// Whether `item` counts as an error.
    fn is_error(item: &I) -> bool;
}

/// Items are never counted as errors (the default of [`Metered`]).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::{IgnoreErrors, Metered};
/// use futures::stream;
///
/// let _s: Metered<_, IgnoreErrors> = stream::iter([Err::<u8, u8>(1)]).metered("plain");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct IgnoreErrors;

/// `Err` items are counted as errors (see [`Metered::count_errors`]).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::{CountErrors, Metered};
/// use futures::stream;
///
/// let _s: Metered<_, CountErrors> = stream::iter([Err::<u8, u8>(1)]).metered("r").count_errors();
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CountErrors;

impl<I> ErrorCounting<I> for IgnoreErrors {
    const COUNTS: bool = false;

    #[inline(always)]
    fn is_error(_: &I) -> bool {
        false
    }
}

impl<T, E> ErrorCounting<Result<T, E>> for CountErrors {
    const COUNTS: bool = true;

    #[inline(always)]
    fn is_error(item: &Result<T, E>) -> bool {
        item.is_err()
    }
}

pin_project! {
    /// Stream for the [`metered`](crate::PipelineExt::metered) and
    /// [`metered_in`](crate::PipelineExt::metered_in) methods.
    #[must_use = "streams do nothing unless polled"]
    pub struct Metered<S, K = IgnoreErrors> {
        #[pin]
        stream: S,
        metrics: StageMetrics,
        timed: bool,
        _counting: std::marker::PhantomData<fn() -> K>,
    }
}

impl<S, K> fmt::Debug for Metered<S, K>
where
    S: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metered")
            .field("stream", &self.stream)
            .field("metrics", &self.metrics)
            .field("timed", &self.timed)
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
        Self::with_metrics(stream, StageMetrics::new(name.into()))
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
        Self::with_metrics(stream, metrics.register(name.into()))
    }

    fn with_metrics(stream: S, metrics: StageMetrics) -> Self {
        Metered {
            stream,
            metrics,
            timed: false,
            _counting: std::marker::PhantomData,
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
        Metered {
            stream: self.stream,
            metrics: self.metrics,
            timed: self.timed,
            _counting: std::marker::PhantomData,
        }
    }
}

impl<S, K> Metered<S, K> {
    /// Also measures the time spent inside the upstream's `poll_next`, in
    /// [`StageSnapshot::busy`](crate::metrics::StageSnapshot::busy).
    ///
    /// Off by default: it reads `std::time::Instant` twice per poll, which costs more than all
    /// the counters together (tens of nanoseconds). The clock is the real one, not tokio's
    /// (paused) clock: this is the CPU time the upstream took to answer, including the stages
    /// nested inside it, not the time it spent waiting.
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
    /// assert!(m.snapshot().busy.is_some());
    /// # }
    /// ```
    pub fn with_timing(mut self) -> Self {
        self.timed = true;
        self.metrics.set_timed();
        self
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
        self.metrics.clone()
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
        let polled = if *this.timed {
            let start = std::time::Instant::now();
            let p = this.stream.poll_next(cx);
            this.metrics.add_busy(start.elapsed());
            p
        } else {
            this.stream.poll_next(cx)
        };
        match &polled {
            Poll::Ready(Some(item)) => {
                this.metrics.on_item();
                if K::is_error(item) {
                    this.metrics.on_error();
                }
            }
            Poll::Pending => this.metrics.on_pending(),
            Poll::Ready(None) => this.metrics.on_end(),
        }
        polled
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

/// A [`Stage`] that wraps a stream in [`Metered`]; see [`Metrics::meter`].
///
/// Each `wrap` registers a new stage (new counters) under the stage's name, so the counters of
/// one `Metered` stream always have exactly one writer.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::Metrics;
/// use millrace::wrappers::MeteredStage;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let metrics = Metrics::new();
/// let stage = MeteredStage::new("results").registered_in(&metrics).count_errors();
/// let _: Vec<Result<u8, ()>> = stream::iter([Ok(1), Err(())]).wrap(stage).collect().await;
/// assert_eq!(metrics.snapshot()[0].errors, Some(1));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MeteredStage<K = IgnoreErrors> {
    name: String,
    registry: Option<Metrics>,
    timed: bool,
    _counting: std::marker::PhantomData<fn() -> K>,
}

impl MeteredStage {
    /// A stage called `name`, in no registry (read it from the wrapped stream's
    /// [`metrics`](Metered::metrics)).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::MeteredStage;
    /// use futures::stream;
    ///
    /// let s = stream::iter([1]).wrap(MeteredStage::new("ones"));
    /// assert_eq!(s.metrics().name(), "ones");
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        MeteredStage {
            name: name.into(),
            registry: None,
            timed: false,
            _counting: std::marker::PhantomData,
        }
    }

    /// Counts `Err` items (the wrapped stream's items must be `Result`s).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::MeteredStage;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter([Err::<(), _>("e")]).wrap(MeteredStage::new("r").count_errors());
    /// let m = s.metrics();
    /// let _: Vec<_> = s.collect().await;
    /// assert_eq!(m.snapshot().errors, Some(1));
    /// # }
    /// ```
    pub fn count_errors(self) -> MeteredStage<CountErrors> {
        MeteredStage {
            name: self.name,
            registry: self.registry,
            timed: self.timed,
            _counting: std::marker::PhantomData,
        }
    }
}

impl<K> MeteredStage<K> {
    /// Registers the stage in `metrics` when it wraps a stream.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Metrics;
    /// use millrace::wrappers::MeteredStage;
    /// use futures::stream;
    ///
    /// let metrics = Metrics::new();
    /// let _s = stream::iter([1]).wrap(MeteredStage::new("a").registered_in(&metrics));
    /// assert_eq!(metrics.snapshot().len(), 1);
    /// ```
    pub fn registered_in(mut self, metrics: &Metrics) -> Self {
        self.registry = Some(metrics.clone());
        self
    }

    /// Measures time spent in the upstream; see [`Metered::with_timing`].
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
    pub fn with_timing(mut self) -> Self {
        self.timed = true;
        self
    }
}

impl<S, K> Stage<S> for MeteredStage<K>
where
    S: Stream,
    K: ErrorCounting<S::Item>,
{
    type Output = Metered<S, K>;

    fn wrap(self, upstream: S) -> Metered<S, K> {
        let metrics = match &self.registry {
            Some(registry) => registry.register(self.name),
            None => StageMetrics::new(self.name),
        };
        if <K as ErrorCounting<S::Item>>::COUNTS {
            metrics.set_counts_errors();
        }
        let mut m = Metered {
            stream: upstream,
            metrics,
            timed: false,
            _counting: std::marker::PhantomData,
        };
        if self.timed {
            m = m.with_timing();
        }
        m
    }
}
