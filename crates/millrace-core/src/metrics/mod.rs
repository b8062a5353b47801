//! Per-stage metrics readable live from a [`Metrics`] handle, exported as JSON or Prometheus
//! text, and summarised in a [`Report`].
//!
//! A [`Metered`](crate::wrappers::Metered) stage (built by
//! [`metered`](crate::PipelineExt::metered), [`metered_in`](crate::PipelineExt::metered_in) or
//! [`Metrics::meter`]) counts what passes through it into a [`StageMetrics`]: atomics behind an
//! `Arc`, written by the stage and read by anyone, at any time, without a lock.
//!
//! # What a stage reports
//!
//! | what | how to turn it on | snapshot field |
//! |---|---|---|
//! | items out, polls, `Pending` polls, end | always | [`items`](StageSnapshot::items), [`polls`](StageSnapshot::polls), [`pending_polls`](StageSnapshot::pending_polls), [`finished`](StageSnapshot::finished) |
//! | errors | [`count_errors`](crate::wrappers::Metered::count_errors) | [`errors`](StageSnapshot::errors) |
//! | errors by kind | [`count_errors_by`](crate::wrappers::Metered::count_errors_by)`(\|e\| e.kind())` | [`errors_by_kind`](StageSnapshot::errors_by_kind) |
//! | retries, fallbacks, skipped errors | [`with_events`](crate::wrappers::Metered::with_events) right after `retry` / `recover_with` / `on_error`, or [`StageMetrics::track_retries`] & co. | [`retries`](StageSnapshot::retries), [`fallbacks`](StageSnapshot::fallbacks), [`skipped`](StageSnapshot::skipped) |
//! | in-flight and buffered counts | [`with_events`](crate::wrappers::Metered::with_events) right after `prefetch` / `map_concurrent` / `try_map_concurrent` / `map_concurrent_local`, or [`StageMetrics::track_in_flight`], [`StageMetrics::track_buffered`] (any gauge) | [`in_flight`](StageSnapshot::in_flight), [`buffered`](StageSnapshot::buffered) |
//! | items in | [`StageMetrics::fed_by`] the upstream stage | [`items_in`](StageSnapshot::items_in) |
//! | time spent, latency p50/p90/p99 | [`with_timing`](crate::wrappers::Metered::with_timing) | [`busy`](StageSnapshot::busy), [`self_busy`](StageSnapshot::self_busy), [`latency`](StageSnapshot::latency) |
//! | throughput | always | [`StageSnapshot::throughput`] |
//! | a tracing span naming the stage in events | [`traced`](crate::wrappers::Metered::traced) | — |
//!
//! Retries, fallbacks and skips are not counted twice: the registry *adopts* the live counter
//! handles the wrappers already keep ([`RetryStats`], [`SkipCounter`], [`FallbackCounter`])
//! and reads them at snapshot time, so the wrappers' hot paths do not change at all.
//!
//! # Cost
//!
//! Each stage has exactly one writer (the stream, which `poll_next` borrows exclusively), so
//! counters are bumped with a relaxed load and store (one `inc` on memory on x86-64) rather
//! than a locked read-modify-write: a snapshot is exact up to the last item the stage
//! yielded, every counter only grows, and reading never slows the writer (no lock is shared). `Pending` polls and the end are
//! counted out of line. Timing and tracing are a type-level mode
//! ([`MeterMode`](crate::wrappers::MeterMode)), so a counting stage carries no trace of them,
//! not even a field.
//!
//! Measured by `scripts/bench.sh` (callgrind, fat LTO, Rust 1.95, futures' `block_on`;
//! instructions per source item) on `stream::iter(0..N)` → `map(x * 3)` → `filter(even)` →
//! `map(x + 1)` → `fold`, which costs 7.0 unmetered:
//!
//! | metered stage(s) | instr/item | over unmetered |
//! |---|---:|---:|
//! | one, directly on the source | 8.0 | **+1.0** |
//! | one, after the first `map` | 8.0 | **+1.0** |
//! | one, after the last `map` (sees half the items) | 7.5 | **+0.5** |
//! | one, `.count_errors()`, on a `Result` source | 8.0 | **+1.0** |
//! | every stage, the `pipeline!` default (4 stages, `items_in` fed) | 43.0 | **+36.0** (9 per stage) |
//! | *a hand-written counter (relaxed store per item), directly on the source* | *41.5* | *+34.5* |
//! | one, `.traced()`, no subscriber | 52.5 | +45.5 |
//!
//! A counting stage costs one instruction per item (the `inc`) when the pipeline's state stays
//! in registers. What can undo that is not in the stage's per-item code but around it: a call
//! in the same function that receives the pipeline's address — including the drop a landing
//! pad runs if some call could unwind — keeps the state in memory. `Metered` has no such call
//! of its own (no drop glue beyond one pointer, no panic path in `poll_next`, nounwind cold
//! paths), which is why it beats a hand-written counter; with four metered stages, the drop of
//! the whole pipeline in the landing pad of `futures`' `fold` (its own "polled after
//! completion" panic) is no longer inlined, and the cost rises to 9 per stage, still within
//! the target of ≤ 10. These are LLVM's decisions as much as the code's: see
//! `benches/RESULTS.md` for the steps and the dead ends. `.traced()` costs more even with no
//! subscriber: the out-of-line span/timing path in the loop keeps LLVM from holding the
//! neighbouring combinators' state in registers; that is why it is opt-in per stage.
//! `with_timing` reads the clock twice per poll (≈ 50 ns); an enabled span costs ≈ 100 ns per
//! poll with `tracing-subscriber`'s registry.
//!
//! # Tracing
//!
//! A stage made with [`traced`](crate::wrappers::Metered::traced) builds a `tracing` span
//! `stage` with the field `stage = name` at **`TRACE`** level when it is created, and enters
//! it around each poll when a subscriber wanted it: the retry, fallback, skip and give-up
//! events of the wrappers inside then carry the stage name, e.g. with
//! `tracing_subscriber::fmt().with_max_level(Level::TRACE)`:
//!
//! ```text
//! WARN stage{stage=fetch}: millrace_core::wrappers::retry: millrace retry: source failed, re-opening from the checkpoint after a backoff attempt=1 delay=10ms delay_ms=10 delivered=1 error=…
//! ```
//!
//! The events themselves (warnings with structured fields: `attempt`, `delay_ms`,
//! `delivered`, `error` for retries; `attempts`, `retries` for a give-up; `fallback` for a
//! switch; `skipped` for a skipped error) are emitted whether or not the stage is traced. A
//! span takes its parent when it is built, so nested traced stages show the innermost name.
//!
//! # Automatic metering
//!
//! [`Metrics::global`] is a process-wide registry that holds stages **weakly**: a stage
//! disappears from it once its stream and every handle on it are dropped (pruned at snapshot
//! time), so a loop that builds pipelines does not leak. `pipeline!` meters each of its stages
//! there by default, adopting the events of [`Observable`] stages and counting the `Err`
//! items of stages whose items are `Result`s.
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

