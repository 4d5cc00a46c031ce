//! `relay install copilot` and `relay uninstall copilot`: Relay's MCP server and its extension
//! in GitHub Copilot CLI.
//!
//! Three files (Copilot CLI 1.0.102; `$COPILOT_HOME` replaces `~/.copilot`):
//!
//! - the MCP config gets `mcpServers.relay = {"type": "local", "command": <relay>, "args":
//!   ["mcp", "--client", "copilot"], "tools": ["*"]}`: `$COPILOT_HOME/mcp-config.json` (user),
//!   or `./.github/mcp.json` (project: Copilot's workspace MCP config, read in trusted folders;
//!   `./.mcp.json`, which Copilot also reads, is Claude Code's project file, so Relay leaves it
//!   to `relay install claude`);
//! - the extension `extensions/relay/extension.mjs` under `$COPILOT_HOME` (user) or `./.github`
//!   (project), `assets/copilot/extension.mjs` with its command placeholder filled in: it runs
//!   `relay deliver --client copilot` and hands what arrives to `session.send`;
//! - `$COPILOT_HOME/settings.json` gets `"experimental": true`, which is exactly what
//!   `copilot --experimental` persists; extensions load only in experimental mode. Uninstall
//!   leaves it on (other extensions may rely on it).

use std::path::{Path, PathBuf};

use crate::clients::install::json::{self, Json, JsonObject, object_at};
use crate::clients::install::{
    CONFIG_FILE_MODE, Edit, Environment, InstallError, PRIVATE_FILE_MODE, Plan, RelayCommand,
    Scope, detect as found, fill_asset,
};

/// Copilot's name in reports.
pub const DISPLAY_NAME: &str = "GitHub Copilot CLI";

/// Copilot's override of its home directory (`~/.copilot`).
pub const COPILOT_HOME_ENV: &str = "COPILOT_HOME";

/// The name of Relay's entry under `mcpServers`, and of its extension directory.
pub const SERVER_NAME: &str = "relay";

/// The extension Relay installs, as shipped.
pub const EXTENSION_ASSET: &str = include_str!("../../../assets/copilot/extension.mjs");

/// Where [`EXTENSION_ASSET`] lives in the source tree (for error messages).
const EXTENSION_ASSET_PATH: &str = "assets/copilot/extension.mjs";

/// The text in [`EXTENSION_ASSET`] that becomes the `relay deliver` command line.
pub const DELIVER_COMMAND_PLACEHOLDER: &str = "__RELAY_DELIVER_COMMAND__";

/// The settings key `copilot --experimental` sets to `true` in `settings.json`.
pub const EXPERIMENTAL_KEY: &str = "experimental";

/// The label of the server entry in reports.
const SERVER_KEY: &str = "mcpServers.relay";

/// The label of the extension in reports.
const EXTENSION_KEY: &str = "the Relay extension";

/// The label of the experimental switch in reports.
const EXPERIMENTAL_LABEL: &str = "experimental (extensions need it)";

/// Copilot's home: `$COPILOT_HOME` (made absolute), else `~/.copilot`.
pub fn copilot_home(environment: &Environment) -> PathBuf {
    environment
        .var_path(COPILOT_HOME_ENV)
        .unwrap_or_else(|| environment.home.join(".copilot"))
}

/// The MCP config: `<copilot home>/mcp-config.json` (user) or `./.github/mcp.json` (project).
pub fn mcp_config_path(environment: &Environment, scope: Scope) -> PathBuf {
    match scope {
        Scope::User => copilot_home(environment).join("mcp-config.json"),
        Scope::Project => environment.current_dir.join(".github").join("mcp.json"),
    }
}

/// The extension's directory: `<copilot home>/extensions/relay` (user) or
/// `./.github/extensions/relay` (project).
pub fn extension_dir(environment: &Environment, scope: Scope) -> PathBuf {
    let base = match scope {
        Scope::User => copilot_home(environment),
        Scope::Project => environment.current_dir.join(".github"),
    };
    base.join("extensions").join(SERVER_NAME)
}

/// The user's settings file, where experimental mode is kept (whatever the scope).
pub fn settings_path(environment: &Environment) -> PathBuf {
    copilot_home(environment).join("settings.json")
}

