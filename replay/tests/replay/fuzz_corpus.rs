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
