//! [`MapRetry`]: a fallible concurrent map whose failed items are retried one by one.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use backon::BackoffBuilder;
use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;

mod stage;

pub use self::stage::MapRetryStage;

use super::MapConcurrent;
use crate::error::ConfigError;
use crate::metrics::{EventCounter, Observable, StageMetrics};
use crate::policy::{RetryIf, RetryPolicy, Throttle};

/// One item's attempts, backoff waits included.
///
/// In a `Mutex` only to be `Sync` without asking the same of the user's futures: it is polled
/// through `get_mut` (exclusive access, no locking), so the mutex costs nothing.
struct Job<U, E>(Mutex<Attempts<U, E>>);

/// The attempts of one item, as the core retry loop runs them.
type Attempts<U, E> = Pin<Box<dyn Future<Output = Result<U, E>> + Send>>;

impl<U, E> Future for Job<U, E> {
    type Output = Result<U, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<U, E>> {
        self.get_mut()
            .0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .poll(cx)
    }
}
/// Turns an upstream item into its job.
type StartJob<I, U, E> = Box<dyn FnMut(I) -> Job<U, E> + Send + Sync>;
/// The throttle, settable after construction (read when an item starts).
type SharedThrottle = Arc<Mutex<Option<Throttle>>>;

pin_project! {
    /// Stream for the [`map_retry`](crate::PipelineExt::map_retry) and
    /// [`map_retry_unordered`](crate::PipelineExt::map_retry_unordered) methods.
    ///
    /// Each item runs `f(item.clone())` until it succeeds, retrying the errors the policy's
    /// [`retry_if`](RetryPolicy::retry_if) accepts with its waits; when they run out the
    /// item's **last error** is yielded in its place (so every item ends up delivered or
    /// reported) and the stream goes on with the next item. At most `n` items are in progress,
    /// on tokio tasks (the core [`MapConcurrent`] underneath, spawned mode).
    ///
    /// **A backing-off item keeps its place among the `n`**: while an item waits to be
    /// retried, no new item starts in its place. Retries are the moment a struggling service
    /// needs fewer requests, not more; a stage that let new items in during backoffs would send
    /// up to `n` new requests *plus* every retry. The in-flight slot of a [`Throttle`], on the
    /// other hand, is held only while an attempt runs.
    ///
    /// Counted: [`retries`](Self::retries) (every retry of every item); a `.metered(..)` stage
    /// right after this one (or `pipeline!`) adopts them as its `retries`, together with the
    /// in-flight and buffered gauges.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::MapRetry;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let s = MapRetry::new(stream::iter([1, 2]), 2, RetryPolicy::exponential(), |x: i32| async move {
    ///     Ok::<_, String>(x * 10)
    /// });
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(10), Ok(20)]);
    /// # }
    /// ```
    ///
    /// `get_ref`, `get_mut`, `get_pin_mut` and `into_inner` reach the upstream (items in
    /// progress are aborted by `into_inner`):
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let mut s = stream::iter([1, 2]).map_retry(2, RetryPolicy::exponential(), |x: u8| async move { Ok::<_, ()>(x) });
    /// assert_eq!(s.get_ref().size_hint(), (2, Some(2)));
    /// assert_eq!(s.get_mut().size_hint(), (2, Some(2)));
    /// assert_eq!(s.into_inner().size_hint(), (2, Some(2)));
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct MapRetry<S, U, E>
    where
        S: Stream,
    {
        #[pin]
        inner: MapConcurrent<S, StartJob<S::Item, U, E>, Job<U, E>>,
        retries: EventCounter,
        throttle: SharedThrottle,
    }
}

impl<S, U, E> fmt::Debug for MapRetry<S, U, E>
where
    S: Stream + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapRetry")
            .field("inner", &self.inner)
            .field("retries", &self.retries.get())
            .finish_non_exhaustive()
    }
}

