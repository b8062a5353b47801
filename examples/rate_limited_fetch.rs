//! Run with: cargo run --release --example rate_limited_fetch
//!
//! 100 requests to a slow, flaky API (about 1 in 8 attempts answers "503, try later"), with
//! limits that hold on **every attempt**, retries included: at most 5 in flight and at most 10
//! started per second. One `Throttle` holds both limits; `map_retry` retries each failed item
//! with backoff and takes the throttle for every attempt, so a retry can neither jump the rate
//! nor exceed the in-flight bound. The timeline shows the attempts; the summary counts the
//! busiest second and the peak in flight as the API saw them.
//!
//! (A `rate_limit` stage in front of a concurrent stage would limit the *items*: a retry made
//! inside the stage would pass it again unchecked. That is the trap this example avoids; the
//! HTTP adapter does the same with `HttpOptions::rate_limiter(..)` and `max_in_flight(..)`.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, stream};
use millrace::policy::{Backoff, Throttle};
use millrace::prelude::*;
use tokio::time::Instant;

const REQUESTS: u32 = 100;
const IN_FLIGHT: usize = 5;
const PER_SECOND: u32 = 10;

/// The API's latency for request `id`: between 200 ms and 1 s, slow streaks included.
fn latency(id: u32) -> Duration {
    Duration::from_millis(200 + u64::from((id * 37 + id / 10 * 11) % 9) * 100)
}

/// Whether attempt `attempt` (1-based) of request `id` is answered with a 503.
fn overloaded(id: u32, attempt: usize) -> bool {
    attempt == 1 && id % 8 == 3 || attempt == 2 && id % 24 == 3
}

#[derive(Debug)]
struct Busy;

/// What the API saw: each attempt's start and end.
#[derive(Default)]
struct ApiLog {
    attempts: Mutex<Vec<(u32, usize, Duration, Duration)>>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

#[tokio::main]
async fn main() {
    let t0 = Instant::now();
    let api = Arc::new(ApiLog::default());
    let throttle = Throttle::new()
        .rate(Rate::per_second(PER_SECOND))
        .max_in_flight(IN_FLIGHT);
    let policy = RetryPolicy::new(
        Backoff::exponential(Duration::from_millis(200))
            .max_delay(Duration::from_secs(2))
            .max_retries(4)
            .jitter(0.5),
    )
    .retry_if(|_: &Busy| true);
    let tries = Arc::new(Mutex::new(vec![0usize; REQUESTS as usize]));

    let s = stream::iter(0..REQUESTS)
        // Up to 20 requests in progress (waiting for a permit or backing off); the
        // throttle decides how many reach the API.
        .map_retry(20, policy, {
            let api = Arc::clone(&api);
            move |id| {
                let (api, tries) = (Arc::clone(&api), Arc::clone(&tries));
                async move {
                    let attempt = {
                        let mut tries = tries.lock().unwrap();
                        tries[id as usize] += 1;
                        tries[id as usize]
                    };
                    let now = api.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    api.peak.fetch_max(now, Ordering::SeqCst);
                    let started = t0.elapsed();
                    tokio::time::sleep(latency(id) / if overloaded(id, attempt) { 4 } else { 1 })
                        .await;
                    api.in_flight.fetch_sub(1, Ordering::SeqCst);
                    api.attempts
                        .lock()
                        .unwrap()
                        .push((id, attempt, started, t0.elapsed()));
                    if overloaded(id, attempt) {
                        Err(Busy)
                    } else {
                        Ok(id)
                    }
                }
            }
        })
        .throttle(throttle);
    let retries = s.retries();
    let responses: Vec<Result<u32, Busy>> = s.collect().await;

    let mut attempts = api.attempts.lock().unwrap().clone();
    attempts.sort_by_key(|a| a.2);
    println!("  id  try  start    end     ");
    for (id, attempt, started, finished) in attempts.iter().take(16) {
        println!(
            "{id:>4} {attempt:>4} {:>6.2}s {:>6.2}s {}",
            started.as_secs_f64(),
            finished.as_secs_f64(),
            if overloaded(*id, *attempt) {
                "503, retried"
            } else {
                ""
            }
        );
    }
    println!("   …");
    let starts: Vec<Duration> = attempts.iter().map(|a| a.2).collect();
    let busiest = starts
        .iter()
        .map(|t| {
            starts
                .iter()
                .filter(|u| **u >= *t && **u - *t < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    let peak = api.peak.load(Ordering::SeqCst);
    let delivered = responses.iter().filter(|r| r.is_ok()).count();
    println!(
        "{delivered} of {REQUESTS} delivered in order: {}, {} attempts ({} retries); \
         busiest second at the API: {busiest} attempts (limit {} = rate + burst); \
         peak in flight {peak} (limit {IN_FLIGHT}); total {:.2}s",
        responses
            .iter()
            .enumerate()
            .all(|(i, r)| r.as_ref().is_ok_and(|id| *id == i as u32)),
        attempts.len(),
        retries.get(),
        PER_SECOND + 1,
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(delivered, REQUESTS as usize);
    assert_eq!(attempts.len() as u64, u64::from(REQUESTS) + retries.get());
    assert!(peak <= IN_FLIGHT);
    assert!(busiest <= PER_SECOND as usize + 1);
}
