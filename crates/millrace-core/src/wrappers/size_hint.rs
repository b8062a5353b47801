//! The size hint shared by the wrappers that hold some items beside their upstream.

use futures_core::Stream;

/// What a wrapper holding `held` items (running, or done and not yet yielded) will still
/// yield: the upstream's hint plus `held`, one output per input (`upstream_done`: the upstream
/// ended, it adds nothing).
pub(crate) fn plus_held<S: Stream>(
    upstream_done: bool,
    upstream: &S,
    held: usize,
) -> (usize, Option<usize>) {
    let (lo, hi) = if upstream_done {
        (0, Some(0))
    } else {
        upstream.size_hint()
    };
    (
        lo.saturating_add(held),
        hi.and_then(|h| h.checked_add(held)),
    )
}
