//! `relay inbox` prints a peer's text, not its terminal escape sequences: control characters
//! and bidirectional overrides are shown as `\u{..}`, so a peer cannot clear, retitle or
//! rewrite the user's terminal.

mod mcp_support;

use std::process::Command;

use mcp_support::{RELAY, TestHub};

fn relay(data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let output = Command::new(RELAY)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("RELAY_HOME")
        .output()
        .expect("relay runs");
    assert!(output.status.success(), "relay {args:?}: {output:?}");
    output
}

#[test]
fn inbox_shows_escape_sequences_escaped() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data_dir = dir.path().join("data");
    let _hub = TestHub::start(&data_dir);
    relay(&data_dir, &["inbox", "--as", "bob"]);
    let hostile = "\u{1b}]0;owned\u{7}\u{1b}[2Jcleared \u{202e}txt.exe";
    relay(&data_dir, &["send", "bob", hostile, "--as", "ann"]);
    let output = relay(&data_dir, &["inbox", "--as", "bob"]);
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\u{7}'),
        "{stdout:?}"
    );
    assert!(!stdout.contains('\u{202e}'), "{stdout:?}");
    assert!(
        stdout.contains("\\u{1b}]0;owned\\u{7}\\u{1b}[2Jcleared \\u{202e}txt.exe"),
        "{stdout}"
    );
}
