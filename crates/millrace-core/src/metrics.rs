//! Per-stage metrics readable live from a [`Metrics`] handle.
//!
//! A [`Metered`](crate::wrappers::Metered) stage (built by
//! [`metered`](crate::PipelineExt::metered), [`metered_in`](crate::PipelineExt::metered_in) or
//! [`Metrics::meter`]) counts what passes through it into a [`StageMetrics`]: atomics behind an
//! `Arc`, written by the stage and read by anyone, at any time, without a lock.
//!
//! # Cost
//!
//! Each stage has exactly one writer (the stream, which `poll_next` borrows exclusively), so
//! counters are bumped with a relaxed load and store rather than a locked read-modify-write:
//! a few plain instructions per item. Readers see values that are at most a few polls old;
//! every counter only grows. Timing is opt-in ([`with_timing`](crate::wrappers::Metered::with_timing))
//! because reading the clock costs more than everything else together.
//!
//! ```
//! use millrace::prelude::*;
//! use millrace::Metrics;
//! use futures::{stream, StreamExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let metrics = Metrics::new();
//! let n = stream::iter(0..10)
//!     .metered_in(&metrics, "source")
//!     .filter(|x| std::future::ready(x % 2 == 0))
//!     .metered_in(&metrics, "evens")
//!     .count()
//!     .await;
//! assert_eq!(n, 5);
//! let snap = metrics.snapshot();
//! assert_eq!(snap.iter().map(|s| (s.name.as_str(), s.items)).collect::<Vec<_>>(),
//!            [("source", 10), ("evens", 5)]);
//! # }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The counters of one stage. Written by exactly one `Metered` stream.
struct Counters {
    name: String,
    items: AtomicU64,
    pending: AtomicU64,
    // Polls that returned `Ready(None)`; polls = items + pending + ends.
    ends: AtomicU64,
    errors: AtomicU64,
    busy_nanos: AtomicU64,
    counts_errors: AtomicBool,
    timed: AtomicBool,
    finished: AtomicBool,
}

/// Adds one with a relaxed load and store: correct because each counter has one writer.
#[inline(always)]
fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

/// A live, cloneable, read-only handle on one stage's counters.
///
/// Get it from [`Metered::metrics`](crate::wrappers::Metered::metrics) or from a
/// [`Metrics`] registry's [`stages`](Metrics::stages). It stays valid (and readable) after
/// the stream is dropped.
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut s = stream::iter(["a", "b"]).metered("letters");
/// let handle = s.metrics();
/// s.next().await;
/// assert_eq!(handle.snapshot().items, 1);
/// assert_eq!(handle.name(), "letters");
/// # }
/// ```
#[derive(Clone)]
pub struct StageMetrics {
    inner: Arc<Counters>,
}

impl fmt::Debug for StageMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StageMetrics")
            .field(&self.snapshot())
            .finish()
    }
}

impl StageMetrics {
    pub(crate) fn new(name: String) -> Self {
        StageMetrics {
            inner: Arc::new(Counters {
                name,
                items: AtomicU64::new(0),
                pending: AtomicU64::new(0),
                ends: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                busy_nanos: AtomicU64::new(0),
                counts_errors: AtomicBool::new(false),
                timed: AtomicBool::new(false),
                finished: AtomicBool::new(false),
            }),
        }
    }

    /// The stage's name.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = stream::iter([1]).metered("ones");
    /// assert_eq!(s.metrics().name(), "ones");
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The counters as they are now, as plain values.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter([1, 2, 3]).metered("n");
    /// let m = s.metrics();
    /// let _: Vec<i32> = s.collect().await;
    /// let snap = m.snapshot();
    /// assert_eq!((snap.items, snap.polls, snap.finished), (3, 4, true));
    /// # }
    /// ```
    pub fn snapshot(&self) -> StageSnapshot {
        let c = &*self.inner;
        let items = c.items.load(Ordering::Relaxed);
        let pending_polls = c.pending.load(Ordering::Relaxed);
        let ends = c.ends.load(Ordering::Relaxed);
        StageSnapshot {
            name: c.name.clone(),
            items,
            polls: items + pending_polls + ends,
            pending_polls,
            errors: c
                .counts_errors
                .load(Ordering::Relaxed)
                .then(|| c.errors.load(Ordering::Relaxed)),
            busy: c
                .timed
                .load(Ordering::Relaxed)
                .then(|| Duration::from_nanos(c.busy_nanos.load(Ordering::Relaxed))),
            finished: c.finished.load(Ordering::Relaxed),
        }
    }

    // --- writer side, used by `Metered` only ---

