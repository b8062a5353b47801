use millrace::prelude::*;

// Argument and signature problems are reported in one compile.
#[stream_stage(item = u32, error = u32, error = u64)]
fn numbers(&self) {}

fn main() {}
