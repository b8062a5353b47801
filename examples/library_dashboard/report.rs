//! What a run reports, and how the report reads.

use std::fmt;
use std::time::Duration;

use millrace::StageSnapshot;
use millrace::positions::Counts;
use millrace_test_support::ServerStats;

use super::input::{Skip, SkipReason};

/// Everything a run reports.
#[derive(Debug)]
pub(crate) struct Report {
    /// Lines in the log.
    pub(crate) lines: u64,
    /// How long generating the log took, if this run generated it.
    pub(crate) generated_in: Option<Duration>,
    /// The run resumed after this line (0: from the start).
    pub(crate) resumed_after: u64,
    /// Per-stage counters, in pipeline order.
    pub(crate) stages: Vec<StageSnapshot>,
    /// The lines skipped by this run, in line order.
    pub(crate) skips: Vec<Skip>,
    /// Batches committed by this run.
    pub(crate) batches_committed: u64,
    /// Dead letters committed by this run (the skipped lines, with their reasons).
    pub(crate) dead_lettered: u64,
    /// The delivery accounting of this run: `read = committed + dead-lettered + filtered`.
    pub(crate) balance: Counts,
    /// Rows inserted by this run.
    pub(crate) rows_inserted: u64,
    /// Rows ignored by `ON CONFLICT DO NOTHING` (already in the table).
    pub(crate) rows_ignored: u64,
    /// Rows in the table after the run.
    pub(crate) rows_in_db: u64,
    /// HTTP requests retried with backoff.
    pub(crate) request_retries: u64,
    /// Catalog source restarts from the checkpoint.
    pub(crate) catalog_restarts: u64,
    /// Catalog source switches to the mirror.
    pub(crate) catalog_fallbacks: u64,
    /// Batch lookups sent.
    pub(crate) lookups: u64,
    /// The lookup limits: `(in flight, per second)`.
    pub(crate) lookup_limits: (usize, u32),
    /// Batch lookups answered by the mirror.
    pub(crate) lookup_fallbacks: u64,
    /// What the catalog service saw (requests, injected faults, peak concurrency).
    pub(crate) server: ServerStats,
    /// Whether the run was stopped (Ctrl-C or `--stop-after`) before the end of the log.
    pub(crate) interrupted: bool,
    /// The accounting does not balance: some lines read were neither committed, dead-lettered
    /// nor filtered (the run ended on an error; run again to resume).
    pub(crate) unbalanced: Option<String>,
    /// The input's last line has no newline: its number (the file may be cut, or still being
    /// written).
    pub(crate) ends_mid_line: Option<u64>,
    /// The input has no data line (empty, or blank lines only).
    pub(crate) no_data: bool,
    /// The error that ended the run early, if any (everything before it is committed).
    pub(crate) fatal: Option<String>,
    /// Time from the start of the pipeline (catalog load included) to the last commit.
    pub(crate) elapsed: Duration,
}

impl Report {
    /// Lines read by this run per second of pipeline time.
    pub(crate) fn throughput(&self) -> f64 {
        let read = self.stage("read").map_or(0, |s| s.items);
        read as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn stage(&self, name: &str) -> Option<&StageSnapshot> {
        self.stages.iter().find(|s| s.name == name)
    }
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = if let Some(fatal) = &self.fatal {
            format!("STOPPED by an error: {fatal}")
        } else if self.interrupted {
            "interrupted: in-flight batches drained and committed; run again to resume".to_owned()
        } else if self.unbalanced.is_some() {
            "INCOMPLETE: the accounting does not balance".to_owned()
        } else {
            "complete".to_owned()
        };
        writeln!(f, "== library dashboard: {status}")?;
        if self.no_data {
            writeln!(
                f,
                "the input has no data: it is empty or holds only blank lines; nothing to do"
            )?;
        }
        if let Some(line) = self.ends_mid_line {
            writeln!(
                f,
                "the input ends mid-line at line {line} (no newline after it): the file was cut \
                 or is still being written; that line was read as it is"
            )?;
        }
        if let Some(t) = self.generated_in {
            writeln!(
                f,
                "log generated: {} lines in {t:.2?}",
                thousands(self.lines)
            )?;
        }
        if self.resumed_after > 0 {
            writeln!(
                f,
                "resumed after line {} (already committed by an earlier run)",
                thousands(self.resumed_after)
            )?;
        }
        // The end-of-run table of `millrace::metrics::Report`: the largest share of time is
        // the slowest stage.
        writeln!(
            f,
            "per stage (items: catalog books, read lines, valid events, enriched and committed \
             batches; p50/p99 = wait per item; time = share of the time spent in the stages):"
        )?;
        let table = millrace::metrics::Report::new(self.stages.clone()).to_string();
        for line in table.lines() {
            writeln!(f, "  {line}")?;
        }
        writeln!(
            f,
            "sqlite: {} rows inserted in {} batches ({} already present), {} dead letters (table \
             millrace_dead_letters); {} rows in the table",
            thousands(self.rows_inserted),
            thousands(self.batches_committed),
            self.rows_ignored,
            thousands(self.dead_lettered),
            thousands(self.rows_in_db),
        )?;
        let mut by_reason: Vec<(SkipReason, Vec<&Skip>)> = Vec::new();
        for skip in &self.skips {
            match by_reason.iter_mut().find(|(r, _)| *r == skip.reason) {
                Some((_, list)) => list.push(skip),
                None => by_reason.push((skip.reason, vec![skip])),
            }
        }
        by_reason.sort_by_key(|(r, _)| *r);
        writeln!(f, "skipped lines: {}", self.skips.len())?;
        for (reason, list) in &by_reason {
            writeln!(f, "  {reason}: {}", list.len())?;
            for skip in list.iter().take(2) {
                writeln!(f, "    {}", skip.detail)?;
            }
        }
        writeln!(
            f,
            "http: {} requests retried with backoff; catalog source restarted {} times from its \
             checkpoint, fell back to the mirror {} times; {} batch lookups ({} answered by \
             the mirror; limits: {} in flight, {}/s)",
            self.request_retries,
            self.catalog_restarts,
            self.catalog_fallbacks,
            self.lookups,
            self.lookup_fallbacks,
            self.lookup_limits.0,
            self.lookup_limits.1,
        )?;
        writeln!(
            f,
            "catalog service: {} requests ({} to the mirror), injected {} errors, {} dropped \
             connections, {} slow answers; at most {} requests in flight",
            self.server.total_requests,
            self.server.mirror_requests,
            self.server.injected_errors,
            self.server.injected_drops,
            self.server.injected_delays,
            self.server.max_in_flight,
        )?;
        writeln!(f, "accounting: {}", self.balance)?;
        if let Some(unbalanced) = &self.unbalanced {
            writeln!(f, "  {unbalanced}")?;
        }
        write!(
            f,
            "throughput: {} lines/s ({:.2?} for the pipeline, catalog load included)",
            thousands(self.throughput() as u64),
            self.elapsed
        )
    }
}
