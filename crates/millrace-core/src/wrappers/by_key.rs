//! [`MapConcurrentByKey`]: bounded concurrency, in order per key; built by
//! [`map_concurrent_by_key`](crate::PipelineExt::map_concurrent_by_key).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_core::stream::FusedStream;
use pin_project_lite::pin_project;
use tokio::task::{Id, JoinSet};

use crate::error::{ConfigError, nonzero};
use crate::metrics::{Observable, StageMetrics};
use crate::wrappers::map_concurrent::unwrap_join;

const STAGE: &str = "map_concurrent_by_key";

/// Live counts for the metrics gauges (written by the stream only).
#[derive(Debug, Default)]
struct Gauges {
    in_flight: AtomicUsize,
    waiting: AtomicUsize,
}

pin_project! {
    /// Stream for the [`map_concurrent_by_key`](crate::PipelineExt::map_concurrent_by_key)
    /// method.
    ///
    /// # Limits
    ///
    /// With in-flight limit `n` and waiting buffer `m` (default `m = n`, see
    /// [`with_waiting`](MapConcurrentByKey::with_waiting)):
    ///
    /// * at most `n` futures are in flight, at most one per key;
    /// * at most `m` items wait because an earlier item of their key is still in flight, so at
    ///   most `n + m` distinct keys are held (a hot key holds the others back once `m` of its
    ///   items wait: head-of-line blocking is the price of the bound).
    ///
    /// # Order
    ///
    /// Items of one key run one after another in input order, so their outputs come out in
    /// input order; outputs of different keys come out in completion order.
    ///
    /// ```
    /// use millrace::wrappers::MapConcurrentByKey;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = MapConcurrentByKey::checked_new(stream::iter([1, 2, 3]), 2, |x: &i32| x % 2, |x| async move { x * 10 })
    ///     .unwrap()
    ///     .with_waiting(4);
    /// let mut out = s.collect::<Vec<_>>().await;
    /// out.sort();
    /// assert_eq!(out, [10, 20, 30]);
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct MapConcurrentByKey<S, K, KF, F, Fut>
    where
        S: Stream,
        Fut: Future,
    {
        #[pin]
        upstream: S,
        key: KF,
        f: F,
        limit: usize,
        max_waiting: usize,
        // Keys with a task in flight, each with its items waiting behind it.
        busy: HashMap<K, VecDeque<S::Item>>,
        waiting: usize,
        running: HashMap<Id, K>,
        tasks: JoinSet<Fut::Output>,
        gauges: Arc<Gauges>,
        upstream_done: bool,
        done: bool,
    }
}

impl<S, K, KF, F, Fut> MapConcurrentByKey<S, K, KF, F, Fut>
where
    S: Stream,
    K: Hash + Eq + Clone,
    KF: FnMut(&S::Item) -> K,
    F: FnMut(S::Item) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    /// At most `n` futures in flight, one per key; see
    /// [`map_concurrent_by_key`](crate::PipelineExt::map_concurrent_by_key).
    ///
    /// # Errors
    ///
    /// `n == 0` is a [`ConfigError`]:
    ///
    /// ```
    /// use millrace::wrappers::MapConcurrentByKey;
    /// use futures::stream;
    ///
    /// let err = MapConcurrentByKey::checked_new(stream::iter([1]), 0, |x: &i32| *x, |x| async move { x })
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "`map_concurrent_by_key`: `n` must be at least 1, got 0; pass a non-zero value");
    /// ```
    pub fn checked_new(upstream: S, n: usize, key: KF, f: F) -> Result<Self, ConfigError> {
        let limit = nonzero(STAGE, "n", n)?.get();
        Ok(MapConcurrentByKey {
            upstream,
            key,
            f,
            limit,
            max_waiting: limit,
            busy: HashMap::new(),
            waiting: 0,
            running: HashMap::new(),
            tasks: JoinSet::new(),
            gauges: Arc::new(Gauges::default()),
            upstream_done: false,
            done: false,
        })
    }

    /// Renamed [`checked_new`](Self::checked_new).
    #[doc(hidden)]
    #[deprecated(since = "0.2.0", note = "use `checked_new`")]
    pub fn try_new(upstream: S, n: usize, key: KF, f: F) -> Result<Self, ConfigError> {
        Self::checked_new(upstream, n, key, f)
    }
}

