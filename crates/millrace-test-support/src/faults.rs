//! What goes wrong, and when: the deterministic fault plan.

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

/// One injected fault.
///
/// ```
/// use std::time::Duration;
/// use millrace_test_support::{Fault, Faults};
///
/// let faults = Faults::none().script(
///     "/items/3",
///     [Fault::Status(500), Fault::Delay(Duration::from_millis(20)), Fault::Drop],
/// );
/// # let _ = faults;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this status (e.g. 503) and a short text body instead of the real response.
    Status(u16),
    /// Wait this long (tokio time), then answer normally.
    Delay(Duration),
    /// Close the connection without answering: the client sees the connection closed before
    /// the response was complete.
    Drop,
}

/// The fault plan of a [`TestServer`](crate::TestServer): scripted faults for given keys, seeded random faults for
/// the others, and an optional outage window.
///
/// A request's *key* is its path and query exactly as sent (e.g. `/items/7`,
/// `/pages?page=2&per_page=10`).
///
/// - A key with a [`script`](Faults::script): its `k`-th request (from 0) gets the script's
///   `k`-th fault; every request past the script succeeds.
/// - Any other key: each request draws one number from the seed, the key and how many faults
///   in a row that key just had, and becomes a drop, an error or a delay with the configured
///   rates. After [`max_faults_per_key`](Faults::max_faults_per_key) faults in a row the next
///   request succeeds (so a client with that many retries always gets through), and a success
///   starts the count again (a key requested again later may fail again, as in real life).
///
/// So the faults depend only on the sequence of requests per key, never on timing or on how
/// concurrent requests for different keys interleave.
///
/// ```
/// use std::time::Duration;
/// use millrace_test_support::Faults;
///
/// let flaky = Faults::seeded(7)
///     .errors(0.10)                               // 10 % of first attempts get a 503
///     .drops(0.05)                                // 5 % lose their connection
///     .slow(0.10, Duration::from_millis(30))      // 10 % answer after 30 ms
///     .max_faults_per_key(2);
/// # let _ = flaky;
/// ```
#[derive(Debug, Clone)]
pub struct Faults {
    seed: u64,
    error_rate: f64,
    pub(crate) error_status: u16,
    drop_rate: f64,
    slow_rate: f64,
    slow_delay: Duration,
    max_per_key: u32,
    pub(crate) script: HashMap<String, Vec<Fault>>,
    pub(crate) outage: Option<Range<u64>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            seed: 0,
            error_rate: 0.0,
            error_status: 503,
            drop_rate: 0.0,
            slow_rate: 0.0,
            slow_delay: Duration::ZERO,
            max_per_key: 2,
            script: HashMap::new(),
            outage: None,
        }
    }
}

impl Faults {
    /// No faults at all (rates 0, no script, no outage).
    ///
    /// ```
    /// use millrace_test_support::Faults;
    ///
    /// let healthy = Faults::none();
    /// # let _ = healthy;
    /// ```
    pub fn none() -> Self {
        Self::default()
    }

    /// The faults of the main job's catalog server: 6 % 503s, 3 % dropped connections, 5 %
    /// answers 40 ms late (at most 2 faults per key), and an outage of the primary for 6
    /// requests after the first 5, while the catalog loads: enough to exhaust the page retries
    /// and the source restarts, so the load finishes on the mirror.
    /// `examples/library_dashboard` and `examples/handwritten_baseline` both run against it,
    /// so their comparison (and `tests/baseline_equal.rs`) is on the same faults.
    ///
    /// ```
    /// use millrace_test_support::Faults;
    ///
    /// let f = Faults::main_job();
    /// assert!(format!("{f:?}").contains("seed: 2024"));
    /// ```
    pub fn main_job() -> Self {
        Faults::seeded(2024)
            .errors(0.06)
            .drops(0.03)
            .slow(0.05, Duration::from_millis(40))
            .max_faults_per_key(2)
            .outage(5, 6)
    }

    /// No faults yet, with `seed` for the random ones added next.
    ///
    /// ```
    /// use millrace_test_support::Faults;
    ///
    /// let f = Faults::seeded(42).errors(0.2);
    /// # let _ = f;
    /// ```
    pub fn seeded(seed: u64) -> Self {
        Faults {
            seed,
            ..Self::default()
        }
    }

    /// The fraction (0.0 to 1.0) of eligible attempts answered with the error status (503
    /// unless changed with [`error_status`](Faults::error_status)).
    ///
    /// ```
    /// use millrace_test_support::Faults;
    ///
    /// let f = Faults::seeded(1).errors(0.5);
    /// # let _ = f;
    /// ```
    pub fn errors(mut self, rate: f64) -> Self {
        self.error_rate = rate.clamp(0.0, 1.0);
        self
    }

