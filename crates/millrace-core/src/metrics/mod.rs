//! Per-stage metrics readable live from a [`Metrics`] handle, exported as JSON or Prometheus
//! text, and summarised in a [`Report`].
//!
//! A [`Metered`](crate::wrappers::Metered) stage (built by
//! [`metered`](crate::PipelineExt::metered) or [`metered_in`](crate::PipelineExt::metered_in))
//! counts what passes through it into a [`StageMetrics`]: atomics behind an
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
//! handles the wrappers already keep ([`EventCounter`]s)
//! and reads them at snapshot time, so the wrappers' hot paths do not change at all.
//!
//! # Cost
//!
//! Each stage has exactly one writer (the stream, which `poll_next` borrows exclusively), so
//! counters are bumped with a relaxed load and store (one `inc` on memory on x86-64) rather
//! than a locked read-modify-write: a snapshot is exact up to the last item the stage
//! yielded, every counter only grows, and reading never slows the writer (no lock is shared).
//! `Pending` polls and the end are counted out of line. Timing and tracing are separate
//! layers ([`Timed`](crate::wrappers::Timed), [`Traced`](crate::wrappers::Traced)) that a
//! counting stage does not carry, because a clock read or a span per poll costs far more
//! than the counters (the measurements are in `benches/RESULTS.md`).
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

mod events;
mod export;
mod histogram;
mod registry;
mod report;
mod snapshot;
mod stage_metrics;

#[allow(deprecated)]
pub use self::events::FallbackCounter;
pub use self::events::{EventCounter, Observable};
pub use self::histogram::LatencySnapshot;
pub use self::registry::Metrics;
pub use self::report::Report;
pub use self::snapshot::StageSnapshot;
pub use self::stage_metrics::StageMetrics;
pub(crate) use self::stage_metrics::nanos;

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks one of the metrics' cold-path mutexes.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a push, a lookup or a read: none can leave the data
    // half-updated, so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
