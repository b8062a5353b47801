//! [`Rate`] and the shared [`RateLimiter`] (GCRA) used by
//! [`rate_limit`](crate::PipelineExt::rate_limit).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::ConfigError;

/// A rate: `count` items per `period`, with a burst of at most `burst` items at one instant.
///
/// The default burst is **1**: items are spaced evenly, one every `period / count`. A burst
/// `b` lets up to `b` items through at once after an idle time, never more, however long the
/// idle time was; the long-run rate stays `count / period`.
///
/// ```
/// use millrace::prelude::*;
/// use std::time::Duration;
///
/// let r = Rate::per_second(10).burst(5);
/// assert_eq!(r.emission_interval(), Duration::from_millis(100));
/// assert_eq!(r.burst_size(), 5);
/// assert_eq!(Rate::per(3, Duration::from_secs(60)).emission_interval(), Duration::from_secs(20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    count: u32,
    period: Duration,
    burst: u32,
}

impl Rate {
    /// `rate` items per second, burst 1.
    ///
    /// # Panics
    ///
    /// If `rate` is 0 (see [`try_per_second`](Self::try_per_second)).
    ///
    /// ```
    /// use millrace::prelude::*;
    ///
    /// assert_eq!(Rate::per_second(4).count(), 4);
    /// ```
    #[track_caller]
    pub fn per_second(rate: u32) -> Rate {
        crate::error::built(Self::try_per_second(rate))
    }

    /// `rate` items per second, or a [`ConfigError`] if `rate` is 0.
    ///
    /// ```
    /// use millrace::prelude::*;
    ///
    /// assert_eq!(
    ///     Rate::try_per_second(0).unwrap_err().to_string(),
    ///     "`rate_limit`: `rate` must be at least 1, got 0; pass a non-zero value"
    /// );
    /// ```
    pub fn try_per_second(rate: u32) -> Result<Rate, ConfigError> {
        if rate == 0 {
            return Err(ConfigError::zero("rate_limit", "rate"));
        }
        Self::try_per(rate, Duration::from_secs(1))
    }

    /// `count` items per `period`, burst 1.
    ///
    /// # Panics
    ///
    /// If `count` or `period` is 0, or `period / count` is under a nanosecond (see
    /// [`try_per`](Self::try_per)).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use std::time::Duration;
    ///
    /// assert_eq!(Rate::per(5, Duration::from_secs(2)).period(), Duration::from_secs(2));
    /// ```
    #[track_caller]
    pub fn per(count: u32, period: Duration) -> Rate {
        crate::error::built(Self::try_per(count, period))
    }

    /// `count` items per `period`, or a [`ConfigError`].
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use std::time::Duration;
    ///
    /// assert_eq!(
    ///     Rate::try_per(0, Duration::from_secs(1)).unwrap_err().to_string(),
    ///     "`rate_limit`: `count` must be at least 1, got 0; pass a non-zero value"
    /// );
    /// assert!(Rate::try_per(1, Duration::ZERO).is_err());
    /// ```
    pub fn try_per(count: u32, period: Duration) -> Result<Rate, ConfigError> {
        if count == 0 {
            return Err(ConfigError::zero("rate_limit", "count"));
        }
        if period.is_zero() {
            return Err(ConfigError::out_of_range(
                "rate_limit",
                "period",
                "0s",
                "longer than zero",
            ));
        }
        if (period / count).is_zero() {
            return Err(ConfigError::out_of_range(
                "rate_limit",
                "count",
                count,
                "at most one item per nanosecond of the period",
            ));
        }
        Ok(Rate {
            count,
            period,
            burst: 1,
        })
    }

    /// Sets the burst: at most `burst` items released at one instant.
    ///
    /// # Panics
    ///
    /// If `burst` is 0 (see [`try_burst`](Self::try_burst)).
    ///
    /// ```
    /// use millrace::prelude::*;
    ///
    /// assert_eq!(Rate::per_second(10).burst(3).burst_size(), 3);
    /// ```
    #[track_caller]
    pub fn burst(self, burst: u32) -> Rate {
        crate::error::built(self.try_burst(burst))
    }

    /// Sets the burst, or a [`ConfigError`] if `burst` is 0.
    ///
    /// ```
    /// use millrace::prelude::*;
    ///
    /// assert_eq!(
    ///     Rate::per_second(10).try_burst(0).unwrap_err().to_string(),
    ///     "`rate_limit`: `burst` must be at least 1, got 0; pass a non-zero value"
    /// );
    /// ```
    pub fn try_burst(self, burst: u32) -> Result<Rate, ConfigError> {
        if burst == 0 {
            return Err(ConfigError::zero("rate_limit", "burst"));
        }
        Ok(Rate { burst, ..self })
    }

    /// Items per period.
    ///
    /// ```
    /// use millrace::prelude::*;
    ///
    /// assert_eq!(Rate::per_second(7).count(), 7);
    /// ```
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The period.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use std::time::Duration;
    ///
    /// assert_eq!(Rate::per_second(7).period(), Duration::from_secs(1));
    /// ```
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The burst size (default 1).
    ///
    /// ```
    /// use millrace::prelude::*;
    ///
    /// assert_eq!(Rate::per_second(7).burst_size(), 1);
    /// ```
    pub fn burst_size(&self) -> u32 {
        self.burst
    }

    /// The steady spacing between items: `period / count`.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use std::time::Duration;
    ///
    /// assert_eq!(Rate::per_second(4).emission_interval(), Duration::from_millis(250));
    /// ```
    pub fn emission_interval(&self) -> Duration {
        self.period / self.count
    }
}

