use millrace::prelude::*;

#[stream_stage(item =)]
async fn numbers(n: u32) {
    yield_!(n);
}

// The stub emitted beside the error keeps callers quiet.
fn main() {
    let _ = numbers(1);
}
