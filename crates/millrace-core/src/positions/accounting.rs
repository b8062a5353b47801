//! [`Accounting`]: `read = committed + dead-lettered + filtered`, per run.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::TrackedBatch;

#[derive(Debug, Default)]
struct Atomics {
    read: AtomicU64,
    committed: AtomicU64,
    dead_lettered: AtomicU64,
    filtered: AtomicU64,
}

/// The delivery accounting of one run of a tracked pipeline: how many entries the source read,
/// and how many of them sinks committed, dead-lettered or counted as filtered.
///
/// Cloning shares the counts. The source side ([`Tracked`](super::Tracked)) counts reads; a sink
/// calls [`record_commit`](Self::record_commit) once a batch's transaction committed. At the end
/// of a run that drained (completed, or stopped gracefully), [`check`](Self::check) proves that
/// every entry read is done; a difference is reported as [`Unbalanced`].
///
/// ```
/// use millrace::positions::{Accounting, Positioned, TrackedBatch};
///
/// let accounting = Accounting::new();
/// accounting.add_read(3);
/// let batch = TrackedBatch::from_entries(vec![
///     Positioned::item(1u64, "a"),
///     Positioned::filtered(2),
/// ]).unwrap();
/// accounting.record_commit(&batch);
/// let err = accounting.check().unwrap_err();
/// assert_eq!(err.missing(), 1);
/// assert!(err.to_string().starts_with("delivery accounting does not balance: read 3"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Accounting(Arc<Atomics>);

impl Accounting {
    /// New, all counts zero.
    ///
    /// ```
    /// use millrace::positions::Accounting;
    ///
    /// assert_eq!(Accounting::new().read(), 0);
    /// ```
    pub fn new() -> Self {
        Accounting::default()
    }

    /// Adds `n` entries read by the source (the [`Tracked`](super::Tracked) source does this).
    ///
    /// ```
    /// use millrace::positions::Accounting;
    ///
    /// let a = Accounting::new();
    /// a.add_read(2);
    /// assert_eq!(a.read(), 2);
    /// ```
    #[inline]
    pub fn add_read(&self, n: u64) {
        self.0.read.fetch_add(n, Ordering::Relaxed);
    }

    /// Records a committed batch: its items as committed, its dead letters and filtered
    /// entries as done. Call it only after the batch's transaction committed.
    ///
    /// ```
    /// use millrace::positions::{Accounting, Positioned, TrackedBatch};
    ///
    /// let a = Accounting::new();
    /// let batch = TrackedBatch::from_entries(vec![Positioned::item(1u64, ()), Positioned::<u64, ()>::dead(2, "bad")]).unwrap();
    /// a.record_commit(&batch);
    /// assert_eq!((a.committed(), a.dead_lettered(), a.filtered()), (1, 1, 0));
    /// ```
    pub fn record_commit<P, T>(&self, batch: &TrackedBatch<P, T>) {
        self.record(
            batch.items().len() as u64,
            batch.dead_letters().len() as u64,
            batch.filtered(),
        );
    }

    /// Records `committed` items, `dead_lettered` dead letters and `filtered` entries as done
    /// (for sinks that commit something other than a [`TrackedBatch`]).
    ///
    /// ```
    /// use millrace::positions::Accounting;
    ///
    /// let a = Accounting::new();
    /// a.record(5, 1, 2);
    /// assert_eq!(a.done(), 8);
    /// ```
    pub fn record(&self, committed: u64, dead_lettered: u64, filtered: u64) {
        self.0.committed.fetch_add(committed, Ordering::Relaxed);
        self.0
            .dead_lettered
            .fetch_add(dead_lettered, Ordering::Relaxed);
        self.0.filtered.fetch_add(filtered, Ordering::Relaxed);
    }

    /// Entries read by the source in this run.
    ///
    /// ```
    /// assert_eq!(millrace::positions::Accounting::new().read(), 0);
    /// ```
    pub fn read(&self) -> u64 {
        self.0.read.load(Ordering::Relaxed)
    }

    /// Items committed by sinks in this run.
    ///
    /// ```
    /// assert_eq!(millrace::positions::Accounting::new().committed(), 0);
    /// ```
    pub fn committed(&self) -> u64 {
        self.0.committed.load(Ordering::Relaxed)
    }

    /// Entries written to a dead-letter sink in this run.
    ///
    /// ```
    /// assert_eq!(millrace::positions::Accounting::new().dead_lettered(), 0);
    /// ```
    pub fn dead_lettered(&self) -> u64 {
        self.0.dead_lettered.load(Ordering::Relaxed)
    }

