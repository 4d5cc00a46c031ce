//! Federation: hubs on other machines, by shipping log ranges (`../shared/DESIGN.md`,
//! "Federation"; `docs/federation.md` is the link protocol).
//!
//! Built so far:
//! - [`config`]: `<data dir>/federation.toml`, checked whole (every error names its key).
//! - [`jetstream`]: the JetStream transport (records through a NATS server: inbox streams,
//!   durable pull consumers, durable offsets in a KV bucket); the hub does not use it yet.
//! - [`noise`]: the authenticated, encrypted link between two hubs (Noise `XXpsk3` over any
//!   byte stream), with pinned static keys, deadlines and bounded frames.
//! - [`wire`]: the link protocol's frames (resume, batch, ack, heartbeat, refusal) and their
//!   checked decoder for untrusted bytes.
//!
//! Not built yet, and refused with a clear error where a user could reach it: shipping and
//! importing events (which needs events that name their origin hub), `name@hub` addressing,
//! the relay server, and the hub using the JetStream transport.

pub mod config;
pub mod jetstream;
pub mod noise;
pub mod wire;
