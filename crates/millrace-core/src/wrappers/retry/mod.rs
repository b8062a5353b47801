//! [`Retry`]: re-open a [`Restartable`] source after errors, waiting per a [`RetryPolicy`].

use super::Restartable;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use backon::BackoffBuilder;
use futures_core::stream::{FusedStream, Stream};
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::checkpoint::Checkpointer;
use crate::metrics::{EventCounter, Observable, StageMetrics};
use crate::policy::{RetryIf, RetryPolicy};

/// The retries of a [`Retry`] stream.
#[deprecated(
    since = "0.2.0",
    note = "use `EventCounter` (returned by `Retry::retries`)"
)]
pub type RetryStats = EventCounter;

pin_project! {
    /// Stream for the [`retry`](Restartable::retry) method of a [`restartable`](crate::restartable) source.
    ///
    /// After an `Err`, waits per the [`RetryPolicy`] (a `tokio::time::sleep`, allocated on the
    /// first error only and reused after) and re-opens the source with
    /// `factory(&checkpoint)`. The consumer sees every item exactly once and in order, as long
    /// as the factory honours the checkpoint (or the source replays the same items in
    /// [`skip_delivered`](Restartable::skip_delivered) mode). When the policy gives up (attempts
    /// or [`max_total_delay`](RetryPolicy::max_total_delay) exhausted, or
    /// [`retry_if`](RetryPolicy::retry_if) says no), the **last** error is yielded and the
    /// stream ends.
    ///
    /// Each retry emits a `tracing` warning with the fields `attempt` (1-based within the
    /// current failure streak), `delay` (`Debug`), `delay_ms`, `delivered` and `error` (its
    /// `Display`); giving up emits one with `attempts`, `retries`, `delivered` and `error`.
    /// Inside a [`Metered`](crate::wrappers::Metered) stage's span the events carry its
    /// `stage` name.
    ///
    /// Dropping the stream, even during a backoff wait, drops the source, the factory and the
    /// timer: nothing is spawned, nothing is left behind.
    ///
    /// There is no `get_ref`/`into_inner`: the upstream is re-created on every attempt; use
    /// [`get_restartable`](Self::get_restartable).
    #[must_use = "streams do nothing unless polled"]
    pub struct Retry<F, S, K, B, P>
    where
        B: BackoffBuilder,
    {
        #[pin]
        inner: Restartable<F, S, K>,
        policy: RetryPolicy<B, P>,
        // The schedule of the current failure streak; built lazily on its first error.
        backoff: Option<B::Backoff>,
        waited: Duration,
        streak: u32,
        // Boxed so the wrapper stays small and `Unpin`-neutral; allocated on the first error only.
        sleep: Option<Pin<Box<Sleep>>>,
        sleeping: bool,
        // Retries so far, shared with the handles `retries()` gives out (touched on errors
        // only). Boxed as `Metered` boxes its counters: the `Arc` is then released from the
        // heap, not from a field inside the consumer's future (`benches/RESULTS.md`, issue 12:
        // `retry_ok` 63.0 instr/item with the `Arc` here, 24.0 boxed).
        retries: Box<EventCounter>,
        done: bool,
    }
}

impl<F, S, K, B, P> fmt::Debug for Retry<F, S, K, B, P>
where
    K: fmt::Debug,
    B: BackoffBuilder + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .field("streak", &self.streak)
            .field("waited", &self.waited)
            .field("sleeping", &self.sleeping)
            .field("retries", &self.retries.get())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<F, S, K, B, P> Retry<F, S, K, B, P>
