//! [`MapBlocking`]: synchronous work on tokio's blocking pool, bounded and in order.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;
use tokio_util::task::AbortOnDropHandle;

use crate::Stage;
use crate::error::{ConfigError, nonzero};
use crate::wrappers::map_concurrent::unwrap_join;

pin_project! {
    /// Stream for the [`map_blocking`](crate::PipelineExt::map_blocking) method.
    ///
    /// At most `n` calls of `f` are outstanding (queued on or running in the blocking pool, or
    /// finished and waiting to be yielded in order); outputs come in input order.
    ///
    /// # Drop
    ///
    /// Dropping the stream aborts every call that has **not started** yet (it never runs);
    /// a call already running on a blocking thread cannot be interrupted: it runs to the end
    /// and its output is dropped.
    ///
    /// ```
    /// use millrace::wrappers::MapBlocking;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = MapBlocking::new(stream::iter(["a", "bb"]), 2, |s: &str| s.len());
    /// assert_eq!(s.collect::<Vec<_>>().await, [1, 2]);
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct MapBlocking<S, F, U> {
        #[pin]
        upstream: S,
        f: Arc<F>,
        running: VecDeque<AbortOnDropHandle<U>>,
        limit: usize,
        upstream_done: bool,
        finished: bool,
    }
}

impl<S: fmt::Debug, F, U> fmt::Debug for MapBlocking<S, F, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapBlocking")
            .field("upstream", &self.upstream)
            .field("limit", &self.limit)
            .field("outstanding", &self.running.len())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<S, F, U> MapBlocking<S, F, U>
where
    S: Stream,
    S::Item: Send + 'static,
    F: Fn(S::Item) -> U + Send + Sync + 'static,
    U: Send + 'static,
{
    /// At most `limit` calls outstanding.
    ///
    /// # Panics
    ///
    /// If `limit` is 0 (see [`checked_new`](Self::checked_new)).
    pub fn new(upstream: S, limit: usize, f: F) -> Self {
        crate::error::built(Self::checked_new(upstream, limit, f))
    }

    /// At most `limit` calls outstanding, or a [`ConfigError`] if `limit` is 0.
    ///
    /// ```
    /// use millrace::wrappers::MapBlocking;
    /// use futures::stream;
    ///
    /// let res = MapBlocking::checked_new(stream::iter([1]), 0, |x: i32| x);
    /// assert_eq!(
    ///     res.unwrap_err().to_string(),
    ///     "`map_blocking`: `limit` must be at least 1, got 0; pass a non-zero value"
    /// );
    /// ```
    pub fn checked_new(upstream: S, limit: usize, f: F) -> Result<Self, ConfigError> {
        let limit = nonzero("map_blocking", "limit", limit)?.get();
        Ok(MapBlocking {
            upstream,
            f: Arc::new(f),
            running: VecDeque::with_capacity(limit),
            limit,
            upstream_done: false,
            finished: false,
        })
    }

    /// Renamed [`checked_new`](Self::checked_new).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_new`")]
    pub fn try_new(upstream: S, limit: usize, f: F) -> Result<Self, ConfigError> {
        Self::checked_new(upstream, limit, f)
    }
}

impl<S, F, U> MapBlocking<S, F, U> {
    delegate_access_inner!(upstream, S);
}

impl<S, F, U> Stream for MapBlocking<S, F, U>
where
    S: Stream,
    S::Item: Send + 'static,
    F: Fn(S::Item) -> U + Send + Sync + 'static,
    U: Send + 'static,
{
    type Item = U;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<U>> {
        let mut this = self.project();
        if *this.finished {
            return Poll::Ready(None);
        }
        while !*this.upstream_done && this.running.len() < *this.limit {
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    let f = Arc::clone(this.f);
                    let handle = tokio::task::spawn_blocking(move || f(item));
                    this.running.push_back(AbortOnDropHandle::new(handle));
                }
                Poll::Ready(None) => *this.upstream_done = true,
                Poll::Pending => break,
            }
        }
        match this.running.front_mut() {
            Some(handle) => {
                let r = ready!(Pin::new(handle).poll(cx));
                this.running.pop_front();
                Poll::Ready(Some(unwrap_join("map_blocking", r)))
            }
            None if *this.upstream_done => {
                *this.finished = true;
                Poll::Ready(None)
            }
            None => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.finished {
            return (0, Some(0));
        }
        let held = self.running.len();
        super::size_hint::plus_held(self.upstream_done, &self.upstream, held)
    }
}

impl<S, F, U> FusedStream for MapBlocking<S, F, U>
where
    S: Stream,
    S::Item: Send + 'static,
    F: Fn(S::Item) -> U + Send + Sync + 'static,
    U: Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.finished
    }
}

/// A [`Stage`] that wraps its upstream in [`MapBlocking`]; the function is part of it.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::MapBlockingStage;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let stage = MapBlockingStage::new(2, |x: u64| x * x);
/// let out: Vec<u64> = stream::iter(1..=3).wrap(stage).collect().await;
/// assert_eq!(out, [1, 4, 9]);
/// # }
/// ```
#[derive(Clone)]
pub struct MapBlockingStage<F> {
    f: F,
    limit: usize,
}

impl<F> fmt::Debug for MapBlockingStage<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapBlockingStage")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<F> MapBlockingStage<F> {
    /// At most `limit` calls outstanding.
    ///
    /// # Panics
    ///
    /// If `limit` is 0 (see [`checked_new`](Self::checked_new)).
    pub fn new(limit: usize, f: F) -> Self {
        crate::error::built(Self::checked_new(limit, f))
    }

    /// At most `limit` calls outstanding, or a [`ConfigError`] if `limit` is 0.
    ///
    /// ```
    /// use millrace::wrappers::MapBlockingStage;
    ///
    /// assert!(MapBlockingStage::checked_new(0, |x: u8| x).is_err());
    /// ```
    pub fn checked_new(limit: usize, f: F) -> Result<Self, ConfigError> {
        let limit = nonzero("map_blocking", "limit", limit)?.get();
        Ok(MapBlockingStage { f, limit })
    }

    /// Renamed [`checked_new`](Self::checked_new).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_new`")]
    pub fn try_new(limit: usize, f: F) -> Result<Self, ConfigError> {
        Self::checked_new(limit, f)
    }
}

impl<S, F, U> Stage<S> for MapBlockingStage<F>
where
    S: Stream,
    S::Item: Send + 'static,
    F: Fn(S::Item) -> U + Send + Sync + 'static,
    U: Send + 'static,
{
    type Output = MapBlocking<S, F, U>;

    fn wrap(self, upstream: S) -> Self::Output {
        MapBlocking::new(upstream, self.limit, self.f)
    }
}
