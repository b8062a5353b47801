//! A resumable source with positions, for testing exactly-once pipelines.

use futures_util::stream::{self, Iter};

use crate::positions::{CountRead, Positioned, Tracked};

/// The stream inside [`tracked_source`].
pub type TrackedSource<T> = Tracked<CountRead<Iter<std::vec::IntoIter<Positioned<u64, T>>>>>;

/// A tracked source over `items` whose positions are the 1-based item numbers, resumed after
/// `resume_after` (as a sink's committed position says): item `n` is yielded at position `n`
/// only if `n > resume_after`. Like a file seeked to an offset, nothing before it is read.
///
/// ```
/// use millrace::testing::tracked_source;
/// use futures::StreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let source = tracked_source(vec!['a', 'b', 'c'], Some(1));
/// let accounting = source.accounting();
/// let out: Vec<_> = source.collect().await;
/// let out: Vec<_> = out.iter().map(|p| (p.position, p.entry.item().copied())).collect();
/// assert_eq!(out, [(2, Some('b')), (3, Some('c'))]);
/// assert_eq!(accounting.read(), 2);
/// # }
/// ```
pub fn tracked_source<T>(items: Vec<T>, resume_after: Option<u64>) -> TrackedSource<T> {
    let from = resume_after.unwrap_or(0);
    let entries: Vec<_> = items
        .into_iter()
        .zip(1u64..)
        .filter(|(_, n)| *n > from)
        .map(|(item, n)| Positioned::item(n, item))
        .collect();
    Tracked::new(stream::iter(entries))
}
