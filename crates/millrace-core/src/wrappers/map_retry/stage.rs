//! [`MapRetryStage`]: the [`Stage`](crate::Stage) form of
//! [`map_retry`](crate::PipelineExt::map_retry).

use std::fmt;
use std::future::Future;

use backon::BackoffBuilder;
use futures_core::Stream;

use super::MapRetry;
use crate::error::ConfigError;
use crate::policy::{RetryIf, RetryPolicy, Throttle};

/// A [`Stage`](crate::Stage) that applies [`map_retry`](crate::PipelineExt::map_retry) (or
/// its unordered form), with an optional [`Throttle`]: one per-item retry segment, built
/// once, applied to many sources.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::policy::Throttle;
/// use millrace::wrappers::MapRetryStage;
/// use futures::{stream, StreamExt};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let service = Throttle::new().rate(Rate::per_second(100)).max_in_flight(4);
/// let lookup = MapRetryStage::new(4, RetryPolicy::fixed(Duration::from_millis(10), 2), |id: u32| async move {
///     Ok::<_, String>(id + 1)
/// })
/// .throttle(service);
/// let a: Vec<_> = stream::iter([1, 2]).wrap(lookup.clone()).collect().await;
/// let b: Vec<_> = stream::iter([3]).wrap(lookup).collect().await;
/// assert_eq!((a, b), (vec![Ok(2), Ok(3)], vec![Ok(4)]));
/// # }
/// ```
#[derive(Clone)]
pub struct MapRetryStage<F, B, P> {
    limit: usize,
    ordered: bool,
    policy: RetryPolicy<B, P>,
    f: F,
    throttle: Option<Throttle>,
}

impl<F, B: fmt::Debug, P> fmt::Debug for MapRetryStage<F, B, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapRetryStage")
            .field("limit", &self.limit)
            .field("ordered", &self.ordered)
            .field("policy", &self.policy)
            .field("throttle", &self.throttle)
            .finish_non_exhaustive()
    }
}

impl<F, B, P> MapRetryStage<F, B, P> {
    /// Ordered, at most `limit` items in progress.
    ///
    /// # Panics
    ///
    /// If `limit` is 0 (see [`checked_new`](Self::checked_new)).
    #[track_caller]
    pub fn new(limit: usize, policy: RetryPolicy<B, P>, f: F) -> Self {
        crate::error::built(Self::checked_new(limit, policy, f))
    }

    /// Ordered, or a [`ConfigError`] if `limit` is 0.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::MapRetryStage;
    ///
    /// let err = MapRetryStage::checked_new(0, RetryPolicy::exponential(), |x: u8| async move { Ok::<_, ()>(x) })
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "`map_retry`: `limit` must be at least 1, got 0; pass a non-zero value");
    /// ```
    pub fn checked_new(limit: usize, policy: RetryPolicy<B, P>, f: F) -> Result<Self, ConfigError> {
        crate::error::nonzero("map_retry", "limit", limit)?;
        Ok(MapRetryStage {
            limit,
            ordered: true,
            policy,
            f,
            throttle: None,
        })
    }

    /// Renamed [`checked_new`](Self::checked_new).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_new`")]
    pub fn try_new(limit: usize, policy: RetryPolicy<B, P>, f: F) -> Result<Self, ConfigError> {
        Self::checked_new(limit, policy, f)
    }

    /// Unordered, at most `limit` items in progress.
    ///
    /// # Panics
    ///
    /// If `limit` is 0.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::MapRetryStage;
    ///
    /// let _stage = MapRetryStage::unordered(4, RetryPolicy::exponential(), |x: u8| async move { Ok::<_, ()>(x) });
    /// ```
    #[track_caller]
    pub fn unordered(limit: usize, policy: RetryPolicy<B, P>, f: F) -> Self {
        crate::error::built(
            crate::error::nonzero("map_retry_unordered", "limit", limit).map(|_| MapRetryStage {
                limit,
                ordered: false,
                policy,
                f,
                throttle: None,
            }),
        )
    }

    /// Puts every attempt under `throttle` (see [`MapRetry::throttle`]); every stream this
    /// stage wraps shares it.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::policy::Throttle;
    /// use millrace::wrappers::MapRetryStage;
    ///
    /// let _stage = MapRetryStage::new(4, RetryPolicy::exponential(), |x: u8| async move { Ok::<_, ()>(x) })
    ///     .throttle(Throttle::new().max_in_flight(2));
    /// ```
    pub fn throttle(mut self, throttle: Throttle) -> Self {
        self.throttle = Some(throttle);
        self
    }
}

impl<S, F, Fut, U, E, B, P> crate::Stage<S> for MapRetryStage<F, B, P>
where
    S: Stream,
    S::Item: Clone + Send + 'static,
    F: Fn(S::Item) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<U, E>> + Send + 'static,
    U: Send + 'static,
    E: Send + 'static,
    B: BackoffBuilder + Clone + Send + 'static,
    P: RetryIf<E> + Clone + Send + Sync + 'static,
{
    type Output = MapRetry<S, U, E>;

    fn wrap(self, upstream: S) -> MapRetry<S, U, E> {
        let built = MapRetry::build(upstream, self.limit, self.policy, self.f, self.ordered)
            .expect("the limit was checked when the stage was built");
        match self.throttle {
            Some(throttle) => built.throttle(throttle),
            None => built,
        }
    }
}
