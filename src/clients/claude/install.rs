//! `relay install claude` and `relay uninstall claude`: wire Relay into Claude Code.
//!
//! Two things make Relay usable from Claude Code: an MCP server entry named `relay` that starts
//! this binary as `relay mcp --client claude`, and the allow rule `mcp__relay` in Claude Code's
//! settings so Relay's tools run without a permission prompt. This module computes a [`Plan`]
//! of those changes ([`plan_install`], [`plan_uninstall`]) and carries one out ([`apply`]). It
//! prints nothing: the CLI shows the plan (`--dry-run`) or what [`apply`] reports.
//!
//! The server entry goes through `claude mcp get|add|remove` when a `claude` executable is on
//! `PATH`, else straight into the file Claude Code reads (`~/.claude.json`, or `.mcp.json` for a
//! project). The allow rule is always a file edit.
//!
//! Invariants: planning reads and parses every file before anything is written, so a file that
//! is not valid JSON changes nothing anywhere. A file is rewritten only when its content changes,
//! atomically (a temporary file in the same directory, then a rename), keeping its mode, every
//! other key and the order of keys. Before its first rewrite an existing file is copied to
//! `<file>.relay-backup`; an existing backup is never replaced, so it holds the user's original.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Serialize, Serializer};

/// The name of Relay's MCP server entry in Claude Code.
pub const SERVER_NAME: &str = "relay";

/// The `permissions.allow` rule that lets every tool of the `relay` server run without a prompt.
pub const ALLOW_RULE: &str = "mcp__relay";

/// Appended to a file's name to name its backup (`~/.claude.json.relay-backup`).
pub const BACKUP_SUFFIX: &str = ".relay-backup";

/// Claude Code's override of its config directory (`~/.claude` and `~/.claude.json`).
pub const CLAUDE_CONFIG_DIR_ENV: &str = "CLAUDE_CONFIG_DIR";

/// The longest a `claude mcp …` command may run. `claude mcp get` starts the server to check its
/// health, so it is not instant; past this the command is killed and the install fails with
/// [`InstallError::ClaudeTimeout`].
pub const CLAUDE_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Mode of a `.claude.json` this module creates: it also holds Claude Code's account state.
pub const CLAUDE_JSON_MODE: u32 = 0o600;

/// Mode of any other file this module creates (before the umask).
pub const CONFIG_FILE_MODE: u32 = 0o644;

/// The label of the server entry in reports.
const SERVER_KEY: &str = "mcpServers.relay";

/// The label of the allow rule in reports.
const ALLOW_KEY: &str = "permissions.allow mcp__relay";

/// Whose configuration to change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The user's: every project (`~/.claude.json`, `~/.claude/settings.json`).
    User,
    /// The current directory's project (`./.mcp.json`, `./.claude/settings.json`).
    Project,
}

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

/// A plan: what install or uninstall will do, step by step, in order.
#[derive(Debug, Default)]
pub struct Plan {
    steps: Vec<Step>,
}

/// One step of a [`Plan`].
#[derive(Debug)]
pub enum Step {
    /// Edit one key of a JSON file; an edit that changes nothing leaves the file untouched.
    File(FileStep),
    /// Run `claude` (`claude mcp add …`, `claude mcp remove …`).
    Run(ClaudeCommand),
    /// Nothing to do; the text says what was found.
    Keep(String),
}

/// The edit of one JSON file.
#[derive(Debug)]
pub struct FileStep {
    /// The file, as Claude Code names it (a symlink is written through to its target).
    pub path: PathBuf,
    /// What the edit does to the file's content.
    pub edit: Edit,
    /// The bytes read while planning; `None` when the file did not exist.
    original: Option<Vec<u8>>,
    /// The new bytes; `None` when the edit changes nothing.
    content: Option<Vec<u8>>,
    /// The mode of the file if this step creates it.
    new_file_mode: u32,
}

