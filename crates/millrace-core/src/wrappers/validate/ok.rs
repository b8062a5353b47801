//! [`ValidateOk`]: validate the `Ok` items of a fallible stream.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::stream::{FusedStream, Stream};
use pin_project_lite::pin_project;

use super::Invalid;

pin_project! {
    /// Stream for the [`validate_ok`](crate::PipelineExt::validate_ok) method.
    ///
    /// `Ok` items that fail `f` become `Err(E::from(Invalid { item, reason, index }))`; upstream
    /// errors pass through unchanged. `index` counts every upstream item, errors included.
    #[must_use = "streams do nothing unless polled"]
    pub struct ValidateOk<S, F> {
        #[pin]
        stream: S,
        f: F,
        index: u64,
    }
}

impl<S: fmt::Debug, F> fmt::Debug for ValidateOk<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidateOk")
            .field("stream", &self.stream)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl<S, F> ValidateOk<S, F> {
    /// Validates the `Ok` items of `stream` with `f`; same as
    /// [`validate_ok`](crate::PipelineExt::validate_ok).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::ValidateOk;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let src = stream::iter([Ok(2), Ok(3)]);
    /// let s = ValidateOk::new(src, |x: &i32| if x % 2 == 0 { Ok(()) } else { Err("odd") });
    /// let out: Vec<Result<i32, Invalid<i32, &str>>> = s.collect().await;
    /// assert_eq!(out, [Ok(2), Err(Invalid::new(3, 1, "odd"))]);
    /// # }
    /// ```
    pub fn new(stream: S, f: F) -> Self {
        ValidateOk {
            stream,
            f,
            index: 0,
        }
    }

    delegate_access_inner!(stream, S);
}

impl<S, F, T, E, R> Stream for ValidateOk<S, F>
where
    S: Stream<Item = Result<T, E>>,
    F: FnMut(&T) -> Result<(), R>,
    E: From<Invalid<T, R>>,
{
    type Item = Result<T, E>;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let Some(next) = ready!(this.stream.poll_next(cx)) else {
            return Poll::Ready(None);
        };
        let index = *this.index;
        *this.index += 1;
        Poll::Ready(Some(match next {
            Ok(item) => match (this.f)(&item) {
                Ok(()) => Ok(item),
                Err(reason) => Err(E::from(Invalid::new(item, index, reason))),
            },
            Err(e) => Err(e),
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S, F, T, E, R> FusedStream for ValidateOk<S, F>
where
    S: FusedStream<Item = Result<T, E>>,
    F: FnMut(&T) -> Result<(), R>,
    E: From<Invalid<T, R>>,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}
