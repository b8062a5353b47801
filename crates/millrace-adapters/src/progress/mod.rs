//! A live per-stage terminal dashboard over a [`Metrics`] registry (feature `progress`).
//!
//! [`Dashboard::spawn`] starts a background thread that redraws one line per stage every
//! interval: its items, its rate, errors / retries / skips / fallbacks when measured, and a
//! bar when the stage's total is known ([`StageSnapshot::expected`]). On a terminal the lines
//! are [indicatif](https://docs.rs/indicatif) progress bars redrawn in place; when stdout is
//! not a terminal (a pipe, a log file, CI) the dashboard degrades to periodic plain lines
//! written by [`PlainRender`], which renders into any [`Write`] and is exact, so it can be
//! tested against a buffer. [`DashboardHandle::finish`] draws a final frame and **prints the
//! [`Metrics::report`] table itself** (to the dashboard's output: the terminal, or the writer
//! of [`plain_to`](Dashboard::plain_to)), so do not print `metrics.report()` again after it;
//! dropping the handle stops the dashboard without the table.
//!
//! The dashboard runs on its own OS thread, not on a tokio task: it keeps drawing while a
//! CPU-bound pipeline holds the runtime's threads, and it works without a runtime.
//!
//! ```
//! use millrace::prelude::*;
//! use millrace::Metrics;
//! use millrace::adapters::progress::Dashboard;
//! use futures::{stream, StreamExt};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let metrics = Metrics::new();
//! let out = Vec::new(); // any `Write + Send`; `Dashboard::spawn` picks stdout for you
//! let dashboard = Dashboard::new(&metrics).interval(Duration::from_millis(100)).plain_to(out);
//! let handle = dashboard.start();
//! let n = stream::iter(0..1000).metered_in(&metrics, "numbers").count().await;
//! assert_eq!(n, 1000);
//! let out = handle.finish().expect("a plain dashboard returns its writer");
//! let text = String::from_utf8(out).unwrap();
//! assert!(text.contains("numbers"));
//! assert!(text.ends_with(&metrics.report().to_string()));
//! # }
//! ```

mod plain;

pub use self::plain::PlainRender;

use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use millrace_core::{Metrics, StageSnapshot};

/// Where the frames go.
enum Output {
    /// indicatif bars on the terminal (stdout).
    Bars,
    /// Plain lines into a writer.
    Plain(Box<dyn Write + Send>),
}

/// Configures a live dashboard; [`start`](Dashboard::start) it, or use
/// [`Dashboard::spawn`].
///
/// ```
/// use millrace::Metrics;
/// use millrace::adapters::progress::Dashboard;
/// use std::time::Duration;
///
/// let metrics = Metrics::new();
/// let handle = Dashboard::new(&metrics)
///     .interval(Duration::from_secs(1))
///     .plain_to(std::io::sink())
///     .start();
/// drop(handle); // stops the thread, prints nothing more
/// ```
pub struct Dashboard {
    metrics: Metrics,
    interval: Duration,
    output: Output,
}

