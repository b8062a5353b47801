//! [`Broadcast`]: every branch sees every item; built by
//! [`broadcast`](crate::PipelineExt::broadcast).

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use futures_core::stream::FusedStream;

use super::{HeldPanic, Upstream, Wakers, end_visit, lock, upstream_panicked_elsewhere};
use crate::error::{ConfigError, nonzero};
use crate::metrics::{Observable, StageMetrics};

const STAGE: &str = "broadcast";

/// The most items one pull reserves room for at once (the pull stops at the capacity anyway).
const MAX_PULL: u64 = 1024;

/// Pulls ready items (at most `room`) into `chunk`, a clone of each into `buf` when `others`.
///
/// Out of line, once per chunk, so that the loop keeps the upstream's and the chunk's state
/// in registers (as `prefetch`'s `fill`).
#[inline(never)]
fn pull_into<S>(
    up: &mut Upstream<S>,
    cx: &mut Context<'_>,
    chunk: &mut Vec<S::Item>,
    buf: &mut VecDeque<S::Item>,
    others: bool,
    room: u64,
) where
    S: Stream,
    S::Item: Clone,
{
    while (chunk.len() as u64) < room {
        match up.poll(cx) {
            Poll::Ready(Some(item)) => {
                if others {
                    buf.push_back(item.clone());
                }
                chunk.push(item);
            }
            Poll::Ready(None) | Poll::Pending => break,
        }
    }
}

/// One branch of a [`broadcast`](crate::PipelineExt::broadcast): yields a clone of every item
/// of the shared upstream, in upstream order.
///
/// # Bound
///
/// At most `capacity` items are pulled from the upstream and not yet yielded by **every** live
/// branch, so the slowest live branch sets the pace. Each branch holds its own clones of the
/// items it took; the last branch to take an item gets the original (no clone).
///
/// # Dropped branches
///
/// Dropping a branch does not stop the others: it no longer counts towards the bound, and the
/// items only it still needed are dropped at once. The upstream is dropped with the last branch.
///
/// # Panics
///
/// An upstream panic reaches every live branch after the items produced before it: the branch
/// that polled the upstream re-raises the original payload, the others panic with
/// "`` `broadcast`: the shared upstream panicked: <message> ``". Upstream `Err` items are ordinary
/// items: every branch gets a clone.
///
/// ```
/// use millrace::wrappers::Broadcast;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let [a, b]: [Broadcast<_>; 2] = Broadcast::split(stream::iter(1..=3), 2, 1)
///     .unwrap()
///     .try_into()
///     .unwrap();
/// // Capacity 1: the branches advance in lock step, so they must be consumed concurrently.
/// let (a, b) = futures::join!(a.collect::<Vec<_>>(), b.collect::<Vec<_>>());
/// assert_eq!((a, b), (vec![1, 2, 3], vec![1, 2, 3]));
/// # }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Broadcast<S: Stream> {
    /// The items taken from the shared buffer and not yet yielded (the fast path).
    local: std::vec::IntoIter<S::Item>,
    hub: Arc<Hub<S>>,
    index: usize,
    done: bool,
    panic: HeldPanic,
}

struct Hub<S: Stream> {
    state: Mutex<State<S>>,
    wakers: Arc<Wakers>,
    /// Given to the upstream: wakes every parked branch.
    upstream_waker: Waker,
    capacity: usize,
}

struct State<S: Stream> {
    upstream: Upstream<S>,
    /// Items `head..head + buf.len()` of the upstream, kept until every live branch took them.
    buf: VecDeque<S::Item>,
    head: u64,
    branches: Vec<Cursor>,
}

#[derive(Debug, Clone, Copy)]
struct Cursor {
    /// Items taken from `buf` (into the branch's local chunk).
    taken: u64,
    /// Items yielded: published when the branch comes back with an empty chunk. The bound is
    /// counted from the smallest `released` of the live branches.
    released: u64,
    live: bool,
}

impl<S: Stream> State<S> {
    fn tail(&self) -> u64 {
        self.head + self.buf.len() as u64
    }

    fn min_released(&self) -> Option<u64> {
        self.branches
            .iter()
            .filter(|c| c.live)
            .map(|c| c.released)
            .min()
    }

    /// Drops the items every live branch has taken.
    fn trim(&mut self) {
        let min_taken = self
            .branches
            .iter()
            .filter(|c| c.live)
            .map(|c| c.taken)
            .min()
            .unwrap_or_else(|| self.tail());
        while self.head < min_taken {
            self.buf.pop_front();
            self.head += 1;
        }
    }
}

// Nothing is pinned in a branch: the upstream sits boxed in the hub.
impl<S: Stream> Unpin for Broadcast<S> {}

