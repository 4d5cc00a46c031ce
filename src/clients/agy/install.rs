//! `relay install agy` and `relay uninstall agy`: Relay's MCP server in Antigravity's CLI.
//!
//! One file, `~/.gemini/antigravity-cli/mcp_config.json`, gets `mcpServers.relay =
//! {"command": <relay>, "args": ["mcp", "--client", "agy"]}`. Antigravity has no push path
//! Relay can wire: its model gets messages when it calls `relay_inbox`. It has no project-level
//! MCP config Relay knows of, so `--scope project` is refused.

use std::path::PathBuf;

use crate::clients::install::json;
use crate::clients::install::json::object_at;
use crate::clients::install::{
    CONFIG_FILE_MODE, Environment, InstallError, Plan, RelayCommand, Scope, detect as found,
};

/// Antigravity's name in reports.
pub const DISPLAY_NAME: &str = "Antigravity";

/// The name of Relay's entry under `mcpServers`.
pub const SERVER_NAME: &str = "relay";

/// The label of the server entry in reports.
const SERVER_KEY: &str = "mcpServers.relay";

/// Antigravity CLI's directory: `~/.gemini/antigravity-cli`.
pub fn config_dir(environment: &Environment) -> PathBuf {
    environment.home.join(".gemini").join("antigravity-cli")
}

/// The MCP config: `~/.gemini/antigravity-cli/mcp_config.json`.
pub fn mcp_config_path(environment: &Environment) -> PathBuf {
    config_dir(environment).join("mcp_config.json")
}

/// Why `relay install --detect` counts Antigravity as present: `agy` on `PATH` or its
/// directory exists.
pub fn detect(environment: &Environment) -> Option<String> {
    found(environment, &["agy"], &[config_dir(environment)])
}

fn user_scope_only(scope: Scope) -> Result<(), InstallError> {
    match scope {
        Scope::User => Ok(()),
        Scope::Project => Err(InstallError::ScopeUnsupported {
            client: DISPLAY_NAME,
            scope,
            hint: "use --scope user (~/.gemini/antigravity-cli/mcp_config.json)",
        }),
    }
}

/// Plans `relay install agy`: the server entry.
///
/// # Errors
/// [`InstallError::ScopeUnsupported`] for the project scope; the file cannot be read, is not
/// plain JSON or `mcpServers` is not an object.
pub fn plan_install(
    environment: &Environment,
    scope: Scope,
    relay: &RelayCommand,
) -> Result<Plan, InstallError> {
    user_scope_only(scope)?;
    let mut plan = Plan::default();
    plan.edit_json(
        mcp_config_path(environment),
        CONFIG_FILE_MODE,
        |document, path| {
            let servers = object_at(document, &["mcpServers"], "mcpServers", path)?;
            Ok(vec![json::merge_entry(
                servers,
                SERVER_NAME,
                relay.mcp_entry("agy"),
                SERVER_KEY,
            )])
        },
    )?;
    plan.note(
        "Antigravity has no push path: its model gets Relay's messages when it calls \
         relay_inbox (the unread counts in every relay tool result prompt it to)",
    );
    Ok(plan)
}

/// Plans `relay uninstall agy`: remove the server entry.
///
/// # Errors
/// As [`plan_install`].
pub fn plan_uninstall(environment: &Environment, scope: Scope) -> Result<Plan, InstallError> {
    user_scope_only(scope)?;
    let mut plan = Plan::default();
    plan.edit_json(
        mcp_config_path(environment),
        CONFIG_FILE_MODE,
        |document, path| {
            json::remove_entry(document, &["mcpServers"], SERVER_NAME, SERVER_KEY, path)
                .map(|edit| vec![edit])
        },
    )?;
    Ok(plan)
}
