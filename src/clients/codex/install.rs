//! `relay install codex` and `relay uninstall codex`: Relay's MCP server in Codex CLI.
//!
//! One table in Codex's `config.toml` (`$CODEX_HOME/config.toml`, default `~/.codex`; project
//! scope `./.codex/config.toml`):
//!
//! ```toml
//! [mcp_servers.relay]
//! command = "/abs/path/relay"
//! args = ["mcp", "--client", "codex"]
//! env = { CODEX_HOME = "/home/me/.codex" }
//! ```
//!
//! `env.CODEX_HOME` is there because Codex does not pass its environment to MCP servers, and
//! `relay mcp --client codex` needs it to find the app-server control socket
//! (`$CODEX_HOME/app-server-control/app-server-control.sock`) through which it delivers.
//!
//! The file is edited with `toml_edit`, so the user's comments, key order and formatting stay;
//! only the keys Relay owns change (`command`, `args`, `env.CODEX_HOME`), other keys of the
//! `relay` table (a `startup_timeout_sec`, more `env`) are kept.

use std::path::{Path, PathBuf};

use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, TableLike, Value};

use crate::clients::install::{
    CONFIG_FILE_MODE, Edit, Environment, InstallError, Plan, RelayCommand, Scope, detect as found,
};

/// Codex's name in reports.
pub const DISPLAY_NAME: &str = "Codex CLI";

/// Codex's override of its home directory (`~/.codex`).
pub const CODEX_HOME_ENV: &str = "CODEX_HOME";

/// The name of Relay's entry under `mcp_servers`.
pub const SERVER_NAME: &str = "relay";

/// The label of the server entry in reports.
const SERVER_KEY: &str = "mcp_servers.relay";

/// The table holding MCP servers.
const SERVERS_TABLE: &str = "mcp_servers";

/// Codex's home: `$CODEX_HOME` (made absolute), else `~/.codex`.
pub fn codex_home(environment: &Environment) -> PathBuf {
    environment
        .var_path(CODEX_HOME_ENV)
        .unwrap_or_else(|| environment.home.join(".codex"))
}

/// The config file: `<codex home>/config.toml` (user) or `./.codex/config.toml` (project).
pub fn config_path(environment: &Environment, scope: Scope) -> PathBuf {
    match scope {
        Scope::User => codex_home(environment).join("config.toml"),
        Scope::Project => environment.current_dir.join(".codex").join("config.toml"),
    }
}

/// Why `relay install --detect` counts Codex as present: `codex` on `PATH` or its home exists.
pub fn detect(environment: &Environment) -> Option<String> {
    found(environment, &["codex"], &[codex_home(environment)])
}

/// Plans `relay install codex`: set `[mcp_servers.relay]`.
///
/// # Errors
/// The file cannot be read, is not valid TOML, or `mcp_servers` / `mcp_servers.relay` /
/// its `env` is not a table; [`InstallError::NonUtf8Path`] for a non-UTF-8 Codex home.
/// Nothing has been written then.
pub fn plan_install(
    environment: &Environment,
    scope: Scope,
    relay: &RelayCommand,
) -> Result<Plan, InstallError> {
    let home = codex_home(environment);
    let home = home
        .to_str()
        .ok_or_else(|| InstallError::NonUtf8Path { path: home.clone() })?
        .to_owned();
    let mut plan = Plan::default();
    plan.edit_text(
        config_path(environment, scope),
        CONFIG_FILE_MODE,
        |original, path| {
            let mut document = parse(path, original)?;
            let edit = set_server(&mut document, path, relay, &home)?;
            let content = edit
                .changes_file()
                .then(|| document.to_string().into_bytes());
            Ok((vec![edit], content))
        },
    )?;
    if scope == Scope::Project {
        plan.note(
            "Codex reads ./.codex/config.toml only in projects you trusted (`codex` asks, or \
             `codex exec --trust`)",
        );
    }
    plan.note(
        "Relay delivers through Codex's app-server control socket: start Codex as a plain \
         `codex` TUI (it shares the app-server daemon; a `-c` override makes it run its own)",
    );
    Ok(plan)
}

