//! [`StageMetrics`]: the counters of one stage, written by its `Metered` stream and read by
//! anyone through cloneable handles.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::histogram::Histogram;
use super::{EventCounter, StageSnapshot, lock};

/// A gauge read at snapshot time.
type Gauge = Box<dyn Fn() -> u64 + Send + Sync>;

/// What is touched only on error paths, at registration or at snapshot time.
#[derive(Default)]
pub(super) struct Cold {
    kinds: Vec<(String, u64)>,
    retries: Vec<EventCounter>,
    skips: Vec<EventCounter>,
    fallbacks: Vec<EventCounter>,
    in_flight: Vec<Gauge>,
    buffered: Vec<Gauge>,
    fed_by: Option<StageMetrics>,
}

/// The counters of one stage. Written by exactly one `Metered` stream.
pub(super) struct Counters {
    name: String,
    created: Instant,
    items: AtomicU64,
    pending: AtomicU64,
    // Polls that returned `Ready(None)`; polls = items + pending + ends.
    ends: AtomicU64,
    errors: AtomicU64,
    busy_nanos: AtomicU64,
    self_busy_nanos: AtomicU64,
    // Nanoseconds from `created` to the end, plus one; 0 while running.
    ended_at: AtomicU64,
    // `u64::MAX` when unknown.
    expected: AtomicU64,
    counts_errors: AtomicBool,
    timed: AtomicBool,
    latency: OnceLock<Histogram>,
    cold: Mutex<Cold>,
}

impl Counters {
    fn on_end(&self) {
        bump(&self.ends);
        if self.ended_at.load(Ordering::Relaxed) == 0 {
            let at = nanos(self.created.elapsed()).saturating_add(1);
            self.ended_at.store(at, Ordering::Relaxed);
        }
    }
}

