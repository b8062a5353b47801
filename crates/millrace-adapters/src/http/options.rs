//! [`HttpOptions`]: per-request timeout and the retry policy for transient failures.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use millrace_core::policy::{RetryAll, RetryPolicy};

use super::HttpError;

/// Called before each retry with the error that caused it and the delay about to be waited.
type RetryHook = Arc<dyn Fn(&HttpError, Duration) + Send + Sync>;

/// A fresh schedule of delays per request.
type Delays = Box<dyn Iterator<Item = Duration> + Send>;

/// A core [`RetryPolicy`] with its builder type erased, so that `HttpOptions` stays one type.
#[derive(Clone)]
struct Policy {
    schedule: Arc<dyn Fn() -> Delays + Send + Sync>,
    max_total_delay: Option<Duration>,
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
/// the last attempt. To also restart a whole source after its retries ran out, wrap it in
/// the core `restartable(..).retry(..)`.
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

    /// The first retry waits `min`, each later one twice as long, never more than `max`.
    /// Ignored once a [`retry_policy`](Self::retry_policy) is set.
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
        B::Backoff: Send + 'static,
    {
        let builder = policy.builder().clone();
        self.policy = Some(Policy {
            debug: format!("{builder:?}"),
            schedule: Arc::new(move || -> Delays { Box::new(builder.clone().build()) }),
            max_total_delay: policy.total_delay_limit(),
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

    /// The delays between attempts for one request (one allocation per request, negligible
    /// next to the request itself), and the limit on their sum.
    pub(crate) fn backoff_delays(&self) -> (Delays, Option<Duration>) {
        if let Some(policy) = &self.policy {
            return ((policy.schedule)(), policy.max_total_delay);
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
        (Box::new(builder.build()), None)
    }

    pub(crate) fn notify_retry(&self, err: &HttpError, delay: Duration) {
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
            .finish()
    }
}
