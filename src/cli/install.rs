//! `relay install <client>` and `relay uninstall <client>`: set Relay up in an AI client.
//!
//! Only Claude Code so far. The work, and its invariants (read everything before writing
//! anything, atomic rewrites, one backup per file), lives in
//! [`crate::clients::claude::install`]; this file parses the arguments, prints the plan
//! (`--dry-run`) or what was done, and ends with one line saying where things stand.

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use super::exit_code::ExitCode;
use super::output::Out;
use crate::clients::claude::install::{self as claude, Applied, Environment, Plan, Scope};

/// Add Relay to an AI client: its MCP server entry `relay` (this binary, `mcp --client
/// claude`) and the allow rule `mcp__relay`, so Relay's tools run without prompts.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relay install claude\n  relay install claude --scope project --dry-run\n  CLAUDE_CONFIG_DIR=~/.claude-work relay install claude\n\nWith `claude` on PATH the server is added with `claude mcp add --scope <scope>`; else it is written to $CLAUDE_CONFIG_DIR/.claude.json or ~/.claude.json (user) or ./.mcp.json (project). The allow rule goes into $CLAUDE_CONFIG_DIR/settings.json or ~/.claude/settings.json (user) or ./.claude/settings.json (project). A file is copied to <file>.relay-backup before its first change. Running it again changes nothing."
)]
pub struct InstallArgs {
    #[command(flatten)]
    target: TargetArgs,
}

/// Remove what `relay install` added: the MCP server entry `relay` and the allow rule
/// `mcp__relay`. Everything else in the files stays.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relay uninstall claude --dry-run\n  relay uninstall claude\n  relay uninstall claude --scope project\n\nWith `claude` on PATH the server is removed with `claude mcp remove --scope <scope> relay`; else from the file `relay install` writes. Backups (<file>.relay-backup) are kept."
)]
pub struct UninstallArgs {
    #[command(flatten)]
    target: TargetArgs,
}

/// The AI clients `relay install` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ClientArg {
    /// Claude Code.
    Claude,
}

/// `--scope` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// Every project of this user (~/.claude.json, ~/.claude/settings.json).
    User,
    /// The project in the current directory (./.mcp.json, ./.claude/settings.json).
    Project,
}

/// What both subcommands take.
#[derive(Debug, Args)]
struct TargetArgs {
    /// The client to set up.
    #[arg(value_enum)]
    client: ClientArg,
    /// Whose configuration to change.
    #[arg(long, value_enum, default_value_t = ScopeArg::User)]
    scope: ScopeArg,
    /// Print what would change and write nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Runs `relay install`.
///
/// # Errors
/// A config file cannot be read, is not valid JSON or cannot be written; `claude` failed.
pub fn run_install(args: InstallArgs) -> anyhow::Result<ExitCode> {
    let target = args.target;
    let ClientArg::Claude = target.client;
    let scope = target.scope.into();
    let plan = Environment::from_process()
        .and_then(|environment| {
            let server = claude::ServerCommand::current()?;
            claude::plan_install(&environment, scope, &server)
        })
        .context("cannot install relay for Claude Code")?;
    let summary = match (plan.changes_anything(), target.dry_run) {
        (false, _) => {
            format!("Claude Code ({scope} scope): relay is already installed; nothing changed")
        }
        (true, true) => "dry run: nothing was written".to_owned(),
        (true, false) => format!(
            "Claude Code ({scope} scope): relay is installed; restart running Claude Code \
             sessions to load it"
        ),
    };
    carry_out(&plan, target.dry_run, &summary).context("cannot install relay for Claude Code")
}

/// Runs `relay uninstall`.
///
/// # Errors
/// As [`run_install`].
pub fn run_uninstall(args: UninstallArgs) -> anyhow::Result<ExitCode> {
    let target = args.target;
    let ClientArg::Claude = target.client;
    let scope = target.scope.into();
    let plan = Environment::from_process()
        .and_then(|environment| claude::plan_uninstall(&environment, scope))
        .context("cannot uninstall relay from Claude Code")?;
    let summary = match (plan.changes_anything(), target.dry_run) {
        (false, _) => {
            format!("Claude Code ({scope} scope): relay is not installed; nothing changed")
        }
        (true, true) => "dry run: nothing was written".to_owned(),
        (true, false) => format!("Claude Code ({scope} scope): relay is uninstalled"),
    };
    carry_out(&plan, target.dry_run, &summary).context("cannot uninstall relay from Claude Code")
}

impl From<ScopeArg> for Scope {
    fn from(scope: ScopeArg) -> Self {
        match scope {
            ScopeArg::User => Scope::User,
            ScopeArg::Project => Scope::Project,
        }
    }
}

/// Prints the plan (dry run) or applies it, printing each step as it is done, then `summary`.
fn carry_out(plan: &Plan, dry_run: bool, summary: &str) -> anyhow::Result<ExitCode> {
    let mut out = Out::new();
    if dry_run {
        for step in plan.steps() {
            out.line(step.describe(true))?;
        }
        out.line(summary)?;
        out.flush()?;
        return Ok(ExitCode::Success);
    }
    // Lines are printed after applying, so a closed stdout cannot stop a half-done install;
    // on failure the steps that were done are printed before the error.
    let mut lines = Vec::new();
    let applied = claude::apply(plan, &mut |applied| {
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
    out.line(summary)?;
    out.flush()?;
    Ok(ExitCode::Success)
}
