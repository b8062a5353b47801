//! Errors of the line source and the atomic line sink.

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// An error item of the [`lines`](super::lines) source. Every variant that concerns a line names
/// it (1-based).
///
/// [`TooLong`](LineError::TooLong) and [`InvalidUtf8`](LineError::InvalidUtf8) skip one line:
/// the stream continues with the next one, so `on_error(Resume)` or a `filter_map` drops exactly
/// that line. [`Io`](LineError::Io) and [`Open`](LineError::Open) end the stream.
///
/// ```
/// use millrace::adapters::fs::{self, LineError};
/// use futures::StreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let input: &[u8] = b"ok\n\xff\xfe\nalso ok\n";
/// let items: Vec<_> = fs::lines_from(input).collect().await;
/// let err = items[1].as_ref().unwrap_err();
/// assert!(matches!(err, LineError::InvalidUtf8 { line: 2, valid_up_to: 0 }));
/// assert_eq!(err.line(), Some(2));
/// assert_eq!(
///     err.to_string(),
///     "line 2 is not valid UTF-8 (valid up to byte 0); the line was skipped, \
///      re-encode the input as UTF-8"
/// );
/// assert_eq!(items[2].as_ref().unwrap().text, "also ok");
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum LineError {
    /// The line is longer than the configured maximum; it was skipped.
    TooLong {
        /// The line number (1-based).
        line: u64,
        /// The line has at least this many bytes (not counting `\n` / `\r\n`). Reading stops
        /// once the limit is passed, so this is a lower bound.
        len_at_least: usize,
        /// The configured maximum, in bytes.
        max: usize,
    },
    /// The line is not valid UTF-8; it was skipped.
    InvalidUtf8 {
        /// The line number (1-based).
        line: u64,
        /// The length of the valid UTF-8 prefix of the line, in bytes.
        valid_up_to: usize,
    },
    /// Reading failed while reading this line; the stream ends after this error.
    Io {
        /// The number of the line being read when the error happened (1-based).
        line: u64,
        /// The I/O error.
        source: io::Error,
    },
    /// The file could not be opened; the stream ends after this error.
    Open {
        /// The path given to [`lines`](super::lines).
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

impl LineError {
    /// The line the error concerns; `None` for [`Open`](LineError::Open), which happens before
    /// the first line.
    ///
    /// ```
    /// use millrace::adapters::fs::LineError;
    ///
    /// let err = LineError::TooLong { line: 7, len_at_least: 10, max: 4 };
    /// assert_eq!(err.line(), Some(7));
    /// ```
    pub fn line(&self) -> Option<u64> {
        match self {
            LineError::TooLong { line, .. }
            | LineError::InvalidUtf8 { line, .. }
            | LineError::Io { line, .. } => Some(*line),
            LineError::Open { .. } => None,
        }
    }

    /// Whether the stream goes on after this error (`TooLong`, `InvalidUtf8`) or ends (`Io`,
    /// `Open`).
    ///
    /// ```
    /// use millrace::adapters::fs::LineError;
    ///
    /// assert!(LineError::InvalidUtf8 { line: 1, valid_up_to: 0 }.is_skipped_line());
    /// ```
    pub fn is_skipped_line(&self) -> bool {
        matches!(
            self,
            LineError::TooLong { .. } | LineError::InvalidUtf8 { .. }
        )
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::TooLong {
                line,
                len_at_least,
                max,
            } => write!(
                f,
                "line {line} is too long: at least {len_at_least} bytes, the limit is {max}; \
                 the line was skipped, raise the limit with `max_line_length` if it is valid"
            ),
            LineError::InvalidUtf8 { line, valid_up_to } => write!(
                f,
                "line {line} is not valid UTF-8 (valid up to byte {valid_up_to}); the line was \
                 skipped, re-encode the input as UTF-8"
            ),
            LineError::Io { line, source } => write!(
                f,
                "I/O error while reading line {line}: {source}; the stream ended, check the \
                 file or device and read again"
            ),
            LineError::Open { path, source } => write!(
                f,
                "cannot open `{}` for reading: {source}; check the path and its permissions",
                path.display()
            ),
        }
    }
}

impl std::error::Error for LineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LineError::Io { source, .. } | LineError::Open { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// An error of the atomic line sink ([`write_lines_atomic`](super::write_lines_atomic),
/// [`AtomicFile`](super::AtomicFile)). Whatever the variant, the target file was not replaced
/// (except [`SyncDir`](SinkError::SyncDir), see there) and the temporary file was removed.
///
/// `E` is the upstream's error type for
/// [`try_write_lines_atomic`](super::try_write_lines_atomic); it is
/// [`Infallible`] for sinks fed with plain lines.
///
/// ```
/// use millrace::adapters::fs::{self, SinkError};
/// use futures::stream;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out.txt");
/// let err = fs::write_lines_atomic(&path, stream::iter(["a", "b\nc"])).await.unwrap_err();
/// assert!(matches!(err, SinkError::Newline { line: 2 }));
/// assert!(!path.exists());
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SinkError<E = Infallible> {
    /// A file system operation failed.
    Io {
        /// What was being done, e.g. `"create the temporary file"`.
        action: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The line to write contains a newline, which would break the one-item-per-line layout.
    Newline {
        /// The number of the offending line (1-based) in the output.
        line: u64,
    },
    /// The upstream yielded an error; nothing was committed.
    Upstream {
        /// Lines written to the temporary file before the error (now discarded).
        lines_written: u64,
        /// The upstream's error.
        source: E,
    },
    /// The target was replaced, but the directory could not be synced: the new file is in
    /// place, yet a crash right now might still bring back the old one.
    SyncDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

impl<E: fmt::Display> fmt::Display for SinkError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkError::Io {
                action,
                path,
                source,
            } => write!(
                f,
                "atomic write: cannot {action} `{}`: {source}; the target was left untouched, \
                 check the directory's permissions and free space",
                path.display()
            ),
            SinkError::Newline { line } => write!(
                f,
                "atomic write: line {line} contains a newline; the target was left untouched, \
                 encode the item on one line (e.g. as JSON) before writing it"
            ),
            SinkError::Upstream {
                lines_written,
                source,
            } => write!(
                f,
                "atomic write: the input failed after {lines_written} lines: {source}; the \
                 target was left untouched, fix the input and write again"
            ),
            SinkError::SyncDir { path, source } => write!(
                f,
                "atomic write: the new file is in place but syncing the directory `{}` failed: \
                 {source}; the rename may not survive a crash, sync the file system",
                path.display()
            ),
        }
    }
}

impl<E> std::error::Error for SinkError<E>
where
    E: std::error::Error + 'static,
{
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SinkError::Io { source, .. } | SinkError::SyncDir { source, .. } => Some(source),
            SinkError::Upstream { source, .. } => Some(source),
            SinkError::Newline { .. } => None,
        }
    }
}
