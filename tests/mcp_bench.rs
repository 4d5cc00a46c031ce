//! `relay bench mcp` runs end to end and prints both figures (a tiny run: it checks the
//! benchmark works, not how fast anything is).

#[path = "support/bench.rs"]
mod bench_support;

#[test]
fn the_mcp_benchmark_prints_the_hub_and_the_mcp_round_trips() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stdout = bench_support::run(&["mcp", "--round-trips", "20"], &dir.path().join("bench"));
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
