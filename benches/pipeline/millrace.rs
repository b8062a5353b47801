//! millrace variants: the rows whose targets PERFORMANCE.md sets. Add a variant here, and
//! only here: write `fn name(n: u64) -> u64` running the workload with millrace, add one
//! row to `VARIANTS` with its `Target`, and `scripts/bench.sh` measures and judges it.
//!
//! Helpers to reuse: `crate::handwritten::{stages, sum}`, `crate::combinators::{stages,
//! fold_sum, result_source, result_stages_sum}`, `crate::memory::six_stages`,
//! `crate::io::{work, ITEMS}`, `crate::registry::runtime()`.
//!
//! STILL TO ADD when the APIs land on `main` (none of them is on `main` yet, 2026-11-22).
//! Each line: name, group, what it runs, target row to add.
//!
//! - `stream_stage`          pipeline  the 3 stages as `#[stream_stage]` fns whose bodies are one
//!                                     `#[for_await]` loop, summed with `handwritten::sum`
//!                                     -> `Target::Ratio { of: "handwritten", max: 1.5 }`
//! - `pipeline_macro`        pipeline  `pipeline! { stream::iter(0..n) => .map(..) => .filter(..)
//!                                     => .map(..) }` + `fold_sum`
//!                                     -> `Target::Ratio { of: "combinators_fold", max: 1.1 }`
//! - `stream_stage_general`  pipeline  `#[stream_stage]` bodies doing the same per-item
//!                                     `ready(..).await` as `async_stream_await`
//!                                     -> `Target::Ratio { of: "async_stream_await", max: 1.3 }`
//! - `prefetch`              pipeline  `stream::iter(0..n).prefetch(1024)` then the 3 stages, on
//!                                     `runtime()` -> `Target::Instr { max: 40.0 }`
//!                                     (and ≤ 0.2 × `mpsc_per_item`, shown by the ratio column)
//! - `map_concurrent_ready`  pipeline  `.map_concurrent(16, |x| ready(x * 3))` in place of
//!                                     `buffered16`'s first stage
//!                                     -> `Target::Ratio { of: "buffered16", max: 0.5 }`
//! - `retry_ok`              pipeline  `restartable(|_| result_source(n)).retry(policy)` then
//!                                     `result_stages_sum` -> `Target::Over { of: "result_bare", extra: 5.0 }`
//! - `recover_ok`            pipeline  `result_source(n).recover_with(|_, _| None)` ...
//!                                     -> `Target::Over { of: "result_bare", extra: 5.0 }`
//! - `on_error_ok`           pipeline  `result_source(n).on_error(Supervision::Resume)` ...
//!                                     -> `Target::Over { of: "result_bare", extra: 5.0 }`
//! - `map_concurrent`        io        `stream::iter(0..ITEMS).map_concurrent(c, work)` summed
//!                                     -> `Target::IoWithin { pct: 5.0 }`
//! - `stream6_millrace`      memory    6 millrace wrappers (e.g. prefetch, batch+flatten,
//!                                     on_error, validate, map_concurrent, rate_limit at a high
//!                                     rate) -> `Target::RssRatio { max: 1.1 }`
//! - `rate_limit` (r·10 ± 1 items over 10 s of paused time) is a correctness property of the
//!   wrapper: it belongs in `tests/rate_limit.rs`, not in this wall-clock/instruction harness.

use crate::registry::Variant;

pub(crate) const VARIANTS: &[Variant] = &[];
