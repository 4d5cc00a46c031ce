//! `relay install claude` and `relay uninstall claude`: wire Relay into Claude Code.
//!
//! Two things make Relay usable from Claude Code: an MCP server entry named `relay` that starts
//! this binary as `relay mcp --client claude`, and the allow rule `mcp__relay` in Claude Code's
//! settings so Relay's tools run without a permission prompt. This module computes a [`Plan`]
//! of those changes ([`plan_install`], [`plan_uninstall`]); [`apply`] (from
//! [`crate::clients::install`], the machinery every client shares) carries it out.
//!
//! The server entry goes through `claude mcp get|add|remove` when a `claude` executable is on
//! `PATH`, else straight into the file Claude Code reads (`~/.claude.json`, or `.mcp.json` for a
//! project). The allow rule is always a file edit.
//!
//! Invariants: those of [`crate::clients::install`] (read and parse everything before writing,
//! atomic rewrites keeping every other key in its place, one backup per file).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::clients::install::json::{Json, JsonObject, not_an_array};
pub use crate::clients::install::{
    Applied, BACKUP_SUFFIX, CONFIG_FILE_MODE, Edit, FileStep, InstallError, Plan, Scope, Step,
    apply, backup_path, find_executable,
};
use crate::clients::install::{ClientCommand, PRIVATE_FILE_MODE, RelayCommand};

/// The name of Relay's MCP server entry in Claude Code.
pub const SERVER_NAME: &str = "relay";

/// The `permissions.allow` rule that lets every tool of the `relay` server run without a prompt.
pub const ALLOW_RULE: &str = "mcp__relay";

/// Claude Code's override of its config directory (`~/.claude` and `~/.claude.json`).
pub const CLAUDE_CONFIG_DIR_ENV: &str = "CLAUDE_CONFIG_DIR";

/// The longest a `claude mcp …` command may run. `claude mcp get` starts the server to check its
/// health, so it is not instant; past this the command is killed and the install fails with
/// [`InstallError::CommandTimeout`].
pub const CLAUDE_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Mode of a `.claude.json` this module creates: it also holds Claude Code's account state.
pub const CLAUDE_JSON_MODE: u32 = PRIVATE_FILE_MODE;

/// Claude Code's name in reports.
pub const DISPLAY_NAME: &str = "Claude Code";

/// The label of the server entry in reports.
const SERVER_KEY: &str = "mcpServers.relay";

/// The label of the allow rule in reports.
const ALLOW_KEY: &str = "permissions.allow mcp__relay";

/// Where Claude Code keeps its files, as seen by this process.
#[derive(Clone, Debug)]
pub struct Environment {
    /// `$HOME`.
    pub home: PathBuf,
    /// `$CLAUDE_CONFIG_DIR`, when set and not empty.
    pub config_dir: Option<PathBuf>,
    /// The current directory: the project of [`Scope::Project`].
    pub current_dir: PathBuf,
    /// The `claude` executable found on `$PATH`, if any.
    pub claude: Option<PathBuf>,
}

/// The command line Relay's MCP server entry runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerCommand {
    /// The program: an absolute path to the `relay` binary.
    pub command: String,
    /// Its arguments: `mcp --client claude`.
    pub args: Vec<String>,
}

impl Environment {
    /// Reads `$HOME`, `$CLAUDE_CONFIG_DIR`, the current directory and `$PATH` of this process.
    ///
    /// # Errors
    /// [`InstallError::NoHome`], [`InstallError::CurrentDir`].
    pub fn from_process() -> Result<Environment, InstallError> {
        crate::clients::install::Environment::from_process()
            .map(|environment| Environment::from_environment(&environment))
    }

    /// Claude Code's view of the shared [`crate::clients::install::Environment`].
    pub fn from_environment(environment: &crate::clients::install::Environment) -> Environment {
        Environment {
            home: environment.home.clone(),
            config_dir: environment.var(CLAUDE_CONFIG_DIR_ENV).map(PathBuf::from),
            current_dir: environment.current_dir.clone(),
            claude: environment.executable("claude"),
        }
    }

