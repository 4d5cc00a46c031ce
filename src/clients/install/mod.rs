//! The machinery every `relay install <client>` shares: a [`Plan`] of steps computed before
//! anything is written, [`apply`] to carry it out, atomic rewrites, one backup per file, the
//! order-preserving JSON editor ([`json`]), the command line Relay's entries run
//! ([`RelayCommand`]) and the process environment the installers read ([`Environment`]).
//!
//! Invariants: planning reads and parses every file before anything is written, so a file that
//! cannot be parsed changes nothing anywhere. A file is rewritten only when its content changes,
//! atomically (a temporary file in the same directory, then a rename), keeping its mode. Before
//! its first rewrite an existing file is copied to `<file>.relay-backup`; an existing backup is
//! never replaced, so it holds the user's original. Right before writing, a file is checked to
//! still hold what was planned from.
//!
//! Nothing here prints: the CLI shows the plan (`--dry-run`) or what [`apply`] reports.

pub mod json;

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use json::JsonObject;

/// Appended to a file's name to name its backup (`~/.claude.json.relay-backup`).
pub const BACKUP_SUFFIX: &str = ".relay-backup";

/// Mode of a new config file that may hold secrets or account state (before the umask).
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Mode of any other file the installers create (before the umask).
pub const CONFIG_FILE_MODE: u32 = 0o644;

/// How long a child's output is still awaited after it exited (a grandchild may hold the pipes).
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// How often a running child is polled for its exit.
const CHILD_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The environment variables the installers read, besides `HOME` and `PATH`: the clients'
/// location overrides.
pub const LOCATION_VARS: &[&str] = &[
    "CLAUDE_CONFIG_DIR",
    "CODEX_HOME",
    "XDG_CONFIG_HOME",
    "OPENCODE_CONFIG",
    "COPILOT_HOME",
    "GEMINI_CLI_HOME",
];

/// Whose configuration to change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The user's: every project.
    User,
    /// The current directory's project.
    Project,
}

impl Scope {
    /// The scope's name, as `--scope` spells it.
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

/// Where the clients keep their files, as seen by this process.
#[derive(Clone, Debug)]
pub struct Environment {
    /// `$HOME`.
    pub home: PathBuf,
    /// The current directory: the project of [`Scope::Project`].
    pub current_dir: PathBuf,
    /// `$PATH` (empty when unset).
    pub path: OsString,
    /// The [`LOCATION_VARS`] that are set and not empty.
    vars: Vec<(String, OsString)>,
}

impl Environment {
    /// Reads `$HOME`, `$PATH`, the current directory and the [`LOCATION_VARS`] of this process.
    ///
    /// # Errors
    /// [`InstallError::NoHome`], [`InstallError::CurrentDir`].
    pub fn from_process() -> Result<Environment, InstallError> {
        let home = std::env::var_os("HOME")
            .filter(|home| !home.is_empty())
            .ok_or(InstallError::NoHome)?;
        let current_dir = std::env::current_dir().map_err(InstallError::CurrentDir)?;
        let mut environment = Environment::new(
            PathBuf::from(home),
            current_dir,
            std::env::var_os("PATH").unwrap_or_default(),
        );
        for name in LOCATION_VARS {
            if let Some(value) = std::env::var_os(name) {
                environment = environment.with_var(name, value);
            }
        }
        Ok(environment)
    }

    /// An environment with no location variables set.
    pub fn new(home: PathBuf, current_dir: PathBuf, path: OsString) -> Environment {
        Environment {
            home,
            current_dir,
            path,
            vars: Vec::new(),
        }
    }

    /// The same with `name` set to `value` (an empty value counts as unset).
    pub fn with_var(mut self, name: &str, value: impl Into<OsString>) -> Environment {
        let value = value.into();
        self.vars.retain(|(known, _)| known != name);
        if !value.is_empty() {
            self.vars.push((name.to_owned(), value));
        }
        self
    }

    /// The value of `name`, when set and not empty.
    pub fn var(&self, name: &str) -> Option<&OsStr> {
        self.vars
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value.as_os_str())
    }