    /// Entries filtered out (and counted) in this run.
    ///
    /// ```
    /// assert_eq!(millrace::positions::Accounting::new().filtered(), 0);
    /// ```
    pub fn filtered(&self) -> u64 {
        self.0.filtered.load(Ordering::Relaxed)
    }

    /// `committed + dead_lettered + filtered`.
    ///
    /// ```
    /// let a = millrace::positions::Accounting::new();
    /// a.record(1, 2, 3);
    /// assert_eq!(a.done(), 6);
    /// ```
    pub fn done(&self) -> u64 {
        self.committed() + self.dead_lettered() + self.filtered()
    }

    /// The counts now, as a [`Counts`] (whether or not they balance).
    ///
    /// ```
    /// let a = millrace::positions::Accounting::new();
    /// a.add_read(1);
    /// assert_eq!(a.counts().read, 1);
    /// ```
    pub fn counts(&self) -> Counts {
        Counts {
            read: self.read(),
            committed: self.committed(),
            dead_lettered: self.dead_lettered(),
            filtered: self.filtered(),
        }
    }

    /// Checks `read = committed + dead-lettered + filtered`.
    ///
    /// Call it when the run has drained (nothing in flight). On a stream that ended with an
    /// error, the entries read after the last commit are not done: the check fails, which is
    /// the truth (a re-run resumes from the committed position and does them).
    ///
    /// ```
    /// let a = millrace::positions::Accounting::new();
    /// a.add_read(3);
    /// a.record(2, 0, 1);
    /// assert_eq!(a.check().unwrap().to_string(), "read 3 = committed 2 + dead-lettered 0 + filtered 1");
    /// ```
    ///
    /// # Errors
    ///
    /// [`Unbalanced`] when the counts differ.
    pub fn check(&self) -> Result<Counts, Unbalanced> {
        let balance = self.counts();
        if balance.read == balance.done() {
            Ok(balance)
        } else {
            Err(Unbalanced(balance))
        }
    }
}

/// The delivery counts of a run: see [`Accounting`].
///
/// ```
/// use millrace::positions::Counts;
///
/// let b = Counts { read: 4, committed: 3, dead_lettered: 1, filtered: 0 };
/// assert_eq!(b.to_string(), "read 4 = committed 3 + dead-lettered 1 + filtered 0");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Entries read by the source.
    pub read: u64,
    /// Items committed.
    pub committed: u64,
    /// Entries dead-lettered.
    pub dead_lettered: u64,
    /// Entries filtered.
    pub filtered: u64,
}

impl Counts {
    /// `committed + dead_lettered + filtered`.
    ///
    /// ```
    /// use millrace::positions::Counts;
    ///
    /// assert_eq!(Counts { read: 0, committed: 1, dead_lettered: 2, filtered: 3 }.done(), 6);
    /// ```
    pub fn done(&self) -> u64 {
        self.committed + self.dead_lettered + self.filtered
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.read == self.done() { "=" } else { "≠" };
        write!(
            f,
            "read {} {op} committed {} + dead-lettered {} + filtered {}",
            self.read, self.committed, self.dead_lettered, self.filtered
        )
    }
}

/// The accounting of a run does not balance: some entries read are not done.
///
/// ```
/// use millrace::positions::Accounting;
///
/// let a = Accounting::new();
/// a.add_read(10);
/// a.record(7, 0, 0);
/// let err = a.check().unwrap_err();
/// assert_eq!(err.missing(), 3);
/// assert_eq!(
///     err.to_string(),
///     "delivery accounting does not balance: read 10 ≠ committed 7 + dead-lettered 0 + \
///      filtered 0 (3 entries not done); they were in flight when the run ended, or a stage \
///      dropped them: run again to resume from the last committed position, and apply \
///      filtering stages through `Tracked` so they are counted"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unbalanced(pub Counts);

impl Unbalanced {
    /// Entries read but not done (negative differences, which only a sink recording more than
    /// it was given can cause, count as their magnitude).
    ///
    /// ```
    /// use millrace::positions::{Counts, Unbalanced};
    ///
    /// assert_eq!(Unbalanced(Counts { read: 5, committed: 2, ..Counts::default() }).missing(), 3);
    /// ```
    pub fn missing(&self) -> u64 {
        self.0.read.abs_diff(self.0.done())
    }
}

impl fmt::Display for Unbalanced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "delivery accounting does not balance: {} ({} entries not done); they were in \
             flight when the run ended, or a stage dropped them: run again to resume from the \
             last committed position, and apply filtering stages through `Tracked` so they \
             are counted",
            self.0,
            self.missing()
        )
    }
}

impl std::error::Error for Unbalanced {}
