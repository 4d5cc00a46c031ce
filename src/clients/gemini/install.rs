//! `relay install gemini` and `relay uninstall gemini`: Relay's MCP server and its hooks in
//! Gemini CLI.
//!
//! One file, Gemini's `settings.json`: `~/.gemini/settings.json` (`$GEMINI_CLI_HOME` replaces
//! the home directory, so `$GEMINI_CLI_HOME/.gemini/settings.json`, as Gemini CLI 0.61.0's
//! `Storage.getGlobalSettingsPath` computes it), or `./.gemini/settings.json` (project). It gets
//!
//! - `mcpServers.relay = {"command": <relay>, "args": ["mcp", "--client", "gemini"]}`;
//! - one matcher group in each of `hooks.AfterAgent` and `hooks.AfterTool`:
//!   `{"matcher": "*", "hooks": [{"name": "relay-after-agent", "type": "command", "command":
//!   "<relay> hook gemini after-agent", "timeout": 10000}]}` (the schema of Gemini CLI 0.61.0:
//!   `HookDefinitionArray`; `timeout` in milliseconds; the command runs through the shell).
//!
//! Hooks are on by default (`hooksConfig.enabled` defaults to `true`), so nothing else is
//! needed; when the file turns them off, Relay leaves that alone and says so. Relay's hooks are
//! the ones whose command contains `hook gemini`; the user's other hooks and groups stay.

use std::fs;
use std::path::{Path, PathBuf};

use crate::clients::install::json::{self, Json, JsonObject, not_an_array, object_at};
use crate::clients::install::{
    CONFIG_FILE_MODE, Edit, Environment, InstallError, Plan, RelayCommand, Scope,
};

/// Gemini's name in reports.
pub const DISPLAY_NAME: &str = "Gemini CLI";

/// Gemini's override of the home directory it puts `.gemini` in.
pub const GEMINI_CLI_HOME_ENV: &str = "GEMINI_CLI_HOME";

/// The name of Relay's entry under `mcpServers`.
pub const SERVER_NAME: &str = "relay";

/// How long Gemini lets a Relay hook run, in milliseconds: well above `relay hook`'s own
/// deadline (3 s), so Gemini never kills it.
pub const HOOK_TIMEOUT_MS: u64 = 10_000;

/// What every command of Relay's hooks contains, and no other hook's should.
pub const HOOK_MARKER: &str = "hook gemini";

/// The label of the server entry in reports.
const SERVER_KEY: &str = "mcpServers.relay";

/// Relay's hooks: the event, the `relay hook gemini` argument, the hook's name, the label.
const HOOKS: [(&str, &str, &str, &str); 2] = [
    (
        "AfterAgent",
        "after-agent",
        "relay-after-agent",
        "hooks.AfterAgent relay",
    ),
    (
        "AfterTool",
        "after-tool",
        "relay-after-tool",
        "hooks.AfterTool relay",
    ),
];

/// The directory Gemini puts `.gemini` in: `$GEMINI_CLI_HOME` (made absolute), else `$HOME`.
pub fn gemini_home(environment: &Environment) -> PathBuf {
    environment
        .var_path(GEMINI_CLI_HOME_ENV)
        .unwrap_or_else(|| environment.home.clone())
}

/// The settings file: `<gemini home>/.gemini/settings.json` (user) or
/// `./.gemini/settings.json` (project).
pub fn settings_path(environment: &Environment, scope: Scope) -> PathBuf {
    let base = match scope {
        Scope::User => gemini_home(environment),
        Scope::Project => environment.current_dir.clone(),
    };
    base.join(".gemini").join("settings.json")
}