/// Why `relay install --detect` counts Copilot as present: `copilot` on `PATH` or its home
/// exists.
pub fn detect(environment: &Environment) -> Option<String> {
    found(environment, &["copilot"], &[copilot_home(environment)])
}

/// The extension's content: the asset with the `relay deliver` command line filled in.
///
/// # Errors
/// [`InstallError::BrokenAsset`].
pub fn extension_content(relay: &RelayCommand, path: &Path) -> Result<Vec<u8>, InstallError> {
    let command = relay.argv(&["deliver", "--client", "copilot"]);
    fill_asset(
        EXTENSION_ASSET,
        EXTENSION_ASSET_PATH,
        DELIVER_COMMAND_PLACEHOLDER,
        &json::string_array_literal(&command),
        path,
    )
}

/// Plans `relay install copilot`: the server entry, the extension and experimental mode.
///
/// # Errors
/// A file cannot be read, is not plain JSON or has a key of the wrong type. Nothing has been
/// written then.
pub fn plan_install(
    environment: &Environment,
    scope: Scope,
    relay: &RelayCommand,
) -> Result<Plan, InstallError> {
    let mut plan = Plan::default();
    plan.edit_json(
        mcp_config_path(environment, scope),
        PRIVATE_FILE_MODE,
        |document, path| {
            let servers = object_at(document, &["mcpServers"], "mcpServers", path)?;
            Ok(vec![json::merge_entry(
                servers,
                SERVER_NAME,
                server_entry(relay),
                SERVER_KEY,
            )])
        },
    )?;
    let extension = extension_dir(environment, scope).join("extension.mjs");
    let content = extension_content(relay, &extension)?;
    plan.write_file(extension, CONFIG_FILE_MODE, content, EXTENSION_KEY)?;
    plan.edit_json(
        settings_path(environment),
        CONFIG_FILE_MODE,
        |document, _path| Ok(vec![turn_on_experimental(document)]),
    )?;
    if scope == Scope::Project {
        plan.note(
            "Copilot reads ./.github/mcp.json and ./.github/extensions/ only in folders you \
             trusted",
        );
    }
    Ok(plan)
}

/// Plans `relay uninstall copilot`: remove the server entry and the extension (its directory
/// too, once empty). Experimental mode stays on.
///
/// # Errors
/// As [`plan_install`].
pub fn plan_uninstall(environment: &Environment, scope: Scope) -> Result<Plan, InstallError> {
    let mut plan = Plan::default();
    plan.edit_json(
        mcp_config_path(environment, scope),
        PRIVATE_FILE_MODE,
        |document, path| {
            json::remove_entry(document, &["mcpServers"], SERVER_NAME, SERVER_KEY, path)
                .map(|edit| vec![edit])
        },
    )?;
    let dir = extension_dir(environment, scope);
    plan.delete_file(dir.join("extension.mjs"), EXTENSION_KEY)?;
    plan.remove_dir_if_emptied(dir);
    plan.note(format!(
        "experimental mode stays on (\"{EXPERIMENTAL_KEY}\": true in {}); other extensions may \
         need it",
        settings_path(environment).display()
    ));
    Ok(plan)
}

/// `{"type": "local", "command": <relay>, "args": [...], "tools": ["*"]}`.
fn server_entry(relay: &RelayCommand) -> JsonObject {
    let mut entry = vec![("type".to_owned(), Json::string("local"))];
    entry.extend(relay.mcp_entry("copilot").0);
    entry.push(("tools".to_owned(), Json::strings(["*"])));
    JsonObject(entry)
}

/// Sets `"experimental": true` at the top level.
fn turn_on_experimental(document: &mut JsonObject) -> Edit {
    match document.get(EXPERIMENTAL_KEY) {
        Some(Json::Bool(true)) => Edit::AlreadyPresent(EXPERIMENTAL_LABEL),
        Some(_) => {
            document.insert(EXPERIMENTAL_KEY.to_owned(), Json::Bool(true));
            Edit::Replace(EXPERIMENTAL_LABEL)
        }
        None => {
            document.insert(EXPERIMENTAL_KEY.to_owned(), Json::Bool(true));
            Edit::Add(EXPERIMENTAL_LABEL)
        }
    }
}
