//! A cheap log-linear latency histogram: one relaxed load and store per recorded value.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two (2 bits of mantissa): every bucket is at most 25% wide, so a
/// quantile read from its midpoint is within ±12.5% of the true value.
const SUB_BITS: u32 = 2;
const SUB: usize = 1 << SUB_BITS;
/// Values below `SUB` get a bucket each; then `SUB` buckets per power of two up to 2^64.
const BUCKETS: usize = SUB + (64 - SUB_BITS as usize) * SUB;

/// Bucket index of `v` nanoseconds.
#[inline]
fn index(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // 2..=63
    let sub = ((v >> (e - SUB_BITS)) as usize) & (SUB - 1);
    SUB + (e - SUB_BITS) as usize * SUB + sub
}

/// Smallest and largest value of bucket `i`.
fn bounds(i: usize) -> (u64, u64) {
    if i < SUB {
        return (i as u64, i as u64);
    }
    let e = ((i - SUB) / SUB) as u32 + SUB_BITS;
    let sub = ((i - SUB) % SUB) as u64;
    let width = 1u64 << (e - SUB_BITS);
    let lower = (SUB as u64 + sub) << (e - SUB_BITS);
    (lower, lower.saturating_add(width - 1))
}

/// Per-item latencies of one timed stage, written by its one `Metered` stream.
pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_nanos: AtomicU64,
    max_nanos: AtomicU64,
}

impl Histogram {
    pub(crate) fn new() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
            max_nanos: AtomicU64::new(0),
        }
    }

    /// Records one value. Single writer: a load and a store per counter, no locked RMW.
    #[inline]
    pub(crate) fn record(&self, d: Duration) {
        let v = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let b = &self.buckets[index(v)];
        b.store(b.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        self.count
            .store(self.count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        self.sum_nanos.store(
            self.sum_nanos.load(Ordering::Relaxed).saturating_add(v),
            Ordering::Relaxed,
        );
        if v > self.max_nanos.load(Ordering::Relaxed) {
            self.max_nanos.store(v, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> LatencySnapshot {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let count: u64 = counts.iter().sum();
        let max = self.max_nanos.load(Ordering::Relaxed);
        let quantile = |q: f64| -> Duration {
            if count == 0 {
                return Duration::ZERO;
            }
            // The rank of the q-quantile, 1-based: the smallest value with at least q·count
            // values at or below it.
            let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    let (lo, hi) = bounds(i);
                    return Duration::from_nanos((lo + (hi - lo) / 2).min(max));
                }
            }
            Duration::from_nanos(max)
        };
        LatencySnapshot {
            count,
            sum: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)),
            p50: quantile(0.50),
            p90: quantile(0.90),
            p99: quantile(0.99),
            max: Duration::from_nanos(max),
        }
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.snapshot().fmt(f)
    }
}

/// Per-item latency quantiles of a timed stage (see
/// [`with_timing`](crate::wrappers::Metered::with_timing)).
///
/// A stage's latency for one item is the real time from the first poll after its previous
/// item (or the first poll) to the poll that yields the item: the time the consumer waited
/// for it, including the upstream's waits. Quantiles come from a log-linear histogram
/// (4 buckets per power of two), so each is within ±12.5% of the exact value; `max` is exact.
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let s = stream::iter(0..100).metered("timed").with_timing();
/// let m = s.metrics();
/// let _: Vec<i32> = s.collect().await;
/// let latency = m.snapshot().latency.expect("timing is on");
/// assert_eq!(latency.count, 100);
/// assert!(latency.p50 <= latency.p99 && latency.p99 <= latency.max);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LatencySnapshot {
    /// Items measured.
    pub count: u64,
    /// Sum of all measured latencies.
    pub sum: Duration,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest latency seen (exact).
    pub max: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for i in 0..BUCKETS {
            let (lo, hi) = bounds(i);
            assert!(lo <= hi);
            if i > 0 {
                assert_eq!(lo, last + 1, "bucket {i} starts after the previous one");
            }
            assert_eq!(index(lo), i);
            assert_eq!(index(hi), i);
            last = hi;
        }
        assert_eq!(last, u64::MAX);
    }

    #[test]
    fn quantiles_are_within_the_bucket_error() {
        let h = Histogram::new();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 1000);
        assert_eq!(s.max, Duration::from_micros(1000));
        assert_eq!(s.sum, Duration::from_micros(500_500));
        for (got, want) in [(s.p50, 500.0), (s.p90, 900.0), (s.p99, 990.0)] {
            let got = got.as_secs_f64() * 1e6;
            assert!((got - want).abs() / want <= 0.125, "{got} vs {want}");
        }
    }

    #[test]
    fn an_empty_histogram_reads_zero() {
        let s = Histogram::new().snapshot();
        assert_eq!((s.count, s.p50, s.max), (0, Duration::ZERO, Duration::ZERO));
    }
}
