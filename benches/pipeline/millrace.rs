//! millrace variants: the rows whose targets PERFORMANCE.md sets. Add a variant here, and
//! only here: write `fn name(n: u64) -> u64` running the workload with millrace, add one
//! row to `VARIANTS` with its `Target`, and `scripts/bench.sh` measures and judges it.
//!
//! Helpers to reuse: the sink `fold_sum!(stream)` (a macro so that every variant gets its own
//! monomorphized loop; never wrap it in a shared generic fn), `crate::handwritten::{stages,
//! sum}`, `crate::combinators::{stages, result_source, result_stages}`,
//! `crate::memory::six_stages`, `crate::io::{work, ITEMS}`, `crate::registry::runtime()`.
//! Drive a row with the same executor as the anchor it is compared with.

// Added 2026-11-22 (perf): stream_stage, pipeline_macro, stream_stage_general, metered.
// (stream6_millrace has 6 wrappers on `main`; map_concurrent / metered could be swapped in for
// a wider mix.)
//
// `rate_limit(r)` (r·10 ± 1 items over 10 s of paused time, never more than the burst in any
// instant) is a correctness property measured in paused time: it belongs in
// tests/rate_limit.rs, not in this instruction/wall-clock harness.

use std::time::Duration;

use futures::executor::block_on;
use futures::stream::{self, Stream};
use millrace::prelude::*;

use crate::combinators::{BenchError, result_source, result_stages, stages};
use crate::registry::{Target, Variant, runtime};

