use millrace::prelude::*;

struct Source;

impl Source {
    #[stream_stage(item = u32)]
    async fn numbers(&self, n: u32) {
        yield_!(n);
    }
}

fn main() {}
