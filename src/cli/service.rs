//! `relay service install|uninstall [--dry-run]`: run the data dir's hub as a systemd user
//! unit (Linux) or a launchd agent (macOS), started at login and restarted if it fails.
//!
//! The unit runs this binary by its absolute path as `relay hub --data-dir <dir> --started-by
//! service` (no idle exit by default; `relay status` says it is managed). Its name is
//! `relay-hub` for the default data dir and `relay-hub-<8 hex digits of the dir>` for any other,
//! so several data dirs can each have one. `--dry-run` prints the file and the commands and
//! changes nothing; the real run writes the file (0644) and runs `systemctl --user` or
//! `launchctl`, stopping at the first that fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};

use super::DataDirArgs;
use super::exit_code::ExitCode;

/// Run the hub as a login service: a systemd user unit (Linux) or a launchd agent (macOS).
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relay service install --dry-run      # print the unit and the commands, change nothing\n  relay service install\n  relay service uninstall\n  relay service install --manager launchd --dry-run\n\nThe service runs `relay hub --data-dir <dir> --started-by service`: it starts at login, is restarted when it fails, and does not exit when idle. Stop any hub already running for the data dir first (`relay stop`). relay.toml settings apply as for any hub."
)]
pub struct ServiceArgs {
    /// What to do.
    #[command(subcommand)]
    action: ServiceAction,
}

/// `relay service` actions.
#[derive(Debug, Subcommand)]
pub enum ServiceAction {
    /// Write the unit (or agent) and start it.
    Install(ServiceTarget),
    /// Stop the unit (or agent) and delete its file.
    Uninstall(ServiceTarget),
}

/// What both actions take.
#[derive(Debug, Args)]
pub struct ServiceTarget {
    #[command(flatten)]
    data_dir: DataDirArgs,
    /// Print the file and the commands; write and run nothing.
    #[arg(long)]
    dry_run: bool,
    /// The service manager [default: launchd on macOS, systemd elsewhere].
    #[arg(long, value_enum)]
    manager: Option<Manager>,
}

/// `--manager` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Manager {
    /// A systemd user unit in ~/.config/systemd/user/.
    Systemd,
    /// A launchd agent in ~/Library/LaunchAgents/.
    Launchd,
}

impl Manager {
    fn of_this_system() -> Manager {
        if cfg!(target_os = "macos") {
            Manager::Launchd
        } else {
            Manager::Systemd
        }
    }
}

/// The unit of a data dir, for one manager.
struct Unit {
    manager: Manager,
    /// `relay-hub` or `relay-hub-<hash>` (systemd), `dev.relay.hub[.<hash>]` (launchd).
    name: String,
    path: PathBuf,
}

/// Runs `relay service`.
///
/// # Errors
/// The binary's or the data dir's path is unknown; a file or a manager command failed.
pub fn run(args: ServiceArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        ServiceAction::Install(target) => install(&target),
        ServiceAction::Uninstall(target) => uninstall(&target),
    }
}

/// The unit file installed for `data_dir` on this system, if there is one.
pub fn installed_unit(data_dir: &Path) -> Option<PathBuf> {
    let data_dir = absolute(data_dir).ok()?;
    let unit = unit(Manager::of_this_system(), &data_dir)?;
    unit.path.exists().then_some(unit.path)
}

/// The command that restarts the service of `data_dir` on this system.
pub fn restart_command(data_dir: &Path) -> String {
    let manager = Manager::of_this_system();
    match absolute(data_dir).ok().and_then(|dir| unit(manager, &dir)) {
        Some(unit) => match manager {
            Manager::Systemd => format!("systemctl --user restart {}.service", unit.name),
            Manager::Launchd => format!("launchctl kickstart -k gui/$(id -u)/{}", unit.name),
        },
        None => "your service manager".to_owned(),
    }
}

fn install(target: &ServiceTarget) -> anyhow::Result<ExitCode> {
    let manager = target.manager.unwrap_or_else(Manager::of_this_system);
    let data_dir = absolute(&target.data_dir.resolve())?;
    let unit = unit(manager, &data_dir).context("cannot find the home directory ($HOME)")?;
    let binary = std::env::current_exe().context("cannot find this binary's path")?;
    let text = match manager {
        Manager::Systemd => systemd_unit(&binary, &data_dir),
        Manager::Launchd => launchd_plist(&unit.name, &binary, &data_dir),
    };
    let commands = install_commands(&unit);
    if target.dry_run {
        println!("would write {}:", unit.path.display());
        print!("{text}");
        for command in &commands {
            println!("would run: {}", command.join(" "));
        }
        println!("dry run: nothing was written or run");
        return Ok(ExitCode::Success);
    }
    if let Some(parent) = unit.path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&unit.path, &text)
        .with_context(|| format!("writing {}", unit.path.display()))?;
    println!("wrote {}", unit.path.display());
    run_all(&commands)?;
    println!(
        "the hub of {} now runs as {} (`relay status` shows it)",
        data_dir.display(),
        unit.name
    );
    Ok(ExitCode::Success)
}

fn uninstall(target: &ServiceTarget) -> anyhow::Result<ExitCode> {
    let manager = target.manager.unwrap_or_else(Manager::of_this_system);
    let data_dir = absolute(&target.data_dir.resolve())?;
    let unit = unit(manager, &data_dir).context("cannot find the home directory ($HOME)")?;
    let commands = uninstall_commands(&unit);
    if target.dry_run {
        for command in &commands {
            println!("would run: {}", command.join(" "));
        }
        println!("would delete {}", unit.path.display());
        println!("dry run: nothing was deleted or run");
        return Ok(ExitCode::Success);
    }
    if !unit.path.exists() {
        println!("{} is not installed; nothing changed", unit.path.display());
        return Ok(ExitCode::Success);
    }
    // Stopping may fail for a unit that never started; the file goes all the same.
    for command in &commands[..1] {
        if let Err(error) = run_one(command) {
            eprintln!("relay: warning: {}", super::describe(&error));
        }
    }
    std::fs::remove_file(&unit.path)
        .with_context(|| format!("deleting {}", unit.path.display()))?;
    println!("deleted {}", unit.path.display());
    run_all(&commands[1..])?;
    Ok(ExitCode::Success)
}

