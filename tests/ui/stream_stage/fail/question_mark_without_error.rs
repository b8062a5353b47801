use millrace::prelude::*;

#[stream_stage(item = u32)]
async fn parse(lines: impl Stream<Item = &'static str> + Send) {
    #[for_await]
    for line in lines {
        yield_!(line.parse()?);
    }
}

fn main() {}
