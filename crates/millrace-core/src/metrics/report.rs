//! [`Report`]: the end-of-run per-stage table.

use std::fmt;
use std::time::Duration;

use super::StageSnapshot;

/// A per-stage table: items, errors, retries, skipped errors, fallbacks, p50/p99 latency and
/// share of time; made by [`Metrics::report`](crate::Metrics::report), printed with `{}`.
///
/// A cell shows `-` when the stage does not measure it (errors need
/// [`count_errors`](crate::wrappers::Metered::count_errors), retries & co.
/// [`with_events`](crate::wrappers::Metered::with_events), latency and time
/// [`with_timing`](crate::wrappers::Metered::with_timing)). The share of time is each timed
/// stage's [`self_busy`](StageSnapshot::self_busy) over the sum of them: the slowest stage
/// has the largest share.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::Metrics;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let metrics = Metrics::new();
/// let _: Vec<Result<i32, &str>> = stream::iter([Ok(1), Err("bad"), Ok(3)])
///     .metered_in(&metrics, "parse")
///     .count_errors()
///     .collect()
///     .await;
/// let report = metrics.report();
/// assert_eq!(
///     report.to_string(),
///     "stage  items  errors  retries  skipped  fallbacks  p50  p99  time\n\
///      parse      3       1        -        -          -    -    -     -\n"
/// );
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    stages: Vec<StageSnapshot>,
}

impl Report {
    /// A report of these snapshots.
    ///
    /// ```
    /// use millrace::Metrics;
    /// use millrace::metrics::Report;
    ///
    /// let metrics = Metrics::new();
    /// metrics.stage("idle");
    /// let report = Report::new(metrics.snapshot());
    /// assert_eq!(report.stages().len(), 1);
    /// ```
    pub fn new(stages: Vec<StageSnapshot>) -> Self {
        Report { stages }
    }

    /// The snapshots in the table, in registration order.
    ///
    /// ```
    /// use millrace::Metrics;
    ///
    /// let metrics = Metrics::new();
    /// metrics.stage("idle");
    /// assert_eq!(metrics.report().stages()[0].name, "idle");
    /// ```
    pub fn stages(&self) -> &[StageSnapshot] {
        &self.stages
    }

    /// The timed stage with the largest own time ([`StageSnapshot::self_busy`]), if any
    /// stage is timed.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Metrics;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let metrics = Metrics::new();
    /// let _: Vec<u64> = stream::iter(0..200u64)
    ///     .metered_in(&metrics, "cheap")
    ///     .with_timing()
    ///     .map(|x| (0..20_000u64).fold(x, |a, b| std::hint::black_box(a ^ b)))
    ///     .metered_in(&metrics, "expensive")
    ///     .with_timing()
    ///     .collect()
    ///     .await;
    /// assert_eq!(metrics.report().slowest().unwrap().name, "expensive");
    /// # }
    /// ```
    pub fn slowest(&self) -> Option<&StageSnapshot> {
        self.stages
            .iter()
            .filter(|s| s.self_busy.is_some())
            .max_by_key(|s| s.self_busy)
    }
}

/// `1.2ms`-style short durations for tables.
pub(crate) fn short(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}µs", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.1}ms", ns as f64 / 1e6)
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEAD: [&str; 9] = [
            "stage",
            "items",
            "errors",
            "retries",
            "skipped",
            "fallbacks",
            "p50",
            "p99",
            "time",
        ];
        let total: Duration = self.stages.iter().filter_map(|s| s.self_busy).sum();
        let rows: Vec<[String; 9]> = self
            .stages
            .iter()
            .map(|s| {
                let share = match s.self_busy {
                    Some(b) if !total.is_zero() => {
                        format!("{:.1}%", 100.0 * b.as_secs_f64() / total.as_secs_f64())
                    }
                    Some(_) => "0.0%".to_owned(),
                    None => "-".to_owned(),
                };
                let latency = |q: fn(&super::LatencySnapshot) -> Duration| {
                    s.latency
                        .filter(|l| l.count > 0)
                        .map_or_else(|| "-".to_owned(), |l| short(q(&l)))
                };
                [
                    s.name.clone(),
                    s.items.to_string(),
                    opt(s.errors),
                    opt(s.retries),
                    opt(s.skipped),
                    opt(s.fallbacks),
                    latency(|l| l.p50),
                    latency(|l| l.p99),
                    share,
                ]
            })
            .collect();
        let mut widths = HEAD.map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: [&str; 9]| -> fmt::Result {
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i == 0 {
                    write!(f, "{cell:<w$}")?;
                } else {
                    write!(f, "  {cell:>w$}")?;
                }
            }
            writeln!(f)
        };
        line(f, HEAD)?;
        for row in &rows {
            line(f, row.each_ref().map(String::as_str))?;
        }
        Ok(())
    }
}