/// What a [`FileStep`] does to one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edit {
    /// The key was absent and is added.
    Add(&'static str),
    /// The key held something else and is replaced.
    Replace(&'static str),
    /// The key is removed.
    Remove(&'static str),
    /// The key already holds the value: nothing to add.
    AlreadyPresent(&'static str),
    /// The key is absent: nothing to remove.
    AlreadyAbsent(&'static str),
}

/// A `claude` command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaudeCommand {
    program: PathBuf,
    args: Vec<OsString>,
}

/// What [`apply`] did, reported as it goes.
#[derive(Debug)]
pub enum Applied<'plan> {
    /// The original of a file was copied to `backup` before its first change.
    BackedUp {
        /// The backup's path.
        backup: PathBuf,
    },
    /// A backup from an earlier run exists and holds the older original; it was kept.
    BackupKept {
        /// The backup's path.
        backup: PathBuf,
    },
    /// A step is done (or had nothing to do).
    Done(&'plan Step),
}

/// Why install or uninstall failed. Planning errors leave every file as it was.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// `$HOME` is unset or empty, so the user's files cannot be found.
    #[error("HOME is not set")]
    NoHome,
    /// The current directory cannot be read (the project scope needs it).
    #[error("cannot read the current directory")]
    CurrentDir(#[source] io::Error),
    /// The path of the running `relay` binary cannot be found.
    #[error("cannot find the path of the running relay binary")]
    CurrentExe(#[source] io::Error),
    /// A path that must go into a JSON file is not UTF-8; move the binary to a UTF-8 path.
    #[error("{} is not valid UTF-8, so it cannot go into a JSON file", .path.display())]
    NonUtf8Path {
        /// The path.
        path: PathBuf,
    },
    /// A file cannot be read.
    #[error("cannot read {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file is not valid JSON. Nothing was written; fix the file (or move it away) and rerun.
    #[error("{} is not valid JSON: {parse_error}", .path.display())]
    InvalidJson {
        /// The file.
        path: PathBuf,
        /// What the parser found, with line and column.
        parse_error: serde_json::Error,
    },
    /// A file is JSON but `key` is not what Claude Code puts there. Nothing was written.
    #[error("{}: {key} is not {expected}", .path.display())]
    UnexpectedShape {
        /// The file.
        path: PathBuf,
        /// The key, e.g. `permissions.allow`.
        key: &'static str,
        /// What it should be, e.g. `an array`.
        expected: &'static str,
    },
    /// Writing a file, its backup or its directory failed. Earlier steps stay done.
    #[error("cannot write {}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file changed between planning and writing (Claude Code rewrites its files while it
    /// runs); it was left alone. Run the command again.
    #[error("{} changed while relay was editing it; run the command again", .path.display())]
    ChangedMeanwhile {
        /// The file.
        path: PathBuf,
    },
    /// `claude` could not be started.
    #[error("cannot run {command}")]
    ClaudeSpawn {
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `claude` ran past [`CLAUDE_COMMAND_TIMEOUT`] and was killed.
    #[error("{command} did not finish within {} s", .timeout.as_secs())]
    ClaudeTimeout {
        /// The command line.
        command: String,
        /// The limit.
        timeout: Duration,
    },
    /// `claude` failed; its stderr says why.
    #[error("{command} failed ({status}): {stderr}")]
    ClaudeFailed {
        /// The command line.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },
}

impl Scope {
    /// The scope's name, as `--scope` and `claude mcp add --scope` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Project => "project",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl Environment {
    /// Reads `$HOME`, `$CLAUDE_CONFIG_DIR`, the current directory and `$PATH` of this process.
    ///
    /// # Errors
    /// [`InstallError::NoHome`], [`InstallError::CurrentDir`].
    pub fn from_process() -> Result<Environment, InstallError> {
        let home = std::env::var_os("HOME")
            .filter(|home| !home.is_empty())
            .ok_or(InstallError::NoHome)?;
        let config_dir = std::env::var_os(CLAUDE_CONFIG_DIR_ENV).filter(|dir| !dir.is_empty());
        let current_dir = std::env::current_dir().map_err(InstallError::CurrentDir)?;
        let claude = std::env::var_os("PATH").and_then(|path| find_executable(&path, "claude"));
        Ok(Environment {
            home: PathBuf::from(home),
            config_dir: config_dir.map(PathBuf::from),
            current_dir,
            claude,
        })
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

    /// The entry for the running binary, by its canonical absolute path.
    ///
    /// # Errors
    /// [`InstallError::CurrentExe`], [`InstallError::NonUtf8Path`].
    pub fn current() -> Result<ServerCommand, InstallError> {
        let binary = std::env::current_exe()
            .and_then(fs::canonicalize)
            .map_err(InstallError::CurrentExe)?;
        ServerCommand::for_binary(&binary)
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

impl Plan {
    /// The steps, in the order [`apply`] takes them.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Whether applying the plan would change a file or run a `claude` command.
    pub fn changes_anything(&self) -> bool {
        self.steps.iter().any(Step::changes_anything)
    }

    /// Plans one edit of the JSON file at `path`: reads and parses it (absent or blank counts as
    /// `{}`), runs `edit` on the parsed object and keeps the new bytes if it changed.
    fn edit_file(
        &mut self,
        path: PathBuf,
        new_file_mode: u32,
        edit: impl FnOnce(&mut JsonObject, &Path) -> Result<Edit, InstallError>,
    ) -> Result<(), InstallError> {
        let original = read_if_present(&path)?;
        let mut document = parse_document(&path, original.as_deref())?;
        let edit = edit(&mut document, &path)?;
        let content = edit
            .changes_file()
            .then(|| render_document(&document, original.as_deref()));
        self.steps.push(Step::File(FileStep {
            path,
            edit,
            original,
            content,
            new_file_mode,
        }));
        Ok(())
    }
}

impl Step {
    /// Whether this step writes a file or runs a command.
    pub fn changes_anything(&self) -> bool {
        match self {
            Step::File(file) => file.content.is_some(),
            Step::Run(_) => true,
            Step::Keep(_) => false,
        }
    }

    /// One line for the user: what was done, or with `planned` what would be done.
    pub fn describe(&self, planned: bool) -> String {
        match (self, planned) {
            (Step::File(file), _) => {
                format!("{}: {}", file.path.display(), file.edit.describe(planned))
            }
            (Step::Run(command), false) => format!("ran: {command}"),
            (Step::Run(command), true) => format!("would run: {command}"),
            (Step::Keep(note), _) => note.clone(),
        }
    }
}

impl Edit {
    /// Whether the file's content changes.
    pub fn changes_file(self) -> bool {
        matches!(self, Edit::Add(_) | Edit::Replace(_) | Edit::Remove(_))
    }

    /// `added mcpServers.relay`, or with `planned` `would add mcpServers.relay`.
    pub fn describe(self, planned: bool) -> String {
        let (verb, key) = match self {
            Edit::Add(key) => (if planned { "would add" } else { "added" }, key),
            Edit::Replace(key) => (if planned { "would replace" } else { "replaced" }, key),
            Edit::Remove(key) => (if planned { "would remove" } else { "removed" }, key),
            Edit::AlreadyPresent(key) => return format!("{key} already present"),
            Edit::AlreadyAbsent(key) => return format!("{key} not present"),
        };
        format!("{verb} {key}")
    }
}

impl ClaudeCommand {
    fn new<'arg>(program: &Path, args: impl IntoIterator<Item = &'arg str>) -> ClaudeCommand {
        ClaudeCommand {
            program: program.to_owned(),
            args: args.into_iter().map(OsString::from).collect(),
        }
    }

    /// Runs the command with this process's environment, bounded by [`CLAUDE_COMMAND_TIMEOUT`];
    /// returns its exit status, stdout and stderr.
    fn run(&self) -> Result<(ExitStatus, String, String), InstallError> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| InstallError::ClaudeSpawn {
                command: self.to_string(),
                source,
            })?;
        let stdout = read_in_background(child.stdout.take().expect("stdout is piped"));
        let stderr = read_in_background(child.stderr.take().expect("stderr is piped"));
        let deadline = Instant::now() + CLAUDE_COMMAND_TIMEOUT;
        // Bounded by the deadline: polls until the child exits.
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    // Best effort: the child may have exited since the check.
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(InstallError::ClaudeTimeout {
                        command: self.to_string(),
                        timeout: CLAUDE_COMMAND_TIMEOUT,
                    });
                }
                Err(source) => {
                    return Err(InstallError::ClaudeSpawn {
                        command: self.to_string(),
                        source,
                    });
                }
            }
        };
        // A grandchild may still hold the pipes open; do not wait for it long.
        let collect = |output: mpsc::Receiver<Vec<u8>>| {
            let bytes = output
                .recv_timeout(Duration::from_secs(2))
                .unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        Ok((status, collect(stdout), collect(stderr)))
    }

    /// Runs the command; a failure exit is an error.
    fn run_checked(&self) -> Result<(), InstallError> {
        let (status, _stdout, stderr) = self.run()?;
        if status.success() {
            return Ok(());
        }
        Err(InstallError::ClaudeFailed {
            command: self.to_string(),
            status,
            stderr: stderr.trim().to_owned(),
        })
    }
}

impl fmt::Display for ClaudeCommand {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("claude")?;
        for arg in &self.args {
            let arg = arg.to_string_lossy();
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'') {
                write!(formatter, " '{}'", arg.replace('\'', r"'\''"))?;
            } else {
                write!(formatter, " {arg}")?;
            }
        }
        Ok(())
    }
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
        None => plan.edit_file(
            environment.mcp_config_path(scope),
            new_mcp_config_mode(scope),
            |document, path| set_server(document, path, server),
        )?,
    }
    plan.edit_file(
        environment.settings_path(scope),
        CONFIG_FILE_MODE,
        add_allow_rule,
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
        None => plan.edit_file(
            environment.mcp_config_path(scope),
            new_mcp_config_mode(scope),
            remove_server,
        )?,
    }
    plan.edit_file(
        environment.settings_path(scope),
        CONFIG_FILE_MODE,
        remove_allow_rule,
    )?;
    Ok(plan)
}

/// Carries out `plan` step by step, reporting each backup and step through `report`.
///
/// # Errors
/// The first step that fails stops the rest; the steps before it stay done (each is whole:
/// a file is either rewritten or untouched).
pub fn apply<'plan>(
    plan: &'plan Plan,
    report: &mut dyn FnMut(Applied<'plan>),
) -> Result<(), InstallError> {
    for step in &plan.steps {
        match step {
            Step::File(file) => apply_file(file, report)?,
            Step::Run(command) => command.run_checked()?,
            Step::Keep(_) => {}
        }
        report(Applied::Done(step));
    }
    Ok(())
}

/// The path of a file's backup: `<file>.relay-backup`.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(BACKUP_SUFFIX);
    PathBuf::from(name)
}

