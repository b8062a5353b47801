//! Run with: cargo run --release --example rate_limited_fetch
//!
//! 100 requests to a slow API, at most 5 in flight and at most 10 per second: one
//! `rate_limit` stage in front of one `map_concurrent` stage. The printed timeline shows both
//! limits holding: requests start at most 10 per second (100 ms apart), and when slow responses
//! pile up the in-flight limit takes over — never more than 5 are in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::prelude::*;
use tokio::time::Instant;

const REQUESTS: u32 = 100;
const IN_FLIGHT: usize = 5;
const PER_SECOND: u32 = 10;
/// The API's latency for request `id`: between 200 ms and 1 s, slow streaks included.
fn latency(id: u32) -> Duration {
    Duration::from_millis(200 + u64::from((id * 37 + id / 10 * 11) % 9) * 100)
}

struct Response {
    id: u32,
    started: Duration,
    finished: Duration,
    in_flight_at_start: usize,
}

#[tokio::main]
async fn main() {
    let t0 = Instant::now();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));

    let responses: Vec<Response> = stream::iter(0..REQUESTS)
        .rate_limit(Rate::per_second(PER_SECOND).burst(1))
        .map_concurrent(IN_FLIGHT, {
            let (in_flight, max_in_flight) = (in_flight.clone(), max_in_flight.clone());
            move |id| {
                let (in_flight, max_in_flight) = (in_flight.clone(), max_in_flight.clone());
                async move {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    max_in_flight.fetch_max(now, Ordering::SeqCst);
                    let started = t0.elapsed();
                    tokio::time::sleep(latency(id)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    Response {
                        id,
                        started,
                        finished: t0.elapsed(),
                        in_flight_at_start: now,
                    }
                }
            }
        })
        .collect()
        .await;

    println!("  id   start   end     in flight");
    for r in responses
        .iter()
        .filter(|r| r.id < 12 || r.id >= REQUESTS - 3)
    {
        println!(
            "{:>4} {:>6.2}s {:>6.2}s  {}",
            r.id,
            r.started.as_secs_f64(),
            r.finished.as_secs_f64(),
            "#".repeat(r.in_flight_at_start)
        );
        if r.id == 11 {
            println!("   …");
        }
    }
    let per_second = |s: u64| {
        responses
            .iter()
            .filter(|r| r.started.as_secs() == s)
            .count()
    };
    let seconds = t0.elapsed().as_secs() + 1;
    println!(
        "requests started per second: {:?}",
        (0..seconds).map(per_second).collect::<Vec<_>>()
    );
    let peak = max_in_flight.load(Ordering::SeqCst);
    println!(
        "{} responses in order: {}, peak in flight {peak} (limit {IN_FLIGHT}), total {:.2}s",
        responses.len(),
        responses.iter().enumerate().all(|(i, r)| r.id == i as u32),
        t0.elapsed().as_secs_f64()
    );
    assert!(peak <= IN_FLIGHT);
    assert!((0..seconds).all(|s| per_second(s) <= PER_SECOND as usize + 1));
}