/// millrace rows.
pub(crate) const VARIANTS: &[Variant] = &[
    // Macros (issue 3): the fast path against hand-written structs, the DSL against the same
    // calls by hand, the general path against unboxed async-stream doing the same.
    pipeline(
        "stream_stage",
        stream_stage,
        Target::Ratio {
            of: "handwritten",
            max: 1.5,
        },
    ),
    pipeline(
        "pipeline_macro",
        pipeline_macro,
        Target::Ratio {
            of: "combinators_fold",
            max: 1.1,
        },
    ),
    // `pipeline!`'s default automatic metering (issue 6): 4 metered stages, ≤ 10 each.
    pipeline(
        "pipeline_macro_metered",
        pipeline_macro_metered,
        Target::Over {
            of: "combinators_fold",
            extra: 40.0,
        },
    ),
    pipeline(
        "stream_stage_general",
        stream_stage_general,
        Target::Ratio {
            of: "async_stream_await",
            max: 1.3,
        },
    ),
    // Observability (issue 6): one `metered` stage, nobody reading the counters.
    pipeline(
        "metered",
        metered,
        Target::Over {
            of: "combinators_fold",
            extra: 10.0,
        },
    ),
    // One metered stage in the middle (after the first `map`) and at the end: under fat LTO
    // the cost depends on where the counter sits (see RESULTS.md: directly on the source, in
    // front of `filter`, LLVM stops threading the loop — a hand-written counter too).
    pipeline(
        "metered_mid",
        metered_mid,
        Target::Over {
            of: "combinators_fold",
            extra: 10.0,
        },
    ),
    pipeline(
        "metered_last",
        metered_last,
        Target::Over {
            of: "combinators_fold",
            extra: 10.0,
        },
    ),
    // The same stage counting the `Err` items of a `Result` stream (none on this path),
    // against the unmetered `Result` pipeline.
    pipeline(
        "metered_count_errors",
        metered_count_errors,
        Target::Over {
            of: "result_bare",
            extra: 10.0,
        },
    ),
    // Positions (issue 11): the same 3 stages on a tracked stream (each item's position beside
    // it, filtered items kept as counted markers, reads counted): ≤ 5 instr/item per stage.
    pipeline(
        "positions_tracked",
        positions_tracked,
        Target::Over {
            of: "combinators_fold",
            extra: 15.0,
        },
    ),
    // The same, batched by 1,000 into `TrackedBatch`es (each with its commit position), summed
    // per batch, against `combinators_fold` + `chunks(1000)`: no target, shows the batch cost.
    Variant::anchor("chunks_1000", chunks_1000),
    Variant::anchor("positions_tracked_batch", positions_tracked_batch),
    // `.traced()` with no subscriber: opt-in, no target; shows what the span path costs.
    Variant::anchor("metered_traced", metered_traced),
    // Landed on `main` (flow and error wrappers, 2026-11-22):
    pipeline("prefetch", prefetch, Target::Instr { max: 40.0 }),
    pipeline("retry_ok", retry_ok, bare()),
    pipeline("recover_ok", recover_ok, bare()),
    pipeline("on_error_ok", on_error_ok, bare()),
    pipeline("retry_ok_tokio", retry_ok_tokio, bare_tokio()),
    pipeline("recover_ok_tokio", recover_ok_tokio, bare_tokio()),
    pipeline("on_error_ok_tokio", on_error_ok_tokio, bare_tokio()),
    // Concurrency wrappers (landed 2026-11-22):
    pipeline(
        "map_concurrent_ready",
        map_concurrent_ready,
        Target::Ratio {
            of: "buffered16_tokio",
            max: 0.5,
        },
    ),
    // Local (unspawned) mode, same executor as `buffered16`; no target of its own in
    // PERFORMANCE.md, shown for comparison.
    pipeline(
        "map_concurrent_local_ready",
        map_concurrent_local_ready,
        Target::Anchor,
    ),
    Variant {
        name: "map_concurrent",
        group: crate::registry::Group::Io,
        run: map_concurrent_io,
        target: Target::IoWithin { pct: 5.0 },
    },
    Variant {
        name: "stream6_millrace",
        group: crate::registry::Group::Memory,
        run: stream6_millrace,
        target: Target::RssRatio { max: 1.1 },
    }, // Fan-out and keyed concurrency (issue 13). `broadcast(2)`: each of the two branches runs
    // the 3 stages and a fold, so instr/item counts two branches; "≤ 2× prefetch per item per
    // branch" is ≤ 4× the `prefetch` row for the whole run.
    pipeline(
        "broadcast2",
        broadcast2,
        Target::Ratio {
            of: "prefetch",
            max: 4.0,
        },
    ),
    Variant {
        name: "map_concurrent_by_key",
        group: crate::registry::Group::Io,
        run: map_concurrent_by_key_io,
        target: Target::IoWithin { pct: 5.0 },
    },
];

const fn pipeline(name: &'static str, run: fn(u64) -> u64, target: Target) -> Variant {
    Variant {
        name,
        group: crate::registry::Group::Pipeline,
        run,
        target,
    }
}

/// "retry/recover/supervise on the no-error path: ≤ 5 instr/item each over the bare stream".
const fn over(bare: &'static str) -> Target {
    Target::Over {
        of: bare,
        extra: 5.0,
    }
}

/// [`over`] the `futures::executor::block_on` anchor.
const fn bare() -> Target {
    over("result_bare")
}

/// [`over`] the tokio `current_thread` anchor.
const fn bare_tokio() -> Target {
    over("result_bare_tokio")
}

// --- `#[stream_stage]` fast path: each body one `#[for_await]` loop, no other await. ---

#[stream_stage(item = u64)]
async fn triple(numbers: impl Stream<Item = u64> + Send) {
    #[for_await]
    for x in numbers {
        yield_!(x * 3);
    }
}

#[stream_stage(item = u64)]
async fn even(numbers: impl Stream<Item = u64> + Send) {
    #[for_await]
    for x in numbers {
        if x % 2 == 0 {
            yield_!(x);
        }
    }
}

#[stream_stage(item = u64)]
async fn plus_one(numbers: impl Stream<Item = u64> + Send) {
    #[for_await]
    for x in numbers {
        yield_!(x + 1);
    }
}

