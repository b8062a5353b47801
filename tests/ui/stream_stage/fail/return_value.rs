use millrace::prelude::*;

#[stream_stage(item = u32)]
async fn numbers(upstream: impl Stream<Item = u32> + Send) {
    #[for_await]
    for x in upstream {
        if x > 3 {
            return x;
        }
        yield_!(x);
    }
}

fn main() {}
