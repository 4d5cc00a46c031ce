//! The command line: one file per subcommand, parsed with clap derive.
//!
//! stdout carries results, stderr diagnostics. Errors print as `relay: <what>: <causes>` and
//! map to the exit codes of [`exit_code::ExitCode`].

pub mod bench;
pub mod completions;
pub mod deliver;
pub mod doctor;
pub mod exit_code;
pub mod federation;
pub mod hook;
pub mod hub;
pub mod hub_process;
pub mod inbox;
pub mod install;
pub mod log;
pub mod mcp;
pub mod output;
pub mod peers;
pub mod relay_server;
pub mod replay;
pub mod send;
pub mod service;
pub mod session;
pub mod status;
pub mod stop;
pub mod watch;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::data_dir::{RELAY_HOME_ENV, default_data_dir};

/// Relay: a message hub for AI coding sessions.
#[derive(Debug, Parser)]
#[command(name = "relay", version, after_help = exit_code::EXIT_CODES_HELP)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub daemon (sessions start it on demand).
    Hub(hub::HubArgs),
    /// Show whether a hub runs for the data dir, its settings, sessions and log.
    Status(status::StatusArgs),
    /// Stop the data dir's hub cleanly.
    Stop(stop::StopArgs),
    /// Restart the data dir's hub with this binary (after an upgrade).
    Restart(stop::RestartArgs),
    /// Check that Relay can work here: data dir modes, settings, disk, hub, clients.
    Doctor(doctor::DoctorArgs),
    /// Run the hub as a login service (systemd user unit, launchd agent).
    Service(service::ServiceArgs),
    /// Send a direct message from a shell.
    Send(send::SendArgs),
    /// List known peers.
    Peers(peers::PeersArgs),
    /// Read unread messages (marks them read).
    Inbox(inbox::InboxArgs),
    /// Print every incoming message, one line each, until interrupted.
    Watch(watch::WatchArgs),
    /// Serve the relay_* tools to an AI coding session over MCP on stdio.
    Mcp(mcp::McpArgs),
    /// Rebuild state from the log and print events and/or state (audit).
    Replay(replay::ReplayArgs),
    /// Inspect the log: info, verify, dump, tail, repair.
    Log(log::LogArgs),
    /// Measure Relay's building blocks (prints figures; asserts nothing).
    Bench(bench::BenchArgs),
    /// Set Relay up in an AI client: its MCP server and its push path (hooks, plugin, extension).
    Install(install::InstallArgs),
    /// Undo `relay install`: remove what it added to an AI client.
    Uninstall(install::UninstallArgs),
    /// A client hook (Gemini CLI, Cursor) that hands waiting messages to the model.
    Hook(hook::HookArgs),
    /// Stream a session's messages to its OpenCode plugin or Copilot extension.
    Deliver(deliver::DeliverArgs),
    /// Print shell completions (bash, zsh, fish, powershell, elvish).
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff), or write one per subcommand.
    Man(completions::ManArgs),
    /// Set up federation with hubs on other machines: init, secret, show.
    Federation(federation::FederationArgs),
    /// Run a relay server that pairs hubs behind NAT (every connection outbound from the hubs).
    RelayServer(relay_server::RelayServerArgs),
}

/// The `--data-dir` option every data-dir-using subcommand shares.
#[derive(Clone, Debug, clap::Args)]
pub struct DataDirArgs {
    /// Data directory [default: $RELAY_HOME, else ~/.relay].
    #[arg(long, env = RELAY_HOME_ENV, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
}

impl DataDirArgs {
    /// The data directory to use.
    pub fn resolve(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }
}

/// Whether this command sets up its own logging (the hub logs to its data dir).
pub fn logs_to_data_dir(cli: &Cli) -> bool {
    matches!(cli.command, Command::Hub(_) | Command::Mcp(_))
}

/// Runs the parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> exit_code::ExitCode {
    let result = match cli.command {
        Command::Hub(args) => hub::run_hub(args),
        Command::Status(args) => status::run(args),
        Command::Stop(args) => stop::run_stop(args),
        Command::Restart(args) => stop::run_restart(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Service(args) => service::run(args),
        Command::Send(args) => send::run(args),
        Command::Peers(args) => peers::run(args),
        Command::Inbox(args) => inbox::run(args),
        Command::Watch(args) => watch::run(args),
        Command::Mcp(args) => mcp::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Log(args) => log::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Install(args) => install::run_install(args),
        Command::Uninstall(args) => install::run_uninstall(args),
        Command::Hook(args) => hook::run(args),
        Command::Deliver(args) => deliver::run(args),
        Command::Completions(args) => completions::run_completions(args),
        Command::Man(args) => completions::run_man(args),
        Command::Federation(args) => federation::run(args),
        Command::RelayServer(args) => relay_server::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) if error.is::<output::ClosedPipe>() => exit_code::ExitCode::Success,
        Err(error) => {
            eprintln!("relay: {}", describe(&error));
            exit_code::ExitCode::Failed
        }
    }
}

/// `error` and its causes, each said once: a cause whose text an outer message already
/// carries (a `thiserror` message that embeds its source) is not repeated.
pub fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cause_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        #[derive(Debug, thiserror::Error)]
        #[error("log: {source}")]
        struct Open {
            source: std::io::Error,
        }
        let error = anyhow::Error::new(Open { source: io }).context("opening");
        assert_eq!(super::describe(&error), "opening: log: no such file");
    }
}
