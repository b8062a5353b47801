use millrace::prelude::*;

async fn not_a_stage() {
    yield_!(1);
}

fn main() {
    let _ = not_a_stage();
}
