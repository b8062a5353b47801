//! [`TimeoutEach`]: a limit on the wait for every item, built by
//! [`timeout_each`](crate::PipelineExt::timeout_each); and [`TimeoutError`], shared with
//! [`Deadline`](crate::wrappers::Deadline).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::error::ConfigError;
use crate::stage::Stage;

/// A time limit elapsed; yielded by [`timeout_each`](crate::PipelineExt::timeout_each) and
/// [`deadline`](crate::PipelineExt::deadline), after which the stream ends and the upstream is
/// dropped (cancelled).
///
/// ```
/// use millrace::wrappers::TimeoutError;
/// use std::time::Duration;
///
/// let err = TimeoutError::Item { after: Duration::from_millis(100), index: 3 };
/// assert_eq!(
///     err.to_string(),
///     "no item #3 within 100ms, so the upstream was cancelled; raise the limit, \
///      or re-open the source with `restartable(..).retry(..)`"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutError {
    /// The upstream took longer than `after` to produce item number `index` (0-based), or to
    /// end after its last item.
    Item {
        /// The per-item limit that elapsed.
        after: Duration,
        /// How many items had been delivered before the wait that timed out.
        index: u64,
    },
    /// The whole stream did not finish within `after` from its first poll.
    Deadline {
        /// The deadline that elapsed, measured from the first poll.
        after: Duration,
    },
}

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeoutError::Item { after, index } => write!(
                f,
                "no item #{index} within {after:?}, so the upstream was cancelled; raise the \
                 limit, or re-open the source with `restartable(..).retry(..)`"
            ),
            TimeoutError::Deadline { after } => write!(
                f,
                "the stream did not finish within its deadline of {after:?}, so the upstream \
                 was cancelled; raise the deadline, or resume from a checkpoint"
            ),
        }
    }
}

impl std::error::Error for TimeoutError {}

/// A zero limit would time out before the upstream is ever polled twice: reject it.
pub(crate) fn nonzero_duration(
    stage: &'static str,
    param: &'static str,
    d: Duration,
) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        Err(ConfigError::out_of_range(
            stage,
            param,
            "0ns",
            "a non-zero duration",
        ))
    } else {
        Ok(d)
    }
}

pin_project! {
    /// Stream for the [`timeout_each`](crate::PipelineExt::timeout_each) method.
    ///
    /// The accessors return `Option`s because the upstream is dropped once the limit elapses.
    ///
    /// ```
    /// use millrace::wrappers::TimeoutEach;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let s = TimeoutEach::try_new(stream::iter([1, 2]), Duration::from_secs(1)).unwrap();
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(1), Ok(2)]);
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct TimeoutEach<S> {
        // `None` once the limit elapsed: the upstream is dropped right away.
        #[pin]
        stream: Option<S>,
        limit: Duration,
        // One timer per wrapper, created at the first wait and re-armed with `reset`. Boxed
        // (once) so that `TimeoutEach<S>` is `Unpin` when `S` is.
        sleep: Option<Pin<Box<Sleep>>>,
        // The timer is running for the current wait.
        armed: bool,
        delivered: u64,
    }
}

impl<S: Stream> TimeoutEach<S> {
    /// Limits every wait for an item to `limit`.
    ///
    /// # Errors
    ///
    /// A zero `limit` is a [`ConfigError`]:
    ///
    /// ```
    /// use millrace::wrappers::TimeoutEach;
    /// use futures::stream;
    /// use std::time::Duration;
    ///
    /// let err = TimeoutEach::try_new(stream::iter([1]), Duration::ZERO).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "`timeout_each`: `limit` must be a non-zero duration, got 0ns; pass a value in that range"
    /// );
    /// ```
    pub fn try_new(stream: S, limit: Duration) -> Result<Self, ConfigError> {
        let limit = nonzero_duration("timeout_each", "limit", limit)?;
        Ok(Self::build(stream, limit))
    }

    fn build(stream: S, limit: Duration) -> Self {
        TimeoutEach {
            stream: Some(stream),
            limit,
            sleep: None,
            armed: false,
            delivered: 0,
        }
    }

