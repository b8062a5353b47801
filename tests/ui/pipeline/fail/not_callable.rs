use millrace::prelude::*;

fn main() {
    let _ = pipeline! { futures::stream::iter([1u32]) => 42 };
}
