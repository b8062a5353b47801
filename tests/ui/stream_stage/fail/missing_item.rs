use futures::StreamExt;
use millrace::prelude::*;

#[stream_stage(local)]
async fn numbers(n: u32) {
    yield_!(n);
}

// Only the missing `item` is reported: nothing where the stream is used.
async fn used() {
    let _: Vec<u32> = numbers(1).collect().await;
}

fn main() {
    let _ = used();
}