/// The first executable file named `name` in the directories of a `PATH` value. Empty entries
/// (meaning the current directory) are skipped.
pub fn find_executable(path: &std::ffi::OsStr, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate).is_ok_and(|metadata| {
                metadata.is_file() && metadata.permissions().mode() & 0o111 != 0
            })
        })
}

fn plan_install_with_claude(
    plan: &mut Plan,
    claude: &Path,
    scope: Scope,
    server: &ServerCommand,
) -> Result<(), InstallError> {
    let mut add_args = vec!["mcp", "add", "--scope", scope.as_str(), SERVER_NAME, "--"];
    add_args.push(&server.command);
    add_args.extend(server.args.iter().map(String::as_str));
    let add = ClaudeCommand::new(claude, add_args);
    let Some(listed) = claude_mcp_get(claude)? else {
        plan.steps.push(Step::Run(add));
        return Ok(());
    };
    match (listed.scope, listed.command) {
        (Some(listed_scope), _) if listed_scope != scope.as_str() => {
            plan.steps
                .push(Step::Keep(other_scope_note(listed_scope, scope)));
        }
        (_, None) => plan.steps.push(Step::Keep(
            "claude mcp get relay: relay is configured already; left as it is".to_owned(),
        )),
        (_, Some(command))
            if command == server.command
                && listed.args.unwrap_or_default() == server.args.join(" ") =>
        {
            plan.steps.push(Step::Keep(
                "claude mcp get relay: relay already configured with this binary".to_owned(),
            ));
        }
        (_, Some(_)) => {
            plan.steps.push(Step::Run(claude_mcp_remove(claude, scope)));
            plan.steps.push(Step::Run(add));
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
        None => plan.steps.push(Step::Keep(
            "claude mcp get relay: relay not configured".to_owned(),
        )),
        Some(ListedServer {
            scope: Some(listed_scope),
            ..
        }) if listed_scope != scope.as_str() => {
            plan.steps
                .push(Step::Keep(other_scope_note(listed_scope, scope)));
        }
        Some(_) => plan.steps.push(Step::Run(claude_mcp_remove(claude, scope))),
    }
    Ok(())
}

fn claude_mcp_remove(claude: &Path, scope: Scope) -> ClaudeCommand {
    ClaudeCommand::new(
        claude,
        ["mcp", "remove", "--scope", scope.as_str(), SERVER_NAME],
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
    let get = ClaudeCommand::new(claude, ["mcp", "get", SERVER_NAME]);
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
        .ok_or_else(|| not_an_array(path))?;
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
    let allow = allow.as_array_mut().ok_or_else(|| not_an_array(path))?;
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
    document
        .get_or_insert_with(key, || Json::Object(JsonObject::default()))
        .as_object_mut()
        .ok_or_else(|| InstallError::UnexpectedShape {
            path: path.to_owned(),
            key,
            expected: "an object",
        })
}

fn not_an_array(path: &Path) -> InstallError {
    InstallError::UnexpectedShape {
        path: path.to_owned(),
        key: "permissions.allow",
        expected: "an array",
    }
}

fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, InstallError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(InstallError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Parses a config file's bytes; an absent or blank file is an empty object.
fn parse_document(path: &Path, bytes: Option<&[u8]>) -> Result<JsonObject, InstallError> {
    let Some(bytes) = bytes.filter(|bytes| !bytes.iter().all(u8::is_ascii_whitespace)) else {
        return Ok(JsonObject::default());
    };
    match serde_json::from_slice(bytes) {
        Ok(Json::Object(document)) => Ok(document),
        Ok(_) => Err(InstallError::UnexpectedShape {
            path: path.to_owned(),
            key: "the top level",
            expected: "an object",
        }),
        Err(parse_error) => Err(InstallError::InvalidJson {
            path: path.to_owned(),
            parse_error,
        }),
    }
}

/// Pretty JSON with two-space indents, as Claude Code writes it, ending in a newline unless
/// the original did not.
fn render_document(document: &JsonObject, original: Option<&[u8]>) -> Vec<u8> {
    let mut content = serde_json::to_vec_pretty(document).expect("a JSON object always serializes");
    if original.is_none_or(|original| original.ends_with(b"\n")) {
        content.push(b'\n');
    }
    content
}

/// Writes one planned file: checks it is still as planned, backs it up once, replaces it.
fn apply_file<'plan>(
    file: &FileStep,
    report: &mut dyn FnMut(Applied<'plan>),
) -> Result<(), InstallError> {
    let Some(content) = &file.content else {
        return Ok(());
    };
    let target = write_target(&file.path)?;
    if read_if_present(&target)? != file.original {
        return Err(InstallError::ChangedMeanwhile {
            path: file.path.clone(),
        });
    }
    let mode = match fs::metadata(&target) {
        Ok(metadata) => Some(metadata.permissions().mode() & 0o7777),
        Err(_) => None,
    };
    if let (Some(original), Some(mode)) = (&file.original, mode) {
        let backup = backup_path(&file.path);
        if fs::symlink_metadata(&backup).is_ok() {
            report(Applied::BackupKept { backup });
        } else {
            write_atomically(&backup, original, FileMode::Exactly(mode))?;
            report(Applied::BackedUp { backup });
        }
    }
    let mode = mode.map_or(FileMode::New(file.new_file_mode), FileMode::Exactly);
    write_atomically(&target, content, mode)
}

/// The file to write for `path`: the target of a symlink (dotfile managers link these files),
/// else `path` itself.
fn write_target(path: &Path) -> Result<PathBuf, InstallError> {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_symlink() => {
            fs::canonicalize(path).map_err(|source| InstallError::Read {
                path: path.to_owned(),
                source,
            })
        }
        _ => Ok(path.to_owned()),
    }
}

/// The mode of a file being written.
#[derive(Clone, Copy, Debug)]
enum FileMode {
    /// A new file: this mode, less the umask.
    New(u32),
    /// A rewritten file: exactly its old mode.
    Exactly(u32),
}

/// Writes `content` to a temporary file next to `path`, flushes it, and renames it over `path`.
fn write_atomically(path: &Path, content: &[u8], mode: FileMode) -> Result<(), InstallError> {
    let write_error = |source| InstallError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(write_error)?;
    let file_name = path.file_name().expect("a config path names a file");
    let mut temp_name = OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".relay-tmp-{}", std::process::id()));
    let temp = dir.join(temp_name);
    let result = write_new_file(&temp, content, mode)
        .and_then(|()| fs::rename(&temp, path))
        .and_then(|()| fs::File::open(dir)?.sync_all());
    if result.is_err() {
        // Best effort: do not leave the temporary file behind.
        let _ = fs::remove_file(&temp);
    }
    result.map_err(write_error)
}

