//! The async lines source: [`lines`], [`lines_from`] and the [`Lines`] stream.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::stream::{FusedStream, Stream};
use millrace_core::ConfigError;
use millrace_core::positions::{CountRead, Position, Positioned, Tracked};
use pin_project_lite::pin_project;
use tokio::io::AsyncRead;
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;

use super::codec::{Frame, LineCodec};
use super::error::LineError;

/// The default maximum line length: 1 MiB. A source reading untrusted input must not buffer an
/// endless line; raise it with [`Lines::max_line_length`].
///
/// ```
/// assert_eq!(millrace::adapters::fs::DEFAULT_MAX_LINE_LENGTH, 1 << 20);
/// ```
pub const DEFAULT_MAX_LINE_LENGTH: usize = 1024 * 1024;

/// The read buffer's capacity: 64 KiB, so a file is read in few, large reads (each read of a
/// `tokio::fs::File` is a trip to the blocking pool).
///
/// ```
/// assert_eq!(millrace::adapters::fs::READ_BUFFER, 65_536);
/// ```
pub const READ_BUFFER: usize = 64 * 1024;

/// One line of text with its 1-based line number, without its `\n` or `\r\n`.
///
/// ```
/// use millrace::adapters::fs::{self, Line};
/// use futures::StreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut lines = fs::lines_from(&b"first\r\nsecond"[..]);
/// let first: Line = lines.next().await.unwrap().unwrap();
/// assert_eq!(first, Line { number: 1, text: "first".to_owned() });
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Line {
    /// The line number, starting at 1. Skipped (bad) lines keep their number, so the numbers
    /// always match the input.
    pub number: u64,
    /// The text of the line, without the line terminator.
    pub text: String,
}

/// Reads the file at `path` line by line: a stream of `Result<Line, LineError>`.
///
/// The file is opened on the first poll (so the call itself needs no runtime and can be used
/// in a `restartable` factory); a failure to open is one [`LineError::Open`] item, then the
/// stream ends.
///
/// Lines end at `\n`; a `\r` before it is removed; the last line may lack a newline; empty
/// lines are kept (and numbered). A line longer than the maximum (default
/// [`DEFAULT_MAX_LINE_LENGTH`], set with [`Lines::max_line_length`]) or not valid UTF-8 is one
/// error item naming the line, and the stream **continues** with the next line, so
/// `on_error(Resume)` skips exactly that line. An I/O error is the last item.
/// Memory stays bounded by the maximum line length plus the read buffer ([`READ_BUFFER`]).
///
/// # Examples
///
/// ```
/// use millrace::adapters::fs;
/// use futures::TryStreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("in.txt");
/// std::fs::write(&path, "alpha\r\n\nomega").unwrap();
///
/// let texts: Vec<(u64, String)> = fs::lines(&path)
///     .map_ok(|line| (line.number, line.text))
///     .try_collect()
///     .await
///     .unwrap();
/// assert_eq!(texts, [(1, "alpha".into()), (2, String::new()), (3, "omega".into())]);
/// # }
/// ```
///
/// # Panics
///
/// Polling panics outside a tokio runtime (the file is opened on the blocking pool).
pub fn lines(path: impl AsRef<Path>) -> Lines<tokio::fs::File> {
    Lines {
        state: State::Start {
            path: path.as_ref().to_owned(),
            convert: tokio::fs::File::from_std,
        },
        max: DEFAULT_MAX_LINE_LENGTH,
        number: 0,
        start: 0,
        ended_at: 0,
    }
}

/// Where a line ends in its input: the byte offset just after it (its terminator included) and
/// its line number. A [`Lines`] source opened from a path resumes there
/// ([`Lines::resume_after`]) by seeking, not by re-reading; it is what [`Lines::tracked`]
/// attaches to every line.
///
/// ```
/// use millrace::adapters::fs::LinePosition;
/// use millrace::positions::Position;
///
/// let at = LinePosition { offset: 120, line: 3 };
/// assert_eq!(at.to_text(), "120:3");
/// assert_eq!(LinePosition::from_text("120:3"), Some(at));
/// assert_eq!(at.to_string(), "line 3 (byte offset 120)");
/// assert!(LinePosition { offset: 130, line: 4 } > at);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinePosition {
    /// The byte offset just after the line and its terminator.
    pub offset: u64,
    /// The line's 1-based number (0: before the first line).
    pub line: u64,
}

