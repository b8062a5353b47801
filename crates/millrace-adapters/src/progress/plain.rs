//! [`PlainRender`]: the dashboard as plain text lines, for logs and tests.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use millrace_core::StageSnapshot;

const BAR: usize = 20;

/// Renders dashboard frames as plain text, **one line per frame** (one per tick of the
/// dashboard), into any [`Write`]: what the dashboard prints when stdout is not a terminal
/// (a log, a pipe, CI), exact and testable. A log gets one line per interval however many
/// stages the pipeline has, and each line is a complete picture of one moment.
///
/// A line reads `<time>` then, for each stage, separated by ` | `: `<stage> <items>`, then
/// `/<total> items (<pct>%)` when the stage's total is known (or ` items`), the rate
/// `<rate>/s`, then `errors=`, `retries=`, `skipped=`, `fallbacks=`, `in_flight=` and
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
///     .on_error(Supervision::Resume)
///     .metered_in(&metrics, "valid")
///     .with_events()
///     .collect()
///     .await;
/// let mut out = Vec::new();
/// PlainRender::new().render(&mut out, Duration::from_secs(2), &metrics.snapshot()).unwrap();
/// assert_eq!(
///     String::from_utf8(out).unwrap(),
///     "   2.0s rows 4/4 items (100%) 2.0/s errors=1 done | valid 3 items 1.5/s skipped=1 done\n"
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

    /// Writes one frame as one line, `at` being the time since the dashboard started
    /// (nothing while the registry has no stage).
    ///
    /// ```
    /// use millrace::Metrics;
    /// use millrace::adapters::progress::PlainRender;
    /// use std::time::Duration;
    ///
    /// let metrics = Metrics::new();
    /// metrics.stage("queue").track_buffered(|| 3);
    /// metrics.stage("sink");
    /// let mut render = PlainRender::new();
    /// let mut out = Vec::new();
    /// render.render(&mut out, Duration::from_millis(500), &metrics.snapshot()).unwrap();
    /// assert_eq!(
    ///     String::from_utf8(out).unwrap(),
    ///     "   0.5s queue 0 items 0.0/s buffered=3 | sink 0 items 0.0/s\n"
    /// );
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
        if stages.is_empty() {
            // Nothing to show yet: no line rather than a bare time stamp.
            return Ok(());
        }
        let mut line = format!("{:>6.1}s", at.as_secs_f64());
        for (i, (s, rate)) in stages.iter().zip(rates).enumerate() {
            line.push_str(if i == 0 { " " } else { " | " });
            line.push_str(&s.name);
            let _ = write!(line, " {}", s.items);
            match s.expected {
                Some(total) => {
                    let pct = (s.items.min(total).saturating_mul(100))
                        .checked_div(total)
                        .unwrap_or(100);
                    let _ = write!(line, "/{total} items ({pct}%)");
                }
                None => line.push_str(" items"),
            }
            let _ = write!(line, " {rate:.1}/s");
            line.push_str(&events(s));
        }
        line.push('\n');
        out.write_all(line.as_bytes())
    }
}

/// The measured counters (` errors=1 retries=2`…) and ` done` once ended.
fn events(s: &StageSnapshot) -> String {
    let mut line = String::new();
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
    line.push_str(&events(s));
    line
}
