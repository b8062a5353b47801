//! [`Recover`]: switch to a fallback stream that resumes from the checkpoint after an error.

mod checkpoint_with;
mod stage;

pub use self::checkpoint_with::CheckpointWith;
pub use self::stage::RecoverStage;

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::stream::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::checkpoint::{Checkpoint, Checkpointer};
use crate::metrics::{EventCounter, Observable, StageMetrics};

pin_project! {
    /// Stream for the [`recover_with`](crate::PipelineExt::recover_with) method.
    ///
    /// Passes items through, recording each `Ok` item in its checkpoint. On `Err(e)` it calls
    /// `f(&e, &checkpoint)`: `Some(fallback)` replaces the current stream (which is dropped)
    /// and resumes from the checkpoint; `None` yields the error and ends the stream. An error
    /// from a fallback calls `f` again, so a fallback can have a fallback.
    ///
    /// Each switch emits a `tracing` warning with the fields `fallback` (1-based count) and
    /// `error` (its `Display`); when `f` declines (`None`) a warning with `fallbacks` (the
    /// count so far) and `error` says the error is given up to the consumer. Inside a
    /// [`Metered`](crate::wrappers::Metered) stage's span the events carry its `stage` name.
    ///
    /// There is no `get_ref`/`into_inner`: the upstream is dropped when the first fallback takes
    /// over, so it is exposed as an `Option` by [`upstream`](Self::upstream).
    #[must_use = "streams do nothing unless polled"]
    pub struct Recover<S, F, S2, K> {
        #[pin]
        upstream: Option<S>,
        #[pin]
        fallback: Option<S2>,
        f: F,
        checkpointer: K,
        fallbacks: EventCounter,
        max_fallbacks: Option<u64>,
        done: bool,
    }
}

impl<S, F, S2, K: fmt::Debug> fmt::Debug for Recover<S, F, S2, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recover")
            .field("checkpointer", &self.checkpointer)
            .field("on_fallback", &self.fallback.is_some())
            .field("fallbacks", &self.fallbacks.get())
            .field("max_fallbacks", &self.max_fallbacks)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<S, F, S2, T> Recover<S, F, S2, Checkpoint<T>> {
    /// Recovers `upstream` with `f` and the default [`Checkpoint`]; same as
    /// [`recover_with`](crate::PipelineExt::recover_with).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::Recover;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let primary = stream::iter([Ok(1), Err("down")]);
    /// let s = Recover::new(primary, |_: &&str, cp: &Checkpoint<i32>| {
    ///     Some(stream::iter((cp.delivered as i32 + 1..=3).map(Ok)))
    /// });
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(1), Ok(2), Ok(3)]);
    /// # }
    /// ```
    pub fn new(upstream: S, f: F) -> Self {
        Self::with_checkpointer(upstream, f, Checkpoint::default())
    }
}

impl<S, F, S2, K> Recover<S, F, S2, K> {
    /// Recovers `upstream` with `f`, recording into `checkpointer` (see
    /// [`CheckpointWith::recover_with`] for the usual way in).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::Recover;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cursor = custom_checkpoint(0u32, |next, x: &u32| *next = x + 1);
    /// let primary = stream::iter([Ok(0), Err("down")]);
    /// let s = Recover::with_checkpointer(primary, |_: &&str, next: &u32| Some(stream::iter((*next..3).map(Ok))), cursor);
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(0), Ok(1), Ok(2)]);
    /// # }
    /// ```
    pub fn with_checkpointer(upstream: S, f: F, checkpointer: K) -> Self {
        Recover {
            upstream: Some(upstream),
            fallback: None,
            f,
            checkpointer,
            fallbacks: EventCounter::default(),
            max_fallbacks: None,
            done: false,
        }
    }

    /// Switches to at most `n` fallbacks over the stream's life (Akka's
    /// `recoverWithRetries`): the error after the `n`-th fallback is yielded without asking
    /// `f` and the stream ends. Without a cap, a handler that always returns `Some` loops
    /// forever on a fallback that always fails; `0` never falls back.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // The mirror is down too: the handler would hand it out forever.
    /// let s = stream::iter([Ok(1), Err("primary down")])
    ///     .recover_with(|_, _: &Checkpoint<i32>| Some(stream::iter([Err("mirror down")])))
    ///     .max_fallbacks(2);
    /// let fallbacks = s.fallbacks();
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(1), Err("mirror down")]);
    /// assert_eq!(fallbacks.get(), 2);
    /// # }
    /// ```
    pub fn max_fallbacks(mut self, n: u64) -> Self {
        self.max_fallbacks = Some(n);
        self
    }

    /// How many fallbacks were switched to: a live handle, readable while another task
    /// consumes the stream (and adoptable by a [`StageMetrics`]).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter([Err("down")])
    ///     .recover_with(|_, _: &Checkpoint<u8>| Some(stream::iter([Ok(7)])));
    /// let fallbacks = s.fallbacks();
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(7)]);
    /// assert_eq!(fallbacks.get(), 1);
    /// # }
    /// ```
    pub fn fallbacks(&self) -> EventCounter {
        self.fallbacks.clone()
    }

    /// The fallback count; the old name of [`fallbacks`](Self::fallbacks).
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = stream::iter([Ok::<u8, &str>(1)]).recover_with(|_, _: &Checkpoint<u8>| None::<stream::Empty<_>>);
    /// assert_eq!(s.fallback_counter().get(), 0);
    /// ```
    #[deprecated(since = "0.2.0", note = "use `Recover::fallbacks`")]
    pub fn fallback_counter(&self) -> EventCounter {
        self.fallbacks()
    }

    /// The original upstream, until a fallback replaces it or the stream ends.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = stream::iter([Ok::<u8, &str>(1)]).recover_with(|_, _: &Checkpoint<u8>| None::<stream::Empty<_>>);
    /// assert!(s.upstream().is_some());
    /// ```
    pub fn upstream(&self) -> Option<&S> {
        self.upstream.as_ref()
    }

    /// The fallback currently streaming, if any.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = stream::iter([Ok::<u8, &str>(1)]).recover_with(|_, _: &Checkpoint<u8>| None::<stream::Empty<_>>);
    /// assert!(s.fallback().is_none());
    /// ```
    pub fn fallback(&self) -> Option<&S2> {
        self.fallback.as_ref()
    }

    /// The checkpointer.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = stream::iter([Ok::<u8, &str>(1)]).recover_with(|_, _: &Checkpoint<u8>| None::<stream::Empty<_>>);
    /// assert_eq!(s.checkpointer(), &Checkpoint::default());
    /// ```
    pub fn checkpointer(&self) -> &K {
        &self.checkpointer
    }
}

