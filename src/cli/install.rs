//! `relay install <client>` and `relay uninstall <client>`: set Relay up in an AI client.
//!
//! The work, and its invariants (read everything before writing anything, atomic rewrites, one
//! backup per file), lives in [`crate::clients::install`] and one module per client
//! (`crate::clients::<client>::install`); this file parses the arguments, finds the clients
//! (`--detect`), prints the plan (`--dry-run`) or what was done, and ends each client with one
//! line saying where things stand, then its notes.

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use super::DataDirArgs;
use super::exit_code::ExitCode;
use super::output::Out;
use crate::clients::install::{self as shared, Applied, Environment, InstallError, Plan, Scope};
use crate::clients::{agy, claude, codex, copilot, cursor, gemini, opencode};

/// What `relay install --help` shows after the options.
const INSTALL_HELP: &str = "\
Examples:
  relay install claude
  relay install claude --scope project --dry-run
  relay install codex            # $CODEX_HOME/config.toml [mcp_servers.relay]
  relay install opencode         # opencode.json mcp.relay + plugins/relay.js
  relay install copilot          # mcp-config.json, extensions/relay/, experimental mode
  relay install gemini           # settings.json mcpServers.relay + AfterAgent/AfterTool hooks
  relay install cursor           # ~/.cursor/mcp.json + hooks.json stop hook
  relay install agy              # ~/.gemini/antigravity-cli/mcp_config.json (pull only)
  relay install --detect --dry-run
  relay install gemini --data-dir ~/.relay-work
  CODEX_HOME=~/.codex-work relay install codex

Every entry runs this binary by its absolute path; with --data-dir (or RELAY_HOME) the entries \
pass --data-dir too. --detect installs for every client whose binary is on PATH or whose config \
directory exists. A file is copied to <file>.relay-backup before its first change. Running it \
again changes nothing. docs/install.md lists every file per client.";

/// What `relay uninstall --help` shows after the options.
const UNINSTALL_HELP: &str = "\
Examples:
  relay uninstall claude --dry-run
  relay uninstall claude
  relay uninstall claude --scope project
  relay uninstall codex
  relay uninstall opencode       # also deletes plugins/relay.js
  relay uninstall copilot        # also deletes extensions/relay/; experimental mode stays on
  relay uninstall gemini         # removes only relay's hooks
  relay uninstall cursor
  relay uninstall agy

Only what relay install added goes; everything else in the files stays. Backups \
(<file>.relay-backup) are kept.";

/// Add Relay to an AI client: its MCP server entry `relay` (this binary, `mcp --client
/// <client>`) and, where the client has one, the push path (hooks, plugin or extension) that
/// hands messages to its model.
#[derive(Debug, Args)]
#[command(after_help = INSTALL_HELP)]
pub struct InstallArgs {
    /// The client to set up.
    #[arg(value_enum, required_unless_present = "detect")]
    client: Option<ClientArg>,
    /// Set up every client found: its binary on PATH or its config directory exists.
    #[arg(long, conflicts_with = "client")]
    detect: bool,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    data_dir: DataDirArgs,
}

/// Remove what `relay install` added. Everything else in the files stays.
#[derive(Debug, Args)]
#[command(after_help = UNINSTALL_HELP)]
pub struct UninstallArgs {
    /// The client to take Relay out of.
    #[arg(value_enum)]
    client: ClientArg,
    #[command(flatten)]
    target: TargetArgs,
}

/// The AI clients `relay install` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ClientArg {
    /// Claude Code.
    Claude,
    /// Codex CLI.
    Codex,
    /// OpenCode.
    Opencode,
    /// GitHub Copilot CLI.
    Copilot,
    /// Gemini CLI.
    Gemini,
    /// Cursor CLI (`agent`).
    Cursor,
    /// Antigravity CLI (`agy`).
    Agy,
}

/// Every client, in the order `--detect` goes through them.
const ALL_CLIENTS: [ClientArg; 7] = [
    ClientArg::Claude,
    ClientArg::Codex,
    ClientArg::Opencode,
    ClientArg::Copilot,
    ClientArg::Gemini,
    ClientArg::Cursor,
    ClientArg::Agy,
];

/// `--scope` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// Every project of this user (~/.claude.json, ~/.codex/config.toml, ...).
    User,
    /// The project in the current directory (./.mcp.json, ./.codex/config.toml, ...).
    Project,
}

/// What both subcommands take.
#[derive(Debug, Args)]
struct TargetArgs {
    /// Whose configuration to change.
    #[arg(long, value_enum, default_value_t = ScopeArg::User)]
    scope: ScopeArg,
    /// Print what would change and write nothing.
    #[arg(long)]
    dry_run: bool,
}

