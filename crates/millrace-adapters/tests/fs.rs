//! The `fs` adapters against real files in a temporary directory.
#![cfg(feature = "fs")]

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{StreamExt, stream};
use millrace::adapters::fs::{self, AtomicFile, Line, LineError, SinkError};
use tokio::io::{AsyncRead, ReadBuf};

fn line(number: u64, text: &str) -> Line {
    Line {
        number,
        text: text.to_owned(),
    }
}

/// `Ok` lines as `(number, text)`, errors as `(line, Display)`.
fn summarize(items: Vec<Result<Line, LineError>>) -> Vec<Result<Line, (Option<u64>, String)>> {
    items
        .into_iter()
        .map(|r| r.map_err(|e| (e.line(), e.to_string())))
        .collect()
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn numbers_every_line_and_error_and_continues_after_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    let mut content = Vec::new();
    content.extend_from_slice(b"one\r\n"); // 1: CRLF
    content.extend_from_slice(b"\n"); // 2: empty
    content.extend_from_slice(&[b'x'; 40]); // 3: too long
    content.extend_from_slice(b"\n");
    content.extend_from_slice(b"caf\xc3\xa9\n"); // 4: valid UTF-8
    content.extend_from_slice(b"ab\xffcd\r\n"); // 5: invalid UTF-8
    content.extend_from_slice(b"\r\n"); // 6: empty, CRLF
    content.extend_from_slice(b"last"); // 7: no final newline
    std::fs::write(&path, &content).unwrap();

    let items: Vec<_> = fs::lines(&path).max_line_length(16).collect().await;
    assert!(matches!(
        items[2],
        Err(LineError::TooLong {
            line: 3,
            len_at_least: 40,
            max: 16
        })
    ));
    assert!(matches!(
        items[4],
        Err(LineError::InvalidUtf8 {
            line: 5,
            valid_up_to: 2
        })
    ));
    assert_eq!(
        summarize(items),
        vec![
            Ok(line(1, "one")),
            Ok(line(2, "")),
            Err((
                Some(3),
                "line 3 is too long: at least 40 bytes, the limit is 16; the line was skipped, \
                 raise the limit with `max_line_length` if it is valid"
                    .to_owned()
            )),
            Ok(line(4, "café")),
            Err((
                Some(5),
                "line 5 is not valid UTF-8 (valid up to byte 2); the line was skipped, \
                 re-encode the input as UTF-8"
                    .to_owned()
            )),
            Ok(line(6, "")),
            Ok(line(7, "last")),
        ]
    );
}

