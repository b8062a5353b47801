//! rusqlite's errors as sqlx reports SQLite's own.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

use sqlx::error::{DatabaseError, ErrorKind};

/// A SQLite error of the writer thread, as sqlx reports SQLite's own errors: the message, the
/// extended result code and its kind.
#[derive(Debug)]
struct WriterError {
    message: String,
    code: Option<i32>,
    source: rusqlite::Error,
}

impl fmt::Display for WriterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for WriterError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

impl DatabaseError for WriterError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.code.map(|c| Cow::Owned(c.to_string()))
    }

    fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        use rusqlite::ffi;
        match self.code {
            Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                ErrorKind::UniqueViolation
            }
            Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => ErrorKind::ForeignKeyViolation,
            Some(ffi::SQLITE_CONSTRAINT_NOTNULL) => ErrorKind::NotNullViolation,
            Some(ffi::SQLITE_CONSTRAINT_CHECK) => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

pub(super) fn to_sqlx(e: rusqlite::Error) -> sqlx::Error {
    match e {
        rusqlite::Error::ToSqlConversionFailure(e) => sqlx::Error::Encode(e),
        rusqlite::Error::SqliteFailure(failure, message) => {
            sqlx::Error::Database(Box::new(WriterError {
                message: message.unwrap_or_else(|| failure.to_string()),
                code: Some(failure.extended_code),
                source: rusqlite::Error::SqliteFailure(failure, None),
            }))
        }
        other => sqlx::Error::Database(Box::new(WriterError {
            message: other.to_string(),
            code: None,
            source: other,
        })),
    }
}
