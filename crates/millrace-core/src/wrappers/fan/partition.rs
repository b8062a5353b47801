//! [`Partition`]: each item to the branch the user's function picks; built by
//! [`partition`](crate::PipelineExt::partition).

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

const STAGE: &str = "partition";

/// The most items a branch pulls for the others before it returns with one of its own.
const MAX_CHUNK: usize = 128;

/// One branch of a [`partition`](crate::PipelineExt::partition): yields the items `route`
/// sent to it, in upstream order.
///
/// # Bound
///
/// At most `capacity` items are pulled from the upstream and not yet yielded, across all
/// branches. A branch that is not consumed holds the others back once the items waiting for it
/// fill the buffer: consume the branches concurrently.
///
/// # Dropped branches
///
/// Dropping a branch does not stop the others. Items routed to a dropped branch (and those
/// waiting for it when it was dropped) are discarded and counted:
/// [`discarded`](Partition::discarded). The upstream is dropped with the last branch.
///
/// # Errors and panics
///
/// Upstream `Err` items are items like any other: `route` sees them and picks their branch
/// (route them all to one branch, or broadcast first if every branch must see them). An
/// upstream panic, or a panic in `route`, reaches every live branch after the items routed to
/// it before the panic; a `route` result of `n` or more is such a panic.
///
/// ```
/// use millrace::wrappers::Partition;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut parts = Partition::split(stream::iter(1..=6), 2, 8, |x: &i32| (*x % 2) as usize).unwrap();
/// let odd = parts.pop().unwrap();
/// let even = parts.pop().unwrap();
/// let (even, odd) = futures::join!(even.collect::<Vec<_>>(), odd.collect::<Vec<_>>());
/// assert_eq!((even, odd), (vec![2, 4, 6], vec![1, 3, 5]));
/// # }
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Partition<S: Stream, F> {
    /// The items taken from this branch's queue and not yet yielded (the fast path).
    local: VecDeque<S::Item>,
    /// How many items the local chunk held when taken: released at the next visit to the hub.
    held: usize,
    hub: Arc<Hub<S, F>>,
    index: usize,
    done: bool,
    panic: HeldPanic,
}

struct Hub<S: Stream, F> {
    state: Mutex<State<S, F>>,
    wakers: Arc<Wakers>,
    upstream_waker: Waker,
    capacity: usize,
}

struct State<S: Stream, F> {
    upstream: Upstream<S>,
    route: F,
    queues: Vec<VecDeque<S::Item>>,
    live: Vec<bool>,
    /// Items pulled and not yet released (queued, or in a branch's local chunk).
    outstanding: usize,
    discarded: u64,
}

// Nothing is pinned in a branch: the upstream sits boxed in the hub.
impl<S: Stream, F> Unpin for Partition<S, F> {}

impl<S, F> Partition<S, F>
where
    S: Stream,
    F: FnMut(&S::Item) -> usize,
{
    /// Splits `stream` into `n` branches; `route(&item)` picks each item's branch
    /// (`0..n`). At most `capacity` items wait across the branches.
    ///
    /// # Errors
    ///
    /// `n == 0` or `capacity == 0` is a [`ConfigError`]:
    ///
    /// ```
    /// use millrace::wrappers::Partition;
    /// use futures::stream;
    ///
    /// let err = Partition::split(stream::iter([1]), 0, 8, |_: &i32| 0).unwrap_err();
    /// assert_eq!(err.to_string(), "`partition`: `n` must be at least 1, got 0; pass a non-zero value");
    /// ```
    pub fn split(stream: S, n: usize, capacity: usize, route: F) -> Result<Vec<Self>, ConfigError> {
        let n = nonzero(STAGE, "n", n)?.get();
        let capacity = nonzero(STAGE, "capacity", capacity)?.get();
        let wakers = Wakers::new(n);
        let hub = Arc::new(Hub {
            state: Mutex::new(State {
                upstream: Upstream::Live(Box::pin(stream)),
                route,
                queues: (0..n).map(|_| VecDeque::new()).collect(),
                live: vec![true; n],
                outstanding: 0,
                discarded: 0,
            }),
            upstream_waker: Waker::from(Arc::clone(&wakers)),
            wakers,
            capacity,
        });
        Ok((0..n)
            .map(|index| Partition {
                local: VecDeque::new(),
                held: 0,
                hub: Arc::clone(&hub),
                index,
                done: false,
                panic: HeldPanic::default(),
            })
            .collect())
    }
}

