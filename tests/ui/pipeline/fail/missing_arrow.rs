use millrace::prelude::*;

fn main() {
    let _ = pipeline! { futures::stream::iter([1u32]) add(1) };
    let _ = pipeline! { futures::stream::iter([1u32]) => .boxed() .fuse() fuse() };
}