/// The 3 stages as fast-path `#[stream_stage]` structs; same executor as `handwritten`.
fn stream_stage(n: u64) -> u64 {
    block_on(fold_sum!(plus_one(even(triple(stream::iter(0..n))))))
}

/// `combinators_fold` written with `pipeline!` and `metrics = off;`: must expand to the same
/// calls (the DSL adds nothing). `pipeline_macro_metered` is the default, every stage metered.
fn pipeline_macro(n: u64) -> u64 {
    use futures::StreamExt as _;
    use std::future::ready;
    let s = pipeline! {
        metrics = off;
        stream::iter(0..n)
        => .map(|x| x * 3)
        => .filter(|x| ready(x % 2 == 0))
        => .map(|x| x + 1)
    };
    block_on(fold_sum!(s))
}

/// The same with the default automatic metering of all four stages (source included) into a
/// private registry: the cost of `pipeline!`'s observability.
fn pipeline_macro_metered(n: u64) -> u64 {
    use futures::StreamExt as _;
    use std::future::ready;
    let metrics = millrace::Metrics::new();
    let s = pipeline! {
        metrics = &metrics;
        stream::iter(0..n)
        => .map(|x| x * 3)
        => .filter(|x| ready(x % 2 == 0))
        => .map(|x| x + 1)
    };
    block_on(fold_sum!(s))
}

// --- `#[stream_stage]` general path: the body of `async_stream::awaiting` (one ready
// `.await` per item besides the upstream, the step passed as a `fn` pointer), so the only
// difference from `async_stream_await` is the macro's lowering. ---

#[stream_stage(item = u64)]
async fn awaiting(numbers: impl Stream<Item = u64> + Send, f: fn(u64) -> Option<u64>) {
    #[for_await]
    for x in numbers {
        if let Some(y) = std::future::ready(f(x)).await {
            yield_!(y);
        }
    }
}

/// `async_stream_await` with `#[stream_stage]` stages (general path, boxed once per stream).
fn stream_stage_general(n: u64) -> u64 {
    let s = awaiting(stream::iter(0..n), |x| Some(x * 3));
    let s = awaiting(s, |x| (x % 2 == 0).then_some(x));
    let s = awaiting(s, |x| Some(x + 1));
    block_on(fold_sum!(s))
}

/// `combinators_fold` with one `metered` stage right after the source (so it counts every
/// item, not only the half that passes the filter); nobody reads the counters.
fn metered(n: u64) -> u64 {
    block_on(fold_sum!(stages(stream::iter(0..n).metered("source"))))
}

/// `combinators_fold` with one `metered` stage between `map(x * 3)` and `filter`.
fn metered_mid(n: u64) -> u64 {
    use futures::StreamExt as _;
    use std::future::ready;
    let s = stream::iter(0..n)
        .map(|x| x * 3)
        .metered("mid")
        .filter(|x| ready(x % 2 == 0))
        .map(|x| x + 1);
    block_on(fold_sum!(s))
}

/// `combinators_fold` with one `metered` stage after the last `map` (it sees half the items).
fn metered_last(n: u64) -> u64 {
    block_on(fold_sum!(stages(stream::iter(0..n)).metered("last")))
}

/// `result_bare` with one `metered(..).count_errors()` stage right after the source.
fn metered_count_errors(n: u64) -> u64 {
    block_on(fold_sum!(result_stages(
        result_source(n).metered("source").count_errors()
    )))
}

/// `combinators_fold`'s stages on a tracked stream: positions 0..n beside the items, `filter`
/// turning odd values into `Filtered` markers; the sink sums the items.
fn positions_tracked(n: u64) -> u64 {
    use millrace::positions::{self, Entry};
    let s = positions::track(stream::iter((0..n).map(|x| (x, x))))
        .map(|x| x * 3)
        .filter(|x| x % 2 == 0)
        .map(|x| x + 1);
    block_on(futures::StreamExt::fold(s, 0u64, |acc, p| {
        std::future::ready(match p.entry {
            Entry::Item(x) => acc + x,
            _ => acc,
        })
    }))
}

