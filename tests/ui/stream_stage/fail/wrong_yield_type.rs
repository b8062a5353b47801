use millrace::prelude::*;

#[stream_stage(item = u32)]
async fn fast(numbers: impl Stream<Item = u32> + Send) {
    #[for_await]
    for x in numbers {
        yield_!(x.to_string());
    }
}

#[stream_stage(item = u32)]
async fn general(numbers: impl Stream<Item = u32> + Send) {
    #[for_await]
    for x in numbers {
        yield_!(x);
        yield_!("two");
    }
}

fn main() {}