#[tokio::test]
async fn long_lines_across_many_reads_keep_numbers_right() {
    // Lines much longer than the 8 KiB read buffer, good and bad, interleaved.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.txt");
    let mut content = String::new();
    let mut expected = Vec::new();
    for n in 1..=200u64 {
        let len = if n % 10 == 0 {
            50_000
        } else {
            (n as usize * 97) % 20_000
        };
        content.push_str(&"y".repeat(len));
        content.push('\n');
        expected.push((n, len <= 30_000));
    }
    std::fs::write(&path, content).unwrap();

    let items: Vec<_> = fs::lines(&path).max_line_length(30_000).collect().await;
    assert_eq!(items.len(), 200);
    for (item, (n, ok)) in items.iter().zip(expected) {
        match item {
            Ok(l) => {
                assert!(ok, "line {n} should be too long");
                assert_eq!(l.number, n);
            }
            Err(LineError::TooLong {
                line,
                len_at_least,
                max: 30_000,
            }) => {
                assert!(!ok, "line {n} should be fine");
                assert_eq!(*line, n);
                assert!(*len_at_least > 30_000 && *len_at_least <= 50_000);
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
}

#[tokio::test]
async fn too_long_last_line_without_newline() {
    let items: Vec<_> = fs::lines_from(&b"ok\n0123456789"[..])
        .max_line_length(5)
        .collect()
        .await;
    assert_eq!(items.len(), 2);
    assert!(matches!(items[1], Err(LineError::TooLong { line: 2, .. })));
}

#[tokio::test]
async fn empty_input_yields_nothing_and_stays_finished() {
    let mut lines = fs::lines_from(&b""[..]);
    assert!(lines.next().await.is_none());
    assert!(futures::stream::FusedStream::is_terminated(&lines));
    assert!(lines.next().await.is_none());
}

#[tokio::test]
async fn missing_file_is_one_open_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.txt");
    let items: Vec<_> = fs::lines(&path).collect().await;
    assert_eq!(items.len(), 1);
    match &items[0] {
        Err(e @ LineError::Open { path: p, source }) => {
            assert_eq!(p, &path);
            assert_eq!(source.kind(), io::ErrorKind::NotFound);
            assert_eq!(e.line(), None);
            assert!(e.to_string().starts_with("cannot open `"), "{e}");
            assert!(e.to_string().contains("nope.txt"), "{e}");
        }
        other => panic!("expected an open error, got {other:?}"),
    }
}

/// Yields `data` in small chunks, then fails.
struct FailingReader {
    data: Vec<u8>,
    pos: usize,
}

impl AsyncRead for FailingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos == self.data.len() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "disk on fire",
            )));
        }
        let end = (self.pos + 3)
            .min(self.data.len())
            .min(self.pos + buf.remaining());
        buf.put_slice(&self.data[self.pos..end]);
        self.pos = end;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn io_error_names_the_line_being_read_and_ends_the_stream() {
    let reader = FailingReader {
        data: b"a\nb\npartial".to_vec(),
        pos: 0,
    };
    let mut lines = fs::lines_from(reader);
    assert_eq!(lines.next().await.unwrap().unwrap(), line(1, "a"));
    assert_eq!(lines.next().await.unwrap().unwrap(), line(2, "b"));
    let err = lines.next().await.unwrap().unwrap_err();
    assert!(
        matches!(&err, LineError::Io { line: 3, source } if source.kind() == io::ErrorKind::ConnectionReset)
    );
    assert_eq!(
        err.to_string(),
        "I/O error while reading line 3: disk on fire; the stream ended, check the file or \
         device and read again"
    );
    assert!(std::error::Error::source(&err).is_some());
    assert!(lines.next().await.is_none());
    assert!(lines.next().await.is_none());
}

#[tokio::test]
async fn io_error_inside_a_skipped_long_line_names_that_line() {
    let reader = FailingReader {
        data: b"ok\n0123456789abcdef".to_vec(),
        pos: 0,
    };
    let items: Vec<_> = fs::lines_from(reader).max_line_length(4).collect().await;
    // An over-long line is reported at its end (so the position after it is exact); the read
    // failed before that end, so the I/O error is that line's one error.
    assert_eq!(items.len(), 2);
    assert!(matches!(items[1], Err(LineError::Io { line: 2, .. })));
}

#[test]
#[should_panic(
    expected = "`lines`: `max_line_length` must be at least 1, got 0; pass a non-zero value"
)]
fn zero_max_line_length_panics() {
    let _ = fs::lines("whatever.txt").max_line_length(0);
}

#[test]
fn zero_max_line_length_is_a_config_error() {
    let err = fs::lines_from(&b""[..])
        .checked_max_line_length(0)
        .unwrap_err();
    assert_eq!(err, millrace::ConfigError::zero("lines", "max_line_length"));
}

#[test]
fn sources_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let lines = fs::lines("x");
    assert_send(&lines);
    fn assert_sync<T: Sync>(_: &T) {}
    assert_sync(&lines);
}

#[tokio::test]
async fn atomic_sink_replaces_the_target_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.txt");
    std::fs::write(&path, "old\n").unwrap();
    let n = fs::write_lines_atomic(&path, stream::iter(["x", "", "z"]))
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "x\n\nz\n");
    assert_eq!(dir_entries(dir.path()), ["out.txt"]);
}

