//! The request log of [`TestServerBuilder::record_requests`](crate::TestServerBuilder::record_requests)
//! and two measures over it.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The request log of [`TestServerBuilder::record_requests`].
pub(crate) struct RecordLog {
    start: tokio::time::Instant,
    records: Mutex<Vec<RequestRecord>>,
}

impl RecordLog {
    /// An empty log whose clock starts now.
    pub(crate) fn new() -> Self {
        RecordLog {
            start: tokio::time::Instant::now(),
            records: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn since_start(&self) -> Duration {
        self.start.elapsed()
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RequestRecord>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One request as the server saw it (see [`TestServerBuilder::record_requests`](crate::TestServerBuilder::record_requests)).
///
/// ```
/// use millrace_test_support::TestServer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let server = TestServer::builder().items(3).record_requests().start().await.unwrap();
/// reqwest::get(server.url("/items/1")).await.unwrap().text().await.unwrap();
/// let log = server.requests();
/// assert_eq!(log.len(), 1);
/// assert_eq!(log[0].key, "/items/1");
/// assert!(log[0].departed.is_some_and(|d| d >= log[0].arrived));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestRecord {
    /// The path and query, e.g. `/items/7`.
    pub key: String,
    /// When it arrived, since the server started (tokio's clock).
    pub arrived: Duration,
    /// When the server was done with it (answered, or the connection closed under it);
    /// `None` while it is being handled.
    pub departed: Option<Duration>,
}

/// The most requests that arrived within any window `[t, t + width)`.
///
/// ```
/// use millrace_test_support::max_arrivals_within;
/// use std::time::Duration;
///
/// let ms = Duration::from_millis;
/// assert_eq!(max_arrivals_within(&[ms(0), ms(500), ms(999), ms(1000)], Duration::from_secs(1)), 3);
/// ```
pub fn max_arrivals_within(arrivals: &[Duration], width: Duration) -> usize {
    let mut times = arrivals.to_vec();
    times.sort_unstable();
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= width {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

/// The most requests being handled at one moment, from their arrivals and departures (a
/// departure at the same instant as an arrival counts first).
///
/// ```
/// use millrace_test_support::max_in_flight;
/// use std::time::Duration;
///
/// let ms = Duration::from_millis;
/// assert_eq!(max_in_flight(&[(ms(0), Some(ms(10))), (ms(5), Some(ms(20))), (ms(10), Some(ms(30)))]), 2);
/// ```
pub fn max_in_flight(spans: &[(Duration, Option<Duration>)]) -> usize {
    let mut events: Vec<(Duration, i8)> = Vec::with_capacity(spans.len() * 2);
    for (arrived, departed) in spans {
        events.push((*arrived, 1));
        events.push((departed.unwrap_or(Duration::MAX), -1));
    }
    // Departures (-1) sort before arrivals (+1) at the same instant.
    events.sort_unstable();
    let (mut now, mut best) = (0i64, 0i64);
    for (_, delta) in events {
        now += i64::from(delta);
        best = best.max(now);
    }
    usize::try_from(best).unwrap_or(0)
}