fn write_new_file(path: &Path, content: &[u8], mode: FileMode) -> io::Result<()> {
    let open_mode = match mode {
        FileMode::New(mode) | FileMode::Exactly(mode) => mode,
    };
    let open = || {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(open_mode)
            .open(path)
    };
    let mut file = match open() {
        // A temporary file left by an earlier run of this process id.
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(path)?;
            open()?
        }
        result => result?,
    };
    if let FileMode::Exactly(mode) = mode {
        // The open mode passed through the umask; a rewrite keeps the old mode exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    file.write_all(content)?;
    file.sync_all()
}

/// Reads a child's output on a thread and sends it when the pipe closes.
fn read_in_background(mut pipe: impl io::Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        // A read error keeps what was read so far; the output is only informative.
        let _ = pipe.read_to_end(&mut bytes);
        let _ = sender.send(bytes);
    });
    receiver
}

/// A JSON value that keeps object keys in file order, so a rewritten file differs from the
/// user's only where Relay changed it. (serde_json's `Value` sorts keys unless its
/// `preserve_order` feature is on, and that feature would grow every `Value` in the crate.)
#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(JsonObject),
}

/// Object members in file order. A repeated key keeps its first place and its last value, as
/// JavaScript's `JSON.parse` does.
#[derive(Clone, Debug, Default, PartialEq)]
struct JsonObject(Vec<(String, Json)>);

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(object) => object.get(key),
            _ => None,
        }
    }

    fn is_str(&self, text: &str) -> bool {
        self.as_str() == Some(text)
    }

    fn is_object(&self) -> bool {
        matches!(self, Json::Object(_))
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(text) => Some(text),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&Vec<Json>> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    fn as_array_mut(&mut self) -> Option<&mut Vec<Json>> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    fn as_object_mut(&mut self) -> Option<&mut JsonObject> {
        match self {
            Json::Object(object) => Some(object),
            _ => None,
        }
    }
}

