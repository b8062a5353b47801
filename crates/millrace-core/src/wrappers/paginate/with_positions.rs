//! [`WithPositions`]: a [`Paginate`] stream whose items carry their [`PagePosition`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;

use super::{Page, PagePosition, Paginate};

pin_project! {
    /// Stream for the [`with_positions`](Paginate::with_positions) method: each item with the
    /// [`PagePosition`] right after it.
    #[must_use = "streams do nothing unless polled"]
    pub struct WithPositions<C, F, Fut, T, E> {
        #[pin]
        inner: Paginate<C, F, Fut, T, E>,
    }
}

impl<C, F, Fut, T, E> fmt::Debug for WithPositions<C, F, Fut, T, E>
where
    C: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithPositions")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<C, F, Fut, T, E> WithPositions<C, F, Fut, T, E> {
    pub(super) fn new(inner: Paginate<C, F, Fut, T, E>) -> Self {
        WithPositions { inner }
    }

    delegate_access_inner!(inner, Paginate<C, F, Fut, T, E>);
}

impl<C, F, Fut, T, E> Stream for WithPositions<C, F, Fut, T, E>
where
    C: Clone + PartialEq,
    F: FnMut(C) -> Fut,
    Fut: Future<Output = Result<Page<T, C>, E>>,
{
    type Item = Result<(T, PagePosition<C>), E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut inner = self.project().inner;
        let item = ready!(inner.as_mut().poll_next(cx));
        Poll::Ready(item.map(|r| r.map(|t| (t, inner.position()))))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<C, F, Fut, T, E> FusedStream for WithPositions<C, F, Fut, T, E>
where
    C: Clone + PartialEq,
    F: FnMut(C) -> Fut,
    Fut: Future<Output = Result<Page<T, C>, E>>,
{
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}
