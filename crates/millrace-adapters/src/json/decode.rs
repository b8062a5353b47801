//! Decoding: lines into values, each error item with its line number.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::stream::{FusedStream, Stream};
use millrace_core::Stage;
use millrace_core::positions::Positioned;
use pin_project_lite::pin_project;
use serde::de::DeserializeOwned;

use crate::fs::{Line, LineError};

/// How many characters of a malformed line [`JsonLineError::Malformed`] keeps.
///
/// ```
/// assert_eq!(millrace::adapters::json::SNIPPET_CHARS, 80);
/// ```
pub const SNIPPET_CHARS: usize = 80;

/// A decoded value with the number of the line it came from.
///
/// ```
/// use millrace::adapters::json::Decoded;
///
/// let d = Decoded { line: 3, value: 42u8 };
/// assert_eq!(d.into_value(), 42);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decoded<T> {
    /// The line number (1-based) in the input.
    pub line: u64,
    /// The decoded value.
    pub value: T,
}

impl<T> Decoded<T> {
    /// The value, without its line number.
    ///
    /// ```
    /// use millrace::adapters::json::Decoded;
    ///
    /// assert_eq!(Decoded { line: 1, value: "x" }.into_value(), "x");
    /// ```
    pub fn into_value(self) -> T {
        self.value
    }
}

/// An error item of [`decode`] / [`decode_lines`].
///
/// ```
/// use millrace::adapters::{fs, json::{self, JsonLineError}};
/// use futures::StreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let items: Vec<_> = json::decode_lines::<u32, _>(fs::lines_from(&b"1\nnot json\n"[..]))
///     .collect()
///     .await;
/// let err = items[1].as_ref().unwrap_err();
/// assert!(matches!(err, JsonLineError::Malformed { line: 2, snippet, .. } if snippet == "not json"));
/// assert_eq!(
///     err.to_string(),
///     "line 2 is not valid JSON for this type (expected ident at line 1 column 2): \
///      `not json`; the line was skipped, fix or remove it"
/// );
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum JsonLineError {
    /// The line is not valid JSON, or not the JSON the target type expects. The stream goes on
    /// with the next line.
    Malformed {
        /// The line number (1-based).
        line: u64,
        /// The start of the line (at most [`SNIPPET_CHARS`] characters, `…` appended when cut).
        snippet: String,
        /// serde_json's error (its own "line 1 column N" is the column within this line).
        source: serde_json::Error,
    },
    /// The line itself could not be read (see [`LineError`] for which errors end the stream).
    Line(LineError),
}

impl JsonLineError {
    /// The line the error concerns (`None` only for [`LineError::Open`]).
    ///
    /// ```
    /// use millrace::adapters::{fs::LineError, json::JsonLineError};
    ///
    /// let err = JsonLineError::Line(LineError::InvalidUtf8 { line: 4, valid_up_to: 0 });
    /// assert_eq!(err.line(), Some(4));
    /// ```
    pub fn line(&self) -> Option<u64> {
        match self {
            JsonLineError::Malformed { line, .. } => Some(*line),
            JsonLineError::Line(e) => e.line(),
        }
    }
}

impl fmt::Display for JsonLineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonLineError::Malformed {
                line,
                snippet,
                source,
            } => write!(
                f,
                "line {line} is not valid JSON for this type ({source}): `{snippet}`; the line \
                 was skipped, fix or remove it"
            ),
            JsonLineError::Line(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for JsonLineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JsonLineError::Malformed { source, .. } => Some(source),
            JsonLineError::Line(e) => Some(e),
        }
    }
}

impl From<LineError> for JsonLineError {
    fn from(e: LineError) -> Self {
        JsonLineError::Line(e)
    }
}

