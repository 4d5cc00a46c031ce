//! Fuzzing support: arbitrary bytes through the whole client-frame path.
//!
//! The `fuzz/` target `client_frame` and the corpus replay under `cargo test` both call
//! [`decode_arbitrary_client_bytes`], so an input the fuzzer finds is a failing unit test once
//! it is added to `fuzz/corpus/client_frame/`. Besides "never panics" it asserts invariants:
//! chunking does not change the frames, a rejected request keeps its id, an error reply fits
//! in a frame, a parsed request re-encodes to itself, and the hub's one-pass request parse
//! (`ClientRequest::parse_line_fast`) agrees with the full parse whenever it takes a line.
//! Not part of the stable API.

use super::frame::{FrameDecoder, encode_frame};
use super::jsonrpc::{Incoming, ProtocolError, Response, parse_incoming};
use super::limits::FRAME_BYTES_MAX;
use super::methods::ClientRequest;
use super::notification::HubNotification;

/// Frame limit of the chunked decoder, small so inputs reach `TooLarge` cheaply.
const FUZZ_FRAME_BYTES_MAX: usize = 256;

/// Largest chunk the input is cut into, in bytes.
const FUZZ_CHUNK_BYTES_MAX: usize = 64;

/// Decodes `data[1..]` as a client byte stream, cut into chunks whose sizes come from
/// `data[0]`, and runs every frame through [`parse_incoming`] and [`ClientRequest`] parsing.
/// Must never panic, whatever `data` holds.
pub fn decode_arbitrary_client_bytes(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = decode_in_chunks(stream, FUZZ_FRAME_BYTES_MAX, &mut || stream.len().max(1));
    let mut state = u32::from(seed) | 1;
    let mut next_chunk_bytes = || {
        // A small linear congruential sequence: deterministic per seed, any sizes in range.
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        1 + (state >> 16) as usize % FUZZ_CHUNK_BYTES_MAX
    };
    let chunked = decode_in_chunks(stream, FUZZ_FRAME_BYTES_MAX, &mut next_chunk_bytes);
    assert_eq!(
        whole, chunked,
        "invariant: chunking does not change the decoded frames"
    );

    let frames = decode_in_chunks(stream, FRAME_BYTES_MAX, &mut next_chunk_bytes);
    for frame in frames {
        match frame {
            Ok(line) => exercise_line(&line),
            Err(error) => check_error_frame(&Response::error(None, error.into())),
        }
    }
}

fn decode_in_chunks(
    stream: &[u8],
    frame_bytes_max: usize,
    next_chunk_bytes: &mut dyn FnMut() -> usize,
) -> Vec<Result<String, super::frame::FrameError>> {
    let mut decoder = FrameDecoder::with_frame_bytes_max(frame_bytes_max);
    let mut frames = Vec::new();
    let mut rest = stream;
    // Bounded by the stream: every chunk holds at least one byte.
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(next_chunk_bytes().clamp(1, rest.len()));
        decoder.push(chunk);
        while let Some(frame) = decoder.next_frame() {
            frames.push(frame);
        }
        rest = after;
    }
    frames.extend(decoder.finish());
    frames
}

fn exercise_line(line: &str) {
    let fast = ClientRequest::parse_line_fast(line);
    if let Some(fast) = &fast {
        let slow = parse_incoming(line).and_then(|incoming| match incoming {
            Incoming::Request(request) => ClientRequest::from_request(request),
            other => Err(ProtocolError::new(
                None,
                super::error_code::ErrorCode::Unexpected,
                format!("the one-pass parse took a line that is not a request: {other:?}"),
            )),
        });
        assert_eq!(
            slow.as_ref(),
            Ok(fast),
            "invariant: the one-pass parse agrees with the full one"
        );
    }
    match parse_incoming(line) {
        Ok(Incoming::Request(request)) => {
            let id = request.id.clone();
            match ClientRequest::from_request(request) {
                Ok((parsed_id, client_request)) => {
                    assert_eq!(parsed_id, id, "invariant: parsing keeps the request id");
                    check_round_trip(parsed_id, client_request);
                }
                Err(error) => {
                    assert_eq!(error.id, Some(id), "invariant: a rejection keeps the id");
                    check_error_frame(&error.to_response());
                }
            }
        }
        Ok(Incoming::Notification(notification)) => {
            let _ = HubNotification::parse(&notification);
            let _ = ClientRequest::parse(&notification.method, notification.params);
        }
        Ok(Incoming::Response(response)) => {
            let _ = encode_frame(&response);
        }
        Err(error) => check_error_frame(&error.to_response()),
    }
}

fn check_round_trip(id: super::jsonrpc::RequestId, client_request: ClientRequest) {
    let frame = encode_frame(&client_request.clone().into_request(id.clone()));
    let line = std::str::from_utf8(&frame).expect("invariant: encoded frames are UTF-8");
    let reparsed = parse_incoming(line.trim_end()).and_then(|incoming| match incoming {
        Incoming::Request(request) => ClientRequest::from_request(request),
        other => Err(ProtocolError::new(
            None,
            super::error_code::ErrorCode::Unexpected,
            format!("re-encoded request read back as {other:?}"),
        )),
    });
    assert_eq!(
        reparsed,
        Ok((id, client_request)),
        "invariant: a parsed request re-encodes to itself"
    );
}

fn check_error_frame(response: &Response) {
    let frame = encode_frame(response);
    assert!(
        frame.len() <= FRAME_BYTES_MAX,
        "invariant: an error reply fits in one frame ({} bytes)",
        frame.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_committed_client_frame_corpus_decodes_without_panic() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/client_frame");
        let mut count = 0;
        for entry in std::fs::read_dir(&corpus).expect("the corpus dir exists") {
            let bytes = std::fs::read(entry.expect("dir entry").path()).expect("read seed");
            decode_arbitrary_client_bytes(&bytes);
            count += 1;
        }
        assert!(count >= 3, "the seed corpus must be committed");
    }

    #[test]
    fn every_request_in_the_seed_corpus_is_a_valid_client_request() {
        // The seeds are meant to start the fuzzer from valid traffic, so they must stay valid
        // as the protocol changes.
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/client_frame");
        for entry in std::fs::read_dir(&corpus).expect("the corpus dir exists") {
            let path = entry.expect("dir entry").path();
            let bytes = std::fs::read(&path).expect("read seed");
            let mut decoder = FrameDecoder::new();
            decoder.push(&bytes[1..]);
            for frame in decoder.finish() {
                let line = frame.expect("seed frames are valid");
                let Incoming::Request(request) = parse_incoming(&line).expect("valid JSON-RPC")
                else {
                    continue;
                };
                let parsed = ClientRequest::from_request(request);
                assert!(parsed.is_ok(), "{}: {parsed:?}", path.display());
            }
        }
    }

    #[test]
    fn short_arbitrary_inputs_decode_without_panic() {
        for len in 0..200usize {
            let input: Vec<u8> = (0..len).map(|index| (index * 37 + len) as u8).collect();
            decode_arbitrary_client_bytes(&input);
        }
    }

    #[test]
    fn every_prefix_of_a_valid_stream_decodes_without_panic() {
        let stream = concat!(
            "\u{5}",
            r#"{"jsonrpc":"2.0","id":1,"method":"send","params":{"to":"bob","text":"hé"}}"#,
            "\n",
            r#"{"jsonrpc":"2.0","id":"g","method":"group_create","params":{"name":"core","members":["a","b"]}}"#,
            "\r\n",
        );
        for end in 0..=stream.len() {
            decode_arbitrary_client_bytes(&stream.as_bytes()[..end]);
        }
    }
}