/// GCRA state: the theoretical arrival time of the next item.
#[derive(Debug)]
struct Gcra {
    interval: Duration,
    tolerance: Duration,
    tat: Option<Instant>,
}

impl Gcra {
    /// When an item may be released, if not at `now`.
    fn not_before(&self, now: Instant) -> Option<Instant> {
        let tat = self.tat?;
        let earliest = tat.checked_sub(self.tolerance)?;
        (earliest > now).then_some(earliest)
    }

    /// Releases one item at `now`, or says when to try again.
    fn acquire(&mut self, now: Instant) -> Result<(), Instant> {
        if let Some(at) = self.not_before(now) {
            return Err(at);
        }
        let base = self.tat.map_or(now, |tat| tat.max(now));
        self.tat = Some(base + self.interval);
        Ok(())
    }
}

/// A rate limiter (GCRA, theoretical arrival time, on tokio time) that many stages, tasks
/// and closures can share.
///
/// **Clones share one budget**: cloning a `RateLimiter` (or a
/// [`RateLimitStage`](crate::wrappers::RateLimitStage), which holds one) gives another handle
/// to the same state, so every stream and every [`acquire`](Self::acquire) call through any
/// clone draws from the same `rate`. Build a new limiter with [`RateLimiter::new`] for an
/// independent budget. [`rate_limit`](crate::PipelineExt::rate_limit) accepts either a
/// [`Rate`] (a fresh limiter) or a `RateLimiter` (shared).
///
/// Combine with [`map_concurrent`](crate::PipelineExt::map_concurrent) to bound both
/// requests-per-second and requests-in-flight:
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// async fn fetch(id: u32) -> u32 {
///     tokio::time::sleep(Duration::from_millis(300)).await; // a slow request
///     id
/// }
/// let start = tokio::time::Instant::now();
/// let out: Vec<u32> = stream::iter(0..20)
///     .rate_limit(Rate::per_second(10).burst(1)) // at most 10 requests started per second
///     .map_concurrent(5, fetch)                   // at most 5 in flight
///     .collect()
///     .await;
/// assert_eq!(out, (0..20).collect::<Vec<_>>());
/// assert!(start.elapsed() >= Duration::from_millis(1900 + 300));
///
/// // The same limiter inside the closures, shared with another pipeline:
/// let limiter = RateLimiter::new(Rate::per_second(100));
/// let l = limiter.clone();
/// let out: Vec<u32> = stream::iter(0..3)
///     .map_concurrent(2, move |x| {
///         let l = l.clone();
///         async move { l.acquire().await; x }
///     })
///     .collect()
///     .await;
/// assert_eq!(out, [0, 1, 2]);
/// # }
/// ```
#[derive(Clone)]
pub struct RateLimiter {
    rate: Rate,
    state: Arc<Mutex<Gcra>>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl From<Rate> for RateLimiter {
    fn from(rate: Rate) -> Self {
        RateLimiter::new(rate)
    }
}

impl RateLimiter {
    /// A limiter with a fresh budget: the first `burst` acquisitions succeed at once.
    ///
    /// ```
    /// use millrace::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = RateLimiter::new(Rate::per_second(1).burst(2));
    /// assert!(limiter.try_acquire());
    /// assert!(limiter.clone().try_acquire()); // a clone shares the budget…
    /// assert!(!limiter.try_acquire());        // …so the burst of 2 is spent
    /// # }
    /// ```
    pub fn new(rate: Rate) -> Self {
        let interval = rate.emission_interval();
        let tolerance = interval
            .checked_mul(rate.burst - 1)
            .unwrap_or(Duration::MAX);
        RateLimiter {
            rate,
            state: Arc::new(Mutex::new(Gcra {
                interval,
                tolerance,
                tat: None,
            })),
        }
    }

    /// The configured rate.
    ///
    /// ```
    /// use millrace::prelude::*;
    ///
    /// assert_eq!(RateLimiter::new(Rate::per_second(3)).rate(), Rate::per_second(3));
    /// ```
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Takes one permit now if the budget allows; never waits. Needs a tokio runtime
    /// (it reads tokio's clock).
    ///
    /// ```
    /// use millrace::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = RateLimiter::new(Rate::per_second(1));
    /// assert!(limiter.try_acquire());
    /// assert!(!limiter.try_acquire());
    /// tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    /// assert!(limiter.try_acquire());
    /// # }
    /// ```
    pub fn try_acquire(&self) -> bool {
        self.acquire_at(Instant::now()).is_ok()
    }

    /// Waits until the budget allows one more item, then takes it.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the permit is taken only when the future completes, so dropping it while
    /// it waits takes nothing from the budget. Waiters are not served first-come first-served.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let limiter = RateLimiter::new(Rate::per_second(2));
    /// let start = tokio::time::Instant::now();
    /// for _ in 0..3 {
    ///     limiter.acquire().await;
    /// }
    /// assert_eq!(start.elapsed(), Duration::from_secs(1));
    /// # }
    /// ```
    pub async fn acquire(&self) {
        loop {
            match self.acquire_at(Instant::now()) {
                Ok(()) => return,
                Err(at) => tokio::time::sleep_until(at).await,
            }
        }
    }

    pub(crate) fn acquire_at(&self, now: Instant) -> Result<(), Instant> {
        self.lock().acquire(now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Gcra> {
        // The state is two plain values updated in one statement: a panic elsewhere cannot
        // leave it inconsistent, so a poisoned lock is still good.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
