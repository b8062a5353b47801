//! [`StopOn`]: graceful shutdown on a [`CancellationToken`], built by
//! [`stop_on`](crate::PipelineExt::stop_on).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::stage::Stage;

pin_project! {
    /// Stream for the [`stop_on`](crate::PipelineExt::stop_on) method.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::StopOn;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let token = CancellationToken::new();
    /// token.cancel();
    /// let s = StopOn::new(stream::iter([1, 2]), token);
    /// assert_eq!(s.collect::<Vec<_>>().await, Vec::<i32>::new());
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct StopOn<S> {
        #[pin]
        stream: S,
        token: CancellationToken,
        // Polled only while the upstream is pending, so that a cancel wakes the consumer.
        // Allocated once, here, so that `StopOn<S>` is `Unpin` when `S` is.
        cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
        stopped: bool,
    }
}

impl<S: Stream> StopOn<S> {
    /// Stops pulling from `stream` once `token` is cancelled.
    pub fn new(stream: S, token: CancellationToken) -> Self {
        let cancelled = Box::pin(token.clone().cancelled_owned());
        StopOn {
            stream,
            token,
            cancelled,
            stopped: false,
        }
    }

    /// The token this wrapper watches.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    delegate_access_inner!(stream, S);
}

impl<S: Stream> Stream for StopOn<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        if *this.stopped {
            return Poll::Ready(None);
        }
        // Checked before every pull (one uncontended lock): once the token fires we never ask
        // the upstream for another item.
        if this.token.is_cancelled() {
            *this.stopped = true;
            return Poll::Ready(None);
        }
        match this.stream.poll_next(cx) {
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            Poll::Ready(None) => {
                *this.stopped = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.cancelled.as_mut().poll(cx).is_ready() {
                    *this.stopped = true;
                    return Poll::Ready(None);
                }
                Poll::Pending
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.stopped {
            (0, Some(0))
        } else {
            // The token may fire before any item.
            (0, self.stream.size_hint().1)
        }
    }
}

impl<S: Stream> FusedStream for StopOn<S> {
    fn is_terminated(&self) -> bool {
        self.stopped
    }
}

impl<S: fmt::Debug> fmt::Debug for StopOn<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopOn")
            .field("stream", &self.stream)
            .field("token", &self.token)
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

/// A [`Stage`] that wraps its upstream in a [`StopOn`]; see
/// [`stop_on`](crate::PipelineExt::stop_on). Cloning it clones the token, so every pipeline
/// built from one stage stops together.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::StopOnStage;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let token = CancellationToken::new();
/// let stage = StopOnStage::new(token.clone());
/// let out: Vec<_> = stream::iter([1, 2]).wrap(stage.clone()).collect().await;
/// assert_eq!(out, [1, 2]);
/// token.cancel();
/// let out: Vec<_> = stream::iter([1, 2]).wrap(stage).collect().await;
/// assert!(out.is_empty());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct StopOnStage {
    token: CancellationToken,
}

impl StopOnStage {
    /// Stops every wrapped upstream once `token` is cancelled.
    pub fn new(token: CancellationToken) -> Self {
        StopOnStage { token }
    }
}

impl<S: Stream> Stage<S> for StopOnStage {
    type Output = StopOn<S>;

    fn wrap(self, upstream: S) -> StopOn<S> {
        StopOn::new(upstream, self.token)
    }
}
