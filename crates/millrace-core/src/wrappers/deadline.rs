//! [`Deadline`]: a limit on the whole stream, built by
//! [`deadline`](crate::PipelineExt::deadline).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::timeout_each::{TimeoutError, items_or_one_error, nonzero_duration};
use crate::error::ConfigError;
use crate::stage::Stage;

pin_project! {
    /// Stream for the [`deadline`](crate::PipelineExt::deadline) method.
    ///
    /// The accessors return `Option`s because the upstream is dropped once the deadline passes.
    ///
    /// ```
    /// use millrace::wrappers::Deadline;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let s = Deadline::checked_new(stream::iter([1, 2]), Duration::from_secs(1)).unwrap();
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(1), Ok(2)]);
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct Deadline<S> {
        // `None` once the deadline passed (or the upstream ended): it is dropped right away.
        #[pin]
        stream: Option<S>,
        limit: Duration,
        // Created (boxed, once) at the first poll, which starts the clock; boxed so that
        // `Deadline<S>` is `Unpin` when `S` is.
        sleep: Option<Pin<Box<Sleep>>>,
    }
}

impl<S: Stream> Deadline<S> {
    /// The whole stream must finish within `limit` of its first poll.
    ///
    /// # Errors
    ///
    /// A zero `limit` is a [`ConfigError`]:
    ///
    /// ```
    /// use millrace::wrappers::Deadline;
    /// use futures::stream;
    /// use std::time::Duration;
    ///
    /// let err = Deadline::checked_new(stream::iter([1]), Duration::ZERO).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "`deadline`: `limit` must be a non-zero duration, got 0ns; pass a value in that range"
    /// );
    /// ```
    pub fn checked_new(stream: S, limit: Duration) -> Result<Self, ConfigError> {
        let limit = nonzero_duration("deadline", "limit", limit)?;
        Ok(Self::build(stream, limit))
    }

    /// Renamed [`checked_new`](Self::checked_new).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_new`")]
    pub fn try_new(stream: S, limit: Duration) -> Result<Self, ConfigError> {
        Self::checked_new(stream, limit)
    }

    fn build(stream: S, limit: Duration) -> Self {
        Deadline {
            stream: Some(stream),
            limit,
            sleep: None,
        }
    }

    delegate_access_inner!(optional stream, S);
}

impl<S: Stream> Stream for Deadline<S> {
    type Item = Result<S::Item, TimeoutError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let Some(stream) = this.stream.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let limit = *this.limit;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        // The timer is checked before every pull, so even an always-ready upstream is cut off
        // at the first pull after the timer fired.
        if sleep.as_mut().poll(cx).is_ready() {
            this.stream.set(None); // cancel the upstream
            return Poll::Ready(Some(Err(TimeoutError::Deadline { after: limit })));
        }
        match stream.poll_next(cx) {
            Poll::Ready(Some(item)) => Poll::Ready(Some(Ok(item))),
            Poll::Ready(None) => {
                this.stream.set(None);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        items_or_one_error(self.stream.as_ref())
    }
}

impl<S: Stream> FusedStream for Deadline<S> {
    fn is_terminated(&self) -> bool {
        self.stream.is_none()
    }
}

impl<S: fmt::Debug> fmt::Debug for Deadline<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deadline")
            .field("stream", &self.stream)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// A [`Stage`] that wraps its upstream in a [`Deadline`]; see
/// [`deadline`](crate::PipelineExt::deadline).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::DeadlineStage;
/// use futures::{stream, StreamExt};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let stage = DeadlineStage::new(Duration::from_secs(5));
/// let out: Vec<_> = stream::iter([7]).wrap(stage).collect().await;
/// assert_eq!(out, [Ok(7)]);
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DeadlineStage {
    limit: Duration,
}

impl DeadlineStage {
    /// The whole stream must finish within `limit` of its first poll.
    ///
    /// # Panics
    ///
    /// If `limit` is zero, with the [`ConfigError`] message; [`DeadlineStage::checked_new`]
    /// returns it.
    #[track_caller]
    pub fn new(limit: Duration) -> Self {
        crate::error::built(Self::checked_new(limit))
    }

    /// Like [`DeadlineStage::new`], returning the [`ConfigError`] instead of panicking.
    pub fn checked_new(limit: Duration) -> Result<Self, ConfigError> {
        Ok(DeadlineStage {
            limit: nonzero_duration("deadline", "limit", limit)?,
        })
    }

    /// Renamed [`checked_new`](Self::checked_new).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_new`")]
    pub fn try_new(limit: Duration) -> Result<Self, ConfigError> {
        Self::checked_new(limit)
    }
}

impl<S: Stream> Stage<S> for DeadlineStage {
    type Output = Deadline<S>;

    fn wrap(self, upstream: S) -> Deadline<S> {
        Deadline::build(upstream, self.limit)
    }
}