mod export;
mod histogram;
mod report;

pub use self::histogram::LatencySnapshot;
pub use self::report::Report;

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use self::histogram::Histogram;
use crate::wrappers::{Recover, Retry, RetryStats, SkipCounter, Supervise};

/// A gauge read at snapshot time.
type Gauge = Box<dyn Fn() -> u64 + Send + Sync>;

/// What is touched only on error paths, at registration or at snapshot time.
#[derive(Default)]
struct Cold {
    kinds: Vec<(String, u64)>,
    retries: Vec<RetryStats>,
    skips: Vec<SkipCounter>,
    fallbacks: Vec<FallbackCounter>,
    in_flight: Vec<Gauge>,
    buffered: Vec<Gauge>,
    fed_by: Option<StageMetrics>,
}

/// The counters of one stage. Written by exactly one `Metered` stream.
struct Counters {
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
#[inline(always)]
fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section here is a push, a lookup or a read: none can leave the data
    // half-updated, so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// Nanoseconds spent in timed stages nested inside the timed poll running on this thread.
    static NESTED_NANOS: Cell<u64> = const { Cell::new(0) };
}

/// Runs one timed poll that started at `start` (read by the caller, who also uses it as the
/// start of the wait for an item); returns its result, the instant it ended, its total and its
/// self time (total minus the timed stages nested inside it, which report their totals through
/// `NESTED_NANOS`). Two clock reads per poll in all: the caller's `start` and the end here.
pub(crate) fn timed_poll<R>(start: Instant, f: impl FnOnce() -> R) -> (R, Instant, u64, u64) {
    let outer = NESTED_NANOS.with(|n| n.replace(0));
    let r = f();
    let end = Instant::now();
    let total = nanos(end.saturating_duration_since(start));
    let nested = NESTED_NANOS.with(|n| n.replace(outer.saturating_add(total)));
    (r, end, total, total.saturating_sub(nested))
}

