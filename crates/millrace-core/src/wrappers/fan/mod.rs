//! Fan-out and fan-in: one stream split into branches, branches merged back.
//!
//! * [`Broadcast`] — every branch sees every item ([`broadcast`](crate::PipelineExt::broadcast));
//! * [`Partition`] — each item to the branch the user's function picks
//!   ([`partition`](crate::PipelineExt::partition));
//! * [`Balance`] — each item to whichever branch asks first
//!   ([`balance`](crate::PipelineExt::balance));
//! * [`TryMerge`] — a merge that ends on the first error ([`try_merge`](crate::try_merge));
//! * [`MergeInOrder`] — a merge of indexed branches back into index order
//!   ([`merge_in_order`](crate::merge_in_order)).
//!
//! For the rest of fan-in use what `futures` already has: `stream::select` (two streams,
//! round-robin), `stream::select_all` (many), `StreamExt::zip` (pairs, in lock step):
//!
//! ```
//! use millrace::prelude::*;
//! use futures::{stream, StreamExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // zip: two broadcast branches, recombined item by item.
//! let [raw, scaled] = <[_; 2]>::try_from(stream::iter(1..=3).broadcast(2)).unwrap();
//! let pairs: Vec<(i32, i32)> = raw.zip(scaled.map(|x| x * 10)).collect().await;
//! assert_eq!(pairs, [(1, 10), (2, 20), (3, 30)]);
//!
//! // select: two partition branches, merged as they produce.
//! let [evens, odds] = <[_; 2]>::try_from(stream::iter(1..=4).partition(2, |x| *x as usize % 2)).unwrap();
//! let mut both: Vec<i32> = stream::select(evens.map(|x| x * 100), odds).collect().await;
//! both.sort();
//! assert_eq!(both, [1, 3, 200, 400]);
//!
//! // select_all: any number of balanced workers back into one stream.
//! let mut all: Vec<i32> = stream::select_all(stream::iter(0..6).balance(3)).collect().await;
//! all.sort();
//! assert_eq!(all, [0, 1, 2, 3, 4, 5]);
//! # }
//! ```
//!
//! # Design
//!
//! No background task: the branches share the upstream behind one mutex, and whichever branch
//! needs an item and is allowed to pull does so, under the lock, with a waker that wakes every
//! branch parked on the hub. Each branch has one waker slot; a branch registers its waker
//! *before* it polls the upstream or parks, so no wake-up between its decision and its return
//! is lost. Panics of the upstream (or of the routing function) are caught under the lock, so
//! the mutex is never poisoned by user code: the branch that polled re-raises the original
//! payload, every other live branch panics with its message once it has yielded the items
//! produced before the panic.

mod balance;
mod broadcast;
mod merge;
mod partition;

pub use self::balance::Balance;
pub use self::broadcast::Broadcast;
pub use self::merge::{MergeInOrder, TryMerge, merge_in_order, try_merge};
pub use self::partition::{DiscardCounter, Partition};

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use futures_core::Stream;

/// The default shared buffer of [`broadcast`](crate::PipelineExt::broadcast) and
/// [`partition`](crate::PipelineExt::partition): items pulled from the upstream and not yet
/// yielded by the branches.
pub const DEFAULT_FAN_CAPACITY: usize = 64;

/// Locks, ignoring poisoning: no user code runs under our locks except inside `catch_unwind`
/// (and `Clone` of an item, after which the state is still consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An upstream panic caught while a branch pulled items for itself: re-raised on that branch
/// once those items are yielded.
#[derive(Default)]
pub(crate) struct HeldPanic(Mutex<Option<Box<dyn Any + Send>>>);

impl std::fmt::Debug for HeldPanic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeldPanic")
    }
}

impl HeldPanic {
    /// At the start of a branch's visit to the hub: re-raises a held panic, fusing the branch.
    pub(crate) fn resume(&self, done: &mut bool) {
        if let Some(payload) = lock(&self.0).take() {
            *done = true;
            std::panic::resume_unwind(payload);
        }
    }

    /// The branch that polled the upstream when it panicked (the hub's lock released): hands
    /// out `first`, an item pulled before the panic, and holds the panic for the next visit;
    /// without one, re-raises it at once. Either way the other branches are woken to see it.
    pub(crate) fn hold_or_resume<T>(
        &self,
        wakers: &Wakers,
        me: usize,
        first: Option<T>,
        payload: Box<dyn Any + Send>,
        done: &mut bool,
    ) -> Poll<Option<T>> {
        wakers.clear(me);
        wakers.wake_others(me);
        if let Some(first) = first {
            *lock(&self.0) = Some(payload);
            return Poll::Ready(Some(first));
        }
        *done = true;
        std::panic::resume_unwind(payload);
    }
}

