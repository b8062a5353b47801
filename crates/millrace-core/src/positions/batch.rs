//! [`TrackedBatch`]: what a sink commits in one transaction.

use super::{Entry, Positioned};

/// An entry that failed for good, with the position it was read at and why.
///
/// ```
/// use millrace::positions::DeadLetter;
///
/// let d = DeadLetter { position: 12u64, reason: "line 12 is not JSON".to_owned() };
/// assert_eq!(d.position, 12);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter<P> {
    /// Where the entry was read (after an unordered stage: the low-water mark when it
    /// completed; put an id in the reason if you need the exact one there).
    pub position: P,
    /// Why it failed, in words.
    pub reason: String,
}

/// A batch of tracked entries: the items to commit (with their positions), the dead letters,
/// the count of filtered entries, and the **commit position**, up to which every entry of the
/// source is in this batch or an earlier one. Never empty (at least one entry of some kind).
///
/// A sink commits the items, the dead letters and the position in one transaction; after a
/// crash the source resumes after the committed position, so nothing is lost or repeated.
///
/// ```
/// use millrace::positions::{Positioned, TrackedBatch};
///
/// let batch = TrackedBatch::from_entries(vec![
///     Positioned::item(1u64, "a"),
///     Positioned::dead(2, "broken"),
///     Positioned::filtered(3),
///     Positioned::item(4, "d"),
/// ]).unwrap();
/// assert_eq!(batch.items(), ["a", "d"]);
/// assert_eq!(batch.positions(), [1, 4]);
/// assert_eq!(batch.dead_letters()[0].position, 2);
/// assert_eq!((batch.filtered(), batch.entries(), *batch.position()), (1, 4, 4));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedBatch<P, T> {
    items: Vec<T>,
    positions: Vec<P>,
    dead_letters: Vec<DeadLetter<P>>,
    filtered: u64,
    position: P,
}

impl<P: Clone, T> TrackedBatch<P, T> {
    /// Gathers entries (in source order, or low-water-mark order after an unordered stage)
    /// into a batch whose position is the last entry's. `None` if `entries` is empty.
    ///
    /// ```
    /// use millrace::positions::{Positioned, TrackedBatch};
    ///
    /// assert!(TrackedBatch::<u64, u8>::from_entries(Vec::new()).is_none());
    /// let b = TrackedBatch::from_entries(vec![Positioned::item(7u64, 1u8)]).unwrap();
    /// assert_eq!(*b.position(), 7);
    /// ```
    pub fn from_entries(entries: Vec<Positioned<P, T>>) -> Option<Self> {
        #[derive(Clone, Copy)]
        enum Last {
            Item,
            Dead,
            Filtered,
        }
        let mut items = Vec::with_capacity(entries.len());
        let mut positions = Vec::with_capacity(entries.len());
        let mut dead_letters = Vec::new();
        let mut filtered = 0;
        let mut last_filtered = None;
        let mut last = None;
        for Positioned { position, entry } in entries {
            match entry {
                Entry::Item(item) => {
                    items.push(item);
                    positions.push(position);
                    last = Some(Last::Item);
                }
                Entry::Filtered => {
                    filtered += 1;
                    last_filtered = Some(position);
                    last = Some(Last::Filtered);
                }
                Entry::Dead(reason) => {
                    dead_letters.push(DeadLetter { position, reason });
                    last = Some(Last::Dead);
                }
            }
        }
        // One clone per batch: the commit position is the last entry's.
        let position = match last? {
            Last::Item => positions.last()?.clone(),
            Last::Dead => dead_letters.last()?.position.clone(),
            Last::Filtered => last_filtered?,
        };
        Some(TrackedBatch {
            items,
            positions,
            dead_letters,
            filtered,
            position,
        })
    }

    /// Applies `f` to every item, keeping positions, dead letters and the commit position.
    ///
    /// ```
    /// use millrace::positions::{Positioned, TrackedBatch};
    ///
    /// let b = TrackedBatch::from_entries(vec![Positioned::item(1u64, 2), Positioned::item(2, 3)]).unwrap();
    /// assert_eq!(b.map(|x| x * 10).items(), [20, 30]);
    /// ```
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> TrackedBatch<P, U> {
        TrackedBatch {
            items: self.items.into_iter().map(f).collect(),
            positions: self.positions,
            dead_letters: self.dead_letters,
            filtered: self.filtered,
            position: self.position,
        }
    }

