//! [`Metered`]: counts what passes through a point of the pipeline.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;

use crate::Stage;
use crate::metrics::{Meter, Metrics, Observable, StageMetrics, timed_poll};

/// How a [`Metered`] stage classifies items as errors.
///
/// [`IgnoreErrors`] (the default, works for every item type and costs nothing),
/// [`CountErrors`] (for `Result` items, chosen by [`Metered::count_errors`]) or
/// [`ClassifyErrors`] (errors counted per kind, chosen by [`Metered::count_errors_by`]).
/// The choice is a type parameter because Rust has no specialisation: only a stage over
/// `Result`s can count errors.
pub trait ErrorCounting<I> {
    /// Whether this choice counts errors at all (shown as `Some` in the snapshot).
    const COUNTS: bool;

    /// Whether `item` is an error (the stage counts it); a classifying choice also records
    /// the error's kind in `stage`.
    fn is_error(&self, item: &I, stage: &StageMetrics) -> bool;
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

/// `Err` items are counted, and counted per kind by a classifier (see
/// [`Metered::count_errors_by`]).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::{ClassifyErrors, Metered};
/// use futures::stream;
///
/// let _s: Metered<_, ClassifyErrors<_>> = stream::iter([Err::<u8, u8>(1)])
///     .metered("r")
///     .count_errors_by(|e: &u8| if *e > 0 { "positive" } else { "zero" });
/// ```
#[derive(Clone, Copy)]
pub struct ClassifyErrors<F> {
    classify: F,
}

impl<F> fmt::Debug for ClassifyErrors<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClassifyErrors").finish_non_exhaustive()
    }
}

/// Whether a [`Metered`] stage can time its polls and enter a tracing span: a type-level
/// choice, so a plain counting stage has no trace of either, in its per-item code or in its
/// fields.
///
/// A runtime flag looked cheaper but was not: the mere presence of an out-of-line call in the
/// poll (even never taken) stopped LLVM from keeping the surrounding combinators' state in
/// registers, and cost 10–15 instructions per item per stage (measured with callgrind). A
/// `tracing::Span` field that is never entered costs too: its out-of-line drop takes the
/// stream's address, and under LTO that alone moved a 4-stage pipeline's state from
/// registers to memory (+40 instructions per item). [`Counted`] is the default;
/// [`with_timing`](Metered::with_timing) and [`traced`](Metered::traced) switch to
/// [`Observed`]. Sealed: these two are the only modes.
pub trait MeterMode: sealed::Sealed {
    /// Whether timing and tracing code is compiled in.
    const OBSERVED: bool;
}

mod sealed {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures_core::Stream;

    use super::ObservedState;
    use crate::metrics::StageMetrics;

    /// The mode's state and poll (the trait is sealed, so these stay private).
    pub trait Sealed {
        /// What the mode keeps in the stream: nothing when counting only.
        type State: std::fmt::Debug;

        /// The state of a stage built by a [`MeteredStage`](super::MeteredStage).
        fn new_state(stage: &StageMetrics, traced: bool, timed: bool) -> Self::State;

        /// The state of the same stage switched to [`Observed`](super::Observed).
        fn into_observed(state: Self::State) -> ObservedState;

        /// Polls `stream`, timing it / entering the span if the state says so. (`stage` is
        /// an `Option` only so that the per-poll code has no panic path.)
        fn poll<S: Stream>(
            state: &mut Self::State,
            stream: Pin<&mut S>,
            cx: &mut Context<'_>,
            stage: Option<&StageMetrics>,
        ) -> Poll<Option<S::Item>>;
    }
}

/// Counters only (the default mode of [`Metered`]): no clock, no span.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::{Counted, IgnoreErrors, Metered};
/// use futures::stream;
///
/// let _s: Metered<_, IgnoreErrors, Counted> = stream::iter([1]).metered("plain");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Counted;

/// Counters plus timing ([`with_timing`](Metered::with_timing)) and/or a tracing span
/// ([`traced`](Metered::traced)).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::{IgnoreErrors, Metered, Observed};
/// use futures::stream;
///
/// let _s: Metered<_, IgnoreErrors, Observed> = stream::iter([1]).metered("t").with_timing();
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Observed;

