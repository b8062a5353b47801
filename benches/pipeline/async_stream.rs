//! Each stage an `async_stream::stream!` generator: unboxed, boxed, and with an extra
//! (ready) `.await` per item (the anchor of `#[stream_stage]`'s general path).

use std::future::ready;
use std::pin::Pin;

use ::async_stream::stream;
use futures::executor::block_on;
use futures::stream::{self as fstream, Stream, StreamExt};

use crate::registry::Variant;

pub(crate) const VARIANTS: &[Variant] = &[
    Variant::anchor("async_stream", async_stream),
    Variant::anchor("async_stream_await", async_stream_await),
    Variant::anchor("boxed_async_stream", boxed_async_stream),
];

fn triple<S: Stream<Item = u64>>(s: S) -> impl Stream<Item = u64> {
    stream! {
        for await x in s {
            yield x * 3;
        }
    }
}

fn even<S: Stream<Item = u64>>(s: S) -> impl Stream<Item = u64> {
    stream! {
        for await x in s {
            if x % 2 == 0 {
                yield x;
            }
        }
    }
}

fn plus_one<S: Stream<Item = u64>>(s: S) -> impl Stream<Item = u64> {
    stream! {
        for await x in s {
            yield x + 1;
        }
    }
}

fn async_stream(n: u64) -> u64 {
    block_on(fold_sum!(plus_one(even(triple(fstream::iter(0..n))))))
}

/// The same generators, each awaiting one ready future per item besides the upstream, so a
/// stage macro cannot lower it to a plain `poll_next` loop (its "general path").
fn awaiting<S: Stream<Item = u64>>(s: S, f: fn(u64) -> Option<u64>) -> impl Stream<Item = u64> {
    stream! {
        for await x in s {
            if let Some(y) = ready(f(x)).await {
                yield y;
            }
        }
    }
}

fn async_stream_await(n: u64) -> u64 {
    let s = awaiting(fstream::iter(0..n), |x| Some(x * 3));
    let s = awaiting(s, |x| (x % 2 == 0).then_some(x));
    let s = awaiting(s, |x| Some(x + 1));
    block_on(fold_sum!(s))
}

type BoxU64 = Pin<Box<dyn Stream<Item = u64> + Send>>;

fn boxed_async_stream(n: u64) -> u64 {
    let s: BoxU64 = fstream::iter(0..n).boxed();
    let s: BoxU64 = triple(s).boxed();
    let s: BoxU64 = even(s).boxed();
    let s: BoxU64 = plus_one(s).boxed();
    block_on(fold_sum!(s))
}