/// `combinators_fold`'s stages, then `chunks(1000)`, summed per chunk.
fn chunks_1000(n: u64) -> u64 {
    use futures::StreamExt as _;
    let s = stages(stream::iter(0..n)).chunks(1000);
    block_on(s.fold(0u64, |acc, chunk| {
        std::future::ready(acc + chunk.iter().sum::<u64>())
    }))
}

/// `positions_tracked`, then `batch(1000)` into `TrackedBatch`es, summed per batch.
fn positions_tracked_batch(n: u64) -> u64 {
    use millrace::positions;
    let s = positions::track(stream::iter((0..n).map(|x| (x, x))))
        .map(|x| x * 3)
        .filter(|x| x % 2 == 0)
        .map(|x| x + 1)
        .batch(1000);
    block_on(futures::StreamExt::fold(s, 0u64, |acc, batch| {
        std::future::ready(acc + batch.items().iter().sum::<u64>())
    }))
}

/// `metered` with `.traced()` and no tracing subscriber installed.
fn metered_traced(n: u64) -> u64 {
    block_on(fold_sum!(stages(
        stream::iter(0..n).metered("source").traced()
    )))
}

/// Buffer size of the `prefetch` row: as big as the `mpsc(1024)` anchor's channel.
const PREFETCH_CAPACITY: usize = 1024;

/// `0..n → prefetch(1024)` (producer on its own task) `→` the 3 stages `→ fold`.
fn prefetch(n: u64) -> u64 {
    runtime().block_on(fold_sum!(stages(
        stream::iter(0..n).prefetch(PREFETCH_CAPACITY),
    )))
}

// The no-error rows run twice: on `futures::executor::block_on` like `result_bare`, and on a
// tokio `current_thread` runtime like `result_bare_tokio`. The executor changes how LLVM
// inlines the whole pipeline future (result_bare: 7 vs 19.5 instr/item), and a wrapper's
// overhead moves with it, so a wrapper meets "≤ 5 over the bare stream" only if it does so
// under both. Without an error none of these wrappers touches tokio.

/// `restartable(..).retry(..)` around the `Ok`-only source; no error, so no re-open, no sleep.
fn retry_stream(n: u64) -> impl Stream<Item = Result<u64, BenchError>> {
    restartable(move |cp: &Checkpoint<u64>| ok_from(cp.delivered, n))
        .retry(RetryPolicy::fixed(Duration::from_millis(10), 3))
}

/// `recover_with` whose fallback is never needed.
fn recover_stream(n: u64) -> impl Stream<Item = Result<u64, BenchError>> {
    result_source(n).recover_with(|_: &BenchError, _: &Checkpoint<u64>| None::<Never>)
}

/// `on_error(Supervision::Resume)` over a stream that never fails.
fn on_error_stream(n: u64) -> impl Stream<Item = Result<u64, BenchError>> {
    result_source(n).on_error(Supervision::Resume)
}

fn retry_ok(n: u64) -> u64 {
    block_on(fold_sum!(result_stages(retry_stream(n))))
}

fn recover_ok(n: u64) -> u64 {
    block_on(fold_sum!(result_stages(recover_stream(n))))
}

fn on_error_ok(n: u64) -> u64 {
    block_on(fold_sum!(result_stages(on_error_stream(n))))
}

fn retry_ok_tokio(n: u64) -> u64 {
    runtime().block_on(fold_sum!(result_stages(retry_stream(n))))
}

fn recover_ok_tokio(n: u64) -> u64 {
    runtime().block_on(fold_sum!(result_stages(recover_stream(n))))
}

fn on_error_ok_tokio(n: u64) -> u64 {
    runtime().block_on(fold_sum!(result_stages(on_error_stream(n))))
}

/// The `Ok` source resumed after `from` delivered items.
fn ok_from(from: u64, n: u64) -> impl Stream<Item = Result<u64, BenchError>> {
    use futures::StreamExt as _;
    stream::iter(from..n).map(Ok)
}