where
    B: BackoffBuilder + Clone,
{
    /// Retries `source` per `policy`; same as [`Restartable::retry`].
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use millrace::wrappers::Retry;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let source = restartable(|_: &Checkpoint<u8>| stream::iter([Ok::<u8, String>(1)]));
    /// let s = Retry::new(source, RetryPolicy::exponential());
    /// assert_eq!(s.collect::<Vec<_>>().await, [Ok(1)]);
    /// # }
    /// ```
    pub fn new(source: Restartable<F, S, K>, policy: RetryPolicy<B, P>) -> Self {
        Retry {
            inner: source,
            policy,
            backoff: None,
            waited: Duration::ZERO,
            streak: 0,
            sleep: None,
            sleeping: false,
            retries: Box::default(),
            done: false,
        }
    }

    /// How many times the source was re-opened after an error: a live handle, readable
    /// while another task consumes the stream.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let s = restartable(|cp: &Checkpoint<u64>| {
    ///     stream::iter(cp.delivered..3).map(|i| if i == 1 { Err("always fails") } else { Ok(i) })
    /// })
    /// .retry(RetryPolicy::fixed(Duration::from_millis(10), 2));
    /// let retries = s.retries();
    /// let out: Vec<_> = s.collect().await;
    /// assert_eq!(out, [Ok(0), Err("always fails")]);
    /// assert_eq!(retries.get(), 2);
    /// # }
    /// ```
    pub fn retries(&self) -> EventCounter {
        EventCounter::clone(&self.retries)
    }

    /// The retry count; the old name of [`retries`](Self::retries).
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = restartable(|_: &Checkpoint<u8>| stream::iter([Ok::<u8, String>(1)]))
    ///     .retry(RetryPolicy::exponential());
    /// assert_eq!(s.stats().get(), 0);
    /// ```
    #[deprecated(since = "0.2.0", note = "use `Retry::retries`")]
    pub fn stats(&self) -> EventCounter {
        self.retries()
    }

    /// The restartable source (its checkpoint, delivered and open counts).
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    ///
    /// let s = restartable(|_: &Checkpoint<u8>| stream::iter([Ok::<u8, String>(1)]))
    ///     .retry(RetryPolicy::exponential());
    /// assert_eq!(s.get_restartable().opens(), 0);
    /// ```
    pub fn get_restartable(&self) -> &Restartable<F, S, K> {
        &self.inner
    }

    /// The policy.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::stream;
    /// use std::time::Duration;
    ///
    /// let s = restartable(|_: &Checkpoint<u8>| stream::iter([Ok::<u8, String>(1)]))
    ///     .retry(RetryPolicy::fixed(Duration::from_secs(1), 2).reset_after_success(false));
    /// assert!(!s.policy().resets_after_success());
    /// ```
    pub fn policy(&self) -> &RetryPolicy<B, P> {
        &self.policy
    }
}

impl<F, S, K, B, P, T, E> Retry<F, S, K, B, P>
where
    B: BackoffBuilder + Clone,
    K: Checkpointer<T>,
    S: Stream<Item = Result<T, E>>,
{
    /// The checkpoint as of the last delivered item.
    ///
    /// ```
    /// use millrace::prelude::*;
    /// use futures::{stream, StreamExt};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut s = restartable(|_: &Checkpoint<u8>| stream::iter([Ok::<u8, String>(1), Ok(2)]))
    ///     .retry(RetryPolicy::exponential());
    /// s.next().await;
    /// assert_eq!(s.checkpoint(), &Checkpoint { delivered: 1, last: Some(1) });
    /// # }
    /// ```
    pub fn checkpoint(&self) -> &K::Checkpoint {
        self.inner.checkpoint()
    }
}

