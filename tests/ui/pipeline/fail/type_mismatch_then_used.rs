use futures::StreamExt;
use millrace::prelude::*;

#[stream_stage(item = String)]
async fn repeat(words: impl Stream<Item = String> + Send, times: usize) {
    #[for_await]
    for w in words {
        yield_!(w.repeat(times));
    }
}

// A function stage with arguments, fed items of the wrong type, then more stages and code
// using the pipeline: one error, at the stage, in the stage's terms.
async fn used() -> usize {
    pipeline! {
        futures::stream::iter([1u32, 2])
        => repeat(2)
        => .map(|s| s.len())
    }
    .count()
    .await
}

fn main() {
    let _ = used();
}
