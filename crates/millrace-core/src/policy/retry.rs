//! [`RetryPolicy`]: how long to wait between attempts and when to give up.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ConstantBuilder};

use super::Backoff;

/// Decides whether an error is worth retrying; see [`RetryPolicy::retry_if`].
///
/// Implemented by [`RetryAll`] (the default) and by every `FnMut(&E) -> bool`.
pub trait RetryIf<E> {
    /// `true` to retry after `error`, `false` to yield it and end the stream.
    fn should_retry(&mut self, error: &E) -> bool;
}

/// The default [`RetryIf`]: every error is retried (until the backoff runs out).
///
/// ```
/// use millrace::policy::{RetryAll, RetryIf};
///
/// assert!(RetryIf::<std::io::Error>::should_retry(&mut RetryAll, &std::io::ErrorKind::Other.into()));
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RetryAll;

impl<E> RetryIf<E> for RetryAll {
    #[inline]
    fn should_retry(&mut self, _: &E) -> bool {
        true
    }
}

impl<E, F: FnMut(&E) -> bool> RetryIf<E> for F {
    #[inline]
    fn should_retry(&mut self, error: &E) -> bool {
        self(error)
    }
}

/// How [`Retry`](crate::wrappers::Retry) waits between attempts and when it gives up.
///
/// Wraps any [backon](https://docs.rs/backon) backoff builder (re-exported here:
/// [`ExponentialBuilder`](crate::policy::ExponentialBuilder), [`ConstantBuilder`], [`FibonacciBuilder`](crate::policy::FibonacciBuilder)).
/// The builder's `max_times` is the number of **retries** after a failure (not counting the
/// first attempt). millrace's own [`Backoff`] checks its parameters, caps every wait
/// **jitter included** and tells the delay of retry `n` without iterating
/// ([`delay`](Self::delay)); with backon's builders, jitter adds a random `[0, d)` to each
/// delay `d` *after* their `max_delay`, so set the policy's own [`max_delay`](Self::max_delay)
/// to cap the actual wait. Delays are rounded to the nearest millisecond (tokio's timer
/// resolution; this also removes the `f32` noise of backon's arithmetic, so 100 ms doubling
/// waits exactly 100, 200, 400 ms).
///
/// The same policy drives [`Retry`](crate::wrappers::Retry) (re-opening a source), the
/// per-item [`map_retry`](crate::PipelineExt::map_retry) and one future outside any stream
/// ([`retry`](Self::retry)).
///
/// On top of the builder:
/// - [`max_delay`](Self::max_delay): no single wait exceeds it, jitter included;
/// - [`max_total_delay`](Self::max_total_delay): give up once the summed waits of the current
///   failure streak would exceed a bound;
/// - [`reset_after_success`](Self::reset_after_success) (default `true`): an item delivered to the
///   consumer restarts the schedule (first delay, full attempt count, total delay back to 0);
/// - [`retry_if`](Self::retry_if): errors for which the predicate is `false` are yielded at once
///   and end the stream.
///
/// When the schedule runs out, the **last** error is yielded and the stream ends.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::policy::ExponentialBuilder;
/// use std::time::Duration;
///
/// let policy = RetryPolicy::new(
///     ExponentialBuilder::default()
///         .with_min_delay(Duration::from_millis(100))
///         .with_max_times(5)
///         .with_jitter(),
/// )
/// .max_total_delay(Duration::from_secs(10))
/// .retry_if(|e: &std::io::Error| e.kind() != std::io::ErrorKind::PermissionDenied);
/// assert_eq!(policy.total_delay_limit(), Some(Duration::from_secs(10)));
/// ```
#[derive(Clone)]
pub struct RetryPolicy<B, P = RetryAll> {
    pub(crate) builder: B,
    pub(crate) max_delay: Option<Duration>,
    pub(crate) max_total_delay: Option<Duration>,
    pub(crate) reset_after_success: bool,
    pub(crate) retry_if: P,
}

impl<B: fmt::Debug, P> fmt::Debug for RetryPolicy<B, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("builder", &self.builder)
            .field("max_delay", &self.max_delay)
            .field("max_total_delay", &self.max_total_delay)
            .field("reset_after_success", &self.reset_after_success)
            .finish_non_exhaustive()
    }
}

