//! Federation: hubs on other machines, by shipping log ranges (`../shared/DESIGN.md`,
//! "Federation"; `docs/federation.md` is the link protocol).
//!
//! Built so far:
//! - [`config`]: `<data dir>/federation.toml`, checked whole (every error names its key).
//! - [`jetstream`]: the JetStream transport (records through a NATS server: inbox streams,
//!   durable pull consumers, durable offsets in a KV bucket), and [`jetstream_link`], the hub's
//!   links over it.
//! - [`noise`]: the authenticated, encrypted link between two hubs (Noise `XXpsk3` over any
//!   byte stream), with pinned static keys, deadlines and bounded frames.
//! - [`wire`]: the link protocol's frames (resume, batch, ack, heartbeat, refusal) and their
//!   checked decoder for untrusted bytes.
//! - [`link`]: the link manager (accept and dial loops, one link per peer, back-off) and the
//!   link protocol over the [`link::LinkHost`] seam (resume checks, window, acks, heartbeats).
//!   The hub runs it (`hub/link_host.rs` is its host); `relay_replay::federation` says which
//!   records go to which hub and how they read on arrival.
//! - [`relay_server`]: `relay relay-server`, the WebSocket router that pairs hubs behind NAT
//!   (it carries the Noise link's bytes; it cannot read or alter them undetected).
//! - [`relay_client`]: the hub side of it: connect out (`ws://` on loopback, `wss://` over
//!   rustls with the platform's roots and an optional `ca_file`), wait for the peer, get a
//!   byte stream.
//!
//! What each part does not do yet is listed in `docs/federation.md`.

pub mod config;
pub mod jetstream;
pub mod jetstream_link;
pub mod link;
pub mod noise;
pub mod relay_client;
pub mod relay_server;
pub mod wire;
