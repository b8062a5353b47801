use millrace::prelude::*;

#[stream_stage(item = u32, foo)]
async fn numbers(n: u32) {
    yield_!(n);
}

fn main() {}