impl<B: BackoffBuilder + Clone> RetryPolicy<B> {
    /// A policy following `builder`'s schedule, retrying every error, resetting after success.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::policy::FibonacciBuilder;
    ///
    /// let policy = RetryPolicy::new(FibonacciBuilder::default().with_max_times(4));
    /// assert!(policy.resets_after_success());
    /// ```
    pub fn new(builder: B) -> Self {
        RetryPolicy {
            builder,
            max_delay: None,
            max_total_delay: None,
            reset_after_success: true,
            retry_if: RetryAll,
        }
    }
}

impl RetryPolicy<Backoff> {
    /// Exponential backoff with jitter: 100 ms, 200 ms, 400 ms, … at most 5 retries per
    /// failure streak; each wait lies in `[d, 2d]` for the nominal delay `d`, and **no wait
    /// exceeds 30 s, jitter included** (a [`Backoff`]).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use std::time::Duration;
    ///
    /// let policy = RetryPolicy::exponential();
    /// assert_eq!(policy.total_delay_limit(), None);
    /// assert_eq!(policy.delay(3), Some(Duration::from_millis(400)));
    /// assert_eq!(policy.builder().max_wait(3), Some(Duration::from_millis(800)));
    /// ```
    pub fn exponential() -> Self {
        RetryPolicy::new(
            Backoff::exponential(Duration::from_millis(100))
                .max_delay(Duration::from_secs(30))
                .max_retries(5)
                .jitter(1.0),
        )
    }
}

impl<P> RetryPolicy<Backoff, P> {
    /// The nominal delay before retry `n` (1-based, jitter not included; see
    /// [`Backoff::delay`]), capped by this policy's [`max_delay`](Self::max_delay); `None` if
    /// the schedule gives up before it. Computed, not iterated.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::policy::Backoff;
    /// use std::time::Duration;
    ///
    /// let policy = RetryPolicy::new(Backoff::exponential(Duration::from_secs(1)).max_retries(10))
    ///     .max_delay(Duration::from_secs(60));
    /// assert_eq!(policy.delay(6), Some(Duration::from_secs(32)));
    /// assert_eq!(policy.delay(7), Some(Duration::from_secs(60)));
    /// assert_eq!(policy.delay(11), None);
    /// ```
    pub fn delay(&self, n: usize) -> Option<Duration> {
        let d = self.builder.delay(n)?;
        Some(self.max_delay.map_or(d, |cap| d.min(cap)))
    }
}

impl RetryPolicy<ConstantBuilder> {
    /// The same `delay` before each retry, at most `max_retries` retries per failure streak.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use std::time::Duration;
    ///
    /// let policy = RetryPolicy::fixed(Duration::from_millis(50), 3);
    /// assert!(policy.resets_after_success());
    /// ```
    pub fn fixed(delay: Duration, max_retries: usize) -> Self {
        RetryPolicy::new(
            ConstantBuilder::new()
                .with_delay(delay)
                .with_max_times(max_retries),
        )
    }
}

impl<B, P> RetryPolicy<B, P> {
    /// Caps every wait at `cap`, jitter included, whatever the builder computes (backon's
    /// `with_max_delay` caps the delay *before* its jitter, which can then double it).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::policy::ExponentialBuilder;
    /// use std::time::Duration;
    ///
    /// let policy = RetryPolicy::new(
    ///     ExponentialBuilder::default().with_min_delay(Duration::from_secs(10)).with_jitter(),
    /// )
    /// .max_delay(Duration::from_secs(10));
    /// assert_eq!(policy.delay_limit(), Some(Duration::from_secs(10))); // never 19.96 s
    /// ```
    pub fn max_delay(mut self, cap: Duration) -> Self {
        self.max_delay = Some(cap);
        self
    }

    /// The cap set by [`max_delay`](Self::max_delay), if any.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use std::time::Duration;
    ///
    /// assert_eq!(RetryPolicy::fixed(Duration::from_secs(1), 1).delay_limit(), None);
    /// ```
    pub fn delay_limit(&self) -> Option<Duration> {
        self.max_delay
    }

