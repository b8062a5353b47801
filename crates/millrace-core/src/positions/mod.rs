//! Source positions that travel with items, for exactly-once delivery at the edges.
//!
//! A pipeline that writes to the world (a database, a file, another system) promises **every
//! item read is committed exactly once, dead-lettered with its reason, or filtered with a
//! count** — across crashes, re-runs with other batch sizes or timings, and concurrent runs.
//! The core keeps that promise inside the pipeline; at the edges it needs the *source
//! position* of every item, so that a sink can commit the position in the same transaction as
//! the data and a restart can seek the source to it. This is how Kafka consumers, Flink's
//! two-phase-commit sinks and Alpakka's committable messages do it.
//!
//! # The pieces
//!
//! - [`Positioned`]: an [`Entry`] (an item, or what became of it: filtered, dead-lettered)
//!   beside the position it was read at.
//! - [`Tracked`]: a stream of `Positioned` entries with an [`Accounting`] handle. Its methods
//!   (`map`, `filter`, `validate`, `dead_letter_errors`, `map_concurrent`,
//!   `map_concurrent_unordered`, `batch`, `batch_within`, `prefetch`, `stop_on`, and
//!   [`via`](Tracked::via) for any other stage) work on the payload and keep the position
//!   beside it: no hand-written threading.
//! - [`TrackedBatch`]: what a sink commits: the items, the dead letters with their positions
//!   and reasons, the number of filtered entries, and the **commit position**, up to which
//!   every entry is done.
//! - [`Accounting`]: `read = committed + dead-lettered + filtered` for a run, checked at the
//!   end ([`Accounting::check`]).
//!
//! Sources report positions (`millrace::adapters::fs::lines(path).tracked()`, the testing
//! kit's [`testing::tracked_source`](crate::testing::tracked_source), or [`track`] over any
//! stream of `(position, item)` pairs); sinks commit them (`millrace::adapters::sql::BatchInsert`
//! commits rows, dead letters and the position in one transaction, and says where to resume).
//!
//! # What each stage does with the position
//!
//! - One-to-one stages (`map`, `validate`, ordered `map_concurrent`) keep it.
//! - Filtered entries and dead letters are **not removed**: they flow on as markers, so the
//!   commit position passes over them (a restart does not re-read them forever) and they are
//!   counted.
//! - `map_concurrent_unordered` yields entries in completion order; the position it attaches
//!   is the **low-water mark**: the position of the last entry of the contiguous done prefix
//!   of its input (an entry still in flight holds it back), as Kafka consumers commit
//!   out-of-order work. A position never moves backwards.
//! - `batch`/`batch_within` gather entries into a [`TrackedBatch`] whose position is the last
//!   entry's: everything up to it is in this batch or an earlier one.
//!
//! The guarantee's limits: positions must be deterministic for a source (the same input read
//! from the same position yields the same entries), and a stage applied with
//! [`via`](Tracked::via) must neither drop nor reorder entries (use the `Tracked` methods for
//! that: the accounting check catches a stage that loses entries).
//!
//! # Examples
//!
//! ```
//! use millrace::positions::{self, TrackedBatch};
//! use futures::{stream, StreamExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Positions 1..=6; resume after position 2 (as a sink would tell us).
//! let source = stream::iter(1..=6u64).map(|n| (n, n * 10)).skip(2);
//! let tracked = positions::track(source);
//! let accounting = tracked.accounting();
//! let batches: Vec<TrackedBatch<u64, u64>> = tracked
//!     .filter(|x| *x != 40)                  // filtered, still counted and passed over
//!     .validate(|x| if *x == 60 { Err("sixty") } else { Ok(()) }) // a dead letter
//!     .map(|x| x + 1)
//!     .batch(2)
//!     .collect()
//!     .await;
//! assert_eq!(batches.len(), 2);
//! assert_eq!((batches[0].items(), batches[0].filtered(), *batches[0].position()), (&[31][..], 1, 4));
//! assert_eq!(batches[1].dead_letters()[0].reason, "sixty");
//! assert_eq!(*batches[1].position(), 6);
//! for batch in &batches {
//!     accounting.record_commit(batch); // what a sink does once the batch is committed
//! }
//! assert_eq!(accounting.check().unwrap().to_string(), "read 4 = committed 2 + dead-lettered 1 + filtered 1");
//! # }
//! ```

mod accounting;
mod batch;
mod tracked;
mod unordered;

pub use self::accounting::{Accounting, Counts, Unbalanced};
pub use self::batch::{DeadLetter, TrackedBatch};
pub use self::tracked::{CountRead, Tracked, track};
pub use self::unordered::LowWaterMark;

/// What became of the item read at a position.
///
/// ```
/// use millrace::positions::Entry;
///
/// let e: Entry<u32> = Entry::Item(7);
/// assert_eq!(e.item(), Some(&7));
/// assert!(Entry::<u32>::Filtered.is_done());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<T> {
    /// Still an item: it will be committed by a sink (or become one of the others).
    Item(T),
    /// Filtered out on purpose: done, counted, never committed.
    Filtered,
    /// Failed for good: done, to be written to a dead-letter sink with this reason.
    Dead(String),
}

