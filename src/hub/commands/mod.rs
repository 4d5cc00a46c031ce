//! The core's commands, one file per domain: each is a plan from `&State` and a request to
//! events, pushes and a typed result, run by the core task (`hub/core.rs`).
//!
//! - [`batch`]: commands that write several events write them as one atomic batch.
//! - [`identity`]: register, rename, peers.
//! - [`messages`]: send, ask, broadcast, reply, inbox.
//! - [`delivery`]: acknowledged pushes, honest send results, receipts, status, unread
//!   counts, ask deadlines, idempotency keys, the loop guard.
//! - [`rooms`]: join, leave, post, list.
//! - [`groups`]: create, invite, remove, leave, delete, info, send, history, list.
//! - [`hub_info`]: what the hub is and does (read-only, no register needed).
//! - [`page`]: paged lists (`peers`, `rooms`) that always fit one frame.
//!
//! Architecture invariant: commands never touch sockets or the log directly; they go through
//! the core's `emit` and its release of replies and pushes after the batch is durable.

pub mod batch;
pub mod delivery;
pub mod federation;
pub mod groups;
pub mod hub_info;
pub mod identity;
pub mod messages;
pub mod page;
pub mod rooms;