    /// The value of `name` as an absolute path (a relative one is taken from the current
    /// directory, as the client started here would take it).
    pub fn var_path(&self, name: &str) -> Option<PathBuf> {
        self.var(name).map(|value| self.absolute(Path::new(value)))
    }

    /// `path` made absolute from the current directory, with `.` and `..` taken out (without
    /// following symlinks: the path may not exist yet).
    pub fn absolute(&self, path: &Path) -> PathBuf {
        let mut absolute = PathBuf::new();
        for component in self.current_dir.join(path).components() {
            match component {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    absolute.pop();
                }
                other => absolute.push(other),
            }
        }
        absolute
    }

    /// `$XDG_CONFIG_HOME`, else `~/.config`.
    pub fn xdg_config_home(&self) -> PathBuf {
        self.var_path("XDG_CONFIG_HOME")
            .unwrap_or_else(|| self.home.join(".config"))
    }

    /// The executable `name` on `$PATH`.
    pub fn executable(&self, name: &str) -> Option<PathBuf> {
        find_executable(&self.path, name)
    }
}

/// Why a client was found by `relay install --detect`, or `None`.
///
/// Looks for each of `executables` on `PATH`, then for each of `paths`.
pub fn detect(
    environment: &Environment,
    executables: &[&str],
    paths: &[PathBuf],
) -> Option<String> {
    for name in executables {
        if let Some(found) = environment.executable(name) {
            return Some(format!("{} on PATH", found.display()));
        }
    }
    paths
        .iter()
        .find(|path| fs::symlink_metadata(path).is_ok())
        .map(|path| format!("{} exists", path.display()))
}

/// The `relay` command line that the clients' entries run: this binary, a subcommand, and
/// `--data-dir` when one was given at install time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayCommand {
    /// An absolute path to the `relay` binary.
    pub binary: String,
    /// The data directory given at install time (`--data-dir` or `RELAY_HOME`), absolute.
    pub data_dir: Option<String>,
}

impl RelayCommand {
    /// The command for `binary` (absolute) and an optional data directory (absolute).
    ///
    /// # Errors
    /// [`InstallError::NonUtf8Path`].
    pub fn new(binary: &Path, data_dir: Option<&Path>) -> Result<RelayCommand, InstallError> {
        let utf8 = |path: &Path| {
            path.to_str()
                .map(str::to_owned)
                .ok_or_else(|| InstallError::NonUtf8Path {
                    path: path.to_owned(),
                })
        };
        Ok(RelayCommand {
            binary: utf8(binary)?,
            data_dir: data_dir.map(utf8).transpose()?,
        })
    }

    /// The running binary, by its canonical absolute path.
    ///
    /// # Errors
    /// [`InstallError::CurrentExe`], [`InstallError::NonUtf8Path`].
    pub fn current(data_dir: Option<&Path>) -> Result<RelayCommand, InstallError> {
        let binary = std::env::current_exe()
            .and_then(fs::canonicalize)
            .map_err(InstallError::CurrentExe)?;
        RelayCommand::new(&binary, data_dir)
    }

    /// The arguments after the binary: `subcommand`, then `--data-dir <dir>` if given.
    pub fn args(&self, subcommand: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = subcommand.iter().map(|&arg| arg.to_owned()).collect();
        if let Some(dir) = &self.data_dir {
            args.push("--data-dir".to_owned());
            args.push(dir.clone());
        }
        args
    }

    /// `mcp --client <client>` (and `--data-dir`).
    pub fn mcp_args(&self, client: &str) -> Vec<String> {
        self.args(&["mcp", "--client", client])
    }

    /// The usual MCP server entry `{"command": <binary>, "args": ["mcp", "--client", <client>]}`.
    pub fn mcp_entry(&self, client: &str) -> JsonObject {
        JsonObject(vec![
            ("command".to_owned(), json::Json::string(&self.binary)),
            (
                "args".to_owned(),
                json::Json::strings(self.mcp_args(client).iter().map(String::as_str)),
            ),
        ])
    }

