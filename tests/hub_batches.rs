//! Black-box test of atomic commands (issue 10) against the real hub: `group_create` with two
//! invitees is written as one batch (`batch_started` … `batch_ended`). The hub's own log, cut
//! after every record inside that batch (what a crash leaves: a torn tail is cut at a record
//! boundary), starts a hub that knows none of the group, also after a second restart; cut after
//! the batch's end, it knows all of it.

#[allow(dead_code, reason = "shared with hub_conformance, which uses the rest")]
mod support;

use std::path::Path;

use relay_log::{LogConfig, LogReader, LogWriter, NewRecord};
use relay_replay::{EventKind, RKYV_FORMAT_FLAGS};
use serde_json::json;
use support::{Hub, Transport};

/// One record as read back: what a copy needs.
struct Copied {
    timestamp_us: u64,
    kind: u16,
    schema_version: u16,
    origin_hub: u128,
    payload: Vec<u8>,
}

fn read_log(data_dir: &Path) -> Vec<Copied> {
    let reader = LogReader::open(&data_dir.join("log")).expect("open the log");
    reader
        .iter_from(reader.first_offset())
        .expect("iterate")
        .map(|record| {
            let record = record.expect("an intact log");
            Copied {
                timestamp_us: record.timestamp_us,
                kind: record.kind,
                schema_version: record.schema_version,
                origin_hub: record.origin_hub,
                payload: record.payload.to_vec(),
            }
        })
        .collect()
}

/// A data dir whose log holds exactly `records`, as a hub crash would leave it.
fn data_dir_with(records: &[Copied]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary data dir");
    let config = LogConfig {
        payload_format_flags: RKYV_FORMAT_FLAGS,
        ..LogConfig::default()
    };
    let mut log = LogWriter::open(&dir.path().join("log"), config).expect("open log");
    for record in records {
        log.append(&NewRecord {
            timestamp_us: record.timestamp_us,
            kind: record.kind,
            schema_version: record.schema_version,
            origin_hub: record.origin_hub,
            payload: &record.payload,
        })
        .expect("append");
    }
    log.close().expect("close");
    dir
}

fn kind_of(record: &Copied) -> Option<EventKind> {
    EventKind::from_number(record.kind)
}

/// The members `alice` sees in `team`, or the error message.
fn team_members(hub: &Hub) -> Result<usize, String> {
    let mut alice = hub.join(Transport::Unix, "alice");
    let response = alice.request("group_info", json!({ "group": "team" }));
    match response.get("result") {
        Some(result) => Ok(result["members"].as_array().map_or(0, Vec::len)),
        None => Err(response["error"]["message"]
            .as_str()
            .unwrap_or("?")
            .to_owned()),
    }
}

const NO_TEAM: &str = "no group named \"team\"";

#[test]
fn a_group_create_cut_by_a_crash_is_all_or_nothing_after_restart() {
    let mut hub = Hub::start();
    let mut alice = hub.join(Transport::Unix, "alice");
    let _bob = hub.join(Transport::Unix, "bob");
    let _carol = hub.join(Transport::Unix, "carol");
    let created = alice.call(
        "group_create",
        json!({ "name": "team", "members": ["bob", "carol"] }),
    );
    assert_eq!(created["members"].as_array().map(Vec::len), Some(3));
    drop((alice, _bob, _carol));
    hub.terminate();
    let records = read_log(hub.data_dir());
    let kinds: Vec<Option<EventKind>> = records.iter().map(kind_of).collect();
    let start = kinds
        .iter()
        .position(|kind| *kind == Some(EventKind::BatchStarted))
        .expect("group_create wrote a batch");
    assert_eq!(
        kinds[start..start + 5],
        [
            Some(EventKind::BatchStarted),
            Some(EventKind::GroupCreated),
            Some(EventKind::GroupMemberInvited),
            Some(EventKind::GroupMemberInvited),
            Some(EventKind::BatchEnded),
        ]
    );

    // Cut after batch_started, after group_created, after the first and the second invite.
    for cut in start + 1..start + 5 {
        let mut torn = Hub::start_in(data_dir_with(&records[..cut]), &[]);
        assert_eq!(
            team_members(&torn),
            Err(NO_TEAM.to_owned()),
            "log cut after record {cut}: part of group_create survived"
        );
        // The restart wrote hub_started after the torn batch: it stays discarded, also once
        // more records follow and the hub starts again.
        torn.restart();
        assert!(
            team_members(&torn).is_err(),
            "cut after {cut}, second start"
        );
    }
    // Cut after batch_ended: the whole group.
    let whole = Hub::start_in(data_dir_with(&records[..start + 5]), &[]);
    assert_eq!(team_members(&whole), Ok(3));
}
