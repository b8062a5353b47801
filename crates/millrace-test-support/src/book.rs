//! The catalog's one item type.

use serde::{Deserialize, Serialize};

/// A book of the test catalog; [`Book::new`] makes the same book for the same id, always.
///
/// ```
/// use millrace_test_support::Book;
///
/// let book = Book::new(7);
/// assert_eq!(book.id, 7);
/// assert_eq!(book, Book::new(7));
/// assert_eq!(book.title, "Book #7");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Book {
    /// The id, `0..items`.
    pub id: u64,
    /// `"Book #<id>"`.
    pub title: String,
    /// One of a few authors, chosen by id.
    pub author: String,
    /// A year between 1900 and 2019, chosen by id.
    pub year: u16,
}

impl Book {
    /// The catalog's book `id`.
    ///
    /// ```
    /// use millrace_test_support::Book;
    ///
    /// assert_eq!(Book::new(0).year, 1900);
    /// ```
    pub fn new(id: u64) -> Book {
        const AUTHORS: [&str; 5] = [
            "Ursula K. Le Guin",
            "Italo Calvino",
            "Octavia E. Butler",
            "Jorge Luis Borges",
            "Stanisław Lem",
        ];
        Book {
            id,
            title: format!("Book #{id}"),
            author: AUTHORS[(id % AUTHORS.len() as u64) as usize].to_owned(),
            year: 1900 + (id.wrapping_mul(7) % 120) as u16,
        }
    }
}