impl fmt::Display for LinePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} (byte offset {})", self.line, self.offset)
    }
}

impl Position for LinePosition {
    fn to_text(&self) -> String {
        format!("{}:{}", self.offset, self.line)
    }

    fn from_text(text: &str) -> Option<Self> {
        let (offset, line) = text.split_once(':')?;
        Some(LinePosition {
            offset: offset.parse().ok()?,
            line: line.parse().ok()?,
        })
    }
}

/// Reads lines from any [`AsyncRead`] (a socket, a child's stdout, a byte slice, a
/// decompressor): the same stream and rules as [`lines`].
///
/// ```
/// use millrace::adapters::fs::{self, LineError};
/// use futures::StreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let input: &[u8] = b"short\nthis one is too long\nok";
/// let items: Vec<_> = fs::lines_from(input).max_line_length(8).collect().await;
/// assert_eq!(items.len(), 3);
/// assert!(matches!(
///     items[1],
///     Err(LineError::TooLong { line: 2, len_at_least: 20, max: 8 })
/// ));
/// assert_eq!(items[2].as_ref().unwrap().number, 3);
/// # }
/// ```
pub fn lines_from<R: AsyncRead>(reader: R) -> Lines<R> {
    Lines {
        state: State::Reading {
            framed: FramedRead::with_capacity(
                reader,
                LineCodec::new(DEFAULT_MAX_LINE_LENGTH),
                READ_BUFFER,
            ),
        },
        max: DEFAULT_MAX_LINE_LENGTH,
        number: 0,
        start: 0,
        ended_at: 0,
    }
}