    /// The file holding MCP server entries: `$CLAUDE_CONFIG_DIR/.claude.json`, else
    /// `~/.claude.json` (user), or `./.mcp.json` (project).
    pub fn mcp_config_path(&self, scope: Scope) -> PathBuf {
        match scope {
            Scope::User => self.user_config_dir_or_home().join(".claude.json"),
            Scope::Project => self.current_dir.join(".mcp.json"),
        }
    }

    /// The settings file: `$CLAUDE_CONFIG_DIR/settings.json`, else `~/.claude/settings.json`
    /// (user), or `./.claude/settings.json` (project).
    pub fn settings_path(&self, scope: Scope) -> PathBuf {
        match scope {
            Scope::User => match &self.config_dir {
                Some(dir) => dir.join("settings.json"),
                None => self.home.join(".claude").join("settings.json"),
            },
            Scope::Project => self.current_dir.join(".claude").join("settings.json"),
        }
    }

    fn user_config_dir_or_home(&self) -> &Path {
        self.config_dir.as_deref().unwrap_or(&self.home)
    }
}

impl ServerCommand {
    /// `<binary> mcp --client claude`.
    ///
    /// # Errors
    /// [`InstallError::NonUtf8Path`].
    pub fn for_binary(binary: &Path) -> Result<ServerCommand, InstallError> {
        let command = binary.to_str().ok_or_else(|| InstallError::NonUtf8Path {
            path: binary.to_owned(),
        })?;
        Ok(ServerCommand {
            command: command.to_owned(),
            args: ["mcp", "--client", "claude"].map(String::from).to_vec(),
        })
    }

    /// The entry for `relay`: `<binary> mcp --client claude`, and `--data-dir` when given.
    pub fn for_relay(relay: &RelayCommand) -> ServerCommand {
        ServerCommand {
            command: relay.binary.clone(),
            args: relay.mcp_args("claude"),
        }
    }

    /// Whether an `mcpServers` entry runs exactly this command (its `env` may be anything).
    fn is_entry(&self, entry: &Json) -> bool {
        let is_stdio = entry.get("type").is_none_or(|kind| kind.is_str("stdio"));
        let args: Option<Vec<&str>> = entry
            .get("args")
            .and_then(Json::as_array)
            .map(|args| args.iter().filter_map(Json::as_str).collect());
        is_stdio
            && entry.get("command").and_then(Json::as_str) == Some(self.command.as_str())
            && args.is_some_and(|args| args == self.args)
    }

    /// The `mcpServers.relay` entry, with `env` (kept from an entry it replaces).
    fn to_entry(&self, env: Json) -> Json {
        let args = self
            .args
            .iter()
            .map(|arg| Json::String(arg.clone()))
            .collect();
        Json::Object(JsonObject(vec![
            ("type".to_owned(), Json::String("stdio".to_owned())),
            ("command".to_owned(), Json::String(self.command.clone())),
            ("args".to_owned(), Json::Array(args)),
            ("env".to_owned(), env),
        ]))
    }
}

/// Why `relay install --detect` counts Claude Code as present: `claude` on `PATH`, or
/// `$CLAUDE_CONFIG_DIR`, `~/.claude` or `~/.claude.json` exists.
pub fn detect(environment: &crate::clients::install::Environment) -> Option<String> {
    let claude = Environment::from_environment(environment);
    let mut paths = vec![
        claude.home.join(".claude"),
        claude.home.join(".claude.json"),
    ];
    paths.extend(claude.config_dir);
    crate::clients::install::detect(environment, &["claude"], &paths)
}

/// Plans `relay install claude`: the `relay` server entry (through `claude mcp add` when
/// `claude` is on PATH, else in the config file) and the allow rule in the settings file.
///
/// # Errors
/// A file cannot be read or is not valid JSON of the expected shape; `claude mcp get` cannot
/// run. Nothing has been written then.
pub fn plan_install(
    environment: &Environment,
    scope: Scope,
    server: &ServerCommand,
) -> Result<Plan, InstallError> {
    let mut plan = Plan::default();
    match &environment.claude {
        Some(claude) => plan_install_with_claude(&mut plan, claude, scope, server)?,
        None => plan.edit_json(
            environment.mcp_config_path(scope),
            new_mcp_config_mode(scope),
            |document, path| set_server(document, path, server).map(|edit| vec![edit]),
        )?,
    }
    plan.edit_json(
        environment.settings_path(scope),
        CONFIG_FILE_MODE,
        |document, path| add_allow_rule(document, path).map(|edit| vec![edit]),
    )?;
    Ok(plan)
}

