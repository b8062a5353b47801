use millrace::prelude::*;

#[stream_stage(local)]
async fn numbers(n: u32) {
    yield_!(n);
}

fn main() {}