impl<S, U, E> MapRetry<S, U, E>
where
    S: Stream,
    S::Item: Clone + Send + 'static,
    U: Send + 'static,
    E: Send + 'static,
{
    /// Ordered: outputs in input order, at most `limit` items in progress.
    ///
    /// # Panics
    ///
    /// If `limit` is 0 (see [`checked_new`](Self::checked_new)).
    #[track_caller]
    pub fn new<F, Fut, B, P>(upstream: S, limit: usize, policy: RetryPolicy<B, P>, f: F) -> Self
    where
        F: Fn(S::Item) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        B: BackoffBuilder + Clone + Send + 'static,
        P: RetryIf<E> + Clone + Send + Sync + 'static,
    {
        crate::error::built(Self::checked_new(upstream, limit, policy, f))
    }

    /// Ordered, or a [`ConfigError`] if `limit` is 0.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::MapRetry;
    /// use futures::stream;
    ///
    /// let err = MapRetry::checked_new(stream::iter([1]), 0, RetryPolicy::exponential(), |x: i32| async move {
    ///     Ok::<_, String>(x)
    /// })
    /// .unwrap_err();
    /// assert_eq!(err.to_string(), "`map_retry`: `limit` must be at least 1, got 0; pass a non-zero value");
    /// ```
    pub fn checked_new<F, Fut, B, P>(
        upstream: S,
        limit: usize,
        policy: RetryPolicy<B, P>,
        f: F,
    ) -> Result<Self, ConfigError>
    where
        F: Fn(S::Item) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        B: BackoffBuilder + Clone + Send + 'static,
        P: RetryIf<E> + Clone + Send + Sync + 'static,
    {
        Self::build(upstream, limit, policy, f, true)
    }

    /// Renamed [`checked_new`](Self::checked_new).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_new`")]
    pub fn try_new<F, Fut, B, P>(
        upstream: S,
        limit: usize,
        policy: RetryPolicy<B, P>,
        f: F,
    ) -> Result<Self, ConfigError>
    where
        F: Fn(S::Item) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        B: BackoffBuilder + Clone + Send + 'static,
        P: RetryIf<E> + Clone + Send + Sync + 'static,
    {
        Self::checked_new(upstream, limit, policy, f)
    }

    /// Unordered: outputs in completion order, at most `limit` items in progress.
    ///
    /// # Panics
    ///
    /// If `limit` is 0 (see [`checked_new_unordered`](Self::checked_new_unordered)).
    #[track_caller]
    pub fn new_unordered<F, Fut, B, P>(
        upstream: S,
        limit: usize,
        policy: RetryPolicy<B, P>,
        f: F,
    ) -> Self
    where
        F: Fn(S::Item) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        B: BackoffBuilder + Clone + Send + 'static,
        P: RetryIf<E> + Clone + Send + Sync + 'static,
    {
        crate::error::built(Self::checked_new_unordered(upstream, limit, policy, f))
    }

    /// Unordered, or a [`ConfigError`] if `limit` is 0.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::MapRetry;
    /// use futures::stream;
    ///
    /// let res = MapRetry::checked_new_unordered(stream::iter([1]), 0, RetryPolicy::exponential(), |x: i32| async move {
    ///     Ok::<_, String>(x)
    /// });
    /// assert!(res.is_err());
    /// ```
    pub fn checked_new_unordered<F, Fut, B, P>(
        upstream: S,
        limit: usize,
        policy: RetryPolicy<B, P>,
        f: F,
    ) -> Result<Self, ConfigError>
    where
        F: Fn(S::Item) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        B: BackoffBuilder + Clone + Send + 'static,
        P: RetryIf<E> + Clone + Send + Sync + 'static,
    {
        Self::build(upstream, limit, policy, f, false)
    }

    /// Renamed [`checked_new_unordered`](Self::checked_new_unordered).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_new_unordered`")]
    pub fn try_new_unordered<F, Fut, B, P>(
        upstream: S,
        limit: usize,
        policy: RetryPolicy<B, P>,
        f: F,
    ) -> Result<Self, ConfigError>
    where
        F: Fn(S::Item) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        B: BackoffBuilder + Clone + Send + 'static,
        P: RetryIf<E> + Clone + Send + Sync + 'static,
    {
        Self::checked_new_unordered(upstream, limit, policy, f)
    }

    pub(crate) fn build<F, Fut, B, P>(
        upstream: S,
        limit: usize,
        policy: RetryPolicy<B, P>,
        f: F,
        ordered: bool,
    ) -> Result<Self, ConfigError>
    where
        F: Fn(S::Item) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<U, E>> + Send + 'static,
        B: BackoffBuilder + Clone + Send + 'static,
        P: RetryIf<E> + Clone + Send + Sync + 'static,
    {
        let stage = if ordered {
            "map_retry"
        } else {
            "map_retry_unordered"
        };
        crate::error::nonzero(stage, "limit", limit)?;
        let retries = EventCounter::default();
        let throttle: SharedThrottle = Arc::default();
        let f = Arc::new(f);
        let start: StartJob<S::Item, U, E> = {
            let retries = retries.clone();
            let throttle = Arc::clone(&throttle);
            Box::new(move |item: S::Item| -> Job<U, E> {
                let f = Arc::clone(&f);
                let retries = retries.clone();
                let throttle = throttle
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let attempt = move || {
                    let call = f(item.clone());
                    let throttle = throttle.clone();
                    async move {
                        match throttle {
                            Some(throttle) => throttle.run(call).await,
                            None => call.await,
                        }
                    }
                };
                Job(Mutex::new(Box::pin(crate::policy::retry::attempts(
                    policy.clone(),
                    attempt,
                    move |_: &E, _| {
                        retries.record();
                    },
                ))))
            })
        };
        let inner = if ordered {
            MapConcurrent::checked_new(upstream, limit, start)?
        } else {
            MapConcurrent::checked_new_unordered(upstream, limit, start)?
        };
        Ok(MapRetry {
            inner,
            retries,
            throttle,
        })
    }
}

