//! [`Balance`]: each item to whichever branch asks first; built by
//! [`balance`](crate::PipelineExt::balance).

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use futures_core::stream::FusedStream;

use super::{Upstream, Wakers, branch_panic, lock};
use crate::error::{ConfigError, nonzero};

const STAGE: &str = "balance";

/// One branch of a [`balance`](crate::PipelineExt::balance): yields the items it pulled from
/// the shared upstream.
///
/// Work distribution: a branch pulls the next upstream item when its consumer asks for one, so
/// each item goes to whichever branch is free; a busy branch gets nothing until it asks again.
/// Nothing is buffered: the bound is zero items.
///
/// # Dropped branches
///
/// Dropping a branch does not stop the others; the upstream is dropped with the last branch.
///
/// # Errors and panics
///
/// Upstream `Err` items go to the branch that pulled them, like any item. An upstream panic
/// is re-raised (original payload) in the branch that polled, and every other live branch
/// panics at its next poll with "`` `balance`: the shared upstream panicked: <message> ``".
///
/// ```
/// use millrace::wrappers::Balance;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut workers = Balance::split(stream::iter(0..4), 2).unwrap();
/// assert_eq!(workers[1].next().await, Some(0)); // the first to ask gets the next item
/// assert_eq!(workers[0].next().await, Some(1));
/// # }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Balance<S> {
    hub: Arc<Hub<S>>,
    index: usize,
    done: bool,
}

struct Hub<S> {
    upstream: Mutex<Upstream<S>>,
    wakers: Arc<Wakers>,
    upstream_waker: Waker,
}

impl<S: Stream> Balance<S> {
    /// Splits `stream` into `n` branches that take turns as they ask.
    ///
    /// # Errors
    ///
    /// `n == 0` is a [`ConfigError`]:
    ///
    /// ```
    /// use millrace::wrappers::Balance;
    /// use futures::stream;
    ///
    /// let err = Balance::split(stream::iter([1]), 0).unwrap_err();
    /// assert_eq!(err.to_string(), "`balance`: `n` must be at least 1, got 0; pass a non-zero value");
    /// ```
    pub fn split(stream: S, n: usize) -> Result<Vec<Self>, ConfigError> {
        let n = nonzero(STAGE, "n", n)?.get();
        let wakers = Wakers::new(n);
        let hub = Arc::new(Hub {
            upstream: Mutex::new(Upstream::Live(Box::pin(stream))),
            upstream_waker: Waker::from(Arc::clone(&wakers)),
            wakers,
        });
        Ok((0..n)
            .map(|index| Balance {
                hub: Arc::clone(&hub),
                index,
                done: false,
            })
            .collect())
    }

    /// This branch's index, `0..n`.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// assert_eq!(stream::iter([1]).balance(2)[1].index(), 1);
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }
}

impl<S: Stream> Stream for Balance<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        let hub = &*this.hub;
        let me = this.index;
        let mut up = lock(&hub.upstream);
        if let Upstream::Panicked(msg) = &*up {
            let msg = msg.clone();
            drop(up);
            this.done = true;
            branch_panic(STAGE, &msg);
        }
        // Parked before the poll: a wake of the upstream from now on finds us.
        hub.wakers.register(me, cx.waker());
        let mut ucx = Context::from_waker(&hub.upstream_waker);
        let polled = up.guarded(|up| up.poll(&mut ucx));
        drop(up);
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Some(item))) => {
                hub.wakers.clear(me);
                Poll::Ready(Some(item))
            }
            Ok(Poll::Ready(None)) => {
                hub.wakers.clear(me);
                this.done = true;
                hub.wakers.wake_others(me);
                Poll::Ready(None)
            }
            Err(payload) => {
                hub.wakers.clear(me);
                this.done = true;
                hub.wakers.wake_others(me);
                std::panic::resume_unwind(payload)
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        // Any upstream item may come here, or none.
        (0, lock(&self.hub.upstream).size_hint().1)
    }
}

impl<S: Stream> FusedStream for Balance<S> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<S> Drop for Balance<S> {
    fn drop(&mut self) {
        self.hub.wakers.clear(self.index);
        if Arc::strong_count(&self.hub) > 1 {
            // A branch woken by the upstream may have been this one: pass the wake on.
            self.hub.wakers.wake_others(self.index);
        }
    }
}

impl<S> fmt::Debug for Balance<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Balance")
            .field("index", &self.index)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
