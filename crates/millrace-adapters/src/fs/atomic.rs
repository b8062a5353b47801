//! The atomic line sink: [`AtomicFile`], [`write_lines_atomic`], [`try_write_lines_atomic`].

use std::convert::Infallible;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::stream::{Stream, StreamExt};
use tokio::io::{AsyncWriteExt, BufWriter};

use super::error::SinkError;

/// A file that replaces its target **atomically** when committed, and never otherwise.
///
/// [`create`](Self::create) opens a new temporary file in the target's directory (same file
/// system, so the final rename is atomic). [`commit`](Self::commit) flushes it, `fsync`s it,
/// renames it over the target and `fsync`s the directory: after a crash at any point the target
/// holds either its old content or the complete new one, never a half-written file. Dropping an
/// uncommitted `AtomicFile` (an error, a cancelled task, a dropped future) removes the
/// temporary file and leaves the target untouched. (The removal on drop is one synchronous
/// `unlink`; a crash of the whole process can leave a `.<name>.*.millrace-tmp` file behind,
/// never a damaged target.)
///
/// If the target exists, the new file gets its permissions.
///
/// ```
/// use millrace::adapters::fs::AtomicFile;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("report.txt");
/// std::fs::write(&path, "old\n").unwrap();
///
/// let mut out = AtomicFile::create(&path).await.unwrap();
/// out.write_line("new 1").await.unwrap();
/// out.write_line("new 2").await.unwrap();
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n"); // not yet
/// assert_eq!(out.commit().await.unwrap(), 2);
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "new 1\nnew 2\n");
///
/// let mut out = AtomicFile::create(&path).await.unwrap();
/// out.write_line("abandoned").await.unwrap();
/// drop(out); // no commit: the target keeps its content, the temporary file is gone
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "new 1\nnew 2\n");
/// assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
/// # }
/// ```
pub struct AtomicFile {
    target: PathBuf,
    temp: PathBuf,
    // `None` once committed (the temporary file no longer exists then).
    file: Option<BufWriter<tokio::fs::File>>,
    lines: u64,
}

