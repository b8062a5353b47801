//! [`HttpOptions`]: per-request timeout, the retry policy for transient failures, and the
//! limits every attempt takes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use millrace_core::metrics::EventCounter;
use millrace_core::policy::{RateLimiter, RetryAll, RetryPolicy, Throttle};

use super::HttpError;

/// Called before each retry with the error that caused it and the delay about to be waited.
type RetryHook = Arc<dyn Fn(&HttpError, Duration) + Send + Sync>;

/// A fresh schedule of delays per request.
type Delays = Box<dyn Iterator<Item = Duration> + Send + Sync>;

/// The backoff of one request as a backon builder, whatever its source (the options' own
/// exponential settings or a user's policy), so that the core retry loop runs it.
#[derive(Clone)]
pub(crate) struct Schedule(Arc<dyn Fn() -> Delays + Send + Sync>);

impl BackoffBuilder for Schedule {
    type Backoff = Delays;

    fn build(self) -> Delays {
        (self.0)()
    }
}

/// A core [`RetryPolicy`] with its builder type erased, so that `HttpOptions` stays one type.
#[derive(Clone)]
struct Policy {
    schedule: Arc<dyn Fn() -> Delays + Send + Sync>,
    max_total_delay: Option<Duration>,
    max_delay: Option<Duration>,
    debug: String,
}

/// How each request of [`paginated`](super::paginated) and [`fetch_json`](super::fetch_json)
/// is made: a timeout per attempt and an exponential backoff for
/// [transient](HttpError::is_transient) failures.
///
/// Defaults: 30 s per attempt, up to 3 retries (4 attempts), delays from 100 ms doubling up
/// to 10 s, with jitter; or any core [`RetryPolicy`] through
/// [`retry_policy`](HttpOptions::retry_policy). A permanent error (a 4xx other than 408 and 429,
/// bad JSON) is never retried.
///
/// Retries happen **inside** the request: the stream sees one item per request, after
/// the last attempt. They run on the core per-attempt retry
/// ([`RetryPolicy::retry_notify`]), so they are counted ([`retry_stats`](Self::retry_stats),
/// adopted by a metered stage) and limited like first tries: **every attempt** (first tries,
/// retries, page requests) takes the options' [`rate_limiter`](Self::rate_limiter) permit and
/// [`max_in_flight`](Self::max_in_flight) slot. To also restart a whole source after its
/// retries ran out, wrap it in the core `restartable(..).retry(..)`.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::Duration;
/// use millrace::adapters::http::HttpOptions;
///
/// let retries = Arc::new(AtomicU64::new(0));
/// let counter = Arc::clone(&retries);
/// let options = HttpOptions::new()
///     .timeout(Duration::from_secs(5))
///     .retries(5)
///     .backoff(Duration::from_millis(50), Duration::from_secs(2))
///     .on_retry(move |_err, _delay| {
///         counter.fetch_add(1, Ordering::Relaxed);
///     });
/// assert_eq!(options.get_timeout(), Duration::from_secs(5));
/// assert_eq!(options.get_retries(), 5);
/// assert_eq!(retries.load(Ordering::Relaxed), 0);
/// ```
#[derive(Clone)]
pub struct HttpOptions {
    timeout: Duration,
    retries: usize,
    min_backoff: Duration,
    max_backoff: Duration,
    jitter: bool,
    policy: Option<Policy>,
    on_retry: Option<RetryHook>,
    throttle: Throttle,
    stats: EventCounter,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(30),
            retries: 3,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            jitter: true,
            policy: None,
            on_retry: None,
            throttle: Throttle::new(),
            stats: EventCounter::default(),
        }
    }
}

impl HttpOptions {
    /// The defaults: 30 s per attempt, 3 retries, backoff 100 ms to 10 s with jitter.
    ///
    /// ```
    /// use std::time::Duration;
    /// use millrace::adapters::http::HttpOptions;
    ///
    /// assert_eq!(HttpOptions::new().get_timeout(), Duration::from_secs(30));
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The time one attempt may take, from sending the request to the last byte of the body.
    /// An attempt that takes longer fails with [`HttpError::Timeout`] (transient).
    ///
    /// ```
    /// use std::time::Duration;
    /// use millrace::adapters::http::HttpOptions;
    ///
    /// let o = HttpOptions::new().timeout(Duration::from_millis(250));
    /// assert_eq!(o.get_timeout(), Duration::from_millis(250));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many times a transiently failed request is tried again (0 = never).
    /// Ignored once a [`retry_policy`](Self::retry_policy) is set.
    ///
    /// ```
    /// use millrace::adapters::http::HttpOptions;
    ///
    /// assert_eq!(HttpOptions::new().retries(0).get_retries(), 0);
    /// ```
    pub fn retries(mut self, retries: usize) -> Self {
        self.retries = retries;
        self
    }

