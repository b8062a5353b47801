//! [`StageSnapshot`]: one stage's counters at one moment, as plain values.

use std::time::Duration;

use super::LatencySnapshot;
#[cfg(doc)]
use super::StageMetrics;
#[cfg(doc)]
use crate::wrappers::{Recover, Retry, Supervise};

/// One stage's counters at one moment, as plain values.
///
/// `#[non_exhaustive]`: later versions add fields; read the fields by name. An `Option` field
/// is `None` when the stage does not measure it (see the [`metrics` module docs](crate::metrics) for how
/// to turn each on).
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let s = stream::iter([Ok(1), Err("bad"), Ok(3)]).metered("parsed").count_errors();
/// let m = s.metrics();
/// let _: Vec<Result<i32, &str>> = s.collect().await;
/// let snap = m.snapshot();
/// assert_eq!(snap.name, "parsed");
/// assert_eq!(snap.items, 3);
/// assert_eq!(snap.errors, Some(1));
/// assert_eq!(snap.busy, None); // timing was not enabled
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StageSnapshot {
    /// The stage's name.
    pub name: String,
    /// Items the stage yielded (errors included, when items are `Result`s).
    pub items: u64,
    /// Items the upstream stage yielded, when linked with [`StageMetrics::fed_by`].
    pub items_in: Option<u64>,
    /// Items the stage is expected to yield in total, when known
    /// ([`StageMetrics::set_expected`]).
    pub expected: Option<u64>,
    /// Calls to the stage's `poll_next`.
    pub polls: u64,
    /// Polls that returned `Pending` (the stage was waiting on its upstream).
    pub pending_polls: u64,
    /// Items that were `Err`, when error counting is on
    /// ([`count_errors`](crate::wrappers::Metered::count_errors)); `None` otherwise.
    pub errors: Option<u64>,
    /// Errors per kind, in first-seen order, when classified
    /// ([`count_errors_by`](crate::wrappers::Metered::count_errors_by)); empty otherwise.
    pub errors_by_kind: Vec<(String, u64)>,
    /// Retries of adopted [`Retry`] streams.
    pub retries: Option<u64>,
    /// Fallbacks of adopted [`Recover`] streams.
    pub fallbacks: Option<u64>,
    /// Errors skipped by adopted [`Supervise`] streams (`Supervision::Resume`).
    pub skipped: Option<u64>,
    /// Sum of the in-flight gauges ([`StageMetrics::track_in_flight`]).
    pub in_flight: Option<u64>,
    /// Sum of the buffered gauges ([`StageMetrics::track_buffered`]).
    pub buffered: Option<u64>,
    /// Time spent inside the upstream's `poll_next`, including nested stages, when timing is
    /// on ([`with_timing`](crate::wrappers::Metered::with_timing)); `None` otherwise.
    pub busy: Option<Duration>,
    /// `busy` minus the `busy` of the timed stages nested inside this one: the stage's own
    /// time, so the slowest stage is the one with the largest `self_busy`.
    pub self_busy: Option<Duration>,
    /// Per-item latency quantiles, when timing is on.
    pub latency: Option<LatencySnapshot>,
    /// Real time since the stage was built, up to its end once finished.
    pub elapsed: Duration,
    /// The stream has returned `None`.
    pub finished: bool,
}

impl StageSnapshot {
    /// Items per second over [`elapsed`](Self::elapsed) (0 before any time passed).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter(0..1000).metered("fast");
    /// let m = s.metrics();
    /// let _: Vec<i32> = s.collect().await;
    /// assert!(m.snapshot().throughput() > 0.0);
    /// # }
    /// ```
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.items as f64 / secs
        } else {
            0.0
        }
    }
}