/// The (never built) fallback type of `recover_ok`.
type Never = stream::Empty<Result<u64, BenchError>>;

/// Memory row: `n` items through 6 millrace wrappers (prefetch, stop_on, batch, recover_with,
/// on_error, idle_timeout; plus futures' flatten/map between them). Peak RSS must not grow
/// with `n`.
fn stream6_millrace(n: u64) -> u64 {
    use futures::StreamExt as _;
    runtime().block_on(async move {
        let token = CancellationToken::new();
        let s = stream::iter(0..n)
            .prefetch(PREFETCH_CAPACITY)
            .stop_on(token.clone())
            .batch(256)
            .flat_map(stream::iter)
            .map(Ok::<u64, BenchError>)
            .recover_with(|_: &BenchError, _: &Checkpoint<u64>| None::<Never>)
            .on_error(Supervision::Resume)
            .idle_timeout(Duration::from_secs(3600))
            .map(|r| match r {
                Ok(Ok(x)) => x,
                Ok(Err(e)) => panic!("{e}"),
                Err(e) => panic!("{e}"),
            });
        fold_sum!(s).await
    })
}

/// Concurrency of the ready-future rows: as `buffered16`.
const CONCURRENCY: usize = 16;

/// `map_concurrent(16, |x| ready(x * 3))` (spawned mode) in place of `buffered16`'s first stage.
fn map_concurrent_ready(n: u64) -> u64 {
    use futures::StreamExt as _;
    let s = stream::iter(0..n)
        .map_concurrent(CONCURRENCY, |x| std::future::ready(x * 3))
        .filter(|x| std::future::ready(x % 2 == 0))
        .map(|x| x + 1);
    runtime().block_on(fold_sum!(s))
}

/// `map_concurrent_local(16, ..)`: the futures stay in the stage, like `buffered16`.
fn map_concurrent_local_ready(n: u64) -> u64 {
    use futures::StreamExt as _;
    let s = stream::iter(0..n)
        .map_concurrent_local(CONCURRENCY, |x| std::future::ready(x * 3))
        .filter(|x| std::future::ready(x % 2 == 0))
        .map(|x| x + 1);
    block_on(fold_sum!(s))
}

/// I/O row: `ITEMS` items each awaiting `io::work` (a real 10 ms sleep), `c` at a time.
fn map_concurrent_io(c: u64) -> u64 {
    runtime().block_on(fold_sum!(
        stream::iter(0..crate::io::ITEMS).map_concurrent(c as usize, crate::io::work)
    ))
}

/// Shared buffer of the `broadcast2` row: as big as the `prefetch` row's.
const BROADCAST_CAPACITY: usize = 1024;

/// `0..n → broadcast(2)`, each branch `→` the 3 stages `→ fold`, both folds joined on one
/// tokio `current_thread` task (like the `prefetch` row's executor); returns branch 0's sum
/// after checking branch 1 got the same.
fn broadcast2(n: u64) -> u64 {
    let [a, b] = <[_; 2]>::try_from(
        millrace::wrappers::Broadcast::split(stream::iter(0..n), 2, BROADCAST_CAPACITY)
            .expect("valid config"),
    )
    .expect("two branches");
    let (x, y) = runtime()
        .block_on(async move { futures::join!(fold_sum!(stages(a)), fold_sum!(stages(b))) });
    assert_eq!(x, y, "both branches see every item");
    x
}

/// Keys of the keyed I/O row.
const KEYS: u64 = 100;

/// I/O row: `map_concurrent_by_key(c, x % 100, work)`: per key in order, 100 keys.
fn map_concurrent_by_key_io(c: u64) -> u64 {
    runtime().block_on(fold_sum!(
        stream::iter(0..crate::io::ITEMS).map_concurrent_by_key(
            c as usize,
            |x| x % KEYS,
            crate::io::work
        )
    ))
}
