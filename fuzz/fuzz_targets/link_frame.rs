//! Fuzz target: arbitrary bytes as a federation link frame (they come from another machine,
//! decrypted but untrusted) and as a federation hello line. Decoding never panics, never
//! allocates past the frame's own size, and what decodes encodes back to the same bytes.

#![no_main]

use relay::federation::noise::parse_hello;
use relay::federation::wire::{decode, encode};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = decode(data) {
        assert_eq!(encode(&frame), data, "a decoded frame encodes to its bytes");
    }
    if let Ok(line) = std::str::from_utf8(data) {
        let _ = parse_hello(line);
    }
});
