//! [`SkipErrors`]: drop the `Err` items of a fallible stream (counted and traced) and yield the
//! plain `Ok` values, built by [`skip_errors`](crate::PipelineExt::skip_errors).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::stream::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Stage;
use crate::metrics::{EventCounter, Observable, StageMetrics};

pin_project! {
    /// Stream for the [`skip_errors`](crate::PipelineExt::skip_errors) method.
    ///
    /// Yields the `T` of every `Ok(T)`; each `Err` is dropped, counted ([`skipped`](Self::skipped))
    /// and reported with a `tracing` warning (fields
    /// `skipped`, the running count, and `error`, its `Display`), exactly like
    /// `on_error(Supervision::Resume)`, whose counter it shares the type of. A metered stage
    /// adopts the count ([`Metered::with_events`](crate::wrappers::Metered::with_events), and
    /// `pipeline!` does it for you) as [`skipped`](crate::StageSnapshot::skipped).
    ///
    /// ```
    /// use millrace::wrappers::SkipErrors;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = SkipErrors::new(stream::iter([Ok(1), Err("bad"), Ok(3)]));
    /// assert_eq!(s.collect::<Vec<i32>>().await, [1, 3]);
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct SkipErrors<S> {
        #[pin]
        stream: S,
        skipped: EventCounter,
        done: bool,
    }
}

impl<S: fmt::Debug> fmt::Debug for SkipErrors<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SkipErrors")
            .field("stream", &self.stream)
            .field("skipped", &self.skipped.get())
            .field("done", &self.done)
            .finish()
    }
}

impl<S> SkipErrors<S> {
    /// Skips `stream`'s errors; same as [`skip_errors`](crate::PipelineExt::skip_errors).
    pub fn new(stream: S) -> Self {
        SkipErrors {
            stream,
            skipped: EventCounter::default(),
            done: false,
        }
    }

    delegate_access_inner!(stream, S);

    /// How many errors were skipped: a live handle, readable while another task consumes
    /// the stream.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter([Ok(1), Err("bad"), Err("worse")]).skip_errors();
    /// let skipped = s.skipped();
    /// assert_eq!(s.collect::<Vec<u8>>().await, [1]);
    /// assert_eq!(skipped.get(), 2);
    /// # }
    /// ```
    pub fn skipped(&self) -> EventCounter {
        self.skipped.clone()
    }

    /// The skip count; the old name of [`skipped`](Self::skipped).
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = stream::iter([Ok::<u8, &str>(1)]).skip_errors();
    /// assert_eq!(s.skip_counter().get(), 0);
    /// ```
    #[deprecated(since = "0.2.0", note = "use `SkipErrors::skipped`")]
    pub fn skip_counter(&self) -> EventCounter {
        self.skipped()
    }
}

impl<S, T, E> Stream for SkipErrors<S>
where
    S: Stream<Item = Result<T, E>>,
    E: fmt::Display,
{
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        loop {
            match ready!(this.stream.as_mut().poll_next(cx)) {
                Some(Ok(item)) => return Poll::Ready(Some(item)),
                Some(Err(error)) => {
                    let skipped = this.skipped.record();
                    tracing::warn!(
                        skipped,
                        error = %error,
                        "millrace skip_errors: skipped a failed item"
                    );
                }
                None => {
                    *this.done = true;
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        // Every item may be an error that is dropped.
        (0, self.stream.size_hint().1)
    }
}

impl<S, T, E> FusedStream for SkipErrors<S>
where
    S: Stream<Item = Result<T, E>>,
    E: fmt::Display,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}

/// Reports [`StageSnapshot::skipped`](crate::StageSnapshot::skipped) from the live skip count.
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let s = stream::iter([Ok(1), Err("bad")]).skip_errors().metered("rows").with_events();
/// let m = s.metrics();
/// assert_eq!(s.collect::<Vec<i32>>().await, [1]);
/// assert_eq!(m.snapshot().skipped, Some(1));
/// # }
/// ```
impl<S> Observable for SkipErrors<S> {
    fn observe_into(&self, stage: &StageMetrics) {
        stage.track_skips(&self.skipped);
    }
}

/// A [`Stage`] that applies [`skip_errors`](crate::PipelineExt::skip_errors).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::SkipErrorsStage;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let out: Vec<u8> = stream::iter([Ok(1), Err("bad")]).wrap(SkipErrorsStage).collect().await;
/// assert_eq!(out, [1]);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SkipErrorsStage;

impl<S, T, E> Stage<S> for SkipErrorsStage
where
    S: Stream<Item = Result<T, E>>,
{
    type Output = SkipErrors<S>;

    fn wrap(self, upstream: S) -> SkipErrors<S> {
        SkipErrors::new(upstream)
    }
}
