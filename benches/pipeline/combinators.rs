//! futures `StreamExt` combinators, consumed by `fold` or by a `while let` loop.

use std::future::ready;

use futures::executor::block_on;
use futures::stream::{self, Stream, StreamExt};

use crate::registry::Variant;

pub(crate) const VARIANTS: &[Variant] = &[
    Variant::anchor("combinators_fold", combinators_fold),
    Variant::anchor("combinators_while_let", combinators_while_let),
    Variant::anchor("result_bare", result_bare),
    Variant::anchor("result_bare_tokio", result_bare_tokio),
];

/// The 3 stages as futures combinators around any `u64` source.
pub(crate) fn stages<S: Stream<Item = u64>>(s: S) -> impl Stream<Item = u64> {
    s.map(|x| x * 3)
        .filter(|x| ready(x % 2 == 0))
        .map(|x| x + 1)
}

fn combinators_fold(n: u64) -> u64 {
    block_on(fold_sum!(stages(stream::iter(0..n))))
}

fn combinators_while_let(n: u64) -> u64 {
    block_on(async move {
        let mut s = std::pin::pin!(stages(stream::iter(0..n)));
        let mut acc = 0;
        while let Some(x) = s.next().await {
            acc += x;
        }
        acc
    })
}

/// The error type of the `Result` pipelines; never produced on the measured path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BenchError;

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("bench error (never produced)")
    }
}

impl std::error::Error for BenchError {}

/// The fallible source of the no-error-path targets (retry/recover/on_error): `0..n` as `Ok`s.
pub(crate) fn result_source(n: u64) -> impl Stream<Item = Result<u64, BenchError>> {
    stream::iter(0..n).map(Ok)
}

/// Unwraps a `Result` stream (panicking on an error, which the measured path never has) and
/// runs the 3 stages: with `fold_sum!` the anchor that retry/recover/on_error variants are
/// compared with (`≤ 5 instr/item over the bare stream`).
pub(crate) fn result_stages<S>(s: S) -> impl Stream<Item = u64>
where
    S: Stream<Item = Result<u64, BenchError>>,
{
    stages(s.map(|r| r.unwrap_or_else(|e| panic!("{e}"))))
}

fn result_bare(n: u64) -> u64 {
    block_on(fold_sum!(result_stages(result_source(n))))
}

/// `result_bare` driven by a tokio `current_thread` runtime instead of `futures`' `block_on`:
/// the anchor for tokio-driven rows (the executor changes how LLVM inlines the pipeline).
fn result_bare_tokio(n: u64) -> u64 {
    crate::registry::runtime().block_on(fold_sum!(result_stages(result_source(n))))
}
