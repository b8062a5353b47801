//! [`Supervise`]: decide per [`Supervision`] what happens to `Err` items.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::stream::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Stage;
use crate::metrics::{EventCounter, Observable, StageMetrics};
use crate::policy::Supervision;

/// The errors a [`Supervise`] or a [`SkipErrors`](super::SkipErrors) stream skipped.
#[deprecated(
    since = "0.2.0",
    note = "use `EventCounter` (returned by `Supervise::skipped` and `SkipErrors::skipped`)"
)]
pub type SkipCounter = EventCounter;

pin_project! {
    /// Stream for the [`on_error`](crate::PipelineExt::on_error) method.
    ///
    /// `Ok` items pass straight through; an `Err` is handled per its [`Supervision`].
    /// Under `Resume` each skipped error is counted and reported with a `tracing` warning
    /// (fields `skipped`, the running count, and `error`, its `Display`).
    #[must_use = "streams do nothing unless polled"]
    pub struct Supervise<S, T, E> {
        #[pin]
        stream: S,
        supervision: Supervision<T, E>,
        skipped: EventCounter,
        done: bool,
    }
}

impl<S: fmt::Debug, T, E> fmt::Debug for Supervise<S, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervise")
            .field("stream", &self.stream)
            .field("supervision", &self.supervision)
            .field("skipped", &self.skipped.get())
            .field("done", &self.done)
            .finish()
    }
}

impl<S, T, E> Supervise<S, T, E> {
    /// Supervises `stream`'s errors per `supervision`; same as
    /// [`on_error`](crate::PipelineExt::on_error).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::Supervise;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = Supervise::new(stream::iter([Err("bad"), Ok(2)]), Supervision::Resume);
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(2)]);
    /// # }
    /// ```
    pub fn new(stream: S, supervision: Supervision<T, E>) -> Self {
        Supervise {
            stream,
            supervision,
            skipped: EventCounter::default(),
            done: false,
        }
    }

    delegate_access_inner!(stream, S);

    /// How many errors were skipped (`Resume` only): a live handle, readable while another
    /// task consumes the stream.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter([Ok(1), Err("bad"), Err("worse"), Ok(4)]).on_error(Supervision::Resume);
    /// let skipped = s.skipped();
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(1), Ok(4)]);
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
    /// let s = stream::iter([Ok::<u8, &str>(1)]).on_error(Supervision::Resume);
    /// assert_eq!(s.skip_counter().get(), 0);
    /// ```
    #[deprecated(since = "0.2.0", note = "use `Supervise::skipped`")]
    pub fn skip_counter(&self) -> EventCounter {
        self.skipped()
    }

    /// The supervision in force.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = stream::iter([Ok::<u8, &str>(1)]).on_error(Supervision::Stop);
    /// assert!(matches!(s.supervision(), Supervision::Stop));
    /// ```
    pub fn supervision(&self) -> &Supervision<T, E> {
        &self.supervision
    }
}

impl<S, T, E> Stream for Supervise<S, T, E>
where
    S: Stream<Item = Result<T, E>>,
    E: fmt::Display,
{
    type Item = Result<T, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        loop {
            match ready!(this.stream.as_mut().poll_next(cx)) {
                Some(Ok(item)) => return Poll::Ready(Some(Ok(item))),
                Some(Err(error)) => match this.supervision {
                    Supervision::Stop => {
                        *this.done = true;
                        return Poll::Ready(Some(Err(error)));
                    }
                    Supervision::Resume => {
                        let skipped = this.skipped.record();
                        tracing::warn!(
                            skipped,
                            error = %error,
                            "millrace on_error(Resume): skipped a failed item"
                        );
                    }
                    Supervision::Replace(f) => return Poll::Ready(Some(Ok(f(error)))),
                },
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
        let (lower, upper) = self.stream.size_hint();
        match self.supervision {
            // The first error ends the stream after itself.
            Supervision::Stop => (lower.min(1), upper),
            // Every item may be an error that is dropped.
            Supervision::Resume => (0, upper),
            Supervision::Replace(_) => (lower, upper),
        }
    }
}

impl<S, T, E> FusedStream for Supervise<S, T, E>
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
/// let s = stream::iter([Ok(1), Err("bad"), Ok(3), Err("worse")])
///     .on_error(Supervision::Resume)
///     .metered("parse")
///     .with_events();
/// let m = s.metrics();
/// assert_eq!(s.collect::<Vec<_>>().await, [Ok(1), Ok(3)]);
/// assert_eq!(m.snapshot().skipped, Some(2));
/// # }
/// ```
impl<S, T, E> Observable for Supervise<S, T, E> {
    fn observe_into(&self, stage: &StageMetrics) {
        stage.track_skips(&self.skipped);
    }
}

/// A [`Stage`] that applies [`on_error(supervision)`](crate::PipelineExt::on_error).
///
/// Not `Clone`: a `Replace` closure is boxed once and owned by one stream.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::SuperviseStage;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let stage = SuperviseStage::new(Supervision::replace(|_: &str| 0));
/// let out: Vec<_> = stream::iter([Ok(1), Err("bad")]).wrap(stage).collect().await;
/// assert_eq!(out, [Ok(1), Ok(0)]);
/// # }
/// ```
#[derive(Debug)]
pub struct SuperviseStage<T, E> {
    supervision: Supervision<T, E>,
}

impl<T, E> SuperviseStage<T, E> {
    /// A stage supervising errors per `supervision`.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::SuperviseStage;
    ///
    /// let _stage = SuperviseStage::<u8, String>::new(Supervision::Resume);
    /// ```
    pub fn new(supervision: Supervision<T, E>) -> Self {
        SuperviseStage { supervision }
    }
}

impl<S, T, E> Stage<S> for SuperviseStage<T, E>
where
    S: Stream<Item = Result<T, E>>,
{
    type Output = Supervise<S, T, E>;

    fn wrap(self, upstream: S) -> Self::Output {
        Supervise::new(upstream, self.supervision)
    }
}
