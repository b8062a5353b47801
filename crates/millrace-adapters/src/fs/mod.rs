//! Files, line by line: an async [`lines`] source with line numbers in every error, and an
//! atomic line sink ([`write_lines_atomic`], [`AtomicFile`]) that never leaves a half-written
//! output. Feature `fs`.
//!
//! ```
//! use millrace::adapters::fs;
//! use futures::StreamExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let dir = tempfile::tempdir().unwrap();
//! let input = dir.path().join("in.txt");
//! let output = dir.path().join("out.txt");
//! std::fs::write(&input, b"a\n\xff\nb\n").unwrap();
//!
//! // Upper-case every good line, report and skip the bad ones, write the result atomically.
//! let upper = fs::lines(&input).filter_map(|item| async move {
//!     match item {
//!         Ok(line) => Some(line.text.to_uppercase()),
//!         Err(e) => {
//!             assert_eq!(e.line(), Some(2));
//!             None
//!         }
//!     }
//! });
//! assert_eq!(fs::write_lines_atomic(&output, upper).await.unwrap(), 2);
//! assert_eq!(std::fs::read_to_string(&output).unwrap(), "A\nB\n");
//! # }
//! ```

mod atomic;
mod codec;
mod error;
mod lines;

pub use self::atomic::{AtomicFile, try_write_lines_atomic, write_lines_atomic};
pub use self::error::{LineError, SinkError};
pub use self::lines::{
    DEFAULT_MAX_LINE_LENGTH, Line, LinePosition, Lines, READ_BUFFER, TrackedLines, lines,
    lines_from,
};
