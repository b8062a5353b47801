use millrace::prelude::*;

#[stream_stage(item = u32)]
async fn numbers(n: u32) -> u32 {
    yield_!(n);
}

fn main() {}
