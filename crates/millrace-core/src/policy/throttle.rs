//! [`Throttle`]: the limits every attempt acquires (requests in flight, requests per second).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::RateLimiter;
use crate::error::ConfigError;

/// Limits that hold on **every attempt**: at most `max_in_flight` attempts running at once and
/// a shared [`RateLimiter`], acquired by first tries, retries, pagination requests and
/// fallbacks alike, wherever they come from.
///
/// A `rate_limit` stage limits the items that pass through it; an attempt retried inside a
/// later stage would not pass it again. A `Throttle` is acquired by the attempt itself:
/// [`map_retry`](crate::PipelineExt::map_retry) acquires it for every attempt of every item,
/// [`run`](Self::run) wraps any future (e.g. inside
/// [`RetryPolicy::retry`](crate::policy::RetryPolicy::retry)), and the HTTP adapter takes one
/// in its options. **Clones share the limits**, so one `Throttle` per remote service, cloned
/// into every place that calls it, holds the service's limits across a whole program.
///
/// Order of acquisition: first an in-flight slot, then a rate permit, so that an attempt
/// starts right after it takes its rate permit (taking the permit first and then waiting for a
/// slot would let permits pile up and go out together). The slot is held until the attempt
/// ends; a retry's backoff wait holds no slot.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::policy::Throttle;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let throttle = Throttle::new().rate(Rate::per_second(10)).max_in_flight(2);
/// let start = tokio::time::Instant::now();
/// let calls: Vec<_> = (0..4)
///     .map(|i| throttle.run(async move {
///         tokio::time::sleep(Duration::from_millis(500)).await;
///         i
///     }))
///     .collect();
/// assert_eq!(futures::future::join_all(calls).await, [0, 1, 2, 3]);
/// // Two at a time (0 ms, 100 ms), the next two when the first ones end (500, 600 ms).
/// assert_eq!(start.elapsed(), Duration::from_millis(1100));
/// assert_eq!(throttle.in_flight(), 0);
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Throttle {
    rate: Option<RateLimiter>,
    slots: Option<(Arc<Semaphore>, usize)>,
    in_flight: Arc<AtomicUsize>,
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("rate", &self.rate.as_ref().map(RateLimiter::rate))
            .field("max_in_flight", &self.max_in_flight_limit())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Throttle {
    /// No limits yet: add them with [`rate`](Self::rate) and
    /// [`max_in_flight`](Self::max_in_flight).
    ///
    /// ```
    /// use millrace::policy::Throttle;
    ///
    /// assert_eq!(Throttle::new().max_in_flight_limit(), None);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Every attempt takes a permit from `limiter` (a [`Rate`](crate::policy::Rate) makes a
    /// fresh one; a [`RateLimiter`] clone shares its budget, e.g. with a `rate_limit` stage).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::policy::Throttle;
    ///
    /// let t = Throttle::new().rate(Rate::per_second(50));
    /// assert_eq!(t.limiter().unwrap().rate(), Rate::per_second(50));
    /// ```
    pub fn rate(self, limiter: impl Into<RateLimiter>) -> Self {
        Throttle {
            rate: Some(limiter.into()),
            ..self
        }
    }

    /// At most `n` attempts running at once.
    ///
    /// # Panics
    ///
    /// If `n` is 0 (see [`checked_max_in_flight`](Self::checked_max_in_flight)).
    ///
    /// ```
    /// use millrace::policy::Throttle;
    ///
    /// assert_eq!(Throttle::new().max_in_flight(8).max_in_flight_limit(), Some(8));
    /// ```
    #[track_caller]
    pub fn max_in_flight(self, n: usize) -> Self {
        crate::error::built(self.checked_max_in_flight(n))
    }

    /// At most `n` attempts running at once, or a [`ConfigError`] if `n` is 0 or over
    /// tokio's semaphore limit.
    ///
    /// ```
    /// use millrace::policy::Throttle;
    ///
    /// assert_eq!(
    ///     Throttle::new().checked_max_in_flight(0).unwrap_err().to_string(),
    ///     "`throttle`: `max_in_flight` must be at least 1, got 0; pass a non-zero value"
    /// );
    /// ```
    pub fn checked_max_in_flight(self, n: usize) -> Result<Self, ConfigError> {
        crate::error::nonzero("throttle", "max_in_flight", n)?;
        if n > Semaphore::MAX_PERMITS {
            return Err(ConfigError::out_of_range(
                "throttle",
                "max_in_flight",
                n,
                "at most tokio's Semaphore::MAX_PERMITS",
            ));
        }
        Ok(Throttle {
            slots: Some((Arc::new(Semaphore::new(n)), n)),
            ..self
        })
    }

    /// Renamed [`checked_max_in_flight`](Self::checked_max_in_flight).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_max_in_flight`")]
    pub fn try_max_in_flight(self, n: usize) -> Result<Self, ConfigError> {
        self.checked_max_in_flight(n)
    }

    /// The rate limiter, if any.
    ///
    /// ```
    /// use millrace::policy::Throttle;
    ///
    /// assert!(Throttle::new().limiter().is_none());
    /// ```
    pub fn limiter(&self) -> Option<&RateLimiter> {
        self.rate.as_ref()
    }

    /// The in-flight bound, if any.
    ///
    /// ```
    /// use millrace::policy::Throttle;
    ///
    /// assert_eq!(Throttle::new().max_in_flight(3).max_in_flight_limit(), Some(3));
    /// ```
    pub fn max_in_flight_limit(&self) -> Option<usize> {
        self.slots.as_ref().map(|(_, n)| *n)
    }

    /// Attempts running now (holding a [`ThrottlePermit`]), over every clone.
    ///
    /// ```
    /// use millrace::policy::Throttle;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let t = Throttle::new().max_in_flight(2);
    /// let permit = t.acquire().await;
    /// assert_eq!(t.in_flight(), 1);
    /// drop(permit);
    /// assert_eq!(t.in_flight(), 0);
    /// # }
    /// ```
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Waits for an in-flight slot, then for a rate permit; the slot is held until the
    /// returned permit is dropped.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future while it waits takes nothing (a slot already taken is
    /// given back, and the rate permit is taken only when the future completes).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::policy::Throttle;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let t = Throttle::new().rate(Rate::per_second(1)).max_in_flight(1);
    /// let permit = t.acquire().await;
    /// assert_eq!(t.in_flight(), 1);
    /// # drop(permit);
    /// # }
    /// ```
    pub async fn acquire(&self) -> ThrottlePermit {
        let slot = match &self.slots {
            Some((semaphore, _)) => Some(
                Arc::clone(semaphore)
                    .acquire_owned()
                    .await
                    .expect("the throttle's semaphore is never closed"),
            ),
            None => None,
        };
        if let Some(rate) = &self.rate {
            rate.acquire().await;
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        ThrottlePermit {
            _slot: slot,
            in_flight: Arc::clone(&self.in_flight),
        }
    }

    /// Runs `attempt` under the limits: [`acquire`](Self::acquire), then `attempt` to its end,
    /// then the slot is released. The future owns a clone of the throttle (`'static` when
    /// `attempt` is), so it can be spawned.
    ///
    /// ```
    /// use millrace::policy::Throttle;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let t = Throttle::new().max_in_flight(1);
    /// let answer = tokio::spawn(t.run(async { 42 })).await.unwrap();
    /// assert_eq!(answer, 42);
    /// # }
    /// ```
    pub fn run<F: Future>(&self, attempt: F) -> impl Future<Output = F::Output> + use<F> {
        let this = self.clone();
        async move {
            let _permit = this.acquire().await;
            attempt.await
        }
    }
}

/// An attempt's place under a [`Throttle`]: its in-flight slot, released on drop.
#[must_use = "the slot is released when the permit is dropped"]
pub struct ThrottlePermit {
    _slot: Option<OwnedSemaphorePermit>,
    in_flight: Arc<AtomicUsize>,
}

impl fmt::Debug for ThrottlePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrottlePermit").finish_non_exhaustive()
    }
}

impl Drop for ThrottlePermit {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
