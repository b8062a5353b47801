use millrace::prelude::*;

#[stream_stage(item = u32, item = u64)]
async fn numbers(n: u32) {
    yield_!(n);
}

fn main() {}