impl<S> Broadcast<S>
where
    S: Stream,
    S::Item: Clone,
{
    /// Splits `stream` into `n` branches that share a buffer of `capacity` items.
    ///
    /// # Errors
    ///
    /// `n == 0` or `capacity == 0` is a [`ConfigError`]:
    ///
    /// ```
    /// use millrace::wrappers::Broadcast;
    /// use futures::stream;
    ///
    /// let err = Broadcast::split(stream::iter([1]), 2, 0).unwrap_err();
    /// assert_eq!(err.to_string(), "`broadcast`: `capacity` must be at least 1, got 0; pass a non-zero value");
    /// ```
    pub fn split(stream: S, n: usize, capacity: usize) -> Result<Vec<Self>, ConfigError> {
        let n = nonzero(STAGE, "n", n)?.get();
        let capacity = nonzero(STAGE, "capacity", capacity)?.get();
        let wakers = Wakers::new(n);
        let hub = Arc::new(Hub {
            state: Mutex::new(State {
                upstream: Upstream::Live(Box::pin(stream)),
                buf: VecDeque::new(),
                head: 0,
                branches: vec![
                    Cursor {
                        taken: 0,
                        released: 0,
                        live: true,
                    };
                    n
                ],
            }),
            upstream_waker: Waker::from(Arc::clone(&wakers)),
            wakers,
            capacity,
        });
        Ok((0..n)
            .map(|index| Broadcast {
                local: Vec::new().into_iter(),
                hub: Arc::clone(&hub),
                index,
                done: false,
                panic: HeldPanic::default(),
            })
            .collect())
    }
}

impl<S: Stream> Broadcast<S> {
    /// This branch's index, `0..n`.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let branches = stream::iter([1]).broadcast(3);
    /// assert_eq!(branches[2].index(), 2);
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }

    /// The shared buffer's capacity.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// assert_eq!(stream::iter([1]).broadcast(2)[0].capacity(), 64);
    /// ```
    pub fn capacity(&self) -> usize {
        self.hub.capacity
    }

    /// Items pulled from the upstream and not yet yielded by the slowest live branch (at most
    /// [`capacity`](Self::capacity)), as of the branches' last visits to the hub.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut branches = stream::iter(0..10).broadcast(2);
    /// assert_eq!(branches[0].next().await, Some(0)); // pulls as much as the buffer allows
    /// assert_eq!(branches[0].buffered_len(), 10); // branch 1 has not taken any yet
    /// # }
    /// ```
    pub fn buffered_len(&self) -> usize {
        let st = lock(&self.hub.state);
        let outstanding = st.min_released().map_or(0, |r| st.tail() - r);
        usize::try_from(outstanding).unwrap_or(usize::MAX)
    }
}

impl<S> Broadcast<S>
where
    S: Stream,
    S::Item: Clone,
{
    /// The slow path: the local chunk is empty. Publishes this branch's progress, then takes
    /// what the buffer holds for it, or pulls from the upstream, or parks.
    #[inline(never)]
    fn refill(&mut self, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        self.panic.resume(&mut self.done);
        let hub = &*self.hub;
        let me = self.index;
        let mut st = lock(&hub.state);
        let before = st.min_released();
        let cur = &mut st.branches[me];
        cur.released = cur.taken;
        let mut wake_others = st.min_released() != before;
        let mut registered = false;
        let out = loop {
            let taken = st.branches[me].taken;
            if taken < st.tail() {
                break Poll::Ready(Some(Self::take(&mut st, me, &mut self.local)));
            }
            match &st.upstream {
                Upstream::Live(_) => {}
                Upstream::Done => break Poll::Ready(None),
                Upstream::Panicked(msg) => {
                    let msg = msg.clone();
                    drop(st);
                    let (wakers, done) = (&hub.wakers, &mut self.done);
                    upstream_panicked_elsewhere(STAGE, &msg, wakers, me, wake_others, done);
                }
            }
            let outstanding = st.min_released().map_or(0, |r| st.tail() - r);
            let room = (hub.capacity as u64).saturating_sub(outstanding);
            if !registered {
                // Before polling the upstream or parking: a wake from now on finds us.
                hub.wakers.register(me, cx.waker());
                registered = true;
            }
            if room == 0 {
                break Poll::Pending; // the slowest branch wakes us when it releases
            }
            // Pull: the items go straight into this branch's chunk, a clone of each into the
            // shared buffer for the other live branches (none if there are none).
            let others = st
                .branches
                .iter()
                .enumerate()
                .any(|(i, c)| i != me && c.live);
            let mut chunk = Vec::with_capacity(room.min(MAX_PULL) as usize);
            let mut ucx = Context::from_waker(&hub.upstream_waker);
            let state = &mut *st;
            let buf = &mut state.buf;
            let pulled = state
                .upstream
                .guarded(|up| pull_into(up, &mut ucx, &mut chunk, buf, others, room));
            let n = chunk.len() as u64;
            st.branches[me].taken += n;
            if !others {
                st.head += n;
            }
            wake_others |= n > 0 || !matches!(st.upstream, Upstream::Live(_));
            let mut chunk = chunk.into_iter();
            let first = chunk.next();
            self.local = chunk;
            match (pulled, first) {
                (Ok(()), Some(first)) => break Poll::Ready(Some(first)),
                (Ok(()), None) if matches!(st.upstream, Upstream::Live(_)) => break Poll::Pending,
                (Ok(()), None) => {} // ended: the loop returns the end
                (Err(payload), first) => {
                    // Items pulled before the panic come first, here as in the other branches.
                    drop(st);
                    let done = &mut self.done;
                    return self
                        .panic
                        .hold_or_resume(&hub.wakers, me, first, payload, done);
                }
            }
        };
        drop(st);
        end_visit(
            &hub.wakers,
            me,
            registered,
            wake_others,
            out,
            &mut self.done,
        )
    }

    /// Takes every item the buffer holds for this branch into the local chunk; returns the
    /// first. When no other live branch needs any of them, the whole buffer is moved out (no
    /// copy); otherwise they are cloned.
    fn take(st: &mut State<S>, me: usize, local: &mut std::vec::IntoIter<S::Item>) -> S::Item {
        let others_min = st
            .branches
            .iter()
            .enumerate()
            .filter(|&(i, c)| i != me && c.live)
            .map(|(_, c)| c.taken)
            .min()
            .unwrap_or(u64::MAX);
        let tail = st.tail();
        let from = st.branches[me].taken;
        let chunk: Vec<S::Item> = if from == st.head && others_min >= tail {
            // The last reader of everything buffered: the buffer is ours. The fresh one starts
            // at offset 0 of its allocation, so this conversion never moves items.
            let fresh = VecDeque::with_capacity(st.buf.capacity());
            st.head = tail;
            std::mem::replace(&mut st.buf, fresh).into()
        } else {
            let start = (from - st.head) as usize;
            let mut v = Vec::with_capacity(st.buf.len() - start);
            v.extend(st.buf.range(start..).cloned());
            v
        };
        st.branches[me].taken = tail;
        st.trim();
        let mut chunk = chunk.into_iter();
        let first = chunk.next();
        *local = chunk;
        first.expect("`broadcast`: took an empty chunk")
    }
}