/// A branch that finds the upstream panicked in another branch (the hub's lock released):
/// fuses, wakes the others if it changed something for them, and panics with `stage`'s message.
pub(crate) fn upstream_panicked_elsewhere(
    stage: &str,
    message: &str,
    wakers: &Wakers,
    me: usize,
    wake_others: bool,
    done: &mut bool,
) -> ! {
    *done = true;
    if wake_others {
        wakers.wake_others(me);
    }
    branch_panic(stage, message);
}

/// Ends a branch's visit to the hub (its lock released): clears the branch's waker once it has
/// an answer, wakes the others if the visit changed something for them, fuses on the end.
pub(crate) fn end_visit<T>(
    wakers: &Wakers,
    me: usize,
    registered: bool,
    wake_others: bool,
    out: Poll<Option<T>>,
    done: &mut bool,
) -> Poll<Option<T>> {
    if registered && out.is_ready() {
        wakers.clear(me);
    }
    if wake_others {
        wakers.wake_others(me);
    }
    if let Poll::Ready(None) = out {
        *done = true;
    }
    out
}

/// One waker slot per branch; waking the set (the upstream's waker) wakes every parked branch.
#[derive(Debug)]
pub(crate) struct Wakers {
    slots: Mutex<Vec<Option<Waker>>>,
}

impl Wakers {
    pub(crate) fn new(n: usize) -> Arc<Self> {
        Arc::new(Wakers {
            slots: Mutex::new(vec![None; n]),
        })
    }

    /// Parks branch `i` with `waker` (kept if it would wake the same task).
    pub(crate) fn register(&self, i: usize, waker: &Waker) {
        let mut slots = lock(&self.slots);
        match &mut slots[i] {
            Some(old) if old.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
    }

    /// Un-parks branch `i` (it got what it waited for).
    pub(crate) fn clear(&self, i: usize) {
        lock(&self.slots)[i] = None;
    }

    /// Wakes every parked branch except `except`.
    pub(crate) fn wake_others(&self, except: usize) {
        let n = lock(&self.slots).len();
        for i in (0..n).filter(|&i| i != except) {
            // Taken under the lock, woken outside it.
            let waker = lock(&self.slots)[i].take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    /// Wakes every parked branch.
    pub(crate) fn wake_all(&self) {
        self.wake_others(usize::MAX);
    }
}

impl Wake for Wakers {
    fn wake(self: Arc<Self>) {
        self.wake_all();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_all();
    }
}

/// The shared upstream of a fan-out.
pub(crate) enum Upstream<S> {
    Live(Pin<Box<S>>),
    /// Ended: dropped at once.
    Done,
    /// Panicked (the upstream or the routing function): dropped at once; the message is given
    /// to every branch that did not receive the original payload.
    Panicked(String),
}

impl<S: Stream> Upstream<S> {
    pub(crate) fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Upstream::Live(s) => s.size_hint(),
            Upstream::Done | Upstream::Panicked(_) => (0, Some(0)),
        }
    }

    /// Runs `pull` (which polls the upstream and may call user code) catching a panic: the
    /// upstream then becomes `Panicked` and the payload is returned for the caller to re-raise
    /// once it has released its locks.
    pub(crate) fn guarded<R>(
        &mut self,
        pull: impl FnOnce(&mut Self) -> R,
    ) -> Result<R, Box<dyn Any + Send>> {
        match catch_unwind(AssertUnwindSafe(|| pull(self))) {
            Ok(r) => Ok(r),
            Err(payload) => {
                *self = Upstream::Panicked(panic_message(payload.as_ref()));
                Err(payload)
            }
        }
    }

    /// Polls the live upstream once; an end drops it.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let Upstream::Live(s) = self else {
            return Poll::Ready(None);
        };
        let polled = s.as_mut().poll_next(cx);
        if let Poll::Ready(None) = polled {
            *self = Upstream::Done;
        }
        polled
    }
}

/// The text of a panic payload (`&str` or `String`), for the branches that re-raise it.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

/// The panic of a branch that finds the shared upstream panicked.
#[track_caller]
pub(crate) fn branch_panic(stage: &str, message: &str) -> ! {
    panic!("`{stage}`: the shared upstream panicked: {message}")
}
