//! Spawning pipelines whose items hold a `&'static str` error (issue 15, point 14).
//!
//! rustc (1.95) cannot prove `Send` for an `async` block that builds such a pipeline inline
//! (E0308 "one type is more general than the other": the auto-trait check of the block's
//! state erases the `'static`, rust-lang/rust#102211). Building the stream outside the block,
//! or in a function returning `impl Stream + Send + 'static`, avoids it; these tests prove both
//! ways compile and run, so the documented workaround stays true.
use futures::{Stream, StreamExt};
use millrace::prelude::*;

fn doubled(n: u32) -> impl Stream<Item = Vec<Result<u32, &'static str>>> + Send + 'static {
    futures::stream::iter(0..n)
        .map(Ok::<u32, &'static str>)
        .map_concurrent(4, |r| async move { r.map(|x| x * 2) })
        .batch(3)
}

#[tokio::test]
async fn a_pipeline_built_by_a_function_can_be_spawned() {
    let task = tokio::spawn(async move { doubled(10).collect::<Vec<_>>().await });
    assert_eq!(task.await.unwrap().len(), 4);
}

#[tokio::test]
async fn a_pipeline_built_before_the_async_block_can_be_spawned() {
    let pipeline = restartable(|cp: &Checkpoint<u32>| {
        let from = cp.delivered as u32;
        futures::stream::iter(from..10).map(Ok::<u32, &'static str>)
    })
    .retry(RetryPolicy::exponential())
    .map_concurrent(4, |r| async move { r.map(|x| x * 2) })
    .batch(3);
    let task = tokio::spawn(pipeline.collect::<Vec<_>>());
    assert_eq!(task.await.unwrap().len(), 4);
}