impl fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dashboard")
            .field("interval", &self.interval)
            .field(
                "output",
                &match self.output {
                    Output::Bars => "bars",
                    Output::Plain(_) => "plain",
                },
            )
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// A dashboard over `metrics`, redrawn every second, as bars when stdout is a terminal
    /// and as plain lines on stdout otherwise.
    ///
    /// ```
    /// use millrace::Metrics;
    /// use millrace::adapters::progress::Dashboard;
    ///
    /// let _dashboard = Dashboard::new(&Metrics::new());
    /// ```
    pub fn new(metrics: &Metrics) -> Self {
        let output = if std::io::stdout().is_terminal() {
            Output::Bars
        } else {
            Output::Plain(Box::new(std::io::stdout()))
        };
        Dashboard {
            metrics: metrics.clone(),
            interval: Duration::from_secs(1),
            output,
        }
    }

    /// Redraws every `interval` (at least 10 ms).
    ///
    /// ```
    /// use millrace::Metrics;
    /// use millrace::adapters::progress::Dashboard;
    /// use std::time::Duration;
    ///
    /// let _dashboard = Dashboard::new(&Metrics::new()).interval(Duration::from_millis(250));
    /// ```
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Writes plain lines to `out` instead, whatever stdout is; [`DashboardHandle::finish`]
    /// hands `out` back.
    ///
    /// ```
    /// use millrace::Metrics;
    /// use millrace::adapters::progress::Dashboard;
    ///
    /// let handle = Dashboard::new(&Metrics::new()).plain_to(Vec::new()).start();
    /// let out = handle.finish().unwrap();
    /// assert!(String::from_utf8(out).unwrap().starts_with("stage"));
    /// ```
    pub fn plain_to<W: Write + Send + 'static>(self, out: W) -> PlainDashboard<W> {
        PlainDashboard {
            metrics: self.metrics,
            interval: self.interval,
            out,
        }
    }

    /// Starts drawing on a background thread.
    ///
    /// ```
    /// use millrace::Metrics;
    /// use millrace::adapters::progress::Dashboard;
    ///
    /// let handle = Dashboard::new(&Metrics::new()).plain_to(std::io::sink()).start();
    /// assert!(handle.finish().is_some());
    /// ```
    pub fn start(self) -> DashboardHandle {
        match self.output {
            Output::Bars => spawn(self.metrics, self.interval, Bars::new()),
            Output::Plain(out) => spawn(self.metrics, self.interval, Plain::new(out)),
        }
    }

    /// Starts a dashboard over `metrics` redrawn every `interval` on stdout (bars on a
    /// terminal, plain lines otherwise).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Metrics;
    /// use millrace::adapters::progress::Dashboard;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let metrics = Metrics::new();
    /// let dashboard = Dashboard::spawn(&metrics, Duration::from_millis(200));
    /// let _: Vec<u32> = stream::iter(0..10u32).metered_in(&metrics, "source").collect().await;
    /// dashboard.finish(); // final frame and the report table on stdout
    /// # }
    /// ```
    pub fn spawn(metrics: &Metrics, interval: Duration) -> DashboardHandle {
        Dashboard::new(metrics).interval(interval).start()
    }
}

/// A [`Dashboard`] writing plain lines into a `W`; made by [`Dashboard::plain_to`].
///
/// ```
/// use millrace::Metrics;
/// use millrace::adapters::progress::{Dashboard, PlainDashboard};
///
/// let d: PlainDashboard<Vec<u8>> = Dashboard::new(&Metrics::new()).plain_to(Vec::new());
/// let out: Vec<u8> = d.start().finish().unwrap();
/// assert!(!out.is_empty());
/// ```
pub struct PlainDashboard<W> {
    metrics: Metrics,
    interval: Duration,
    out: W,
}

impl<W> fmt::Debug for PlainDashboard<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainDashboard")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl<W: Write + Send + 'static> PlainDashboard<W> {
    /// Starts drawing on a background thread.
    ///
    /// ```
    /// use millrace::Metrics;
    /// use millrace::adapters::progress::Dashboard;
    ///
    /// let handle = Dashboard::new(&Metrics::new()).plain_to(Vec::new()).start();
    /// assert!(handle.finish().is_some());
    /// ```
    pub fn start(self) -> DashboardHandle<W> {
        spawn(self.metrics, self.interval, Plain::new(self.out))
    }
}

/// How one kind of dashboard draws.
trait Draw: Send + 'static {
    type Out: Send + 'static;
    fn frame(&mut self, at: Duration, stages: &[StageSnapshot]);
    /// The final frame and the report; returns the writer, if any.
    fn finish(self, at: Duration, stages: &[StageSnapshot], report: &str) -> Option<Self::Out>;
    fn abandon(self);
}

struct Plain<W> {
    out: W,
    render: PlainRender,
}

impl<W: Write> Plain<W> {
    fn new(out: W) -> Self {
        Plain {
            out,
            render: PlainRender::new(),
        }
    }
}

impl<W: Write + Send + 'static> Draw for Plain<W> {
    type Out = W;

    fn frame(&mut self, at: Duration, stages: &[StageSnapshot]) {
        // A dashboard must never take the pipeline down: write errors are ignored.
        let _ = self.render.render(&mut self.out, at, stages);
        let _ = self.out.flush();
    }

    fn finish(mut self, at: Duration, stages: &[StageSnapshot], report: &str) -> Option<W> {
        self.frame(at, stages);
        let _ = self.out.write_all(report.as_bytes());
        let _ = self.out.flush();
        Some(self.out)
    }

    fn abandon(self) {}
}

struct Bars {
    multi: MultiProgress,
    bars: Vec<(String, ProgressBar)>,
    render: PlainRender,
}

impl Bars {
    fn new() -> Self {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            bars: Vec::new(),
            render: PlainRender::new(),
        }
    }
}

impl Draw for Bars {
    type Out = Box<dyn Write + Send>;