impl<S, K, KF, F, Fut> MapConcurrentByKey<S, K, KF, F, Fut>
where
    S: Stream,
    Fut: Future,
{
    /// Sets how many items may wait behind an item of the same key (default `n`).
    ///
    /// # Panics
    ///
    /// If `m == 0` (an item of a busy key must have somewhere to wait).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let s = stream::iter(0..4).map_concurrent_by_key(2, |x| x % 2, |x| async move { x }).with_waiting(1);
    /// assert_eq!(s.waiting_limit(), 1);
    /// assert_eq!(s.collect::<Vec<_>>().await.len(), 4);
    /// # }
    /// ```
    #[track_caller]
    pub fn with_waiting(mut self, m: usize) -> Self {
        self.max_waiting = crate::error::built(nonzero(STAGE, "waiting", m)).get();
        self
    }

    /// The in-flight limit `n`.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = stream::iter([1]).map_concurrent_by_key(3, |x| *x, |x| async move { x });
    /// assert_eq!(s.limit(), 3);
    /// ```
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The waiting limit `m`.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = stream::iter([1]).map_concurrent_by_key(3, |x| *x, |x| async move { x });
    /// assert_eq!(s.waiting_limit(), 3);
    /// ```
    pub fn waiting_limit(&self) -> usize {
        self.max_waiting
    }

    /// Futures in flight right now.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = stream::iter([1]).map_concurrent_by_key(3, |x| *x, |x| async move { x });
    /// assert_eq!(s.in_flight(), 0);
    /// ```
    pub fn in_flight(&self) -> usize {
        self.tasks.len()
    }

    /// Items waiting behind an in-flight item of their key.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = stream::iter([1]).map_concurrent_by_key(3, |x| *x, |x| async move { x });
    /// assert_eq!(s.waiting(), 0);
    /// ```
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    delegate_access_inner!(upstream, S);
}

impl<S, K, KF, F, Fut> Stream for MapConcurrentByKey<S, K, KF, F, Fut>
where
    S: Stream,
    K: Hash + Eq + Clone,
    KF: FnMut(&S::Item) -> K,
    F: FnMut(S::Item) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    type Item = Fut::Output;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Fut::Output>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        // Pull while a new item has somewhere to go whatever its key: a free slot if its key
        // is free, a waiting place if not.
        while !*this.upstream_done
            && this.tasks.len() < *this.limit
            && *this.waiting < *this.max_waiting
        {
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    let key = (this.key)(&item);
                    if let Some(queue) = this.busy.get_mut(&key) {
                        queue.push_back(item);
                        *this.waiting += 1;
                    } else {
                        let id = this.tasks.spawn((this.f)(item)).id();
                        this.running.insert(id, key.clone());
                        this.busy.insert(key, VecDeque::new());
                    }
                }
                Poll::Ready(None) => *this.upstream_done = true,
                Poll::Pending => break,
            }
        }
        let polled = this.tasks.poll_join_next_with_id(cx);
        let out = match polled {
            Poll::Ready(Some(Ok((id, out)))) => {
                // The key's next item takes the slot just freed.
                let key = this.running.remove(&id).expect("a finished task has a key");
                let next = this.busy.get_mut(&key).and_then(VecDeque::pop_front);
                match next {
                    Some(item) => {
                        *this.waiting -= 1;
                        let id = this.tasks.spawn((this.f)(item)).id();
                        this.running.insert(id, key);
                    }
                    None => {
                        this.busy.remove(&key);
                    }
                }
                Poll::Ready(Some(out))
            }
            Poll::Ready(Some(Err(e))) => {
                *this.done = true;
                this.tasks.abort_all();
                Poll::Ready(Some(unwrap_join(STAGE, Err(e))))
            }
            Poll::Ready(None) if *this.upstream_done => {
                *this.done = true;
                Poll::Ready(None)
            }
            // No task, and the upstream is pending (it has our waker).
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        };
        this.gauges
            .in_flight
            .store(this.tasks.len(), Ordering::Relaxed);
        this.gauges.waiting.store(*this.waiting, Ordering::Relaxed);
        out
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        let held = self.tasks.len() + self.waiting;
        super::size_hint::plus_held(self.upstream_done, &self.upstream, held)
    }
}

impl<S, K, KF, F, Fut> FusedStream for MapConcurrentByKey<S, K, KF, F, Fut>
where
    S: Stream,
    K: Hash + Eq + Clone,
    KF: FnMut(&S::Item) -> K,
    F: FnMut(S::Item) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<S, K, KF, F, Fut> fmt::Debug for MapConcurrentByKey<S, K, KF, F, Fut>
where
    S: Stream + fmt::Debug,
    Fut: Future,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapConcurrentByKey")
            .field("upstream", &self.upstream)
            .field("limit", &self.limit)
            .field("max_waiting", &self.max_waiting)
            .field("in_flight", &self.tasks.len())
            .field("waiting", &self.waiting)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// Reports [`StageSnapshot::in_flight`](crate::metrics::StageSnapshot::in_flight) (futures
/// running) and [`buffered`](crate::metrics::StageSnapshot::buffered) (items waiting behind
/// their key), as of the stream's last poll.
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let s = stream::iter(0..3)
///     .map_concurrent_by_key(2, |x| *x, |x| async move { x })
///     .metered("by_key")
///     .with_events();
/// let m = s.metrics();
/// assert_eq!(s.collect::<Vec<_>>().await.len(), 3);
/// assert_eq!((m.snapshot().in_flight, m.snapshot().buffered), (Some(0), Some(0)));
/// # }
/// ```
impl<S, K, KF, F, Fut> Observable for MapConcurrentByKey<S, K, KF, F, Fut>
where
    S: Stream,
    Fut: Future,
{
    fn observe_into(&self, stage: &StageMetrics) {
        let g = Arc::clone(&self.gauges);
        stage.track_in_flight(move || g.in_flight.load(Ordering::Relaxed) as u64);
        let g = Arc::clone(&self.gauges);
        stage.track_buffered(move || g.waiting.load(Ordering::Relaxed) as u64);
    }
}