/// A live, cloneable, read-only handle on one stage's counters.
///
/// Get it from [`Metered::metrics`](crate::wrappers::Metered::metrics), from a [`Metrics`]
/// registry's [`stages`](Metrics::stages), or make a counter-only stage with
/// [`Metrics::stage`]. It stays valid (and readable) after the stream is dropped.
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
        Self::new_fed(name, None)
    }

    /// A new stage whose `items_in` is `fed_by`'s item count (see [`fed_by`](Self::fed_by)).
    fn new_fed(name: String, fed_by: Option<StageMetrics>) -> Self {
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
                .then(|| cold.retries.iter().map(RetryStats::retries).sum()),
            fallbacks: (!cold.fallbacks.is_empty())
                .then(|| cold.fallbacks.iter().map(FallbackCounter::get).sum()),
            skipped: (!cold.skips.is_empty())
                .then(|| cold.skips.iter().map(SkipCounter::get).sum()),
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

    /// Adopts a [`Retry`] stream's live retry count: it shows in
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
    /// metrics.stage("fetch").track_retries(&s.stats());
    /// let _: Vec<_> = s.collect().await;
    /// assert_eq!(metrics.snapshot()[0].retries, Some(2));
    /// # }
    /// ```
    pub fn track_retries(&self, stats: &RetryStats) -> &Self {
        lock(&self.inner.cold).retries.push(stats.clone());
        self
    }

    /// Adopts a [`Supervise`] stream's live skip count ([`StageSnapshot::skipped`]).
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
    /// metrics.stage("parse").track_skips(&s.skip_counter());
    /// let _: Vec<_> = s.collect().await;
    /// assert_eq!(metrics.snapshot()[0].skipped, Some(1));
    /// # }
    /// ```
    pub fn track_skips(&self, counter: &SkipCounter) -> &Self {
        lock(&self.inner.cold).skips.push(counter.clone());
        self
    }

    /// Adopts a [`Recover`] stream's live fallback count ([`StageSnapshot::fallbacks`]).
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
    /// metrics.stage("primary").track_fallbacks(&s.fallback_counter());
    /// let _: Vec<_> = s.collect().await;
    /// assert_eq!(metrics.snapshot()[0].fallbacks, Some(1));
    /// # }
    /// ```
    pub fn track_fallbacks(&self, counter: &FallbackCounter) -> &Self {
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

    // --- writer side, used by `Metered` (through `Meter`) only ---

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

    fn downgrade(&self) -> Weak<Counters> {
        Arc::downgrade(&self.inner)
    }
}

/// The writer side of one stage's counters, owned by its `Metered` stream.
///
/// Each item (and each error, when counted) is a relaxed load and store of the shared
/// counter, which has this one writer: one `inc` on memory on x86-64, no locked
/// read-modify-write, and a snapshot is exact up to the last item yielded.
///
/// Everything that leaves this type's inline code takes the counters' heap address and plain
/// values, never `&self`, and cannot unwind (`extern "C"`: a panic inside aborts). The
/// stream lives in the consumer's frame; once its address escapes into a call — including
/// the drop a landing pad would run if a call unwound — LLVM keeps the whole pipeline's state
/// in memory. Measured under fat LTO (callgrind, `benches/RESULTS.md`): one metered stage
/// went from +40.5 instructions per item over the unmetered pipeline (an `Arc` and a
/// `tracing::Span` in every stage, no care for escapes) to +1.0.
pub(crate) struct Meter {
    // `Some` until dropped: `drop` moves the `Arc` out and releases it out of line. Per-poll
    // code reads it through `shared()`, which has no panic path (see `Metered::poll_next`).
    stage: Option<StageMetrics>,
}

impl Meter {
    pub(crate) fn new(stage: StageMetrics) -> Self {
        Meter { stage: Some(stage) }
    }

    /// The shared counters (what readers see).
    pub(crate) fn stage(&self) -> &StageMetrics {
        self.shared()
            .expect("the counters are taken only when the meter is dropped")
    }

    /// [`stage`](Self::stage) without a panic path (for the per-item code).
    #[inline(always)]
    pub(crate) fn shared(&self) -> Option<&StageMetrics> {
        self.stage.as_ref()
    }

    #[inline(always)]
    pub(crate) fn on_item(&self) {
        if let Some(stage) = &self.stage {
            bump(&stage.inner.items);
        }
    }

    #[inline(always)]
    pub(crate) fn on_error(&self) {
        if let Some(stage) = &self.stage {
            bump(&stage.inner.errors);
        }
    }

    /// A poll that returned `Pending`.
    #[inline(always)]
    pub(crate) fn on_pending(&self) {
        if let Some(stage) = &self.stage {
            pending(&stage.inner);
        }
    }

    /// A poll that returned `Ready(None)`.
    #[inline(always)]
    pub(crate) fn on_end(&self) {
        if let Some(stage) = &self.stage {
            ended(&stage.inner);
        }
    }
}

// `extern "C"` for one property only: a function with this ABI cannot unwind (a panic in it
// aborts), so calls to it need no landing pad. `pending` and `ended` cannot panic (atomics, and
// `Instant::elapsed`, which saturates); `release` runs the counters' destructor when it drops
// the last handle, which can only panic if a gauge closure's captured value panics in its own
// `Drop` — that aborts here instead of unwinding.

#[cold]
#[inline(never)]
extern "C" fn pending(counters: &Counters) {
    bump(&counters.pending);
}

#[cold]
#[inline(never)]
extern "C" fn ended(counters: &Counters) {
    counters.on_end();
}

/// Releases a dropped meter's counters (by value: the `Arc`'s pointer in a register, not the
/// address of the field that held it).
// Only ever called from Rust, so both sides of the call agree on how an `Arc` is passed;
// the lint is about C callers.
#[allow(improper_ctypes_definitions)]
#[cold]
#[inline(never)]
extern "C" fn release(stage: StageMetrics) {
    drop(stage);
}

impl Drop for Meter {
    #[inline]
    fn drop(&mut self) {
        if let Some(stage) = self.stage.take() {
            release(stage);
        }
    }
}

/// A cloneable, live count of the fallbacks a [`Recover`] stream switched to; see
/// [`Recover::fallback_counter`].
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let s = stream::iter([Err("down")])
///     .recover_with(|_, _: &Checkpoint<u8>| Some(stream::iter([Ok(7)])));
/// let fallbacks = s.fallback_counter();
/// assert_eq!(s.collect::<Vec<_>>().await, [Ok(7)]);
/// assert_eq!(fallbacks.get(), 1);
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct FallbackCounter {
    count: Arc<AtomicU64>,
}

impl FallbackCounter {
    /// How many fallbacks were switched to so far.
    ///
    /// ```
    /// use millrace::metrics::FallbackCounter;
    ///
    /// assert_eq!(FallbackCounter::default().get(), 0);
    /// ```
    pub fn get(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Adds one and returns the new count (error path of `Recover` only).
    pub(crate) fn bump(&self) -> u64 {
        self.count.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// A wrapper that keeps live event counters (retries, fallbacks, skipped errors) a
/// [`StageMetrics`] can adopt; used by [`Metered::with_events`](crate::wrappers::Metered::with_events).
///
/// Implemented by [`Retry`], [`Recover`] and [`Supervise`] (events), and by
/// [`Prefetch`](crate::wrappers::Prefetch), [`MapConcurrent`](crate::wrappers::MapConcurrent),
/// [`TryMapConcurrent`](crate::wrappers::TryMapConcurrent) and
/// [`MapConcurrentLocal`](crate::wrappers::MapConcurrentLocal) (in-flight and buffered
/// gauges); implement it for your own wrapper by calling the `track_*` methods of the stage.
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

impl<F, S, K, B, P> Observable for Retry<F, S, K, B, P>
where
    B: backon::BackoffBuilder + Clone,
{
    fn observe_into(&self, stage: &StageMetrics) {
        stage.track_retries(&self.stats());
    }
}

impl<S, F, S2, K> Observable for Recover<S, F, S2, K> {
    fn observe_into(&self, stage: &StageMetrics) {
        stage.track_fallbacks(&self.fallback_counter());
    }
}

impl<S, T, E> Observable for Supervise<S, T, E> {
    fn observe_into(&self, stage: &StageMetrics) {
        stage.track_skips(&self.skip_counter());
    }
}

/// One stage's counters at one moment, as plain values.
///
/// `#[non_exhaustive]`: later versions add fields; read the fields by name. An `Option` field
/// is `None` when the stage does not measure it (see the [module docs](self) for how to turn
/// each on).
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
/// let s = stream::iter(0..4).wrap(metrics.meter("numbers"));
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