impl<S> Stream for Broadcast<S>
where
    S: Stream,
    S::Item: Clone,
{
    type Item = S::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.get_mut();
        if let Some(item) = this.local.next() {
            return Poll::Ready(Some(item));
        }
        if this.done {
            return Poll::Ready(None);
        }
        this.refill(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (self.local.len(), Some(self.local.len()));
        }
        let st = lock(&self.hub.state);
        let buffered = (st.tail() - st.branches[self.index].taken) as usize + self.local.len();
        let (lo, hi) = st.upstream.size_hint();
        (
            lo.saturating_add(buffered),
            hi.and_then(|h| h.checked_add(buffered)),
        )
    }
}

impl<S> FusedStream for Broadcast<S>
where
    S: Stream,
    S::Item: Clone,
{
    fn is_terminated(&self) -> bool {
        self.done && self.local.len() == 0
    }
}

impl<S: Stream> Drop for Broadcast<S> {
    fn drop(&mut self) {
        let mut st = lock(&self.hub.state);
        let before = st.min_released();
        st.branches[self.index].live = false;
        st.trim();
        let freed = st.min_released() != before;
        if st.branches.iter().all(|c| !c.live) {
            st.upstream = Upstream::Done;
        }
        drop(st);
        self.hub.wakers.clear(self.index);
        if freed {
            self.hub.wakers.wake_others(self.index);
        }
    }
}

impl<S: Stream> fmt::Debug for Broadcast<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcast")
            .field("index", &self.index)
            .field("capacity", &self.hub.capacity)
            .field("in_hand", &self.local.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// Reports [`StageSnapshot::buffered`](crate::metrics::StageSnapshot::buffered): the items
/// pulled and not yet yielded by the slowest live branch (see [`Broadcast::buffered_len`]).
///
/// ```
/// use millrace::prelude::*;
/// use millrace::metrics::Observable;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut branches = stream::iter(0..4).broadcast(2);
/// let stage = stream::iter([0]).metered("fan").metrics();
/// branches[0].observe_into(&stage);
/// branches[0].next().await;
/// assert_eq!(stage.snapshot().buffered, Some(4));
/// # }
/// ```
impl<S> Observable for Broadcast<S>
where
    S: Stream + Send + 'static,
    S::Item: Send,
{
    fn observe_into(&self, stage: &StageMetrics) {
        let hub = Arc::downgrade(&self.hub);
        stage.track_buffered(move || {
            hub.upgrade().map_or(0, |hub| {
                let st = lock(&hub.state);
                st.min_released().map_or(0, |r| st.tail() - r)
            })
        });
    }
}