impl MeterMode for Counted {
    const OBSERVED: bool = false;
}

impl sealed::Sealed for Counted {
    type State = ();

    fn new_state(_: &StageMetrics, traced: bool, timed: bool) {
        debug_assert!(
            !traced && !timed,
            "a Counted stage is neither traced nor timed"
        );
    }

    fn into_observed((): ()) -> ObservedState {
        ObservedState::default()
    }

    #[inline(always)]
    fn poll<S: Stream>(
        (): &mut (),
        stream: Pin<&mut S>,
        cx: &mut Context<'_>,
        _: Option<&StageMetrics>,
    ) -> Poll<Option<S::Item>> {
        stream.poll_next(cx)
    }
}

impl MeterMode for Observed {
    const OBSERVED: bool = true;
}

impl sealed::Sealed for Observed {
    type State = ObservedState;

    fn new_state(stage: &StageMetrics, traced: bool, timed: bool) -> ObservedState {
        let mut state = ObservedState::default();
        if traced {
            state.trace(stage);
        }
        if timed {
            state.time(stage);
        }
        state
    }

    fn into_observed(state: ObservedState) -> ObservedState {
        state
    }

    #[inline(always)]
    fn poll<S: Stream>(
        state: &mut ObservedState,
        stream: Pin<&mut S>,
        cx: &mut Context<'_>,
        stage: Option<&StageMetrics>,
    ) -> Poll<Option<S::Item>> {
        match stage {
            Some(stage) if state.timed || state.span.is_some() => {
                slow_poll(stream, cx, stage, state)
            }
            _ => stream.poll_next(cx),
        }
    }
}

/// What an [`Observed`] stage keeps besides its counters (not nameable outside the crate).
#[derive(Debug, Default)]
pub struct ObservedState {
    timed: bool,
    // Timing only: when the consumer started waiting for the next item.
    waiting_since: Option<Instant>,
    // Only when `traced` found the span enabled.
    span: Option<tracing::Span>,
}

impl ObservedState {
    fn trace(&mut self, stage: &StageMetrics) {
        let span = tracing::trace_span!("stage", stage = %stage.name());
        if !span.is_disabled() {
            self.span = Some(span);
        }
    }

    fn time(&mut self, stage: &StageMetrics) {
        self.timed = true;
        stage.set_timed();
    }
}

impl<I> ErrorCounting<I> for IgnoreErrors {
    const COUNTS: bool = false;

    #[inline(always)]
    fn is_error(&self, _: &I, _: &StageMetrics) -> bool {
        false
    }
}

impl<T, E> ErrorCounting<Result<T, E>> for CountErrors {
    const COUNTS: bool = true;

    #[inline(always)]
    fn is_error(&self, item: &Result<T, E>, _: &StageMetrics) -> bool {
        item.is_err()
    }
}

impl<T, E, F, R> ErrorCounting<Result<T, E>> for ClassifyErrors<F>
where
    F: Fn(&E) -> R,
    R: AsRef<str>,
{
    const COUNTS: bool = true;

    #[inline(always)]
    fn is_error(&self, item: &Result<T, E>, stage: &StageMetrics) -> bool {
        match item {
            Ok(_) => false,
            Err(e) => {
                stage.on_error_kind((self.classify)(e).as_ref());
                true
            }
        }
    }
}

pin_project! {
    /// Stream for the [`metered`](crate::PipelineExt::metered) and
    /// [`metered_in`](crate::PipelineExt::metered_in) methods.
    ///
    /// See the [`metrics`](crate::metrics) module for what it counts and what that costs.
    #[must_use = "streams do nothing unless polled"]
    pub struct Metered<S, K = IgnoreErrors, M: MeterMode = Counted> {
        #[pin]
        stream: S,
        // The stage's counters (see `Meter`).
        meter: Meter,
        counting: K,
        // Nothing in the default `Counted` mode.
        state: M::State,
    }
}

