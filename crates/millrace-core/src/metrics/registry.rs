//! [`Metrics`]: a registry of stages, read in insertion order.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use super::stage_metrics::Counters;
use super::{Report, StageMetrics, StageSnapshot, lock};

enum Entry {
    Strong(StageMetrics),
    Weak(Weak<Counters>),
}

impl Entry {
    fn get(&self) -> Option<StageMetrics> {
        match self {
            Entry::Strong(m) => Some(m.clone()),
            Entry::Weak(w) => w.upgrade().map(|inner| StageMetrics { inner }),
        }
    }
}

struct Registry {
    weak: bool,
    stages: Mutex<Vec<Entry>>,
}

/// A registry of stage metrics: a cloneable handle that many [`Metered`](crate::wrappers::Metered) stages report into,
/// read in insertion order.
///
/// Registration takes a lock once per stage (when the stage is built); counting never does.
/// Every clone shares the same registry. A registry made with [`Metrics::new`] keeps its
/// stages (readable after the pipeline ended, for a final [`report`](Metrics::report));
/// [`Metrics::global`] holds them weakly.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::Metrics;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let metrics = Metrics::new();
/// let s = stream::iter(0..4).metered_in(&metrics, "numbers");
/// let _: Vec<i32> = s.collect().await;
/// assert_eq!(metrics.snapshot()[0].items, 4);
/// # }
/// ```
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::with_mode(false)
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("weak", &self.inner.weak)
            .field("stages", &self.snapshot())
            .finish()
    }
}

impl Metrics {
    fn with_mode(weak: bool) -> Self {
        Metrics {
            inner: Arc::new(Registry {
                weak,
                stages: Mutex::new(Vec::new()),
            }),
        }
    }

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

    /// The process-wide registry the `pipeline!` macro meters its stages into.
    ///
    /// It holds stages **weakly**: a stage is listed while its stream (or any
    /// [`StageMetrics`] handle on it) is alive, and is pruned at the next snapshot after
    /// that, so a loop that builds pipelines does not grow it. Keep a handle (or use your own
    /// [`Metrics::new`]) to read a stage after its stream is gone.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Metrics;
    /// use futures::stream;
    ///
    /// let s = stream::iter([1]).metered_in(Metrics::global(), "doc global stage");
    /// let listed = |m: &Metrics| m.snapshot().iter().any(|s| s.name == "doc global stage");
    /// assert!(listed(Metrics::global()));
    /// drop(s);
    /// assert!(!listed(Metrics::global()));
    /// ```
    pub fn global() -> &'static Metrics {
        static GLOBAL: OnceLock<Metrics> = OnceLock::new();
        GLOBAL.get_or_init(|| Metrics::with_mode(true))
    }

    /// A [`MeteredStage`](crate::wrappers::MeteredStage) that registers a new stage called
    /// `name` here when it wraps a stream.
    ///
    /// ```
    /// # #![allow(deprecated)]
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
    #[deprecated(
        since = "0.2.0",
        note = "use `.metered_in(&metrics, name)` (or `stage_fn(move |s| s.metered_in(&metrics, name))` for a reusable stage)"
    )]
    #[allow(deprecated)]
    pub fn meter(&self, name: impl Into<String>) -> crate::wrappers::MeteredStage {
        crate::wrappers::MeteredStage::new(name).registered_in(self)
    }

    /// Registers a new stage called `name` with no stream writing into it, and returns its
    /// handle: a place to adopt counters ([`StageMetrics::track_retries`] & co.) or gauges
    /// of a wrapper that is not metered.
    ///
    /// ```
    /// use millrace::Metrics;
    ///
    /// let metrics = Metrics::new();
    /// metrics.stage("queue").track_buffered(|| 4);
    /// let snap = &metrics.snapshot()[0];
    /// assert_eq!((snap.name.as_str(), snap.items, snap.buffered), ("queue", 0, Some(4)));
    /// ```
    pub fn stage(&self, name: impl Into<String>) -> StageMetrics {
        self.register(name.into())
    }

    /// Registers a new stage called `name` and returns its counters.
    pub(crate) fn register(&self, name: String) -> StageMetrics {
        self.register_fed(name, None)
    }

    /// [`register`](Self::register) a stage fed by `fed_by` (see [`StageMetrics::fed_by`]).
    pub(crate) fn register_fed(&self, name: String, fed_by: Option<StageMetrics>) -> StageMetrics {
        let m = StageMetrics::new_fed(name, fed_by);
        let entry = if self.inner.weak {
            Entry::Weak(m.downgrade())
        } else {
            Entry::Strong(m.clone())
        };
        let mut stages = self.lock();
        if self.inner.weak {
            // Prune here too, so a registry nobody reads stays bounded.
            stages.retain(|e| matches!(e, Entry::Weak(w) if w.strong_count() > 0));
        }
        stages.push(entry);
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
        let mut stages = self.lock();
        let live: Vec<StageMetrics> = stages.iter().filter_map(Entry::get).collect();
        if self.inner.weak && live.len() != stages.len() {
            stages.retain(|e| e.get().is_some());
        }
        live
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
        self.stages().iter().map(StageMetrics::snapshot).collect()
    }

    /// A per-stage table of the current snapshot (items, errors, retries, p50/p99 latency,
    /// share of time); print it with `{}`. See [`Report`].
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Metrics;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let metrics = Metrics::new();
    /// let _: Vec<i32> = stream::iter(0..3).metered_in(&metrics, "source").collect().await;
    /// let table = metrics.report().to_string();
    /// assert!(table.lines().next().unwrap().starts_with("stage"));
    /// assert!(table.lines().nth(1).unwrap().starts_with("source"));
    /// # }
    /// ```
    pub fn report(&self) -> Report {
        Report::new(self.snapshot())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        lock(&self.inner.stages)
    }
}
