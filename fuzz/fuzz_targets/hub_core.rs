//! Fuzz target: arbitrary request sequences from four sessions through an in-process core;
//! one response per request, and the live state equals the state replayed from its log.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    relay::hub::fuzzing::run_core_sequence(data);
});
