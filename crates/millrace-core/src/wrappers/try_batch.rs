//! [`TryBatch`]: size-or-time batching of a fallible stream, built by
//! [`try_batch`](crate::PipelineExt::try_batch) and
//! [`try_batch_within`](crate::PipelineExt::try_batch_within).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;

use super::batcher::{Batcher, Limits};
use crate::error::ConfigError;
use crate::stage::Stage;

pin_project! {
    /// Stream for the [`try_batch`](crate::PipelineExt::try_batch) and
    /// [`try_batch_within`](crate::PipelineExt::try_batch_within) methods.
    ///
    /// `Ok` items are gathered into batches; an `Err` first flushes the partial batch (if
    /// any) as `Ok(batch)`, then is yielded as itself, and batching goes on after it:
    /// `[Ok(1), Ok(2), Err(e), Ok(3)]` becomes `[Ok([1, 2]), Err(e), Ok([3])]`.
    ///
    /// ```
    /// use millrace::wrappers::TryBatch;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = TryBatch::checked_new(stream::iter([Ok(1), Err("bad"), Ok(2)]), 2).unwrap();
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(vec![1]), Err("bad"), Ok(vec![2])]);
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct TryBatch<S, T, E> {
        #[pin]
        stream: S,
        batcher: Batcher<T>,
        // An error that arrived behind a partial batch: yielded right after that batch.
        held: Option<E>,
        // The upstream returned `None` (the tail batch was flushed in that same poll).
        upstream_done: bool,
    }
}

impl<S, T, E> TryBatch<S, T, E>
where
    S: Stream<Item = Result<T, E>>,
{
    /// Batches the `Ok` items by size: every batch has `size` items except one cut short by an
    /// error and the last.
    ///
    /// # Errors
    ///
    /// `size == 0` is a [`ConfigError`]:
    ///
    /// ```
    /// use millrace::wrappers::TryBatch;
    /// use futures::stream;
    ///
    /// let err = TryBatch::checked_new(stream::iter([Ok::<u8, ()>(1)]), 0).unwrap_err();
    /// assert_eq!(err.to_string(), "`try_batch`: `size` must be at least 1, got 0; pass a non-zero value");
    /// ```
    pub fn checked_new(stream: S, size: usize) -> Result<Self, ConfigError> {
        Ok(Self::build(stream, Limits::size("try_batch", size)?))
    }

    /// Renamed [`checked_new`](Self::checked_new).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_new`")]
    pub fn try_new(stream: S, size: usize) -> Result<Self, ConfigError> {
        Self::checked_new(stream, size)
    }

    /// Batches the `Ok` items by size or time: a batch is emitted when it holds `size` items,
    /// when `within` has passed since its first item, or when an error arrives.
    ///
    /// # Errors
    ///
    /// `size == 0` or `within == Duration::ZERO` is a [`ConfigError`]:
    ///
    /// ```
    /// use millrace::wrappers::TryBatch;
    /// use futures::stream;
    /// use std::time::Duration;
    ///
    /// let err = TryBatch::checked_within(stream::iter([Ok::<u8, ()>(1)]), 4, Duration::ZERO).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "`try_batch_within`: `within` must be a non-zero duration, got 0ns; pass a value in that range"
    /// );
    /// ```
    pub fn checked_within(stream: S, size: usize, within: Duration) -> Result<Self, ConfigError> {
        Ok(Self::build(
            stream,
            Limits::within("try_batch_within", size, within)?,
        ))
    }

    /// Renamed [`checked_within`](Self::checked_within).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_within`")]
    pub fn try_within(stream: S, size: usize, within: Duration) -> Result<Self, ConfigError> {
        Self::checked_within(stream, size, within)
    }

    fn build(stream: S, limits: Limits) -> Self {
        TryBatch {
            stream,
            batcher: Batcher::new(limits),
            held: None,
            upstream_done: false,
        }
    }
}

impl<S, T, E> TryBatch<S, T, E> {
    delegate_access_inner!(stream, S);
}

