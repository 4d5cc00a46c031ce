//! `relay-log-torture`: appends and commits in a loop, printing each committed offset.
//!
//! Used by the SIGKILL test (and by anyone who wants to check a disk): kill it at any moment,
//! reopen the log, and every offset it printed as committed must be there with the payload
//! `payload_for(offset)` gives. Usage: `relay-log-torture DIR [BATCH]`.

use std::io::Write;
use std::path::PathBuf;

use relay_log::{LogConfig, LogWriter, NewRecord};

/// Deterministic payload of the record at `offset` (shared with the test by definition).
fn payload_for(offset: u64) -> Vec<u8> {
    let len = (offset * 37 % 500) as usize;
    (0..len)
        .map(|index| (offset as usize).wrapping_mul(13).wrapping_add(index) as u8)
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: relay-log-torture DIR [BATCH]")?);
    let batch: u64 = match args.next() {
        Some(batch) => batch.to_str().ok_or("BATCH must be a number")?.parse()?,
        None => 16,
    };
    let config = LogConfig {
        segment_bytes: 64 * 1024,
        ..LogConfig::default()
    };
    let mut log = LogWriter::open(&dir, config)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "opened {}", log.next_offset())?;
    stdout.flush()?;
    // Runs until killed: that is its purpose.
    loop {
        for _ in 0..batch {
            let offset = log.next_offset();
            let payload = payload_for(offset);
            log.append(&NewRecord {
                timestamp_us: offset,
                kind: 1,
                schema_version: 1,
                origin_hub: 0,
                payload: &payload,
            })?;
        }
        log.commit()?;
        writeln!(stdout, "committed {}", log.next_offset())?;
        stdout.flush()?;
    }
}
