//! `relay replay` and `relay log …` run as real processes on data dirs written by the test
//! through the log and replay crates, the way a hub writes them.

use std::path::Path;
use std::process::{Command, Output};

use relay_log::{LogConfig, LogWriter, NewRecord};
use relay_replay::event::{
    ClientKind, GroupCreated, GroupMemberInvited, GroupMessageSent, IdentityRegistered,
    MailboxCursorAdvanced, MessageSent,
};
use relay_replay::{Event, RKYV_FORMAT_FLAGS, RecordMeta, State, apply, encode};
use serde_json::Value;

const BASE_TIME_US: u64 = 1_763_700_000_000_000;

fn register(name: &str) -> Event {
    IdentityRegistered {
        name: name.into(),
        cwd: format!("/src/{name}"),
        git_branch: None,
        client: ClientKind::Cli,
    }
    .into()
}

fn message(id: &str, from: &str, to: &str, body: &str) -> Event {
    MessageSent {
        id: id.into(),
        from: from.into(),
        to: to.into(),
        body: body.into(),
        reply_to: None,
        urgent: false,
        thread: None,
    }
    .into()
}

fn history() -> Vec<Event> {
    vec![
        register("alice"),
        register("bob"),
        message("m-1", "alice", "bob", "first"),
        message("m-2", "alice", "bob", "second"),
        message("m-3", "bob", "alice", "back"),
        MailboxCursorAdvanced {
            recipient: "bob".into(),
            up_to_sequence: 1,
        }
        .into(),
        GroupCreated {
            group: "backend".into(),
            admin: "alice".into(),
        }
        .into(),
        GroupMemberInvited {
            group: "backend".into(),
            actor: "alice".into(),
            member: "bob".into(),
        }
        .into(),
        GroupMessageSent {
            group: "backend".into(),
            id: "g-1".into(),
            from: "alice".into(),
            body: "standup".into(),
            reply_to: None,
            urgent: false,
        }
        .into(),
    ]
}

/// Writes `events` to the log of `data_dir` and returns the state they build.
fn write_events(data_dir: &Path, events: &[Event]) -> State {
    let config = LogConfig {
        payload_format_flags: RKYV_FORMAT_FLAGS,
        ..LogConfig::default()
    };
    let mut log = LogWriter::open(&data_dir.join("log"), config).expect("open log");
    let mut state = State::new();
    for event in events {
        let encoded = encode(event);
        let timestamp_us = BASE_TIME_US + log.next_offset() * 1_000_000;
        let offset = log
            .append(&NewRecord {
                timestamp_us,
                kind: encoded.kind,
                schema_version: encoded.schema_version,
                origin_hub: 7,
                payload: &encoded.payload,
            })
            .expect("append");
        apply(
            &mut state,
            RecordMeta {
                offset,
                timestamp_us,
                origin_hub: 7,
            },
            event,
        )
        .expect("valid history");
    }
    log.close().expect("close");
    state
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

fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON: {line}: {error}"))
        })
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Flips one byte inside the payload of the record at `offset` (first segment).
fn damage_record(data_dir: &Path, offset: u64) {
    let path = data_dir.join("log").join(format!("{:020}.seg", 0));
    let mut bytes = std::fs::read(&path).expect("read segment");
    let mut position = 64;
    for _ in 0..offset {
        let len =
            u32::from_le_bytes(bytes[position + 4..position + 8].try_into().expect("len")) as usize;
        position += 48 + len.div_ceil(16) * 16;
    }
    bytes[position + 48] ^= 0x20;
    std::fs::write(&path, bytes).expect("write segment");
}

