//! `relay install cursor` and `relay uninstall cursor`: Relay's MCP server and its `stop` hook
//! in Cursor's CLI (`agent`).
//!
//! Cursor's CLI cannot be installed here, so this follows its documented files (see
//! `clients.md`):
//!
//! - `~/.cursor/mcp.json` (project `./.cursor/mcp.json`) gets `mcpServers.relay = {"command":
//!   <relay>, "args": ["mcp", "--client", "cursor"]}`; Cursor may also want
//!   `agent mcp enable relay` before it starts the server;
//! - `~/.cursor/hooks.json` (project `./.cursor/hooks.json`) gets `version: 1` when it has no
//!   version, and `{"command": "<relay> hook cursor stop", "loop_limit": 5}` in `hooks.stop`:
//!   the hook answers with `followup_message`, which Cursor submits as the next user message.
//!
//! Relay's hooks are the ones whose command contains `hook cursor`; the user's stay.

use std::path::{Path, PathBuf};

use crate::clients::install::json::{self, Json, JsonObject, not_an_array, object_at};
use crate::clients::install::{
    CONFIG_FILE_MODE, Edit, Environment, InstallError, Plan, RelayCommand, Scope, detect as found,
};

/// Cursor's name in reports.
pub const DISPLAY_NAME: &str = "Cursor CLI";

/// The name of Relay's entry under `mcpServers`.
pub const SERVER_NAME: &str = "relay";

/// The hooks file format version Relay writes when the file has none.
pub const HOOKS_VERSION: u64 = 1;

/// How many follow-up messages in a row Cursor lets the `stop` hook submit.
pub const STOP_LOOP_LIMIT: u64 = 5;

/// What every command of Relay's hooks contains, and no other hook's should.
pub const HOOK_MARKER: &str = "hook cursor";

/// The label of the server entry in reports.
const SERVER_KEY: &str = "mcpServers.relay";

/// The label of the hook in reports.
const HOOK_KEY: &str = "hooks.stop relay";

/// The directory of Cursor's files: `~/.cursor` (user) or `./.cursor` (project).
pub fn cursor_dir(environment: &Environment, scope: Scope) -> PathBuf {
    match scope {
        Scope::User => environment.home.join(".cursor"),
        Scope::Project => environment.current_dir.join(".cursor"),
    }
}

/// Why `relay install --detect` counts Cursor as present: `agent` or `cursor-agent` on
/// `PATH`, or `~/.cursor` exists.
pub fn detect(environment: &Environment) -> Option<String> {
    found(
        environment,
        &["cursor-agent", "agent"],
        &[cursor_dir(environment, Scope::User)],
    )
}

/// Plans `relay install cursor`: the server entry and the `stop` hook.
///
/// # Errors
/// A file cannot be read, is not plain JSON or has a key of the wrong type. Nothing has been
/// written then.
pub fn plan_install(
    environment: &Environment,
    scope: Scope,
    relay: &RelayCommand,
) -> Result<Plan, InstallError> {
    let dir = cursor_dir(environment, scope);
    let mut plan = Plan::default();
    plan.edit_json(dir.join("mcp.json"), CONFIG_FILE_MODE, |document, path| {
        let servers = object_at(document, &["mcpServers"], "mcpServers", path)?;
        Ok(vec![json::merge_entry(
            servers,
            SERVER_NAME,
            relay.mcp_entry("cursor"),
            SERVER_KEY,
        )])
    })?;
    let hook = Json::object([
        (
            "command",
            Json::string(&relay.shell_line(&["hook", "cursor", "stop"])),
        ),
        ("loop_limit", Json::Number(STOP_LOOP_LIMIT.into())),
    ]);
    plan.edit_json(
        dir.join("hooks.json"),
        CONFIG_FILE_MODE,
        |document, path| set_stop_hook(document, path, hook),
    )?;
    plan.note("Cursor may need `agent mcp enable relay` before it starts the server");
    Ok(plan)
}

/// Plans `relay uninstall cursor`: remove the server entry and Relay's `stop` hook.
///
/// # Errors
/// As [`plan_install`].
pub fn plan_uninstall(environment: &Environment, scope: Scope) -> Result<Plan, InstallError> {
    let dir = cursor_dir(environment, scope);
    let mut plan = Plan::default();
    plan.edit_json(dir.join("mcp.json"), CONFIG_FILE_MODE, |document, path| {
        json::remove_entry(document, &["mcpServers"], SERVER_NAME, SERVER_KEY, path)
            .map(|edit| vec![edit])
    })?;
    plan.edit_json(
        dir.join("hooks.json"),
        CONFIG_FILE_MODE,
        |document, path| {
            let Some(hooks) = json::existing_object_at(document, &["hooks"], "hooks", path)? else {
                return Ok(vec![Edit::AlreadyAbsent(HOOK_KEY)]);
            };
            let Some(stop) = hooks.get_mut("stop") else {
                return Ok(vec![Edit::AlreadyAbsent(HOOK_KEY)]);
            };
            let stop = stop
                .as_array_mut()
                .ok_or_else(|| not_an_array(path, "hooks.stop"))?;
            let before = stop.len();
            stop.retain(|hook| !is_ours(hook));
            Ok(vec![if stop.len() < before {
                Edit::Remove(HOOK_KEY)
            } else {
                Edit::AlreadyAbsent(HOOK_KEY)
            }])
        },
    )?;
    Ok(plan)
}

/// Whether a `hooks.stop` entry is Relay's.
fn is_ours(hook: &Json) -> bool {
    hook.get("command")
        .and_then(Json::as_str)
        .is_some_and(|command| command.contains(HOOK_MARKER))
}

/// Sets `version` when absent and puts `hook` into `hooks.stop`, replacing Relay's old ones.
fn set_stop_hook(
    document: &mut JsonObject,
    path: &Path,
    hook: Json,
) -> Result<Vec<Edit>, InstallError> {
    let mut edits = Vec::new();
    if !document.contains_key("version") {
        // First, as Cursor's documentation writes it.
        document.0.insert(
            0,
            ("version".to_owned(), Json::Number(HOOKS_VERSION.into())),
        );
        edits.push(Edit::Add("version"));
    }
    let hooks = object_at(document, &["hooks"], "hooks", path)?;
    let stop = hooks
        .get_or_insert_with("stop", || Json::Array(Vec::new()))
        .as_array_mut()
        .ok_or_else(|| not_an_array(path, "hooks.stop"))?;
    let ours = stop.iter().filter(|entry| is_ours(entry)).count();
    if ours == 1 && stop.contains(&hook) {
        edits.push(Edit::AlreadyPresent(HOOK_KEY));
        return Ok(edits);
    }
    stop.retain(|entry| !is_ours(entry));
    stop.push(hook);
    edits.push(if ours > 0 {
        Edit::Replace(HOOK_KEY)
    } else {
        Edit::Add(HOOK_KEY)
    });
    Ok(edits)
}
