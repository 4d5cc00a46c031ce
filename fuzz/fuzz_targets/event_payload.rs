//! Fuzz target: arbitrary bytes as the payload of every event kind and schema version (what
//! a peer hub could send in an imported record), and as a snapshot. Validation must reject
//! or accept, never panic.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    relay_replay::fuzzing::fuzz_decode_all_kinds(data);
    relay_replay::fuzzing::fuzz_decode_snapshot(data);
});