/// Plans `relay uninstall codex`: remove `[mcp_servers.relay]`.
///
/// # Errors
/// As [`plan_install`].
pub fn plan_uninstall(environment: &Environment, scope: Scope) -> Result<Plan, InstallError> {
    let mut plan = Plan::default();
    plan.edit_text(
        config_path(environment, scope),
        CONFIG_FILE_MODE,
        |original, path| {
            if original.is_none() {
                return Ok((vec![Edit::AlreadyAbsent(SERVER_KEY)], None));
            }
            let mut document = parse(path, original)?;
            let edit = remove_server(&mut document, path)?;
            let content = edit
                .changes_file()
                .then(|| document.to_string().into_bytes());
            Ok((vec![edit], content))
        },
    )?;
    Ok(plan)
}

/// Parses the config file; absent counts as empty.
fn parse(path: &Path, bytes: Option<&[u8]>) -> Result<DocumentMut, InstallError> {
    let text = String::from_utf8_lossy(bytes.unwrap_or_default());
    text.parse::<DocumentMut>()
        .map_err(|parse_error| InstallError::InvalidToml {
            path: path.to_owned(),
            parse_error,
        })
}

fn not_a_table(path: &Path, key: &'static str) -> InstallError {
    InstallError::UnexpectedShape {
        path: path.to_owned(),
        key,
        expected: "a table",
    }
}

/// Sets `command`, `args` and `env.CODEX_HOME` of `[mcp_servers.relay]`, each only if it
/// differs, so an entry that is already right leaves the text exactly as it was.
fn set_server(
    document: &mut DocumentMut,
    path: &Path,
    relay: &RelayCommand,
    codex_home: &str,
) -> Result<Edit, InstallError> {
    let root = document.as_table_mut();
    if !root.contains_key(SERVERS_TABLE) {
        let mut servers = Table::new();
        // No bare `[mcp_servers]` header: only `[mcp_servers.relay]` appears.
        servers.set_implicit(true);
        root.insert(SERVERS_TABLE, Item::Table(servers));
    }
    let servers_item = root
        .get_mut(SERVERS_TABLE)
        .ok_or_else(|| not_a_table(path, SERVERS_TABLE))?;
    let inline = servers_item.is_inline_table();
    let servers = servers_item
        .as_table_like_mut()
        .ok_or_else(|| not_a_table(path, SERVERS_TABLE))?;
    let added = !servers.contains_key(SERVER_NAME);
    if added {
        let entry = if inline {
            Item::Value(Value::InlineTable(InlineTable::new()))
        } else {
            Item::Table(Table::new())
        };
        servers.insert(SERVER_NAME, entry);
    }
    let entry = servers
        .get_mut(SERVER_NAME)
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| not_a_table(path, SERVER_KEY))?;
    let mut changed = false;
    if entry.get("command").and_then(Item::as_str) != Some(relay.binary.as_str()) {
        entry.insert("command", toml_edit::value(relay.binary.as_str()));
        changed = true;
    }
    let args = relay.mcp_args("codex");
    if string_array(entry.get("args")).as_deref() != Some(args.as_slice()) {
        let array: Array = args.iter().map(String::as_str).collect();
        entry.insert("args", toml_edit::value(array));
        changed = true;
    }
    changed |= set_env(entry, path, codex_home)?;
    Ok(match (added, changed) {
        (true, _) => Edit::Add(SERVER_KEY),
        (false, true) => Edit::Replace(SERVER_KEY),
        (false, false) => Edit::AlreadyPresent(SERVER_KEY),
    })
}

/// Sets `env.CODEX_HOME`, keeping the rest of `env`; whether it changed.
fn set_env(entry: &mut dyn TableLike, path: &Path, codex_home: &str) -> Result<bool, InstallError> {
    match entry.get_mut("env") {
        Some(env) => {
            let env = env
                .as_table_like_mut()
                .ok_or_else(|| not_a_table(path, "mcp_servers.relay.env"))?;
            if env.get(CODEX_HOME_ENV).and_then(Item::as_str) == Some(codex_home) {
                return Ok(false);
            }
            env.insert(CODEX_HOME_ENV, toml_edit::value(codex_home));
        }
        None => {
            let mut env = InlineTable::new();
            env.insert(CODEX_HOME_ENV, Value::from(codex_home));
            entry.insert("env", Item::Value(Value::InlineTable(env)));
        }
    }
    Ok(true)
}