impl<S, F, S2, K, T, E> Recover<S, F, S2, K>
where
    S: Stream<Item = Result<T, E>>,
    K: Checkpointer<T>,
{
    /// The checkpoint as of the last delivered item.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut s = stream::iter([Ok::<u8, &str>(4), Ok(5)]).recover_with(|_, _: &Checkpoint<u8>| None::<stream::Empty<_>>);
    /// s.next().await;
    /// assert_eq!(s.checkpoint(), &Checkpoint { delivered: 1, last: Some(4) });
    /// # }
    /// ```
    pub fn checkpoint(&self) -> &K::Checkpoint {
        self.checkpointer.checkpoint()
    }
}

impl<S, F, S2, K, T, E> Stream for Recover<S, F, S2, K>
where
    S: Stream<Item = Result<T, E>>,
    S2: Stream<Item = Result<T, E>>,
    K: Checkpointer<T>,
    F: FnMut(&E, &K::Checkpoint) -> Option<S2>,
    E: fmt::Display,
{
    type Item = Result<T, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            let next = if let Some(fallback) = this.fallback.as_mut().as_pin_mut() {
                ready!(fallback.poll_next(cx))
            } else if let Some(upstream) = this.upstream.as_mut().as_pin_mut() {
                ready!(upstream.poll_next(cx))
            } else {
                return Poll::Ready(None);
            };
            match next {
                Some(Ok(item)) => {
                    this.checkpointer.record(&item);
                    return Poll::Ready(Some(Ok(item)));
                }
                Some(Err(error)) => match this
                    .max_fallbacks
                    .is_none_or(|max| this.fallbacks.get() < max)
                    .then(|| (this.f)(&error, this.checkpointer.checkpoint()))
                    .flatten()
                {
                    Some(fallback) => {
                        let count = this.fallbacks.record();
                        tracing::warn!(
                            fallback = count,
                            error = %error,
                            "millrace recover_with: stream failed, switching to a fallback that resumes from the checkpoint"
                        );
                        this.upstream.set(None);
                        this.fallback.set(Some(fallback));
                    }
                    None => {
                        tracing::warn!(
                            fallbacks = this.fallbacks.get(),
                            error = %error,
                            "millrace recover_with: no fallback for this error (or the cap on fallbacks is reached), giving it up to the consumer"
                        );
                        *this.done = true;
                        this.upstream.set(None);
                        this.fallback.set(None);
                        return Poll::Ready(Some(Err(error)));
                    }
                },
                None => {
                    *this.done = true;
                    this.upstream.set(None);
                    this.fallback.set(None);
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        // An error may end the stream (lower bound 1 at most) or open a fallback of any length.
        let lower = match (&self.fallback, &self.upstream) {
            (Some(s), _) => s.size_hint().0,
            (None, Some(s)) => s.size_hint().0,
            (None, None) => 0,
        };
        (lower.min(1), None)
    }
}

impl<S, F, S2, K, T, E> FusedStream for Recover<S, F, S2, K>
where
    S: Stream<Item = Result<T, E>>,
    S2: Stream<Item = Result<T, E>>,
    K: Checkpointer<T>,
    F: FnMut(&E, &K::Checkpoint) -> Option<S2>,
    E: fmt::Display,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}

/// Reports [`StageSnapshot::fallbacks`](crate::StageSnapshot::fallbacks) from the live count.
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let s = stream::iter([Ok(1), Err("down")])
///     .recover_with(|_, _: &Checkpoint<i32>| Some(stream::iter([Ok(2)])))
///     .metered("primary")
///     .with_events();
/// let m = s.metrics();
/// let _: Vec<_> = s.collect().await;
/// assert_eq!(m.snapshot().fallbacks, Some(1));
/// # }
/// ```
impl<S, F, S2, K> Observable for Recover<S, F, S2, K> {
    fn observe_into(&self, stage: &StageMetrics) {
        stage.track_fallbacks(&self.fallbacks);
    }
}
