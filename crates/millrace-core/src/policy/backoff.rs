//! [`Backoff`]: a backoff schedule that says what it does.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use backon::BackoffBuilder;

use crate::error::ConfigError;

/// A backoff schedule with checked parameters, a cap that holds **jitter included**, and the
/// delay of any retry readable without iterating ([`delay`](Self::delay)).
///
/// The nominal delay before retry `n` (1-based) is `first × factor^(n-1)`, capped at
/// [`max_delay`](Self::max_delay). With [`jitter(r)`](Self::jitter) each actual wait is drawn
/// from `[d, d × (1 + r)]` for the nominal `d`, **then capped again**: no wait ever exceeds
/// `max_delay`. At most [`max_retries`](Self::max_retries) retries (default 5).
///
/// It is a backon [`BackoffBuilder`], so it goes wherever one does, first of all into a
/// [`RetryPolicy`](crate::policy::RetryPolicy).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::policy::Backoff;
/// use std::time::Duration;
///
/// let backoff = Backoff::exponential(Duration::from_millis(100))
///     .max_delay(Duration::from_secs(1))
///     .max_retries(8)
///     .jitter(0.5);
/// assert_eq!(backoff.delay(1), Some(Duration::from_millis(100)));
/// assert_eq!(backoff.delay(4), Some(Duration::from_millis(800)));
/// assert_eq!(backoff.delay(5), Some(Duration::from_secs(1))); // capped
/// assert_eq!(backoff.delay(9), None);                         // only 8 retries
/// assert_eq!(backoff.max_wait(3), Some(Duration::from_millis(600))); // 400 ms + 50 %
/// assert_eq!(backoff.max_wait(5), Some(Duration::from_secs(1)));     // jitter capped too
/// let policy = RetryPolicy::new(backoff);
/// assert_eq!(policy.delay(2), Some(Duration::from_millis(200)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    first: Duration,
    factor: f64,
    max_delay: Option<Duration>,
    max_retries: usize,
    jitter: Option<f64>,
}

impl Backoff {
    /// `first`, then twice as long each time, 5 retries, no cap, no jitter.
    ///
    /// ```
    /// use millrace::policy::Backoff;
    /// use std::time::Duration;
    ///
    /// let b = Backoff::exponential(Duration::from_millis(10));
    /// assert_eq!(b.delay(3), Some(Duration::from_millis(40)));
    /// ```
    pub fn exponential(first: Duration) -> Self {
        Backoff {
            first,
            factor: 2.0,
            max_delay: None,
            max_retries: 5,
            jitter: None,
        }
    }

    /// The same `delay` before each retry, 5 retries, no jitter.
    ///
    /// ```
    /// use millrace::policy::Backoff;
    /// use std::time::Duration;
    ///
    /// let b = Backoff::constant(Duration::from_millis(10));
    /// assert_eq!(b.delay(5), Some(Duration::from_millis(10)));
    /// ```
    pub fn constant(delay: Duration) -> Self {
        Backoff {
            factor: 1.0,
            ..Self::exponential(delay)
        }
    }

    /// Multiplies the delay by `factor` after each retry.
    ///
    /// # Panics
    ///
    /// If `factor` is NaN, infinite or under 1 (see [`checked_factor`](Self::checked_factor)).
    ///
    /// ```
    /// use millrace::policy::Backoff;
    /// use std::time::Duration;
    ///
    /// let b = Backoff::exponential(Duration::from_millis(10)).factor(3.0);
    /// assert_eq!(b.delay(3), Some(Duration::from_millis(90)));
    /// ```
    #[track_caller]
    pub fn factor(self, factor: f64) -> Self {
        crate::error::built(self.checked_factor(factor))
    }

    /// Sets the factor, or a [`ConfigError`] naming the value if it is NaN, infinite or under 1.
    ///
    /// ```
    /// use millrace::policy::Backoff;
    /// use std::time::Duration;
    ///
    /// assert_eq!(
    ///     Backoff::exponential(Duration::from_millis(10)).checked_factor(f64::NAN).unwrap_err().to_string(),
    ///     "`backoff`: `factor` must be a finite number of at least 1.0, got NaN; pass a value in that range"
    /// );
    /// ```
    pub fn checked_factor(self, factor: f64) -> Result<Self, ConfigError> {
        if !factor.is_finite() || factor < 1.0 {
            return Err(ConfigError::out_of_range(
                "backoff",
                "factor",
                factor,
                "a finite number of at least 1.0",
            ));
        }
        Ok(Backoff { factor, ..self })
    }

    /// Renamed [`checked_factor`](Self::checked_factor).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_factor`")]
    pub fn try_factor(self, factor: f64) -> Result<Self, ConfigError> {
        self.checked_factor(factor)
    }

    /// Caps every wait, jitter included.
    ///
    /// ```
    /// use millrace::policy::Backoff;
    /// use std::time::Duration;
    ///
    /// let b = Backoff::exponential(Duration::from_secs(1)).max_delay(Duration::from_secs(10)).jitter(1.0);
    /// assert_eq!(b.max_wait(4), Some(Duration::from_secs(10))); // 8 s + 100 % jitter, capped
    /// ```
    pub fn max_delay(self, cap: Duration) -> Self {
        Backoff {
            max_delay: Some(cap),
            ..self
        }
    }