impl<S, T, E> Stream for TryBatch<S, T, E>
where
    S: Stream<Item = Result<T, E>>,
{
    type Item = Result<Vec<T>, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if let Some(e) = this.held.take() {
            return Poll::Ready(Some(Err(e)));
        }
        if *this.upstream_done {
            return Poll::Ready(None);
        }
        loop {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(item))) => {
                    if let Some(batch) = this.batcher.push(item) {
                        return Poll::Ready(Some(Ok(batch)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let Some(before) = this.batcher.flush() else {
                        return Poll::Ready(Some(Err(e)));
                    };
                    // Flush what came before the error, then the error, in that order.
                    *this.held = Some(e);
                    return Poll::Ready(Some(Ok(before)));
                }
                Poll::Ready(None) => {
                    *this.upstream_done = true;
                    return Poll::Ready(this.batcher.flush().map(Ok));
                }
                Poll::Pending => {
                    return this
                        .batcher
                        .poll_expired(cx)
                        .map_or(Poll::Pending, |b| Poll::Ready(Some(Ok(b))));
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let held = usize::from(self.held.is_some());
        if self.upstream_done {
            return (held, Some(held));
        }
        let buffered = self.batcher.len();
        let (lo, hi) = self.stream.size_hint();
        // At least one output if anything is buffered or will arrive; at most one per
        // upstream item (every item an error, or alone in its batch) plus the buffered batch.
        let lower = held + usize::from(buffered > 0 || lo > 0);
        let upper = hi.and_then(|hi| hi.checked_add(held)?.checked_add(usize::from(buffered > 0)));
        (lower, upper)
    }
}

impl<S, T, E> FusedStream for TryBatch<S, T, E>
where
    S: Stream<Item = Result<T, E>>,
{
    fn is_terminated(&self) -> bool {
        self.upstream_done && self.held.is_none()
    }
}

impl<S, T, E> fmt::Debug for TryBatch<S, T, E>
where
    S: fmt::Debug,
    T: fmt::Debug,
    E: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryBatch")
            .field("stream", &self.stream)
            .field("batcher", &self.batcher)
            .field("held", &self.held)
            .field("upstream_done", &self.upstream_done)
            .finish_non_exhaustive()
    }
}

/// A [`Stage`] that wraps its upstream in a [`TryBatch`]; see
/// [`try_batch`](crate::PipelineExt::try_batch).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::TryBatchStage;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let out: Vec<Result<Vec<u8>, &str>> =
///     stream::iter([Ok(1), Ok(2), Ok(3)]).wrap(TryBatchStage::new(2)).collect().await;
/// assert_eq!(out, [Ok(vec![1, 2]), Ok(vec![3])]);
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TryBatchStage {
    limits: Limits,
}

impl TryBatchStage {
    /// Batches of `size` `Ok` items, cut short by errors.
    ///
    /// # Panics
    ///
    /// If `size == 0`, with the [`ConfigError`] message; [`TryBatchStage::checked_new`] returns it.
    #[track_caller]
    pub fn new(size: usize) -> Self {
        crate::error::built(Self::checked_new(size))
    }

    /// Like [`TryBatchStage::new`], returning the [`ConfigError`] instead of panicking.
    pub fn checked_new(size: usize) -> Result<Self, ConfigError> {
        Ok(TryBatchStage {
            limits: Limits::size("try_batch", size)?,
        })
    }

    /// Renamed [`checked_new`](Self::checked_new).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_new`")]
    pub fn try_new(size: usize) -> Result<Self, ConfigError> {
        Self::checked_new(size)
    }

    /// Batches of at most `size` `Ok` items, flushed `within` after a batch's first item or
    /// when an error arrives.
    ///
    /// # Panics
    ///
    /// If `size == 0` or `within` is zero, with the [`ConfigError`] message;
    /// [`TryBatchStage::checked_within`] returns it.
    #[track_caller]
    pub fn within(size: usize, within: Duration) -> Self {
        crate::error::built(Self::checked_within(size, within))
    }

    /// Like [`TryBatchStage::within`], returning the [`ConfigError`] instead of panicking.
    pub fn checked_within(size: usize, within: Duration) -> Result<Self, ConfigError> {
        Ok(TryBatchStage {
            limits: Limits::within("try_batch_within", size, within)?,
        })
    }

    /// Renamed [`checked_within`](Self::checked_within).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_within`")]
    pub fn try_within(size: usize, within: Duration) -> Result<Self, ConfigError> {
        Self::checked_within(size, within)
    }
}

impl<S, T, E> Stage<S> for TryBatchStage
where
    S: Stream<Item = Result<T, E>>,
{
    type Output = TryBatch<S, T, E>;

    fn wrap(self, upstream: S) -> TryBatch<S, T, E> {
        TryBatch::build(upstream, self.limits)
    }
}
