//! The MCP channel: `relay mcp`, the per-session stdio MCP server that gives an AI coding
//! session the `relay_*` tools and pushes its incoming messages as Claude channel
//! notifications.
//!
//! The path of a tool call reads in file order: [`server`] (rmcp: `tools/call`) →
//! [`dispatch`] (arguments checked against [`tools`], typed params, result JSON) → [`session`]
//! (the hub connection, bounded by [`limits`]). The path of a push: [`session`] receives it from
//! the hub, keeps it for `relay_inbox` ([`inbox`]), and [`server`] writes it as the
//! notification [`channel`] shapes. [`identity`] says what the session registers as.
//!
//! Architecture invariant: only this module imports rmcp, and within it only [`server`] (plus
//! the handshake error below); no file here writes to stdout, which carries MCP's JSON-RPC
//! alone. `docs/mcp.md` is the
//! user-facing spec of the tools and the notification.

pub mod channel;
pub mod dispatch;
pub mod endpoint;
pub mod identity;
pub mod inbox;
pub mod limits;
pub mod pending;
pub mod server;
pub mod session;
pub mod tools;

use std::sync::Arc;

pub use session::{DeliveryPath, DeliveryPlan, HubSession, SessionConfig};

/// `relay mcp` could not serve.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The MCP client did not complete the handshake (closed stdin, or sent something else
    /// than `initialize`). Nothing was served; the client may start `relay mcp` again.
    #[error("mcp handshake failed: {0}")]
    Handshake(#[from] rmcp::service::ServerInitializeError),
}

/// Connects to (or starts) the hub, registers, and serves MCP on stdio until the client
/// closes it. A hub that cannot be reached is not fatal: tools report `hub_unreachable` while
/// the session keeps reconnecting.
///
/// # Errors
/// [`McpError::Handshake`] when the MCP client does not complete `initialize`.
pub async fn run(config: SessionConfig) -> Result<(), McpError> {
    let data_dir = config.data_dir.clone();
    let serves_endpoint = matches!(config.delivery, DeliveryPlan::Endpoint(_));
    let (session, notifications) = HubSession::start(config, limits::CHANNEL_QUEUE_CAPACITY).await;
    // Removed when `relay mcp` ends (dropped at the end of this function).
    let _endpoint = if serves_endpoint {
        match endpoint::serve(Arc::clone(&session), &data_dir) {
            Ok(socket) => Some(socket),
            Err(error) => {
                tracing::warn!(error = %error, "cannot serve the session's delivery socket; messages wait for relay_inbox");
                None
            }
        }
    } else {
        None
    };
    server::serve_stdio(Arc::clone(&session), notifications).await?;
    Ok(())
}
