use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;

pin_project! {
    /// Stream for [`interleave_pending`].
    #[must_use = "streams do nothing unless polled"]
    pub struct InterleavePending<S> {
        #[pin]
        inner: S,
        pended: bool,
    }
}

impl<S> fmt::Debug for InterleavePending<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InterleavePending").finish_non_exhaustive()
    }
}

/// Returns `Pending` (after waking the task) before every poll of `stream` that is passed on,
/// so a stage above it must cope with an upstream that is not always ready.
///
/// ```
/// use millrace::testing::{interleave_pending, record};
/// use futures::stream;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let rec = record(interleave_pending(stream::iter([1, 2]))).await;
/// assert_eq!(rec.items, [1, 2]);
/// assert_eq!(rec.pendings, 3);
/// # }
/// ```
pub fn interleave_pending<S: Stream>(stream: S) -> InterleavePending<S> {
    InterleavePending {
        inner: stream,
        pended: false,
    }
}

impl<S: Stream> Stream for InterleavePending<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        if !*this.pended {
            *this.pended = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let next = this.inner.poll_next(cx);
        if next.is_ready() {
            *this.pended = false;
        }
        next
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<S: FusedStream> FusedStream for InterleavePending<S> {
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}
