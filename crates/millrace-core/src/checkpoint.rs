//! Checkpoints: what a stream has delivered so far, handed to restart factories and fallbacks
//! so they resume where the consumer stopped instead of from the beginning.
//!
//! The default checkpoint is [`Checkpoint`]: how many items were delivered and a clone of the
//! last one. Recording it clones every delivered item; for heavy items (or when a cursor is
//! what the source needs) build a [`CustomCheckpoint`] with [`custom_checkpoint`], which keeps only
//! what its `update` function writes. Either way memory stays O(1): a checkpointer never keeps
//! every item.

use std::fmt;

/// Records what a stream has delivered, so a restart or a fallback can resume after it.
///
/// Implemented by the default [`Checkpoint`] and by [`CustomCheckpoint`] (built with
/// [`custom_checkpoint`]).
///
/// ```
/// use millrace::prelude::*;
///
/// let mut cp = Checkpoint::<&str>::default();
/// cp.record(&"a");
/// cp.record(&"b");
/// assert_eq!(cp.checkpoint(), &Checkpoint { delivered: 2, last: Some("b") });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot record items of type `{T}`",
    note = "the default `Checkpoint<T>` needs `T: Clone`; for other items use `custom_checkpoint(init, |state, item| ...)`"
)]
pub trait Checkpointer<T> {
    /// What restart factories and fallbacks receive.
    type Checkpoint;

    /// Records one item that was delivered to the consumer.
    ///
    /// ```
    /// use millrace::{Checkpoint, Checkpointer};
    ///
    /// let mut cp = Checkpoint::default();
    /// cp.record(&"a");
    /// cp.record(&"b");
    /// assert_eq!((cp.delivered, cp.last), (2, Some("b")));
    /// ```
    fn record(&mut self, item: &T);

    /// The checkpoint as of the last recorded item.
    ///
    /// ```
    /// use millrace::{custom_checkpoint, Checkpointer};
    ///
    /// let mut max_id = custom_checkpoint(0u64, |max: &mut u64, id: &u64| *max = (*max).max(*id));
    /// max_id.record(&7);
    /// max_id.record(&3);
    /// assert_eq!(*max_id.checkpoint(), 7);
    /// ```
    fn checkpoint(&self) -> &Self::Checkpoint;
}

/// The default checkpoint: how many items were delivered and the last one.
///
/// # Cost
///
/// Recording clones every delivered item into `last` (reusing its allocation through
/// [`Clone::clone_from`]), so it needs `T: Clone`. That is free for small `Copy` items; for
/// heavy items record only what you need with [`custom_checkpoint`].
///
/// ```
/// use millrace::prelude::*;
///
/// let cp = Checkpoint { delivered: 3, last: Some(30u32) };
/// // A restart factory would resume at item #3, after 30.
/// assert_eq!(cp.delivered, 3);
/// assert_eq!(Checkpoint::<u32>::default(), Checkpoint { delivered: 0, last: None });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checkpoint<T> {
    /// How many items were delivered to the consumer so far.
    pub delivered: u64,
    /// The last delivered item, if any.
    pub last: Option<T>,
}

impl<T> Default for Checkpoint<T> {
    fn default() -> Self {
        Checkpoint {
            delivered: 0,
            last: None,
        }
    }
}

impl<T: Clone> Checkpointer<T> for Checkpoint<T> {
    type Checkpoint = Checkpoint<T>;

    #[inline]
    fn record(&mut self, item: &T) {
        self.delivered += 1;
        match &mut self.last {
            Some(last) => last.clone_from(item),
            None => self.last = Some(item.clone()),
        }
    }

    #[inline]
    fn checkpoint(&self) -> &Checkpoint<T> {
        self
    }
}

/// A user-defined checkpoint: a state `C` updated by `U` for every delivered item.
///
/// Built with [`custom_checkpoint`]; see there.
///
/// ```
/// use millrace::{custom_checkpoint, Checkpointer};
/// use millrace::checkpoint::CustomCheckpoint;
///
/// let mut cursor: CustomCheckpoint<String, _> =
///     custom_checkpoint(String::new(), |c: &mut String, id: &&str| *c = id.to_string());
/// cursor.record(&"row-42");
/// assert_eq!(cursor.checkpoint(), "row-42");
/// ```
#[derive(Clone)]
pub struct CustomCheckpoint<C, U> {
    state: C,
    update: U,
}

impl<C: fmt::Debug, U> fmt::Debug for CustomCheckpoint<C, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomCheckpoint")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Builds a custom checkpoint: `init` is the state before any item, `update(&mut state, &item)`
/// runs for every delivered item.
///
/// Use it when the source resumes from a cursor (an offset, the last id, a page token) or when
/// items are too heavy to clone into the default [`Checkpoint`]. Memory is whatever `C` holds;
/// keep it O(1).
///
/// Pass it to [`CustomCheckpoint::restartable`] for a retried source, or use the
/// [`checkpoint_with`](crate::PipelineExt::checkpoint_with) method before
/// [`recover_with`](crate::wrappers::CheckpointWith::recover_with).
///
/// ```
/// use millrace::prelude::*;
///
/// // Remember only the id of the last row, not the row.
/// let mut cp = custom_checkpoint(None::<u64>, |last_id, row: &(u64, String)| *last_id = Some(row.0));
/// cp.record(&(7, "seven".to_owned()));
/// assert_eq!(cp.checkpoint(), &Some(7));
/// ```
pub fn custom_checkpoint<C, U, T>(init: C, update: U) -> CustomCheckpoint<C, U>
where
    U: FnMut(&mut C, &T),
{
    CustomCheckpoint {
        state: init,
        update,
    }
}

/// Renamed [`custom_checkpoint`]: `checkpoint_with` names only the
/// [`PipelineExt::checkpoint_with`](crate::PipelineExt::checkpoint_with) method and its
/// [`CheckpointWith`](crate::wrappers::CheckpointWith) wrapper.
#[doc(hidden)]
#[deprecated(since = "0.2.0", note = "use `custom_checkpoint`")]
pub fn checkpoint_with<C, U, T>(init: C, update: U) -> CustomCheckpoint<C, U>
where
    U: FnMut(&mut C, &T),
{
    custom_checkpoint(init, update)
}

impl<C, U> CustomCheckpoint<C, U> {
    /// The current state.
    ///
    /// ```
    /// use millrace::prelude::*;
    ///
    /// let cp = custom_checkpoint(5u64, |n, _: &u8| *n += 1);
    /// assert_eq!(*cp.get(), 5);
    /// ```
    pub fn get(&self) -> &C {
        &self.state
    }

    /// Returns the state, dropping the update function.
    ///
    /// ```
    /// use millrace::prelude::*;
    ///
    /// let mut cp = custom_checkpoint(0u64, |n, x: &u64| *n += x);
    /// cp.record(&4);
    /// assert_eq!(cp.into_inner(), 4);
    /// ```
    pub fn into_inner(self) -> C {
        self.state
    }
}

impl<T, C, U> Checkpointer<T> for CustomCheckpoint<C, U>
where
    U: FnMut(&mut C, &T),
{
    type Checkpoint = C;

    #[inline]
    fn record(&mut self, item: &T) {
        (self.update)(&mut self.state, item)
    }

    #[inline]
    fn checkpoint(&self) -> &C {
        &self.state
    }
}
