//! [`Tracked`]: a stream of positioned entries whose stages work on the payload.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::stream::{FusedStream, Stream};
use futures_util::stream::StreamExt as _;
use pin_project_lite::pin_project;
use tokio_util::sync::CancellationToken;

use super::{Accounting, Positioned};
use crate::PipelineExt as _;

mod concurrent;
mod errors;
mod stages;

pin_project! {
    /// A stream of [`Positioned`] entries together with its run's [`Accounting`]: the
    /// position-carrying form of a pipeline (Akka's `SourceWithContext`). Built by [`track`],
    /// [`Tracked::new`] or a source adapter's `tracked()`.
    ///
    /// Its methods apply a stage to the payload and keep the position beside it; filtered
    /// entries and dead letters stay in the stream as markers, so the commit position passes
    /// over them and they are counted. Items stay in source order except after
    /// [`map_concurrent_unordered`](Self::map_concurrent_unordered). `Tracked` is itself a
    /// `Stream` of `Positioned` entries and is fused.
    ///
    /// # Examples
    ///
    /// ```
    /// use millrace::positions::{self, Positioned};
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out: Vec<Positioned<u64, String>> = positions::track(stream::iter([(1u64, 2), (2, 3)]))
    ///     .map(|x| x * 2)
    ///     .map_with_position(|at, x| format!("{x}@{at}"))
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, [Positioned::item(1, "4@1".to_owned()), Positioned::item(2, "6@2".to_owned())]);
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct Tracked<S> {
        #[pin]
        inner: S,
        accounting: Accounting,
        done: bool,
    }
}

pin_project! {
    /// The source end of a [`Tracked`] stream: counts every entry read in the run's
    /// [`Accounting`]. Built by [`Tracked::new`].
    #[must_use = "streams do nothing unless polled"]
    pub struct CountRead<S> {
        #[pin]
        inner: S,
        accounting: Accounting,
    }
}

impl<S: fmt::Debug> fmt::Debug for CountRead<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountRead")
            .field("inner", &self.inner)
            .field("read", &self.accounting.read())
            .finish()
    }
}