impl<T> Entry<T> {
    /// The item, if this entry still is one.
    ///
    /// ```
    /// use millrace::positions::Entry;
    ///
    /// assert_eq!(Entry::Item("a").item(), Some(&"a"));
    /// assert_eq!(Entry::<&str>::Dead("bad".into()).item(), None);
    /// ```
    pub fn item(&self) -> Option<&T> {
        match self {
            Entry::Item(t) => Some(t),
            _ => None,
        }
    }

    /// Whether the entry is done without a commit (filtered or dead-lettered).
    ///
    /// ```
    /// use millrace::positions::Entry;
    ///
    /// assert!(!Entry::Item(1).is_done());
    /// assert!(Entry::<u8>::Dead("x".into()).is_done());
    /// ```
    pub fn is_done(&self) -> bool {
        !matches!(self, Entry::Item(_))
    }

    /// Applies `f` to the item; markers pass through.
    ///
    /// ```
    /// use millrace::positions::Entry;
    ///
    /// assert_eq!(Entry::Item(2).map(|x| x * 3), Entry::Item(6));
    /// assert_eq!(Entry::<i32>::Filtered.map(|x| x * 3), Entry::Filtered);
    /// ```
    #[inline]
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Entry<U> {
        match self {
            Entry::Item(t) => Entry::Item(f(t)),
            Entry::Filtered => Entry::Filtered,
            Entry::Dead(reason) => Entry::Dead(reason),
        }
    }
}

/// An [`Entry`] beside the source position it was read at (after an unordered stage: the
/// low-water mark, see the [module docs](self)).
///
/// ```
/// use millrace::positions::{Entry, Positioned};
///
/// let p = Positioned::item(3u64, "three");
/// assert_eq!((p.position, p.entry), (3, Entry::Item("three")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Positioned<P, T> {
    /// Where the entry was read (the position a source can seek to, to continue after it).
    pub position: P,
    /// The item, or what became of it.
    pub entry: Entry<T>,
}

impl<P, T> Positioned<P, T> {
    /// An item read at `position`.
    ///
    /// ```
    /// use millrace::positions::Positioned;
    ///
    /// assert_eq!(Positioned::item(1u64, 'x').entry.item(), Some(&'x'));
    /// ```
    #[inline]
    pub fn item(position: P, item: T) -> Self {
        Positioned {
            position,
            entry: Entry::Item(item),
        }
    }

    /// A filtered entry at `position` (done, counted, not committed).
    ///
    /// ```
    /// use millrace::positions::{Entry, Positioned};
    ///
    /// assert_eq!(Positioned::<u64, ()>::filtered(4).entry, Entry::Filtered);
    /// ```
    #[inline]
    pub fn filtered(position: P) -> Self {
        Positioned {
            position,
            entry: Entry::Filtered,
        }
    }

    /// A dead letter at `position` with its reason.
    ///
    /// ```
    /// use millrace::positions::{Entry, Positioned};
    ///
    /// let p = Positioned::<u64, ()>::dead(9, "not JSON");
    /// assert_eq!(p.entry, Entry::Dead("not JSON".into()));
    /// ```
    pub fn dead(position: P, reason: impl Into<String>) -> Self {
        Positioned {
            position,
            entry: Entry::Dead(reason.into()),
        }
    }
}

/// A source position a sink can store and a source can resume from: ordered (later entries
/// of one source have greater positions) and written as text in the sink's offsets table.
///
/// ```
/// use millrace::positions::Position;
///
/// assert_eq!(42u64.to_text(), "42");
/// assert_eq!(u64::from_text("42"), Some(42));
/// assert_eq!(u64::from_text("forty-two"), None);
/// ```
pub trait Position: Clone + PartialOrd + std::fmt::Debug + Send + Sync + 'static {
    /// The position as text (stored by sinks; must round-trip through
    /// [`from_text`](Self::from_text)).
    ///
    /// ```
    /// use millrace::positions::Position;
    ///
    /// assert_eq!((-7i64).to_text(), "-7");
    /// ```
    fn to_text(&self) -> String;

    /// Reads a position written by [`to_text`](Self::to_text); `None` if `text` is not one.
    ///
    /// ```
    /// use millrace::positions::Position;
    ///
    /// assert_eq!(String::from_text("1526-0"), Some("1526-0".to_owned()));
    /// assert_eq!(u32::from_text("-1"), None);
    /// ```
    fn from_text(text: &str) -> Option<Self>;
}

macro_rules! position_by_parse {
    ($($t:ty),*) => {$(
        impl Position for $t {
            fn to_text(&self) -> String {
                self.to_string()
            }

            fn from_text(text: &str) -> Option<Self> {
                text.parse().ok()
            }
        }
    )*};
}

position_by_parse!(u64, i64, u32, i32, String);
