//! Run with: cargo run --release --example library_dashboard
//!
//! The main job, end to end on embedded defaults: a library's checkout/return log of a million
//! JSON lines (generated on the first run, with a few bad lines) is read with the `fs` and
//! `json` adapters, validated, enriched through a catalog HTTP service started in-process on
//! 127.0.0.1 that fails and slows down on purpose (retry with backoff, fallback to a mirror
//! that resumes from the checkpoint, 32 lookups in flight, rate-limited), and committed in
//! batches to SQLite, with live per-stage progress and a final report.
//!
//! Exactly once, through the library: the SQLite sink commits every batch's rows, its dead
//! letters (the bad lines, with their reasons) and the log's byte position in one transaction;
//! a run resumes by seeking the log to the committed position. Ctrl-C stops it gracefully (the
//! batches in flight are enriched and committed, the report prints); a SIGKILL at any moment
//! loses nothing either. A second copy started on the same data is refused, naming the first.
//! The report ends with the accounting line `read = committed + dead-lettered + filtered`.
//!
//! Exit status: 0 when the log is done and the accounting balances; 130 when stopped by Ctrl-C
//! (or `--stop-after`), after draining; 1 when an error stopped it or the accounting does not
//! balance; 2 for bad arguments. Running it again resumes in every case.
//!
//! Flags: `--lines N` (default 1,000,000), `--data-dir DIR` (default `target/millrace-demo`),
//! `--fresh` (delete the database first), `--stop-after N` (stop as Ctrl-C does after N
//! committed batches), `--quiet` (no live progress).

use std::path::PathBuf;
use std::process::ExitCode;

use millrace::prelude::*;

mod pipeline;

const USAGE: &str = "usage: library_dashboard [--lines N] [--data-dir DIR] [--fresh] \
                     [--stop-after N] [--quiet]";

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<pipeline::Config, String> {
    let default_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/millrace-demo");
    let mut config = pipeline::Config::new(1_000_000, default_dir);
    config.progress = true;
    let number = |flag: &str, value: Option<String>| -> Result<u64, String> {
        let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
        value
            .replace(['_', ','], "")
            .parse()
            .map_err(|e| format!("{flag} {value:?}: {e}"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--lines" => config.lines = number("--lines", args.next())?.max(1),
            "--data-dir" => {
                config.data_dir = args.next().ok_or("--data-dir needs a value")?.into();
            }
            "--fresh" => config.fresh = true,
            "--stop-after" => config.stop_after = Some(number("--stop-after", args.next())?),
            "--quiet" => config.progress = false,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("{message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };

    // Ctrl-C → CancellationToken → `.stop_on(token)` right after the source: nothing more is
    // read, what is in flight drains and commits, the report prints. A second Ctrl-C quits.
    let token = CancellationToken::new();
    let _ctrl_c = tokio_util::task::AbortOnDropHandle::new(tokio::spawn({
        let token = token.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\nCtrl-C: finishing the batches in flight (Ctrl-C again to quit now)");
                token.cancel();
            }
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    }));

    println!(
        "log: {}\ndatabase: {}",
        config.log_path().display(),
        config.db_path().display()
    );
    match pipeline::run(&config, token).await {
        Ok(report) => {
            println!("{report}");
            if report.fatal.is_some() || (report.unbalanced.is_some() && !report.interrupted) {
                ExitCode::FAILURE
            } else if report.interrupted {
                ExitCode::from(130)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
