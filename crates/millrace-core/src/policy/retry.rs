//! [`RetryPolicy`]: how long to wait between attempts and when to give up.

use std::fmt;
use std::time::Duration;

use backon::{BackoffBuilder, ConstantBuilder, ExponentialBuilder};

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
/// [`ExponentialBuilder`], [`ConstantBuilder`], [`FibonacciBuilder`](crate::policy::FibonacciBuilder)).
/// The builder's `max_times` is the number of **retries** after a failure (not counting the
/// first attempt); with jitter, backon adds a random `[0, d)` to each delay `d`, so every wait
/// lies in `[d, 2d]`. Delays are rounded to the nearest millisecond (tokio's timer resolution;
/// this also removes the `f32` noise of backon's arithmetic, so 100 ms doubling waits exactly
/// 100, 200, 400 ms).
///
/// On top of the builder:
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
    pub(crate) max_total_delay: Option<Duration>,
    pub(crate) reset_after_success: bool,
    pub(crate) retry_if: P,
}

impl<B: fmt::Debug, P> fmt::Debug for RetryPolicy<B, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("builder", &self.builder)
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
            max_total_delay: None,
            reset_after_success: true,
            retry_if: RetryAll,
        }
    }
}

impl RetryPolicy<ExponentialBuilder> {
    /// Exponential backoff with jitter: 100 ms, 200 ms, 400 ms, … capped at 30 s per wait, at
    /// most 5 retries per failure streak; each wait lies in `[d, 2d]` for the nominal delay `d`.
    ///
    /// ```
    /// use millrace::prelude::*;
    ///
    /// let policy = RetryPolicy::exponential();
    /// assert_eq!(policy.total_delay_limit(), None);
    /// ```
    pub fn exponential() -> Self {
        RetryPolicy::new(
            ExponentialBuilder::new()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(30))
                .with_max_times(5)
                .with_jitter(),
        )
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
