//! Run with: cargo run --release --example library_stats
//!
//! A library catalog read through millrace: pages of books flattened into one stream and
//! collected into a `Vec`, a `HashSet` and a `HashMap` with filters (the "async
//! comprehensions" of Python, here plain `futures::StreamExt`); a resource-scoped cursor whose
//! async cleanup runs when the reader stops early; and a slow source prefetched so that
//! producing and consuming overlap — with the time it saves.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use millrace::prelude::*;

const BOOKS: u32 = 2_000;
const PAGE_SIZE: u32 = 50;
const GENRES: [&str; 5] = ["fiction", "history", "science", "poetry", "travel"];

#[derive(Debug, Clone)]
struct Book {
    id: u32,
    title: String,
    author: String,
    genre: &'static str,
    year: u32,
}

fn book(id: u32) -> Book {
    Book {
        id,
        title: format!("Book {id}"),
        author: format!("Author {}", id % 173),
        genre: GENRES[(id * 7 % 5) as usize],
        year: 1950 + id * 13 % 75,
    }
}

/// The catalog API: one page per call, 10 ms of latency, a cursor to the next page.
async fn fetch_page(offset: u32) -> Result<Page<Book, u32>, Infallible> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    let items: Vec<Book> = (offset..(offset + PAGE_SIZE).min(BOOKS))
        .map(book)
        .collect();
    let next = offset + PAGE_SIZE;
    Ok(if next < BOOKS {
        Page::next(items, next)
    } else {
        Page::last(items)
    })
}

#[tokio::main]
async fn main() {
    // 1. Pagination flattened into one stream, collected three ways.
    let started = Instant::now();
    let books: Vec<Book> = paginate(0u32, fetch_page)
        .prefetch_next_page()
        .try_collect()
        .await
        .expect("the catalog never fails here");
    println!(
        "fetched {} books from {} pages in {:?}",
        books.len(),
        BOOKS.div_ceil(PAGE_SIZE),
        started.elapsed()
    );

    let modern: Vec<String> = stream::iter(&books)
        .filter(|b| futures::future::ready(b.year >= 2000))
        .map(|b| b.title.clone())
        .collect()
        .await;
    let poets: HashSet<&str> = stream::iter(&books)
        .filter(|b| futures::future::ready(b.genre == "poetry"))
        .map(|b| b.author.as_str())
        .collect()
        .await;
    let by_genre: HashMap<&str, usize> = stream::iter(&books)
        .fold(HashMap::new(), |mut m, b| async move {
            *m.entry(b.genre).or_insert(0) += 1;
            m
        })
        .await;
    let mut genres: Vec<_> = by_genre.iter().collect();
    genres.sort();
    println!(
        "books from 2000 on: {} (first: {:?})",
        modern.len(),
        modern.first()
    );
    println!("distinct poets: {}", poets.len());
    println!("books per genre: {genres:?}");

    // 2. A resource-scoped cursor: the reader stops after 3 rows; the async cleanup still runs.
    let closes = Arc::new(AtomicU32::new(0));
    let closes_in_cleanup = closes.clone();
    let first_three: Vec<Result<u32, Infallible>> = scoped(
        async {
            println!("cursor opened");
            Ok::<_, Infallible>(books.clone())
        },
        |rows: &Vec<Book>| stream::iter(rows.clone()).map(|b| Ok(b.id)),
        move |_rows| async move {
            tokio::time::sleep(Duration::from_millis(5)).await; // e.g. a network round trip
            closes_in_cleanup.fetch_add(1, Ordering::SeqCst);
            println!("cursor closed (async cleanup ran after the early exit)");
        },
    )
    .take(3)
    .collect()
    .await;
    // The cleanup was handed to the runtime when `take(3)` dropped the stream: wait for it.
    while closes.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!(
        "read {:?}; cleanup ran {} time(s)",
        first_three
            .into_iter()
            .map(Result::unwrap)
            .collect::<Vec<_>>(),
        closes.load(Ordering::SeqCst)
    );

    // 3. Prefetching a slow source: 100 items, 3 ms to produce each, 3 ms to consume each.
    let slow_source = || {
        stream::iter(0..100u32).then(|i| async move {
            tokio::time::sleep(Duration::from_millis(3)).await;
            i
        })
    };
    let consume = |s: futures::stream::BoxStream<'static, u32>| async move {
        let started = Instant::now();
        let sum: u32 = s
            .then(|i| async move {
                tokio::time::sleep(Duration::from_millis(3)).await;
                i
            })
            .fold(0, |a, i| async move { a + i })
            .await;
        (sum, started.elapsed())
    };
    let (sum_plain, plain) = consume(slow_source().boxed()).await;
    let (sum_prefetched, prefetched) = consume(slow_source().prefetch(16).boxed()).await;
    assert_eq!(sum_plain, sum_prefetched);
    println!(
        "slow source: {plain:?} without prefetch, {prefetched:?} with prefetch(16): {:.0}% of the time saved",
        100.0 * (1.0 - prefetched.as_secs_f64() / plain.as_secs_f64())
    );
}
