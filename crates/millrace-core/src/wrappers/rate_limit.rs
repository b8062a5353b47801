//! [`RateLimit`]: release items no faster than a [`Rate`](crate::policy::Rate).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::Stage;
use crate::policy::RateLimiter;

pin_project! {
    /// Stream for the [`rate_limit`](crate::PipelineExt::rate_limit) method.
    ///
    /// When the consumer asks, the next item is pulled from the upstream at once (so the end
    /// of the stream is seen without waiting) and held until the (possibly shared) budget
    /// allows it; the budget is taken at that moment. At most one item is held. One timer per
    /// wrapper, re-armed for each wait.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::RateLimit;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let s = RateLimit::new(stream::iter([1, 2]), Rate::per_second(1));
    /// assert_eq!(s.collect::<Vec<_>>().await, [1, 2]);
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct RateLimit<S: Stream> {
        #[pin]
        upstream: S,
        limiter: RateLimiter,
        // Created on the first wait (creating a `Sleep` needs a runtime), then re-armed.
        sleep: Option<Pin<Box<Sleep>>>,
        item: Option<S::Item>,
        upstream_done: bool,
    }
}

impl<S> fmt::Debug for RateLimit<S>
where
    S: Stream + fmt::Debug,
    S::Item: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("upstream", &self.upstream)
            .field("limiter", &self.limiter)
            .field("item", &self.item)
            .field("upstream_done", &self.upstream_done)
            .finish()
    }
}

impl<S: Stream> RateLimit<S> {
    /// Wraps `upstream`; pass a [`Rate`](crate::policy::Rate) for a fresh budget or a
    /// [`RateLimiter`] clone to share one.
    pub fn new(upstream: S, limiter: impl Into<RateLimiter>) -> Self {
        RateLimit {
            upstream,
            limiter: limiter.into(),
            sleep: None,
            item: None,
            upstream_done: false,
        }
    }

    /// The limiter this stream draws from.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = stream::iter([1]).rate_limit(Rate::per_second(5));
    /// assert_eq!(s.limiter().rate(), Rate::per_second(5));
    /// ```
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    delegate_access_inner!(upstream, S);
}

fn wait(sleep: &mut Option<Pin<Box<Sleep>>>, at: Instant, cx: &mut Context<'_>) -> Poll<()> {
    let sleep = sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
    sleep.as_mut().reset(at);
    sleep.as_mut().poll(cx)
}

impl<S: Stream> Stream for RateLimit<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        if this.item.is_none() {
            if *this.upstream_done {
                return Poll::Ready(None);
            }
            match ready!(this.upstream.as_mut().poll_next(cx)) {
                Some(item) => *this.item = Some(item),
                None => {
                    *this.upstream_done = true;
                    return Poll::Ready(None);
                }
            }
        }
        loop {
            match this.limiter.acquire_at(Instant::now()) {
                Ok(()) => return Poll::Ready(this.item.take()),
                Err(at) => ready!(wait(this.sleep, at, cx)),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let held = usize::from(self.item.is_some());
        super::size_hint::plus_held(self.upstream_done, &self.upstream, held)
    }
}

impl<S: Stream> FusedStream for RateLimit<S> {
    fn is_terminated(&self) -> bool {
        self.upstream_done && self.item.is_none()
    }
}

/// A [`Stage`] that wraps its upstream in [`RateLimit`].
///
/// The stage holds a [`RateLimiter`]: every stream it wraps, and every clone of the stage,
/// **shares that one budget**. Build one stage per independent budget.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::wrappers::RateLimitStage;
/// use futures::{stream, StreamExt};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let stage = RateLimitStage::new(Rate::per_second(2));
/// let start = tokio::time::Instant::now();
/// let a: Vec<i32> = stream::iter([1, 2]).wrap(stage.clone()).collect().await;
/// let b: Vec<i32> = stream::iter([3, 4]).wrap(stage).collect().await;
/// assert_eq!((a, b), (vec![1, 2], vec![3, 4]));
/// assert_eq!(start.elapsed(), Duration::from_millis(1500)); // 4 items, one shared budget
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RateLimitStage {
    limiter: RateLimiter,
}

impl RateLimitStage {
    /// A stage drawing from `limiter` (a [`Rate`](crate::policy::Rate) makes a fresh one).
    pub fn new(limiter: impl Into<RateLimiter>) -> Self {
        RateLimitStage {
            limiter: limiter.into(),
        }
    }
}

impl<S: Stream> Stage<S> for RateLimitStage {
    type Output = RateLimit<S>;

    fn wrap(self, upstream: S) -> RateLimit<S> {
        RateLimit::new(upstream, self.limiter)
    }
}