    fn frame(&mut self, at: Duration, stages: &[StageSnapshot]) {
        let width = stages
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(0);
        let rates = self.render.rates(at, stages);
        for (i, s) in stages.iter().enumerate() {
            if self.bars.get(i).is_none_or(|(name, _)| *name != s.name) {
                // A new stage (or the registry changed): rebuild from here on.
                for (_, bar) in self.bars.drain(i..) {
                    bar.finish_and_clear();
                }
                let bar = self.multi.add(ProgressBar::no_length());
                self.bars.push((s.name.clone(), bar));
            }
            let bar = &self.bars[i].1;
            let template = if s.expected.is_some() {
                "{prefix} [{bar:30}] {pos}/{len} {msg}"
            } else {
                "{prefix} {pos} {msg}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("#>-"));
            }
            bar.set_prefix(format!("{:<width$}", s.name));
            if let Some(total) = s.expected {
                bar.set_length(total);
            }
            bar.set_position(s.items);
            bar.set_message(plain::details(s, rates[i]));
        }
        for (_, bar) in self.bars.drain(stages.len().min(self.bars.len())..) {
            bar.finish_and_clear();
        }
    }

    fn finish(mut self, at: Duration, stages: &[StageSnapshot], report: &str) -> Option<Self::Out> {
        self.frame(at, stages);
        for (_, bar) in &self.bars {
            bar.finish();
        }
        let _ = self.multi.println(report.trim_end());
        None
    }

    fn abandon(self) {
        for (_, bar) in &self.bars {
            bar.abandon();
        }
    }
}

enum Stop {
    Finish,
    Abandon,
}

/// A running dashboard: [`finish`](DashboardHandle::finish) it for the final table;
/// dropping it stops the thread quietly.
///
/// ```
/// use millrace::Metrics;
/// use millrace::adapters::progress::{Dashboard, DashboardHandle};
///
/// let handle: DashboardHandle<Vec<u8>> = Dashboard::new(&Metrics::new()).plain_to(Vec::new()).start();
/// drop(handle);
/// ```
#[must_use = "dropping the handle stops the dashboard at once"]
pub struct DashboardHandle<W = Box<dyn Write + Send>> {
    stop: Option<mpsc::Sender<Stop>>,
    thread: Option<JoinHandle<Option<W>>>,
}

impl<W> fmt::Debug for DashboardHandle<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DashboardHandle")
            .field("running", &self.thread.is_some())
            .finish()
    }
}

fn spawn<D: Draw>(metrics: Metrics, interval: Duration, mut draw: D) -> DashboardHandle<D::Out> {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("millrace-dashboard".to_owned())
        .spawn(move || {
            let start = Instant::now();
            loop {
                match rx.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => {
                        draw.frame(start.elapsed(), &metrics.snapshot());
                    }
                    Ok(Stop::Finish) => {
                        let stages = metrics.snapshot();
                        let report = millrace_core::metrics::Report::new(stages.clone());
                        return draw.finish(start.elapsed(), &stages, &report.to_string());
                    }
                    Ok(Stop::Abandon) | Err(RecvTimeoutError::Disconnected) => {
                        draw.abandon();
                        return None;
                    }
                }
            }
        })
        .expect("failed to spawn the millrace-dashboard thread");
    DashboardHandle {
        stop: Some(tx),
        thread: Some(thread),
    }
}

impl<W> DashboardHandle<W> {
    /// Draws a final frame, **prints the [`Metrics::report`] table itself** under it (on the
    /// terminal, or into the writer of a [`plain_to`](Dashboard::plain_to) dashboard), stops
    /// the thread and returns that writer (`None` when it drew bars on the terminal).
    ///
    /// There is no need to print `metrics.report()` after it: that would show the table twice.
    /// To get the table as a value instead, drop the handle (which stops the dashboard without
    /// it) and call [`Metrics::report`].
    ///
    /// ```
    /// use millrace::Metrics;
    /// use millrace::adapters::progress::Dashboard;
    ///
    /// let metrics = Metrics::new();
    /// metrics.stage("idle");
    /// let out = Dashboard::new(&metrics).plain_to(Vec::new()).start().finish().unwrap();
    /// let text = String::from_utf8(out).unwrap();
    /// assert!(text.ends_with(&metrics.report().to_string()));
    /// ```
    pub fn finish(mut self) -> Option<W> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(Stop::Finish);
        }
        self.thread.take().and_then(|t| t.join().ok().flatten())
    }
}

impl<W> Drop for DashboardHandle<W> {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(Stop::Abandon);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
