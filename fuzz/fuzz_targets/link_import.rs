//! Fuzz target: a linked hub's record imported into a small state (`link_imported`: decode
//! with validation, translate names and ids, apply). Must reject or accept, never panic, and a
//! rejected import must change nothing.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    relay_replay::fuzzing::fuzz_link_import(data);
});
