//! millrace variants: the rows whose targets PERFORMANCE.md sets. Add a variant here, and
//! only here: write `fn name(n: u64) -> u64` running the workload with millrace, add one
//! row to `VARIANTS` with its `Target`, and `scripts/bench.sh` measures and judges it.
//!
//! Helpers to reuse: `crate::handwritten::{stages, sum}`, `crate::combinators::{stages,
//! fold_sum, result_source, result_stages_sum}`, `crate::memory::six_stages`,
//! `crate::io::{work, ITEMS}`, `crate::registry::runtime()`.

// STILL TO ADD when the APIs land on `main` (none of them is on `main` yet, 2026-11-22).
// name                  group     what it runs                                  -> target row
//
// stream_stage          Pipeline  the 3 stages as `#[stream_stage]` fns whose bodies are one
//                                 `#[for_await]` loop, summed with `handwritten::sum`
//                                 -> Target::Ratio { of: "handwritten", max: 1.5 }
// pipeline_macro        Pipeline  `pipeline! { stream::iter(0..n) => .map(..) => .filter(..)
//                                 => .map(..) }` then `fold_sum`
//                                 -> Target::Ratio { of: "combinators_fold", max: 1.1 }
// stream_stage_general  Pipeline  `#[stream_stage]` bodies doing the same per-item
//                                 `ready(..).await` as `async_stream_await`
//                                 -> Target::Ratio { of: "async_stream_await", max: 1.3 }
// prefetch              Pipeline  `stream::iter(0..n).prefetch(1024)` then the 3 stages, inside
//                                 `runtime().block_on(..)` -> Target::Instr { max: 40.0 }
//                                 (≤ 0.2 × mpsc_per_item: compare the instr/item column)
// map_concurrent_ready  Pipeline  `.map_concurrent(16, |x| ready(x * 3))` in place of
//                                 buffered16's first stage
//                                 -> Target::Ratio { of: "buffered16", max: 0.5 }
// retry_ok              Pipeline  `restartable(|_| result_source(n)).retry(policy)` then
//                                 `result_stages_sum` -> Target::Over { of: "result_bare", extra: 5.0 }
// recover_ok            Pipeline  `result_source(n).recover_with(|_, _| None)` then
//                                 `result_stages_sum` -> Target::Over { of: "result_bare", extra: 5.0 }
// on_error_ok           Pipeline  `result_source(n).on_error(Supervision::Resume)` then
//                                 `result_stages_sum` -> Target::Over { of: "result_bare", extra: 5.0 }
// map_concurrent        Io        `stream::iter(0..ITEMS).map_concurrent(c, io::work)` summed
//                                 (the fn gets `c` as its argument) -> Target::IoWithin { pct: 5.0 }
// stream6_millrace      Memory    6 millrace wrappers around `stream::iter(0..n)` (e.g. prefetch,
//                                 batch + flatten, validate, on_error, map_concurrent, metered)
//                                 -> Target::RssRatio { max: 1.1 }
//
// `rate_limit(r)` (r·10 ± 1 items over 10 s of paused time, never more than the burst in any
// instant) is a correctness property measured in paused time: it belongs in
// tests/rate_limit.rs, not in this instruction/wall-clock harness.

use crate::registry::Variant;

/// millrace rows; see the list above for what is still to add.
pub(crate) const VARIANTS: &[Variant] = &[];
