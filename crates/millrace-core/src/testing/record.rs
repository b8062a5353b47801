use std::future::poll_fn;
use std::pin::pin;
use std::time::Duration;

use futures_core::Stream;

/// What [`record`] saw while consuming a stream.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Recording<T> {
    /// Every item, in order.
    pub items: Vec<T>,
    /// For each item, the tokio time elapsed since `record` started (exact under paused time).
    pub times: Vec<Duration>,
    /// How many times the stream was polled, the final `None` included.
    pub polls: u64,
    /// How many polls returned `Pending`.
    pub pendings: u64,
}

impl<T, E> Recording<Result<T, E>> {
    /// The `Ok` items, in order.
    pub fn oks(&self) -> Vec<&T> {
        self.items.iter().filter_map(|r| r.as_ref().ok()).collect()
    }

    /// The errors, in order.
    pub fn errs(&self) -> Vec<&E> {
        self.items.iter().filter_map(|r| r.as_ref().err()).collect()
    }
}

/// Consumes `stream` to its end, recording items, virtual timestamps, polls and `Pending`s.
///
/// ```
/// use millrace::testing::{record, scripted, Step};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let rec = record(scripted([Step::Item(1), Step::Pending, Step::Item(2)])).await;
/// assert_eq!(rec.items, [1, 2]);
/// assert_eq!((rec.polls, rec.pendings), (4, 1));
/// # }
/// ```
pub async fn record<S: Stream>(stream: S) -> Recording<S::Item> {
    let start = tokio::time::Instant::now();
    let mut stream = pin!(stream);
    let mut rec = Recording {
        items: Vec::new(),
        times: Vec::new(),
        polls: 0,
        pendings: 0,
    };
    loop {
        let next = poll_fn(|cx| {
            rec.polls += 1;
            let p = stream.as_mut().poll_next(cx);
            if p.is_pending() {
                rec.pendings += 1;
            }
            p
        })
        .await;
        match next {
            Some(item) => {
                rec.times.push(start.elapsed());
                rec.items.push(item);
            }
            None => return rec,
        }
    }
}