    /// The whole command line as a list: the binary, then [`RelayCommand::args`].
    pub fn argv(&self, subcommand: &[&str]) -> Vec<String> {
        let mut argv = vec![self.binary.clone()];
        argv.extend(self.args(subcommand));
        argv
    }

    /// The whole command line as one shell command (hooks run through `sh -c`).
    pub fn shell_line(&self, subcommand: &[&str]) -> String {
        self.argv(subcommand)
            .iter()
            .map(|arg| shell_quote(arg))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `arg` as one POSIX shell word: as it is when it has no special characters, else in single
/// quotes.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// A plan: what install or uninstall will do, step by step, in order, and notes for the user.
#[derive(Debug, Default)]
pub struct Plan {
    steps: Vec<Step>,
    notes: Vec<String>,
}

/// One step of a [`Plan`].
#[derive(Debug)]
pub enum Step {
    /// Edit, write or delete one file; an edit that changes nothing leaves the file untouched.
    File(FileStep),
    /// Run a client's own command (`claude mcp add …`).
    Run(ClientCommand),
    /// Remove a directory Relay created, once the files Relay put there are gone.
    RemoveDir(PathBuf),
    /// Nothing to do; the text says what was found.
    Keep(String),
}

/// The change of one file.
#[derive(Debug)]
pub struct FileStep {
    /// The file, as the client names it (a symlink is written through to its target).
    pub path: PathBuf,
    /// What the step does to the file's content, one entry per key.
    pub edits: Vec<Edit>,
    /// The bytes read while planning; `None` when the file did not exist.
    original: Option<Vec<u8>>,
    /// What happens to the file; `None` when nothing changes.
    change: Option<Change>,
    /// The mode of the file if this step creates it.
    new_file_mode: u32,
}

/// What happens to a file.
#[derive(Debug)]
enum Change {
    /// Its content becomes these bytes.
    Write(Vec<u8>),
    /// It is deleted (a file Relay wrote whole: the plugin, the extension).
    Delete,
}

/// What a [`FileStep`] does to one key (or to the whole file, for the files Relay owns).
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

/// A client's command line (`claude mcp add …`), run with this process's environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCommand {
    program: PathBuf,
    args: Vec<OsString>,
    timeout: Duration,
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
    /// A path that must go into a config file is not UTF-8; move it to a UTF-8 path.
    #[error("{} is not valid UTF-8, so it cannot go into a config file", .path.display())]
    NonUtf8Path {
        /// The path.
        path: PathBuf,
    },
    /// The client has no configuration of this scope.
    #[error("{client} has no {scope}-scope configuration that relay can write; {hint}")]
    ScopeUnsupported {
        /// The client's name.
        client: &'static str,
        /// The scope asked for.
        scope: Scope,
        /// What to do instead.
        hint: &'static str,
    },
    /// A file Relay ships (the OpenCode plugin, the Copilot extension) lacks the placeholder
    /// for the command line it must run: the binary was built from a broken tree.
    #[error("{asset} (built into relay) has no {placeholder}; cannot write {}", .path.display())]
    BrokenAsset {
        /// The asset's path in the source tree.
        asset: &'static str,
        /// The text that should be in it once.
        placeholder: &'static str,
        /// The file that would have been written.
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
    /// A file holds comments (JSONC), which the client accepts but Relay cannot keep when it
    /// rewrites the file. Nothing was written.
    #[error(
        "{} is not plain JSON ({parse_error}); it seems to hold comments, which relay cannot \
         keep when it rewrites the file: remove them, or add relay's entry by hand (see \
         docs/install.md)", .path.display()
    )]
    JsonWithComments {
        /// The file.
        path: PathBuf,
        /// What the parser found, with line and column.
        parse_error: serde_json::Error,
    },
    /// A file is not valid TOML. Nothing was written.
    #[error("{} is not valid TOML: {parse_error}", .path.display())]
    InvalidToml {
        /// The file.
        path: PathBuf,
        /// What the parser found, with line and column.
        parse_error: toml_edit::TomlError,
    },
    /// A file parses but `key` is not what the client puts there. Nothing was written.
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
    /// A file changed between planning and writing (clients rewrite their files while they
    /// run); it was left alone. Run the command again.
    #[error("{} changed while relay was editing it; run the command again", .path.display())]
    ChangedMeanwhile {
        /// The file.
        path: PathBuf,
    },
    /// A client's command could not be started.
    #[error("cannot run {command}")]
    CommandSpawn {
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A client's command ran past its timeout and was killed.
    #[error("{command} did not finish within {} s", .timeout.as_secs())]
    CommandTimeout {
        /// The command line.
        command: String,
        /// The limit.
        timeout: Duration,
    },
    /// A client's command failed; its stderr says why.
    #[error("{command} failed ({status}): {stderr}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },
}

impl Plan {
    /// The steps, in the order [`apply`] takes them.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Lines to show after the summary (what the user may still have to do).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Adds a note for the user.
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// Adds a step.
    pub fn push(&mut self, step: Step) {
        self.steps.push(step);
    }