    /// The status of random errors and of the outage (default 503).
    ///
    /// ```
    /// use millrace_test_support::Faults;
    ///
    /// let f = Faults::seeded(1).errors(0.5).error_status(500);
    /// # let _ = f;
    /// ```
    pub fn error_status(mut self, status: u16) -> Self {
        self.error_status = status;
        self
    }

    /// The fraction of eligible attempts whose connection is closed without an answer.
    ///
    /// ```
    /// use millrace_test_support::Faults;
    ///
    /// let f = Faults::seeded(1).drops(0.1);
    /// # let _ = f;
    /// ```
    pub fn drops(mut self, rate: f64) -> Self {
        self.drop_rate = rate.clamp(0.0, 1.0);
        self
    }

    /// The fraction of eligible attempts answered after `delay`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use millrace_test_support::Faults;
    ///
    /// let f = Faults::seeded(1).slow(0.25, Duration::from_millis(50));
    /// # let _ = f;
    /// ```
    pub fn slow(mut self, rate: f64, delay: Duration) -> Self {
        self.slow_rate = rate.clamp(0.0, 1.0);
        self.slow_delay = delay;
        self
    }

    /// How many random faults in a row one key may get (default 2); the request after them
    /// succeeds.
    ///
    /// ```
    /// use millrace_test_support::Faults;
    ///
    /// let f = Faults::seeded(1).errors(1.0).max_faults_per_key(1); // every key fails exactly once
    /// # let _ = f;
    /// ```
    pub fn max_faults_per_key(mut self, n: u32) -> Self {
        self.max_per_key = n;
        self
    }

    /// Attempt `k` of `key` (path and query, exactly as requested) gets `faults[k]`; attempts
    /// past the end succeed. A scripted key gets no random faults. Calling again for the same
    /// key replaces its script.
    ///
    /// ```
    /// use std::time::Duration;
    /// use millrace_test_support::{Fault, Faults};
    ///
    /// // Always too slow for a 100 ms client timeout, for the first five attempts.
    /// let f = Faults::none().script("/items/4", [Fault::Delay(Duration::from_secs(2)); 5]);
    /// # let _ = f;
    /// ```
    pub fn script(
        mut self,
        key: impl Into<String>,
        faults: impl IntoIterator<Item = Fault>,
    ) -> Self {
        self.script.insert(key.into(), faults.into_iter().collect());
        self
    }

    /// An outage: the faulty endpoints' requests number `from .. from + len` (counted over all
    /// of them from 0, in arrival order) are all answered with the error status; `/mirror` is
    /// unaffected. Meant for demos of a fallback to the mirror.
    ///
    /// ```
    /// use millrace_test_support::Faults;
    ///
    /// let f = Faults::none().outage(100, u64::MAX); // down for good after 100 requests
    /// # let _ = f;
    /// ```
    pub fn outage(mut self, from: u64, len: u64) -> Self {
        self.outage = Some(from..from.saturating_add(len));
        self
    }

    /// The fault for attempt `attempt` of `key`, if any.
    pub(crate) fn decide(&self, key: &str, attempt: u32) -> Option<Fault> {
        if let Some(script) = self.script.get(key) {
            return script.get(attempt as usize).copied();
        }
        if attempt >= self.max_per_key {
            return None;
        }
        let draw = unit(mix(self.seed
            ^ fnv1a(key.as_bytes())
            ^ mix(u64::from(attempt) + 1)));
        let mut edge = self.drop_rate;
        if draw < edge {
            return Some(Fault::Drop);
        }
        edge += self.error_rate;
        if draw < edge {
            return Some(Fault::Status(self.error_status));
        }
        edge += self.slow_rate;
        if draw < edge {
            return Some(Fault::Delay(self.slow_delay));
        }
        None
    }
}

/// splitmix64's finaliser: a good 64-bit mix.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A number in `[0, 1)` from the top 53 bits.
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_deterministic_and_bounded() {
        let f = Faults::seeded(9).errors(0.5).max_faults_per_key(1);
        let first: Vec<_> = (0..100)
            .map(|i| f.decide(&format!("/items/{i}"), 0))
            .collect();
        let again: Vec<_> = (0..100)
            .map(|i| f.decide(&format!("/items/{i}"), 0))
            .collect();
        assert_eq!(first, again);
        let failures = first.iter().filter(|d| d.is_some()).count();
        assert!(
            (30..=70).contains(&failures),
            "{failures} of 100 at rate 0.5"
        );
        assert!((0..100).all(|i| f.decide(&format!("/items/{i}"), 1).is_none()));
    }

    #[test]
    fn script_wins_and_ends() {
        let f = Faults::seeded(1).errors(1.0).script("/a", [Fault::Drop]);
        assert_eq!(f.decide("/a", 0), Some(Fault::Drop));
        assert_eq!(f.decide("/a", 1), None);
        assert_eq!(f.decide("/b", 0), Some(Fault::Status(503)));
    }
}
