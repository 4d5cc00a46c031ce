//! Federation: hubs on other machines, by shipping log ranges (`../shared/DESIGN.md`,
//! "Federation"; `docs/federation.md` is the link protocol).
//!
//! Built so far:
//! - [`config`]: `<data dir>/federation.toml`, checked whole (every error names its key).
//! - [`noise`]: the authenticated, encrypted link between two hubs (Noise `XXpsk3` over any
//!   byte stream), with pinned static keys, deadlines and bounded frames.
//! - [`wire`]: the link protocol's frames (resume, batch, ack, heartbeat, refusal) and their
//!   checked decoder for untrusted bytes.
//! - [`relay_server`]: `relay relay-server`, the WebSocket router that pairs hubs behind NAT
//!   (it carries the Noise link's bytes; it cannot read or alter them undetected).
//! - [`relay_client`]: the hub side of it: connect out, wait for the peer, get a byte stream.
//!
//! Not built yet, and refused with a clear error where a user could reach it: shipping and
//! importing events (which needs events that name their origin hub), `name@hub` addressing,
//! the hub dialing its peers (directly or through the relay server), `wss://` relay URLs and
//! the JetStream transport.

pub mod config;
pub mod noise;
pub mod relay_client;
pub mod relay_server;
pub mod wire;
