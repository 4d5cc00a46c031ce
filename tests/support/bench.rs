//! Runs one `relay bench …` command of the real binary to its end and hands back its standard
//! output, failing the test with both streams if it did not succeed.

use std::path::Path;
use std::process::Command;

/// `relay bench <args> --dir <dir>`: its standard output.
pub(crate) fn run(args: &[&str], dir: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_relay"))
        .arg("bench")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env_remove("RELAY_LOG")
        .output()
        .expect("relay bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
