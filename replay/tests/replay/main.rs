//! Integration tests of `relay-replay`, one binary so the crate links once.
//!
//! - `batches`: a command's batch of events applies all or none; torn batches.
//! - `apply_rules`: one behaviour of `apply` per test (rename, push, history, admin, rings).
//! - `codec`: kind names and numbers, round trips, typed decode errors, JSON shape.
//! - `fuzz_corpus`: the `event_payload` fuzz corpus replayed through its harness.
//! - `mailbox_bounds`: unread mail never dropped, refusals counted, read mail aging out, group
//!   members told what they missed.
//! - `identity_lifecycle`: identities forgotten when nothing waits for them; the limit.
//! - `message_layout`: derived and stored message ids, shared sender names, the JSON of a
//!   stored message and of the message index.
//! - `golden`: committed payload bytes per kind that must keep decoding.
//! - `snapshot`: snapshot round trips, determinism and damage.
//! - `state_budget`: the state byte budget filled to its limit, refused, drained and refilled.
//! - `properties`: random valid command sequences through a model (live == replayed ==
//!   snapshot + tail, ring and cursor invariants, rejected events change nothing).

mod apply_rules;
mod batches;
mod codec;
mod federation;
mod fuzz_corpus;
mod golden;
mod identity_lifecycle;
mod mailbox_bounds;
mod message_layout;
mod properties;
mod snapshot;
mod state_budget;
mod support;
