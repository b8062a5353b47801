//! Why a run stops before its pipeline starts, or at the database sink, in words that say what
//! to do next.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use millrace::adapters::http::HttpError;
use millrace::adapters::sql::InsertError;

/// Errors that stop a run before its pipeline starts, or from the database sink.
#[derive(Debug)]
pub(crate) enum RunError {
    /// A file or directory of the run cannot be used (`action` says what was tried).
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The database cannot be opened or read.
    Db { path: PathBuf, source: sqlx::Error },
    /// The catalog could not be loaded, even from the mirror.
    Catalog(HttpError),
    /// The pipeline is held by another run, or a batch could not be committed.
    Insert(InsertError<HttpError>),
}

/// What to do about an I/O error at `path`, in words.
fn remedy(path: &Path, kind: io::ErrorKind) -> &'static str {
    match kind {
        _ if path.is_dir() => "move the directory away, or pass another --data-dir",
        io::ErrorKind::ReadOnlyFilesystem => {
            "the file system is read-only: pass a --data-dir on a writable one"
        }
        io::ErrorKind::PermissionDenied => "no permission: pass a --data-dir you can write to",
        io::ErrorKind::NotFound => "check that the path exists",
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            "the disk is full: free some space or pass another --data-dir"
        }
        _ => "check the path and the disk",
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Io {
                action,
                path,
                source,
            } => write!(
                f,
                "cannot {action} {}: {}; {}",
                path.display(),
                cause(source),
                remedy(path, source.kind())
            ),
            RunError::Db { path, source } => {
                let kind = match source {
                    sqlx::Error::Io(e) => e.kind(),
                    _ if path.parent().is_some_and(|dir| {
                        std::fs::metadata(dir).is_ok_and(|m| m.permissions().readonly())
                    }) =>
                    {
                        io::ErrorKind::ReadOnlyFilesystem
                    }
                    _ => io::ErrorKind::Other,
                };
                write!(
                    f,
                    "cannot open the database {}: {source}; {}",
                    path.display(),
                    remedy(path, kind)
                )
            }
            RunError::Catalog(e) => write!(f, "catalog unavailable: {e}"),
            RunError::Insert(e) => write!(f, "{e}"),
        }
    }
}

/// An I/O error's cause in words ("is a directory", "read-only file system", …).
fn cause(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::IsADirectory => "is a directory".to_owned(),
        io::ErrorKind::ReadOnlyFilesystem => "read-only file system".to_owned(),
        io::ErrorKind::NotADirectory => "a part of the path is not a directory".to_owned(),
        _ => e.to_string(),
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Io { source, .. } => Some(source),
            RunError::Db { source, .. } => Some(source),
            RunError::Catalog(e) => Some(e),
            RunError::Insert(e) => Some(e),
        }
    }
}
