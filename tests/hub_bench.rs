//! `relay bench hub` runs end to end on a tiny load and prints every line (it checks the
//! benchmark works, not how fast anything is). Two sessions send to each other, so a hub that
//! ran the benchmark with its loop guard on would refuse their sends after 100 turns, and a
//! failed send now fails the run.

#[path = "support/bench.rs"]
mod bench_support;

#[test]
fn the_hub_benchmark_runs_two_sessions_to_the_end_and_prints_every_goal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stdout = bench_support::run(
        &[
            "hub",
            "--sessions",
            "2",
            "--seconds",
            "1",
            "--repeat",
            "1",
            "--window",
            "1",
        ],
        &dir.path().join("bench"),
    );
    for line in [
        "unix-socket round trip, two threads",
        "write + fdatasync (one record)",
        "the same, 5 ms after the one before",
        "strict log commit (one record)",
        "os        2 sessions x1  (closed loop   )",
        "strict    2 sessions x1  (closed loop   )",
        "strict    2 sessions x1  (paced 200/s   )",
        "strict 2 sessions / one-sync-per-message rate",
        "unloaded strict p50 / (round trip + fdatasync)",
        "over round trip + fdatasync after 5 ms idle",
        "strict p99 at half load / 2 ms",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
}