/// Plans `relay uninstall claude`: remove the `relay` server entry and the allow rule.
///
/// # Errors
/// As [`plan_install`].
pub fn plan_uninstall(environment: &Environment, scope: Scope) -> Result<Plan, InstallError> {
    let mut plan = Plan::default();
    match &environment.claude {
        Some(claude) => plan_uninstall_with_claude(&mut plan, claude, scope)?,
        None => plan.edit_json(
            environment.mcp_config_path(scope),
            new_mcp_config_mode(scope),
            |document, path| remove_server(document, path).map(|edit| vec![edit]),
        )?,
    }
    plan.edit_json(
        environment.settings_path(scope),
        CONFIG_FILE_MODE,
        |document, path| remove_allow_rule(document, path).map(|edit| vec![edit]),
    )?;
    Ok(plan)
}

/// Carries out `plan` step by step, reporting each backup and step through `report`.
///
/// # Errors
/// The first step that fails stops the rest; the steps before it stay done (each is whole:
fn plan_install_with_claude(
    plan: &mut Plan,
    claude: &Path,
    scope: Scope,
    server: &ServerCommand,
) -> Result<(), InstallError> {
    let mut add_args = vec!["mcp", "add", "--scope", scope.as_str(), SERVER_NAME, "--"];
    add_args.push(&server.command);
    add_args.extend(server.args.iter().map(String::as_str));
    let add = ClientCommand::new(claude, add_args, CLAUDE_COMMAND_TIMEOUT);
    let Some(listed) = claude_mcp_get(claude)? else {
        plan.push(Step::Run(add));
        return Ok(());
    };
    match (listed.scope, listed.command) {
        (Some(listed_scope), _) if listed_scope != scope.as_str() => {
            plan.push(Step::Keep(other_scope_note(listed_scope, scope)));
        }
        (_, None) => plan.push(Step::Keep(
            "claude mcp get relay: relay is configured already; left as it is".to_owned(),
        )),
        (_, Some(command))
            if command == server.command
                && listed.args.unwrap_or_default() == server.args.join(" ") =>
        {
            plan.push(Step::Keep(
                "claude mcp get relay: relay already configured with this binary".to_owned(),
            ));
        }
        (_, Some(_)) => {
            plan.push(Step::Run(claude_mcp_remove(claude, scope)));
            plan.push(Step::Run(add));
        }
    }
    Ok(())
}

fn plan_uninstall_with_claude(
    plan: &mut Plan,
    claude: &Path,
    scope: Scope,
) -> Result<(), InstallError> {
    match claude_mcp_get(claude)? {
        None => plan.push(Step::Keep(
            "claude mcp get relay: relay not configured".to_owned(),
        )),
        Some(ListedServer {
            scope: Some(listed_scope),
            ..
        }) if listed_scope != scope.as_str() => {
            plan.push(Step::Keep(other_scope_note(listed_scope, scope)));
        }
        Some(_) => plan.push(Step::Run(claude_mcp_remove(claude, scope))),
    }
    Ok(())
}

fn claude_mcp_remove(claude: &Path, scope: Scope) -> ClientCommand {
    ClientCommand::new(
        claude,
        ["mcp", "remove", "--scope", scope.as_str(), SERVER_NAME],
        CLAUDE_COMMAND_TIMEOUT,
    )
}

fn other_scope_note(listed_scope: &str, scope: Scope) -> String {
    format!(
        "claude mcp get relay: relay is configured in Claude Code's {listed_scope} scope, not \
         {scope}; left as it is (`claude mcp remove --scope {listed_scope} relay` removes it)"
    )
}