    /// Whether applying the plan would change a file or run a command.
    pub fn changes_anything(&self) -> bool {
        self.steps.iter().any(Step::changes_anything)
    }

    /// Plans one edit of the JSON file at `path`: reads and parses it (absent or blank counts as
    /// `{}`), runs `edit` on the parsed object and keeps the new bytes if it changed anything.
    ///
    /// # Errors
    /// The file cannot be read or parsed; whatever `edit` returns.
    pub fn edit_json(
        &mut self,
        path: PathBuf,
        new_file_mode: u32,
        edit: impl FnOnce(&mut JsonObject, &Path) -> Result<Vec<Edit>, InstallError>,
    ) -> Result<(), InstallError> {
        let original = read_if_present(&path)?;
        let mut document = json::parse_document(&path, original.as_deref())?;
        let edits = edit(&mut document, &path)?;
        let change = edits
            .iter()
            .any(|edit| edit.changes_file())
            .then(|| Change::Write(json::render_document(&document, original.as_deref())));
        self.steps.push(Step::File(FileStep {
            path,
            edits,
            original,
            change,
            new_file_mode,
        }));
        Ok(())
    }

    /// Plans one edit of a text file of any format: `edit` gets the bytes (`None` when the file
    /// is absent) and returns what it did and the new bytes (`None` when nothing changes).
    ///
    /// # Errors
    /// The file cannot be read; whatever `edit` returns.
    pub fn edit_text(
        &mut self,
        path: PathBuf,
        new_file_mode: u32,
        edit: impl FnOnce(Option<&[u8]>, &Path) -> Result<(Vec<Edit>, Option<Vec<u8>>), InstallError>,
    ) -> Result<(), InstallError> {
        let original = read_if_present(&path)?;
        let (edits, content) = edit(original.as_deref(), &path)?;
        let change = content
            .filter(|content| original.as_ref() != Some(content))
            .map(Change::Write);
        self.steps.push(Step::File(FileStep {
            path,
            edits,
            original,
            change,
            new_file_mode,
        }));
        Ok(())
    }

    /// Plans writing the whole of a file Relay owns (a plugin): added when absent, replaced
    /// when it holds something else, else left alone.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn write_file(
        &mut self,
        path: PathBuf,
        new_file_mode: u32,
        content: Vec<u8>,
        label: &'static str,
    ) -> Result<(), InstallError> {
        let original = read_if_present(&path)?;
        let (edit, change) = match &original {
            Some(bytes) if *bytes == content => (Edit::AlreadyPresent(label), None),
            Some(_) => (Edit::Replace(label), Some(Change::Write(content))),
            None => (Edit::Add(label), Some(Change::Write(content))),
        };
        self.steps.push(Step::File(FileStep {
            path,
            edits: vec![edit],
            original,
            change,
            new_file_mode,
        }));
        Ok(())
    }

