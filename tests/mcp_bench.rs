//! `relay bench mcp` runs end to end and prints both figures (a tiny run: it checks the
//! benchmark works, not how fast anything is).

use std::process::Command;

#[test]
fn the_mcp_benchmark_prints_the_hub_and_the_mcp_round_trips() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["bench", "mcp", "--round-trips", "20", "--dir"])
        .arg(dir.path().join("bench"))
        .env_remove("RELAY_LOG")
        .output()
        .expect("relay bench mcp runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("hub client  send -> push"), "{stdout}");
    assert!(
        stdout.contains("relay mcp   relay_send -> channel"),
        "{stdout}"
    );
    assert!(
        stdout.contains("MCP layer on top of the hub p50"),
        "{stdout}"
    );
}
