//! Fuzz target: arbitrary bytes as a line on a session's delivery socket (any local process of
//! the user can connect) or as a line `relay deliver` and the hooks read back. Decoding never
//! panics; what decodes encodes again to a line that decodes to the same value.

#![no_main]

use relay::clients::endpoint::{encode_line, parse_caller_line, parse_session_line};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(line) = parse_caller_line(data) {
        let encoded = encode_line(&line).expect("a decoded line encodes");
        let again = parse_caller_line(&encoded[..encoded.len() - 1]).expect("and decodes");
        assert_eq!(again, line);
    }
    if let Ok(line) = parse_session_line(data) {
        let encoded = encode_line(&line).expect("a decoded line encodes");
        let again = parse_session_line(&encoded[..encoded.len() - 1]).expect("and decodes");
        assert_eq!(again, line);
    }
});