    /// Plans deleting a file Relay owns (a plugin), if it is there.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn delete_file(&mut self, path: PathBuf, label: &'static str) -> Result<(), InstallError> {
        let original = read_if_present(&path)?;
        let (edit, change) = match original {
            Some(_) => (Edit::Remove(label), Some(Change::Delete)),
            None => (Edit::AlreadyAbsent(label), None),
        };
        self.steps.push(Step::File(FileStep {
            path,
            edits: vec![edit],
            original,
            change,
            new_file_mode: CONFIG_FILE_MODE,
        }));
        Ok(())
    }

    /// Plans removing `dir` if it exists and holds nothing but files this plan deletes;
    /// otherwise it stays (with a note when it holds something else).
    pub fn remove_dir_if_emptied(&mut self, dir: PathBuf) {
        let Ok(entries) = fs::read_dir(&dir) else {
            return;
        };
        let deleted: Vec<&Path> = self
            .steps
            .iter()
            .filter_map(|step| match step {
                Step::File(FileStep {
                    path,
                    change: Some(Change::Delete),
                    ..
                }) => Some(path.as_path()),
                _ => None,
            })
            .collect();
        let emptied = entries
            .flatten()
            .all(|entry| deleted.contains(&entry.path().as_path()));
        if emptied {
            self.steps.push(Step::RemoveDir(dir));
        } else {
            self.steps.push(Step::Keep(format!(
                "{}: kept, it holds files relay did not write",
                dir.display()
            )));
        }
    }
}

impl Step {
    /// Whether this step writes or deletes something or runs a command.
    pub fn changes_anything(&self) -> bool {
        match self {
            Step::File(file) => file.change.is_some(),
            Step::Run(_) | Step::RemoveDir(_) => true,
            Step::Keep(_) => false,
        }
    }

    /// One line for the user: what was done, or with `planned` what would be done.
    pub fn describe(&self, planned: bool) -> String {
        match (self, planned) {
            (Step::File(file), _) => {
                let edits: Vec<String> = file
                    .edits
                    .iter()
                    .map(|edit| edit.describe(planned))
                    .collect();
                format!("{}: {}", file.path.display(), edits.join(", "))
            }
            (Step::Run(command), false) => format!("ran: {command}"),
            (Step::Run(command), true) => format!("would run: {command}"),
            (Step::RemoveDir(dir), false) => format!("{}: removed", dir.display()),
            (Step::RemoveDir(dir), true) => format!("{}: would remove", dir.display()),
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

impl ClientCommand {
    /// `program args…`, killed after `timeout`.
    pub fn new<'arg>(
        program: &Path,
        args: impl IntoIterator<Item = &'arg str>,
        timeout: Duration,
    ) -> ClientCommand {
        ClientCommand {
            program: program.to_owned(),
            args: args.into_iter().map(OsString::from).collect(),
            timeout,
        }
    }

    /// Runs the command with this process's environment, bounded by its timeout; returns its
    /// exit status, stdout and stderr.
    ///
    /// # Errors
    /// [`InstallError::CommandSpawn`], [`InstallError::CommandTimeout`].
    pub fn run(&self) -> Result<(ExitStatus, String, String), InstallError> {
        let spawn_error = |source| InstallError::CommandSpawn {
            command: self.to_string(),
            source,
        };
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        let stdout = child.stdout.take().map(read_in_background);
        let stderr = child.stderr.take().map(read_in_background);
        let deadline = Instant::now() + self.timeout;
        // Bounded by the deadline: polls until the child exits.
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(CHILD_POLL_INTERVAL),
                Ok(None) => {
                    // Best effort: the child may have exited since the check.
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(InstallError::CommandTimeout {
                        command: self.to_string(),
                        timeout: self.timeout,
                    });
                }
                Err(source) => return Err(spawn_error(source)),
            }
        };
        let collect = |output: Option<mpsc::Receiver<Vec<u8>>>| {
            let bytes = output
                .and_then(|output| output.recv_timeout(OUTPUT_GRACE).ok())
                .unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        Ok((status, collect(stdout), collect(stderr)))
    }

    /// Runs the command; a failure exit is an error.
    ///
    /// # Errors
    /// As [`ClientCommand::run`], and [`InstallError::CommandFailed`].
    pub fn run_checked(&self) -> Result<(), InstallError> {
        let (status, _stdout, stderr) = self.run()?;
        if status.success() {
            return Ok(());
        }
        Err(InstallError::CommandFailed {
            command: self.to_string(),
            status,
            stderr: stderr.trim().to_owned(),
        })
    }
}

impl fmt::Display for ClientCommand {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let program = self.program.file_name().unwrap_or(self.program.as_os_str());
        formatter.write_str(&program.to_string_lossy())?;
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
            Step::RemoveDir(dir) => fs::remove_dir(dir).map_err(|source| InstallError::Write {
                path: dir.clone(),
                source,
            })?,
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
pub fn find_executable(path: &OsStr, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate).is_ok_and(|metadata| {
                metadata.is_file() && metadata.permissions().mode() & 0o111 != 0
            })
        })
}

