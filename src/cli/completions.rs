//! `relay completions <shell>` and `relay man`: shell completions and man pages generated
//! from the clap definition of the command line, so they always match the real flags.
//!
//! Both write to stdout (`relay man --out-dir DIR` writes one page per subcommand instead);
//! neither reads the data dir.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, CommandFactory as _, ValueEnum};

use super::exit_code::ExitCode;

/// Print shell completions for relay.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relay completions bash > ~/.local/share/bash-completion/completions/relay\n  relay completions zsh > \"${fpath[1]}/_relay\"\n  relay completions fish > ~/.config/fish/completions/relay.fish\n  relay completions powershell >> $PROFILE"
)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: Shell,
}

/// Shells `relay completions` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// Bash.
    Bash,
    /// Zsh.
    Zsh,
    /// Fish.
    Fish,
    /// PowerShell.
    Powershell,
    /// Elvish.
    Elvish,
}

/// Print relay's man page (roff), or write one page per subcommand into a directory.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relay man | man -l -\n  relay man --out-dir ~/.local/share/man/man1   # relay.1, relay-hub.1, relay-status.1 ..."
)]
pub struct ManArgs {
    /// Write relay.1 and one relay-<subcommand>.1 per subcommand into this directory.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// Runs `relay completions`.
///
/// # Errors
/// stdout could not be written.
pub fn run_completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    use clap_complete::Shell as Generator;
    let generator = match args.shell {
        Shell::Bash => Generator::Bash,
        Shell::Zsh => Generator::Zsh,
        Shell::Fish => Generator::Fish,
        Shell::Powershell => Generator::PowerShell,
        Shell::Elvish => Generator::Elvish,
    };
    let mut command = super::Cli::command();
    let mut buffer = Vec::new();
    clap_complete::generate(generator, &mut command, "relay", &mut buffer);
    write_stdout(&buffer)
}

/// Runs `relay man`.
///
/// # Errors
/// stdout or the directory could not be written.
pub fn run_man(args: ManArgs) -> anyhow::Result<ExitCode> {
    let command = super::Cli::command();
    if let Some(dir) = args.out_dir {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        clap_mangen::generate_to(command, &dir)
            .with_context(|| format!("writing man pages into {}", dir.display()))?;
        println!("wrote man pages into {}", dir.display());
        return Ok(ExitCode::Success);
    }
    let mut buffer = Vec::new();
    clap_mangen::Man::new(command).render(&mut buffer)?;
    write_stdout(&buffer)
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    let mut out = super::output::Out::new();
    out.line(String::from_utf8_lossy(bytes).trim_end())?;
    out.flush()?;
    Ok(ExitCode::Success)
}