impl ClientArg {
    /// The client's name in output.
    fn display_name(self) -> &'static str {
        match self {
            ClientArg::Claude => claude::install::DISPLAY_NAME,
            ClientArg::Codex => codex::install::DISPLAY_NAME,
            ClientArg::Opencode => opencode::install::DISPLAY_NAME,
            ClientArg::Copilot => copilot::install::DISPLAY_NAME,
            ClientArg::Gemini => gemini::install::DISPLAY_NAME,
            ClientArg::Cursor => cursor::install::DISPLAY_NAME,
            ClientArg::Agy => agy::install::DISPLAY_NAME,
        }
    }

    /// Why the client counts as present, or `None`.
    fn detect(self, environment: &Environment) -> Option<String> {
        match self {
            ClientArg::Claude => claude::install::detect(environment),
            ClientArg::Codex => codex::install::detect(environment),
            ClientArg::Opencode => opencode::install::detect(environment),
            ClientArg::Copilot => copilot::install::detect(environment),
            ClientArg::Gemini => gemini::install::detect(environment),
            ClientArg::Cursor => cursor::install::detect(environment),
            ClientArg::Agy => agy::install::detect(environment),
        }
    }

    fn plan_install(
        self,
        environment: &Environment,
        scope: Scope,
        relay: &shared::RelayCommand,
    ) -> Result<Plan, InstallError> {
        match self {
            ClientArg::Claude => claude::install::plan_install(
                &claude::install::Environment::from_environment(environment),
                scope,
                &claude::install::ServerCommand::for_relay(relay),
            ),
            ClientArg::Codex => codex::install::plan_install(environment, scope, relay),
            ClientArg::Opencode => opencode::install::plan_install(environment, scope, relay),
            ClientArg::Copilot => copilot::install::plan_install(environment, scope, relay),
            ClientArg::Gemini => gemini::install::plan_install(environment, scope, relay),
            ClientArg::Cursor => cursor::install::plan_install(environment, scope, relay),
            ClientArg::Agy => agy::install::plan_install(environment, scope, relay),
        }
    }

    fn plan_uninstall(self, environment: &Environment, scope: Scope) -> Result<Plan, InstallError> {
        match self {
            ClientArg::Claude => claude::install::plan_uninstall(
                &claude::install::Environment::from_environment(environment),
                scope,
            ),
            ClientArg::Codex => codex::install::plan_uninstall(environment, scope),
            ClientArg::Opencode => opencode::install::plan_uninstall(environment, scope),
            ClientArg::Copilot => copilot::install::plan_uninstall(environment, scope),
            ClientArg::Gemini => gemini::install::plan_uninstall(environment, scope),
            ClientArg::Cursor => cursor::install::plan_uninstall(environment, scope),
            ClientArg::Agy => agy::install::plan_uninstall(environment, scope),
        }
    }
}

/// One client's plan and the line that ends its output.
struct Planned {
    plan: Plan,
    summary: String,
}

/// Runs `relay install`.
///
/// # Errors
/// A config file cannot be read, parsed or written; `claude` failed.
pub fn run_install(args: InstallArgs) -> anyhow::Result<ExitCode> {
    let scope: Scope = args.target.scope.into();
    let dry_run = args.target.dry_run;
    let environment = Environment::from_process().context("cannot install relay")?;
    let data_dir = args
        .data_dir
        .data_dir
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| environment.absolute(&dir));
    let relay =
        shared::RelayCommand::current(data_dir.as_deref()).context("cannot install relay")?;
    let mut out = Out::new();
    let clients = match args.client {
        Some(client) => vec![client],
        None => detected(&environment, &mut out)?,
    };
    // Every client is planned (every file read and parsed) before anything is written.
    let mut planned = Vec::new();
    for client in clients {
        let name = client.display_name();
        let plan = match client.plan_install(&environment, scope, &relay) {
            Ok(plan) => plan,
            Err(error @ InstallError::ScopeUnsupported { .. }) if args.detect => {
                out.line(format!("skipped: {name} ({error})"))?;
                continue;
            }
            Err(error) => {
                return Err(error).context(format!("cannot install relay for {name}"));
            }
        };
        let summary = match (plan.changes_anything(), dry_run) {
            (false, _) => {
                format!("{name} ({scope} scope): relay is already installed; nothing changed")
            }
            (true, true) => format!("{name} ({scope} scope): dry run, nothing was written"),
            (true, false) => format!(
                "{name} ({scope} scope): relay is installed; restart running {name} sessions \
                 to load it"
            ),
        };
        planned.push((client, Planned { plan, summary }));
    }
    for (client, planned) in &planned {
        carry_out(&mut out, planned, dry_run)
            .with_context(|| format!("cannot install relay for {}", client.display_name()))?;
    }
    out.flush()?;
    Ok(ExitCode::Success)
}

