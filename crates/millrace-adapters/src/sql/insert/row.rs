//! Rows of a batched `INSERT`: [`InsertRow`] and [`RowValues`].

use std::fmt;

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Arguments, Database, Encode, Type};

/// How a row binds its values into a multi-row `INSERT … VALUES (…), (…)` statement.
///
/// Bind one value per column, in the column order of
/// [`BatchInsert::new`](super::BatchInsert::new)'s statement. Tuples of up to six bindable
/// values implement it already.
///
/// ```
/// use millrace::adapters::sql::{BatchInsert, InsertRow, RowValues};
/// use futures::stream;
///
/// struct Book { id: i64, title: String }
///
/// impl InsertRow<sqlx::Sqlite> for Book {
///     fn push_values<'args>(&'args self, values: &mut RowValues<'_, 'args, sqlx::Sqlite>) {
///         values.bind(self.id).bind(&self.title);
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
/// sqlx::query("CREATE TABLE books (id INTEGER, title TEXT)").execute(&pool).await.unwrap();
/// let batch = vec![Book { id: 1, title: "Dune".into() }, Book { id: 2, title: "Emma".into() }];
/// let report = BatchInsert::new(pool, "books", "INSERT INTO books (id, title) ")
///     .run(stream::iter([batch]))
///     .await
///     .unwrap();
/// assert_eq!(report.rows_inserted, 2);
/// # }
/// ```
pub trait InsertRow<DB: Database> {
    /// Binds this row's values (`values.bind(…)` once per column).
    fn push_values<'args>(&'args self, values: &mut RowValues<'_, 'args, DB>);
}

/// The values of one row of a multi-row `INSERT`, handed to [`InsertRow::push_values`]: each
/// [`bind`](Self::bind) adds a placeholder (`?` or `$n`) and its value.
///
/// ```
/// use millrace::adapters::sql::{BatchInsert, InsertRow, RowValues};
/// use futures::stream;
///
/// struct Pair(i64, Option<String>);
///
/// // Generic over the backend: any database that can bind these column types.
/// impl<DB: sqlx::Database> InsertRow<DB> for Pair
/// where
///     for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
///     for<'a> Option<&'a str>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
/// {
///     fn push_values<'args>(&'args self, values: &mut RowValues<'_, 'args, DB>) {
///         values.bind(self.0).bind(self.1.as_deref());
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
/// sqlx::query("CREATE TABLE pairs (n INTEGER, label TEXT)").execute(&pool).await.unwrap();
/// let batch = vec![Pair(1, Some("one".into())), Pair(2, None)];
/// BatchInsert::new(pool.clone(), "pairs", "INSERT INTO pairs (n, label) ")
///     .run(stream::iter([batch]))
///     .await
///     .unwrap();
/// let nulls: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pairs WHERE label IS NULL")
///     .fetch_one(&pool).await.unwrap();
/// assert_eq!(nulls, 1);
/// # }
/// ```
pub struct RowValues<'a, 'args, DB: Database> {
    pub(super) target: Target<'a, 'args, DB>,
    pub(super) first: bool,
    pub(super) error: &'a mut Option<BoxDynError>,
}

/// Where [`RowValues::bind`] puts a value.
pub(super) enum Target<'a, 'args, DB: Database> {
    /// sqlx's arguments, with a placeholder per value in the statement's text.
    Arguments {
        sql: &'a mut String,
        args: &'a mut DB::Arguments<'args>,
    },
    /// The encoded values only, for a statement prepared already (the SQLite writer thread):
    /// no placeholder text, no copy into sqlx's arguments. `bound` counts the values.
    Values {
        values: &'a mut DB::ArgumentBuffer<'args>,
        push_null: fn(&mut DB::ArgumentBuffer<'args>),
        bound: &'a mut usize,
    },
}

impl<'args, DB: Database> RowValues<'_, 'args, DB> {
    /// Adds one column value (a placeholder in the statement and its bound value).
    ///
    /// Bind text as `&str` (`self.name.as_str()`) rather than `&String`: sqlx encodes a
    /// `&String` by copying it, a `&str` by reference.
    ///
    /// ```
    /// use millrace::adapters::sql::{BatchInsert, InsertRow, RowValues};
    /// use futures::stream;
    ///
    /// struct Reading { sensor: String, celsius: f64 }
    ///
    /// impl InsertRow<sqlx::Sqlite> for Reading {
    ///     fn push_values<'args>(&'args self, values: &mut RowValues<'_, 'args, sqlx::Sqlite>) {
    ///         values.bind(self.sensor.as_str()).bind(self.celsius);
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    /// sqlx::query("CREATE TABLE readings (sensor TEXT, celsius REAL)").execute(&pool).await.unwrap();
    /// let batch = vec![Reading { sensor: "roof".into(), celsius: 21.5 }];
    /// let sink = BatchInsert::new(pool, "readings", "INSERT INTO readings (sensor, celsius) ");
    /// assert_eq!(sink.run(stream::iter([batch])).await.unwrap().rows_inserted, 1);
    /// # }
    /// ```
    pub fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'args + Encode<'args, DB> + Type<DB>,
    {
        let first = std::mem::replace(&mut self.first, false);
        match &mut self.target {
            Target::Arguments { sql, args } => {
                if !first {
                    sql.push_str(", ");
                }
                if let Err(e) = args.add(value) {
                    // Reported as `sqlx::Error::Encode` before the statement runs.
                    self.error.get_or_insert(e);
                }
                // Writing into a `String` cannot fail.
                let _ = args.format_placeholder(sql);
            }
            Target::Values {
                values,
                push_null,
                bound,
            } => {
                match value.encode(values) {
                    Ok(IsNull::No) => {}
                    Ok(IsNull::Yes) => push_null(values),
                    Err(e) => {
                        self.error.get_or_insert(e);
                    }
                }
                **bound += 1;
            }
        }
        self
    }
}

impl<DB: Database> fmt::Debug for RowValues<'_, '_, DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RowValues");
        match &self.target {
            Target::Arguments { sql, args } => d.field("sql", sql).field("bound", &args.len()),
            Target::Values { bound, .. } => d.field("bound", bound),
        };
        d.finish_non_exhaustive()
    }
}

macro_rules! tuple_rows {
    ($($name:ident),+) => {
        /// Tuples bind their fields in order, for quick inserts without a row type.
        impl<DB: Database, $($name),+> InsertRow<DB> for ($($name,)+)
        where
            $(for<'a> &'a $name: Encode<'a, DB> + Type<DB>,)+
        {
            #[allow(non_snake_case)]
            fn push_values<'args>(&'args self, values: &mut RowValues<'_, 'args, DB>) {
                let ($($name,)+) = self;
                $(values.bind($name);)+
            }
        }
    };
}

tuple_rows!(A);
tuple_rows!(A, B);
tuple_rows!(A, B, C);
tuple_rows!(A, B, C, D);
tuple_rows!(A, B, C, D, E);
tuple_rows!(A, B, C, D, E, F);
