//! Windows: per-key aggregates over tumbling or sliding windows of processing time
//! ([`Window`], built by [`window`](crate::PipelineExt::window)) or event time
//! ([`EventWindow`], built by [`window_event_time`](crate::PipelineExt::window_event_time)).
//!
//! A window holds one accumulator per key (made by `init`, updated by `fold(&mut acc, &item)`),
//! never the items themselves: memory per open window is its distinct keys times one
//! accumulator. A window that saw no item emits nothing.
//!
//! Windows are the half-open intervals `[j·slide, j·slide + size)` from an origin: the first
//! poll for processing time, zero for event time. Tumbling windows have `slide == size`; with
//! a smaller slide each item falls into `ceil(size / slide)` overlapping windows (and is folded
//! into each).

mod event_time;
mod processing;

pub use self::event_time::{EventWindow, LateCounter, WindowEvent};
pub use self::processing::Window;

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use crate::error::ConfigError;

/// The most windows one item may fall into (`size / slide`), so that an item costs a bounded
/// number of folds.
pub const MAX_WINDOWS_PER_ITEM: u64 = 4096;

/// The shape of a window: its size and how far apart consecutive windows start.
///
/// ```
/// use millrace::wrappers::WindowSpec;
/// use std::time::Duration;
///
/// let minute = Duration::from_secs(60);
/// assert_eq!(WindowSpec::tumbling(minute).slide(), minute);
/// let spec = WindowSpec::sliding(minute, Duration::from_secs(10));
/// assert_eq!((spec.size(), spec.slide()), (minute, Duration::from_secs(10)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    size: u64,
    slide: u64,
}

impl WindowSpec {
    /// Back-to-back windows of `size` (each item in exactly one window).
    ///
    /// # Panics
    ///
    /// If `size` is zero; [`checked_tumbling`](Self::checked_tumbling) returns the error.
    #[track_caller]
    pub fn tumbling(size: Duration) -> Self {
        crate::error::built(Self::checked_tumbling(size))
    }

    /// Back-to-back windows of `size`, or an error if `size` is zero or above `u64::MAX`
    /// nanoseconds.
    ///
    /// ```
    /// use millrace::wrappers::WindowSpec;
    /// use std::time::Duration;
    ///
    /// let err = WindowSpec::checked_tumbling(Duration::ZERO).unwrap_err();
    /// assert_eq!(err.to_string(), "`window`: `size` must be a non-zero duration, got 0ns; pass a value in that range");
    /// ```
    pub fn checked_tumbling(size: Duration) -> Result<Self, ConfigError> {
        Self::checked_sliding(size, size)
    }

    /// Renamed [`checked_tumbling`](Self::checked_tumbling).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_tumbling`")]
    pub fn try_tumbling(size: Duration) -> Result<Self, ConfigError> {
        Self::checked_tumbling(size)
    }

    /// Windows of `size` starting every `slide` (each item in `ceil(size / slide)` windows).
    ///
    /// # Panics
    ///
    /// If either is zero, `slide > size`, or `size / slide` exceeds
    /// [`MAX_WINDOWS_PER_ITEM`]; [`checked_sliding`](Self::checked_sliding) returns the error.
    #[track_caller]
    pub fn sliding(size: Duration, slide: Duration) -> Self {
        crate::error::built(Self::checked_sliding(size, slide))
    }

    /// Windows of `size` starting every `slide`, or the [`ConfigError`].
    ///
    /// ```
    /// use millrace::wrappers::WindowSpec;
    /// use std::time::Duration;
    ///
    /// let err = WindowSpec::checked_sliding(Duration::from_secs(1), Duration::from_secs(2)).unwrap_err();
    /// assert_eq!(err.to_string(), "`window`: `slide` must be at most `size`, got 2s; pass a value in that range");
    /// ```
    pub fn checked_sliding(size: Duration, slide: Duration) -> Result<Self, ConfigError> {
        let nanos = |param, d: Duration| match u64::try_from(d.as_nanos()) {
            Ok(0) | Err(_) => Err(ConfigError::out_of_range(
                "window",
                param,
                format!("{d:?}"),
                "a non-zero duration",
            )),
            Ok(n) => Ok(n),
        };
        let (size_ns, slide_ns) = (nanos("size", size)?, nanos("slide", slide)?);
        if slide_ns > size_ns {
            return Err(ConfigError::out_of_range(
                "window",
                "slide",
                format!("{slide:?}"),
                "at most `size`",
            ));
        }
        if size_ns.div_ceil(slide_ns) > MAX_WINDOWS_PER_ITEM {
            return Err(ConfigError::out_of_range(
                "window",
                "slide",
                format!("{slide:?}"),
                "at least `size / MAX_WINDOWS_PER_ITEM` (4096 windows per item)",
            ));
        }
        Ok(WindowSpec {
            size: size_ns,
            slide: slide_ns,
        })
    }