    /// Gives up once the summed waits of the current failure streak would exceed `limit`:
    /// the error that would have needed the longer wait is yielded and the stream ends.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use std::time::Duration;
    ///
    /// let policy = RetryPolicy::fixed(Duration::from_secs(1), 10).max_total_delay(Duration::from_secs(3));
    /// assert_eq!(policy.total_delay_limit(), Some(Duration::from_secs(3))); // 3 retries at most
    /// ```
    pub fn max_total_delay(mut self, limit: Duration) -> Self {
        self.max_total_delay = Some(limit);
        self
    }

    /// Whether a delivered item restarts the schedule (default `true`).
    ///
    /// With `false` the attempt count and total delay accumulate over the whole stream.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use std::time::Duration;
    ///
    /// let policy = RetryPolicy::fixed(Duration::from_secs(1), 3).reset_after_success(false);
    /// assert!(!policy.resets_after_success());
    /// ```
    pub fn reset_after_success(mut self, reset: bool) -> Self {
        self.reset_after_success = reset;
        self
    }

    /// Retries only errors for which `predicate` returns `true`; any other error is yielded
    /// and ends the stream.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use std::time::Duration;
    ///
    /// let policy = RetryPolicy::fixed(Duration::from_secs(1), 3)
    ///     .retry_if(|e: &String| e.starts_with("transient"));
    /// # let _ = policy;
    /// ```
    pub fn retry_if<Q>(self, predicate: Q) -> RetryPolicy<B, Q> {
        RetryPolicy {
            builder: self.builder,
            max_delay: self.max_delay,
            max_total_delay: self.max_total_delay,
            reset_after_success: self.reset_after_success,
            retry_if: predicate,
        }
    }

    /// The limit set by [`max_total_delay`](Self::max_total_delay), if any.
    ///
    /// ```
    /// use millrace::prelude::*;
    ///
    /// assert_eq!(RetryPolicy::exponential().total_delay_limit(), None);
    /// ```
    pub fn total_delay_limit(&self) -> Option<Duration> {
        self.max_total_delay
    }

    /// Whether a delivered item restarts the schedule.
    ///
    /// ```
    /// use millrace::prelude::*;
    ///
    /// assert!(RetryPolicy::exponential().resets_after_success());
    /// ```
    pub fn resets_after_success(&self) -> bool {
        self.reset_after_success
    }

    /// The backon builder.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::policy::{BackoffBuilder, ExponentialBuilder};
    /// use std::time::Duration;
    ///
    /// let policy = RetryPolicy::new(ExponentialBuilder::default().with_min_delay(Duration::from_millis(10)));
    /// let mut schedule = policy.builder().build();
    /// assert_eq!(schedule.next(), Some(Duration::from_millis(10)));
    /// ```
    pub fn builder(&self) -> &B {
        &self.builder
    }
}

impl<B: BackoffBuilder + Clone, P> RetryPolicy<B, P> {
    /// The wait before the next retry of a failure streak that has waited `waited` so far,
    /// drawn from `schedule`; `None` to give up. Rounded to tokio's timer resolution, capped at
    /// [`max_delay`](Self::max_delay), checked against
    /// [`max_total_delay`](Self::max_total_delay).
    pub(crate) fn next_wait(
        &self,
        schedule: &mut B::Backoff,
        waited: Duration,
    ) -> Option<Duration> {
        let delay = to_timer_resolution(schedule.next()?);
        let delay = self.max_delay.map_or(delay, |cap| delay.min(cap));
        self.max_total_delay
            .is_none_or(|limit| waited + delay <= limit)
            .then_some(delay)
    }

