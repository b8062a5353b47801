//! `buffered(16)` and `buffer_unordered(16)` over futures that are ready at once
//! (`futures::future::ready`): the first stage becomes `map(|x| ready(x * 3)).buffered(16)`.

use futures::executor::block_on;
use futures::future::ready;
use futures::stream::{self, StreamExt};

use crate::registry::Variant;

pub(crate) const VARIANTS: &[Variant] = &[
    Variant::anchor("buffered16", buffered16),
    Variant::anchor("buffer_unordered16", buffer_unordered16),
    Variant::anchor("buffered16_tokio", buffered16_tokio),
];

const CONCURRENCY: usize = 16;

fn buffered16(n: u64) -> u64 {
    let s = stream::iter(0..n)
        .map(|x| ready(x * 3))
        .buffered(CONCURRENCY)
        .filter(|x| ready(x % 2 == 0))
        .map(|x| x + 1);
    block_on(fold_sum!(s))
}

fn buffer_unordered16(n: u64) -> u64 {
    let s = stream::iter(0..n)
        .map(|x| ready(x * 3))
        .buffer_unordered(CONCURRENCY)
        .filter(|x| ready(x % 2 == 0))
        .map(|x| x + 1);
    block_on(fold_sum!(s))
}

/// `buffered16` on a tokio `current_thread` runtime: the anchor of the spawned
/// `map_concurrent` row, which needs tokio (compare rows driven by the same executor).
fn buffered16_tokio(n: u64) -> u64 {
    let s = stream::iter(0..n)
        .map(|x| ready(x * 3))
        .buffered(CONCURRENCY)
        .filter(|x| ready(x % 2 == 0))
        .map(|x| x + 1);
    crate::registry::runtime().block_on(fold_sum!(s))
}
