//! Fail-fast mode: the first `Err` aborts every sibling, like a task group.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;

use super::engine::Limits;
use super::map_concurrent::MapConcurrent;

pin_project! {
    /// Stream for the [`try_map_concurrent`](crate::PipelineExt::try_map_concurrent) and
    /// [`try_map_concurrent_unordered`](crate::PipelineExt::try_map_concurrent_unordered) methods.
    ///
    /// Runs like [`MapConcurrent`] (same limits, spawned mode). As soon as any future returns
    /// `Err` (in the ordered variant: even one behind a slower earlier item), every other
    /// future in flight is aborted, held results are dropped, the upstream is no longer
    /// pulled, the `Err` is yielded and the stream ends. The `Ok` values yielded before it are
    /// a prefix of the input order (ordered) or of the completion order (unordered).
    ///
    /// Accessors delegate to the inner [`MapConcurrent`], whose upstream is the pinned field.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<Result<u32, String>> = stream::iter([1u32, 2, 0, 4])
    ///     .try_map_concurrent(2, |x| async move {
    ///         if x == 0 { Err("zero".to_string()) } else { Ok(10 / x) }
    ///     })
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, [Ok(10), Ok(5), Err("zero".to_string())]);
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct TryMapConcurrent<S, F, Fut>
    where
        Fut: Future,
    {
        #[pin]
        inner: MapConcurrent<S, F, Fut>,
    }
}

impl<S, F, Fut> fmt::Debug for TryMapConcurrent<S, F, Fut>
where
    S: fmt::Debug,
    Fut: Future,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryMapConcurrent")
            .field("inner", &self.inner)
            .finish()
    }
}

fn is_err<U, E>(out: &Result<U, E>) -> bool {
    out.is_err()
}

impl<S, F, Fut, U, E> TryMapConcurrent<S, F, Fut>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
    U: Send + 'static,
    E: Send + 'static,
{
    family_constructors! {
        type: "TryMapConcurrent",
        names: ("try_map_concurrent", "try_map_concurrent_unordered"),
        unordered: (new_unordered, checked_new_unordered, try_new_unordered),
        params: (upstream: S),
        example: ("use futures::stream;", "stream::iter([1]), 0, |x| async move { Ok::<_, ()>(x) }")
    }

    pub(super) fn from_limits(upstream: S, f: F, limits: Limits) -> Self {
        let mut inner = MapConcurrent::from_limits(upstream, f, limits);
        inner.set_fail_check(is_err::<U, E>);
        TryMapConcurrent { inner }
    }
}

impl<S, F, Fut: Future> TryMapConcurrent<S, F, Fut> {
    /// Sets the output buffer; see [`MapConcurrent::with_output_buffer`].
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<Result<i32, ()>> = stream::iter([1, 2])
    ///     .try_map_concurrent(2, |x| async move { Ok(x) })
    ///     .with_output_buffer(0)
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, [Ok(1), Ok(2)]);
    /// # }
    /// ```
    pub fn with_output_buffer(self, m: usize) -> Self {
        TryMapConcurrent {
            inner: self.inner.with_output_buffer(m),
        }
    }

    delegate_access_inner!(via inner, S);
}

impl<S, F, Fut, U, E> Stream for TryMapConcurrent<S, F, Fut>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
    U: Send + 'static,
    E: Send + 'static,
{
    type Item = Result<U, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<U, E>>> {
        let mut inner = self.project().inner;
        match ready!(inner.as_mut().poll_next(cx)) {
            Some(Err(e)) => {
                inner.stop();
                Poll::Ready(Some(Err(e)))
            }
            other => Poll::Ready(other),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lo, hi) = self.inner.size_hint();
        // An `Err` may end the stream early, but something comes out if anything is left.
        (lo.min(1), hi)
    }
}

impl<S, F, Fut, U, E> FusedStream for TryMapConcurrent<S, F, Fut>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
    U: Send + 'static,
    E: Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.inner.is_finished()
    }
}

/// Reports the in-flight and buffered counts of the inner [`MapConcurrent`] (see its
/// [`Observable`](crate::metrics::Observable) impl).
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let s = stream::iter([1, 2])
///     .try_map_concurrent(2, |x| async move { Ok::<_, ()>(x) })
///     .metered("checked")
///     .with_events();
/// let m = s.metrics();
/// let _: Vec<_> = s.collect().await;
/// assert_eq!((m.snapshot().in_flight, m.snapshot().buffered), (Some(0), Some(0)));
/// # }
/// ```
impl<S, F, Fut: Future> crate::metrics::Observable for TryMapConcurrent<S, F, Fut> {
    fn observe_into(&self, stage: &crate::metrics::StageMetrics) {
        self.inner.observe_into(stage);
    }
}