pin_project! {
    /// Stream for the [`lines`] and [`lines_from`] sources.
    ///
    /// There are no `get_ref`/`into_inner` accessors: a source opened from a path has no
    /// reader until its first poll.
    #[must_use = "streams do nothing unless polled"]
    pub struct Lines<R> {
        #[pin]
        state: State<R>,
        max: usize,
        // Number of the last line yielded (or skipped).
        number: u64,
        // The byte offset reading started at (a resumed source seeks there).
        start: u64,
        // Bytes consumed when reading stopped (the reader is gone then).
        ended_at: u64,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<R> {
        Start { path: PathBuf, convert: fn(std::fs::File) -> R },
        Opening {
            path: PathBuf,
            convert: fn(std::fs::File) -> R,
            open: JoinHandle<io::Result<std::fs::File>>,
        },
        Reading { #[pin] framed: FramedRead<R, LineCodec> },
        Done,
    }
}

impl<R> Lines<R> {
    /// Sets the maximum line length in bytes, not counting the `\n` or `\r\n` (default
    /// [`DEFAULT_MAX_LINE_LENGTH`]).
    ///
    /// ```
    /// use millrace::adapters::fs;
    /// use futures::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let items: Vec<_> = fs::lines_from(&b"1234\n12345\n"[..]).max_line_length(4).collect().await;
    /// assert!(items[0].is_ok());
    /// assert!(items[1].is_err());
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// Panics if `max` is 0, with the message of
    /// [`checked_max_line_length`](Self::checked_max_line_length)'s error.
    #[track_caller]
    pub fn max_line_length(self, max: usize) -> Self {
        match self.checked_max_line_length(max) {
            Ok(lines) => lines,
            Err(e) => panic!("{e}"),
        }
    }

    /// Sets the maximum line length, or returns a [`ConfigError`] if `max` is 0.
    ///
    /// ```
    /// use millrace::adapters::fs;
    ///
    /// let err = fs::lines("in.txt").checked_max_line_length(0).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "`lines`: `max_line_length` must be at least 1, got 0; pass a non-zero value"
    /// );
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if `max` is 0.
    pub fn checked_max_line_length(mut self, max: usize) -> Result<Self, ConfigError> {
        if max == 0 {
            return Err(ConfigError::zero("lines", "max_line_length"));
        }
        self.max = max;
        if let State::Reading { framed } = &mut self.state {
            framed.decoder_mut().max = max;
        }
        Ok(self)
    }

    /// Renamed [`checked_max_line_length`](Self::checked_max_line_length).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_max_line_length`")]
    pub fn try_max_line_length(self, max: usize) -> Result<Self, ConfigError> {
        self.checked_max_line_length(max)
    }

    /// The position just after the last line yielded or skipped (where a resumed source
    /// would continue).
    ///
    /// ```
    /// use millrace::adapters::fs::{self, LinePosition};
    /// use futures::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut lines = fs::lines_from(&b"ab\r\ncd\n"[..]);
    /// lines.next().await;
    /// assert_eq!(lines.position(), LinePosition { offset: 4, line: 1 });
    /// while lines.next().await.is_some() {}
    /// // Kept once the input has ended.
    /// assert_eq!(lines.position(), LinePosition { offset: 7, line: 2 });
    /// # }
    /// ```
    pub fn position(&self) -> LinePosition {
        let consumed = match &self.state {
            State::Reading { framed } => framed.decoder().consumed,
            _ => self.ended_at,
        };
        LinePosition {
            offset: self.start + consumed,
            line: self.number,
        }
    }

    /// Tracks the lines: every line (and every bad line's error) comes with the
    /// [`LinePosition`] after it, for a sink that commits positions with its data (see
    /// [`millrace::positions`](millrace_core::positions)). Resume with
    /// [`resume_after`](Self::resume_after).
    ///
    /// ```
    /// use millrace::adapters::fs::{self, LinePosition};
    /// use futures::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<_> = fs::lines_from(&b"a\nbb\n"[..]).tracked().collect().await;
    /// let at: Vec<LinePosition> = out.iter().map(|p| p.position).collect();
    /// assert_eq!(at, [LinePosition { offset: 2, line: 1 }, LinePosition { offset: 5, line: 2 }]);
    /// # }
    /// ```
    pub fn tracked(self) -> Tracked<CountRead<TrackedLines<R>>> {
        Tracked::new(TrackedLines { lines: self })
    }

    /// The number of the last line yielded or skipped (0 before the first line).
    ///
    /// ```
    /// use millrace::adapters::fs;
    /// use futures::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut lines = fs::lines_from(&b"a\nb\n"[..]);
    /// assert_eq!(lines.line_number(), 0);
    /// lines.next().await;
    /// assert_eq!(lines.line_number(), 1);
    /// # }
    /// ```
    pub fn line_number(&self) -> u64 {
        self.number
    }
}

impl Lines<tokio::fs::File> {
    /// Resumes after `position` (a position committed by an earlier run; `None`: from the
    /// start): the file is opened and **seeked** to the byte offset, and line numbers go on
    /// from the position's line. A file shorter than the offset is an [`LineError::Open`]
    /// error that says so.
    ///
    /// ```
    /// use millrace::adapters::fs::{self, LinePosition};
    /// use futures::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("in.txt");
    /// std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
    /// let after_one = LinePosition { offset: 4, line: 1 };
    /// let rest: Vec<_> = fs::lines(&path)
    ///     .resume_after(Some(after_one))
    ///     .map(|l| l.unwrap())
    ///     .map(|l| (l.number, l.text))
    ///     .collect()
    ///     .await;
    /// assert_eq!(rest, [(2, "two".to_owned()), (3, "three".to_owned())]);
    /// # }
    /// ```
    pub fn resume_after(mut self, position: Option<LinePosition>) -> Self {
        let at = position.unwrap_or_default();
        self.start = at.offset;
        self.number = at.line;
        self
    }
}

pin_project! {
    /// The stream inside [`Lines::tracked`]: each item of [`Lines`] beside the
    /// [`LinePosition`] after it.
    #[must_use = "streams do nothing unless polled"]
    pub struct TrackedLines<R> {
        #[pin]
        lines: Lines<R>,
    }
}

impl<R: fmt::Debug> fmt::Debug for TrackedLines<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackedLines")
            .field("lines", &self.lines)
            .finish()
    }
}

