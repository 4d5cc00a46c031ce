//! Fuzz target: arbitrary bytes as the stdin of `relay hook cursor stop`. Parsing never
//! panics, and whatever parses renders to one line of JSON.

#![no_main]

use relay::clients::cursor::hook::{HookEvent, parse_input, render};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(input) = parse_input(data) {
        let _ = (input.continuation(), input.delivers(), input.status());
        let texts: Vec<String> = input.conversation_id.into_iter().collect();
        let out = render(HookEvent::Stop, &texts);
        assert!(out.starts_with('{') && !out.contains('\n'));
    }
});
