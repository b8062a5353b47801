//! The generated activity log of the main job: a library's checkout/return events, one JSON
//! object per line, the same on every machine, with a few bad lines at fixed positions.
//! Shared by the flagship (`pipeline.rs`) and the hand-written baseline
//! (`examples/handwritten_baseline.rs`), so both read exactly the same input.

use std::io::{self, Write as _};
use std::path::Path;
use std::time::{Duration, Instant};

/// Books in the catalog service: ids `0..CATALOG_BOOKS`.
pub(crate) const CATALOG_BOOKS: u64 = 50_000;
/// The popular books (ids `0..POPULAR_BOOKS`, 80 % of the activity), loaded up front.
pub(crate) const POPULAR_BOOKS: u64 = 10_000;
/// Library members: `M00000` to `M19999`.
const MEMBERS: u64 = 20_000;
/// The time stamp of line 1 (2024-01-01T00:00:00Z); one event every 30 s after it.
const FIRST_TS: i64 = 1_704_067_200;

/// What line `n` (1-based) of the generated log holds. A few lines are bad on purpose, at fixed
/// positions, so that tests can name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineKind {
    /// A good checkout or return.
    Good,
    /// Cut off in the middle: not JSON (every 1009th line).
    BrokenJson,
    /// Valid JSON with an action that is neither `checkout` nor `return` (`n % 2503 == 7`).
    BadAction,
    /// A member name with bytes that are not UTF-8 (`n % 4999 == 13`).
    NotUtf8,
    /// A book id the catalog does not have (`n % 3001 == 11`).
    UnknownBook,
}

/// The kind of line `n`.
pub(crate) fn line_kind(n: u64) -> LineKind {
    if n % 1009 == 0 {
        LineKind::BrokenJson
    } else if n % 2503 == 7 {
        LineKind::BadAction
    } else if n % 4999 == 13 {
        LineKind::NotUtf8
    } else if n % 3001 == 11 {
        LineKind::UnknownBook
    } else {
        LineKind::Good
    }
}

/// SplitMix64: a fixed pseudo-random value per line, so the log is the same on every machine.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Appends line `n` (without its newline) to `out`.
fn write_line(out: &mut Vec<u8>, n: u64) {
    let r = mix(n);
    let ts = FIRST_TS + 30 * n as i64;
    let member = (r >> 32) % MEMBERS;
    let book = if r % 5 == 0 {
        POPULAR_BOOKS + (r >> 8) % (CATALOG_BOOKS - POPULAR_BOOKS)
    } else {
        (r >> 8) % POPULAR_BOOKS
    };
    let action = if (r >> 20) & 1 == 0 {
        "checkout"
    } else {
        "return"
    };
    // `write!` into a Vec cannot fail.
    let _ = match line_kind(n) {
        LineKind::Good => write!(
            out,
            r#"{{"ts":{ts},"member":"M{member:05}","book":{book},"action":"{action}"}}"#
        ),
        LineKind::BrokenJson => write!(out, r#"{{"ts":{ts},"member":"M{member:05}","book":"#),
        LineKind::BadAction => write!(
            out,
            r#"{{"ts":{ts},"member":"M{member:05}","book":{book},"action":"lost"}}"#
        ),
        LineKind::NotUtf8 => {
            out.extend_from_slice(format!(r#"{{"ts":{ts},"member":"M"#).as_bytes());
            out.extend_from_slice(b"\xff\xfe");
            write!(out, r#"","book":{book},"action":"{action}"}}"#)
        }
        LineKind::UnknownBook => write!(
            out,
            r#"{{"ts":{ts},"member":"M{member:05}","book":{},"action":"{action}"}}"#,
            CATALOG_BOOKS + r % 1_000
        ),
    };
}

/// Writes the log of `lines` lines to `path` unless it is already there; returns how long
/// generating took, or `None` if the file existed. The file is written to a temporary name
/// and renamed, so an interrupted generation never leaves a short log behind.
pub(crate) fn write_log(path: &Path, lines: u64) -> io::Result<Option<Duration>> {
    if path.try_exists()? {
        return Ok(None);
    }
    let started = Instant::now();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temp = path.with_extension("jsonl.partial");
    let mut file = io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&temp)?);
    let mut line = Vec::with_capacity(128);
    for n in 1..=lines {
        line.clear();
        write_line(&mut line, n);
        line.push(b'\n');
        file.write_all(&line)?;
    }
    file.into_inner()
        .map_err(io::IntoInnerError::into_error)?
        .sync_all()?;
    std::fs::rename(&temp, path)?;
    Ok(Some(started.elapsed()))
}