    /// Renamed [`checked_sliding`](Self::checked_sliding).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_sliding`")]
    pub fn try_sliding(size: Duration, slide: Duration) -> Result<Self, ConfigError> {
        Self::checked_sliding(size, slide)
    }

    /// The window size.
    ///
    /// ```
    /// use millrace::wrappers::WindowSpec;
    /// use std::time::Duration;
    ///
    /// assert_eq!(WindowSpec::tumbling(Duration::from_secs(5)).size(), Duration::from_secs(5));
    /// ```
    pub fn size(&self) -> Duration {
        Duration::from_nanos(self.size)
    }

    /// The distance between window starts (`size` for tumbling windows).
    ///
    /// ```
    /// use millrace::wrappers::WindowSpec;
    /// use std::time::Duration;
    ///
    /// assert_eq!(WindowSpec::tumbling(Duration::from_secs(5)).slide(), Duration::from_secs(5));
    /// ```
    pub fn slide(&self) -> Duration {
        Duration::from_nanos(self.slide)
    }

    /// The windows `j` containing offset `t` (nanoseconds from the origin).
    fn windows_of(&self, t: u64) -> std::ops::RangeInclusive<u64> {
        let first = if t >= self.size {
            (t - self.size) / self.slide + 1
        } else {
            0
        };
        first..=t / self.slide
    }

    /// Window `j`'s `[start, end)` in nanoseconds from the origin.
    fn bounds(&self, j: u64) -> (u64, u64) {
        let start = j.saturating_mul(self.slide);
        (start, start.saturating_add(self.size))
    }
}

/// One key's aggregate over one window: what a window stage yields when the window closes.
///
/// `T` is the time type: [`tokio::time::Instant`] for processing time, [`Duration`] (since the
/// event-time epoch) for event time.
///
/// ```
/// use millrace::wrappers::Aggregate;
/// use std::time::Duration;
///
/// let a = Aggregate { key: "north", start: Duration::ZERO, end: Duration::from_secs(60), value: 3 };
/// assert_eq!(a.end - a.start, Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aggregate<K, A, T> {
    /// The key.
    pub key: K,
    /// The window's start (inclusive).
    pub start: T,
    /// The window's end (exclusive).
    pub end: T,
    /// The folded accumulator.
    pub value: A,
}

/// The open windows' accumulators, keyed by window index, each in its keys' first-seen order.
#[derive(Debug)]
struct Panes<K, A> {
    panes: std::collections::BTreeMap<u64, Pane<K, A>>,
}

#[derive(Debug)]
struct Pane<K, A> {
    index: HashMap<K, usize>,
    aggs: Vec<(K, A)>,
}

impl<K: Hash + Eq + Clone, A> Panes<K, A> {
    fn new() -> Self {
        Panes {
            panes: std::collections::BTreeMap::new(),
        }
    }

    /// The smallest open window index.
    fn first(&self) -> Option<u64> {
        self.panes.keys().next().copied()
    }

    /// Folds `item` into windows `js` under `key`.
    fn fold<T>(
        &mut self,
        js: std::ops::RangeInclusive<u64>,
        key: K,
        item: &T,
        init: &mut impl FnMut() -> A,
        fold: &mut impl FnMut(&mut A, &T),
    ) {
        for j in js {
            let pane = self.panes.entry(j).or_insert_with(|| Pane {
                index: HashMap::new(),
                aggs: Vec::new(),
            });
            let at = match pane.index.get(&key) {
                Some(&at) => at,
                None => {
                    pane.index.insert(key.clone(), pane.aggs.len());
                    pane.aggs.push((key.clone(), init()));
                    pane.aggs.len() - 1
                }
            };
            fold(&mut pane.aggs[at].1, item);
        }
    }

    /// Removes window `j` and returns its aggregates in first-seen key order.
    fn take(&mut self, j: u64) -> Vec<(K, A)> {
        self.panes.remove(&j).map(|p| p.aggs).unwrap_or_default()
    }

    /// Keys held across the open windows.
    fn keys(&self) -> usize {
        self.panes.values().map(|p| p.aggs.len()).sum()
    }
}