/// Why `relay install --detect` counts Gemini as present: `gemini` on `PATH`, or `~/.gemini`
/// holds something besides Antigravity's `antigravity-cli` directory.
pub fn detect(environment: &Environment) -> Option<String> {
    if let Some(found) = environment.executable("gemini") {
        return Some(format!("{} on PATH", found.display()));
    }
    let dir = gemini_home(environment).join(".gemini");
    let entries = fs::read_dir(&dir).ok()?;
    entries
        .flatten()
        .any(|entry| entry.file_name() != "antigravity-cli")
        .then(|| format!("{} exists", dir.display()))
}

/// Plans `relay install gemini`: the server entry and the two hooks.
///
/// # Errors
/// The file cannot be read, is not plain JSON or has a key of the wrong type. Nothing has been
/// written then.
pub fn plan_install(
    environment: &Environment,
    scope: Scope,
    relay: &RelayCommand,
) -> Result<Plan, InstallError> {
    let mut plan = Plan::default();
    let mut hooks_disabled = false;
    plan.edit_json(
        settings_path(environment, scope),
        CONFIG_FILE_MODE,
        |document, path| {
            hooks_disabled = document
                .get("hooksConfig")
                .and_then(|config| config.get("enabled"))
                == Some(&Json::Bool(false));
            let servers = object_at(document, &["mcpServers"], "mcpServers", path)?;
            let mut edits = vec![json::merge_entry(
                servers,
                SERVER_NAME,
                relay.mcp_entry("gemini"),
                SERVER_KEY,
            )];
            for (event, argument, name, label) in HOOKS {
                let command = relay.shell_line(&["hook", "gemini", argument]);
                edits.push(set_hook(
                    document,
                    path,
                    event,
                    label,
                    hook_group(name, &command),
                )?);
            }
            Ok(edits)
        },
    )?;
    if hooks_disabled {
        plan.note(
            "this settings file turns hooks off (hooksConfig.enabled = false): Relay's messages \
             reach the model only when it calls relay_inbox until you turn them on",
        );
    }
    if scope == Scope::Project {
        plan.note("Gemini CLI runs a project's hooks only in folders you trusted");
    }
    Ok(plan)
}

/// Plans `relay uninstall gemini`: remove the server entry and Relay's hooks.
///
/// # Errors
/// As [`plan_install`].
pub fn plan_uninstall(environment: &Environment, scope: Scope) -> Result<Plan, InstallError> {
    let mut plan = Plan::default();
    plan.edit_json(
        settings_path(environment, scope),
        CONFIG_FILE_MODE,
        |document, path| {
            let mut edits = vec![json::remove_entry(
                document,
                &["mcpServers"],
                SERVER_NAME,
                SERVER_KEY,
                path,
            )?];
            for (event, _, _, label) in HOOKS {
                edits.push(remove_hooks(document, path, event, label)?);
            }
            Ok(edits)
        },
    )?;
    Ok(plan)
}

/// `{"matcher": "*", "hooks": [{"name", "type": "command", "command", "timeout"}]}`.
fn hook_group(name: &str, command: &str) -> Json {
    Json::object([
        ("matcher", Json::string("*")),
        (
            "hooks",
            Json::Array(vec![Json::object([
                ("name", Json::string(name)),
                ("type", Json::string("command")),
                ("command", Json::string(command)),
                ("timeout", Json::Number(HOOK_TIMEOUT_MS.into())),
            ])]),
        ),
    ])
}

/// Whether a hook (an object in a group's `hooks`) is one of Relay's.
fn is_ours(hook: &Json) -> bool {
    hook.get("command")
        .and_then(Json::as_str)
        .is_some_and(|command| command.contains(HOOK_MARKER))
}

/// Puts `group` into `hooks.<event>`: nothing to do when it is there and no other Relay hook
/// is; else Relay's old hooks go (with groups they leave empty) and `group` is appended.
fn set_hook(
    document: &mut JsonObject,
    path: &Path,
    event: &str,
    label: &'static str,
    group: Json,
) -> Result<Edit, InstallError> {
    let hooks = object_at(document, &["hooks"], "hooks", path)?;
    let groups = hooks
        .get_or_insert_with(event, || Json::Array(Vec::new()))
        .as_array_mut()
        .ok_or_else(|| not_an_array(path, label))?;
    let ours_count: usize = groups.iter().map(count_ours).sum();
    if ours_count == 1 && groups.contains(&group) {
        return Ok(Edit::AlreadyPresent(label));
    }
    let existed = remove_ours(groups);
    groups.push(group);
    Ok(if existed {
        Edit::Replace(label)
    } else {
        Edit::Add(label)
    })
}