    /// At most `retries` retries after the first attempt (0 = never retry).
    ///
    /// ```
    /// use millrace::policy::Backoff;
    /// use std::time::Duration;
    ///
    /// assert_eq!(Backoff::constant(Duration::from_millis(1)).max_retries(2).delay(3), None);
    /// ```
    pub fn max_retries(self, retries: usize) -> Self {
        Backoff {
            max_retries: retries,
            ..self
        }
    }

    /// Randomises each wait: drawn from `[d, d × (1 + ratio)]` for the nominal delay `d`, then
    /// capped at [`max_delay`](Self::max_delay).
    ///
    /// # Panics
    ///
    /// If `ratio` is not in `(0, 1]` (see [`checked_jitter`](Self::checked_jitter)).
    ///
    /// ```
    /// use millrace::policy::Backoff;
    /// use std::time::Duration;
    ///
    /// let b = Backoff::constant(Duration::from_millis(100)).jitter(0.2);
    /// assert_eq!(b.max_wait(1), Some(Duration::from_millis(120)));
    /// ```
    #[track_caller]
    pub fn jitter(self, ratio: f64) -> Self {
        crate::error::built(self.checked_jitter(ratio))
    }

    /// Sets the jitter, or a [`ConfigError`] naming the value if it is not in `(0, 1]` (zero,
    /// negative, NaN, or over 1).
    ///
    /// ```
    /// use millrace::policy::Backoff;
    /// use std::time::Duration;
    ///
    /// assert_eq!(
    ///     Backoff::constant(Duration::from_millis(1)).checked_jitter(-0.5).unwrap_err().to_string(),
    ///     "`backoff`: `jitter` must be a ratio in (0, 1], got -0.5; pass a value in that range"
    /// );
    /// assert!(Backoff::constant(Duration::from_millis(1)).checked_jitter(0.0).is_err());
    /// ```
    pub fn checked_jitter(self, ratio: f64) -> Result<Self, ConfigError> {
        if !(ratio > 0.0 && ratio <= 1.0) {
            return Err(ConfigError::out_of_range(
                "backoff",
                "jitter",
                ratio,
                "a ratio in (0, 1]",
            ));
        }
        Ok(Backoff {
            jitter: Some(ratio),
            ..self
        })
    }

    /// Renamed [`checked_jitter`](Self::checked_jitter).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_jitter`")]
    pub fn try_jitter(self, ratio: f64) -> Result<Self, ConfigError> {
        self.checked_jitter(ratio)
    }

    /// The nominal delay before retry `n` (1-based; jitter not included), or `None` if the
    /// schedule gives up before it (or `n` is 0). Computed, not iterated.
    ///
    /// ```
    /// use millrace::policy::Backoff;
    /// use std::time::Duration;
    ///
    /// assert_eq!(Backoff::exponential(Duration::from_millis(1)).max_retries(40).delay(40),
    ///            Some(Duration::from_millis(1) * 2u32.pow(20) * 2u32.pow(19)));
    /// ```
    pub fn delay(&self, n: usize) -> Option<Duration> {
        if n == 0 || n > self.max_retries {
            return None;
        }
        let exp = i32::try_from(n - 1).unwrap_or(i32::MAX);
        let secs = self.first.as_secs_f64() * self.factor.powi(exp);
        Some(self.capped(secs))
    }

    /// The longest actual wait before retry `n`: the nominal delay plus the full jitter,
    /// capped at [`max_delay`](Self::max_delay).
    ///
    /// ```
    /// use millrace::policy::Backoff;
    /// use std::time::Duration;
    ///
    /// assert_eq!(Backoff::constant(Duration::from_millis(10)).max_wait(1), Some(Duration::from_millis(10)));
    /// ```
    pub fn max_wait(&self, n: usize) -> Option<Duration> {
        let d = self.delay(n)?;
        Some(self.capped(d.as_secs_f64() * (1.0 + self.jitter.unwrap_or(0.0))))
    }

    /// `secs` as a duration (exact to the nanosecond for whole milliseconds), capped.
    fn capped(&self, secs: f64) -> Duration {
        let d = if secs >= Duration::MAX.as_secs_f64() {
            Duration::MAX
        } else {
            // Round to the nanosecond so that 0.1 s × 2 is exactly 200 ms.
            let nanos = (secs * 1e9).round() as u128;
            Duration::new(
                u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX),
                (nanos % 1_000_000_000) as u32,
            )
        };
        self.max_delay.map_or(d, |cap| d.min(cap))
    }
}

/// The iterator a [`Backoff`] builds (its `Iterator` yields the actual waits).
#[derive(Debug, Clone)]
pub struct BackoffIter {
    spec: Backoff,
    next: usize,
    rng: u64,
}

impl Iterator for BackoffIter {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.next += 1;
        let d = self.spec.delay(self.next)?;
        let Some(ratio) = self.spec.jitter else {
            return Some(d);
        };
        // splitmix64: a per-schedule random sequence, no shared state.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
        Some(self.spec.capped(d.as_secs_f64() * (1.0 + unit * ratio)))
    }
}

impl BackoffBuilder for Backoff {
    type Backoff = BackoffIter;

    fn build(self) -> BackoffIter {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        BackoffIter {
            spec: self,
            next: 0,
            rng: seed,
        }
    }
}
