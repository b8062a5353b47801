//! [`ItemTimeout`]: a per-item time limit that reports a late item and keeps the stream going,
//! built by [`item_timeout`](crate::PipelineExt::item_timeout).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::timeout_each::{TimeoutError, deadline_after, nonzero_duration};
use crate::error::ConfigError;
use crate::stage::Stage;

pin_project! {
    /// Stream for the [`item_timeout`](crate::PipelineExt::item_timeout) method.
    ///
    /// The upstream is never dropped by a timeout: after
    /// `Err(TimeoutError::Elapsed { .. })` the stream goes on polling it.
    ///
    /// ```
    /// use millrace::wrappers::ItemTimeout;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let s = ItemTimeout::checked_new(stream::iter([1, 2]), Duration::from_secs(1)).unwrap();
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(1), Ok(2)]);
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct ItemTimeout<S> {
        #[pin]
        stream: S,
        limit: Duration,
        // One timer per wrapper, created at the first wait and re-armed with `reset`. Boxed
        // (once) so that `ItemTimeout<S>` is `Unpin` when `S` is.
        sleep: Option<Pin<Box<Sleep>>>,
        // What the timer is doing for the current wait.
        wait: Wait,
        delivered: u64,
        done: bool,
    }
}

/// The timer's state for the wait of one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Not started: the clock starts at the first poll that finds the upstream pending.
    Idle,
    /// Running for this wait.
    Armed,
    /// Fired and reported for this wait: no second error until an item arrives.
    Reported,
}

impl<S: Stream> ItemTimeout<S> {
    /// Limits every wait for an item to `limit`, reporting a late item and going on.
    ///
    /// # Errors
    ///
    /// A zero `limit` is a [`ConfigError`]:
    ///
    /// ```
    /// use millrace::wrappers::ItemTimeout;
    /// use futures::stream;
    /// use std::time::Duration;
    ///
    /// let err = ItemTimeout::checked_new(stream::iter([1]), Duration::ZERO).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "`item_timeout`: `limit` must be a non-zero duration, got 0ns; pass a value in that range"
    /// );
    /// ```
    pub fn checked_new(stream: S, limit: Duration) -> Result<Self, ConfigError> {
        let limit = nonzero_duration("item_timeout", "limit", limit)?;
        Ok(Self::build(stream, limit))
    }

    /// Renamed [`checked_new`](Self::checked_new).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_new`")]
    pub fn try_new(stream: S, limit: Duration) -> Result<Self, ConfigError> {
        Self::checked_new(stream, limit)
    }

    fn build(stream: S, limit: Duration) -> Self {
        ItemTimeout {
            stream,
            limit,
            sleep: None,
            wait: Wait::Idle,
            delivered: 0,
            done: false,
        }
    }
}

impl<S> ItemTimeout<S> {
    delegate_access_inner!(stream, S);
}

impl<S: Stream> Stream for ItemTimeout<S> {
    type Item = Result<S::Item, TimeoutError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match this.stream.poll_next(cx) {
            Poll::Ready(Some(item)) => {
                *this.wait = Wait::Idle;
                *this.delivered += 1;
                return Poll::Ready(Some(Ok(item)));
            }
            Poll::Ready(None) => {
                *this.done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        match *this.wait {
            // Already reported for this wait: the upstream has our waker, nothing else to do.
            Wait::Reported => return Poll::Pending,
            Wait::Idle => {
                // The clock for this item starts at the first poll that finds it pending.
                *this.wait = Wait::Armed;
                let deadline = deadline_after(*this.limit);
                match this.sleep {
                    Some(sleep) => sleep.as_mut().reset(deadline),
                    None => *this.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
            }
            Wait::Armed => {}
        }
        let sleep = this.sleep.as_mut().expect("armed above");
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                *this.wait = Wait::Reported;
                Poll::Ready(Some(Err(TimeoutError::Elapsed {
                    after: *this.limit,
                    index: *this.delivered,
                })))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        // Each upstream item, and the end, may be preceded by one timeout error.
        let (lo, hi) = self.stream.size_hint();
        (lo, hi.and_then(|hi| hi.checked_mul(2)?.checked_add(1)))
    }
}

impl<S: Stream> FusedStream for ItemTimeout<S> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<S: fmt::Debug> fmt::Debug for ItemTimeout<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemTimeout")
            .field("stream", &self.stream)
            .field("limit", &self.limit)
            .field("delivered", &self.delivered)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// A [`Stage`] that wraps its upstream in an [`ItemTimeout`]; see
/// [`item_timeout`](crate::PipelineExt::item_timeout).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::ItemTimeoutStage;
/// use futures::{stream, StreamExt};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let stage = ItemTimeoutStage::new(Duration::from_millis(10));
/// let out: Vec<_> = stream::iter([7]).wrap(stage).collect().await;
/// assert_eq!(out, [Ok(7)]);
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ItemTimeoutStage {
    limit: Duration,
}

impl ItemTimeoutStage {
    /// Limits every wait for an item to `limit`, reporting a late item and going on.
    ///
    /// # Panics
    ///
    /// If `limit` is zero, with the [`ConfigError`] message; [`ItemTimeoutStage::checked_new`]
    /// returns it.
    #[track_caller]
    pub fn new(limit: Duration) -> Self {
        crate::error::built(Self::checked_new(limit))
    }

    /// Like [`ItemTimeoutStage::new`], returning the [`ConfigError`] instead of panicking.
    pub fn checked_new(limit: Duration) -> Result<Self, ConfigError> {
        Ok(ItemTimeoutStage {
            limit: nonzero_duration("item_timeout", "limit", limit)?,
        })
    }

    /// Renamed [`checked_new`](Self::checked_new).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_new`")]
    pub fn try_new(limit: Duration) -> Result<Self, ConfigError> {
        Self::checked_new(limit)
    }
}

impl<S: Stream> Stage<S> for ItemTimeoutStage {
    type Output = ItemTimeout<S>;

    fn wrap(self, upstream: S) -> ItemTimeout<S> {
        ItemTimeout::build(upstream, self.limit)
    }
}
