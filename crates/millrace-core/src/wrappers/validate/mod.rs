//! [`Validate`] and [`ValidateOk`]: reject items that fail a check, carrying them in the error.
//!
//! # Order
//!
//! Validation turns invalid items into errors, and supervision then decides about *every*
//! error it sees. So `validate_ok` then `on_error(Resume)` drops invalid items too, while
//! `on_error(Resume)` then `validate_ok` drops only upstream errors and lets the invalid
//! items reach the consumer as errors:
//!
//! ```
//! use millrace::prelude::*;
//! use futures::{stream, StreamExt};
//!
//! #[derive(Debug, PartialEq)]
//! enum Error {
//!     Upstream(&'static str),
//!     Invalid(Invalid<i32, &'static str>),
//! }
//! impl From<Invalid<i32, &'static str>> for Error {
//!     fn from(e: Invalid<i32, &'static str>) -> Self {
//!         Error::Invalid(e)
//!     }
//! }
//! impl std::fmt::Display for Error {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
//!         write!(f, "{self:?}")
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let non_negative = |x: &i32| if *x >= 0 { Ok(()) } else { Err("negative") };
//! let source = || stream::iter([Ok(1), Err(Error::Upstream("io")), Ok(-2), Ok(3)]);
//!
//! // validate, then supervise: both the upstream error and the invalid item are skipped.
//! let out: Vec<_> = source().validate_ok(non_negative).on_error(Supervision::Resume).collect().await;
//! assert_eq!(out, [Ok(1), Ok(3)]);
//!
//! // supervise, then validate: only the upstream error is skipped.
//! let out: Vec<_> = source().on_error(Supervision::Resume).validate_ok(non_negative).collect().await;
//! assert_eq!(out, [Ok(1), Err(Error::Invalid(Invalid::new(-2, 1, "negative"))), Ok(3)]);
//! # }
//! ```
//!
//! The index is the position in the validating stage's own upstream, so it differs between
//! the two orders too (`-2` is item #2 of the raw source, item #1 after `Resume`).

mod error;
mod ok;
mod stage;

pub use self::error::Invalid;
pub use self::ok::ValidateOk;
pub use self::stage::{ValidateOkStage, ValidateStage};

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::stream::{FusedStream, Stream};
use pin_project_lite::pin_project;

pin_project! {
    /// Stream for the [`validate`](crate::PipelineExt::validate) method.
    ///
    /// Yields `Ok(item)` for items that pass `f` and `Err(Invalid { item, reason, index })` for
    /// those that do not; the stream continues after an invalid item (put
    /// [`on_error`](crate::PipelineExt::on_error) after it to decide what happens then).
    #[must_use = "streams do nothing unless polled"]
    pub struct Validate<S, F> {
        #[pin]
        stream: S,
        f: F,
        index: u64,
    }
}

impl<S: fmt::Debug, F> fmt::Debug for Validate<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validate")
            .field("stream", &self.stream)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl<S, F> Validate<S, F> {
    /// Validates `stream`'s items with `f`; same as [`validate`](crate::PipelineExt::validate).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::Validate;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = Validate::new(stream::iter([2, 3]), |x: &i32| if x % 2 == 0 { Ok(()) } else { Err("odd") });
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(2), Err(Invalid::new(3, 1, "odd"))]);
    /// # }
    /// ```
    pub fn new(stream: S, f: F) -> Self {
        Validate {
            stream,
            f,
            index: 0,
        }
    }

    delegate_access_inner!(stream, S);
}

impl<S, F, R> Stream for Validate<S, F>
where
    S: Stream,
    F: FnMut(&S::Item) -> Result<(), R>,
{
    type Item = Result<S::Item, Invalid<S::Item, R>>;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let Some(item) = ready!(this.stream.poll_next(cx)) else {
            return Poll::Ready(None);
        };
        let index = *this.index;
        *this.index += 1;
        Poll::Ready(Some(match (this.f)(&item) {
            Ok(()) => Ok(item),
            Err(reason) => Err(Invalid::new(item, index, reason)),
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S, F, R> FusedStream for Validate<S, F>
where
    S: FusedStream,
    F: FnMut(&S::Item) -> Result<(), R>,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}
