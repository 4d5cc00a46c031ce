//! Fuzz target: CRC-valid segments whose base offsets, record offsets, timestamps and
//! checkpoint come from the input are opened, walked and appended to, and every record's
//! timestamp is printed the way `relay log dump` and `relay replay` print it. Only errors may
//! come out, never a panic (issue 10: offsets from disk, timestamps past year 9999).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    relay_log::fuzzing::open_crafted_log(data, &mut |record| {
        let _ = relay::cli::output::format_timestamp(record.timestamp_us);
    });
});
