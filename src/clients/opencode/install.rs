//! `relay install opencode` and `relay uninstall opencode`: Relay's MCP server and its plugin
//! in OpenCode.
//!
//! Two files:
//!
//! - the config (`$OPENCODE_CONFIG` if set, else `$XDG_CONFIG_HOME/opencode/opencode.json`,
//!   default `~/.config/opencode/opencode.json`; project scope `./opencode.json`) gets
//!   `mcp.relay = {"type": "local", "command": [<relay>, "mcp", "--client", "opencode"],
//!   "enabled": true}`;
//! - the plugin (`$XDG_CONFIG_HOME/opencode/plugins/relay.js`; project scope
//!   `./.opencode/plugins/relay.js`), `assets/opencode/relay.js` with its command placeholder
//!   filled in: it runs `relay deliver --client opencode` and hands what arrives to the session
//!   (`docs/delivery.md`).
//!
//! OpenCode loads plugins from `{plugin,plugins}/*.{js,ts}` of its global config directory and
//! of every `.opencode` directory, never from beside `$OPENCODE_CONFIG`, so the plugin goes to
//! the global config directory even when `$OPENCODE_CONFIG` names the config file (1.18.33).
//!
//! OpenCode reads its config as JSONC; a file with comments is refused (Relay would have to drop
//! them), with an error naming it.

use std::path::PathBuf;

use crate::clients::install::json::{self, Json, JsonObject, object_at};
use crate::clients::install::{
    CONFIG_FILE_MODE, Environment, InstallError, Plan, RelayCommand, Scope, detect as found,
    fill_asset,
};

/// OpenCode's name in reports.
pub const DISPLAY_NAME: &str = "OpenCode";

/// OpenCode's override of its config file.
pub const OPENCODE_CONFIG_ENV: &str = "OPENCODE_CONFIG";

/// The name of Relay's entry under `mcp`.
pub const SERVER_NAME: &str = "relay";

/// The plugin Relay installs, as shipped.
pub const PLUGIN_ASSET: &str = include_str!("../../../assets/opencode/relay.js");

/// Where [`PLUGIN_ASSET`] lives in the source tree (for error messages).
const PLUGIN_ASSET_PATH: &str = "assets/opencode/relay.js";

/// The text in [`PLUGIN_ASSET`] that becomes the `relay deliver` command line (a JSON array).
pub const DELIVER_COMMAND_PLACEHOLDER: &str = "__RELAY_DELIVER_COMMAND__";

/// The label of the server entry in reports.
const SERVER_KEY: &str = "mcp.relay";

/// The label of the plugin in reports.
const PLUGIN_KEY: &str = "the Relay plugin";

/// The plugin's file name.
const PLUGIN_FILE: &str = "relay.js";

/// OpenCode's global config directory: `$XDG_CONFIG_HOME/opencode`, else
/// `~/.config/opencode`.
pub fn config_dir(environment: &Environment) -> PathBuf {
    environment.xdg_config_home().join("opencode")
}

/// The config file: `$OPENCODE_CONFIG`, else `<config dir>/opencode.json` (user), or
/// `./opencode.json` (project).
pub fn config_path(environment: &Environment, scope: Scope) -> PathBuf {
    match scope {
        Scope::User => environment
            .var_path(OPENCODE_CONFIG_ENV)
            .unwrap_or_else(|| config_dir(environment).join("opencode.json")),
        Scope::Project => environment.current_dir.join("opencode.json"),
    }
}

/// The plugin file: `<config dir>/plugins/relay.js` (user) or `./.opencode/plugins/relay.js`
/// (project).
pub fn plugin_path(environment: &Environment, scope: Scope) -> PathBuf {
    let dir = match scope {
        Scope::User => config_dir(environment),
        Scope::Project => environment.current_dir.join(".opencode"),
    };
    dir.join("plugins").join(PLUGIN_FILE)
}

/// Why `relay install --detect` counts OpenCode as present: `opencode` on `PATH`, its config
/// directory or `$OPENCODE_CONFIG` exists.
pub fn detect(environment: &Environment) -> Option<String> {
    let mut paths = vec![config_dir(environment)];
    paths.extend(environment.var_path(OPENCODE_CONFIG_ENV));
    found(environment, &["opencode"], &paths)
}

/// The plugin's content: the asset with the `relay deliver` command line filled in.
///
/// # Errors
/// [`InstallError::BrokenAsset`].
pub fn plugin_content(
    relay: &RelayCommand,
    path: &std::path::Path,
) -> Result<Vec<u8>, InstallError> {
    let command = relay.argv(&["deliver", "--client", "opencode"]);
    fill_asset(
        PLUGIN_ASSET,
        PLUGIN_ASSET_PATH,
        DELIVER_COMMAND_PLACEHOLDER,
        &json::string_array_literal(&command),
        path,
    )
}

/// Plans `relay install opencode`: `mcp.relay` in the config and the plugin file.
///
/// # Errors
/// A file cannot be read, is not plain JSON or `mcp` is not an object. Nothing has been
/// written then.
pub fn plan_install(
    environment: &Environment,
    scope: Scope,
    relay: &RelayCommand,
) -> Result<Plan, InstallError> {
    let mut plan = Plan::default();
    plan.edit_json(
        config_path(environment, scope),
        CONFIG_FILE_MODE,
        |document, path| {
            let servers = object_at(document, &["mcp"], "mcp", path)?;
            Ok(vec![json::merge_entry(
                servers,
                SERVER_NAME,
                server_entry(relay),
                SERVER_KEY,
            )])
        },
    )?;
    let plugin = plugin_path(environment, scope);
    let content = plugin_content(relay, &plugin)?;
    plan.write_file(plugin, CONFIG_FILE_MODE, content, PLUGIN_KEY)?;
    Ok(plan)
}

/// Plans `relay uninstall opencode`: remove `mcp.relay` and delete the plugin file.
///
/// # Errors
/// As [`plan_install`].
pub fn plan_uninstall(environment: &Environment, scope: Scope) -> Result<Plan, InstallError> {
    let mut plan = Plan::default();
    plan.edit_json(
        config_path(environment, scope),
        CONFIG_FILE_MODE,
        |document, path| {
            json::remove_entry(document, &["mcp"], SERVER_NAME, SERVER_KEY, path)
                .map(|edit| vec![edit])
        },
    )?;
    plan.delete_file(plugin_path(environment, scope), PLUGIN_KEY)?;
    Ok(plan)
}

/// `{"type": "local", "command": [<relay>, "mcp", "--client", "opencode"], "enabled": true}`.
fn server_entry(relay: &RelayCommand) -> JsonObject {
    let command = relay.argv(&["mcp", "--client", "opencode"]);
    JsonObject(vec![
        ("type".to_owned(), Json::string("local")),
        (
            "command".to_owned(),
            Json::strings(command.iter().map(String::as_str)),
        ),
        ("enabled".to_owned(), Json::Bool(true)),
    ])
}