impl<R: AsyncRead> Stream for TrackedLines<R> {
    type Item = Positioned<LinePosition, Result<Line, LineError>>;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut lines = self.project().lines;
        let item = ready!(lines.as_mut().poll_next(cx));
        Poll::Ready(item.map(|item| Positioned::item(lines.position(), item)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.lines.size_hint()
    }
}

impl<R: AsyncRead> FusedStream for TrackedLines<R> {
    fn is_terminated(&self) -> bool {
        self.lines.is_terminated()
    }
}

impl<R: fmt::Debug> fmt::Debug for Lines<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Start { .. } => "not opened",
            State::Opening { .. } => "opening",
            State::Reading { .. } => "reading",
            State::Done => "done",
        };
        f.debug_struct("Lines")
            .field("state", &state)
            .field("max_line_length", &self.max)
            .field("line_number", &self.number)
            .finish()
    }
}

impl<R: AsyncRead> Stream for Lines<R> {
    type Item = Result<Line, LineError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Start { path, convert } => {
                    let (path, convert) = (std::mem::take(path), *convert);
                    let open_path = path.clone();
                    let start = *this.start;
                    let open = tokio::task::spawn_blocking(move || {
                        use std::io::Seek as _;
                        let mut file = std::fs::File::open(open_path)?;
                        if start > 0 {
                            let len = file.metadata()?.len();
                            if len < start {
                                return Err(io::Error::new(
                                    io::ErrorKind::InvalidInput,
                                    format!(
                                        "the file is {len} bytes long, shorter than the resume \
                                         position (byte {start}): it was truncated or replaced \
                                         since the position was committed; start over on a new \
                                         pipeline name, or restore the file"
                                    ),
                                ));
                            }
                            file.seek(io::SeekFrom::Start(start))?;
                        }
                        Ok(file)
                    });
                    this.state.set(State::Opening {
                        path,
                        convert,
                        open,
                    });
                }
                StateProj::Opening {
                    path,
                    convert,
                    open,
                } => {
                    let result = match ready!(Pin::new(open).poll(cx)) {
                        Ok(result) => result,
                        Err(join) if join.is_panic() => {
                            std::panic::resume_unwind(join.into_panic())
                        }
                        Err(join) => Err(io::Error::other(join)),
                    };
                    match result {
                        Ok(file) => {
                            let reader = convert(file);
                            let framed = FramedRead::with_capacity(
                                reader,
                                LineCodec::new(*this.max),
                                READ_BUFFER,
                            );
                            this.state.set(State::Reading { framed });
                        }
                        Err(source) => {
                            let path = std::mem::take(path);
                            this.state.set(State::Done);
                            return Poll::Ready(Some(Err(LineError::Open { path, source })));
                        }
                    }
                }
                StateProj::Reading { mut framed } => {
                    let item = ready!(framed.as_mut().poll_next(cx));
                    let max = *this.max;
                    if !matches!(item, Some(Ok(_))) {
                        // Reading stops here: keep the position.
                        *this.ended_at = framed.decoder().consumed;
                    }
                    return Poll::Ready(match item {
                        Some(Ok(frame)) => {
                            *this.number += 1;
                            let line = *this.number;
                            Some(match frame {
                                Frame::Text(text) => Ok(Line { number: line, text }),
                                Frame::TooLong { len_at_least } => Err(LineError::TooLong {
                                    line,
                                    len_at_least,
                                    max,
                                }),
                                Frame::InvalidUtf8 { valid_up_to } => {
                                    Err(LineError::InvalidUtf8 { line, valid_up_to })
                                }
                            })
                        }
                        Some(Err(source)) => {
                            // The error belongs to the line being read. An over-long line
                            // being skipped is not reported first: its end was not found, and
                            // a resumed run reads it again from the position before it, so it
                            // is reported once, by the run that reads it whole.
                            let line = *this.number + 1;
                            this.state.set(State::Done);
                            Some(Err(LineError::Io { line, source }))
                        }
                        None => {
                            this.state.set(State::Done);
                            None
                        }
                    });
                }
                StateProj::Done => return Poll::Ready(None),
            }
        }
    }
}

impl<R: AsyncRead> FusedStream for Lines<R> {
    fn is_terminated(&self) -> bool {
        matches!(self.state, State::Done)
    }
}
