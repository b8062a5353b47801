use millrace::prelude::*;

fn main() {
    let _ = pipeline! {};
}