    /// The first retry waits `min`, each later one twice as long, never more than `max`
    /// (jitter included). Ignored once a [`retry_policy`](Self::retry_policy) is set.
    ///
    /// ```
    /// use std::time::Duration;
    /// use millrace::adapters::http::HttpOptions;
    ///
    /// let o = HttpOptions::new().backoff(Duration::from_millis(1), Duration::from_millis(8));
    /// # let _ = o;
    /// ```
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }

    /// Whether delays are randomised (on by default, so that many clients that failed together
    /// do not retry together).
    ///
    /// ```
    /// use millrace::adapters::http::HttpOptions;
    ///
    /// let o = HttpOptions::new().jitter(false);
    /// # let _ = o;
    /// ```
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// Takes the delays between attempts from a core [`RetryPolicy`] (its backon builder,
    /// including its `max_times`, and its [`max_total_delay`](RetryPolicy::max_total_delay))
    /// instead of [`retries`](Self::retries), [`backoff`](Self::backoff) and
    /// [`jitter`](Self::jitter), so one policy value can configure a whole pipeline.
    ///
    /// What is retried is still decided by [`HttpError::is_transient`]: a 404 is never retried,
    /// whatever the policy. (The policy's `retry_if` predicate cannot be combined here, hence
    /// `RetryPolicy<B>` with the default predicate.)
    ///
    /// ```
    /// use std::time::Duration;
    /// use millrace::prelude::*;
    /// use millrace::policy::ExponentialBuilder;
    /// use millrace::adapters::http::HttpOptions;
    ///
    /// let policy = RetryPolicy::new(
    ///     ExponentialBuilder::default().with_min_delay(Duration::from_millis(20)).with_max_times(6),
    /// )
    /// .max_total_delay(Duration::from_secs(5));
    /// let options = HttpOptions::new().retry_policy(policy);
    /// # let _ = options;
    /// ```
    pub fn retry_policy<B>(mut self, policy: RetryPolicy<B, RetryAll>) -> Self
    where
        B: BackoffBuilder + Clone + fmt::Debug + Send + Sync + 'static,
        B::Backoff: Send + Sync + 'static,
    {
        let builder = policy.builder().clone();
        self.policy = Some(Policy {
            debug: format!("{builder:?}"),
            schedule: Arc::new(move || -> Delays { Box::new(builder.clone().build()) }),
            max_total_delay: policy.total_delay_limit(),
            max_delay: policy.delay_limit(),
        });
        self
    }

    /// Calls `hook` before each retry with the error and the delay about to be waited, e.g.
    /// to count retries for a report or to log them.
    ///
    /// ```
    /// use millrace::adapters::http::HttpOptions;
    ///
    /// let o = HttpOptions::new().on_retry(|err, delay| eprintln!("retry in {delay:?}: {err}"));
    /// # let _ = o;
    /// ```
    pub fn on_retry(mut self, hook: impl Fn(&HttpError, Duration) + Send + Sync + 'static) -> Self {
        self.on_retry = Some(Arc::new(hook));
        self
    }

    /// Every attempt (first tries, retries, page requests, through every clone of these
    /// options) takes a permit from `limiter`: a [`Rate`](millrace_core::policy::Rate) for a
    /// fresh budget, or a [`RateLimiter`] clone to share one with other stages or other
    /// options. **This is how to hold a service's rate limit**: a `rate_limit` stage before
    /// `fetch_json` limits the items, not the retries made inside each request.
    ///
    /// Replaces the rate of a [`throttle`](Self::throttle) set before; the in-flight bound
    /// is kept.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::adapters::http::HttpOptions;
    ///
    /// let options = HttpOptions::new().rate_limiter(Rate::per_second(50)).max_in_flight(8);
    /// assert_eq!(options.get_throttle().limiter().unwrap().rate(), Rate::per_second(50));
    /// assert_eq!(options.get_throttle().max_in_flight_limit(), Some(8));
    /// ```
    pub fn rate_limiter(mut self, limiter: impl Into<RateLimiter>) -> Self {
        self.throttle = self.throttle.rate(limiter);
        self
    }

    /// At most `n` attempts of these options (and their clones) in flight at once, retries
    /// and page requests included; a backoff wait holds no slot.
    ///
    /// # Panics
    ///
    /// If `n` is 0: ``"`throttle`: `max_in_flight` must be at least 1, got 0; pass a non-zero value"``.
    ///
    /// ```
    /// use millrace::adapters::http::HttpOptions;
    ///
    /// assert_eq!(HttpOptions::new().max_in_flight(4).get_throttle().max_in_flight_limit(), Some(4));
    /// ```
    #[track_caller]
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.throttle = self.throttle.max_in_flight(n);
        self
    }

    /// Takes its limits from `throttle` (a core [`Throttle`]: rate and in-flight bound),
    /// shared with everything else that holds a clone of it, e.g. the attempts of a core
    /// `map_retry` stage calling the same service.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::policy::Throttle;
    /// use millrace::adapters::http::HttpOptions;
    ///
    /// let service = Throttle::new().rate(Rate::per_second(20)).max_in_flight(4);
    /// let options = HttpOptions::new().throttle(service.clone());
    /// assert_eq!(options.get_throttle().max_in_flight_limit(), Some(4));
    /// ```
    pub fn throttle(mut self, throttle: Throttle) -> Self {
        self.throttle = throttle;
        self
    }

    /// The limits every attempt takes.
    ///
    /// ```
    /// use millrace::adapters::http::HttpOptions;
    ///
    /// assert_eq!(HttpOptions::new().get_throttle().max_in_flight_limit(), None);
    /// ```
    pub fn get_throttle(&self) -> &Throttle {
        &self.throttle
    }

    /// The live count of retries made with these options and their clones (shared): a
    /// metered `fetch_json` or `paginated` stage adopts it as its `retries`
    /// (`.metered(..).with_events()`, or `pipeline!`).
    ///
    /// ```
    /// use millrace::adapters::http::HttpOptions;
    ///
    /// let options = HttpOptions::new();
    /// assert_eq!(options.clone().retry_stats().get(), 0);
    /// ```
    pub fn retry_stats(&self) -> EventCounter {
        self.stats.clone()
    }

    /// The per-attempt timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// use millrace::adapters::http::HttpOptions;
    ///
    /// assert_eq!(HttpOptions::new().get_timeout(), Duration::from_secs(30));
    /// ```
    pub fn get_timeout(&self) -> Duration {
        self.timeout
    }

    /// The number of retries after the first attempt.
    ///
    /// ```
    /// use millrace::adapters::http::HttpOptions;
    ///
    /// assert_eq!(HttpOptions::new().get_retries(), 3);
    /// ```
    pub fn get_retries(&self) -> usize {
        self.retries
    }

    /// The core retry policy of one request: the schedule, its limits, and
    /// [`HttpError::is_transient`] as the predicate.
    pub(crate) fn policy(&self) -> RetryPolicy<Schedule, fn(&HttpError) -> bool> {
        let transient: fn(&HttpError) -> bool = HttpError::is_transient;
        if let Some(policy) = &self.policy {
            let mut out = RetryPolicy::new(Schedule(Arc::clone(&policy.schedule)));
            if let Some(limit) = policy.max_total_delay {
                out = out.max_total_delay(limit);
            }
            if let Some(cap) = policy.max_delay {
                out = out.max_delay(cap);
            }
            return out.retry_if(transient);
        }
        let builder = ExponentialBuilder::default()
            .with_min_delay(self.min_backoff)
            .with_max_delay(self.max_backoff)
            .with_max_times(self.retries);
        let builder = if self.jitter {
            builder.with_jitter()
        } else {
            builder
        };
        RetryPolicy::new(Schedule(Arc::new(move || -> Delays {
            Box::new(builder.build())
        })))
        .max_delay(self.max_backoff)
        .retry_if(transient)
    }

    pub(crate) fn notify_retry(&self, err: &HttpError, delay: Duration) {
        self.stats.record();
        if let Some(hook) = &self.on_retry {
            hook(err, delay);
        }
    }
}

impl fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpOptions")
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("min_backoff", &self.min_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("jitter", &self.jitter)
            .field(
                "policy",
                &self.policy.as_ref().map(|p| (&p.debug, p.max_total_delay)),
            )
            .field("on_retry", &self.on_retry.as_ref().map(|_| "Fn"))
            .field("throttle", &self.throttle)
            .field("retries", &self.stats.get())
            .finish()
    }
}
