//! Relay's events, projections and snapshots: a pure, deterministic fold of the log.
//!
//! The log is the truth; everything the hub knows is a projection of it. This crate owns:
//!
//! - [`event`]: the schema, one [`EventKind`] per state change, frozen rkyv structs per schema
//!   version ([`event::v1`]), and the codec ([`encode`], [`decode`]) that only ever reads with
//!   validation, because imported records are untrusted.
//! - [`state`]: the projection [`State`]: identities, mailboxes, groups, rooms, asks, federation
//!   progress, and the queries the hub needs.
//! - [`apply()`]: the one fold step, shared by the live hub and `relay replay`.
//! - [`snapshot`]: the whole `State` at an offset, so start-up does not replay from zero.
//! - [`limits`]: every bound, named.
//! - [`audit`]: event filters and the state summary `relay replay` prints.
//! - [`driver`]: folds records read from the log (`relay-log`) into a `State`, checking each.
//!
//! **Architecture invariant:** nothing here reads the clock, the network, the environment or a
//! file. Time comes from the record header ([`RecordMeta`]), so replaying the same log always
//! gives the same state. This crate does not know sockets, tokio or MCP.
//!
//! # Examples
//!
//! ```
//! use relay_replay::event::{ClientKind, IdentityRegistered, MessageSent};
//! use relay_replay::{Event, RecordMeta, State, apply, decode, encode};
//!
//! let register = |name: &str| IdentityRegistered {
//!     name: name.into(),
//!     cwd: "/src".into(),
//!     git_branch: None,
//!     client: ClientKind::Cli,
//! };
//! let events: Vec<Event> = vec![
//!     register("alice").into(),
//!     register("bob").into(),
//!     MessageSent {
//!         id: "m-1".into(),
//!         from: "alice".into(),
//!         to: "bob".into(),
//!         body: "hello".into(),
//!         reply_to: None,
//!         urgent: false,
//!         thread: None,
//!     }
//!     .into(),
//! ];
//! let mut state = State::new();
//! for (offset, event) in events.iter().enumerate() {
//!     // What the log stores, and what replay reads back.
//!     let encoded = encode(event);
//!     let decoded = decode(encoded.kind, encoded.schema_version, &encoded.payload)?;
//!     let record = RecordMeta { offset: offset as u64, timestamp_us: 0, origin_hub: 1 };
//!     apply(&mut state, record, &decoded)?;
//! }
//! let bob = state.identity_by_name("bob").expect("registered");
//! let mailbox = state.mailbox(bob.id).expect("every identity has a mailbox");
//! assert_eq!(mailbox.unread(None, 10)[0].body(), "hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod apply;
pub mod audit;
pub mod driver;
pub mod event;
pub mod federation;
#[doc(hidden)]
pub mod fuzzing;
pub mod limits;
pub mod snapshot;
pub mod state;

pub use apply::{ApplyError, RecordMeta, apply};
pub use driver::{
    Pipeline, RKYV_FORMAT_FLAGS, ReplayError, ReplayStats, Until, decode_record, replay_into,
    replay_into_with,
};
pub use event::codec::{DecodeError, EncodeBuffer, Encoded, decode, encode, encode_into};
pub use event::{ClientKind, Event, EventKind};
pub use snapshot::{
    SnapshotEncodeError, SnapshotError, SnapshotSample, SnapshotVerifyError, snapshot_decode,
    snapshot_encode, snapshot_encode_checked, snapshot_verify,
};
pub use state::{
    DeliveryState, ForgetBlocker, Group, GroupMessage, Identity, IdentityId, Mailbox, PendingAsk,
    Room, State, StoredMessage,
};
