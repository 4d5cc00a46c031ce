//! Framing on the Unix socket: bytes in, one UTF-8 line per frame out; and the reverse.
//!
//! [`FrameDecoder`] accepts byte chunks split anywhere (inside a line, inside a multi-byte
//! UTF-8 character) and yields the same frames whatever the split. It never holds more than
//! `frame_bytes_max + 2` bytes of an unfinished line: past that the line is discarded up to its
//! newline and reported once as [`FrameError::TooLarge`], and decoding goes on with the next
//! line. Nothing is dropped silently. This file does no I/O and knows nothing of JSON beyond
//! [`encode_frame`].

use std::collections::VecDeque;

use serde::Serialize;
use thiserror::Error;

use super::error_code::ErrorCode;
use super::jsonrpc::RpcError;
use super::limits::FRAME_BYTES_MAX;

/// A line the decoder could not turn into a frame. Decoding continues with the next line.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The line is longer than the frame limit. Its bytes were discarded up to and including
    /// its newline; the peer should be told with `frame_too_large` (see
    /// [`RpcError::from`](RpcError)), with id `null` since the id was never read.
    #[error("frame of {bytes} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Length of the line without its line ending, in bytes.
        bytes: usize,
        /// The limit it broke, in bytes.
        limit: usize,
    },
    /// The line is not valid UTF-8. It was discarded; the peer should be told with `bad_msg`.
    #[error("frame is not valid UTF-8 (first bad byte at {valid_up_to})")]
    InvalidUtf8 {
        /// Length of the valid prefix, in bytes.
        valid_up_to: usize,
    },
}

/// Splits a byte stream into lines: push chunks with [`push`](Self::push), take frames with
/// [`next_frame`](Self::next_frame) until it returns `None`.
///
/// A frame is the bytes before a `\n`, without one trailing `\r`. Empty and all-whitespace
/// lines are skipped (a keep-alive newline is harmless). Frames come out in stream order.
#[derive(Debug)]
pub struct FrameDecoder {
    /// Bytes of the line not yet ended. Invariant: `pending.len() <= frame_bytes_max + 1`
    /// (one more byte may be a `\r` waiting for its `\n`).
    pending: Vec<u8>,
    /// Set while the current line is already too large: its bytes are counted, not kept.
    discarding: Option<Discarding>,
    /// Frames decoded and not yet taken, oldest first.
    ready: VecDeque<Result<String, FrameError>>,
    frame_bytes_max: usize,
}

/// The count kept for a line being discarded.
#[derive(Clone, Copy, Debug)]
struct Discarding {
    /// Bytes of the line seen so far.
    bytes: usize,
    /// Whether the last of them is a `\r`, which is not counted if the `\n` follows.
    ends_in_carriage_return: bool,
}

/// Bytes reserved up front for an encoded frame: a push of a short message or a small result
/// fits without the buffer growing (a larger frame grows it as usual; this is no limit).
pub const ENCODE_CAPACITY_BYTES: usize = 512;

/// Encodes one message as a frame: compact JSON followed by `\n`. The same bytes are a valid
/// WebSocket text frame payload (the trailing newline is allowed there).
pub fn encode_frame<M: WireMessage + ?Sized>(message: &M) -> Vec<u8> {
    let mut frame = Vec::with_capacity(ENCODE_CAPACITY_BYTES);
    serde_json::to_writer(&mut frame, message)
        .expect("invariant: wire messages have string keys only, so serialization cannot fail");
    frame.push(b'\n');
    frame
}

/// Checks the length of a frame that arrived whole (a WebSocket text frame) against
/// [`FRAME_BYTES_MAX`].
///
/// # Errors
/// [`FrameError::TooLarge`] when `text` is longer than the limit.
pub fn check_frame_len(text: &str) -> Result<&str, FrameError> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.len() > FRAME_BYTES_MAX {
        return Err(FrameError::TooLarge {
            bytes: text.len(),
            limit: FRAME_BYTES_MAX,
        });
    }
    Ok(text)
}

/// Messages [`encode_frame`] accepts: the protocol's own types and raw JSON values, whose
/// serialization cannot fail. Sealed, so the `expect` in [`encode_frame`] stays true.
pub trait WireMessage: Serialize + sealed::Sealed {}

