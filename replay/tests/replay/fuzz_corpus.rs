//! Replays the `event_payload` fuzz corpus through the fuzz harness under `cargo test`, so an
//! input the fuzzer found stays a regression test once it is added to the corpus.

use std::path::Path;

#[test]
fn event_payload_fuzz_corpus_decodes_without_panic() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/event_payload");
    let mut count = 0;
    for entry in std::fs::read_dir(&corpus).expect("the corpus is committed") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        relay_replay::fuzzing::fuzz_decode_all_kinds(&bytes);
        relay_replay::fuzzing::fuzz_decode_snapshot(&bytes);
        count += 1;
    }
    assert!(
        count >= 20,
        "expected the golden payloads as seeds, found {count}"
    );
}

#[test]
fn link_import_fuzz_corpus_imports_without_panic() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/link_import");
    let mut count = 0;
    for entry in std::fs::read_dir(&corpus).expect("the corpus is committed") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        relay_replay::fuzzing::fuzz_link_import(&bytes);
        count += 1;
    }
    assert!(
        count >= 24,
        "expected the shippable kinds' golden payloads as seeds, found {count}"
    );
}

#[test]
fn the_link_import_fuzz_state_holds_a_group_homed_here_and_a_copy() {
    let state = relay_replay::fuzzing::link_import_state().expect("the fuzz setup applies");
    assert!(state.group("team").is_some());
    assert!(state.group("team@a").is_some());
}
