//! The line decoder behind [`Lines`](super::Lines): a `tokio_util::codec::Decoder` that never
//! fails on bad input, so the framed stream keeps going after a bad line.
//!
//! `tokio_util::codec::LinesCodec` is not used because a decoder error (over-long line, invalid
//! UTF-8) ends a `FramedRead` for good, while our contract is that the stream continues with the
//! next line. Bad lines are therefore *frames* here, and only I/O errors are errors.

use std::io;

use tokio_util::bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

/// One decoded frame: a line, or the reason a line was skipped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    Text(String),
    TooLong { len_at_least: usize },
    InvalidUtf8 { valid_up_to: usize },
}

#[derive(Debug)]
pub(crate) struct LineCodec {
    pub(crate) max: usize,
    /// Where to resume the newline scan in the buffer, so a long line is scanned once.
    next_index: usize,
    /// Inside an over-long line: drop bytes up to its newline, then report it (so that the
    /// position after it is exact).
    pub(crate) discarding: bool,
    /// Bytes of the over-long line being discarded so far.
    discarded: usize,
    /// Bytes of input consumed by the frames decoded so far: the byte offset just after the
    /// last frame (lines and their terminators), counted from where reading started.
    pub(crate) consumed: u64,
}

impl LineCodec {
    pub(crate) fn new(max: usize) -> Self {
        LineCodec {
            max,
            next_index: 0,
            discarding: false,
            discarded: 0,
            consumed: 0,
        }
    }

    fn frame(&self, mut content: &[u8]) -> Frame {
        if let [rest @ .., b'\r'] = content {
            content = rest;
        }
        if content.len() > self.max {
            return Frame::TooLong {
                len_at_least: content.len(),
            };
        }
        match std::str::from_utf8(content) {
            // The one allocation per line: the `String` handed to the user.
            Ok(text) => Frame::Text(text.to_owned()),
            Err(e) => Frame::InvalidUtf8 {
                valid_up_to: e.valid_up_to(),
            },
        }
    }
}

impl Decoder for LineCodec {
    type Item = Frame;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<Frame>> {
        loop {
            let start = self.next_index.min(buf.len());
            let newline = memchr::memchr(b'\n', &buf[start..]).map(|i| start + i);
            if self.discarding {
                match newline {
                    Some(nl) => {
                        let content =
                            self.discarded + nl - usize::from(nl > 0 && buf[nl - 1] == b'\r');
                        buf.advance(nl + 1);
                        self.consumed += (self.discarded + nl + 1) as u64;
                        self.next_index = 0;
                        self.discarding = false;
                        self.discarded = 0;
                        return Ok(Some(Frame::TooLong {
                            len_at_least: content,
                        }));
                    }
                    None => {
                        // Keep a trailing `\r`: it may be the start of this line's `\r\n`.
                        let keep = usize::from(buf.last() == Some(&b'\r'));
                        self.discarded += buf.len() - keep;
                        buf.advance(buf.len() - keep);
                        self.next_index = 0;
                        return Ok(None);
                    }
                }
            }
            return Ok(match newline {
                Some(nl) => {
                    // Decoded in place, then dropped from the buffer: no `split_to`, whose
                    // shared buffer costs two atomic operations per line.
                    let frame = self.frame(&buf[..nl]);
                    buf.advance(nl + 1);
                    self.consumed += (nl + 1) as u64;
                    self.next_index = 0;
                    Some(frame)
                }
                // At least `max + 2` bytes without a newline: the content (which may end in one
                // `\r` of a `\r\n`) is over the limit. Drop it as it arrives, and report the
                // line once its end is found.
                None if buf.len() > self.max.saturating_add(1) => {
                    self.discarding = true;
                    continue;
                }
                None => {
                    self.next_index = buf.len();
                    None
                }
            });
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> io::Result<Option<Frame>> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        self.next_index = 0;
        if self.discarding {
            // The over-long last line, without a final newline.
            let len_at_least = self.discarded + buf.len();
            self.consumed += len_at_least as u64;
            buf.clear();
            self.discarding = false;
            self.discarded = 0;
            return Ok(Some(Frame::TooLong { len_at_least }));
        }
        if buf.is_empty() {
            return Ok(None);
        }
        // The last line, without a final newline.
        let frame = self.frame(buf);
        self.consumed += buf.len() as u64;
        buf.clear();
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(max: usize, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut codec = LineCodec::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                out.push(f);
            }
        }
        while let Some(f) = codec.decode_eof(&mut buf).unwrap() {
            out.push(f);
        }
        out
    }

    #[test]
    fn splits_across_chunks_and_skips_long_lines() {
        let out = decode_all(4, &[b"ab", b"c\r\nabcdefgh", b"ij\nxy\r", b"\n\nlast"]);
        assert_eq!(
            out,
            vec![
                Frame::Text("abc".into()),
                Frame::TooLong { len_at_least: 10 },
                Frame::Text("xy".into()),
                Frame::Text(String::new()),
                Frame::Text("last".into()),
            ]
        );
    }

    #[test]
    fn consumed_counts_every_byte_of_every_frame() {
        for chunks in [
            &[&b"ab\r\nabcdefgh"[..], b"ij\r", b"\nxy\n\nlast"][..],
            &[b"abcdefghijk"],
            &[b"a\n", b"bcdefghij", b"klm"],
        ] {
            let mut codec = LineCodec::new(4);
            let mut buf = BytesMut::new();
            let total: usize = chunks.iter().map(|c| c.len()).sum();
            for chunk in chunks {
                buf.extend_from_slice(chunk);
                while codec.decode(&mut buf).unwrap().is_some() {}
            }
            while codec.decode_eof(&mut buf).unwrap().is_some() {}
            assert_eq!(codec.consumed, total as u64, "{chunks:?}");
        }
    }

    #[test]
    fn an_over_long_line_is_reported_at_its_end_with_its_length() {
        let out = decode_all(4, &[b"abcdefgh", b"ij\r", b"\nok\nxyzwvu"]);
        assert_eq!(
            out,
            vec![
                Frame::TooLong { len_at_least: 10 },
                Frame::Text("ok".into()),
                Frame::TooLong { len_at_least: 6 },
            ]
        );
    }

    #[test]
    fn exact_limit_with_crlf_is_accepted() {
        let out = decode_all(3, &[b"abc\r", b"\nabcd\n"]);
        assert_eq!(
            out,
            vec![
                Frame::Text("abc".into()),
                Frame::TooLong { len_at_least: 4 }
            ]
        );
    }
}
