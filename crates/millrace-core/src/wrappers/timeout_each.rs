//! [`TimeoutError`], shared by the time-limit wrappers ([`ItemTimeout`](super::ItemTimeout),
//! [`IdleTimeout`](super::IdleTimeout), [`Deadline`](super::Deadline)), and the deprecated
//! names of [`IdleTimeout`](super::IdleTimeout) from when its method was called `timeout_each`.

use std::fmt;
use std::time::Duration;

use futures_core::Stream;
use tokio::time::Instant;

use crate::error::ConfigError;

/// Deprecated name of [`IdleTimeout`](super::IdleTimeout), the stream of the method formerly
/// called `timeout_each` (now [`idle_timeout`](crate::PipelineExt::idle_timeout)).
#[deprecated(
    note = "renamed `IdleTimeout` (`idle_timeout`: ends the stream at the first late item); \
            for a per-item timeout that keeps the stream going use `ItemTimeout` (`item_timeout`)"
)]
pub type TimeoutEach<S> = super::IdleTimeout<S>;

/// Deprecated name of [`IdleTimeoutStage`](super::IdleTimeoutStage).
#[deprecated(
    note = "renamed `IdleTimeoutStage`; for a per-item timeout that keeps the stream going use \
            `ItemTimeoutStage`"
)]
pub type TimeoutEachStage = super::IdleTimeoutStage;

/// A time limit elapsed; yielded by [`item_timeout`](crate::PipelineExt::item_timeout) (the
/// stream goes on), and by [`idle_timeout`](crate::PipelineExt::idle_timeout) and
/// [`deadline`](crate::PipelineExt::deadline) (the stream ends and the upstream is dropped).
///
/// ```
/// use millrace::wrappers::TimeoutError;
/// use std::time::Duration;
///
/// let err = TimeoutError::Item { after: Duration::from_millis(100), index: 3 };
/// assert_eq!(
///     err.to_string(),
///     "no item #3 within 100ms, so the upstream was cancelled; raise the limit, \
///      or re-open the source with `restartable(..).retry(..)`"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutError {
    /// [`idle_timeout`](crate::PipelineExt::idle_timeout): the upstream took longer than
    /// `after` to produce item number `index` (0-based), or to end after its last item; the
    /// upstream was dropped and the stream ended.
    Item {
        /// The per-item limit that elapsed.
        after: Duration,
        /// How many items had been delivered before the wait that timed out.
        index: u64,
    },
    /// [`item_timeout`](crate::PipelineExt::item_timeout): item number `index` (0-based) did
    /// not arrive within `after`; the upstream is kept and the stream goes on waiting for it.
    Elapsed {
        /// The per-item limit that elapsed.
        after: Duration,
        /// How many items had been delivered before the wait that timed out.
        index: u64,
    },
    /// The whole stream did not finish within `after` from its first poll.
    Deadline {
        /// The deadline that elapsed, measured from the first poll.
        after: Duration,
    },
}

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeoutError::Item { after, index } => write!(
                f,
                "no item #{index} within {after:?}, so the upstream was cancelled; raise the \
                 limit, or re-open the source with `restartable(..).retry(..)`"
            ),
            TimeoutError::Elapsed { after, index } => write!(
                f,
                "no item #{index} within {after:?}; the stream keeps waiting for it. To give up \
                 on a slow item, bound its work instead (`tokio::time::timeout` inside \
                 `map_concurrent`)"
            ),
            TimeoutError::Deadline { after } => write!(
                f,
                "the stream did not finish within its deadline of {after:?}, so the upstream \
                 was cancelled; raise the deadline, or resume from a checkpoint"
            ),
        }
    }
}

impl std::error::Error for TimeoutError {}

/// `now + limit`, saturating far in the future (about 30 years, as tokio's own `sleep` does)
/// instead of panicking on overflow, so that any duration, `Duration::MAX` included, is a valid
/// limit.
pub(crate) fn deadline_after(limit: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(limit)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}

/// A zero limit would time out before the upstream is ever polled twice: reject it.
pub(crate) fn nonzero_duration(
    stage: &'static str,
    param: &'static str,
    d: Duration,
) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        Err(ConfigError::out_of_range(
            stage,
            param,
            "0ns",
            "a non-zero duration",
        ))
    } else {
        Ok(d)
    }
}

/// The size hint of a stream that yields every upstream item, or some of them and then one
/// timeout error and ends (`None` once it has ended); shared with [`Deadline`](super::Deadline).
pub(crate) fn items_or_one_error<S: Stream>(upstream: Option<&S>) -> (usize, Option<usize>) {
    match upstream {
        Some(stream) => {
            let (lo, hi) = stream.size_hint();
            (lo.min(1), hi.and_then(|hi| hi.checked_add(1)))
        }
        None => (0, Some(0)),
    }
}
