//! The producer side of [`Prefetch`](super::Prefetch): the task that fills chunks from the
//! upstream and hands them over (see the parent module's design notes).

use std::future::poll_fn;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::UnboundedSender;

use super::Counts;

/// The producer task: fill a chunk while the upstream is ready and permits last, hand it over.
pub(super) async fn produce<S: Stream>(
    upstream: S,
    tx: UnboundedSender<Vec<S::Item>>,
    permits: Arc<Semaphore>,
    counts: Arc<Counts>,
    chunk_max: usize,
) {
    let mut upstream = pin!(upstream);
    // Permits taken from the semaphore and not yet spent on an item.
    let mut budget = 0usize;
    loop {
        if budget == 0 {
            match permits.acquire().await {
                Ok(permit) => permit.forget(),
                Err(_) => return, // closed: never happens, the semaphore is never closed
            }
            budget = 1;
        }
        // Top up to a full chunk with whatever is free right now; we are the only acquirer,
        // so `available_permits` cannot shrink under us.
        let extra = permits
            .available_permits()
            .min(chunk_max.saturating_sub(budget));
        if extra > 0
            && let Ok(permit) = permits.try_acquire_many(extra as u32)
        {
            permit.forget();
            budget += extra;
        }

        let mut chunk = Vec::with_capacity(budget);
        let mut panic = None;
        let ended = poll_fn(|cx| {
            // A panic in the upstream must not lose the items already in this chunk: catch it,
            // hand the chunk over, then re-raise it so the JoinHandle carries it to the consumer.
            match catch_unwind(AssertUnwindSafe(|| {
                fill(upstream.as_mut(), cx, &mut chunk, budget)
            })) {
                Ok(poll) => poll,
                Err(payload) => {
                    panic = Some(payload);
                    Poll::Ready(true)
                }
            }
        })
        .await;
        budget -= chunk.len();
        if !chunk.is_empty() {
            // Counted before the send, so the consumer never releases more than was sent.
            Counts::add(&counts.sent, chunk.len());
            if tx.send(chunk).is_err() {
                return; // the consumer is gone
            }
        }
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
        if ended {
            return;
        }
    }
}

/// Pulls ready items into `chunk` until it holds `budget` items (`Ready(false)`), the upstream
/// ends (`Ready(true)`) or is pending with a non-empty chunk (`Ready(false)`).
///
/// Out of line (once per chunk) so that `upstream` arrives as a `noalias` argument and the
/// chunk is filled through a local `Vec` (moved back by a guard, also when the upstream
/// panics): nothing else can alias them, so the loop keeps the upstream's and the chunk's
/// state in registers.
#[inline(never)]
fn fill<S: Stream>(
    mut upstream: Pin<&mut S>,
    cx: &mut Context<'_>,
    chunk: &mut Vec<S::Item>,
    budget: usize,
) -> Poll<bool> {
    /// Puts the local chunk back where the caller expects it, on every exit.
    struct PutBack<'a, T> {
        to: &'a mut Vec<T>,
        buf: Vec<T>,
    }
    impl<T> Drop for PutBack<'_, T> {
        fn drop(&mut self) {
            std::mem::swap(self.to, &mut self.buf);
        }
    }
    let mut put_back = PutBack {
        buf: std::mem::take(chunk),
        to: chunk,
    };
    let buf = &mut put_back.buf;
    while buf.len() < budget {
        // Never taken when `chunk` was made by `Vec::with_capacity(budget)`, but it tells LLVM
        // that `push` below never grows, so the growth call (which would take the `Vec`'s
        // address) leaves the loop.
        if buf.len() == buf.capacity() {
            break;
        }
        match upstream.as_mut().poll_next(cx) {
            Poll::Ready(Some(item)) => buf.push(item),
            Poll::Ready(None) => return Poll::Ready(true),
            Poll::Pending if buf.is_empty() => return Poll::Pending,
            Poll::Pending => return Poll::Ready(false),
        }
    }
    Poll::Ready(false)
}
