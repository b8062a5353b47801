//! The gathering that [`Batch`](super::Batch) and [`TryBatch`](super::TryBatch) share: the
//! checked limits of a batch, the batch in progress and its timer.

use std::fmt;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::Sleep;

use super::timeout_each::{deadline_after, nonzero_duration};
use crate::error::{ConfigError, nonzero};

/// The largest capacity reserved up front for one batch. A batch of a larger size grows past
/// it by doubling only if that many items actually arrive, so `batch(1_000_000)` over a short
/// stream does not reserve megabytes.
const MAX_PREALLOC: usize = 1024;

/// How big and how old a batch may get, checked once by the constructors.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    size: NonZeroUsize,
    within: Option<Duration>,
}

impl Limits {
    /// Batches of `size` items; `stage` names the method in the error.
    pub(super) fn size(stage: &'static str, size: usize) -> Result<Self, ConfigError> {
        Ok(Limits {
            size: nonzero(stage, "size", size)?,
            within: None,
        })
    }

    /// Batches of at most `size` items, flushed `within` after their first. A zero `within`
    /// is refused: "whatever is ready right now" is what futures' `ready_chunks` already does.
    pub(super) fn within(
        stage: &'static str,
        size: usize,
        within: Duration,
    ) -> Result<Self, ConfigError> {
        Ok(Limits {
            size: nonzero(stage, "size", size)?,
            within: Some(nonzero_duration(stage, "within", within)?),
        })
    }
}

/// The batch in progress.
pub(super) struct Batcher<T> {
    items: Vec<T>,
    limits: Limits,
    // One timer per wrapper, created at the first batch that needs it and re-armed with
    // `reset` for every later batch. Boxed (once) so that the wrappers are `Unpin` when their
    // upstream is.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<T> Batcher<T> {
    pub(super) fn new(limits: Limits) -> Self {
        Batcher {
            items: Vec::new(),
            limits,
            sleep: None,
        }
    }

    /// Adds `item`; returns the batch once it holds `size` items.
    #[inline]
    pub(super) fn push(&mut self, item: T) -> Option<Vec<T>> {
        let size = self.limits.size.get();
        if self.items.is_empty() {
            // First item of a batch: reserve once, start the clock.
            self.items.reserve_exact(size.min(MAX_PREALLOC));
            if let Some(within) = self.limits.within {
                let deadline = deadline_after(within);
                match &mut self.sleep {
                    Some(sleep) => sleep.as_mut().reset(deadline),
                    None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
            }
        }
        self.items.push(item);
        (self.items.len() >= size).then(|| self.take())
    }

    /// The batch so far, if it is not empty (the tail when the upstream ends, or what came
    /// before an error).
    pub(super) fn flush(&mut self) -> Option<Vec<T>> {
        (!self.items.is_empty()).then(|| self.take())
    }

    /// While the upstream is pending: the batch, if its `within` has passed.
    pub(super) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Option<Vec<T>> {
        if !self.items.is_empty()
            && let Some(sleep) = self.sleep.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            return Some(self.take());
        }
        None
    }

    fn take(&mut self) -> Vec<T> {
        std::mem::take(&mut self.items)
    }

    /// Items in the batch in progress.
    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    pub(super) fn size(&self) -> usize {
        self.limits.size.get()
    }

    pub(super) fn has_timer(&self) -> bool {
        self.limits.within.is_some()
    }
}

impl<T: fmt::Debug> fmt::Debug for Batcher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batcher")
            .field("items", &self.items)
            .field("size", &self.limits.size)
            .field("within", &self.limits.within)
            .finish_non_exhaustive()
    }
}
