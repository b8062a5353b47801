//! Real-clock accuracy of `rate_limit`: `cargo bench --bench rate_accuracy [SECONDS]`.
//!
//! For 100, 1,000, 10,000 and 100,000 items/s (default burst of 1), pulls ready items through
//! `rate_limit` on a current-thread tokio runtime for `SECONDS` (default 3) of real time and
//! prints, per rate, the delivered rate (items released in the run over its length) and the
//! most items released in any 1-second window `[t, t + 1 s)`, as a markdown table (the one in
//! `benches/RESULTS.md`). The targets: delivered within 2 % of the rate, and no window over
//! `rate + burst`. Exits 1 when one is missed.
//!
//! Not a test: it measures the real clock, so it belongs with the benchmarks, not in CI.

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use millrace::prelude::*;
use millrace_test_support::max_arrivals_within;

fn main() {
    // `cargo bench` passes `--bench`; the first number, if any, is the run length.
    let secs: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3.0);
    let run = Duration::from_secs_f64(secs.max(2.0));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    println!(
        "| rate (items/s) | run | delivered | delivered/s | vs rate | max in a 1-s window | limit (rate + burst) | met |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|:---:|");
    let mut all_met = true;
    for rate in [100u32, 1_000, 10_000, 100_000] {
        let times = runtime.block_on(async {
            let mut s = std::pin::pin!(stream::iter(0u64..).rate_limit(Rate::per_second(rate)));
            let start = Instant::now();
            let mut times = Vec::with_capacity((f64::from(rate) * secs * 1.1) as usize);
            while let Some(_item) = s.next().await {
                let at = start.elapsed();
                if at >= run {
                    break;
                }
                times.push(at);
            }
            times
        });
        let delivered = times.len();
        let per_sec = delivered as f64 / run.as_secs_f64();
        let off = per_sec / f64::from(rate) - 1.0;
        let window = max_arrivals_within(&times, Duration::from_secs(1));
        let limit = rate as usize + 1;
        let met = off.abs() <= 0.02 && window <= limit;
        all_met &= met;
        println!(
            "| {rate} | {:.1} s | {delivered} | {per_sec:.1} | {:+.2} % | {window} | {limit} | {} |",
            run.as_secs_f64(),
            off * 100.0,
            if met { "yes" } else { "**no**" }
        );
    }
    if !all_met {
        std::process::exit(1);
    }
}