impl<S: Stream> Stream for CountRead<S> {
    type Item = S::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        let item = ready!(this.inner.poll_next(cx));
        if item.is_some() {
            this.accounting.add_read(1);
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// Tracks a stream of `(position, item)` pairs: every pair becomes a [`Positioned`] item and
/// is counted as read.
///
/// ```
/// use millrace::positions;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let tracked = positions::track(stream::iter([(10u64, 'a'), (20, 'b')]));
/// let accounting = tracked.accounting();
/// assert_eq!(tracked.count().await, 2);
/// assert_eq!(accounting.read(), 2);
/// # }
/// ```
#[allow(clippy::type_complexity)]
pub fn track<S, P, T>(
    pairs: S,
) -> Tracked<CountRead<futures_util::stream::Map<S, fn((P, T)) -> Positioned<P, T>>>>
where
    S: Stream<Item = (P, T)>,
{
    fn pair<P, T>((position, item): (P, T)) -> Positioned<P, T> {
        Positioned::item(position, item)
    }
    Tracked::new(pairs.map(pair as fn((P, T)) -> Positioned<P, T>))
}

impl<S> Tracked<S> {
    /// Tracks a source of [`Positioned`] entries, counting each as read in a new
    /// [`Accounting`].
    ///
    /// ```
    /// use millrace::positions::{Positioned, Tracked};
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let t = Tracked::new(stream::iter([Positioned::item(1u64, "x"), Positioned::filtered(2)]));
    /// let a = t.accounting();
    /// t.for_each(|_| async {}).await;
    /// assert_eq!(a.read(), 2);
    /// # }
    /// ```
    pub fn new(source: S) -> Tracked<CountRead<S>> {
        let accounting = Accounting::new();
        Tracked {
            inner: CountRead {
                inner: source,
                accounting: accounting.clone(),
            },
            accounting,
            done: false,
        }
    }

    /// The run's accounting (shared: read it after the run).
    ///
    /// ```
    /// use millrace::positions;
    /// use futures::stream;
    ///
    /// let t = positions::track(stream::iter([(1u64, ())]));
    /// assert_eq!(t.accounting().read(), 0); // nothing polled yet
    /// ```
    pub fn accounting(&self) -> Accounting {
        self.accounting.clone()
    }

    /// Applies any stage that neither drops nor reorders entries (`rate_limit`, `metered_in`,
    /// `inspect`, …) to the positioned stream, keeping it tracked. Dropping entries here makes
    /// the accounting fail: filter with [`filter`](Self::filter) instead.
    ///
    /// ```
    /// use millrace::positions;
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let n = positions::track(stream::iter([(1u64, 'a'), (2, 'b')]))
    ///     .via(|s| s.rate_limit(Rate::per_second(10)))
    ///     .count()
    ///     .await;
    /// assert_eq!(n, 2);
    /// # }
    /// ```
    pub fn via<S2>(self, stage: impl FnOnce(S) -> S2) -> Tracked<S2> {
        Tracked {
            inner: stage(self.inner),
            accounting: self.accounting,
            done: self.done,
        }
    }

    /// The stream inside, without its accounting.
    ///
    /// ```
    /// use millrace::positions;
    /// use futures::stream;
    ///
    /// let _inner = positions::track(stream::iter([(1u64, ())])).into_inner();
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The stream inside.
    ///
    /// ```
    /// use millrace::positions;
    /// use futures::{stream, Stream};
    ///
    /// let t = positions::track(stream::iter([(1u64, ())]));
    /// assert_eq!(t.get_ref().size_hint(), (1, Some(1)));
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The stream inside, mutably (pulling from it bypasses nothing: positions stay with
    /// their entries).
    ///
    /// ```
    /// use millrace::positions;
    /// use futures::stream;
    ///
    /// let mut t = positions::track(stream::iter([(1u64, ())]));
    /// let _inner = t.get_mut();
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: Stream> Tracked<S> {
    /// Drives the stream on its own task into a buffer of `capacity`, positions included (see
    /// [`PipelineExt::prefetch`](crate::PipelineExt::prefetch)).
    ///
    /// ```
    /// use millrace::positions;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let n = positions::track(stream::iter([(1u64, 'a'), (2, 'b')])).prefetch(4).count().await;
    /// assert_eq!(n, 2);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `capacity` is 0; when polled outside a tokio runtime.
    #[track_caller]
    pub fn prefetch(self, capacity: usize) -> Tracked<crate::wrappers::Prefetch<S>>
    where
        S: Send + 'static,
        S::Item: Send,
    {
        self.via(|inner| inner.prefetch(capacity))
    }

    /// Stops pulling from the source when `token` fires; what was read drains and can commit
    /// (see [`PipelineExt::stop_on`](crate::PipelineExt::stop_on)).
    ///
    /// ```
    /// use millrace::positions;
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let token = CancellationToken::new();
    /// token.cancel();
    /// let n = positions::track(stream::iter([(1u64, 'a')])).stop_on(token).count().await;
    /// assert_eq!(n, 0);
    /// # }
    /// ```
    pub fn stop_on(self, token: CancellationToken) -> Tracked<crate::wrappers::StopOn<S>> {
        self.via(|inner| inner.stop_on(token))
    }
}

/// `futures::StreamExt::map` under a name that cannot be shadowed by `Tracked`'s own `map`.
struct StreamFns;

impl StreamFns {
    #[inline]
    fn map<S: Stream, U, F: FnMut(S::Item) -> U>(s: S, f: F) -> futures_util::stream::Map<S, F> {
        futures_util::stream::StreamExt::map(s, f)
    }
}

impl<S: fmt::Debug> fmt::Debug for Tracked<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracked")
            .field("inner", &self.inner)
            .field("accounting", &self.accounting.counts())
            .field("done", &self.done)
            .finish()
    }
}

impl<S: Stream> Stream for Tracked<S> {
    type Item = S::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let item = ready!(this.inner.poll_next(cx));
        if item.is_none() {
            *this.done = true;
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            self.inner.size_hint()
        }
    }
}

impl<S: Stream> FusedStream for Tracked<S> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}
