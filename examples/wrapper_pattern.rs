//! Run with: cargo run --release --example wrapper_pattern
//!
//! The wrapper pattern from async Python, done with millrace: a flaky third-party quote feed
//! is wrapped in layers — retry from a checkpoint, a fallback mirror that resumes with the
//! context of what was already streamed, a transforming layer and a validation layer — and the
//! output proves that no quote was lost or duplicated.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt, stream};
use millrace::policy::{RetryPolicy, Supervision};
use millrace::prelude::*;

const QUOTES: u64 = 20_000;
/// The primary feed goes down for good at this quote; the mirror must take over from here.
const PRIMARY_DIES_AT: u64 = 15_000;

/// A quote as the vendor sends it.
#[derive(Debug, Clone)]
struct RawQuote {
    seq: u64,
    price_cents: i64,
}

/// A quote after our transforming layer.
#[derive(Debug, Clone)]
struct Quote {
    seq: u64,
    price: f64,
}

/// The vendor's error type.
#[derive(Debug, Clone)]
enum FeedError {
    Reset { at: u64 },
    Down { at: u64 },
}

impl std::fmt::Display for FeedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FeedError::Reset { at } => write!(f, "connection reset before quote #{at}"),
            FeedError::Down { at } => write!(f, "primary feed down at quote #{at}"),
        }
    }
}

/// The vendor's price for quote `seq`; every 997th quote is corrupt (a negative price).
fn price_of(seq: u64) -> i64 {
    if seq % 997 == 500 {
        -1
    } else {
        10_000 + (seq * 7919 % 5_000) as i64
    }
}

/// The third-party generator: it can start at any sequence number, drops the connection
/// after a pseudo-random number of quotes, and is down for good from `PRIMARY_DIES_AT` on.
fn primary_feed(from: u64, open_no: u64) -> impl Stream<Item = Result<RawQuote, FeedError>> {
    // A seeded run length per connection: between 1 and ~2,000 quotes.
    let run = 1 + (open_no.wrapping_mul(6364136223846793005).rotate_left(17) % 2_000);
    let cut = (from + run).min(PRIMARY_DIES_AT);
    let items = (from..cut.min(QUOTES)).map(|seq| {
        Ok(RawQuote {
            seq,
            price_cents: price_of(seq),
        })
    });
    let end = if cut >= QUOTES {
        None
    } else if cut == PRIMARY_DIES_AT {
        Some(Err(FeedError::Down { at: cut }))
    } else {
        Some(Err(FeedError::Reset { at: cut }))
    };
    stream::iter(items.chain(end))
}

/// The mirror: slower to set up, never fails, starts wherever we tell it.
fn mirror_feed(from: u64) -> impl Stream<Item = Result<RawQuote, FeedError>> {
    stream::iter((from..QUOTES).map(|seq| {
        Ok(RawQuote {
            seq,
            price_cents: price_of(seq),
        })
    }))
}

/// The transforming layer, written as an async generator (`#[stream_stage]` makes it the named
/// stream `ToDollars<S>`, compiled to a plain `poll_next`).
#[stream_stage(item = Result<Quote, FeedError>)]
async fn to_dollars(raw: impl Stream<Item = Result<RawQuote, FeedError>> + Send) {
    #[for_await]
    for quote in raw {
        yield_!(quote.map(|q| Quote {
            seq: q.seq,
            price: q.price_cents as f64 / 100.0,
        }));
    }
}

#[tokio::main]
async fn main() {
    let started = Instant::now();
    let mut opens = 0u64;

    // Layer 1: retry. The factory re-opens the feed at the checkpoint, so nothing is
    // delivered twice; a short fixed backoff keeps the demo fast. It gives up on the
    // "down" error after 3 attempts and surfaces that error.
    let retried = restartable(move |cp: &Checkpoint<RawQuote>| {
        opens += 1;
        primary_feed(cp.delivered, opens)
    })
    .retry(RetryPolicy::fixed(Duration::from_millis(1), 3));
    let retries = retried.retries();

    // Layer 2: fallback. When the primary gives up, the mirror resumes after the last
    // quote the consumer saw (the checkpoint carries it).
    let mut fallbacks_used = Vec::new();
    let recovered = retried.recover_with(move |err, cp: &Checkpoint<RawQuote>| {
        let resume_at = cp.last.as_ref().map_or(0, |q| q.seq + 1);
        println!(
            "fallback: primary failed ({err}); mirror resumes at #{resume_at} after {} quotes",
            cp.delivered
        );
        fallbacks_used.push(resume_at);
        Some(mirror_feed(resume_at))
    });

    // Layer 3: transform. Layer 4: validate, and skip (but count) corrupt quotes.
    let validated = to_dollars(recovered)
        .validate_ok(|q: &Quote| {
            if q.price > 0.0 {
                Ok(())
            } else {
                Err("non-positive price")
            }
        })
        .on_error(Supervision::Resume);
    let skipped = validated.skipped();

    let quotes: Vec<Quote> = validated
        .filter_map(|r| async move { r.ok() })
        .collect()
        .await;

    // The proof: every quote exactly once, in order, except the corrupt ones.
    let expected: Vec<u64> = (0..QUOTES).filter(|&s| price_of(s) > 0).collect();
    let got: Vec<u64> = quotes.iter().map(|q| q.seq).collect();
    let unique: HashSet<u64> = got.iter().copied().collect();
    let total: f64 = quotes.iter().map(|q| q.price).sum();

    println!("quotes delivered : {}", quotes.len());
    println!("corrupt skipped  : {}", skipped.get());
    println!("retries          : {}", retries.get());
    println!("duplicates       : {}", got.len() - unique.len());
    println!("in order, none lost: {}", got == expected);
    println!("sum of prices    : {total:.2}");
    println!("elapsed          : {:?}", started.elapsed());
    assert_eq!(got, expected, "a quote was lost, duplicated or reordered");
    assert_eq!(skipped.get() as usize, QUOTES as usize - expected.len());
}

/// `FeedError` is the error the validation layer reports too (it carries the quote).
impl From<millrace::policy::Invalid<Quote, &'static str>> for FeedError {
    fn from(invalid: millrace::policy::Invalid<Quote, &'static str>) -> Self {
        FeedError::Reset {
            at: invalid.item.seq,
        }
    }
}