    #[inline(always)]
    pub(crate) fn on_item(&self) {
        bump(&self.inner.items);
    }

    #[inline(always)]
    pub(crate) fn on_error(&self) {
        bump(&self.inner.errors);
    }

    #[inline(always)]
    pub(crate) fn on_pending(&self) {
        bump(&self.inner.pending);
    }

    pub(crate) fn on_end(&self) {
        bump(&self.inner.ends);
        self.inner.finished.store(true, Ordering::Relaxed);
    }

    pub(crate) fn add_busy(&self, d: Duration) {
        let c = &self.inner.busy_nanos;
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        c.store(
            c.load(Ordering::Relaxed).saturating_add(nanos),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn set_counts_errors(&self) {
        self.inner.counts_errors.store(true, Ordering::Relaxed);
    }

    pub(crate) fn set_timed(&self) {
        self.inner.timed.store(true, Ordering::Relaxed);
    }
}

/// One stage's counters at one moment, as plain values.
///
/// `#[non_exhaustive]`: later versions add fields (queue depth, retries, …); read the fields
/// by name.
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
    /// Calls to the stage's `poll_next`.
    pub polls: u64,
    /// Polls that returned `Pending` (the stage was waiting on its upstream).
    pub pending_polls: u64,
    /// Items that were `Err`, when error counting is on
    /// ([`count_errors`](crate::wrappers::Metered::count_errors)); `None` otherwise.
    pub errors: Option<u64>,
    /// Time spent inside the upstream's `poll_next`, when timing is on
    /// ([`with_timing`](crate::wrappers::Metered::with_timing)); `None` otherwise.
    pub busy: Option<Duration>,
    /// The stream has returned `None`.
    pub finished: bool,
}

/// A registry of stage metrics: a cloneable handle that many [`Metered`](crate::wrappers::Metered)
/// stages report into, read in insertion order.
///
/// Registration takes a lock once per stage (when the stage is built); counting never does.
/// Every clone shares the same registry.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::Metrics;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let metrics = Metrics::new();
/// let s = stream::iter(0..4).wrap(metrics.meter("numbers"));
/// let _: Vec<i32> = s.collect().await;
/// assert_eq!(metrics.snapshot()[0].items, 4);
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Metrics {
    stages: Arc<Mutex<Vec<StageMetrics>>>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("stages", &self.snapshot())
            .finish()
    }
}

impl Metrics {
    /// An empty registry.
    ///
    /// ```
    /// use millrace::Metrics;
    ///
    /// assert!(Metrics::new().snapshot().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// A [`MeteredStage`](crate::wrappers::MeteredStage) that registers a new stage called
    /// `name` here when it wraps a stream.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Metrics;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let metrics = Metrics::new();
    /// let total: i32 = stream::iter([1, 2]).wrap(metrics.meter("in")).fold(0, |a, x| async move { a + x }).await;
    /// assert_eq!(total, 3);
    /// assert_eq!(metrics.snapshot()[0].name, "in");
    /// # }
    /// ```
    pub fn meter(&self, name: impl Into<String>) -> crate::wrappers::MeteredStage {
        crate::wrappers::MeteredStage::new(name).registered_in(self)
    }

    /// Registers a new stage called `name` and returns its counters.
    pub(crate) fn register(&self, name: String) -> StageMetrics {
        let m = StageMetrics::new(name);
        self.lock().push(m.clone());
        m
    }

    /// Handles on every registered stage, in insertion order.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Metrics;
    /// use futures::stream;
    ///
    /// let metrics = Metrics::new();
    /// let _a = stream::iter([1]).metered_in(&metrics, "a");
    /// let _b = stream::iter([1]).metered_in(&metrics, "b");
    /// let names: Vec<String> = metrics.stages().iter().map(|s| s.name().to_owned()).collect();
    /// assert_eq!(names, ["a", "b"]);
    /// ```
    pub fn stages(&self) -> Vec<StageMetrics> {
        self.lock().clone()
    }

    /// Every registered stage's counters as they are now, in insertion order.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Metrics;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let metrics = Metrics::new();
    /// let _: Vec<u8> = stream::iter([1u8, 2]).metered_in(&metrics, "x").collect().await;
    /// let snap = metrics.snapshot();
    /// assert_eq!((snap[0].name.as_str(), snap[0].items, snap[0].finished), ("x", 2, true));
    /// # }
    /// ```
    pub fn snapshot(&self) -> Vec<StageSnapshot> {
        self.lock().iter().map(StageMetrics::snapshot).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<StageMetrics>> {
        // The lock only guards pushes and clones of handles, which cannot leave the vector
        // half-updated, so a poisoned lock is still consistent.
        self.stages.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
