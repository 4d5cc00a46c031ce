//! Atomic batches (issue 10): the records between `batch_started` and `batch_ended` apply all
//! or none. A log cut anywhere inside a batch (a torn tail) replays to the state without any
//! of it; after the restart's `hub_started` the cut batch is discarded for good; markers out of
//! order are errors naming the offset.

use relay_log::{Corruption, Record};
use relay_replay::event::*;
use relay_replay::{Event, ReplayError, ReplayStats, State, Until, encode, replay_into};

use crate::support::*;

/// Encoded events with consecutive offsets from 0, as records would hold them.
struct Encoded {
    kind: u16,
    schema_version: u16,
    payload: Vec<u8>,
}

fn encoded(events: &[Event]) -> Vec<Encoded> {
    events
        .iter()
        .map(|event| {
            let encoded = encode(event);
            Encoded {
                kind: encoded.kind,
                schema_version: encoded.schema_version,
                payload: encoded.payload.to_vec(),
            }
        })
        .collect()
}

fn records(encoded: &[Encoded]) -> Vec<Result<Record<'_>, Corruption>> {
    encoded
        .iter()
        .enumerate()
        .map(|(offset, encoded)| {
            Ok(Record {
                offset: offset as u64,
                timestamp_us: 1_700_000_000_000_000 + offset as u64,
                kind: encoded.kind,
                schema_version: encoded.schema_version,
                origin_hub: HUB,
                payload: &encoded.payload,
            })
        })
        .collect()
}

// The library's error as it is: a test helper returns it unboxed, like `replay_into`.
#[allow(clippy::result_large_err)]
fn replay(encoded: &[Encoded]) -> Result<(State, ReplayStats), ReplayError> {
    let mut state = State::new();
    let stats = replay_into(
        &mut state,
        records(encoded).into_iter(),
        Until::End,
        |_, _| {},
    )?;
    Ok((state, stats))
}

fn started() -> Event {
    BatchStarted {
        command: "group_create".into(),
    }
    .into()
}

fn ended(event_count: u32) -> Event {
    BatchEnded { event_count }.into()
}

fn hub_started() -> Event {
    HubStarted {
        hub_id: HUB,
        version: "test".into(),
    }
    .into()
}

/// alice, bob and carol registered, then `group_create` of `team` with bob and carol as one
/// batch (5 records at offsets 3..=7).
fn history() -> Vec<Event> {
    vec![
        register("alice").into(),
        register("bob").into(),
        register("carol").into(),
        started(),
        create_group("team", "alice").into(),
        invite("team", "alice", "bob").into(),
        invite("team", "alice", "carol").into(),
        ended(3),
    ]
}

#[test]
fn a_whole_batch_applies_and_a_batch_cut_anywhere_applies_none() {
    let events = history();
    let all = encoded(&events);
    let (state, stats) = replay(&all).expect("replays");
    assert_eq!(
        state.group("team").map(|group| group.member_count()),
        Some(3)
    );
    assert_eq!((stats.records, stats.records_held), (8, 0));

    // The log torn after each record of the batch but the last: no group, no member.
    for cut in 4..all.len() {
        let (state, stats) = replay(&all[..cut]).expect("a torn batch is not an error");
        assert!(
            state.group("team").is_none(),
            "cut at {cut}: part of the batch applied"
        );
        assert_eq!(stats.records_held, (cut - 3) as u64, "cut at {cut}");
        assert_eq!(
            state.next_offset(),
            3,
            "the next replay starts at the batch"
        );
        assert_eq!(state.identities().count(), 3);
    }
}

#[test]
fn a_restart_after_a_torn_batch_discards_it_and_the_log_goes_on() {
    // The hub crashed after the group and one invite; it restarted (hub_started) and alice
    // created the group again, whole this time.
    let mut events: Vec<Event> = history()[..6].to_vec();
    events.push(hub_started());
    events.extend([
        started(),
        create_group("team", "alice").into(),
        invite("team", "alice", "carol").into(),
        ended(2),
    ]);
    let all = encoded(&events);
    let (state, stats) = replay(&all).expect("replays");
    let team = state.group("team").expect("the second group_create");
    assert_eq!(
        team.member_count(),
        2,
        "alice and carol: bob's invite was discarded"
    );
    assert_eq!(stats.records_discarded, 3);
    assert_eq!(stats.records_held, 0);
}

#[test]
fn batch_markers_out_of_order_are_errors_naming_the_offset() {
    let nested: Vec<Event> = vec![started(), started()];
    assert!(matches!(
        replay(&encoded(&nested)),
        Err(ReplayError::Batch { offset: 1, .. })
    ));
    let stray: Vec<Event> = vec![register("alice").into(), ended(0)];
    assert!(matches!(
        replay(&encoded(&stray)),
        Err(ReplayError::Batch { offset: 1, .. })
    ));
    let mut miscounted = history();
    miscounted[7] = ended(2);
    let error = replay(&encoded(&miscounted)).expect_err("the count is checked");
    assert!(
        matches!(error, ReplayError::Batch { offset: 7, .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("counts 2 records, the batch has 3"),
        "{error}"
    );
}

#[test]
fn a_replay_stopped_inside_a_batch_resumes_at_its_start() {
    let all = encoded(&history());
    let mut state = State::new();
    let stats = replay_into(
        &mut state,
        records(&all).into_iter(),
        Until::Offset(5),
        |_, _| {},
    )
    .expect("replays");
    assert!(state.group("team").is_none());
    assert_eq!((stats.records_held, state.next_offset()), (3, 3));
    // Resuming from the state's next offset reads the batch again, whole.
    let rest = records(&all).into_iter().skip(state.next_offset() as usize);
    replay_into(&mut state, rest, Until::End, |_, _| {}).expect("replays");
    assert_eq!(
        state.group("team").map(|group| group.member_count()),
        Some(3)
    );
}
