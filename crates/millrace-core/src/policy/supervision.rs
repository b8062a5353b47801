//! [`Supervision`]: what [`on_error`](crate::PipelineExt::on_error) does with an `Err` item.

use std::fmt;

/// What [`Supervise`](crate::wrappers::Supervise) does with an `Err` item.
///
/// - `Stop`: yield the error, then end the stream.
/// - `Resume`: drop the failed item and continue; every skipped error is counted
///   ([`Supervise::skipped`](crate::wrappers::Supervise::skipped), an [`EventCounter`](crate::metrics::EventCounter))
///   and reported as a `tracing` warning, so it is never silently lost.
/// - `Replace(f)`: turn the error into an item with `f` (called only on the error path).
///
/// A `Supervision` is `Send + Sync`, so a [`Supervise`](crate::wrappers::Supervise) stream is
/// `Sync` whenever its upstream is. The `Replace` box is `Send + Sync`; build it with
/// [`Supervision::replace`], which accepts any `Send` closure (a closure that is not `Sync`,
/// say one owning a `Cell`, is wrapped in a `Mutex` that is only ever accessed through
/// `&mut`, so it costs no locking).
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let items = || stream::iter([Ok(1), Err("bad"), Ok(3)]);
///
/// let out: Vec<Result<i32, &str>> = items().on_error(Supervision::Stop).collect().await;
/// assert_eq!(out, [Ok(1), Err("bad")]);
///
/// let out: Vec<Result<i32, &str>> = items().on_error(Supervision::Resume).collect().await;
/// assert_eq!(out, [Ok(1), Ok(3)]);
///
/// let out: Vec<Result<i32, &str>> =
///     items().on_error(Supervision::replace(|e: &str| e.len() as i32)).collect().await;
/// assert_eq!(out, [Ok(1), Ok(3), Ok(3)]);
/// # }
/// ```
pub enum Supervision<T, E> {
    /// Yield the error, then end the stream.
    Stop,
    /// Drop the failed item, count it, report it, continue.
    Resume,
    /// Turn the error into an item.
    Replace(Box<dyn FnMut(E) -> T + Send + Sync>),
}

impl<T, E> Supervision<T, E> {
    /// `Replace(Box::new(f))`: turn each error into an item with `f`.
    ///
    /// The closure is boxed once here; it is called only when an error arrives. It needs to be
    /// `Send` but not `Sync`: it is kept in a `Mutex` reached only through `&mut` (no lock is
    /// taken), which is what makes the box `Sync`.
    ///
    /// ```
    /// use millrace::prelude::*;
    ///
    /// let policy: Supervision<String, std::io::Error> = Supervision::replace(|e: std::io::Error| e.to_string());
    /// assert!(matches!(policy, Supervision::Replace(_)));
    /// ```
    pub fn replace<F>(f: F) -> Self
    where
        F: FnMut(E) -> T + Send + 'static,
    {
        let mut f = std::sync::Mutex::new(f);
        Supervision::Replace(Box::new(move |e| {
            let f = f
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(e)
        }))
    }
}

impl<T, E> fmt::Debug for Supervision<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Supervision::Stop => f.write_str("Stop"),
            Supervision::Resume => f.write_str("Resume"),
            Supervision::Replace(_) => f.write_str("Replace(..)"),
        }
    }
}
