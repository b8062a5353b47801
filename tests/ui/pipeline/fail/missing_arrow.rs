use millrace::prelude::*;

fn main() {
    let _ = pipeline! { futures::stream::iter([1u32]) add(1) };
    let _ = pipeline! { futures::stream::iter([1u32]) => .boxed() .fuse() fuse() };
    // A second method without `=>` is not folded into the first stage.
    let _ = pipeline! { futures::stream::iter([1u32]) => .map(|x| x + 1) .batch(3) };
    let _ = pipeline! { futures::stream::iter([1u32]) => .map(|x| x + 1).batch(3).take(1) };
}