#[test]
fn replay_state_shows_mailboxes_with_unread_counts_and_group_members() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_events(dir.path(), &history());
    let output = relay(dir.path(), &["replay", "--state", "--format", "json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines = json_lines(&output);
    let mailbox = |name: &str| {
        lines
            .iter()
            .find(|line| line["type"] == "mailbox" && line["mailbox"]["name"] == name)
            .unwrap_or_else(|| panic!("no mailbox {name} in {lines:?}"))["mailbox"]
            .clone()
    };
    assert_eq!(mailbox("bob")["unread"], 1);
    assert_eq!(mailbox("bob")["messages"], 2);
    assert_eq!(mailbox("alice")["unread"], 1);
    let group = lines
        .iter()
        .find(|line| line["type"] == "group")
        .expect("a group")["group"]
        .clone();
    assert_eq!(group["name"], "backend");
    assert_eq!(group["admin"], "alice");
    let bob = group["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|member| member["name"] == "bob")
        .cloned();
    assert_eq!(bob.expect("bob is a member")["unread"], 1);
}

#[test]
fn replay_filters_events_by_peer_and_kind() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_events(dir.path(), &history());
    let output = relay(
        dir.path(),
        &[
            "replay",
            "--peer",
            "bob",
            "--kind",
            "message_sent",
            "--format",
            "json",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let offsets: Vec<u64> = json_lines(&output)
        .iter()
        .map(|line| line["offset"].as_u64().expect("offset"))
        .collect();
    assert_eq!(offsets, vec![2, 3, 4]);
    let group_only = relay(
        dir.path(),
        &["replay", "--group", "backend", "--format", "json"],
    );
    let kinds: Vec<String> = json_lines(&group_only)
        .iter()
        .map(|line| line["kind"].as_str().expect("kind").to_owned())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "group_created",
            "group_member_invited",
            "group_message_sent"
        ]
    );
}

#[test]
fn replay_until_an_offset_or_a_time_shows_the_state_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_events(dir.path(), &history());
    let output = relay(
        dir.path(),
        &["replay", "--until", "3", "--state", "--format", "json"],
    );
    let lines = json_lines(&output);
    let bob = lines
        .iter()
        .find(|line| line["mailbox"]["name"] == "bob")
        .expect("bob");
    assert_eq!(
        bob["mailbox"]["unread"], 2,
        "the cursor advance at offset 5 is not applied yet"
    );
    assert!(lines.iter().all(|line| line["type"] != "group"));
    // Record 4 is stamped BASE + 4 s; the time bound excludes records 5 and later.
    let until_time = humantime_like(BASE_TIME_US / 1_000_000 + 4);
    let output = relay(
        dir.path(),
        &["replay", "--until", &until_time, "--format", "json"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(json_lines(&output).len(), 5);
}

fn humantime_like(unix_seconds: u64) -> String {
    // Days-from-civil inverse, enough for a test to format a UTC time without a dependency.
    let days = (unix_seconds / 86_400) as i64;
    let seconds = unix_seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[test]
fn a_damaged_record_makes_replay_and_verify_exit_3_naming_its_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_events(dir.path(), &history());
    damage_record(dir.path(), 4);
    let output = relay(dir.path(), &["replay", "--quiet"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("offset 4"), "{}", stderr(&output));
    let verify = relay(dir.path(), &["log", "verify", "--quiet"]);
    assert_eq!(verify.status.code(), Some(3));
    assert!(stderr(&verify).contains("offset 4"), "{}", stderr(&verify));
}

#[test]
fn repair_says_what_it_would_cut_then_cuts_it_with_yes() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_events(dir.path(), &history());
    damage_record(dir.path(), 6);
    let dry = relay(dir.path(), &["log", "repair"]);
    assert_eq!(dry.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("from offset 6"),
        "{:?}",
        dry
    );
    let cut = relay(dir.path(), &["log", "repair", "--yes"]);
    assert!(cut.status.success(), "{}", stderr(&cut));
    assert!(String::from_utf8_lossy(&cut.stdout).contains("cut at offset 6"));
    let verify = relay(dir.path(), &["log", "verify", "--quiet"]);
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("6 records verified"));
}

#[test]
fn log_info_dump_and_tail_show_records_by_kind() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_events(dir.path(), &history());
    let info = relay(dir.path(), &["log", "info", "--format", "json"]);
    assert!(info.status.success(), "{}", stderr(&info));
    let info = &json_lines(&info)[0];
    assert_eq!(info["next_offset"], 9);
    assert_eq!(info["records_by_kind"]["message_sent"], 3);
    assert_eq!(info["records_by_kind"]["identity_registered"], 2);
    let dump = relay(
        dir.path(),
        &[
            "log", "dump", "--from", "2", "--count", "1", "--format", "json",
        ],
    );
    let record = &json_lines(&dump)[0];
    assert_eq!(record["offset"], 2);
    assert_eq!(record["kind"], "message_sent");
    assert_eq!(record["payload"]["body"], "first");
    assert_eq!(record["origin_hub"], format!("{:032x}", 7));
    let tail = relay(
        dir.path(),
        &["log", "tail", "--count", "2", "--format", "json"],
    );
    let offsets: Vec<u64> = json_lines(&tail)
        .iter()
        .map(|line| line["offset"].as_u64().expect("offset"))
        .collect();
    assert_eq!(offsets, vec![7, 8]);
}

#[test]
fn replay_runs_while_a_writer_holds_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_events(dir.path(), &history());
    let config = LogConfig {
        payload_format_flags: RKYV_FORMAT_FLAGS,
        ..LogConfig::default()
    };
    let _writer = LogWriter::open(&dir.path().join("log"), config).expect("writer");
    let output = relay(dir.path(), &["replay", "--format", "json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(json_lines(&output).len(), 9);
}

#[test]
fn replay_verify_checks_snapshots_against_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = history();
    let state = write_events(dir.path(), &events);
    let log_id = relay_log::LogReader::open(&dir.path().join("log"))
        .expect("reader")
        .log_id();
    let snapshots = dir.path().join("snapshots");
    relay::snapshots::write(&snapshots, log_id, &state, 9).expect("snapshot");
    let output = relay(dir.path(), &["replay", "--verify", "--quiet", "--state"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("1 snapshot(s) match"),
        "{}",
        stderr(&output)
    );

    // A snapshot that claims offset 9 but holds the state at offset 5 must be caught.
    let mut earlier = State::new();
    for (offset, event) in events.iter().take(5).enumerate() {
        let meta = RecordMeta {
            offset: offset as u64,
            timestamp_us: BASE_TIME_US + offset as u64 * 1_000_000,
            origin_hub: 7,
        };
        apply(&mut earlier, meta, event).expect("apply");
    }
    std::fs::remove_dir_all(&snapshots).expect("clear");
    relay::snapshots::write(&snapshots, log_id, &earlier, 9).expect("snapshot");
    let output = relay(dir.path(), &["replay", "--verify", "--quiet"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("differs"), "{}", stderr(&output));
}

#[test]
fn an_unknown_kind_is_a_usage_error_listing_the_known_kinds() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_events(dir.path(), &history());
    let output = relay(dir.path(), &["replay", "--kind", "nonsense"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("message_sent"),
        "{}",
        stderr(&output)
    );
}
