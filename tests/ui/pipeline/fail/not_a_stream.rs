use futures::StreamExt;
use millrace::prelude::*;

fn count<S: Stream>(s: S) -> usize {
    let _ = s;
    0
}

fn main() {
    let _ = pipeline! { futures::stream::iter([1u32]) => count => .boxed() => .map(|x: u32| x) };
}
