//! Connections, transient-error classification and reconnect backoff.

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, RedisResult};
use tokio::time::Instant;

use super::error::RedisStreamError;

/// How the source, the acker and the sinks' setup wait between attempts while the server is
/// unreachable: exponential backoff from `min_delay`, doubling up to `max_delay`, giving up
/// (with [`RedisStreamError::GaveUp`]) once one command has been failing for `give_up_after`.
///
/// ```
/// use std::time::Duration;
/// use millrace::adapters::redis::ReconnectPolicy;
///
/// let p = ReconnectPolicy::default().give_up_after(Duration::from_secs(5));
/// assert_eq!(p.delay(0), Duration::from_millis(50));
/// assert_eq!(p.delay(3), Duration::from_millis(400));
/// assert_eq!(p.delay(30), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    min_delay: Duration,
    max_delay: Duration,
    give_up_after: Duration,
}

impl Default for ReconnectPolicy {
    /// 50 ms doubling to 2 s, give up after 60 s of failures.
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            give_up_after: Duration::from_secs(60),
        }
    }
}

impl ReconnectPolicy {
    /// First delay.
    pub fn min_delay(mut self, d: Duration) -> Self {
        self.min_delay = d;
        self
    }

    /// Longest delay.
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// Give up after a command has been failing for this long.
    pub fn give_up_after(mut self, d: Duration) -> Self {
        self.give_up_after = d;
        self
    }

    /// The delay before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.min_delay.saturating_mul(factor).min(self.max_delay)
    }

    pub(crate) fn give_up(&self) -> Duration {
        self.give_up_after
    }
}

/// Errors after which the same command may succeed once the connection is back.
pub(crate) fn is_transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.code(),
            Some("LOADING" | "TRYAGAIN" | "MASTERDOWN" | "BUSY")
        )
}

/// Runs `op` until it succeeds, retrying transient errors per `policy`.
pub(crate) async fn with_retry<T, F, Fut>(
    policy: &ReconnectPolicy,
    command: &'static str,
    stream: &str,
    mut op: F,
) -> Result<T, RedisStreamError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = RedisResult<T>>,
{
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if is_transient(&e) => {
                if started.elapsed() >= policy.give_up() {
                    return Err(RedisStreamError::GaveUp {
                        command,
                        stream: stream.to_owned(),
                        attempts: attempt + 1,
                        source: e,
                    });
                }
                tokio::time::sleep(policy.delay(attempt)).await;
                attempt = attempt.saturating_add(1);
            }
            Err(e) => {
                return Err(RedisStreamError::Redis {
                    command,
                    stream: stream.to_owned(),
                    source: e,
                });
            }
        }
    }
}

/// A reconnecting multiplexed connection whose replies may take up to `response_timeout`.
pub(crate) async fn connect(
    client: &Client,
    response_timeout: Duration,
    policy: &ReconnectPolicy,
    stream: &str,
) -> Result<ConnectionManager, RedisStreamError> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1);
    with_retry(policy, "CONNECT", stream, || {
        client.get_connection_manager_with_config(config.clone())
    })
    .await
}
