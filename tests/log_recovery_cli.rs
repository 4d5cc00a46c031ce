//! `relay log verify`, `relay log repair`, `relay log dump`/`tail` and `relay replay` on logs
//! with the damage issue 10 describes, run as real processes: a flipped byte above the
//! checkpoint that valid records follow is reported (exit 3) and never called ok; a record
//! with a timestamp past year 9999 prints without a panic; foreign format flags are named.

use std::path::Path;
use std::process::{Command, Output};

use relay_log::{LogConfig, LogWriter, NewRecord};
use relay_replay::event::{ClientKind, IdentityRegistered};
use relay_replay::{Event, RKYV_FORMAT_FLAGS, encode};

/// Exit code of a check that found problems (`cli/exit_code.rs`).
const CHECK_FAILED: i32 = 3;

fn register(index: u64) -> Event {
    IdentityRegistered {
        name: format!("peer-{index}"),
        cwd: "/src".into(),
        git_branch: None,
        client: ClientKind::Cli,
    }
    .into()
}

/// Writes `count` registrations: the first `durable` synced into the checkpoint, the rest
/// each committed, then the writer "crashes", so they lie above the checkpoint.
fn write_log(data_dir: &Path, durable: u64, count: u64, timestamp_us: u64) {
    let config = LogConfig {
        payload_format_flags: RKYV_FORMAT_FLAGS,
        ..LogConfig::default()
    };
    let dir = data_dir.join("log");
    let append = |log: &mut LogWriter, index: u64| {
        let encoded = encode(&register(index));
        log.append(&NewRecord {
            timestamp_us,
            kind: encoded.kind,
            schema_version: encoded.schema_version,
            origin_hub: 1,
            payload: &encoded.payload,
        })
        .expect("append");
    };
    // One session (a reopen could meet the lock still held by a `relay` child another test
    // is spawning): `sync` moves the checkpoint to the end, later commits leave it behind.
    let mut log = LogWriter::open(&dir, config).expect("open");
    for index in 0..durable {
        append(&mut log, index);
    }
    log.sync().expect("sync");
    for index in durable..count {
        append(&mut log, index);
        log.commit().expect("commit");
    }
    assert_eq!(log.durable_offset(), durable, "the checkpoint must lag");
    drop(log);
}

fn relay(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("RELAY_HOME")
        .output()
        .expect("run relay")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Flips a payload byte of the record at `offset` (single segment) and returns its position.
fn flip_record(data_dir: &Path, offset: u64) -> usize {
    let path = data_dir.join("log").join(format!("{:020}.seg", 0));
    let mut bytes = std::fs::read(&path).expect("read segment");
    let mut position = 64;
    for _ in 0..offset {
        let len =
            u32::from_le_bytes(bytes[position + 4..position + 8].try_into().expect("len")) as usize;
        position += 48 + len.div_ceil(16) * 16;
    }
    bytes[position + 50] ^= 0x21;
    std::fs::write(&path, &bytes).expect("write segment");
    position
}

#[test]
fn a_flipped_record_above_the_checkpoint_fails_verify_and_repair_says_what_it_cuts() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path(), 5, 40, 1_763_700_000_000_000);
    let position = flip_record(dir.path(), 20);

    let verify = relay(dir.path(), &["log", "verify", "--quiet"]);
    assert_eq!(
        verify.status.code(),
        Some(CHECK_FAILED),
        "{}",
        stdout(&verify)
    );
    let message = stderr(&verify);
    assert!(message.contains("at offset 20"), "{message}");
    assert!(message.contains(&format!("(byte {position})")), "{message}");
    assert!(message.contains("not a torn write"), "{message}");
    assert!(message.contains("relay log repair"), "{message}");
    assert!(!stdout(&verify).contains("ok:"), "{}", stdout(&verify));

    let dry_run = relay(dir.path(), &["log", "repair"]);
    assert_eq!(
        dry_run.status.code(),
        Some(CHECK_FAILED),
        "{}",
        stderr(&dry_run)
    );
    assert!(
        stdout(&dry_run).contains("would cut every record from offset 20"),
        "{}",
        stdout(&dry_run)
    );
    let repaired = relay(dir.path(), &["log", "repair", "--yes"]);
    assert!(repaired.status.success(), "{}", stderr(&repaired));
    assert!(
        stdout(&repaired).contains("cut at offset 20"),
        "{}",
        stdout(&repaired)
    );
    let verify = relay(dir.path(), &["log", "verify", "--quiet"]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert!(
        stdout(&verify).contains("ok: 20 records"),
        "{}",
        stdout(&verify)
    );
}

#[test]
fn a_timestamp_past_year_9999_prints_raw_in_dump_tail_and_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path(), 3, 3, u64::MAX);
    for args in [
        &["log", "dump"][..],
        &["log", "dump", "--format", "json"],
        &["log", "tail"],
        &["replay"],
        &["replay", "--format", "json"],
    ] {
        let output = relay(dir.path(), args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        assert!(
            stdout(&output).contains(&format!("{}us", u64::MAX)),
            "{args:?}: {}",
            stdout(&output)
        );
    }
}

#[test]
fn a_log_with_foreign_format_flags_is_named_not_decoded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        payload_format_flags: 0b010,
        ..LogConfig::default()
    };
    let mut log = LogWriter::open(&dir.path().join("log"), config).expect("open");
    log.append(&NewRecord {
        timestamp_us: 1,
        kind: 1,
        schema_version: 1,
        origin_hub: 0,
        payload: b"foreign",
    })
    .expect("append");
    log.close().expect("close");
    for args in [&["log", "verify"][..], &["replay"]] {
        let output = relay(dir.path(), args);
        assert_eq!(output.status.code(), Some(CHECK_FAILED), "{args:?}");
        assert!(
            stderr(&output).contains("payload format flags 0x02"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn a_missing_middle_segment_fails_verify_naming_the_missing_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_dir = dir.path().join("log");
    let config = LogConfig {
        payload_format_flags: RKYV_FORMAT_FLAGS,
        segment_bytes: relay_log::limits::SEGMENT_BYTES_MIN,
        ..LogConfig::default()
    };
    let mut log = LogWriter::open(&log_dir, config).expect("open");
    for index in 0..120 {
        let encoded = encode(&register(index));
        log.append(&NewRecord {
            timestamp_us: 1_763_700_000_000_000,
            kind: encoded.kind,
            schema_version: encoded.schema_version,
            origin_hub: 1,
            payload: &encoded.payload,
        })
        .expect("append");
    }
    log.close().expect("close");
    let mut segments: Vec<String> = std::fs::read_dir(&log_dir)
        .expect("log dir")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".seg"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "{segments:?}");
    std::fs::remove_file(log_dir.join(&segments[1])).expect("remove");
    let missing_from: u64 = segments[1][..20].parse().expect("base offset");
    let next_base: u64 = segments[2][..20].parse().expect("base offset");

    let verify = relay(dir.path(), &["log", "verify", "--quiet"]);
    assert_eq!(
        verify.status.code(),
        Some(CHECK_FAILED),
        "{}",
        stdout(&verify)
    );
    let message = stderr(&verify);
    assert!(
        message.contains(&format!("records missing up to offset {next_base}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("at offset {missing_from}")),
        "{message}"
    );
}
