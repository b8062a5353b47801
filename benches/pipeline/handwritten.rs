//! The limit: one hand-written `impl Stream` struct per stage (pin-project-lite), and a
//! hand-written sum future. Also the same structs each boxed as `Pin<Box<dyn Stream>>`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use futures::executor::block_on;
use futures::stream::{self, Stream};
use pin_project_lite::pin_project;

use crate::registry::Variant;

pub(crate) const VARIANTS: &[Variant] = &[
    Variant::anchor("handwritten", handwritten),
    Variant::anchor("boxed", boxed),
    // The anchor of the `metered` row: the smallest live item counter one would write by
    // hand, in the same place (right after the source, before the futures combinators).
    Variant::anchor("handwritten_counter", handwritten_counter),
];

pin_project! {
    /// Counts the items it yields into a shared counter anyone can read at any time: a
    /// local count stored with a relaxed store per item (one writer).
    pub(crate) struct Counter<S> { #[pin] upstream: S, seen: u64, shared: Arc<AtomicU64> }
}

impl<S: Stream<Item = u64>> Stream for Counter<S> {
    type Item = u64;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u64>> {
        let this = self.project();
        let polled = this.upstream.poll_next(cx);
        if let Poll::Ready(Some(_)) = polled {
            *this.seen += 1;
            this.shared.store(*this.seen, Ordering::Relaxed);
        }
        polled
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.upstream.size_hint()
    }
}

/// `combinators_fold` with a hand-written [`Counter`] right after the source.
fn handwritten_counter(n: u64) -> u64 {
    let shared = Arc::new(AtomicU64::new(0));
    let counted = Counter {
        upstream: stream::iter(0..n),
        seen: 0,
        shared: Arc::clone(&shared),
    };
    let sum = block_on(fold_sum!(crate::combinators::stages(counted)));
    assert_eq!(shared.load(Ordering::Relaxed), n);
    sum
}

pin_project! {
    /// `map(x * 3)`.
    pub(crate) struct Triple<S> { #[pin] upstream: S }
}

impl<S: Stream<Item = u64>> Stream for Triple<S> {
    type Item = u64;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u64>> {
        self.project()
            .upstream
            .poll_next(cx)
            .map(|o| o.map(|x| x * 3))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.upstream.size_hint()
    }
}

pin_project! {
    /// `filter(even)`.
    pub(crate) struct Even<S> { #[pin] upstream: S }
}

impl<S: Stream<Item = u64>> Stream for Even<S> {
    type Item = u64;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u64>> {
        let mut upstream = self.project().upstream;
        loop {
            match ready!(upstream.as_mut().poll_next(cx)) {
                Some(x) if x % 2 == 0 => return Poll::Ready(Some(x)),
                Some(_) => {}
                None => return Poll::Ready(None),
            }
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, self.upstream.size_hint().1)
    }
}

pin_project! {
    /// `map(x + 1)`.
    pub(crate) struct PlusOne<S> { #[pin] upstream: S }
}

impl<S: Stream<Item = u64>> Stream for PlusOne<S> {
    type Item = u64;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u64>> {
        self.project()
            .upstream
            .poll_next(cx)
            .map(|o| o.map(|x| x + 1))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.upstream.size_hint()
    }
}

pin_project! {
    /// The sink: sums every item.
    pub(crate) struct Sum<S> { #[pin] upstream: S, acc: u64 }
}

impl<S: Stream<Item = u64>> Future for Sum<S> {
    type Output = u64;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        let mut this = self.project();
        loop {
            match ready!(this.upstream.as_mut().poll_next(cx)) {
                Some(x) => *this.acc += x,
                None => return Poll::Ready(*this.acc),
            }
        }
    }
}

/// The 3 hand-written stages around any `u64` source.
pub(crate) fn stages<S: Stream<Item = u64>>(s: S) -> PlusOne<Even<Triple<S>>> {
    PlusOne {
        upstream: Even {
            upstream: Triple { upstream: s },
        },
    }
}

/// Sums a stream with the hand-written sink.
pub(crate) fn sum<S: Stream<Item = u64>>(s: S) -> Sum<S> {
    Sum {
        upstream: s,
        acc: 0,
    }
}

fn handwritten(n: u64) -> u64 {
    block_on(sum(stages(stream::iter(0..n))))
}

type BoxU64 = Pin<Box<dyn Stream<Item = u64> + Send>>;

/// Source and each of the 3 stages boxed: 4 virtual `poll_next` calls per item.
fn boxed(n: u64) -> u64 {
    let s: BoxU64 = Box::pin(stream::iter(0..n));
    let s: BoxU64 = Box::pin(Triple { upstream: s });
    let s: BoxU64 = Box::pin(Even { upstream: s });
    let s: BoxU64 = Box::pin(PlusOne { upstream: s });
    block_on(sum(s))
}
