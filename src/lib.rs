//! The `relay` library: hub, protocol, MCP channel, CLI.