/// Adds one with a relaxed load and store: correct because each counter has one writer.
#[inline]
fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A live, cloneable, read-only handle on one stage's counters.
///
/// Get it from [`Metered::metrics`](crate::wrappers::Metered::metrics), from a [`Metrics`](crate::Metrics)
/// registry's [`stages`](crate::Metrics::stages), or make a counter-only stage with
/// [`Metrics::stage`](crate::Metrics::stage). It stays valid (and readable) after the stream is dropped.
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
    pub(super) inner: Arc<Counters>,
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
        Self::new_fed(name, None)
    }

    /// A new stage whose `items_in` is `fed_by`'s item count (see [`fed_by`](Self::fed_by)).
    pub(super) fn new_fed(name: String, fed_by: Option<StageMetrics>) -> Self {
        StageMetrics {
            inner: Arc::new(Counters {
                name,
                created: Instant::now(),
                items: AtomicU64::new(0),
                pending: AtomicU64::new(0),
                ends: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                busy_nanos: AtomicU64::new(0),
                self_busy_nanos: AtomicU64::new(0),
                ended_at: AtomicU64::new(0),
                expected: AtomicU64::new(u64::MAX),
                counts_errors: AtomicBool::new(false),
                timed: AtomicBool::new(false),
                latency: OnceLock::new(),
                cold: Mutex::new(Cold {
                    fed_by,
                    ..Cold::default()
                }),
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
        let timed = c.timed.load(Ordering::Relaxed);
        let ended_at = c.ended_at.load(Ordering::Relaxed);
        let elapsed = if ended_at == 0 {
            c.created.elapsed()
        } else {
            Duration::from_nanos(ended_at - 1)
        };
        let expected = c.expected.load(Ordering::Relaxed);
        let cold = lock(&c.cold);
        let sum = |v: &[Gauge]| (!v.is_empty()).then(|| v.iter().map(|g| g()).sum());
        StageSnapshot {
            name: c.name.clone(),
            items,
            items_in: cold
                .fed_by
                .as_ref()
                .map(|up| up.inner.items.load(Ordering::Relaxed)),
            expected: (expected != u64::MAX).then_some(expected),
            polls: items + pending_polls + ends,
            pending_polls,
            errors: c
                .counts_errors
                .load(Ordering::Relaxed)
                .then(|| c.errors.load(Ordering::Relaxed)),
            errors_by_kind: cold.kinds.clone(),
            retries: (!cold.retries.is_empty())
                .then(|| cold.retries.iter().map(EventCounter::get).sum()),
            fallbacks: (!cold.fallbacks.is_empty())
                .then(|| cold.fallbacks.iter().map(EventCounter::get).sum()),
            skipped: (!cold.skips.is_empty())
                .then(|| cold.skips.iter().map(EventCounter::get).sum()),
            in_flight: sum(&cold.in_flight),
            buffered: sum(&cold.buffered),
            busy: timed.then(|| Duration::from_nanos(c.busy_nanos.load(Ordering::Relaxed))),
            self_busy: timed
                .then(|| Duration::from_nanos(c.self_busy_nanos.load(Ordering::Relaxed))),
            latency: c.latency.get().map(Histogram::snapshot),
            elapsed,
            finished: ended_at != 0,
        }
    }

    /// Adopts a [`Retry`](crate::wrappers::Retry) stream's live retry count: it shows in
    /// [`StageSnapshot::retries`] (summed, if several are adopted).
    ///
    /// [`Metered::with_events`](crate::wrappers::Metered::with_events) does this for you when
    /// the metered stream *is* the `Retry`.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Metrics;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let metrics = Metrics::new();
    /// let s = restartable(|cp: &Checkpoint<u64>| {
    ///     stream::iter(cp.delivered..3).map(|i| if i == 1 { Err("down") } else { Ok(i) })
    /// })
    /// .retry(RetryPolicy::fixed(Duration::from_millis(10), 2));
    /// metrics.stage("fetch").track_retries(&s.retries());
    /// let _: Vec<_> = s.collect().await;
    /// assert_eq!(metrics.snapshot()[0].retries, Some(2));
    /// # }
    /// ```
    pub fn track_retries(&self, retries: &EventCounter) -> &Self {
        lock(&self.inner.cold).retries.push(retries.clone());
        self
    }

    /// Adopts a [`Supervise`](crate::wrappers::Supervise) stream's live skip count ([`StageSnapshot::skipped`]).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Metrics;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let metrics = Metrics::new();
    /// let s = stream::iter([Ok(1), Err("bad"), Ok(3)]).on_error(Supervision::Resume);
    /// metrics.stage("parse").track_skips(&s.skipped());
    /// let _: Vec<_> = s.collect().await;
    /// assert_eq!(metrics.snapshot()[0].skipped, Some(1));
    /// # }
    /// ```
    pub fn track_skips(&self, counter: &EventCounter) -> &Self {
        lock(&self.inner.cold).skips.push(counter.clone());
        self
    }

    /// Adopts a [`Recover`](crate::wrappers::Recover) stream's live fallback count ([`StageSnapshot::fallbacks`]).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Metrics;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let metrics = Metrics::new();
    /// let s = stream::iter([Ok(1), Err("down")])
    ///     .recover_with(|_, _: &Checkpoint<i32>| Some(stream::iter([Ok(2)])));
    /// metrics.stage("primary").track_fallbacks(&s.fallbacks());
    /// let _: Vec<_> = s.collect().await;
    /// assert_eq!(metrics.snapshot()[0].fallbacks, Some(1));
    /// # }
    /// ```
    pub fn track_fallbacks(&self, counter: &EventCounter) -> &Self {
        lock(&self.inner.cold).fallbacks.push(counter.clone());
        self
    }

    /// Adds a gauge read at snapshot time into [`StageSnapshot::in_flight`] (e.g. the number
    /// of requests a concurrent stage has started and not finished). Gauges are added up.
    ///
    /// The gauge runs while the stage's snapshot holds its (cold-path) lock: keep it a cheap
    /// read of an atomic, and do not snapshot this same stage from inside it.
    ///
    /// ```
    /// use millrace::Metrics;
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    ///
    /// let metrics = Metrics::new();
    /// let requests = Arc::new(AtomicU64::new(3));
    /// let r = requests.clone();
    /// metrics.stage("fetch").track_in_flight(move || r.load(Ordering::Relaxed));
    /// assert_eq!(metrics.snapshot()[0].in_flight, Some(3));
    /// ```
    pub fn track_in_flight(&self, gauge: impl Fn() -> u64 + Send + Sync + 'static) -> &Self {
        lock(&self.inner.cold).in_flight.push(Box::new(gauge));
        self
    }

    /// Adds a gauge read at snapshot time into [`StageSnapshot::buffered`] (e.g. a prefetch
    /// buffer's length). Gauges are added up.
    ///
    /// ```
    /// use millrace::Metrics;
    ///
    /// let metrics = Metrics::new();
    /// metrics.stage("prefetch").track_buffered(|| 16);
    /// assert_eq!(metrics.snapshot()[0].buffered, Some(16));
    /// ```
    pub fn track_buffered(&self, gauge: impl Fn() -> u64 + Send + Sync + 'static) -> &Self {
        lock(&self.inner.cold).buffered.push(Box::new(gauge));
        self
    }

    /// Declares that this stage pulls its items from `upstream`: the upstream's item count
    /// becomes this stage's [`items_in`](StageSnapshot::items_in), so a filter's drop rate or
    /// a batch's ratio reads straight off the snapshot.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Metrics;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let metrics = Metrics::new();
    /// let source = stream::iter(0..10).metered_in(&metrics, "source");
    /// let upstream = source.metrics();
    /// let evens = source.filter(|x| std::future::ready(x % 2 == 0)).metered_in(&metrics, "evens");
    /// evens.metrics().fed_by(&upstream);
    /// let _: Vec<i32> = evens.collect().await;
    /// let snap = &metrics.snapshot()[1];
    /// assert_eq!((snap.items_in, snap.items), (Some(10), 5));
    /// # }
    /// ```
    pub fn fed_by(&self, upstream: &StageMetrics) -> &Self {
        lock(&self.inner.cold).fed_by = Some(upstream.clone());
        self
    }

    /// Sets how many items the stage is expected to yield ([`StageSnapshot::expected`]), so a
    /// dashboard can draw a bar. A [`Metered`](crate::wrappers::Metered) stage sets it by itself when its upstream's
    /// `size_hint` is exact at construction.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = stream::iter(0..10).metered("exact");
    /// assert_eq!(s.metrics().snapshot().expected, Some(10));
    /// let s = stream::unfold(0, |n| async move { Some((n, n + 1)) }).metered("endless");
    /// assert_eq!(s.metrics().snapshot().expected, None);
    /// s.metrics().set_expected(1_000);
    /// assert_eq!(s.metrics().snapshot().expected, Some(1_000));
    /// ```
    pub fn set_expected(&self, items: u64) -> &Self {
        self.inner.expected.store(items, Ordering::Relaxed);
        self
    }

    /// Whether two handles are on the same stage.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = stream::iter([1]).metered("x");
    /// assert!(s.metrics().same_stage(&s.metrics()));
    /// assert!(!s.metrics().same_stage(&stream::iter([1]).metered("x").metrics()));
    /// ```
    pub fn same_stage(&self, other: &StageMetrics) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    // --- writer side: the one `Metered` stream (and its `Timed` layer) of this stage ---

    /// Counts an item the stage yielded.
    #[inline]
    pub(crate) fn record_item(&self) {
        bump(&self.inner.items);
    }

    /// Counts an `Err` item (error counting on).
    #[inline]
    pub(crate) fn record_error(&self) {
        bump(&self.inner.errors);
    }

    /// Counts a poll that returned `Pending`: out of line, as waiting is rarer than items.
    #[cold]
    #[inline(never)]
    pub(crate) fn record_pending(&self) {
        bump(&self.inner.pending);
    }

    /// Counts a poll that returned `Ready(None)`, and the end time at the first.
    #[cold]
    #[inline(never)]
    pub(crate) fn record_end(&self) {
        self.inner.on_end();
    }

    /// Counts an error of kind `kind` (and in `errors`). Error path only: takes a lock.
    #[cold]
    pub(crate) fn on_error_kind(&self, kind: &str) {
        let mut cold = lock(&self.inner.cold);
        match cold.kinds.iter_mut().find(|(k, _)| k == kind) {
            Some((_, n)) => *n += 1,
            None => cold.kinds.push((kind.to_owned(), 1)),
        }
    }

    pub(crate) fn add_busy(&self, total_nanos: u64, self_nanos: u64) {
        for (c, n) in [
            (&self.inner.busy_nanos, total_nanos),
            (&self.inner.self_busy_nanos, self_nanos),
        ] {
            c.store(
                c.load(Ordering::Relaxed).saturating_add(n),
                Ordering::Relaxed,
            );
        }
    }

    pub(crate) fn record_latency(&self, d: Duration) {
        self.inner.latency.get_or_init(Histogram::new).record(d);
    }

    pub(crate) fn set_counts_errors(&self) {
        self.inner.counts_errors.store(true, Ordering::Relaxed);
    }

    pub(crate) fn set_timed(&self) {
        self.inner.timed.store(true, Ordering::Relaxed);
        self.inner.latency.get_or_init(Histogram::new);
    }

    pub(super) fn downgrade(&self) -> Weak<Counters> {
        Arc::downgrade(&self.inner)
    }
}
