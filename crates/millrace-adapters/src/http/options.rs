//! [`HttpOptions`]: per-request timeout and the retry policy for transient failures.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use super::HttpError;

/// Called before each retry with the error that caused it and the delay about to be waited.
type RetryHook = Arc<dyn Fn(&HttpError, Duration) + Send + Sync>;

/// How each request of [`paginated`](super::paginated) and [`fetch_json`](super::fetch_json)
/// is made: a timeout per attempt and an exponential backoff for
/// [transient](HttpError::is_transient) failures.
///
/// Defaults: 30 s per attempt, up to 3 retries (4 attempts), delays from 100 ms doubling up
/// to 10 s, with jitter. A permanent error (a 4xx, bad JSON) is never retried.
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

    /// The delays between attempts, as a backon backoff (an iterator of durations).
    pub(crate) fn backoff_delays(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        let builder = ExponentialBuilder::default()
            .with_min_delay(self.min_backoff)
            .with_max_delay(self.max_backoff)
            .with_max_times(self.retries);
        let builder = if self.jitter {
            builder.with_jitter()
        } else {
            builder
        };
        builder.build()
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
            .field("on_retry", &self.on_retry.as_ref().map(|_| "Fn"))
            .finish()
    }
}