#[tokio::test]
async fn atomic_sink_creates_a_new_file_and_round_trips_through_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.txt");
    let lines: Vec<String> = (0..10_000).map(|i| format!("row {i}")).collect();
    let n = fs::write_lines_atomic(&path, stream::iter(lines.clone()))
        .await
        .unwrap();
    assert_eq!(n, 10_000);
    let back: Vec<String> = fs::lines(&path).map(|l| l.unwrap().text).collect().await;
    assert_eq!(back, lines);
}

#[tokio::test]
async fn atomic_sink_keeps_the_old_file_on_upstream_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.txt");
    std::fs::write(&path, "old\n").unwrap();
    let input = stream::iter([
        Ok("a".to_owned()),
        Ok("b".to_owned()),
        Err(io::Error::other("boom")),
    ]);
    let err = fs::try_write_lines_atomic(&path, input).await.unwrap_err();
    match &err {
        SinkError::Upstream {
            lines_written: 2,
            source,
        } => assert_eq!(source.to_string(), "boom"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        err.to_string().contains("the target was left untouched"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
    assert_eq!(dir_entries(dir.path()), ["out.txt"]);
}

#[tokio::test]
async fn atomic_sink_keeps_the_old_file_on_a_line_with_a_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.txt");
    std::fs::write(&path, "old\n").unwrap();
    let err = fs::write_lines_atomic(&path, stream::iter(["ok", "two\nlines"]))
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::Newline { line: 2 }));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
    assert_eq!(dir_entries(dir.path()), ["out.txt"]);
}

#[tokio::test]
async fn atomic_sink_dropped_midway_keeps_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.txt");
    std::fs::write(&path, "old\n").unwrap();
    // Many lines (more than the write buffer), then the source hangs; the write is cancelled.
    let input = stream::iter((0..50_000).map(|i| format!("line {i}"))).chain(stream::pending());
    let write = fs::write_lines_atomic(&path, input);
    let outcome = tokio::time::timeout(std::time::Duration::from_millis(300), write).await;
    assert!(
        outcome.is_err(),
        "the write must still be waiting for the hung source"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
    assert_eq!(dir_entries(dir.path()), ["out.txt"]);
}

#[tokio::test]
async fn atomic_file_commit_and_drop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.txt");

    let mut out = AtomicFile::create(&path).await.unwrap();
    out.write_line("kept").await.unwrap();
    let temp = out.temp_path().to_owned();
    assert!(temp.exists());
    assert!(!path.exists(), "nothing is visible before commit");
    assert_eq!(out.commit().await.unwrap(), 1);
    assert!(!temp.exists());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "kept\n");

    let mut out = AtomicFile::create(&path).await.unwrap();
    out.write_line("lost").await.unwrap();
    let temp = out.temp_path().to_owned();
    drop(out);
    assert!(!temp.exists());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "kept\n");
    assert_eq!(dir_entries(dir.path()), ["out.txt"]);
}

#[tokio::test]
async fn atomic_sink_into_a_missing_directory_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("out.txt");
    let err = fs::write_lines_atomic(&path, stream::iter(["a"]))
        .await
        .unwrap_err();
    match &err {
        SinkError::Io { action, source, .. } => {
            assert_eq!(*action, "create the temporary file");
            assert_eq!(source.kind(), io::ErrorKind::NotFound);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn on_error_resume_skips_exactly_the_bad_lines_and_counts_them() {
    use millrace::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.txt");
    std::fs::write(&path, b"a\n\xc3\x28\nbbbbbbbbbbbbbbbbbbbb\nc\r\n\nd").unwrap();
    let lines = fs::lines(&path)
        .max_line_length(10)
        .on_error(Supervision::Resume);
    let skipped = lines.skipped();
    let good: Vec<Line> = lines.map(Result::unwrap).collect().await;
    assert_eq!(
        good,
        [line(1, "a"), line(4, "c"), line(5, ""), line(6, "d")]
    );
    assert_eq!(skipped.get(), 2);
}
