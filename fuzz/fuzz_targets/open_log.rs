//! Fuzz target: a log directory made of arbitrary bytes (segments, index, checkpoint) is
//! opened read-only and for writing and walked. Only errors may come out, never a panic.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    relay_log::fuzzing::open_arbitrary_log(data);
});
