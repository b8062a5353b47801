//! [`EventCounter`], the live count of a wrapper's rare events, and [`Observable`], the
//! wrappers whose counters and gauges a [`StageMetrics`] can adopt.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::StageMetrics;

/// A cloneable, live count of one kind of event of a wrapper: the retries of a
/// [`Retry`](crate::wrappers::Retry) or [`MapRetry`](crate::wrappers::MapRetry), the fallbacks
/// of a [`Recover`](crate::wrappers::Recover), the errors a
/// [`Supervise`](crate::wrappers::Supervise) (under `Resume`) or a
/// [`SkipErrors`](crate::wrappers::SkipErrors) skipped.
///
/// Every such wrapper hands it out the same way, through the accessor named after what it
/// counts (`retries()`, `fallbacks()`, `skipped()`): take it before handing the stream to its
/// consumer and read it at any time, from any task. Every clone shares one count. It compares
/// equal to the plain count (`assert_eq!(s.skipped(), 2)`).
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let s = stream::iter([Ok(1), Err("bad"), Err("worse"), Ok(4)]).on_error(Supervision::Resume);
/// let skipped = s.skipped();
/// assert_eq!(s.collect::<Vec<_>>().await, [Ok(1), Ok(4)]);
/// assert_eq!(skipped.get(), 2);
/// # }
/// ```
#[derive(Clone, Default)]
pub struct EventCounter {
    count: Arc<AtomicU64>,
}

impl fmt::Debug for EventCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EventCounter").field(&self.get()).finish()
    }
}

impl PartialEq<u64> for EventCounter {
    fn eq(&self, count: &u64) -> bool {
        self.get() == *count
    }
}

impl EventCounter {
    /// How many events were counted so far.
    ///
    /// ```
    /// use millrace::metrics::EventCounter;
    ///
    /// assert_eq!(EventCounter::default().get(), 0);
    /// ```
    pub fn get(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Counts one event and returns the new count. The wrappers call it on their error paths;
    /// call it yourself to count a retry made elsewhere (by an adapter, or in
    /// [`RetryPolicy::retry_notify`](crate::policy::RetryPolicy::retry_notify)'s hook) so that
    /// a metered stage adopting this counter reports it.
    ///
    /// ```
    /// use millrace::metrics::EventCounter;
    ///
    /// let retries = EventCounter::default();
    /// assert_eq!(retries.clone().record(), 1);
    /// assert_eq!(retries.get(), 1);
    /// ```
    pub fn record(&self) -> u64 {
        self.count.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The count; the name of the deprecated `RetryStats`.
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// use millrace::metrics::EventCounter;
    ///
    /// assert_eq!(EventCounter::default().retries(), 0);
    /// ```
    #[deprecated(since = "0.2.0", note = "use `EventCounter::get`")]
    pub fn retries(&self) -> u64 {
        self.get()
    }

    /// Counts one retry; the name of the deprecated `RetryStats`.
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// use millrace::metrics::EventCounter;
    ///
    /// let retries = EventCounter::default();
    /// retries.record_retry();
    /// assert_eq!(retries.get(), 1);
    /// ```
    #[deprecated(since = "0.2.0", note = "use `EventCounter::record`")]
    pub fn record_retry(&self) {
        self.record();
    }
}

/// The count of a [`Recover`](crate::wrappers::Recover) stream's fallbacks.
#[deprecated(
    since = "0.2.0",
    note = "use `EventCounter` (returned by `Recover::fallbacks`)"
)]
pub type FallbackCounter = EventCounter;

/// A wrapper that keeps live event counters (retries, fallbacks, skipped errors) or gauges
/// (in-flight and buffered counts) a [`StageMetrics`] can adopt; used by
/// [`Metered::with_events`](crate::wrappers::Metered::with_events) and by `pipeline!`.
///
/// Each wrapper implements it in its own file, next to the counters it reports:
/// [`Retry`](crate::wrappers::Retry), [`MapRetry`](crate::wrappers::MapRetry),
/// [`Recover`](crate::wrappers::Recover), [`Supervise`](crate::wrappers::Supervise) and
/// [`SkipErrors`](crate::wrappers::SkipErrors) (events),
/// [`Prefetch`](crate::wrappers::Prefetch), [`MapConcurrent`](crate::wrappers::MapConcurrent),
/// [`TryMapConcurrent`](crate::wrappers::TryMapConcurrent) and
/// [`MapConcurrentLocal`](crate::wrappers::MapConcurrentLocal) (gauges), and the timing and
/// tracing layers of a metered stage, which pass it on. Implement it for your own wrapper by
/// calling the `track_*` methods of the stage.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::metrics::Observable;
/// use futures::stream;
///
/// let s = stream::iter([Ok::<u8, &str>(1)]).on_error(Supervision::Resume);
/// let stage = stream::iter([0]).metered("skips").metrics();
/// s.observe_into(&stage);
/// assert_eq!(stage.snapshot().skipped, Some(0));
/// ```
pub trait Observable {
    /// Adopts this wrapper's counters into `stage`.
    ///
    /// ```
    /// use millrace::metrics::Observable;
    /// use millrace::policy::Supervision;
    /// use millrace::prelude::*;
    /// use millrace::Metrics;
    /// use futures::stream;
    ///
    /// let metrics = Metrics::new();
    /// let stage = metrics.stage("skipper");
    /// let s = stream::iter([Ok::<u8, &str>(1)]).on_error(Supervision::Resume);
    /// s.observe_into(&stage);
    /// assert_eq!(stage.snapshot().skipped, Some(0));
    /// ```
    fn observe_into(&self, stage: &StageMetrics);
}