impl FrameDecoder {
    /// A decoder with the protocol's limit, [`FRAME_BYTES_MAX`].
    pub fn new() -> Self {
        Self::with_frame_bytes_max(FRAME_BYTES_MAX)
    }

    /// A decoder with a smaller limit, for tests that want to reach it cheaply.
    ///
    /// # Panics
    /// When `frame_bytes_max` is 0 or above [`FRAME_BYTES_MAX`].
    pub fn with_frame_bytes_max(frame_bytes_max: usize) -> Self {
        assert!(
            (1..=FRAME_BYTES_MAX).contains(&frame_bytes_max),
            "invariant: a frame limit lies in 1..=FRAME_BYTES_MAX, got {frame_bytes_max}"
        );
        Self {
            pending: Vec::new(),
            discarding: None,
            ready: VecDeque::new(),
            frame_bytes_max,
        }
    }

    /// Feeds the next bytes of the stream, split anywhere. Decoded frames wait in the decoder
    /// until taken; take them after each push so memory stays bounded by the chunk size.
    pub fn push(&mut self, mut chunk: &[u8]) {
        // Bounded by the chunk: each round consumes at least one byte or ends.
        while !chunk.is_empty() {
            match memchr::memchr(b'\n', chunk) {
                Some(newline_index) => {
                    self.end_line(&chunk[..newline_index]);
                    chunk = &chunk[newline_index + 1..];
                }
                None => {
                    self.extend_line(chunk);
                    chunk = &[];
                }
            }
        }
    }

    /// The oldest decoded frame not yet taken, or `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> Option<Result<String, FrameError>> {
        self.ready.pop_front()
    }

    /// Ends the stream: a last line without a newline is decoded as a frame. Returns the frames
    /// not yet taken, in order; the decoder is empty afterwards.
    pub fn finish(&mut self) -> Vec<Result<String, FrameError>> {
        if !self.pending.is_empty() || self.discarding.is_some() {
            self.end_line(&[]);
        }
        self.ready.drain(..).collect()
    }

    /// Bytes held for the unfinished line (not counting decoded frames waiting to be taken).
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    /// The limit this decoder enforces, in bytes.
    pub fn frame_bytes_max(&self) -> usize {
        self.frame_bytes_max
    }

    fn extend_line(&mut self, bytes: &[u8]) {
        let ends_in_carriage_return = bytes.last() == Some(&b'\r');
        if let Some(discarding) = &mut self.discarding {
            discarding.bytes += bytes.len();
            discarding.ends_in_carriage_return = ends_in_carriage_return;
            return;
        }
        // One byte of slack for a `\r` that may precede the `\n`.
        if self.pending.len() + bytes.len() > self.frame_bytes_max + 1 {
            self.discarding = Some(Discarding {
                bytes: self.pending.len() + bytes.len(),
                ends_in_carriage_return,
            });
            self.pending = Vec::new();
            return;
        }
        self.pending.extend_from_slice(bytes);
    }

    fn end_line(&mut self, tail: &[u8]) {
        if let Some(discarding) = self.discarding.take() {
            let ends_in_carriage_return = match tail.last() {
                Some(&last) => last == b'\r',
                None => discarding.ends_in_carriage_return,
            };
            let bytes = discarding.bytes + tail.len() - usize::from(ends_in_carriage_return);
            self.ready.push_back(Err(self.too_large(bytes)));
            return;
        }
        if self.pending.is_empty() {
            self.decode_line(tail);
        } else {
            let mut line = std::mem::take(&mut self.pending);
            line.extend_from_slice(tail);
            self.decode_line(&line);
        }
    }

    fn decode_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > self.frame_bytes_max {
            self.ready.push_back(Err(self.too_large(line.len())));
            return;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let frame = match std::str::from_utf8(line) {
            Ok(text) => Ok(text.to_owned()),
            Err(error) => Err(FrameError::InvalidUtf8 {
                valid_up_to: error.valid_up_to(),
            }),
        };
        self.ready.push_back(frame);
    }

    fn too_large(&self, bytes: usize) -> FrameError {
        FrameError::TooLarge {
            bytes,
            limit: self.frame_bytes_max,
        }
    }
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl From<FrameError> for RpcError {
    fn from(error: FrameError) -> Self {
        let code = match error {
            FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            FrameError::InvalidUtf8 { .. } => ErrorCode::BadMessage,
        };
        RpcError::new(code, error.to_string())
    }
}

