//! Replays the `hub_core` fuzz corpus through its harness under `cargo test`, plus a sweep of
//! generated sequences: no panic, one response per request, live state equals replay.

use std::path::Path;

#[test]
fn hub_core_fuzz_corpus_keeps_live_state_equal_to_replay() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/hub_core");
    let mut count = 0;
    for entry in std::fs::read_dir(&corpus).expect("the corpus is committed") {
        relay::hub::fuzzing::run_core_sequence(
            &std::fs::read(entry.expect("entry").path()).expect("read"),
        );
        count += 1;
    }
    assert!(count >= 5, "seed corpus missing: {count}");
}

#[test]
fn generated_request_sequences_keep_live_state_equal_to_replay() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for length in [8usize, 40, 120, 400] {
        for _ in 0..8 {
            let bytes: Vec<u8> = (0..length)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect();
            relay::hub::fuzzing::run_core_sequence(&bytes);
        }
    }
}
