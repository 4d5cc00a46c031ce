//! Fuzz target: arbitrary bytes as the stdin of `relay hook gemini …` (Gemini CLI writes it,
//! but nothing stops anything else from running the hook). Parsing never panics, and whatever
//! parses renders to JSON for both events.

#![no_main]

use relay::clients::gemini::hook::{HookEvent, parse_input, render};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(input) = parse_input(data) {
        let _ = input.continuation();
        let _ = input.event();
        let texts: Vec<String> = input.prompt.into_iter().collect();
        for event in HookEvent::ALL {
            let out = render(event, &texts);
            assert!(out.starts_with('{') && !out.contains('\n'));
        }
    }
});
