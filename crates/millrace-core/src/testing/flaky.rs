use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_core::stream::FusedStream;
use tokio::time::Sleep;

/// The error a [`Flaky`] source injects.
///
/// ```
/// use millrace::testing::FlakyError;
///
/// let e = FlakyError { position: 3, attempt: 1 };
/// assert_eq!(e.to_string(), "injected failure before item #3 (attempt 1); this is a test fault, retry or recover from it");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlakyError {
    /// The 0-based index of the item the source was about to yield.
    pub position: u64,
    /// How many times this position has failed so far, this failure included (1-based).
    pub attempt: u32,
}

impl fmt::Display for FlakyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "injected failure before item #{} (attempt {}); this is a test fault, retry or recover from it",
            self.position, self.attempt
        )
    }
}

impl std::error::Error for FlakyError {}

struct Shared<T> {
    items: Vec<T>,
    positions: BTreeSet<u64>,
    fail_times: u32,
    delay: Option<Duration>,
    failed: Mutex<HashMap<u64, u32>>,
    opens: AtomicU64,
    failures: AtomicU64,
}

/// A restartable source of known items that fails on purpose: at chosen positions or with a
/// seeded probability, each failure point failing a set number of times before it passes.
///
/// [`Flaky::open`] starts a stream at any item index (what a restart factory does with a
/// checkpoint). Clones share one failure plan, so a point that has failed once stays passed
/// for every later stream, as a real transient fault would.
///
/// ```
/// use millrace::testing::{Flaky, FlakyError};
/// use futures::StreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let flaky = Flaky::new(0..5u32).fail_at([2]);
/// let first: Vec<_> = flaky.open(0).collect().await;
/// assert_eq!(first, [Ok(0), Ok(1), Err(FlakyError { position: 2, attempt: 1 })]);
/// let rest: Vec<_> = flaky.open(2).collect().await;
/// assert_eq!(rest, [Ok(2), Ok(3), Ok(4)]);
/// assert_eq!((flaky.opens(), flaky.failures()), (2, 1));
/// # }
/// ```
pub struct Flaky<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Flaky<T> {
    fn clone(&self) -> Self {
        Flaky {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> fmt::Debug for Flaky<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flaky")
            .field("items", &self.shared.items.len())
            .field("positions", &self.shared.positions)
            .field("fail_times", &self.shared.fail_times)
            .field("opens", &self.opens())
            .field("failures", &self.failures())
            .finish()
    }
}

/// splitmix64: a tiny, well-distributed generator so seeds are reproducible everywhere.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl<T: Clone + Send + Sync + 'static> Flaky<T> {
    /// A source of `items` that does not fail yet.
    pub fn new(items: impl IntoIterator<Item = T>) -> Self {
        Flaky {
            shared: Arc::new(Shared {
                items: items.into_iter().collect(),
                positions: BTreeSet::new(),
                fail_times: 1,
                delay: None,
                failed: Mutex::new(HashMap::new()),
                opens: AtomicU64::new(0),
                failures: AtomicU64::new(0),
            }),
        }
    }

    fn configure(mut self, f: impl FnOnce(&mut Shared<T>)) -> Self {
        let shared = Arc::get_mut(&mut self.shared)
            .expect("configure a `Flaky` before cloning or opening it");
        f(shared);
        self
    }

    /// Fails when about to yield item `#k` (0-based) for each `k` in `positions`.
    pub fn fail_at(self, positions: impl IntoIterator<Item = u64>) -> Self {
        self.configure(|s| s.positions.extend(positions))
    }

