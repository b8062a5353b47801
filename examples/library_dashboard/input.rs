//! The input: the generated activity log, its lines decoded as events and validated, and the
//! lines skipped on the way (each a dead letter with its reason).

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future;
use millrace::adapters::fs::LinePosition;
use millrace::adapters::json::{Decoded, JsonLineError};
use millrace::positions::{Entry, Positioned};
use serde::Deserialize;

use super::activity_log;
use super::error::RunError;

/// What a run learns about its log before reading it.
#[derive(Debug)]
pub(crate) struct Input {
    /// How long generating the log took, if this run generated it.
    pub(crate) generated_in: Option<Duration>,
    /// The last line has no newline.
    pub(crate) ends_mid_line: bool,
    /// There is a data line (the log is not empty or blank lines only).
    pub(crate) has_data: bool,
}

impl Input {
    /// Generates the log of `lines` lines at `log` unless it is there, and looks at how it ends.
    pub(crate) async fn prepare(log: &Path, lines: u64) -> Result<Self, RunError> {
        let generated_in = ensure_log(log, lines)
            .await
            .map_err(|source| RunError::Io {
                action: "write the log",
                path: log.to_owned(),
                source,
            })?;
        let (ends_mid_line, has_data) = input_shape(log).map_err(|source| RunError::Io {
            action: "read the log",
            path: log.to_owned(),
            source,
        })?;
        Ok(Input {
            generated_in,
            ends_mid_line,
            has_data,
        })
    }
}

/// Writes the log of `lines` lines to `path` unless it is already there; returns how long
/// generating took, or `None` if the file existed (see [`activity_log::write_log`]).
pub(crate) async fn ensure_log(path: &Path, lines: u64) -> io::Result<Option<Duration>> {
    if tokio::fs::try_exists(path).await? {
        return Ok(None);
    }
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || activity_log::write_log(&path, lines))
        .await
        .map_err(io::Error::other)?
}

/// How the input ends, for the report: `(ends mid-line, has a data line)`.
fn input_shape(log: &Path) -> io::Result<(bool, bool)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(log)?;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok((false, false));
    }
    let mut last = [0u8];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    // Blank-only inputs are small in practice; a large input has data.
    let has_data = len > 1 << 20 || {
        let mut all = Vec::new();
        file.seek(SeekFrom::Start(0))?;
        file.read_to_end(&mut all)?;
        all.iter().any(|b| !b.is_ascii_whitespace())
    };
    Ok((last[0] != b'\n', has_data))
}

/// One line of the log, as decoded.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Event {
    pub(crate) ts: i64,
    pub(crate) member: String,
    pub(crate) book: u64,
    pub(crate) action: String,
}

/// The validation rule: a known action and a member id of the form `M<digits>`.
fn check_event(event: &Decoded<Event>) -> Result<(), &'static str> {
    let e = &event.value;
    if e.action != "checkout" && e.action != "return" {
        return Err("the action is neither \"checkout\" nor \"return\"");
    }
    if !(e.member.starts_with('M') && e.member[1..].bytes().all(|b| b.is_ascii_digit())) {
        return Err("the member id is not `M` followed by digits");
    }
    Ok(())
}

/// Why a line was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum SkipReason {
    /// The line could not be read (not UTF-8, too long).
    Unreadable,
    /// The line is not JSON of the expected shape.
    MalformedJson,
    /// The event failed validation.
    Invalid,
    /// The catalog has no such book.
    UnknownBook,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::Unreadable => "unreadable line",
            SkipReason::MalformedJson => "malformed JSON",
            SkipReason::Invalid => "invalid event",
            SkipReason::UnknownBook => "unknown book",
        })
    }
}

/// A skipped line, with the reason and the error's own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Skip {
    pub(crate) line: u64,
    pub(crate) reason: SkipReason,
    pub(crate) detail: String,
}

/// Why a line became a dead letter before enrichment.
#[derive(Debug)]
pub(crate) enum Reject {
    Json(JsonLineError),
    Invalid { line: u64, reason: &'static str },
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::Json(e) => fmt::Display::fmt(e, f),
            Reject::Invalid { line, reason } => write!(f, "line {line}: {reason}"),
        }
    }
}

/// Decodes and validates one entry: the event, or why the line is rejected.
pub(crate) fn accept(
    decoded: Result<Decoded<Event>, JsonLineError>,
) -> Result<Decoded<Event>, Reject> {
    let event = decoded.map_err(Reject::Json)?;
    match check_event(&event) {
        Ok(()) => Ok(event),
        Err(reason) => Err(Reject::Invalid {
            line: event.line,
            reason,
        }),
    }
}

/// The skipped lines, shared between the stages that skip and the report. Only the consumer
/// side of the pipeline writes to it, a few thousand times in a million lines, so a mutex
/// costs nothing measurable.
#[derive(Debug, Clone, Default)]
pub(crate) struct Skips(Arc<Mutex<Vec<Skip>>>);

impl Skips {
    pub(crate) fn push(&self, skip: Skip) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(skip);
    }

    pub(crate) fn take(&self) -> Vec<Skip> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The [`Skip`] of a rejected line (its dead letter's reason is the detail).
fn skip_of(reject: &Reject) -> Skip {
    let (line, reason) = match reject {
        Reject::Json(JsonLineError::Malformed { line, .. }) => (*line, SkipReason::MalformedJson),
        Reject::Json(JsonLineError::Line(e)) => (e.line().unwrap_or(0), SkipReason::Unreadable),
        Reject::Json(_) => (0, SkipReason::MalformedJson),
        Reject::Invalid { line, .. } => (*line, SkipReason::Invalid),
    };
    Skip {
        line,
        reason,
        detail: reject.to_string(),
    }
}

/// The `dead_letter_with` reason of a rejected line, recording it in `skips`.
pub(crate) fn dead_letter_reason(skips: Skips) -> impl FnMut(Reject) -> String {
    move |reject| {
        let skip = skip_of(&reject);
        let reason = skip.detail.clone();
        skips.push(skip);
        reason
    }
}

/// The error that ended the run early (a log that cannot be read, a batch that cannot be
/// enriched even by the mirror), shared between the stages that see it and the report.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fatal(Arc<Mutex<Option<String>>>);

impl Fatal {
    pub(crate) fn set(&self, error: String) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
    }

    pub(crate) fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// One decoded entry of the log.
type Line = Positioned<LinePosition, Result<Decoded<Event>, JsonLineError>>;

/// An error of the line source that is not about one line (the file cannot be opened or
/// read): it ends the input instead of becoming a dead letter.
fn fatal_read_error(entry: &Line) -> Option<String> {
    match &entry.entry {
        Entry::Item(Err(JsonLineError::Line(e))) if !e.is_skipped_line() => Some(e.to_string()),
        _ => None,
    }
}

/// The `take_while` test that ends the input at a [`fatal_read_error`], kept in `fatal`.
pub(crate) fn until_read_error(fatal: Fatal) -> impl FnMut(&Line) -> future::Ready<bool> {
    move |entry| {
        let fatal_error = fatal_read_error(entry);
        let go_on = fatal_error.is_none();
        if let Some(e) = fatal_error {
            fatal.set(e);
        }
        future::ready(go_on)
    }
}