fn unit(manager: Manager, data_dir: &Path) -> Option<Unit> {
    let home = std::env::var_os("HOME").filter(|home| !home.is_empty())?;
    let home = PathBuf::from(home);
    let suffix = (absolute(&crate::data_dir::default_data_dir())
        .ok()
        .as_deref()
        != Some(data_dir))
    .then(|| {
        format!(
            "{:08x}",
            fnv1a(data_dir.as_os_str().as_encoded_bytes()) as u32
        )
    });
    Some(match manager {
        Manager::Systemd => {
            let name = match &suffix {
                Some(suffix) => format!("relay-hub-{suffix}"),
                None => "relay-hub".to_owned(),
            };
            let dir = std::env::var_os("XDG_CONFIG_HOME")
                .filter(|dir| !dir.is_empty())
                .map_or_else(|| home.join(".config"), PathBuf::from);
            Unit {
                manager,
                path: dir.join("systemd/user").join(format!("{name}.service")),
                name,
            }
        }
        Manager::Launchd => {
            let name = match &suffix {
                Some(suffix) => format!("dev.relay.hub.{suffix}"),
                None => "dev.relay.hub".to_owned(),
            };
            Unit {
                manager,
                path: home
                    .join("Library/LaunchAgents")
                    .join(format!("{name}.plist")),
                name,
            }
        }
    })
}

fn install_commands(unit: &Unit) -> Vec<Vec<String>> {
    let words = |words: &[&str]| words.iter().map(|word| (*word).to_owned()).collect();
    match unit.manager {
        Manager::Systemd => vec![
            words(&["systemctl", "--user", "daemon-reload"]),
            words(&[
                "systemctl",
                "--user",
                "enable",
                "--now",
                &format!("{}.service", unit.name),
            ]),
        ],
        Manager::Launchd => vec![words(&[
            "launchctl",
            "bootstrap",
            &format!("gui/{}", rustix::process::getuid().as_raw()),
            &unit.path.display().to_string(),
        ])],
    }
}

fn uninstall_commands(unit: &Unit) -> Vec<Vec<String>> {
    let words = |words: &[&str]| words.iter().map(|word| (*word).to_owned()).collect();
    match unit.manager {
        Manager::Systemd => vec![
            words(&[
                "systemctl",
                "--user",
                "disable",
                "--now",
                &format!("{}.service", unit.name),
            ]),
            words(&["systemctl", "--user", "daemon-reload"]),
        ],
        Manager::Launchd => vec![words(&[
            "launchctl",
            "bootout",
            &format!("gui/{}/{}", rustix::process::getuid().as_raw(), unit.name),
        ])],
    }
}

fn systemd_unit(binary: &Path, data_dir: &Path) -> String {
    let quote = |path: &Path| {
        let text = path.display().to_string();
        format!(
            "\"{}\"",
            text.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('%', "%%")
                .replace('$', "$$")
        )
    };
    format!(
        "[Unit]\n\
         Description=Relay hub for {dir}\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={binary} hub --data-dir {data_dir} --started-by service\n\
         # SIGTERM: the hub syncs its log, writes a snapshot and exits 0.\n\
         TimeoutStopSec=20\n\
         Restart=on-failure\n\
         RestartSec=2\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        dir = data_dir.display().to_string().replace('%', "%%"),
        binary = quote(binary),
        data_dir = quote(data_dir),
    )
}

fn launchd_plist(label: &str, binary: &Path, data_dir: &Path) -> String {
    let xml = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let string = |text: &str| format!("    <string>{}</string>\n", xml(text));
    let out = data_dir.join("logs").join("hub.out");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <plist version=\"1.0\">\n\
         <dict>\n\
         \x20 <key>Label</key>\n  <string>{label}</string>\n\
         \x20 <key>ProgramArguments</key>\n  <array>\n{program}{hub}{flag}{dir}{started}{service}  </array>\n\
         \x20 <key>RunAtLoad</key>\n  <true/>\n\
         \x20 <key>KeepAlive</key>\n  <dict>\n    <key>SuccessfulExit</key>\n    <false/>\n  </dict>\n\
         \x20 <key>StandardOutPath</key>\n  <string>{out}</string>\n\
         \x20 <key>StandardErrorPath</key>\n  <string>{out}</string>\n\
         </dict>\n\
         </plist>\n",
        label = xml(label),
        program = string(&binary.display().to_string()),
        hub = string("hub"),
        flag = string("--data-dir"),
        dir = string(&data_dir.display().to_string()),
        started = string("--started-by"),
        service = string("service"),
        out = xml(&out.display().to_string()),
    )
}

fn run_all(commands: &[Vec<String>]) -> anyhow::Result<()> {
    for command in commands {
        run_one(command)?;
        println!("ran: {}", command.join(" "));
    }
    Ok(())
}

fn run_one(command: &[String]) -> anyhow::Result<()> {
    let Some((program, args)) = command.split_first() else {
        return Ok(());
    };
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running `{}`", command.join(" ")))?;
    if !output.status.success() {
        anyhow::bail!(
            "`{}` failed ({}): {}",
            command.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot make {} absolute", path.display()))
}

/// FNV-1a, 64 bits: a stable short name for a data dir (not a security measure).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
