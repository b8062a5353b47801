use futures::StreamExt;
use millrace::prelude::*;

// A last stage that is not a stream is reported once, at the stage: nothing more where the
// pipeline is used (no E0599 on `.collect()`, no "remove the `.await`").
async fn collected() {
    let _: Vec<u32> = pipeline! {
        futures::stream::iter([1u32, 2])
        => .map(|x| x + 1)
        => .count()
    }
    .collect()
    .await;
}

async fn awaited() {
    let _n: usize = pipeline! {
        futures::stream::iter([1u32, 2])
        => .count()
    }
    .await;
}

fn main() {
    let _ = collected();
    let _ = awaited();
}