impl<F, S, K, B, P, T, E> Stream for Retry<F, S, K, B, P>
where
    B: BackoffBuilder + Clone,
    P: RetryIf<E>,
    K: Checkpointer<T>,
    F: FnMut(&K::Checkpoint) -> S,
    S: Stream<Item = Result<T, E>>,
    E: fmt::Display,
{
    type Item = Result<T, E>;

    // Hot path, no loop: poll the open source once and hand an item over. Everything that
    // runs only after an error (the policy, the backoff, the timer, the tracing event) is in
    // the out-of-line `poll_after_error`; the backoff wait is polled through `poll_sleep`,
    // which gets the boxed timer only. What the retry count still costs on a micro-pipeline
    // of trivial stages is measured and accepted in `benches/RESULTS.md` (`retry_ok`).
    #[inline]
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.as_mut().project();
        if *this.sleeping {
            ready!(poll_sleep(
                this.sleep.as_mut().map(|sleep| sleep.as_mut()),
                cx
            ));
            *this.sleeping = false;
        }
        match ready!(this.inner.as_mut().poll_attempt(cx)) {
            Some(Ok(item)) => {
                if *this.streak != 0 && this.policy.reset_after_success {
                    // Progress: the next failure starts a fresh schedule.
                    *this.streak = 0;
                    *this.waited = Duration::ZERO;
                    *this.backoff = None;
                }
                Poll::Ready(Some(Ok(item)))
            }
            Some(Err(error)) => self.poll_after_error(error, cx),
            None => {
                *this.done = true;
                Poll::Ready(None)
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done || self.inner.is_done() {
            (0, Some(0))
        } else {
            // A failure can cut the current source short and a re-open can yield anything.
            (0, None)
        }
    }
}

impl<F, S, K, B, P, T, E> Retry<F, S, K, B, P>
where
    B: BackoffBuilder + Clone,
    P: RetryIf<E>,
    K: Checkpointer<T>,
    F: FnMut(&K::Checkpoint) -> S,
    S: Stream<Item = Result<T, E>>,
    E: fmt::Display,
{
    /// `poll_next` after the source failed with `error`: waits and re-opens per the policy
    /// (looping while re-opened sources fail at once), or yields the error and ends.
    #[cold]
    #[inline(never)]
    fn poll_after_error(
        mut self: Pin<&mut Self>,
        error: E,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<T, E>>> {
        let mut this = self.as_mut().project();
        let mut error = error;
        loop {
            // Error path from here on: nothing below runs while items flow.
            let delay = if this.policy.retry_if.should_retry(&error) {
                let policy = &*this.policy;
                let backoff = this
                    .backoff
                    .get_or_insert_with(|| policy.builder.clone().build());
                policy.next_wait(backoff, *this.waited)
            } else {
                None
            };
            let Some(delay) = delay else {
                tracing::warn!(
                    attempts = *this.streak + 1,
                    retries = this.retries.get(),
                    delivered = this.inner.delivered(),
                    error = %error,
                    "millrace retry: giving up, yielding the last error and ending the stream"
                );
                *this.done = true;
                this.inner.finish();
                return Poll::Ready(Some(Err(error)));
            };
            *this.streak += 1;
            *this.waited += delay;
            this.retries.record();
            tracing::warn!(
                attempt = *this.streak,
                delay = ?delay,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                delivered = this.inner.delivered(),
                error = %error,
                "millrace retry: source failed, re-opening from the checkpoint after a backoff"
            );
            drop(error);
            let deadline = tokio::time::Instant::now() + delay;
            match this.sleep.as_mut() {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => *this.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            *this.sleeping = true;
            ready!(poll_sleep(
                this.sleep.as_mut().map(|sleep| sleep.as_mut()),
                cx
            ));
            *this.sleeping = false;
            match ready!(this.inner.as_mut().poll_attempt(cx)) {
                Some(Ok(item)) => {
                    if this.policy.reset_after_success {
                        // Progress: the next failure starts a fresh schedule.
                        *this.streak = 0;
                        *this.waited = Duration::ZERO;
                        *this.backoff = None;
                    }
                    return Poll::Ready(Some(Ok(item)));
                }
                Some(Err(next)) => error = next,
                None => {
                    *this.done = true;
                    return Poll::Ready(None);
                }
            }
        }
    }
}

/// Waits out a backoff (only after an error).
///
/// `#[cold]` and out of line so that `poll_next` stays small enough to be inlined into the
/// consumer; it gets the boxed timer itself, never a pointer into the stream.
#[cold]
#[inline(never)]
fn poll_sleep(sleep: Option<Pin<&mut Sleep>>, cx: &mut Context<'_>) -> Poll<()> {
    match sleep {
        Some(sleep) => sleep.poll(cx),
        None => Poll::Ready(()),
    }
}

impl<F, S, K, B, P, T, E> FusedStream for Retry<F, S, K, B, P>
where
    B: BackoffBuilder + Clone,
    P: RetryIf<E>,
    K: Checkpointer<T>,
    F: FnMut(&K::Checkpoint) -> S,
    S: Stream<Item = Result<T, E>>,
    E: fmt::Display,
{
    fn is_terminated(&self) -> bool {
        self.done || self.inner.is_done()
    }
}

/// Reports [`StageSnapshot::retries`](crate::StageSnapshot::retries) from the live retry count.
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let s = restartable(|cp: &Checkpoint<u64>| {
///     stream::iter(cp.delivered..3).map(|i| if i == 1 { Err("down") } else { Ok(i) })
/// })
/// .retry(RetryPolicy::fixed(Duration::from_millis(10), 2))
/// .metered("fetch")
/// .with_events();
/// let m = s.metrics();
/// let _: Vec<_> = s.collect().await;
/// assert_eq!(m.snapshot().retries, Some(2));
/// # }
/// ```
impl<F, S, K, B, P> Observable for Retry<F, S, K, B, P>
where
    B: BackoffBuilder,
{
    fn observe_into(&self, stage: &StageMetrics) {
        stage.track_retries(&self.retries);
    }
}