    /// Applies `f` to every item; an item for which `f` returns `Err(reason)` becomes a dead
    /// letter at its position (e.g. a lookup that found nothing). Order and the commit
    /// position are kept.
    ///
    /// ```
    /// use millrace::positions::{Positioned, TrackedBatch};
    ///
    /// let b = TrackedBatch::from_entries(vec![Positioned::item(1u64, 2), Positioned::item(2, 0)]).unwrap();
    /// let b = b.map_or_dead_letter(|x| if x == 0 { Err("zero".to_owned()) } else { Ok(10 / x) });
    /// assert_eq!(b.items(), [5]);
    /// assert_eq!((b.dead_letters()[0].position, b.dead_letters()[0].reason.as_str()), (2, "zero"));
    /// assert_eq!(*b.position(), 2);
    /// ```
    pub fn map_or_dead_letter<U>(
        self,
        mut f: impl FnMut(T) -> Result<U, String>,
    ) -> TrackedBatch<P, U> {
        let mut items = Vec::with_capacity(self.items.len());
        let mut positions = Vec::with_capacity(self.items.len());
        let mut dead_letters = self.dead_letters;
        for (item, position) in self.items.into_iter().zip(self.positions) {
            match f(item) {
                Ok(u) => {
                    items.push(u);
                    positions.push(position);
                }
                Err(reason) => dead_letters.push(DeadLetter { position, reason }),
            }
        }
        TrackedBatch {
            items,
            positions,
            dead_letters,
            filtered: self.filtered,
            position: self.position,
        }
    }
}

impl<P, T> TrackedBatch<P, T> {
    /// The items to commit, in order.
    ///
    /// ```
    /// use millrace::positions::{Positioned, TrackedBatch};
    ///
    /// let b = TrackedBatch::from_entries(vec![Positioned::item(1u64, 'a')]).unwrap();
    /// assert_eq!(b.items(), ['a']);
    /// ```
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// The position of each item (same length and order as [`items`](Self::items)).
    ///
    /// ```
    /// use millrace::positions::{Positioned, TrackedBatch};
    ///
    /// let b = TrackedBatch::from_entries(vec![Positioned::item(5u64, 'a')]).unwrap();
    /// assert_eq!(b.positions(), [5]);
    /// ```
    pub fn positions(&self) -> &[P] {
        &self.positions
    }

    /// The entries that failed for good, with their positions and reasons.
    ///
    /// ```
    /// use millrace::positions::{Positioned, TrackedBatch};
    ///
    /// let b = TrackedBatch::from_entries(vec![Positioned::<u64, ()>::dead(3, "bad")]).unwrap();
    /// assert_eq!(b.dead_letters()[0].reason, "bad");
    /// ```
    pub fn dead_letters(&self) -> &[DeadLetter<P>] {
        &self.dead_letters
    }

    /// How many entries of this batch were filtered out.
    ///
    /// ```
    /// use millrace::positions::{Positioned, TrackedBatch};
    ///
    /// let b = TrackedBatch::from_entries(vec![Positioned::<u64, ()>::filtered(3)]).unwrap();
    /// assert_eq!(b.filtered(), 1);
    /// ```
    pub fn filtered(&self) -> u64 {
        self.filtered
    }

    /// All entries: items, dead letters and filtered ones.
    ///
    /// ```
    /// use millrace::positions::{Positioned, TrackedBatch};
    ///
    /// let b = TrackedBatch::from_entries(vec![Positioned::item(1u64, ()), Positioned::filtered(2)]).unwrap();
    /// assert_eq!(b.entries(), 2);
    /// ```
    pub fn entries(&self) -> u64 {
        (self.items.len() + self.dead_letters.len()) as u64 + self.filtered
    }

    /// The commit position: every entry of the source up to it is in this batch or an
    /// earlier one. A sink stores it with the batch; a restart resumes after it.
    ///
    /// ```
    /// use millrace::positions::{Positioned, TrackedBatch};
    ///
    /// let b = TrackedBatch::from_entries(vec![Positioned::item(1u64, ()), Positioned::filtered(2)]).unwrap();
    /// assert_eq!(*b.position(), 2);
    /// ```
    pub fn position(&self) -> &P {
        &self.position
    }

    /// The items, positions, dead letters, filtered count and commit position, by value.
    ///
    /// ```
    /// use millrace::positions::{Positioned, TrackedBatch};
    ///
    /// let b = TrackedBatch::from_entries(vec![Positioned::item(1u64, 'x')]).unwrap();
    /// let (items, positions, dead, filtered, at) = b.into_parts();
    /// assert_eq!((items, positions, dead.len(), filtered, at), (vec!['x'], vec![1], 0, 0, 1));
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn into_parts(self) -> (Vec<T>, Vec<P>, Vec<DeadLetter<P>>, u64, P) {
        (
            self.items,
            self.positions,
            self.dead_letters,
            self.filtered,
            self.position,
        )
    }
}