/// What `claude mcp get relay` said about the entry, as far as its text could be read.
#[derive(Debug, Default, PartialEq, Eq)]
struct ListedServer {
    /// `user`, `project` or `local`.
    scope: Option<&'static str>,
    command: Option<String>,
    /// The arguments joined by spaces, as printed.
    args: Option<String>,
}

/// Runs `claude mcp get relay`: `None` when it exits with failure (no such server).
fn claude_mcp_get(claude: &Path) -> Result<Option<ListedServer>, InstallError> {
    let get = ClientCommand::new(claude, ["mcp", "get", SERVER_NAME], CLAUDE_COMMAND_TIMEOUT);
    let (status, stdout, _stderr) = get.run()?;
    Ok(status.success().then(|| parse_mcp_get(&stdout)))
}

/// Reads the `Scope:`, `Command:` and `Args:` lines of `claude mcp get`'s output.
fn parse_mcp_get(stdout: &str) -> ListedServer {
    let mut listed = ListedServer::default();
    for line in stdout.lines().map(str::trim) {
        if let Some(scope) = line.strip_prefix("Scope:") {
            let scope = scope.trim().to_ascii_lowercase();
            listed.scope = if scope.starts_with("user") || scope.starts_with("global") {
                Some("user")
            } else if scope.starts_with("project") {
                Some("project")
            } else if scope.starts_with("local") {
                Some("local")
            } else {
                None
            };
        } else if let Some(command) = line.strip_prefix("Command:") {
            listed.command = Some(command.trim().to_owned());
        } else if let Some(args) = line.strip_prefix("Args:") {
            listed.args = Some(args.trim().to_owned());
        }
    }
    listed
}

fn new_mcp_config_mode(scope: Scope) -> u32 {
    match scope {
        Scope::User => CLAUDE_JSON_MODE,
        Scope::Project => CONFIG_FILE_MODE,
    }
}

/// Sets `mcpServers.relay`, keeping the `env` of an entry it replaces.
fn set_server(
    document: &mut JsonObject,
    path: &Path,
    server: &ServerCommand,
) -> Result<Edit, InstallError> {
    let servers = object_at(document, "mcpServers", path)?;
    match servers.get_mut(SERVER_NAME) {
        Some(entry) if server.is_entry(entry) => Ok(Edit::AlreadyPresent(SERVER_KEY)),
        Some(entry) => {
            let env = entry
                .get("env")
                .filter(|env| env.is_object())
                .cloned()
                .unwrap_or_else(|| Json::Object(JsonObject::default()));
            *entry = server.to_entry(env);
            Ok(Edit::Replace(SERVER_KEY))
        }
        None => {
            servers.insert(
                SERVER_NAME.to_owned(),
                server.to_entry(Json::Object(JsonObject::default())),
            );
            Ok(Edit::Add(SERVER_KEY))
        }
    }
}

fn remove_server(document: &mut JsonObject, path: &Path) -> Result<Edit, InstallError> {
    if !document.contains_key("mcpServers") {
        return Ok(Edit::AlreadyAbsent(SERVER_KEY));
    }
    let servers = object_at(document, "mcpServers", path)?;
    Ok(match servers.remove(SERVER_NAME) {
        Some(_) => Edit::Remove(SERVER_KEY),
        None => Edit::AlreadyAbsent(SERVER_KEY),
    })
}

fn add_allow_rule(document: &mut JsonObject, path: &Path) -> Result<Edit, InstallError> {
    let permissions = object_at(document, "permissions", path)?;
    let allow = permissions
        .get_or_insert_with("allow", || Json::Array(Vec::new()))
        .as_array_mut()
        .ok_or_else(|| not_an_array(path, "permissions.allow"))?;
    if allow.iter().any(|rule| rule.is_str(ALLOW_RULE)) {
        return Ok(Edit::AlreadyPresent(ALLOW_KEY));
    }
    allow.push(Json::String(ALLOW_RULE.to_owned()));
    Ok(Edit::Add(ALLOW_KEY))
}