/// The strings of a TOML array of strings; `None` for anything else.
fn string_array(item: Option<&Item>) -> Option<Vec<String>> {
    item?
        .as_array()?
        .iter()
        .map(|value| value.as_str().map(str::to_owned))
        .collect()
}

/// Removes `mcp_servers.relay`, keeping an emptied `mcp_servers`.
fn remove_server(document: &mut DocumentMut, path: &Path) -> Result<Edit, InstallError> {
    let Some(servers) = document.as_table_mut().get_mut(SERVERS_TABLE) else {
        return Ok(Edit::AlreadyAbsent(SERVER_KEY));
    };
    let servers = servers
        .as_table_like_mut()
        .ok_or_else(|| not_a_table(path, SERVERS_TABLE))?;
    Ok(match servers.remove(SERVER_NAME) {
        Some(_) => Edit::Remove(SERVER_KEY),
        None => Edit::AlreadyAbsent(SERVER_KEY),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay() -> RelayCommand {
        RelayCommand::new(Path::new("/opt/relay"), None).expect("utf-8")
    }

    fn install(text: &str) -> (Edit, String) {
        let mut document = parse(Path::new("c.toml"), Some(text.as_bytes())).expect("toml");
        let edit =
            set_server(&mut document, Path::new("c.toml"), &relay(), "/h/.codex").expect("shape");
        (edit, document.to_string())
    }

    #[test]
    fn a_fresh_file_gets_one_table() {
        let (edit, text) = install("");
        assert_eq!(edit, Edit::Add(SERVER_KEY));
        assert_eq!(
            text,
            "[mcp_servers.relay]\ncommand = \"/opt/relay\"\nargs = [\"mcp\", \"--client\", \
             \"codex\"]\nenv = { CODEX_HOME = \"/h/.codex\" }\n"
        );
        let (again, same) = install(&text);
        assert_eq!(again, Edit::AlreadyPresent(SERVER_KEY));
        assert_eq!(same, text);
    }

    #[test]
    fn comments_other_servers_and_extra_keys_stay() {
        let original = "# my settings\nmodel = \"o3\" # inline\n\n[mcp_servers.other]\ncommand \
                        = \"x\"\n\n[mcp_servers.relay]\ncommand = \"/old/relay\"\n\
                        startup_timeout_sec = 30\n\n[mcp_servers.relay.env]\nRELAY_SESSION_NAME \
                        = \"api\"\n";
        let (edit, text) = install(original);
        assert_eq!(edit, Edit::Replace(SERVER_KEY));
        for kept in [
            "# my settings\n",
            "model = \"o3\" # inline\n",
            "[mcp_servers.other]\ncommand = \"x\"\n",
            "startup_timeout_sec = 30\n",
            "RELAY_SESSION_NAME = \"api\"\n",
            "CODEX_HOME = \"/h/.codex\"\n",
            "command = \"/opt/relay\"\n",
        ] {
            assert!(text.contains(kept), "{kept:?} missing from:\n{text}");
        }
        let mut document = parse(Path::new("c.toml"), Some(text.as_bytes())).expect("toml");
        assert_eq!(
            remove_server(&mut document, Path::new("c.toml")).expect("shape"),
            Edit::Remove(SERVER_KEY)
        );
        let removed = document.to_string();
        assert!(removed.contains("# my settings\n") && removed.contains("[mcp_servers.other]"));
        assert!(!removed.contains("relay"), "{removed}");
    }

    #[test]
    fn a_servers_key_that_is_not_a_table_is_refused() {
        let mut document = parse(Path::new("c.toml"), Some(b"mcp_servers = 3\n")).expect("toml");
        let error = set_server(&mut document, Path::new("c.toml"), &relay(), "/h")
            .expect_err("not a table");
        assert!(
            error
                .to_string()
                .contains("c.toml: mcp_servers is not a table"),
            "{error}"
        );
    }
}