    /// Each position fails with probability `p`, chosen once from `seed` (reproducible).
    ///
    /// # Panics
    ///
    /// Panics when `p` is not within `0.0..=1.0`.
    pub fn fail_with_probability(self, p: f64, seed: u64) -> Self {
        assert!(
            (0.0..=1.0).contains(&p),
            "fail_with_probability: `p` must be within 0.0..=1.0, got {p}"
        );
        self.configure(|s| {
            let mut state = seed;
            for k in 0..s.items.len() as u64 {
                // 53 random bits -> a uniform f64 in [0, 1).
                let u = (splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
                if u < p {
                    s.positions.insert(k);
                }
            }
        })
    }

    /// Each failure point fails `n` times before it lets the item through (default 1).
    pub fn fail_times(self, n: u32) -> Self {
        self.configure(|s| s.fail_times = n)
    }

    /// Waits `d` of tokio time before each item (and before each injected failure).
    pub fn delay_per_item(self, d: Duration) -> Self {
        self.configure(|s| s.delay = Some(d))
    }

    /// A stream of `Result<T, FlakyError>` starting at item `#from`; it ends after an error.
    pub fn open(&self, from: u64) -> FlakyStream<T> {
        self.shared.opens.fetch_add(1, Ordering::Relaxed);
        FlakyStream {
            shared: Arc::clone(&self.shared),
            next: from,
            sleep: None,
            armed: false,
            pended: false,
            slept: false,
            done: false,
        }
    }
}

impl<T> Flaky<T> {
    /// How many streams were opened.
    pub fn opens(&self) -> u64 {
        self.shared.opens.load(Ordering::Relaxed)
    }

    /// How many failures were injected so far.
    pub fn failures(&self) -> u64 {
        self.shared.failures.load(Ordering::Relaxed)
    }

    /// The positions planned to fail, in order.
    pub fn failure_positions(&self) -> Vec<u64> {
        self.shared.positions.iter().copied().collect()
    }

    /// All items the source holds, failures aside.
    pub fn items(&self) -> &[T] {
        &self.shared.items
    }
}

/// A stream opened by [`Flaky::open`].
#[must_use = "streams do nothing unless polled"]
pub struct FlakyStream<T> {
    shared: Arc<Shared<T>>,
    next: u64,
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
    pended: bool,
    slept: bool,
    done: bool,
}

impl<T> fmt::Debug for FlakyStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlakyStream")
            .field("next", &self.next)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<T> Unpin for FlakyStream<T> {}

impl<T: Clone> Stream for FlakyStream<T> {
    type Item = Result<T, FlakyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if this.next >= this.shared.items.len() as u64 {
            this.done = true;
            return Poll::Ready(None);
        }
        if let (Some(d), false) = (this.shared.delay, this.slept) {
            if !this.armed {
                let deadline = tokio::time::Instant::now() + d;
                match this.sleep.as_mut() {
                    Some(sleep) => sleep.as_mut().reset(deadline),
                    // One allocation per stream, re-armed for every item.
                    None => this.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
                this.armed = true;
            }
            let sleep = this.sleep.as_mut().expect("armed above");
            if std::future::Future::poll(sleep.as_mut(), cx).is_pending() {
                return Poll::Pending;
            }
            this.armed = false;
            this.slept = true;
        }
        if super::conformance::interleave_sources() && !this.pended {
            this.pended = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.pended = false;
        let k = this.next;
        if this.shared.positions.contains(&k) {
            let mut failed = this.shared.failed.lock().expect("flaky plan lock");
            let count = failed.entry(k).or_insert(0);
            if *count < this.shared.fail_times {
                *count += 1;
                let attempt = *count;
                drop(failed);
                this.shared.failures.fetch_add(1, Ordering::Relaxed);
                this.done = true;
                return Poll::Ready(Some(Err(FlakyError {
                    position: k,
                    attempt,
                })));
            }
        }
        this.next += 1;
        this.slept = false;
        Poll::Ready(Some(Ok(this.shared.items[k as usize].clone())))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        let left = (self.shared.items.len() as u64).saturating_sub(self.next) as usize;
        (0, Some(left + 1))
    }
}

impl<T: Clone> FusedStream for FlakyStream<T> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}
