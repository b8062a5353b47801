//! I/O-bound: `ITEMS` items each awaiting a real `tokio::time::sleep(SLEEP)`, at concurrency
//! `c`, on a `current_thread` runtime. Wall-clock only: the elapsed time is compared with
//! `ITEMS × (single sleep measured in the same process) / c`.

use std::time::{Duration, Instant};

use futures::future::ready;
use futures::stream::{self, StreamExt};

use crate::registry::{Group, Target, Variant, runtime};

pub(crate) const VARIANTS: &[Variant] = &[Variant {
    name: "buffer_unordered",
    group: Group::Io,
    run: buffer_unordered,
    target: Target::Anchor,
}];

/// Items per run.
pub(crate) const ITEMS: u64 = 1_000;
/// What each item awaits.
pub(crate) const SLEEP: Duration = Duration::from_millis(10);
/// Sequential single sleeps measured before the workload; the median is "the single sleep".
const PROBES: usize = 21;

/// The work one item does: a real timer wait, then its value.
pub(crate) async fn work(x: u64) -> u64 {
    tokio::time::sleep(SLEEP).await;
    x
}

fn buffer_unordered(c: u64) -> u64 {
    runtime().block_on(
        stream::iter(0..ITEMS)
            .map(work)
            .buffer_unordered(c as usize)
            .fold(0, |a, x| ready(a + x)),
    )
}

/// Measures one single sleep (median of `PROBES`) and then the variant at concurrency `c`, in
/// this process, and prints both with the ideal `ITEMS × sleep / c`.
pub(crate) fn measure(v: &Variant, c: usize) {
    let mut probes: Vec<Duration> = runtime().block_on(async {
        let mut out = Vec::with_capacity(PROBES);
        for _ in 0..PROBES {
            let t = Instant::now();
            tokio::time::sleep(SLEEP).await;
            out.push(t.elapsed());
        }
        out
    });
    probes.sort();
    let single = probes[PROBES / 2];
    let t = Instant::now();
    let out = std::hint::black_box((v.run)(c as u64));
    let elapsed = t.elapsed();
    assert_eq!(
        out,
        ITEMS * (ITEMS - 1) / 2,
        "{} lost or duplicated items",
        v.name
    );
    let ideal = single.as_secs_f64() * ITEMS as f64 / c as f64;
    println!(
        "single_sleep_ms={:.3} single_min_ms={:.3} single_max_ms={:.3} elapsed_ms={:.3} ideal_ms={:.3} over_pct={:.2}",
        single.as_secs_f64() * 1e3,
        probes[0].as_secs_f64() * 1e3,
        probes[PROBES - 1].as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e3,
        ideal * 1e3,
        (elapsed.as_secs_f64() / ideal - 1.0) * 100.0,
    );
}
