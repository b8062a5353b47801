use millrace::prelude::*;

#[stream_stage(item = u32)]
fn numbers(upstream: impl Stream<Item = u32> + Send) {
    let _ = upstream;
}

fn main() {}