fn remove_allow_rule(document: &mut JsonObject, path: &Path) -> Result<Edit, InstallError> {
    if !document.contains_key("permissions") {
        return Ok(Edit::AlreadyAbsent(ALLOW_KEY));
    }
    let permissions = object_at(document, "permissions", path)?;
    let Some(allow) = permissions.get_mut("allow") else {
        return Ok(Edit::AlreadyAbsent(ALLOW_KEY));
    };
    let allow = allow
        .as_array_mut()
        .ok_or_else(|| not_an_array(path, "permissions.allow"))?;
    let count_before = allow.len();
    allow.retain(|rule| !rule.is_str(ALLOW_RULE));
    Ok(if allow.len() < count_before {
        Edit::Remove(ALLOW_KEY)
    } else {
        Edit::AlreadyAbsent(ALLOW_KEY)
    })
}

/// The object at top-level `key`, inserted empty when absent.
fn object_at<'document>(
    document: &'document mut JsonObject,
    key: &'static str,
    path: &Path,
) -> Result<&'document mut JsonObject, InstallError> {
    crate::clients::install::json::object_at(document, &[key], key, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> ServerCommand {
        ServerCommand::for_binary(Path::new("/opt/relay/bin/relay")).expect("utf-8 path")
    }

    fn document(text: &str) -> JsonObject {
        crate::clients::install::json::parse_document(Path::new("x.json"), Some(text.as_bytes()))
            .expect("valid document")
    }

    /// `document[outer][inner]` as a serde_json value, for comparing with `json!`.
    fn at(document: &JsonObject, outer: &str, inner: &str) -> serde_json::Value {
        let value = document.get(outer).and_then(|outer| outer.get(inner));
        serde_json::to_value(value.expect("present")).expect("serializes")
    }

    #[test]
    fn set_server_replaces_another_command_and_keeps_its_env() {
        let mut document = document(
            r#"{"mcpServers":{"relay":{"command":"relay","args":["mcp"],"env":{"RELAY_SESSION_NAME":"api"}}}}"#,
        );
        let edit = set_server(&mut document, Path::new("x.json"), &server()).expect("object");
        assert_eq!(edit, Edit::Replace(SERVER_KEY));
        assert_eq!(
            at(&document, "mcpServers", "relay"),
            serde_json::json!({
                "type": "stdio",
                "command": "/opt/relay/bin/relay",
                "args": ["mcp", "--client", "claude"],
                "env": {"RELAY_SESSION_NAME": "api"},
            })
        );
        let again = set_server(&mut document, Path::new("x.json"), &server()).expect("object");
        assert_eq!(again, Edit::AlreadyPresent(SERVER_KEY));
    }

    #[test]
    fn allow_rule_that_is_not_an_array_is_refused() {
        let mut document = document(r#"{"permissions":{"allow":"mcp__relay"}}"#);
        let error = add_allow_rule(&mut document, Path::new("s.json")).expect_err("a string");
        assert!(
            matches!(
                error,
                InstallError::UnexpectedShape {
                    key: "permissions.allow",
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn removing_the_allow_rule_keeps_the_other_rules_in_order() {
        let mut document = document(r#"{"permissions":{"allow":["A","mcp__relay","B"]}}"#);
        let edit = remove_allow_rule(&mut document, Path::new("s.json")).expect("array");
        assert_eq!(edit, Edit::Remove(ALLOW_KEY));
        assert_eq!(
            at(&document, "permissions", "allow"),
            serde_json::json!(["A", "B"])
        );
    }

    #[test]
    fn mcp_get_output_is_read_for_scope_command_and_args() {
        let stdout = "relay:\n  Scope: User config (available in all your projects)\n  \
                      Status: ✓ Connected\n  Type: stdio\n  Command: /opt/relay/bin/relay\n  \
                      Args: mcp --client claude\n  Environment:\n\nTo remove this server, run: \
                      claude mcp remove \"relay\" -s user\n";
        assert_eq!(
            parse_mcp_get(stdout),
            ListedServer {
                scope: Some("user"),
                command: Some("/opt/relay/bin/relay".to_owned()),
                args: Some("mcp --client claude".to_owned()),
            }
        );
        assert_eq!(parse_mcp_get("something else\n"), ListedServer::default());
    }
}
