use millrace::prelude::*;

#[stream_stage(item = String)]
async fn shout(words: impl Stream<Item = String> + Send) {
    #[for_await]
    for w in words {
        yield_!(w.to_uppercase());
    }
}

fn main() {
    let _ = pipeline! {
        futures::stream::iter([1u32, 2])
        => shout
    };
}
