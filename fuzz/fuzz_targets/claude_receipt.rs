//! Fuzz target: arbitrary bytes as a line on a reply socket, where any local process (or a
//! confused Claude Code) may write. Parsing a receipt never panics; only a well-formed
//! `peer_message_status` control line yields a status.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        let _ = relay::clients::claude::messaging::parse_receipt(line);
    }
});