impl<S: Stream, F> Partition<S, F> {
    /// This branch's index, `0..n`.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let parts = stream::iter([1, 2]).partition(2, |x| *x as usize % 2);
    /// assert_eq!(parts[1].index(), 1);
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }

    /// Items routed to a dropped branch so far (discarded, never yielded), shared by all the
    /// branches of one partition.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut parts = stream::iter(0..6).partition(2, |x| *x as usize % 2);
    /// drop(parts.pop()); // the odd branch
    /// let even = parts.pop().unwrap();
    /// let counter = even.discard_counter();
    /// assert_eq!(even.collect::<Vec<_>>().await, [0, 2, 4]);
    /// assert_eq!(counter.get(), 3);
    /// # }
    /// ```
    pub fn discarded(&self) -> u64 {
        lock(&self.hub.state).discarded
    }

    /// A handle that reads [`discarded`](Self::discarded) after the branches are gone.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let parts = stream::iter([1]).partition(1, |_| 0);
    /// assert_eq!(parts[0].discard_counter().get(), 0);
    /// ```
    pub fn discard_counter(&self) -> DiscardCounter<S, F> {
        DiscardCounter {
            hub: Arc::clone(&self.hub),
        }
    }

    /// Items pulled from the upstream and not yet yielded, across the branches (at most the
    /// capacity).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut parts = stream::iter(0..4).partition(2, |x| *x as usize % 2);
    /// assert_eq!(parts[1].next().await, Some(1)); // pulled 0 (for branch 0) and 1
    /// assert_eq!(parts[1].buffered_len(), 4);
    /// # }
    /// ```
    pub fn buffered_len(&self) -> usize {
        lock(&self.hub.state).outstanding
    }
}

/// Reads the [`discarded`](Partition::discarded) count of a partition; see
/// [`Partition::discard_counter`]. Keeps the partition's shared state (not its upstream, which
/// goes with the last branch) alive.
pub struct DiscardCounter<S: Stream, F> {
    hub: Arc<Hub<S, F>>,
}

impl<S: Stream, F> DiscardCounter<S, F> {
    /// Items discarded so far.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let parts = stream::iter([1]).partition(1, |_| 0);
    /// assert_eq!(parts[0].discard_counter().get(), 0);
    /// ```
    pub fn get(&self) -> u64 {
        lock(&self.hub.state).discarded
    }
}

impl<S: Stream, F> fmt::Debug for DiscardCounter<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscardCounter")
            .field("discarded", &self.get())
            .finish()
    }
}

