use millrace::prelude::*;

fn main() {
    // Every bad stage is reported in one compile.
    let _ = pipeline! {
        futures::stream::iter([1u32])
        => "not a stage"
        =>
        => |x| x
    };
}
