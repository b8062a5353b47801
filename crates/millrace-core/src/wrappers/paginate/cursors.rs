//! Loop protection: [`RepeatedCursor`] and the memory of recent cursors behind it.

use std::collections::VecDeque;
use std::fmt;

/// How many of the most recent page cursors a [`Paginate`](super::Paginate) stream remembers by default to
/// detect a server that repeats itself (see [`Paginate::remember_cursors`](super::Paginate::remember_cursors)).
pub const REMEMBERED_CURSORS: usize = 32;

/// A page named as its next page a cursor that was already fetched (A→A, or A→B→A):
/// following it would fetch the same pages forever, so [`Paginate`](super::Paginate) stopped there.
///
/// The stream ends after the items of the page that sent the cursor. By default the stop is
/// reported as a `tracing` error and kept in [`Paginate::repeated_cursor`](super::Paginate::repeated_cursor); with
/// [`Paginate::on_repeated_cursor`](super::Paginate::on_repeated_cursor) it is also yielded as the stream's last item, converted
/// into the stream's error type.
///
/// ```
/// use millrace::wrappers::RepeatedCursor;
///
/// let e = RepeatedCursor { cursor: "A", from: "B", pages: 2 };
/// assert_eq!(
///     e.to_string(),
///     "page \"B\" named \"A\" as its next page, which was already fetched (after 2 pages): \
///      following it would loop forever, so pagination stopped; check how the server builds its \
///      cursors, or allow repeats with `allow_repeated_cursors()`"
/// );
/// let as_string: String = e.into();
/// assert!(as_string.starts_with("page \"B\" named \"A\""));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepeatedCursor<C> {
    /// The cursor that was sent again.
    pub cursor: C,
    /// The cursor of the page that sent it.
    pub from: C,
    /// How many pages were fetched before the stop.
    pub pages: u64,
}

impl<C: fmt::Debug> fmt::Display for RepeatedCursor<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "page {:?} named {:?} as its next page, which was already fetched (after {} pages): \
             following it would loop forever, so pagination stopped; check how the server builds \
             its cursors, or allow repeats with `allow_repeated_cursors()`",
            self.from, self.cursor, self.pages
        )
    }
}

impl<C: fmt::Debug> std::error::Error for RepeatedCursor<C> {}

/// The message of the error, for streams whose error type is `String`:
/// `.on_repeated_cursor(String::from)`. (A user crate cannot write this impl.)
impl<C: fmt::Debug> From<RepeatedCursor<C>> for String {
    fn from(e: RepeatedCursor<C>) -> String {
        e.to_string()
    }
}

/// What to do about repeated cursors: the memory of recent cursors and the reaction.
pub(super) struct CursorGuard<C, E> {
    /// The most recently fetched cursors, oldest first; at most `capacity`.
    pub(super) seen: VecDeque<C>,
    /// 0: repeats are allowed (no memory kept).
    pub(super) capacity: usize,
    /// Pages whose fetch was started.
    pub(super) pages: u64,
    /// Turns the stop into the stream's last item.
    pub(super) to_error: Option<fn(RepeatedCursor<C>) -> E>,
    /// The stop, once detected.
    pub(super) repeated: Option<RepeatedCursor<C>>,
    /// The stop still has to be yielded (with `to_error`) when the items before it are out.
    pub(super) pending: bool,
}

impl<C: Clone + PartialEq, E> CursorGuard<C, E> {
    /// Records a fetch of `cursor`.
    pub(super) fn fetching(&mut self, cursor: &C) {
        self.pages += 1;
        if self.capacity == 0 {
            return;
        }
        if self.seen.len() == self.capacity {
            self.seen.pop_front();
        }
        self.seen.push_back(cursor.clone());
    }

    /// Whether `next`, named by the page at `from`, may be followed; records the stop if not.
    pub(super) fn allows(&mut self, next: &C, from: &C) -> bool {
        if self.capacity == 0 || !self.seen.contains(next) {
            return true;
        }
        let stop = RepeatedCursor {
            cursor: next.clone(),
            from: from.clone(),
            pages: self.pages,
        };
        tracing::error!(
            pages = self.pages,
            "millrace paginate: a page named an already fetched cursor as its next page; \
             pagination stopped instead of looping forever"
        );
        self.repeated = Some(stop);
        self.pending = self.to_error.is_some();
        false
    }

    /// The stop as an error item, once.
    pub(super) fn take_error(&mut self) -> Option<E> {
        if !std::mem::take(&mut self.pending) {
            return None;
        }
        let to_error = self.to_error?;
        self.repeated.clone().map(to_error)
    }
}