fn snippet(text: &str) -> String {
    match text.char_indices().nth(SNIPPET_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The stage that decodes each line as one JSON value of type `T`: apply it with
/// `.wrap(json::decode::<T>())` to a stream of `Result<Line, LineError>` (from
/// [`fs::lines`](crate::fs::lines)).
///
/// See [`decode_lines`] for the semantics.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::adapters::{fs, json};
/// use futures::TryStreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let values: Vec<u32> = fs::lines_from(&b"1\n2\n"[..])
///     .wrap(json::decode::<u32>())
///     .map_ok(|d| d.value)
///     .try_collect()
///     .await
///     .unwrap();
/// assert_eq!(values, [1, 2]);
/// # }
/// ```
pub fn decode<T>() -> DecodeStage<T> {
    DecodeStage {
        _target: PhantomData,
    }
}

/// Decodes each line of `lines` as one JSON value of type `T`.
///
/// - A good line becomes `Ok(Decoded { line, value })`.
/// - A malformed line becomes [`JsonLineError::Malformed`] with its number and a snippet, and
///   decoding **continues** with the next line (so `on_error(Resume)` skips it).
/// - A line error passes through as [`JsonLineError::Line`] (and ends the stream where the
///   lines source ends).
/// - Blank lines (empty or only whitespace) are skipped, as most JSON Lines writers and
///   readers do; the numbering of the other lines is unaffected.
///
/// ```
/// use millrace::adapters::{fs, json};
/// use futures::StreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let input: &[u8] = b"[1,2]\n\n[3]\n";
/// let out: Vec<_> = json::decode_lines::<Vec<u8>, _>(fs::lines_from(input))
///     .map(|item| item.unwrap())
///     .collect()
///     .await;
/// assert_eq!(out[0], json::Decoded { line: 1, value: vec![1, 2] });
/// assert_eq!(out[1], json::Decoded { line: 3, value: vec![3] });
/// # }
/// ```
pub fn decode_lines<T, S>(lines: S) -> Decode<S, T>
where
    S: Stream<Item = Result<Line, LineError>>,
    T: DeserializeOwned,
{
    Decode {
        upstream: lines,
        _target: PhantomData,
    }
}

/// A [`Stage`] that decodes JSON lines into `T`; built by [`decode`].
///
/// ```
/// use millrace::prelude::*;
/// use millrace::adapters::{fs, json};
/// use futures::StreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let stage: json::DecodeStage<bool> = json::decode();
/// let n = fs::lines_from(&b"true\n"[..]).wrap(stage).count().await;
/// assert_eq!(n, 1);
/// # }
/// ```
pub struct DecodeStage<T> {
    // `fn() -> T`: the stage is Send + Sync + Copy whatever `T` is; it holds no `T`.
    _target: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for DecodeStage<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecodeStage")
            .field("target", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T> Clone for DecodeStage<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for DecodeStage<T> {}

impl<T> Default for DecodeStage<T> {
    fn default() -> Self {
        decode()
    }
}

/// Decodes one item of a lines source: `None` for a blank line (nothing to decode), the
/// decoded value, or the error naming the line. [`decode_lines`] and [`decode_tracked`] are
/// built on it.
///
/// ```
/// use millrace::adapters::{fs::Line, json};
///
/// let line = |text: &str| Ok(Line { number: 4, text: text.to_owned() });
/// assert_eq!(json::decode_line::<u8>(line("  ")).map(|r| r.is_ok()), None);
/// assert_eq!(json::decode_line::<u8>(line("7")).unwrap().unwrap().value, 7);
/// assert!(json::decode_line::<u8>(line("x")).unwrap().is_err());
/// ```
pub fn decode_line<T: DeserializeOwned>(
    item: Result<Line, LineError>,
) -> Option<Result<Decoded<T>, JsonLineError>> {
    let line = match item {
        Err(e) => return Some(Err(JsonLineError::Line(e))),
        Ok(line) if line.text.trim().is_empty() => return None,
        Ok(line) => line,
    };
    Some(match serde_json::from_str(&line.text) {
        Ok(value) => Ok(Decoded {
            line: line.number,
            value,
        }),
        Err(source) => Err(JsonLineError::Malformed {
            line: line.number,
            snippet: snippet(&line.text),
            source,
        }),
    })
}

/// Decodes a tracked lines source (`fs::lines(path).tracked()`), keeping every line's
/// position: values and errors stay beside their [`LinePosition`](crate::fs::LinePosition);
/// blank lines become [`Filtered`](millrace_core::positions::Entry::Filtered) entries (counted,
/// and passed over by the commit position).
///
/// ```
/// use millrace::adapters::{fs, json};
/// use millrace::positions::Entry;
/// use futures::StreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let out: Vec<_> = json::decode_tracked::<u32, _>(fs::lines_from(&b"1\n\nnope\n"[..]).tracked())
///     .dead_letter_errors()
///     .collect()
///     .await;
/// let out: Vec<_> = out.into_iter().map(|p| (p.position.line, p.entry)).collect();
/// assert_eq!(out[0], (1, Entry::Item(json::Decoded { line: 1, value: 1 })));
/// assert_eq!(out[1], (2, Entry::Filtered));
/// assert!(matches!(&out[2], (3, Entry::Dead(reason)) if reason.starts_with("line 3 is not valid JSON")));
/// # }
/// ```
#[allow(clippy::type_complexity)]
pub fn decode_tracked<T, S>(
    lines: millrace_core::positions::Tracked<S>,
) -> millrace_core::positions::Tracked<
    impl Stream<Item = Positioned<crate::fs::LinePosition, Result<Decoded<T>, JsonLineError>>>,
>
where
    S: Stream<Item = Positioned<crate::fs::LinePosition, Result<Line, LineError>>>,
    T: DeserializeOwned,
{
    lines.filter_map(decode_line::<T>)
}

impl<S, T> Stage<S> for DecodeStage<T>
where
    S: Stream<Item = Result<Line, LineError>>,
    T: DeserializeOwned,
{
    type Output = Decode<S, T>;

    fn wrap(self, upstream: S) -> Decode<S, T> {
        decode_lines(upstream)
    }
}

pin_project! {
    /// Stream for [`decode_lines`] and the [`decode`] stage; `get_ref`, `get_mut`,
    /// `get_pin_mut` and `into_inner` reach the upstream lines.
    ///
    /// ```
    /// use millrace::adapters::{fs, json};
    ///
    /// let mut d = json::decode_lines::<u8, _>(fs::lines_from(&b"1\n"[..]));
    /// assert_eq!(d.get_ref().line_number(), 0);
    /// assert_eq!(d.get_mut().line_number(), 0);
    /// let lines: fs::Lines<&[u8]> = d.into_inner();
    /// assert_eq!(lines.line_number(), 0);
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct Decode<S, T> {
        #[pin]
        upstream: S,
        _target: PhantomData<fn() -> T>,
    }
}

impl<S, T> Decode<S, T> {
    millrace_core::__private::delegate_access_inner!(upstream, S);
}

impl<S: fmt::Debug, T> fmt::Debug for Decode<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decode")
            .field("upstream", &self.upstream)
            .field("target", &std::any::type_name::<T>())
            .finish()
    }
}

impl<S, T> Stream for Decode<S, T>
where
    S: Stream<Item = Result<Line, LineError>>,
    T: DeserializeOwned,
{
    type Item = Result<Decoded<T>, JsonLineError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut upstream = self.project().upstream;
        loop {
            let Some(item) = ready!(upstream.as_mut().poll_next(cx)) else {
                return Poll::Ready(None);
            };
            if let Some(decoded) = decode_line(item) {
                return Poll::Ready(Some(decoded));
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // Blank lines are skipped, so the lower bound is 0.
        (0, self.upstream.size_hint().1)
    }
}

impl<S, T> FusedStream for Decode<S, T>
where
    S: FusedStream<Item = Result<Line, LineError>>,
    T: DeserializeOwned,
{
    fn is_terminated(&self) -> bool {
        self.upstream.is_terminated()
    }
}