pub(crate) mod sealed {
    /// Implemented only inside `protocol`, for types whose JSON encoding cannot fail.
    pub trait Sealed {}
}

impl sealed::Sealed for serde_json::Value {}
impl WireMessage for serde_json::Value {}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_chunks(
        decoder: &mut FrameDecoder,
        chunks: &[&[u8]],
    ) -> Vec<Result<String, FrameError>> {
        let mut frames = Vec::new();
        for chunk in chunks {
            decoder.push(chunk);
            while let Some(frame) = decoder.next_frame() {
                frames.push(frame);
            }
        }
        frames.extend(decoder.finish());
        frames
    }

    fn decode_whole(bytes: &[u8], frame_bytes_max: usize) -> Vec<Result<String, FrameError>> {
        decode_chunks(
            &mut FrameDecoder::with_frame_bytes_max(frame_bytes_max),
            &[bytes],
        )
    }

    #[test]
    fn frames_split_at_every_byte_boundary_decode_identically() {
        // Two-, three- and four-byte characters, a CRLF line, an empty line, an oversized line
        // and an invalid one, so every split lands inside each kind of thing once.
        let stream = "{\"text\":\"é€😀\"}\r\n\n{\"a\":1}\nxxxxxxxxxxxxxxxxxxxxxxxx\n\u{fe}\n{}\n\
            yyyyyyyyyyyyyyyyyyyyyyyyy\r\n{}"
            .as_bytes();
        let mut stream = stream.to_vec();
        stream.extend_from_slice(b"\n\xff\xfe\n{\"b\":\"\xc3\xa9\"}\n");
        let whole = decode_whole(&stream, 20);
        assert_eq!(whole.len(), 9, "{whole:?}");
        for split in 0..=stream.len() {
            let (first, second) = stream.split_at(split);
            let mut decoder = FrameDecoder::with_frame_bytes_max(20);
            assert_eq!(
                decode_chunks(&mut decoder, &[first, second]),
                whole,
                "split at {split}"
            );
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        let mut decoder = FrameDecoder::with_frame_bytes_max(20);
        assert_eq!(decode_chunks(&mut decoder, &bytes), whole);
    }

    #[test]
    fn a_multi_byte_character_split_across_chunks_decodes() {
        let mut decoder = FrameDecoder::new();
        let frames = decode_chunks(&mut decoder, &[b"\"\xf0\x9f", b"\x98", b"\x80\"\n"]);
        assert_eq!(frames, vec![Ok("\"😀\"".to_owned())]);
    }

    #[test]
    fn an_oversized_frame_gives_too_large_and_the_next_frame_still_decodes() {
        let mut decoder = FrameDecoder::with_frame_bytes_max(8);
        let frames = decode_chunks(&mut decoder, &[b"0123456789ab", b"cdef\n{\"ok\":1}\n"]);
        assert_eq!(
            frames,
            vec![
                Err(FrameError::TooLarge {
                    bytes: 16,
                    limit: 8
                }),
                Ok("{\"ok\":1}".to_owned())
            ]
        );
    }

    #[test]
    fn an_oversized_frame_is_not_kept_in_memory() {
        let mut decoder = FrameDecoder::with_frame_bytes_max(8);
        for _ in 0..1000 {
            decoder.push(b"0123456789");
            assert!(decoder.pending_bytes() <= 9);
            assert_eq!(decoder.next_frame(), None);
        }
        decoder.push(b"\n");
        assert_eq!(
            decoder.next_frame(),
            Some(Err(FrameError::TooLarge {
                bytes: 10_000,
                limit: 8
            }))
        );
    }

    #[test]
    fn a_frame_at_the_limit_is_accepted_and_one_byte_more_is_too_large() {
        let at_limit = "a".repeat(FRAME_BYTES_MAX);
        let stream = format!("{at_limit}\n{at_limit}a\n{at_limit}\r\n");
        let frames = decode_whole(stream.as_bytes(), FRAME_BYTES_MAX);
        assert_eq!(
            frames,
            vec![
                Ok(at_limit.clone()),
                Err(FrameError::TooLarge {
                    bytes: FRAME_BYTES_MAX + 1,
                    limit: FRAME_BYTES_MAX
                }),
                Ok(at_limit.clone()),
            ]
        );
        assert!(check_frame_len(&at_limit).is_ok());
        assert!(matches!(
            check_frame_len(&format!("{at_limit}a")),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn invalid_utf8_gives_invalid_utf8_and_decoding_continues() {
        let frames = decode_whole(b"ab\xffcd\n{}\n", 64);
        assert_eq!(
            frames,
            vec![
                Err(FrameError::InvalidUtf8 { valid_up_to: 2 }),
                Ok("{}".to_owned())
            ]
        );
    }

    #[test]
    fn empty_lines_and_crlf_line_endings_are_tolerated() {
        let frames = decode_whole(b"\n\r\n  \n{}\r\n\r\n[]\n", 64);
        assert_eq!(frames, vec![Ok("{}".to_owned()), Ok("[]".to_owned())]);
    }

    #[test]
    fn a_last_line_without_newline_is_decoded_at_finish() {
        let mut decoder = FrameDecoder::new();
        decoder.push(b"{}\n{\"a\"");
        assert_eq!(decoder.next_frame(), Some(Ok("{}".to_owned())));
        assert_eq!(decoder.next_frame(), None);
        assert_eq!(decoder.finish(), vec![Ok("{\"a\"".to_owned())]);
        assert_eq!(decoder.finish(), vec![]);
    }

    #[test]
    fn encoded_frames_end_in_one_newline_and_decode_back() {
        let value = serde_json::json!({"text": "line\nbreak é"});
        let frame = encode_frame(&value);
        assert_eq!(frame.iter().filter(|&&byte| byte == b'\n').count(), 1);
        assert_eq!(frame.last(), Some(&b'\n'));
        let decoded = decode_whole(&frame, FRAME_BYTES_MAX);
        assert_eq!(decoded.len(), 1);
        let line = decoded[0].as_ref().expect("valid frame");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(line).ok(),
            Some(value)
        );
    }

    #[test]
    fn frame_errors_map_to_their_error_codes() {
        let too_large = RpcError::from(FrameError::TooLarge { bytes: 9, limit: 8 });
        assert_eq!(too_large.code, ErrorCode::FrameTooLarge);
        let invalid = RpcError::from(FrameError::InvalidUtf8 { valid_up_to: 0 });
        assert_eq!(invalid.code, ErrorCode::BadMessage);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn frame_text() -> impl Strategy<Value = String> {
            // Arbitrary Unicode without newlines, so each string is one line.
            proptest::collection::vec(
                any::<char>().prop_filter("no newline", |c| *c != '\n'),
                0..40,
            )
            .prop_map(|chars| chars.into_iter().collect())
        }

        proptest! {
            #[test]
            fn random_chunking_of_a_stream_of_frames_gives_the_same_frames(
                lines in proptest::collection::vec(frame_text(), 0..20),
                cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..30),
            ) {
                let stream: Vec<u8> = lines.iter().flat_map(|line| {
                    line.bytes().chain(std::iter::once(b'\n'))
                }).collect();
                let whole = decode_whole(&stream, 32);
                let mut cut_points: Vec<usize> =
                    cuts.iter().map(|index| index.index(stream.len() + 1)).collect();
                cut_points.sort_unstable();
                let mut chunks = Vec::new();
                let mut start = 0;
                for cut in cut_points {
                    chunks.push(&stream[start..cut]);
                    start = cut;
                }
                chunks.push(&stream[start..]);
                let mut decoder = FrameDecoder::with_frame_bytes_max(32);
                prop_assert_eq!(decode_chunks(&mut decoder, &chunks), whole.clone());
                // Lines that fit and are not blank come out as themselves.
                let expected: Vec<_> = lines
                    .iter()
                    .map(|line| line.strip_suffix('\r').unwrap_or(line))
                    .filter(|line| !line.bytes().all(|byte| byte.is_ascii_whitespace()))
                    .map(|line| if line.len() > 32 {
                        Err(FrameError::TooLarge { bytes: line.len(), limit: 32 })
                    } else {
                        Ok(line.to_owned())
                    })
                    .collect();
                prop_assert_eq!(whole, expected);
            }
        }
    }
}
