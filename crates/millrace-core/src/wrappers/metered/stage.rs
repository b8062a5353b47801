//! [`MeteredStage`]: the [`Stage`] form of [`metered`](crate::PipelineExt::metered).

use futures_core::Stream;

use super::{ClassifyErrors, CountErrors, ErrorCounting, IgnoreErrors, Metered};
use crate::Stage;
use crate::metrics::{Metrics, StageMetrics};
use crate::wrappers::{TimedStage, TracedStage};

/// A [`Stage`] that applies [`metered`](crate::PipelineExt::metered): one metering segment,
/// built once, applied to many sources.
///
/// Each `wrap` registers a new stage (new counters) under the stage's name, so the counters of
/// one `Metered` stream always have exactly one writer.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::MeteredStage;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let stage = MeteredStage::new("results").count_errors();
/// let s = stream::iter([Ok(1), Err(())]).wrap(stage);
/// let m = s.metrics();
/// let _: Vec<Result<u8, ()>> = s.collect().await;
/// assert_eq!(m.snapshot().errors, Some(1));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MeteredStage<K = IgnoreErrors> {
    name: String,
    registry: Option<Metrics>,
    counting: K,
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
            counting: IgnoreErrors,
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

impl<K> MeteredStage<K> {
    fn convert<K2>(self, counting: K2) -> MeteredStage<K2> {
        MeteredStage {
            name: self.name,
            registry: self.registry,
            counting,
        }
    }

    /// Registers the stage in `metrics` when it wraps a stream.
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// use millrace::prelude::*;
    /// use millrace::Metrics;
    /// use millrace::wrappers::MeteredStage;
    /// use futures::stream;
    ///
    /// let metrics = Metrics::new();
    /// let _s = stream::iter([1]).wrap(MeteredStage::new("a").registered_in(&metrics));
    /// assert_eq!(metrics.snapshot().len(), 1);
    /// ```
    #[deprecated(
        since = "0.2.0",
        note = "use `.metered_in(&metrics, name)` (or `stage_fn(move |s| s.metered_in(&metrics, name))` for a reusable stage)"
    )]
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
    pub fn with_timing(self) -> TimedStage<Self> {
        TimedStage::new(self)
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
    pub fn traced(self) -> TracedStage<Self> {
        TracedStage::new(self)
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
        if K::COUNTS {
            metrics.set_counts_errors();
        }
        Metered::with_metrics(upstream, metrics, self.counting)
    }
}