/// Runs `relay uninstall`.
///
/// # Errors
/// As [`run_install`].
pub fn run_uninstall(args: UninstallArgs) -> anyhow::Result<ExitCode> {
    let client = args.client;
    let name = client.display_name();
    let scope: Scope = args.target.scope.into();
    let dry_run = args.target.dry_run;
    let context = || format!("cannot uninstall relay from {name}");
    let plan = Environment::from_process()
        .and_then(|environment| client.plan_uninstall(&environment, scope))
        .with_context(context)?;
    let summary = match (plan.changes_anything(), dry_run) {
        (false, _) => format!("{name} ({scope} scope): relay is not installed; nothing changed"),
        (true, true) => format!("{name} ({scope} scope): dry run, nothing was written"),
        (true, false) => format!("{name} ({scope} scope): relay is uninstalled"),
    };
    let mut out = Out::new();
    carry_out(&mut out, &Planned { plan, summary }, dry_run).with_context(context)?;
    out.flush()?;
    Ok(ExitCode::Success)
}

/// Where Relay stands in one client, for `relay doctor`.
#[derive(Debug)]
pub(super) enum ClientState {
    /// Neither its binary on `PATH` nor its config directory.
    NotFound,
    /// Found, but Relay is not in its config (user scope).
    NotInstalled,
    /// Relay is in its config, every entry runs this binary, its push path is wired.
    Current,
    /// Relay is in its config but `relay install` would change it: what it would do.
    Differs(Vec<String>),
    /// Its config could not be read or parsed.
    Unreadable(String),
}

/// The state of every client, in `--detect` order: its display name, its `relay install`
/// name and its state. Reuses the installers' planning: a config that the uninstall plan
/// would change holds Relay; one the install plan would change does not run this binary (or
/// lacks part of the push path).
///
/// # Errors
/// The environment (`HOME`, the current directory) or this binary's path is unknown.
pub(super) fn client_states(
    data_dir: Option<&std::path::Path>,
) -> anyhow::Result<Vec<(&'static str, &'static str, ClientState)>> {
    let environment = Environment::from_process()?;
    let data_dir = data_dir
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| environment.absolute(dir));
    let relay = shared::RelayCommand::current(data_dir.as_deref())?;
    let mut states = Vec::new();
    for client in ALL_CLIENTS {
        let cli_name = match client {
            ClientArg::Claude => "claude",
            ClientArg::Codex => "codex",
            ClientArg::Opencode => "opencode",
            ClientArg::Copilot => "copilot",
            ClientArg::Gemini => "gemini",
            ClientArg::Cursor => "cursor",
            ClientArg::Agy => "agy",
        };
        let state = if client.detect(&environment).is_none() {
            ClientState::NotFound
        } else {
            match client.plan_uninstall(&environment, Scope::User) {
                Err(error) => ClientState::Unreadable(error.to_string()),
                Ok(uninstall) if !uninstall.changes_anything() => ClientState::NotInstalled,
                Ok(_) => match client.plan_install(&environment, Scope::User, &relay) {
                    Err(error) => ClientState::Unreadable(error.to_string()),
                    Ok(install) if !install.changes_anything() => ClientState::Current,
                    Ok(install) => ClientState::Differs(
                        install
                            .steps()
                            .iter()
                            .filter(|step| step.changes_anything())
                            .map(|step| step.describe(true))
                            .collect(),
                    ),
                },
            }
        };
        states.push((client.display_name(), cli_name, state));
    }
    Ok(states)
}

/// The clients `--detect` finds, each printed as `found:` or `skipped:`.
fn detected(environment: &Environment, out: &mut Out) -> anyhow::Result<Vec<ClientArg>> {
    let mut found = Vec::new();
    for client in ALL_CLIENTS {
        let name = client.display_name();
        match client.detect(environment) {
            Some(reason) => {
                out.line(format!("found: {name} ({reason})"))?;
                found.push(client);
            }
            None => out.line(format!(
                "skipped: {name} (not found: no binary on PATH, no config directory)"
            ))?,
        }
    }
    if found.is_empty() {
        out.line("no AI client found; nothing changed")?;
    }
    Ok(found)
}

impl From<ScopeArg> for Scope {
    fn from(scope: ScopeArg) -> Self {
        match scope {
            ScopeArg::User => Scope::User,
            ScopeArg::Project => Scope::Project,
        }
    }
}

/// Prints the plan (dry run) or applies it, printing each step as it is done, then the
/// summary and the notes.
fn carry_out(out: &mut Out, planned: &Planned, dry_run: bool) -> anyhow::Result<()> {
    let plan = &planned.plan;
    if dry_run {
        for step in plan.steps() {
            out.line(step.describe(true))?;
        }
    } else {
        // Lines are printed after applying, so a closed stdout cannot stop a half-done install;
        // on failure the steps that were done are printed before the error.
        let mut lines = Vec::new();
        let applied = shared::apply(plan, &mut |applied| {
            lines.push(match applied {
                Applied::BackedUp { backup } => format!("backup: {}", backup.display()),
                Applied::BackupKept { backup } => {
                    format!("backup: {} (kept from an earlier run)", backup.display())
                }
                Applied::Done(step) => step.describe(false),
            });
        });
        for line in &lines {
            out.line(line)?;
        }
        applied?;
    }
    out.line(&planned.summary)?;
    for note in plan.notes() {
        out.line(format!("note: {note}"))?;
    }
    Ok(())
}