    /// Runs `attempt` until it succeeds, retrying the errors [`retry_if`](Self::retry_if)
    /// accepts with this policy's waits; when the schedule runs out (or an error is not
    /// retried), the **last** error is returned. The policy is cloned into the future, so it
    /// is `'static` (and spawnable) when `attempt` is.
    ///
    /// Each retry emits a `tracing` warning with `attempt` and `delay_ms`. To count the
    /// retries or react to them, see [`retry_notify`](Self::retry_notify); to put each attempt
    /// under shared limits, wrap it in [`Throttle::run`](crate::policy::Throttle::run).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future (also during a backoff wait) drops the attempt in progress and the
    /// timer; nothing is left running.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let calls = AtomicU32::new(0);
    /// let policy = RetryPolicy::fixed(Duration::from_millis(100), 3)
    ///     .retry_if(|e: &String| e.starts_with("busy"));
    /// let start = tokio::time::Instant::now();
    /// let answer = policy
    ///     .retry(|| async {
    ///         match calls.fetch_add(1, Ordering::Relaxed) {
    ///             0 | 1 => Err("busy, try later".to_owned()),
    ///             n => Ok(n),
    ///         }
    ///     })
    ///     .await;
    /// assert_eq!(answer, Ok(2));
    /// assert_eq!(start.elapsed(), Duration::from_millis(200));
    ///
    /// // Not transient: returned at once.
    /// let err = policy.retry(|| async { Err::<u32, _>("denied".to_owned()) }).await;
    /// assert_eq!(err, Err("denied".to_owned()));
    /// # }
    /// ```
    pub fn retry<F, Fut, T, E>(
        &self,
        attempt: F,
    ) -> impl Future<Output = Result<T, E>> + use<B, P, F, Fut, T, E>
    where
        P: RetryIf<E> + Clone,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.retry_notify(attempt, |_: &E, _: Duration| {})
    }

    /// [`retry`](Self::retry), calling `on_retry(&error, delay)` before each backoff wait
    /// (e.g. to log, or to count into an [`EventCounter`](crate::metrics::EventCounter) with
    /// [`record`](crate::metrics::EventCounter::record) so that a metered stage
    /// reports them).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::metrics::EventCounter;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let retries = EventCounter::default();
    /// let counted = retries.clone();
    /// let out = RetryPolicy::fixed(Duration::from_millis(10), 2)
    ///     .retry_notify(|| async { Err::<(), _>("down") }, move |_, _| {
    ///         counted.record();
    ///     })
    ///     .await;
    /// assert_eq!(out, Err("down")); // the last error, after 2 retries
    /// assert_eq!(retries.get(), 2);
    /// # }
    /// ```
    pub fn retry_notify<F, Fut, T, E, H>(
        &self,
        attempt: F,
        on_retry: H,
    ) -> impl Future<Output = Result<T, E>> + use<B, P, F, Fut, T, E, H>
    where
        P: RetryIf<E> + Clone,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        H: FnMut(&E, Duration),
    {
        attempts(self.clone(), attempt, on_retry)
    }
}

/// The loop behind [`RetryPolicy::retry`] and the per-item retry of `map_retry`.
pub(crate) async fn attempts<B, P, F, Fut, T, E, H>(
    mut policy: RetryPolicy<B, P>,
    mut attempt: F,
    mut on_retry: H,
) -> Result<T, E>
where
    B: BackoffBuilder + Clone,
    P: RetryIf<E>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    H: FnMut(&E, Duration),
{
    let mut schedule: Option<B::Backoff> = None;
    let mut waited = Duration::ZERO;
    let mut retries = 0u32;
    loop {
        let error = match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        if !policy.retry_if.should_retry(&error) {
            return Err(error);
        }
        let schedule = schedule.get_or_insert_with(|| policy.builder.clone().build());
        let Some(delay) = policy.next_wait(schedule, waited) else {
            return Err(error);
        };
        retries += 1;
        waited += delay;
        on_retry(&error, delay);
        tracing::warn!(
            attempt = retries,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "millrace retry: attempt failed, trying again after a backoff"
        );
        drop(error);
        tokio::time::sleep(delay).await;
    }
}

/// Rounds a backoff delay to tokio's timer resolution (1 ms).
///
/// backon computes delays in `f32` seconds, so `100 ms × 2` comes out as `200.000003 ms`, which
/// tokio's timer would round *up* to 201 ms. Rounding to the nearest millisecond makes the
/// waits the schedule the user wrote (100, 200, 400 ms). Sub-millisecond delays are kept.
pub(crate) fn to_timer_resolution(delay: Duration) -> Duration {
    const MS: u128 = 1_000_000;
    if delay.as_nanos() < MS {
        return delay;
    }
    let ms = (delay.as_nanos() + MS / 2) / MS;
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}
