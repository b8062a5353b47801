use millrace::prelude::*;

#[stream_stage(item = u32)]
async fn numbers(n: u32) {
    let emit = |x: u32| {
        yield_!(x);
    };
    emit(n);
}

fn main() {}
