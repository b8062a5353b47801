//! Memory: `n` items through a 6-stage pipeline; `pipeline rss` prints the process's peak
//! RSS (`VmHWM` from `/proc/self/status`) after one run. Streaming must not grow with `n`;
//! collecting the source first does (8 bytes per item), as a control.

use std::future::ready;

use futures::executor::block_on;
use futures::stream::{self, Stream, StreamExt};

use crate::registry::{Group, Target, Variant};

pub(crate) const VARIANTS: &[Variant] = &[
    Variant {
        name: "stream6_combinators",
        group: Group::Memory,
        run: stream6_combinators,
        target: Target::Anchor,
    },
    Variant {
        name: "collect_then_stream6",
        group: Group::Memory,
        run: collect_then_stream6,
        target: Target::Anchor,
    },
];

/// Six futures combinators: the shape a millrace 6-wrapper pipeline is compared with.
pub(crate) fn six_stages<S: Stream<Item = u64>>(s: S) -> impl Stream<Item = u64> {
    s.map(|x| x * 3)
        .filter(|x| ready(x % 2 == 0))
        .map(|x| x + 1)
        .map(|x| x ^ 0x5555)
        .filter(|x| ready(x % 3 != 0))
        .map(|x| x / 2)
}

fn stream6_combinators(n: u64) -> u64 {
    block_on(fold_sum!(six_stages(stream::iter(0..n))))
}

fn collect_then_stream6(n: u64) -> u64 {
    let all: Vec<u64> = (0..n).collect();
    block_on(fold_sum!(six_stages(stream::iter(all))))
}

/// Peak resident set size of this process so far, in kB (`VmHWM`), or 0 if unavailable.
pub(crate) fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