impl<S, K, M: MeterMode> fmt::Debug for Metered<S, K, M>
where
    S: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metered")
            .field("stream", &self.stream)
            .field("metrics", self.meter.stage())
            .field("observed", &self.state)
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
    pub(crate) fn with_metrics(stream: S, metrics: StageMetrics, counting: K) -> Self {
        if let (lower, Some(upper)) = stream.size_hint()
            && lower == upper
        {
            metrics.set_expected(lower as u64);
        }
        Metered {
            stream,
            meter: Meter::new(metrics),
            counting,
            state: (),
        }
    }
}

impl<S, K, M: MeterMode> Metered<S, K, M> {
    fn recount<K2>(self, counting: K2) -> Metered<S, K2, M> {
        Metered {
            stream: self.stream,
            meter: self.meter,
            counting,
            state: self.state,
        }
    }

    fn observed(self) -> Metered<S, K, Observed> {
        Metered {
            stream: self.stream,
            meter: self.meter,
            counting: self.counting,
            state: M::into_observed(self.state),
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
    pub fn count_errors<T, E>(self) -> Metered<S, CountErrors, M>
    where
        S: Stream<Item = Result<T, E>>,
    {
        self.meter.stage().set_counts_errors();
        self.recount(CountErrors)
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
    pub fn count_errors_by<T, E, F, R>(self, classify: F) -> Metered<S, ClassifyErrors<F>, M>
    where
        S: Stream<Item = Result<T, E>>,
        F: Fn(&E) -> R,
        R: AsRef<str>,
    {
        self.meter.stage().set_counts_errors();
        self.recount(ClassifyErrors { classify })
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
    /// wrapper); elsewhere, use [`StageMetrics::track_retries`] & co. with the wrapper's handle.
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
        self.stream.observe_into(self.meter.stage());
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
    /// spent waiting; latency includes the waiting.
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
    pub fn with_timing(self) -> Metered<S, K, Observed> {
        let mut m = self.observed();
        m.state.time(m.meter.stage());
        m
    }

    /// Enters a `tracing` span `stage` (field `stage = name`, level `TRACE`) around every
    /// poll, so the events of the wrappers inside (retries, fallbacks, skipped errors,
    /// give-ups) carry the stage's name.
    ///
    /// The span is built here, once: when no subscriber wants `TRACE` spans at this moment
    /// it is disabled and each poll pays one predictable branch (plus the [`Observed`] mode's
    /// cost, see [`MeterMode`]). Install the subscriber before building the pipeline.
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
    pub fn traced(self) -> Metered<S, K, Observed> {
        let mut m = self.observed();
        m.state.trace(m.meter.stage());
        m
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
        self.meter.stage().clone()
    }

    delegate_access_inner!(stream, S);
}

impl<S, K, M> Stream for Metered<S, K, M>
where
    S: Stream,
    K: ErrorCounting<S::Item>,
    M: MeterMode,
{
    type Item = S::Item;

    // `always`: inlined before the loop passes run on the consumer, whatever else the crate
    // instantiates (with plain `#[inline]` the same code measured 9.5 or 31.5 instructions
    // per item depending on how many other pipelines the binary held).
    #[inline(always)]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        // Each arm rebuilds its own `Poll`, so every path leaves with a known variant and the
        // consumer's `match` on it folds away once inlined (returning the polled value
        // unchanged made LLVM test the variant twice and, under LTO, stopped it from threading
        // the consumer's loop: 2–3× the instructions per item).
        match M::poll(this.state, this.stream, cx, this.meter.shared()) {
            Poll::Ready(Some(item)) => {
                this.meter.on_item();
                if K::COUNTS
                    && let Some(stage) = this.meter.shared()
                    && this.counting.is_error(&item, stage)
                {
                    this.meter.on_error();
                }
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => {
                this.meter.on_end();
                Poll::Ready(None)
            }
            Poll::Pending => {
                this.meter.on_pending();
                Poll::Pending
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

/// The poll with timing and/or the tracing span: out of line so the fast path stays small.
#[inline(never)]
fn slow_poll<S: Stream>(
    stream: Pin<&mut S>,
    cx: &mut Context<'_>,
    metrics: &StageMetrics,
    state: &mut ObservedState,
) -> Poll<Option<S::Item>> {
    let _entered = state.span.as_ref().map(tracing::Span::enter);
    if !state.timed {
        return stream.poll_next(cx);
    }
    // One clock read before the poll (also the start of the wait, if this poll starts one)
    // and one after it: the latency is measured to the poll's end.
    let start = Instant::now();
    let since = *state.waiting_since.get_or_insert(start);
    let (polled, end, total, own) = timed_poll(start, || stream.poll_next(cx));
    metrics.add_busy(total, own);
    if polled.is_ready() {
        state.waiting_since = None;
        if matches!(polled, Poll::Ready(Some(_))) {
            metrics.record_latency(end.saturating_duration_since(since));
        }
    }
    polled
}

impl<S, K, M> FusedStream for Metered<S, K, M>
where
    S: FusedStream,
    K: ErrorCounting<S::Item>,
    M: MeterMode,
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
pub struct MeteredStage<K = IgnoreErrors, M = Counted> {
    name: String,
    registry: Option<Metrics>,
    timed: bool,
    traced: bool,
    counting: K,
    _mode: std::marker::PhantomData<fn() -> M>,
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
            traced: false,
            counting: IgnoreErrors,
            _mode: std::marker::PhantomData,
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
        self.convert(CountErrors)
    }

    /// Counts `Err` items per kind; see [`Metered::count_errors_by`].
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::MeteredStage;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let stage = MeteredStage::new("r").count_errors_by(|e: &&str| e.len().to_string());
    /// let s = stream::iter([Err::<(), _>("abc")]).wrap(stage);
    /// let m = s.metrics();
    /// let _: Vec<_> = s.collect().await;
    /// assert_eq!(m.snapshot().errors_by_kind, [("3".to_owned(), 1)]);
    /// # }
    /// ```
    pub fn count_errors_by<F>(self, classify: F) -> MeteredStage<ClassifyErrors<F>> {
        self.convert(ClassifyErrors { classify })
    }
}

impl<K, M> MeteredStage<K, M> {
    fn convert<K2, M2>(self, counting: K2) -> MeteredStage<K2, M2> {
        MeteredStage {
            name: self.name,
            registry: self.registry,
            timed: self.timed,
            traced: self.traced,
            counting,
            _mode: std::marker::PhantomData,
        }
    }

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

    /// Measures time spent in the upstream and latency; see [`Metered::with_timing`].
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
    pub fn with_timing(mut self) -> MeteredStage<K, Observed> {
        self.timed = true;
        self.observed()
    }

    /// Enters a tracing span per poll; see [`Metered::traced`].
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::MeteredStage;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter([1, 2]).wrap(MeteredStage::new("t").traced());
    /// assert_eq!(s.collect::<Vec<i32>>().await, [1, 2]);
    /// # }
    /// ```
    pub fn traced(mut self) -> MeteredStage<K, Observed> {
        self.traced = true;
        self.observed()
    }

    fn observed(self) -> MeteredStage<K, Observed> {
        let MeteredStage {
            name,
            registry,
            timed,
            traced,
            counting,
            _mode,
        } = self;
        MeteredStage {
            name,
            registry,
            timed,
            traced,
            counting,
            _mode: std::marker::PhantomData,
        }
    }
}

impl<S, K, M> Stage<S> for MeteredStage<K, M>
where
    S: Stream,
    K: ErrorCounting<S::Item>,
    M: MeterMode,
{
    type Output = Metered<S, K, M>;

    fn wrap(self, upstream: S) -> Metered<S, K, M> {
        let metrics = match &self.registry {
            Some(registry) => registry.register(self.name),
            None => StageMetrics::new(self.name),
        };
        if K::COUNTS {
            metrics.set_counts_errors();
        }
        let state = M::new_state(&metrics, self.traced, self.timed);
        let Metered {
            stream,
            meter,
            counting,
            state: (),
        } = Metered::with_metrics(upstream, metrics, self.counting);
        Metered {
            stream,
            meter,
            counting,
            state,
        }
    }
}
