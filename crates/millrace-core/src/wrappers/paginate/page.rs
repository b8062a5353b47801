//! [`Page`] and [`PagePosition`]: what a `fetch_page` function returns and where a
//! [`Paginate`](super::Paginate) stream stands.

/// One page returned by a `fetch_page` function: its items and the cursor of the next page.
///
/// ```
/// use millrace::Page;
///
/// let middle: Page<u32, &str> = Page::next(vec![1, 2], "page-3");
/// assert_eq!(middle.next, Some("page-3"));
/// let last: Page<u32, &str> = Page::last(vec![3]);
/// assert_eq!((last.items, last.next), (vec![3], None));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, C> {
    /// The items of this page, yielded in order. May be empty.
    pub items: Vec<T>,
    /// The cursor of the following page, `None` on the last page.
    pub next: Option<C>,
}

impl<T, C> Page<T, C> {
    /// The last page: no page follows.
    ///
    /// ```
    /// use millrace::Page;
    ///
    /// let p: Page<char, u32> = Page::last(vec!['z']);
    /// assert!(p.next.is_none());
    /// ```
    pub fn last(items: Vec<T>) -> Self {
        Page { items, next: None }
    }

    /// A page followed by the page at `cursor`.
    ///
    /// ```
    /// use millrace::Page;
    ///
    /// let p = Page::next(vec!['a'], 2u32);
    /// assert_eq!(p.next, Some(2));
    /// ```
    pub fn next(items: Vec<T>, cursor: C) -> Self {
        Page {
            items,
            next: Some(cursor),
        }
    }
}

/// Where a [`Paginate`](super::Paginate) stream stands: the cursor of a page and how many of that page's items
/// were already delivered.
///
/// A stream rebuilt with [`paginate_from`](crate::paginate_from)`(position, fetch_page)`
/// fetches the page at `cursor`, skips its first `offset` items and continues: no item is lost
/// or delivered twice, provided the page at `cursor` returns the same items again.
///
/// ```
/// use millrace::PagePosition;
///
/// let pos = PagePosition { cursor: "page-2", offset: 3 };
/// assert_eq!(pos, PagePosition::start("page-2").with_offset(3));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PagePosition<C> {
    /// The cursor passed to `fetch_page` to get the page.
    pub cursor: C,
    /// How many items of that page were already delivered (and are skipped on resume).
    pub offset: usize,
}

impl<C> PagePosition<C> {
    /// The start of the page at `cursor` (offset 0).
    ///
    /// ```
    /// use millrace::PagePosition;
    ///
    /// assert_eq!(PagePosition::start(7u64).offset, 0);
    /// ```
    pub fn start(cursor: C) -> Self {
        PagePosition { cursor, offset: 0 }
    }

    /// The same page, `offset` items in.
    ///
    /// ```
    /// use millrace::PagePosition;
    ///
    /// assert_eq!(PagePosition::start(7u64).with_offset(2).offset, 2);
    /// ```
    pub fn with_offset(self, offset: usize) -> Self {
        PagePosition { offset, ..self }
    }
}
