//! JSON and Prometheus text exposition of a [`Metrics`] snapshot, written by hand.
//!
//! Both formats are small and fully specified, so a dependency (serde_json, `metrics` +
//! `metrics-exporter-prometheus`, `prometheus-client`) would buy nothing here but compile
//! time for every user of the core crate. Strings are escaped per each format's rules.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::{Metrics, StageSnapshot};

/// Appends `s` as a JSON string literal (RFC 8259 escaping).
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A finite `f64` as a JSON number (Rust's `Display` never uses exponents); `null` otherwise.
fn json_f64(out: &mut String, v: f64) {
    if v.is_finite() {
        let _ = write!(out, "{v}");
    } else {
        out.push_str("null");
    }
}

fn json_opt(out: &mut String, v: Option<u64>) {
    match v {
        Some(v) => {
            let _ = write!(out, "{v}");
        }
        None => out.push_str("null"),
    }
}

fn json_secs(out: &mut String, d: Option<Duration>) {
    match d {
        Some(d) => json_f64(out, d.as_secs_f64()),
        None => out.push_str("null"),
    }
}

fn stage_json(out: &mut String, s: &StageSnapshot) {
    out.push_str("{\"name\":");
    json_str(out, &s.name);
    let _ = write!(out, ",\"items\":{}", s.items);
    out.push_str(",\"items_in\":");
    json_opt(out, s.items_in);
    out.push_str(",\"expected\":");
    json_opt(out, s.expected);
    let _ = write!(
        out,
        ",\"polls\":{},\"pending_polls\":{}",
        s.polls, s.pending_polls
    );
    out.push_str(",\"errors\":");
    json_opt(out, s.errors);
    out.push_str(",\"errors_by_kind\":{");
    for (i, (kind, n)) in s.errors_by_kind.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, kind);
        let _ = write!(out, ":{n}");
    }
    out.push('}');
    for (key, v) in [
        ("retries", s.retries),
        ("fallbacks", s.fallbacks),
        ("skipped", s.skipped),
        ("in_flight", s.in_flight),
        ("buffered", s.buffered),
    ] {
        let _ = write!(out, ",\"{key}\":");
        json_opt(out, v);
    }
    out.push_str(",\"busy_seconds\":");
    json_secs(out, s.busy);
    out.push_str(",\"self_busy_seconds\":");
    json_secs(out, s.self_busy);
    out.push_str(",\"latency_seconds\":");
    match &s.latency {
        Some(l) => {
            let _ = write!(out, "{{\"count\":{}", l.count);
            for (key, d) in [
                ("sum", l.sum),
                ("p50", l.p50),
                ("p90", l.p90),
                ("p99", l.p99),
                ("max", l.max),
            ] {
                let _ = write!(out, ",\"{key}\":");
                json_f64(out, d.as_secs_f64());
            }
            out.push('}');
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"elapsed_seconds\":");
    json_f64(out, s.elapsed.as_secs_f64());
    out.push_str(",\"throughput_per_second\":");
    json_f64(out, s.throughput());
    let _ = write!(out, ",\"finished\":{}}}", s.finished);
}

