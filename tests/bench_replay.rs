//! `relay bench replay` runs end to end on a log long enough to start the decoding thread
//! (more than `REPLAY_INLINE_RECORDS`), and prints every figure. The benchmark itself
//! fails unless both replays and the start-up from the snapshot equal the state built live;
//! this checks that it works, not how fast anything is.

#[path = "support/bench.rs"]
mod bench_support;

#[test]
fn the_replay_benchmark_checks_both_replays_and_prints_every_figure() {
    let events = relay_replay::driver::REPLAY_INLINE_RECORDS * 2;
    let dir = tempfile::tempdir().expect("temp dir");
    let stdout = bench_support::run(
        &["replay", "--events", &events.to_string()],
        &dir.path().join("bench"),
    );
    for figure in [
        &format!("replay of {events} mixed events")[..],
        "full replay",
        "on one thread",
        "raw log scan",
        "ratio replay/scan",
        "start-up from snapshot",
    ] {
        assert!(stdout.contains(figure), "no {figure:?} in:\n{stdout}");
    }
    assert!(
        !dir.path().join("bench").exists(),
        "the scratch directory is removed"
    );
}
