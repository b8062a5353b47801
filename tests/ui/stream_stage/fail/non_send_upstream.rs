use std::rc::Rc;

use millrace::prelude::*;

#[stream_stage(item = u32)]
async fn unwrap_rc(numbers: impl Stream<Item = Rc<u32>>) {
    #[for_await]
    for x in numbers {
        yield_!(*x);
    }
}

fn main() {
    let _ = unwrap_rc(futures::stream::iter(vec![Rc::new(1)]));
}