/// Appends `s` as a Prometheus label value: `\`, `"` and newlines escaped.
fn label(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Prometheus series must be unique: the second stage called `x` is labelled `x#2`.
fn unique_names(stages: &[StageSnapshot]) -> Vec<String> {
    let mut seen: HashMap<&str, u32> = HashMap::new();
    stages
        .iter()
        .map(|s| {
            let n = seen.entry(s.name.as_str()).or_insert(0);
            *n += 1;
            if *n == 1 {
                s.name.clone()
            } else {
                format!("{}#{}", s.name, n)
            }
        })
        .collect()
}

impl Metrics {
    /// The current snapshot as one JSON object: `{"stages":[{…}, …]}` in registration order.
    ///
    /// Each stage has `name`, `items`, `items_in`, `expected`, `polls`, `pending_polls`,
    /// `errors`, `errors_by_kind` (an object kind → count), `retries`, `fallbacks`, `skipped`,
    /// `in_flight`, `buffered`, `busy_seconds`, `self_busy_seconds`, `latency_seconds`
    /// (`{count, sum, p50, p90, p99, max}`), `elapsed_seconds`, `throughput_per_second` and
    /// `finished`; what the stage does not measure is `null` (see
    /// [`StageSnapshot`]). Written by hand, escaped per RFC 8259.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Metrics;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let metrics = Metrics::new();
    /// let _: Vec<i32> = stream::iter(0..3).metered_in(&metrics, "say \"hi\"").collect().await;
    /// let json = metrics.to_json();
    /// assert!(json.starts_with(r#"{"stages":[{"name":"say \"hi\"","items":3,"#));
    /// # }
    /// ```
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"stages\":[");
        for (i, s) in self.snapshot().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            stage_json(&mut out, s);
        }
        out.push_str("]}");
        out
    }

    /// The current snapshot in the Prometheus text exposition format (version 0.0.4), for a
    /// `/metrics` endpoint a dashboard scrapes.
    ///
    /// Families (each labelled `stage="name"`; a repeated name becomes `name#2`, …):
    /// `millrace_stage_items_total`, `millrace_stage_items_in_total`,
    /// `millrace_stage_polls_total`, `millrace_stage_pending_polls_total`,
    /// `millrace_stage_errors_total`, `millrace_stage_errors_by_kind_total` (with `kind`),
    /// `millrace_stage_retries_total`, `millrace_stage_fallbacks_total`,
    /// `millrace_stage_skipped_total` (counters), `millrace_stage_in_flight`,
    /// `millrace_stage_buffered`, `millrace_stage_expected_items`, `millrace_stage_finished`
    /// (gauges), `millrace_stage_busy_seconds_total`, `millrace_stage_self_busy_seconds_total`
    /// (counters) and `millrace_stage_latency_seconds` (a summary with quantiles 0.5, 0.9,
    /// 0.99, `_sum` and `_count`). A stage appears in a family only when it measures it.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::Metrics;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let metrics = Metrics::new();
    /// let _: Vec<i32> = stream::iter(0..3).metered_in(&metrics, "source").collect().await;
    /// let text = metrics.to_prometheus();
    /// assert!(text.contains("# TYPE millrace_stage_items_total counter\n"));
    /// assert!(text.contains("millrace_stage_items_total{stage=\"source\"} 3\n"));
    /// # }
    /// ```
    pub fn to_prometheus(&self) -> String {
        let stages = self.snapshot();
        let names = unique_names(&stages);
        let mut out = String::new();
        let mut family =
            |name: &str, kind: &str, help: &str, value: &dyn Fn(&StageSnapshot) -> Option<f64>| {
                let samples: Vec<(usize, f64)> = stages
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| value(s).map(|v| (i, v)))
                    .collect();
                if samples.is_empty() {
                    return;
                }
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} {kind}");
                for (i, v) in samples {
                    let _ = write!(out, "{name}{{stage=");
                    label(&mut out, &names[i]);
                    let _ = writeln!(out, "}} {v}");
                }
            };
        let int = |v: u64| Some(v as f64);
        family(
            "millrace_stage_items_total",
            "counter",
            "Items the stage yielded.",
            &|s| int(s.items),
        );
        family(
            "millrace_stage_items_in_total",
            "counter",
            "Items the stage's upstream stage yielded.",
            &|s| s.items_in.and_then(int),
        );
        family(
            "millrace_stage_polls_total",
            "counter",
            "Calls to the stage's poll_next.",
            &|s| int(s.polls),
        );
        family(
            "millrace_stage_pending_polls_total",
            "counter",
            "Polls of the stage that returned Pending.",
            &|s| int(s.pending_polls),
        );
        family(
            "millrace_stage_errors_total",
            "counter",
            "Err items the stage yielded.",
            &|s| s.errors.and_then(int),
        );
        family(
            "millrace_stage_retries_total",
            "counter",
            "Times the stage's source was re-opened after an error.",
            &|s| s.retries.and_then(int),
        );
        family(
            "millrace_stage_fallbacks_total",
            "counter",
            "Times the stage switched to a fallback stream.",
            &|s| s.fallbacks.and_then(int),
        );
        family(
            "millrace_stage_skipped_total",
            "counter",
            "Errors the stage skipped (Supervision::Resume).",
            &|s| s.skipped.and_then(int),
        );
        family(
            "millrace_stage_in_flight",
            "gauge",
            "Items the stage is working on.",
            &|s| s.in_flight.and_then(int),
        );
        family(
            "millrace_stage_buffered",
            "gauge",
            "Items buffered in the stage.",
            &|s| s.buffered.and_then(int),
        );
        family(
            "millrace_stage_expected_items",
            "gauge",
            "Items the stage is expected to yield in total.",
            &|s| s.expected.and_then(int),
        );
        family(
            "millrace_stage_finished",
            "gauge",
            "1 once the stage's stream has ended.",
            &|s| Some(if s.finished { 1.0 } else { 0.0 }),
        );
        family(
            "millrace_stage_busy_seconds_total",
            "counter",
            "Time spent inside the stage's upstream, nested stages included.",
            &|s| s.busy.map(|d| d.as_secs_f64()),
        );
        family(
            "millrace_stage_self_busy_seconds_total",
            "counter",
            "Time spent in the stage itself, nested timed stages excluded.",
            &|s| s.self_busy.map(|d| d.as_secs_f64()),
        );

        // Two-label and summary families by hand.
        if stages.iter().any(|s| !s.errors_by_kind.is_empty()) {
            let name = "millrace_stage_errors_by_kind_total";
            let _ = writeln!(out, "# HELP {name} Err items the stage yielded, by kind.");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (s, stage) in stages.iter().zip(&names) {
                for (kind, n) in &s.errors_by_kind {
                    let _ = write!(out, "{name}{{stage=");
                    label(&mut out, stage);
                    out.push_str(",kind=");
                    label(&mut out, kind);
                    let _ = writeln!(out, "}} {n}");
                }
            }
        }
        if stages.iter().any(|s| s.latency.is_some()) {
            let name = "millrace_stage_latency_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} Per-item latency of the stage (wait for the item included)."
            );
            let _ = writeln!(out, "# TYPE {name} summary");
            for (s, stage) in stages.iter().zip(&names) {
                let Some(l) = &s.latency else { continue };
                for (q, d) in [("0.5", l.p50), ("0.9", l.p90), ("0.99", l.p99)] {
                    let _ = write!(out, "{name}{{stage=");
                    label(&mut out, stage);
                    let _ = writeln!(out, ",quantile=\"{q}\"}} {}", d.as_secs_f64());
                }
                let _ = write!(out, "{name}_sum{{stage=");
                label(&mut out, stage);
                let _ = writeln!(out, "}} {}", l.sum.as_secs_f64());
                let _ = write!(out, "{name}_count{{stage=");
                label(&mut out, stage);
                let _ = writeln!(out, "}} {}", l.count);
            }
        }
        out
    }
}