impl<S, F> Partition<S, F>
where
    S: Stream,
    F: FnMut(&S::Item) -> usize,
{
    #[inline(never)]
    fn refill(&mut self, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        self.panic.resume(&mut self.done);
        let hub = &*self.hub;
        let me = self.index;
        let mut st = lock(&hub.state);
        let mut wake_others = self.held > 0;
        st.outstanding -= self.held;
        self.held = 0;
        let mut registered = false;
        let out = loop {
            if !st.queues[me].is_empty() {
                std::mem::swap(&mut st.queues[me], &mut self.local);
                self.held = self.local.len();
                break Poll::Ready(self.local.pop_front());
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
            if !registered {
                hub.wakers.register(me, cx.waker());
                registered = true;
            }
            if st.outstanding >= hub.capacity {
                break Poll::Pending; // the branches holding the buffer wake us
            }
            let chunk_max = (hub.capacity / 2).clamp(1, MAX_CHUNK);
            let mut ucx = Context::from_waker(&hub.upstream_waker);
            let capacity = hub.capacity;
            let State {
                upstream,
                route,
                queues,
                live,
                outstanding,
                discarded,
            } = &mut *st;
            let n = queues.len();
            let pulled = upstream.guarded(|up| {
                let (mut pulled, mut fed_others) = (0usize, false);
                while *outstanding < capacity && (queues[me].is_empty() || pulled < chunk_max) {
                    let item = match up.poll(&mut ucx) {
                        Poll::Ready(Some(item)) => item,
                        Poll::Ready(None) | Poll::Pending => break,
                    };
                    pulled += 1;
                    let to = route(&item);
                    assert!(
                        to < n,
                        "`partition`: the routing function returned branch {to} for {n} \
                         branches; return an index below {n}"
                    );
                    if live[to] {
                        queues[to].push_back(item);
                        *outstanding += 1;
                        fed_others |= to != me;
                    } else {
                        *discarded += 1;
                    }
                }
                (pulled, fed_others)
            });
            match pulled {
                Ok((pulled, fed_others)) => {
                    let ended = !matches!(st.upstream, Upstream::Live(_));
                    wake_others |= fed_others || ended;
                    if pulled == 0 && !ended {
                        break Poll::Pending;
                    }
                }
                Err(payload) => {
                    // Items routed here before the panic come first.
                    let first = if st.queues[me].is_empty() {
                        None
                    } else {
                        std::mem::swap(&mut st.queues[me], &mut self.local);
                        self.held = self.local.len();
                        self.local.pop_front()
                    };
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
}

impl<S, F> Stream for Partition<S, F>
where
    S: Stream,
    F: FnMut(&S::Item) -> usize,
{
    type Item = S::Item;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.get_mut();
        if let Some(item) = this.local.pop_front() {
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
        let mine = self.local.len() + st.queues[self.index].len();
        // Any upstream item may come here, or none.
        let (_, hi) = st.upstream.size_hint();
        (mine, hi.and_then(|h| h.checked_add(mine)))
    }
}

impl<S, F> FusedStream for Partition<S, F>
where
    S: Stream,
    F: FnMut(&S::Item) -> usize,
{
    fn is_terminated(&self) -> bool {
        self.done && self.local.is_empty()
    }
}

impl<S: Stream, F> Drop for Partition<S, F> {
    fn drop(&mut self) {
        let me = self.index;
        let mut st = lock(&self.hub.state);
        st.live[me] = false;
        let waiting = std::mem::take(&mut st.queues[me]);
        st.discarded += waiting.len() as u64;
        st.outstanding -= self.held + waiting.len();
        let freed = self.held + waiting.len() > 0;
        if st.live.iter().all(|l| !l) {
            st.upstream = Upstream::Done;
        }
        drop(st);
        drop(waiting);
        self.hub.wakers.clear(me);
        if freed {
            self.hub.wakers.wake_others(me);
        }
    }
}

impl<S: Stream, F> fmt::Debug for Partition<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Partition")
            .field("index", &self.index)
            .field("capacity", &self.hub.capacity)
            .field("in_hand", &self.local.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// Reports [`StageSnapshot::buffered`](crate::metrics::StageSnapshot::buffered): the items
/// pulled and not yet yielded across the branches.
///
/// ```
/// use millrace::prelude::*;
/// use millrace::metrics::Observable;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut parts = stream::iter(0..4).partition(2, |x| *x as usize % 2);
/// let stage = stream::iter([0]).metered("fan").metrics();
/// parts[0].observe_into(&stage);
/// parts[0].next().await;
/// assert_eq!(stage.snapshot().buffered, Some(4));
/// # }
/// ```
impl<S, F> Observable for Partition<S, F>
where
    S: Stream + Send + 'static,
    S::Item: Send,
    F: Send + 'static,
{
    fn observe_into(&self, stage: &StageMetrics) {
        let hub = Arc::downgrade(&self.hub);
        stage.track_buffered(move || {
            hub.upgrade()
                .map_or(0, |hub| lock(&hub.state).outstanding as u64)
        });
    }
}