impl fmt::Debug for AtomicFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtomicFile")
            .field("target", &self.target)
            .field("temp", &self.temp)
            .field("lines", &self.lines)
            .field("committed", &self.file.is_none())
            .finish()
    }
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> SinkError {
    SinkError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

fn directory_of(target: &Path) -> PathBuf {
    match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

impl AtomicFile {
    /// Creates a new temporary file next to `target` (`.<name>.<pid>.<n>.millrace-tmp`, created
    /// exclusively).
    ///
    /// ```
    /// use millrace::adapters::fs::AtomicFile;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let dir = tempfile::tempdir().unwrap();
    /// let out = AtomicFile::create(dir.path().join("a.txt")).await.unwrap();
    /// assert_eq!(out.temp_path().parent(), Some(dir.path()));
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SinkError::Io`] if the temporary file cannot be created (no such directory, no
    /// permission, no space).
    pub async fn create(target: impl AsRef<Path>) -> Result<Self, SinkError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let target = target.as_ref().to_owned();
        let name = target.file_name().ok_or_else(|| {
            io_error(
                "write to",
                &target,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
            )
        })?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(
            ".{}.{}.millrace-tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let temp = directory_of(&target).join(temp_name);
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .await
            .map_err(|e| io_error("create the temporary file", &temp, e))?;
        let out = AtomicFile {
            target,
            temp,
            file: Some(BufWriter::new(file)),
            lines: 0,
        };
        if let Ok(meta) = tokio::fs::metadata(&out.target).await {
            tokio::fs::set_permissions(&out.temp, meta.permissions())
                .await
                .map_err(|e| io_error("set permissions on", &out.temp, e))?;
        }
        Ok(out)
    }

    /// Writes `line` followed by `\n` (buffered).
    ///
    /// ```
    /// use millrace::adapters::fs::AtomicFile;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut out = AtomicFile::create(dir.path().join("a.txt")).await.unwrap();
    /// out.write_line("one").await.unwrap();
    /// assert_eq!(out.lines_written(), 1);
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SinkError::Newline`] if `line` contains `\n` (nothing is written);
    /// [`SinkError::Io`] if writing fails. After an error, drop the `AtomicFile`.
    ///
    /// # Panics
    ///
    /// Panics if called after a successful [`commit`](Self::commit) (impossible through the
    /// API, which takes `self`).
    pub async fn write_line(&mut self, line: &str) -> Result<(), SinkError> {
        if line.contains('\n') {
            return Err(SinkError::Newline {
                line: self.lines + 1,
            });
        }
        let file = self.file.as_mut().expect("AtomicFile used after commit");
        let write = async {
            file.write_all(line.as_bytes()).await?;
            file.write_all(b"\n").await
        };
        write
            .await
            .map_err(|e| io_error("write to the temporary file", &self.temp, e))?;
        self.lines += 1;
        Ok(())
    }

    /// The number of lines written so far.
    ///
    /// ```
    /// use millrace::adapters::fs::AtomicFile;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let dir = tempfile::tempdir().unwrap();
    /// let out = AtomicFile::create(dir.path().join("a.txt")).await.unwrap();
    /// assert_eq!(out.lines_written(), 0);
    /// # }
    /// ```
    pub fn lines_written(&self) -> u64 {
        self.lines
    }

    /// The path that [`commit`](Self::commit) replaces.
    ///
    /// ```
    /// use millrace::adapters::fs::AtomicFile;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let dir = tempfile::tempdir().unwrap();
    /// let out = AtomicFile::create(dir.path().join("a.txt")).await.unwrap();
    /// assert_eq!(out.target_path(), dir.path().join("a.txt"));
    /// # }
    /// ```
    pub fn target_path(&self) -> &Path {
        &self.target
    }

    /// The temporary file being written.
    ///
    /// ```
    /// use millrace::adapters::fs::AtomicFile;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let dir = tempfile::tempdir().unwrap();
    /// let out = AtomicFile::create(dir.path().join("a.txt")).await.unwrap();
    /// assert!(out.temp_path().exists());
    /// # }
    /// ```
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Flushes and `fsync`s the temporary file, renames it over the target and `fsync`s the
    /// directory (on Unix). Returns the number of lines written.
    ///
    /// ```
    /// use millrace::adapters::fs::AtomicFile;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("a.txt");
    /// let mut out = AtomicFile::create(&path).await.unwrap();
    /// out.write_line("x").await.unwrap();
    /// assert_eq!(out.commit().await.unwrap(), 1);
    /// assert_eq!(std::fs::read_to_string(&path).unwrap(), "x\n");
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SinkError::Io`] if flushing, syncing or renaming fails (the target is untouched and
    /// the temporary file removed); [`SinkError::SyncDir`] if only the final directory sync
    /// fails (the target **was** replaced).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before the rename leaves the target untouched and removes the
    /// temporary file; after the rename, the new content is in place.
    pub async fn commit(mut self) -> Result<u64, SinkError> {
        let mut file = self.file.take().expect("AtomicFile committed twice");
        // Until the rename below succeeds, `Drop` must still remove the temporary file.
        let result = async {
            file.flush()
                .await
                .map_err(|e| io_error("flush the temporary file", &self.temp, e))?;
            file.get_ref()
                .sync_all()
                .await
                .map_err(|e| io_error("fsync the temporary file", &self.temp, e))?;
            drop(file);
            tokio::fs::rename(&self.temp, &self.target)
                .await
                .map_err(|e| io_error("rename the temporary file over", &self.target, e))
        }
        .await;
        if let Err(e) = result {
            remove_quietly(&self.temp);
            // Nothing left for `Drop` to do.
            self.temp = PathBuf::new();
            return Err(e);
        }
        self.temp = PathBuf::new();
        sync_dir(&directory_of(&self.target)).await?;
        Ok(self.lines)
    }
}

fn remove_quietly(path: &Path) {
    if !path.as_os_str().is_empty() {
        // Best effort: the file may already be gone.
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(unix)]
async fn sync_dir(dir: &Path) -> Result<(), SinkError> {
    let sync = async { tokio::fs::File::open(dir).await?.sync_all().await };
    sync.await.map_err(|source| SinkError::SyncDir {
        path: dir.to_owned(),
        source,
    })
}

#[cfg(not(unix))]
async fn sync_dir(_dir: &Path) -> Result<(), SinkError> {
    // Directories cannot be opened for syncing on this platform; the rename is still atomic.
    Ok(())
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // Not committed (or commit failed half-way): the target is untouched, remove our
        // temporary file. Unix allows unlinking a file that is still open.
        self.file = None;
        remove_quietly(&self.temp);
    }
}

/// Writes every line of `lines` to `path` atomically (see [`AtomicFile`]): either the whole
/// stream ends up in the file, or the old file stays as it was. Returns the number of lines
/// written. Each item is written followed by `\n`.
///
/// ```
/// use millrace::adapters::fs;
/// use futures::{stream, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("squares.txt");
/// let lines = stream::iter(1..=3).map(|n: u32| (n * n).to_string());
/// assert_eq!(fs::write_lines_atomic(&path, lines).await.unwrap(), 3);
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n4\n9\n");
/// # }
/// ```
///
/// # Errors
///
/// See [`SinkError`]; on any error except [`SinkError::SyncDir`] the target is untouched.
///
/// # Cancel safety
///
/// Dropping the future before it completes leaves the target untouched and removes the
/// temporary file.
pub async fn write_lines_atomic<S, L>(path: impl AsRef<Path>, lines: S) -> Result<u64, SinkError>
where
    S: Stream<Item = L>,
    L: AsRef<str>,
{
    // With an upstream that cannot fail, `SinkError<Infallible>` is the plain `SinkError`.
    try_write_lines_atomic(path, lines.map(Ok::<L, Infallible>)).await
}

/// Like [`write_lines_atomic`] for a fallible stream: the first `Err` aborts the write (the
/// target stays untouched) and is returned as [`SinkError::Upstream`].
///
/// ```
/// use millrace::adapters::fs::{self, SinkError};
/// use futures::stream;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out.txt");
/// std::fs::write(&path, "previous run\n").unwrap();
///
/// let lines = stream::iter([Ok("a"), Ok("b"), Err("source went away")]);
/// let err = fs::try_write_lines_atomic(&path, lines).await.unwrap_err();
/// assert!(matches!(err, SinkError::Upstream { lines_written: 2, source: "source went away" }));
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "previous run\n");
/// # }
/// ```
///
/// # Errors
///
/// [`SinkError::Upstream`] with the stream's error, or any other [`SinkError`].
///
/// # Cancel safety
///
/// As for [`write_lines_atomic`].
pub async fn try_write_lines_atomic<S, L, E>(
    path: impl AsRef<Path>,
    lines: S,
) -> Result<u64, SinkError<E>>
where
    S: Stream<Item = Result<L, E>>,
    L: AsRef<str>,
{
    let mut out = AtomicFile::create(path).await.map_err(widen)?;
    let mut lines = std::pin::pin!(lines);
    while let Some(line) = lines.next().await {
        match line {
            Ok(line) => out.write_line(line.as_ref()).await.map_err(widen)?,
            Err(source) => {
                return Err(SinkError::Upstream {
                    lines_written: out.lines_written(),
                    source,
                });
            }
        }
    }
    out.commit().await.map_err(widen)
}

fn widen<E>(e: SinkError) -> SinkError<E> {
    match e {
        SinkError::Io {
            action,
            path,
            source,
        } => SinkError::Io {
            action,
            path,
            source,
        },
        SinkError::Newline { line } => SinkError::Newline { line },
        SinkError::SyncDir { path, source } => SinkError::SyncDir { path, source },
        SinkError::Upstream { source, .. } => match source {},
    }
}
