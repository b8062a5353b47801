//! The registry: one table of `name -> fn(n) -> u64` per module, joined here.
//!
//! A variant row says which measurement it belongs to ([`Group`]) and which target from
//! PERFORMANCE.md it must meet ([`Target`]); `scripts/bench.sh` reads both via `--list`.

/// Which measurement a variant takes part in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Group {
    /// `fn(n) -> u64` runs the 4-stage workload over `0..n`; counted by callgrind and timed.
    Pipeline,
    /// `fn(c) -> u64` runs `io::ITEMS` items each awaiting a real `io::SLEEP`, at concurrency `c`.
    Io,
    /// `fn(n) -> u64` streams `n` items through a 6-stage pipeline; peak RSS is measured.
    Memory,
}

impl Group {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Group::Pipeline => "pipeline",
            Group::Io => "io",
            Group::Memory => "memory",
        }
    }
}

/// A target from PERFORMANCE.md, evaluated by `scripts/bench.sh` against the same run.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    /// A baseline: measured and shown, nothing to meet.
    Anchor,
    /// instr/item ≤ `max` × instr/item of the variant `of`.
    Ratio { of: &'static str, max: f64 },
    /// instr/item ≤ instr/item of `of` + `extra`.
    Over { of: &'static str, extra: f64 },
    /// instr/item ≤ `max` (absolute).
    Instr { max: f64 },
    /// I/O: elapsed ≤ (1 + `pct`/100) × items × (measured single sleep) / c, for every c.
    IoWithin { pct: f64 },
    /// Memory: RSS at 10M items ≤ `max` × RSS at 1M items.
    RssRatio { max: f64 },
}

impl Target {
    /// The machine-readable form printed by `--list` (parsed by `scripts/bench.sh`).
    pub(crate) fn spec(self) -> String {
        match self {
            Target::Anchor => "anchor".into(),
            Target::Ratio { of, max } => format!("ratio:{of}:{max}"),
            Target::Over { of, extra } => format!("over:{of}:{extra}"),
            Target::Instr { max } => format!("instr:{max}"),
            Target::IoWithin { pct } => format!("io_within:{pct}"),
            Target::RssRatio { max } => format!("rss_ratio:{max}"),
        }
    }
}

/// One benchmark variant.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Variant {
    /// Unique within its group; the command-line name.
    pub(crate) name: &'static str,
    pub(crate) group: Group,
    /// Runs the workload once and returns its result (the sum), which the caller black-boxes.
    pub(crate) run: fn(u64) -> u64,
    pub(crate) target: Target,
}

impl Variant {
    /// A pipeline-workload row without a target.
    pub(crate) const fn anchor(name: &'static str, run: fn(u64) -> u64) -> Self {
        Variant {
            name,
            group: Group::Pipeline,
            run,
            target: Target::Anchor,
        }
    }
}

/// Every variant, in table order: baselines first, millrace last.
pub(crate) fn all() -> impl Iterator<Item = &'static Variant> {
    [
        crate::handwritten::VARIANTS,
        crate::combinators::VARIANTS,
        crate::async_stream::VARIANTS,
        crate::channels::VARIANTS,
        crate::buffered::VARIANTS,
        crate::io::VARIANTS,
        crate::memory::VARIANTS,
        crate::millrace::VARIANTS,
    ]
    .into_iter()
    .flatten()
}

/// A fresh single-threaded tokio runtime (time driver on, no I/O driver).
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("build a current_thread tokio runtime")
}