/// How many of Relay's hooks a group holds.
fn count_ours(group: &Json) -> usize {
    group
        .get("hooks")
        .and_then(Json::as_array)
        .map_or(0, |hooks| hooks.iter().filter(|hook| is_ours(hook)).count())
}

/// Removes Relay's hooks from every group, and the groups that held nothing else; whether
/// there were any.
fn remove_ours(groups: &mut Vec<Json>) -> bool {
    let mut removed = false;
    groups.retain_mut(|group| {
        let Some(hooks) = group
            .as_object_mut()
            .and_then(|group| group.get_mut("hooks"))
            .and_then(Json::as_array_mut)
        else {
            return true;
        };
        let before = hooks.len();
        hooks.retain(|hook| !is_ours(hook));
        if hooks.len() == before {
            return true;
        }
        removed = true;
        !hooks.is_empty()
    });
    removed
}

/// Removes Relay's hooks from `hooks.<event>`, keeping the (possibly empty) array.
fn remove_hooks(
    document: &mut JsonObject,
    path: &Path,
    event: &str,
    label: &'static str,
) -> Result<Edit, InstallError> {
    let Some(hooks) = json::existing_object_at(document, &["hooks"], "hooks", path)? else {
        return Ok(Edit::AlreadyAbsent(label));
    };
    let Some(groups) = hooks.get_mut(event) else {
        return Ok(Edit::AlreadyAbsent(label));
    };
    let groups = groups
        .as_array_mut()
        .ok_or_else(|| not_an_array(path, label))?;
    Ok(if remove_ours(groups) {
        Edit::Remove(label)
    } else {
        Edit::AlreadyAbsent(label)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(text: &str) -> JsonObject {
        json::parse_document(Path::new("s.json"), Some(text.as_bytes())).expect("json")
    }

    #[test]
    fn other_hooks_stay_and_an_old_relay_hook_is_replaced() {
        let mut settings = document(
            r#"{"hooks":{"AfterAgent":[
                {"matcher":"*","hooks":[{"type":"command","command":"notify-send done"}]},
                {"hooks":[{"type":"command","command":"/old/relay hook gemini after-agent"}]}
            ]}}"#,
        );
        let group = hook_group("relay-after-agent", "/new/relay hook gemini after-agent");
        let edit = set_hook(
            &mut settings,
            Path::new("s.json"),
            "AfterAgent",
            "x",
            group.clone(),
        )
        .expect("shape");
        assert_eq!(edit, Edit::Replace("x"));
        let groups = serde_json::to_value(&settings).expect("value")["hooks"]["AfterAgent"].clone();
        assert_eq!(groups.as_array().map(Vec::len), Some(2), "{groups}");
        assert_eq!(groups[0]["hooks"][0]["command"], "notify-send done");
        assert_eq!(groups[1]["hooks"][0]["timeout"], 10_000);
        let again =
            set_hook(&mut settings, Path::new("s.json"), "AfterAgent", "x", group).expect("shape");
        assert_eq!(again, Edit::AlreadyPresent("x"));

        assert_eq!(
            remove_hooks(&mut settings, Path::new("s.json"), "AfterAgent", "x").expect("shape"),
            Edit::Remove("x")
        );
        let groups = serde_json::to_value(&settings).expect("value")["hooks"]["AfterAgent"].clone();
        assert_eq!(
            groups,
            serde_json::json!([{"matcher":"*","hooks":[{"type":"command","command":"notify-send done"}]}])
        );
    }
}
