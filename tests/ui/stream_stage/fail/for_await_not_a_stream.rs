use millrace::prelude::*;

#[stream_stage(item = u32)]
async fn doubled(numbers: Vec<u32>) {
    #[for_await]
    for x in numbers {
        yield_!(x * 2);
    }
}

fn main() {
    let _ = doubled(vec![1, 2]);
}