/// The bytes of `path`, or `None` when it does not exist.
///
/// # Errors
/// [`InstallError::Read`].
pub fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, InstallError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(InstallError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes or deletes one planned file: checks it is still as planned, backs it up once
/// (before a rewrite), then replaces or removes it.
fn apply_file<'plan>(
    file: &FileStep,
    report: &mut dyn FnMut(Applied<'plan>),
) -> Result<(), InstallError> {
    let Some(change) = &file.change else {
        return Ok(());
    };
    let target = write_target(&file.path)?;
    if read_if_present(&target)? != file.original {
        return Err(InstallError::ChangedMeanwhile {
            path: file.path.clone(),
        });
    }
    let content = match change {
        Change::Delete => {
            // The link itself when the file is a symlink: the target may be shared.
            return fs::remove_file(&file.path).map_err(|source| InstallError::Write {
                path: file.path.clone(),
                source,
            });
        }
        Change::Write(content) => content,
    };
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
    let file_name = path.file_name().ok_or_else(|| {
        write_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path names no file",
        ))
    })?;
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

/// Replaces the one `placeholder` in a shipped asset with `replacement`.
///
/// # Errors
/// [`InstallError::BrokenAsset`] when the asset does not hold the placeholder.
pub fn fill_asset(
    asset_text: &str,
    asset: &'static str,
    placeholder: &'static str,
    replacement: &str,
    path: &Path,
) -> Result<Vec<u8>, InstallError> {
    if !asset_text.contains(placeholder) {
        return Err(InstallError::BrokenAsset {
            asset,
            placeholder,
            path: path.to_owned(),
        });
    }
    Ok(asset_text
        .replacen(placeholder, replacement, 1)
        .into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("/opt/relay/bin/relay"), "/opt/relay/bin/relay");
        assert_eq!(shell_quote("/my dir/relay"), "'/my dir/relay'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn relay_command_adds_the_data_dir_after_the_subcommand() {
        let relay = RelayCommand::new(Path::new("/r/relay"), Some(Path::new("/d"))).expect("utf-8");
        assert_eq!(
            relay.mcp_args("codex"),
            ["mcp", "--client", "codex", "--data-dir", "/d"]
        );
        assert_eq!(
            relay.shell_line(&["hook", "gemini", "after-agent"]),
            "/r/relay hook gemini after-agent --data-dir /d"
        );
    }

    #[test]
    fn empty_variables_count_as_unset_and_relative_ones_are_made_absolute() {
        let environment = Environment::new("/h".into(), "/w".into(), OsString::new())
            .with_var("CODEX_HOME", "")
            .with_var("COPILOT_HOME", "rel");
        assert_eq!(environment.var("CODEX_HOME"), None);
        assert_eq!(
            environment.var_path("COPILOT_HOME"),
            Some(PathBuf::from("/w/rel"))
        );
        assert_eq!(environment.xdg_config_home(), PathBuf::from("/h/.config"));
        assert_eq!(
            environment.absolute(Path::new("../x/./y")),
            PathBuf::from("/x/y")
        );
    }
}