impl<S: Stream, U, E> MapRetry<S, U, E> {
    /// Puts **every attempt** (first tries and retries) under `throttle`: an in-flight slot
    /// held while the attempt runs, and a rate permit. Share the throttle (clones share their
    /// limits) with every other place that calls the same service. Items already started
    /// keep the throttle they started with.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::policy::Throttle;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let throttle = Throttle::new().rate(Rate::per_second(10));
    /// let start = tokio::time::Instant::now();
    /// let out: Vec<Result<u32, String>> = stream::iter(0..3u32)
    ///     .map_retry(8, RetryPolicy::fixed(Duration::ZERO, 1), |x| async move {
    ///         if x == 0 { Err("once".to_owned()) } else { Ok(x) }
    ///     })
    ///     .throttle(throttle)
    ///     .collect()
    ///     .await;
    /// assert_eq!(out, [Err("once".to_owned()), Ok(1), Ok(2)]);
    /// // 4 attempts (item 0 twice) at 10 per second: the last starts at 300 ms.
    /// assert_eq!(start.elapsed(), Duration::from_millis(300));
    /// # }
    /// ```
    pub fn throttle(self, throttle: Throttle) -> Self {
        *self.throttle.lock().unwrap_or_else(PoisonError::into_inner) = Some(throttle);
        self
    }

    /// The retries of every item so far: a live handle, readable while another task consumes
    /// the stream.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let s = stream::iter([1, 2]).map_retry(2, RetryPolicy::fixed(Duration::from_millis(5), 3), |_: u8| async move {
    ///     Err::<u8, _>("down")
    /// });
    /// let retries = s.retries();
    /// assert_eq!(s.collect::<Vec<_>>().await, [Err("down"), Err("down")]);
    /// assert_eq!(retries.get(), 6);
    /// # }
    /// ```
    pub fn retries(&self) -> EventCounter {
        self.retries.clone()
    }

    /// The retry count; the old name of [`retries`](Self::retries).
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = stream::iter([1]).map_retry(2, RetryPolicy::exponential(), |x: u8| async move { Ok::<_, ()>(x) });
    /// assert_eq!(s.stats().get(), 0);
    /// ```
    #[deprecated(since = "0.2.0", note = "use `MapRetry::retries`")]
    pub fn stats(&self) -> EventCounter {
        self.retries()
    }

    /// How many finished items may wait for an earlier, slower one (ordered mode; default
    /// `limit`); see [`MapConcurrent::with_output_buffer`].
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter([1])
    ///     .map_retry(2, RetryPolicy::exponential(), |x: u8| async move { Ok::<_, ()>(x) })
    ///     .with_output_buffer(0);
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(1)]);
    /// # }
    /// ```
    pub fn with_output_buffer(self, m: usize) -> Self {
        MapRetry {
            inner: self.inner.with_output_buffer(m),
            retries: self.retries,
            throttle: self.throttle,
        }
    }

    /// Items in progress now (attempting or backing off).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = stream::iter([1]).map_retry(2, RetryPolicy::exponential(), |x: u8| async move { Ok::<_, ()>(x) });
    /// assert_eq!(s.in_flight(), 0);
    /// ```
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }

    delegate_access_inner!(via inner, S);
}

impl<S, U, E> Stream for MapRetry<S, U, E>
where
    S: Stream,
    U: Send + 'static,
    E: Send + 'static,
{
    type Item = Result<U, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<U, E>>> {
        self.project().inner.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<S, U, E> FusedStream for MapRetry<S, U, E>
where
    S: Stream,
    U: Send + 'static,
    E: Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}

/// Reports the retries of every item, and the in-flight and buffered counts of the
/// concurrent map underneath.
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let s = stream::iter([1, 2, 3])
///     .map_retry(2, RetryPolicy::fixed(Duration::from_millis(10), 1), |x: u8| async move {
///         if x == 2 { Err("flaky") } else { Ok(x) }
///     })
///     .metered("fetch")
///     .with_events();
/// let m = s.metrics();
/// let _: Vec<_> = s.collect().await;
/// assert_eq!(m.snapshot().retries, Some(1));
/// # }
/// ```
impl<S: Stream, U, E> Observable for MapRetry<S, U, E> {
    fn observe_into(&self, stage: &StageMetrics) {
        stage.track_retries(&self.retries);
        self.inner.observe_into(stage);
    }
}
