//! A real process appends and commits in a loop and is killed with SIGKILL at a random
//! moment, several times over the same directory. After each kill the log is reopened:
//! every offset the child reported committed is present with its exact payload.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use relay_log::{LogConfig, LogWriter};

fn payload_for(offset: u64) -> Vec<u8> {
    let len = (offset * 37 % 500) as usize;
    (0..len)
        .map(|index| (offset as usize).wrapping_mul(13).wrapping_add(index) as u8)
        .collect()
}

#[test]
fn every_record_reported_committed_survives_sigkill() {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    println!("seed {seed}");
    let mut random = seed | 1;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut total_committed = 0;
    for round in 0..5 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_relay-log-torture"))
            .arg(dir.path())
            .arg(((round % 3) * 30 + 1).to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            let mut committed = 0u64;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(offset) = line.strip_prefix("committed ") {
                    committed = offset.parse().expect("offset");
                }
            }
            committed
        });
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        std::thread::sleep(Duration::from_millis(100 + random % 400));
        // Child::kill sends SIGKILL on Unix: no chance to flush or unlock.
        child.kill().expect("kill");
        child.wait().expect("wait");
        let committed = reader.join().expect("reader thread");
        assert!(
            committed >= total_committed,
            "round {round}: child went backwards"
        );
        total_committed = committed;

        let log = LogWriter::open(
            dir.path(),
            LogConfig {
                segment_bytes: 64 * 1024,
                ..LogConfig::default()
            },
        )
        .expect("reopen after SIGKILL");
        assert!(
            log.next_offset() >= committed,
            "round {round} (seed {seed}): {} < reported {committed}",
            log.next_offset()
        );
        for record in log.iter_from(0).expect("iter") {
            let record = record.expect("no corruption after SIGKILL");
            assert_eq!(
                record.payload,
                payload_for(record.offset).as_slice(),
                "offset {}",
                record.offset
            );
        }
    }
    assert!(
        total_committed > 0,
        "the child never committed (seed {seed})"
    );
}
