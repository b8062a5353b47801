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
