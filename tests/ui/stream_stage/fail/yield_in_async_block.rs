use millrace::prelude::*;

#[stream_stage(item = u32)]
async fn numbers(n: u32) {
    let later = async move {
        yield_all!(futures::stream::iter([n]));
    };
    later.await;
}

fn main() {}
