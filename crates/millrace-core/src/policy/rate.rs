//! [`Rate`] and the shared [`RateLimiter`] (GCRA) used by
//! [`rate_limit`](crate::PipelineExt::rate_limit).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::ConfigError;

/// A rate: `count` items per `period`, with a burst of at most `burst` items at once after
/// idle time.
///
/// The default burst is **1**: items are spaced evenly, one every `period / count`. A burst
/// `b` lets up to `b` items through at once after an idle time, never more, however long the
/// idle time was; the long-run rate stays `count / period`, and no window of one `period`
/// holds more than `count + burst` items. Above about 1,000 items/s items leave in groups per
/// 1 ms timer tick (see [`RateLimiter`], "Real time").
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
    /// If `rate` is 0 (see [`checked_per_second`](Self::checked_per_second)).
    ///
    /// ```
    /// use millrace::prelude::*;
    ///
    /// assert_eq!(Rate::per_second(4).count(), 4);
    /// ```
    #[track_caller]
    pub fn per_second(rate: u32) -> Rate {
        crate::error::built(Self::checked_per_second(rate))
    }

    /// `rate` items per second, or a [`ConfigError`] if `rate` is 0.
    ///
    /// ```
    /// use millrace::prelude::*;
    ///
    /// assert_eq!(
    ///     Rate::checked_per_second(0).unwrap_err().to_string(),
    ///     "`rate_limit`: `rate` must be at least 1, got 0; pass a non-zero value"
    /// );
    /// ```
    pub fn checked_per_second(rate: u32) -> Result<Rate, ConfigError> {
        if rate == 0 {
            return Err(ConfigError::zero("rate_limit", "rate"));
        }
        Self::checked_per(rate, Duration::from_secs(1))
    }

    /// Renamed [`checked_per_second`](Self::checked_per_second).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_per_second`")]
    pub fn try_per_second(rate: u32) -> Result<Rate, ConfigError> {
        Self::checked_per_second(rate)
    }

    /// `count` items per `period`, burst 1.
    ///
    /// # Panics
    ///
    /// If `count` or `period` is 0, or `period / count` is under a nanosecond (see
    /// [`checked_per`](Self::checked_per)).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use std::time::Duration;
    ///
    /// assert_eq!(Rate::per(5, Duration::from_secs(2)).period(), Duration::from_secs(2));
    /// ```
    #[track_caller]
    pub fn per(count: u32, period: Duration) -> Rate {
        crate::error::built(Self::checked_per(count, period))
    }

    /// `count` items per `period`, or a [`ConfigError`].
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use std::time::Duration;
    ///
    /// assert_eq!(
    ///     Rate::checked_per(0, Duration::from_secs(1)).unwrap_err().to_string(),
    ///     "`rate_limit`: `count` must be at least 1, got 0; pass a non-zero value"
    /// );
    /// assert!(Rate::checked_per(1, Duration::ZERO).is_err());
    /// ```
    pub fn checked_per(count: u32, period: Duration) -> Result<Rate, ConfigError> {
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

    /// Renamed [`checked_per`](Self::checked_per).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_per`")]
    pub fn try_per(count: u32, period: Duration) -> Result<Rate, ConfigError> {
        Self::checked_per(count, period)
    }

    /// Sets the burst: at most `burst` items released at once after idle time (and at most
    /// `count + burst` in any window of one period).
    ///
    /// # Panics
    ///
    /// If `burst` is 0 (see [`checked_burst`](Self::checked_burst)).
    ///
    /// ```
    /// use millrace::prelude::*;
    ///
    /// assert_eq!(Rate::per_second(10).burst(3).burst_size(), 3);
    /// ```
    #[track_caller]
    pub fn burst(self, burst: u32) -> Rate {
        crate::error::built(self.checked_burst(burst))
    }

    /// Sets the burst, or a [`ConfigError`] if `burst` is 0.
    ///
    /// ```
    /// use millrace::prelude::*;
    ///
    /// assert_eq!(
    ///     Rate::per_second(10).checked_burst(0).unwrap_err().to_string(),
    ///     "`rate_limit`: `burst` must be at least 1, got 0; pass a non-zero value"
    /// );
    /// ```
    pub fn checked_burst(self, burst: u32) -> Result<Rate, ConfigError> {
        if burst == 0 {
            return Err(ConfigError::zero("rate_limit", "burst"));
        }
        Ok(Rate { burst, ..self })
    }

    /// Renamed [`checked_burst`](Self::checked_burst).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_burst`")]
    pub fn try_burst(self, burst: u32) -> Result<Rate, ConfigError> {
        self.checked_burst(burst)
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

/// How late a denied acquirer may come back and still catch up on the slots that passed
/// while it waited (see [`RateLimiter`], "Real time").
const CATCH_UP: Duration = Duration::from_millis(200);

/// GCRA state: the theoretical arrival time of the next item, plus the bookkeeping that lets a
/// late wake-up catch up without any window of one period exceeding `count + burst`.
#[derive(Debug)]
struct Gcra {
    interval: Duration,
    tolerance: Duration,
    tat: Option<Instant>,
    /// The slot a denied acquirer was told to come back at, while the schedule is behind:
    /// demand was there, so slots that pass before it returns are caught up, not lost.
    waiting: Option<Instant>,
    window: Window,
}

impl Gcra {
    fn new(rate: Rate) -> Self {
        let interval = rate.emission_interval();
        let tolerance = interval
            .checked_mul(rate.burst - 1)
            .unwrap_or(Duration::MAX);
        Gcra {
            interval,
            tolerance,
            tat: None,
            waiting: None,
            window: Window::new(rate),
        }
    }

    /// When an item may be released by the schedule, if not at `now`.
    fn not_before(&self, now: Instant) -> Option<Instant> {
        let tat = self.tat?;
        let earliest = tat.checked_sub(self.tolerance)?;
        (earliest > now).then_some(earliest)
    }

    /// Releases one item at `now`, or says when to try again.
    fn acquire(&mut self, now: Instant) -> Result<(), Instant> {
        let at = self.not_before(now).or_else(|| self.window.full_until(now));
        if let Some(at) = at {
            // Demand: remember the slot so that a late return catches up.
            self.waiting = Some(at);
            return Err(at);
        }
        let base = match self.tat {
            None => now,
            Some(tat) if tat >= now => tat,
            // Behind the schedule. A denied acquirer that came back late (a timer tick, a
            // busy runtime) keeps the slots that passed; after idle time the schedule
            // restarts from now, so no burst beyond `burst` builds up.
            Some(tat) => match self.waiting {
                Some(w) if now <= w + CATCH_UP => now
                    .checked_sub(CATCH_UP)
                    .map_or(tat, |floor| tat.max(floor)),
                _ => now,
            },
        };
        let tat = later(base, self.interval);
        self.tat = Some(tat);
        if tat > now {
            self.waiting = None;
        }
        self.window.record(now);
        Ok(())
    }
}

/// `at + d`, or 30 years after `at` if that overflows (a period of `Duration::MAX` is valid).
fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .unwrap_or_else(|| at + Duration::from_secs(30 * 365 * 86_400))
}

/// The releases of the last period, in buckets of at most `period / 1000`, so that no window
/// of one period ever holds more than `count + burst` releases, catch-up included.
///
/// The window checked is one bucket longer than the period, so that the bound still holds
/// where the items *arrive* (a server's own log) after a jitter of up to `period / 1000` on
/// the way (network, scheduling). A bucket is counted whole until its last release leaves
/// that window. Both err on the safe side, together by at most 0.2 % of the period.
#[derive(Debug)]
struct Window {
    period: Duration,
    width: Duration,
    limit: u64,
    total: u64,
    /// `(first release, last release, releases)`, oldest first.
    buckets: std::collections::VecDeque<(Instant, Instant, u64)>,
}

impl Window {
    fn new(rate: Rate) -> Self {
        Window {
            period: rate.period,
            width: (rate.period / 1000).clamp(Duration::from_nanos(1), Duration::from_secs(86_400)),
            limit: u64::from(rate.count) + u64::from(rate.burst),
            total: 0,
            buckets: std::collections::VecDeque::new(),
        }
    }

    /// Drops the buckets wholly out of the window `(now - period - width, now]`.
    fn expire(&mut self, now: Instant) {
        while let Some(&(_, last, n)) = self.buckets.front() {
            if later(last, self.period.saturating_add(self.width)) > now {
                break;
            }
            self.total -= n;
            self.buckets.pop_front();
        }
    }

    /// `Some(when)` if one more release at `now` would put `limit + 1` in the window.
    fn full_until(&mut self, now: Instant) -> Option<Instant> {
        self.expire(now);
        if self.total < self.limit {
            return None;
        }
        self.buckets.front().map(|&(_, last, _)| {
            later(
                last,
                self.period
                    .saturating_add(self.width)
                    .saturating_add(Duration::from_nanos(1)),
            )
        })
    }

    fn record(&mut self, now: Instant) {
        self.total += 1;
        match self.buckets.back_mut() {
            Some((first, last, n)) if now < *first + self.width => {
                *last = (*last).max(now);
                *n += 1;
            }
            _ => self.buckets.push_back((now, now, 1)),
        }
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
/// # Real time
///
/// The schedule is kept on the **theoretical arrival times** (`start + k × period / count`),
/// not on the times items actually left. tokio's timer fires on 1 ms ticks and a busy runtime
/// wakes tasks later still, so a waiter comes back after its slot; the slots that passed
/// meanwhile are **caught up**: those items go at once. At rates above about 1,000 items/s
/// this means items leave **in groups, one group per timer tick** (about `rate / 1000` per
/// tick at 1 ms), not one by one: the rate holds over any fraction of a second longer than a
/// tick, not at every instant. Catching up is bounded three ways:
///
/// - only a waiter that was told to wait catches up, and only if it comes back within
///   200 ms of its slot; later than that (or after idle time with nobody waiting) the
///   schedule restarts from now, so idle time never builds up a burst beyond `burst`;
/// - **no window of one period ever holds more than `count + burst` items** (for
///   `per_second(r)`: no 1-second window over `r + burst`), catch-up included: an item that
///   would break this waits until the oldest item of the window leaves it;
/// - that window check counts in buckets of 1/1000 of the period, over a window one bucket
///   longer than the period (so the bound still holds where the items arrive after a little
///   jitter on the way, e.g. in a server's log); it errs on the safe side by at most 0.2 %.
///
/// Measured on the real clock (`cargo bench --bench rate_accuracy`, `benches/RESULTS.md`):
/// 100, 1,000, 10,000 and 100,000 items/s are delivered within 0.1 %, with no 1-second window
/// over `rate + 1`.
///
/// Combine with [`map_concurrent`](crate::PipelineExt::map_concurrent) to bound both
/// requests-per-second and requests-in-flight (or use a [`Throttle`](crate::policy::Throttle),
/// which every attempt of a per-item retry acquires):
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
        RateLimiter {
            rate,
            state: Arc::new(Mutex::new(Gcra::new(rate))),
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
