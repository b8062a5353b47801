//! [`IdleTimeout`]: ends the stream when the upstream is idle too long waiting for an item,
//! built by [`idle_timeout`](crate::PipelineExt::idle_timeout) (formerly `timeout_each`).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::timeout_each::{TimeoutError, deadline_after, items_or_one_error, nonzero_duration};
use crate::error::ConfigError;
use crate::stage::Stage;

pin_project! {
    /// Stream for the [`idle_timeout`](crate::PipelineExt::idle_timeout) method.
    ///
    /// The accessors return `Option`s because the upstream is dropped once the limit elapses.
    ///
    /// ```
    /// use millrace::wrappers::IdleTimeout;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let s = IdleTimeout::checked_new(stream::iter([1, 2]), Duration::from_secs(1)).unwrap();
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(1), Ok(2)]);
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct IdleTimeout<S> {
        // `None` once the limit elapsed: the upstream is dropped right away.
        #[pin]
        stream: Option<S>,
        limit: Duration,
        // One timer per wrapper, created at the first wait and re-armed with `reset`. Boxed
        // (once) so that `IdleTimeout<S>` is `Unpin` when `S` is.
        sleep: Option<Pin<Box<Sleep>>>,
        // The timer is running for the current wait.
        armed: bool,
        delivered: u64,
    }
}

impl<S: Stream> IdleTimeout<S> {
    /// Limits every wait for an item to `limit`.
    ///
    /// # Errors
    ///
    /// A zero `limit` is a [`ConfigError`]:
    ///
    /// ```
    /// use millrace::wrappers::IdleTimeout;
    /// use futures::stream;
    /// use std::time::Duration;
    ///
    /// let err = IdleTimeout::checked_new(stream::iter([1]), Duration::ZERO).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "`idle_timeout`: `limit` must be a non-zero duration, got 0ns; pass a value in that range"
    /// );
    /// ```
    pub fn checked_new(stream: S, limit: Duration) -> Result<Self, ConfigError> {
        Self::checked_named(stream, limit, "idle_timeout")
    }

    /// Renamed [`checked_new`](Self::checked_new).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_new`")]
    pub fn try_new(stream: S, limit: Duration) -> Result<Self, ConfigError> {
        Self::checked_new(stream, limit)
    }

    /// `checked_new`, naming `stage` in the error (the deprecated `timeout_each` names itself).
    pub(crate) fn checked_named(
        stream: S,
        limit: Duration,
        stage: &'static str,
    ) -> Result<Self, ConfigError> {
        let limit = nonzero_duration(stage, "limit", limit)?;
        Ok(Self::build(stream, limit))
    }

    fn build(stream: S, limit: Duration) -> Self {
        IdleTimeout {
            stream: Some(stream),
            limit,
            sleep: None,
            armed: false,
            delivered: 0,
        }
    }

    delegate_access_inner!(optional stream, S);
}

impl<S: Stream> Stream for IdleTimeout<S> {
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
            let deadline = deadline_after(*this.limit);
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

impl<S: Stream> FusedStream for IdleTimeout<S> {
    fn is_terminated(&self) -> bool {
        self.stream.is_none()
    }
}

impl<S: fmt::Debug> fmt::Debug for IdleTimeout<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdleTimeout")
            .field("stream", &self.stream)
            .field("limit", &self.limit)
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

/// A [`Stage`] that wraps its upstream in an [`IdleTimeout`]; see
/// [`idle_timeout`](crate::PipelineExt::idle_timeout).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::IdleTimeoutStage;
/// use futures::{stream, StreamExt};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let stage = IdleTimeoutStage::new(Duration::from_millis(10));
/// let out: Vec<_> = stream::iter([7]).wrap(stage).collect().await;
/// assert_eq!(out, [Ok(7)]);
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct IdleTimeoutStage {
    limit: Duration,
}

impl IdleTimeoutStage {
    /// Limits every wait for an item to `limit`.
    ///
    /// # Panics
    ///
    /// If `limit` is zero, with the [`ConfigError`] message; [`IdleTimeoutStage::checked_new`]
    /// returns it.
    #[track_caller]
    pub fn new(limit: Duration) -> Self {
        crate::error::built(Self::checked_new(limit))
    }

    /// Like [`IdleTimeoutStage::new`], returning the [`ConfigError`] instead of panicking.
    pub fn checked_new(limit: Duration) -> Result<Self, ConfigError> {
        Ok(IdleTimeoutStage {
            limit: nonzero_duration("idle_timeout", "limit", limit)?,
        })
    }

    /// Renamed [`checked_new`](Self::checked_new).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_new`")]
    pub fn try_new(limit: Duration) -> Result<Self, ConfigError> {
        Self::checked_new(limit)
    }
}

impl<S: Stream> Stage<S> for IdleTimeoutStage {
    type Output = IdleTimeout<S>;

    fn wrap(self, upstream: S) -> IdleTimeout<S> {
        IdleTimeout::build(upstream, self.limit)
    }
}
