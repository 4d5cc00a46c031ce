//! `relay bench replay` runs end to end on a log long enough to start the decoding thread
//! (more than `REPLAY_INLINE_RECORDS`), and prints every figure. The benchmark itself
//! fails unless both replays and the start-up from the snapshot equal the state built live;
//! this checks that it works, not how fast anything is.

use std::process::Command;

#[test]
fn the_replay_benchmark_checks_both_replays_and_prints_every_figure() {
    let events = relay_replay::driver::REPLAY_INLINE_RECORDS * 2;
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["bench", "replay", "--events", &events.to_string(), "--dir"])
        .arg(dir.path().join("bench"))
        .env_remove("RELAY_LOG")
        .output()
        .expect("relay bench replay runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
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
