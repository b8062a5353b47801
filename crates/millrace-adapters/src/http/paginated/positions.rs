//! [`Paginated::with_positions`]: each item with the position to resume after it.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use millrace_core::PagePosition;
use pin_project_lite::pin_project;
use reqwest::Url;
use serde::de::DeserializeOwned;

use super::Paginated;
use crate::http::HttpError;

pin_project! {
    /// Stream for [`Paginated::with_positions`]: `Ok((item, position after it))`; `get_ref`,
    /// `get_mut`, `get_pin_mut` and `into_inner` reach the source underneath.
    ///
    /// ```
    /// use millrace::adapters::http::{paginated, reqwest, PageStyle};
    ///
    /// let mut s = paginated::<u32>(reqwest::Client::new(), "http://127.0.0.1:9/l", PageStyle::LinkHeader)
    ///     .with_positions();
    /// assert_eq!(s.get_ref().position().unwrap().cursor.path(), "/l");
    /// assert_eq!(s.get_mut().position().unwrap().cursor.path(), "/l");
    /// assert_eq!(s.into_inner().position().unwrap().cursor.path(), "/l");
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct PaginatedWithPositions<T> {
        #[pin]
        pub(super) inner: Paginated<T>,
    }
}

impl<T> PaginatedWithPositions<T> {
    millrace_core::__private::delegate_access_inner!(inner, Paginated<T>);
}

impl<T> Stream for PaginatedWithPositions<T>
where
    T: DeserializeOwned + Send + 'static,
{
    type Item = Result<(T, PagePosition<Url>), HttpError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let inner = &mut self.get_mut().inner;
        let item = std::task::ready!(Pin::new(&mut *inner).poll_next(cx));
        Poll::Ready(item.map(|r| {
            r.map(|t| {
                let position = inner
                    .position()
                    .expect("a source that yields items has a position");
                (t, position)
            })
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<T> FusedStream for PaginatedWithPositions<T>
where
    T: DeserializeOwned + Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}

impl<T> fmt::Debug for PaginatedWithPositions<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaginatedWithPositions")
            .field("inner", &self.inner)
            .finish()
    }
}