    /// The upstream, or `None` once it was dropped after a timeout.
    pub fn get_ref(&self) -> Option<&S> {
        self.stream.as_ref()
    }

    /// The upstream, mutably, or `None` once it was dropped after a timeout.
    ///
    /// Pulling items from it directly bypasses the timer.
    pub fn get_mut(&mut self) -> Option<&mut S> {
        self.stream.as_mut()
    }

    /// The pinned upstream, or `None` once it was dropped after a timeout.
    pub fn get_pin_mut(self: Pin<&mut Self>) -> Option<Pin<&mut S>> {
        self.project().stream.as_pin_mut()
    }

    /// Consumes the wrapper, returning the upstream unless it was dropped after a timeout.
    pub fn into_inner(self) -> Option<S> {
        self.stream
    }
}

impl<S: Stream> Stream for TimeoutEach<S> {
    type Item = Result<S::Item, TimeoutError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let Some(stream) = this.stream.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        match stream.poll_next(cx) {
            Poll::Ready(Some(item)) => {
                *this.armed = false;
                *this.delivered += 1;
                return Poll::Ready(Some(Ok(item)));
            }
            Poll::Ready(None) => {
                this.stream.set(None);
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        // The clock for this item starts at the first poll that finds the upstream pending.
        if !*this.armed {
            *this.armed = true;
            let deadline = Instant::now() + *this.limit;
            match this.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => *this.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        let sleep = this.sleep.as_mut().expect("armed above");
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.stream.set(None); // cancel the upstream
                Poll::Ready(Some(Err(TimeoutError::Item {
                    after: *this.limit,
                    index: *this.delivered,
                })))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        items_or_one_error(self.stream.as_ref())
    }
}

/// The size hint of a stream that yields every upstream item, or some of them and then one
/// timeout error and ends (`None` once it has ended); shared with [`Deadline`](super::Deadline).
pub(crate) fn items_or_one_error<S: Stream>(upstream: Option<&S>) -> (usize, Option<usize>) {
    match upstream {
        Some(stream) => {
            let (lo, hi) = stream.size_hint();
            (lo.min(1), hi.and_then(|hi| hi.checked_add(1)))
        }
        None => (0, Some(0)),
    }
}

impl<S: Stream> FusedStream for TimeoutEach<S> {
    fn is_terminated(&self) -> bool {
        self.stream.is_none()
    }
}

impl<S: fmt::Debug> fmt::Debug for TimeoutEach<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutEach")
            .field("stream", &self.stream)
            .field("limit", &self.limit)
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

/// A [`Stage`] that wraps its upstream in a [`TimeoutEach`]; see
/// [`timeout_each`](crate::PipelineExt::timeout_each).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::TimeoutEachStage;
/// use futures::{stream, StreamExt};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let stage = TimeoutEachStage::new(Duration::from_millis(10));
/// let out: Vec<_> = stream::iter([7]).wrap(stage).collect().await;
/// assert_eq!(out, [Ok(7)]);
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TimeoutEachStage {
    limit: Duration,
}

impl TimeoutEachStage {
    /// Limits every wait for an item to `limit`.
    ///
    /// # Panics
    ///
    /// If `limit` is zero, with the [`ConfigError`] message; [`TimeoutEachStage::try_new`]
    /// returns it.
    #[track_caller]
    pub fn new(limit: Duration) -> Self {
        crate::error::built(Self::try_new(limit))
    }

    /// Like [`TimeoutEachStage::new`], returning the [`ConfigError`] instead of panicking.
    pub fn try_new(limit: Duration) -> Result<Self, ConfigError> {
        Ok(TimeoutEachStage {
            limit: nonzero_duration("timeout_each", "limit", limit)?,
        })
    }
}

impl<S: Stream> Stage<S> for TimeoutEachStage {
    type Output = TimeoutEach<S>;

    fn wrap(self, upstream: S) -> TimeoutEach<S> {
        TimeoutEach::build(upstream, self.limit)
    }
}
