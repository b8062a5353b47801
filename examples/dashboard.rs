//! Run with: cargo run --example dashboard --features progress
//!
//! A multi-stage pipeline watched live: a flaky paginated source behind `retry`, a parse
//! stage whose errors are counted by kind and skipped, a slow enrichment, a prefetch and a
//! batching sink, each metered into one `Metrics` registry. A dashboard redraws one line per
//! stage every 200 ms (progress bars on a terminal, plain lines when piped), and at the end
//! prints the per-stage report (items, errors, retries, p50/p99 latency, share of time) and
//! the first lines of the Prometheus export a scraper would read.

use std::time::Duration;

use futures::StreamExt;
use millrace::Metrics;
use millrace::adapters::progress::Dashboard;
use millrace::prelude::*;
use millrace::testing::Flaky;

const ROWS: u64 = 2_000;

#[derive(Debug)]
enum ParseError {
    Empty,
    NotANumber,
}

impl ParseError {
    fn kind(&self) -> &'static str {
        match self {
            ParseError::Empty => "empty",
            ParseError::NotANumber => "not_a_number",
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ParseError::Empty => "empty row: check the export",
            ParseError::NotANumber => "row is not a number: check the export",
        })
    }
}

fn parse(row: &str) -> Result<u64, ParseError> {
    if row.is_empty() {
        return Err(ParseError::Empty);
    }
    row.parse().map_err(|_| ParseError::NotANumber)
}

#[tokio::main]
async fn main() {
    let metrics = Metrics::new();
    let dashboard = Dashboard::spawn(&metrics, Duration::from_millis(200));

    // A source that fails now and then and takes a little time per row.
    let rows: Vec<String> = (0..ROWS)
        .map(|i| match i % 97 {
            13 => String::new(),
            41 => format!("row-{i}"),
            _ => i.to_string(),
        })
        .collect();
    let source = Flaky::new(rows)
        .fail_with_probability(0.01, 7)
        .delay_per_item(Duration::from_micros(500));

    let fetch = restartable(move |cp: &Checkpoint<String>| source.open(cp.delivered))
        .retry(RetryPolicy::fixed(Duration::from_millis(20), 5))
        .metered_in(&metrics, "fetch")
        .with_events()
        .with_timing();
    fetch.metrics().set_expected(ROWS);

    let parsed = fetch
        .map(|row| row.map_err(|e| e.to_string()))
        .map(|row| match row {
            Ok(row) => parse(&row),
            Err(_) => Err(ParseError::Empty),
        })
        .metered_in(&metrics, "parse")
        .count_errors_by(ParseError::kind)
        .with_timing()
        .on_error(Supervision::Resume)
        .metered_in(&metrics, "valid")
        .with_events()
        .with_timing();

    let enriched = parsed
        .map(|n| n.expect("errors were skipped"))
        .then(|n| async move {
            // A slower stage: the report's share of time shows it.
            tokio::time::sleep(Duration::from_micros(200)).await;
            (n, n.count_ones())
        })
        .metered_in(&metrics, "enrich")
        .with_timing()
        .prefetch(64)
        .batch(100)
        .metered_in(&metrics, "batches")
        .with_timing();

    let batches = enriched.count().await;
    dashboard.finish();

    println!("\n{batches} batches written\n");
    println!("Prometheus export (first lines):");
    for line in metrics.to_prometheus().lines().take(6) {
        println!("  {line}");
    }
}
