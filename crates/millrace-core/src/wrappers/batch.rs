//! [`Batch`]: size-or-time batching, built by [`batch`](crate::PipelineExt::batch) and
//! [`batch_within`](crate::PipelineExt::batch_within).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::batcher::{Batcher, Limits};
use crate::error::ConfigError;
use crate::stage::Stage;
use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;

pin_project! {
    /// Stream for the [`batch`](crate::PipelineExt::batch) and
    /// [`batch_within`](crate::PipelineExt::batch_within) methods.
    ///
    /// ```
    /// use millrace::wrappers::Batch;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let batched = Batch::checked_new(stream::iter(0..5), 2).unwrap();
    /// assert_eq!(batched.collect::<Vec<_>>().await, vec![vec![0, 1], vec![2, 3], vec![4]]);
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct Batch<S: Stream> {
        #[pin]
        stream: S,
        batcher: Batcher<S::Item>,
        // The upstream returned `None`; it is never polled again.
        upstream_done: bool,
    }
}

impl<S: Stream> Batch<S> {
    /// Batches by size only: every batch has exactly `size` items except the last.
    ///
    /// # Errors
    ///
    /// `size == 0` is a [`ConfigError`]:
    ///
    /// ```
    /// use millrace::wrappers::Batch;
    /// use futures::stream;
    ///
    /// let err = Batch::checked_new(stream::iter([1]), 0).unwrap_err();
    /// assert_eq!(err.to_string(), "`batch`: `size` must be at least 1, got 0; pass a non-zero value");
    /// ```
    pub fn checked_new(stream: S, size: usize) -> Result<Self, ConfigError> {
        Ok(Self::build(stream, Limits::size("batch", size)?))
    }

    /// Renamed [`checked_new`](Self::checked_new).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_new`")]
    pub fn try_new(stream: S, size: usize) -> Result<Self, ConfigError> {
        Self::checked_new(stream, size)
    }

    /// Batches by size or time: a batch is emitted when it holds `size` items or when `within`
    /// has passed since its first item arrived, whichever comes first.
    ///
    /// # Errors
    ///
    /// `size == 0` or `within == Duration::ZERO` is a [`ConfigError`] (for "whatever is ready
    /// right now" use futures' `ready_chunks`):
    ///
    /// ```
    /// use millrace::wrappers::Batch;
    /// use futures::stream;
    /// use std::time::Duration;
    ///
    /// let err = Batch::checked_within(stream::iter([1]), 4, Duration::ZERO).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "`batch_within`: `within` must be a non-zero duration, got 0ns; pass a value in that range"
    /// );
    /// ```
    pub fn checked_within(stream: S, size: usize, within: Duration) -> Result<Self, ConfigError> {
        Ok(Self::build(
            stream,
            Limits::within("batch_within", size, within)?,
        ))
    }

    /// Renamed [`checked_within`](Self::checked_within).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_within`")]
    pub fn try_within(stream: S, size: usize, within: Duration) -> Result<Self, ConfigError> {
        Self::checked_within(stream, size, within)
    }

    fn build(stream: S, limits: Limits) -> Self {
        Batch {
            stream,
            batcher: Batcher::new(limits),
            upstream_done: false,
        }
    }

    delegate_access_inner!(stream, S);
}

impl<S: Stream> Stream for Batch<S> {
    type Item = Vec<S::Item>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.upstream_done {
            // The tail batch was flushed in the same poll the upstream ended.
            return Poll::Ready(None);
        }
        loop {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    if let Some(batch) = this.batcher.push(item) {
                        return Poll::Ready(Some(batch));
                    }
                }
                Poll::Ready(None) => {
                    *this.upstream_done = true;
                    return Poll::Ready(this.batcher.flush());
                }
                Poll::Pending => {
                    return this
                        .batcher
                        .poll_expired(cx)
                        .map_or(Poll::Pending, |b| Poll::Ready(Some(b)));
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.upstream_done {
            return (0, Some(0));
        }
        let buffered = self.batcher.len();
        let (lo, hi) = self.stream.size_hint();
        let size = self.batcher.size();
        let lower = lo.saturating_add(buffered).div_ceil(size);
        let upper = hi.and_then(|hi| {
            if self.batcher.has_timer() {
                // With a timer every item may end up alone in its batch.
                hi.checked_add(usize::from(buffered > 0))
            } else {
                // Without one every batch but the last is full.
                hi.checked_add(buffered).map(|n| n.div_ceil(size))
            }
        });
        (lower, upper)
    }
}

impl<S: Stream> FusedStream for Batch<S> {
    fn is_terminated(&self) -> bool {
        self.upstream_done
    }
}

impl<S> fmt::Debug for Batch<S>
where
    S: Stream + fmt::Debug,
    S::Item: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("stream", &self.stream)
            .field("batcher", &self.batcher)
            .field("upstream_done", &self.upstream_done)
            .finish_non_exhaustive()
    }
}

/// A [`Stage`] that wraps its upstream in a [`Batch`]; see
/// [`batch`](crate::PipelineExt::batch).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::BatchStage;
/// use futures::{stream, StreamExt};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let by_size = BatchStage::new(2);
/// let out: Vec<Vec<u8>> = stream::iter(0..3u8).wrap(by_size).collect().await;
/// assert_eq!(out, vec![vec![0, 1], vec![2]]);
///
/// let by_size_or_time = BatchStage::within(100, Duration::from_millis(50));
/// let out: Vec<Vec<u8>> = stream::iter(0..3u8).wrap(by_size_or_time).collect().await;
/// assert_eq!(out, vec![vec![0, 1, 2]]);
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct BatchStage {
    limits: Limits,
}

impl BatchStage {
    /// Batches of `size` items.
    ///
    /// # Panics
    ///
    /// If `size == 0`, with the [`ConfigError`] message; [`BatchStage::checked_new`] returns it.
    #[track_caller]
    pub fn new(size: usize) -> Self {
        crate::error::built(Self::checked_new(size))
    }

    /// Batches of `size` items, or `Err` if `size == 0`.
    pub fn checked_new(size: usize) -> Result<Self, ConfigError> {
        Ok(BatchStage {
            limits: Limits::size("batch", size)?,
        })
    }

    /// Renamed [`checked_new`](Self::checked_new).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_new`")]
    pub fn try_new(size: usize) -> Result<Self, ConfigError> {
        Self::checked_new(size)
    }

    /// Batches of at most `size` items, flushed `within` after a batch's first item.
    ///
    /// # Panics
    ///
    /// If `size == 0` or `within` is zero, with the [`ConfigError`] message;
    /// [`BatchStage::checked_within`] returns it.
    #[track_caller]
    pub fn within(size: usize, within: Duration) -> Self {
        crate::error::built(Self::checked_within(size, within))
    }

    /// Like [`BatchStage::within`], returning the [`ConfigError`] instead of panicking.
    pub fn checked_within(size: usize, within: Duration) -> Result<Self, ConfigError> {
        Ok(BatchStage {
            limits: Limits::within("batch_within", size, within)?,
        })
    }

    /// Renamed [`checked_within`](Self::checked_within).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_within`")]
    pub fn try_within(size: usize, within: Duration) -> Result<Self, ConfigError> {
        Self::checked_within(size, within)
    }
}

impl<S: Stream> Stage<S> for BatchStage {
    type Output = Batch<S>;

    fn wrap(self, upstream: S) -> Batch<S> {
        Batch::build(upstream, self.limits)
    }
}
