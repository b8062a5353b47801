//! A tokio `mpsc(1024)` hop between the source (on a spawned task) and the stages: one item
//! per message, or chunks of 256 items per message. `current_thread` runtime.

use futures::stream::{self, StreamExt};
use tokio::sync::mpsc;

use crate::combinators::stages;
use crate::registry::{Variant, runtime};

pub(crate) const VARIANTS: &[Variant] = &[
    Variant::anchor("mpsc_per_item", mpsc_per_item),
    Variant::anchor("mpsc_chunked_256", mpsc_chunked_256),
];

const CAPACITY: usize = 1024;
const CHUNK: usize = 256;

fn mpsc_per_item(n: u64) -> u64 {
    runtime().block_on(async move {
        let (tx, mut rx) = mpsc::channel::<u64>(CAPACITY);
        let producer = tokio::spawn(async move {
            let mut src = stream::iter(0..n);
            while let Some(x) = src.next().await {
                if tx.send(x).await.is_err() {
                    break;
                }
            }
        });
        let received = stream::poll_fn(move |cx| rx.poll_recv(cx));
        let sum = fold_sum!(stages(received)).await;
        producer.await.expect("producer task");
        sum
    })
}

fn mpsc_chunked_256(n: u64) -> u64 {
    runtime().block_on(async move {
        let (tx, mut rx) = mpsc::channel::<Vec<u64>>(CAPACITY);
        let producer = tokio::spawn(async move {
            // One `Vec` allocation per 256 items: amortised, that is the point of chunking.
            let mut src = stream::iter(0..n).chunks(CHUNK);
            while let Some(chunk) = src.next().await {
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
        });
        let received = stream::poll_fn(move |cx| rx.poll_recv(cx)).flat_map(stream::iter);
        let sum = fold_sum!(stages(received)).await;
        producer.await.expect("producer task");
        sum
    })
}
