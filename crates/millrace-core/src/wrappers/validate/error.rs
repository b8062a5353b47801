//! [`Invalid`]: an item rejected by a validation, carried with its reason and index.

use std::error::Error;
use std::fmt;

/// An item rejected by [`validate`](crate::PipelineExt::validate) or
/// [`validate_ok`](crate::PipelineExt::validate_ok): the item itself (never lost), why it was
/// rejected and its 0-based position in the upstream.
///
/// ```
/// use millrace::policy::Invalid;
///
/// let err = Invalid::new("x", 4, "not a number");
/// assert_eq!(err.to_string(), "item #4 rejected: not a number");
/// assert_eq!(err.into_item(), "x");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Invalid<T, R> {
    /// The rejected item.
    pub item: T,
    /// Why it was rejected (the validation's `Err`).
    pub reason: R,
    /// The item's 0-based position in the upstream.
    pub index: u64,
}

impl<T, R> Invalid<T, R> {
    /// A rejected `item` at position `index`, with the `reason`.
    ///
    /// ```
    /// use millrace::policy::Invalid;
    ///
    /// let err = Invalid::new(7u8, 0, "odd");
    /// assert_eq!((err.item, err.index, err.reason), (7, 0, "odd"));
    /// ```
    pub fn new(item: T, index: u64, reason: R) -> Self {
        Invalid {
            item,
            reason,
            index,
        }
    }

    /// Returns the rejected item.
    ///
    /// ```
    /// use millrace::policy::Invalid;
    ///
    /// assert_eq!(Invalid::new(7u8, 0, "odd").into_item(), 7);
    /// ```
    pub fn into_item(self) -> T {
        self.item
    }
}

impl<T, R: fmt::Display> fmt::Display for Invalid<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "item #{} rejected: {}", self.index, self.reason)
    }
}

impl<T: fmt::Debug, R: Error + 'static> Error for Invalid<T, R> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.reason)
    }
}

/// Lets [`validate_ok`](crate::PipelineExt::validate_ok) work on a stream whose error type is
/// `String`: a rejected item becomes its message, `"item #<index> rejected: <reason>"` (the
/// item itself is dropped; use an error enum with an `Invalid` variant to keep it).
///
/// (A user crate cannot write this impl: `From` and `String` are both foreign there.)
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let rows = stream::iter([Ok(1), Err("eof".to_string()), Ok(-1)]);
/// let out: Vec<Result<i32, String>> =
///     rows.validate_ok(|x: &i32| if *x > 0 { Ok(()) } else { Err("not positive") }).collect().await;
/// assert_eq!(out, [Ok(1), Err("eof".to_string()), Err("item #2 rejected: not positive".to_string())]);
/// # }
/// ```
impl<T, R: fmt::Display> From<Invalid<T, R>> for String {
    fn from(invalid: Invalid<T, R>) -> String {
        invalid.to_string()
    }
}

/// Lets [`validate_ok`](crate::PipelineExt::validate_ok) work on a stream whose error type is
/// `&str`, with a validation that returns `&str` reasons: a rejected item becomes its reason
/// (the item and its index are dropped; use an error enum with an `Invalid` variant to keep
/// them).
///
/// (A user crate cannot write this impl: `From` and `&str` are both foreign there.)
///
/// ```
/// use millrace::prelude::*;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let rows = stream::iter([Ok(1), Err("eof"), Ok(-1)]);
/// let out: Vec<Result<i32, &str>> =
///     rows.validate_ok(|x: &i32| if *x > 0 { Ok(()) } else { Err("not positive") }).collect().await;
/// assert_eq!(out, [Ok(1), Err("eof"), Err("not positive")]);
/// # }
/// ```
impl<'a, T> From<Invalid<T, &'a str>> for &'a str {
    fn from(invalid: Invalid<T, &'a str>) -> &'a str {
        invalid.reason
    }
}
