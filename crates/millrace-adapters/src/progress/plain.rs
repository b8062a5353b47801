//! [`PlainRender`]: the dashboard as plain text lines, for logs and tests.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use millrace_core::StageSnapshot;

const BAR: usize = 20;

/// Renders dashboard frames as plain lines, one per stage, into any [`Write`]: what the
/// dashboard prints when stdout is not a terminal, exact and testable.
///
/// A line reads `<time> <stage> <items> items <rate>/s`, then `[bar] pct%` when the stage's
/// total is known, then `errors=`, `retries=`, `skipped=`, `fallbacks=`, `in_flight=` and
/// `buffered=` for what the stage measures, and `done` once it ended. The rate is the items
/// since the previous frame over the time since it (over the whole time for the first frame).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::Metrics;
/// use millrace::adapters::progress::PlainRender;
/// use futures::{stream, StreamExt};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let metrics = Metrics::new();
/// let _: Vec<Result<u32, &str>> = stream::iter([Ok(1), Err("bad"), Ok(3), Ok(4)])
///     .metered_in(&metrics, "rows")
///     .count_errors()
///     .collect()
///     .await;
/// let mut out = Vec::new();
/// PlainRender::new().render(&mut out, Duration::from_secs(2), &metrics.snapshot()).unwrap();
/// assert_eq!(
///     String::from_utf8(out).unwrap(),
///     "   2.0s rows 4 items 2.0/s [####################] 100% errors=1 done\n"
/// );
/// # }
/// ```
#[derive(Debug, Default, Clone)]
pub struct PlainRender {
    prev: Vec<(String, u64)>,
    prev_at: Option<Duration>,
}

impl PlainRender {
    /// A renderer that has drawn nothing yet.
    ///
    /// ```
    /// use millrace::adapters::progress::PlainRender;
    ///
    /// let _render = PlainRender::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Items per second of each stage since the previous call (or since time 0), and
    /// remembers this frame for the next.
    pub(crate) fn rates(&mut self, at: Duration, stages: &[StageSnapshot]) -> Vec<f64> {
        let since = at.saturating_sub(self.prev_at.unwrap_or(Duration::ZERO));
        let secs = since.as_secs_f64();
        let rates = stages
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let before = match self.prev.get(i) {
                    Some((name, n)) if *name == s.name => *n,
                    _ => 0,
                };
                if secs > 0.0 {
                    s.items.saturating_sub(before) as f64 / secs
                } else {
                    0.0
                }
            })
            .collect();
        self.prev = stages.iter().map(|s| (s.name.clone(), s.items)).collect();
        self.prev_at = Some(at);
        rates
    }

    /// Writes one frame: a line per stage, `at` being the time since the dashboard started.
    ///
    /// ```
    /// use millrace::Metrics;
    /// use millrace::adapters::progress::PlainRender;
    /// use std::time::Duration;
    ///
    /// let metrics = Metrics::new();
    /// metrics.stage("queue").track_buffered(|| 3);
    /// let mut render = PlainRender::new();
    /// let mut out = Vec::new();
    /// render.render(&mut out, Duration::from_millis(500), &metrics.snapshot()).unwrap();
    /// assert_eq!(String::from_utf8(out).unwrap(), "   0.5s queue 0 items 0.0/s buffered=3\n");
    /// ```
    ///
    /// # Errors
    ///
    /// The writer's errors.
    pub fn render<W: Write + ?Sized>(
        &mut self,
        out: &mut W,
        at: Duration,
        stages: &[StageSnapshot],
    ) -> io::Result<()> {
        let rates = self.rates(at, stages);
        let name_width = stages
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(0);
        let items_width = stages
            .iter()
            .map(|s| s.items.to_string().len())
            .max()
            .unwrap_or(0);
        let mut frame = String::new();
        for (s, rate) in stages.iter().zip(rates) {
            let _ = write!(
                frame,
                "{:>6.1}s {:<name_width$} {:>items_width$} items",
                at.as_secs_f64(),
                s.name,
                s.items,
            );
            frame.push(' ');
            frame.push_str(&details(s, rate));
            frame.push('\n');
        }
        out.write_all(frame.as_bytes())
    }
}

/// Everything after the item count: rate, bar, measured counters, `done`.
pub(crate) fn details(s: &StageSnapshot, rate: f64) -> String {
    let mut line = format!("{rate:.1}/s");
    if let Some(total) = s.expected {
        let frac = if total == 0 {
            1.0
        } else {
            (s.items as f64 / total as f64).min(1.0)
        };
        let filled = (frac * BAR as f64).round() as usize;
        let _ = write!(
            line,
            " [{}{}] {:>3}%",
            "#".repeat(filled),
            "-".repeat(BAR - filled),
            (frac * 100.0).floor() as u64
        );
    }
    for (key, v) in [
        ("errors", s.errors),
        ("retries", s.retries),
        ("skipped", s.skipped),
        ("fallbacks", s.fallbacks),
        ("in_flight", s.in_flight),
        ("buffered", s.buffered),
    ] {
        if let Some(v) = v {
            let _ = write!(line, " {key}={v}");
        }
    }
    if s.finished {
        line.push_str(" done");
    }
    line
}