impl JsonObject {
    fn position(&self, key: &str) -> Option<usize> {
        self.0.iter().position(|(name, _)| name == key)
    }

    fn get(&self, key: &str) -> Option<&Json> {
        self.position(key).map(|index| &self.0[index].1)
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut Json> {
        self.position(key).map(|index| &mut self.0[index].1)
    }

    fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Sets `key` in its place, or at the end when it is new.
    fn insert(&mut self, key: String, value: Json) {
        match self.position(&key) {
            Some(index) => self.0[index].1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Removes `key`, keeping the order of the rest.
    fn remove(&mut self, key: &str) -> Option<Json> {
        self.position(key).map(|index| self.0.remove(index).1)
    }

    /// The value at `key`, first set to `default()` at the end when absent.
    fn get_or_insert_with(&mut self, key: &str, default: impl FnOnce() -> Json) -> &mut Json {
        let index = match self.position(key) {
            Some(index) => index,
            None => {
                self.0.push((key.to_owned(), default()));
                self.0.len() - 1
            }
        };
        &mut self.0[index].1
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(value) => serializer.serialize_bool(*value),
            Json::Number(number) => number.serialize(serializer),
            Json::String(text) => serializer.serialize_str(text),
            Json::Array(items) => serializer.collect_seq(items),
            Json::Object(object) => object.serialize(serializer),
        }
    }
}

impl Serialize for JsonObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(key, value)| (key, value)))
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Json, E> {
        Ok(Json::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Json, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Json, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(value)
            .map(Json::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Json, E> {
        Ok(Json::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Json, E> {
        Ok(Json::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut object = JsonObject::default();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            object.insert(key, value);
        }
        Ok(Json::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> ServerCommand {
        ServerCommand::for_binary(Path::new("/opt/relay/bin/relay")).expect("utf-8 path")
    }

    fn document(text: &str) -> JsonObject {
        parse_document(Path::new("x.json"), Some(text.as_bytes())).expect("valid document")
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

    #[test]
    fn blank_file_is_an_empty_object_and_a_list_is_refused() {
        assert_eq!(document(" \n"), JsonObject::default());
        let error = parse_document(Path::new("x.json"), Some(b"[1]")).expect_err("not an object");
        assert!(matches!(
            error,
            InstallError::UnexpectedShape {
                key: "the top level",
                ..
            }
        ));
    }

    #[test]
    fn values_render_as_they_were_written_and_a_repeated_key_keeps_its_first_place() {
        let text = r#"{"n":-1,"f":0.5,"big":12345678901234,"u":"é\"\n","z":null,"b":false,"n":2}"#;
        let rendered = serde_json::to_string(&document(text)).expect("serializes");
        assert_eq!(
            rendered,
            r#"{"n":2,"f":0.5,"big":12345678901234,"u":"é\"\n","z":null,"b":false}"#
        );
    }

    #[test]
    fn rendering_keeps_key_order_and_a_missing_final_newline() {
        let text = r#"{"zeta":1,"alpha":{"b":2,"a":3}}"#;
        let rendered = render_document(&document(text), Some(text.as_bytes()));
        let rendered = String::from_utf8(rendered).expect("utf-8");
        assert_eq!(
            rendered,
            "{\n  \"zeta\": 1,\n  \"alpha\": {\n    \"b\": 2,\n    \"a\": 3\n  }\n}"
        );
    }
}
