//! Fuzz target: arbitrary bytes as a client's socket stream, cut into arbitrary chunks, then
//! every decoded line through `parse_incoming` and method parsing. Only error replies may come
//! out, never a panic; the harness also asserts that chunking never changes the frames.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    relay::protocol::fuzzing::decode_arbitrary_client_bytes(data);
});
