//! `relay federation`: set up `<data dir>/federation.toml` and this hub's Noise key.
//!
//! `init` writes a config with a fresh secret (or one read from stdin, to join hubs that
//! have one) and creates the static key; `secret` prints the secret for piping to the other
//! machine; `show` checks the file and prints what it says. The hub reads the same file at
//! start and runs the links (`relay status` shows them).

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::Path;

use clap::{Args, Subcommand};

use super::DataDirArgs;
use super::exit_code::ExitCode;
use super::output::Out;
use crate::federation::config::{self, FEDERATION_FILE_NAME, HubId, Key32};
use crate::federation::noise::StaticKey;

/// Set up federation with hubs on other machines.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relay federation init --hub-id lab --listen 0.0.0.0:9700\n  relay federation secret | ssh other-machine relay federation init --hub-id desk --secret-stdin\n  relay federation show\n\nThe file is <data dir>/federation.toml (mode 0600); see docs/federation.md for every key."
)]
pub struct FederationArgs {
    #[command(flatten)]
    data_dir: DataDirArgs,
    /// What to do.
    #[command(subcommand)]
    command: FederationCommand,
}

/// `relay federation` subcommands.
#[derive(Debug, Subcommand)]
enum FederationCommand {
    /// Write federation.toml with this hub's id and a fresh secret; create its static key.
    Init(InitArgs),
    /// Print the shared secret (to pipe to `init --secret-stdin` on another machine).
    Secret,
    /// Check federation.toml and print this hub's id, key, peers and what is built.
    Show,
}

/// `relay federation init` options.
#[derive(Debug, Args)]
struct InitArgs {
    /// This hub's id: 1 to 32 of a-z, 0-9 and '-'.
    #[arg(long, value_name = "ID")]
    hub_id: String,
    /// Accept links from other hubs on this address.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Read the secret (64 hex digits) from stdin instead of making a new one.
    #[arg(long)]
    secret_stdin: bool,
    /// Replace an existing federation.toml.
    #[arg(long)]
    force: bool,
}

/// Runs `relay federation …`.
///
/// # Errors
/// A bad argument or config, or a file that cannot be written.
pub fn run(args: FederationArgs) -> anyhow::Result<ExitCode> {
    let data_dir = args.data_dir.resolve();
    match args.command {
        FederationCommand::Init(init) => run_init(&data_dir, init),
        FederationCommand::Secret => {
            let mut out = Out::new();
            let config = load(&data_dir)?;
            out.line(format_args!("{}", config.secret.to_hex()))?;
            out.flush()?;
            Ok(ExitCode::Success)
        }
        FederationCommand::Show => run_show(&data_dir),
    }
}

fn load(data_dir: &Path) -> anyhow::Result<config::FederationConfig> {
    config::load(data_dir)?.ok_or_else(|| {
        anyhow::anyhow!(
            "no {} in {}; `relay federation init --hub-id ID` writes one",
            FEDERATION_FILE_NAME,
            data_dir.display()
        )
    })
}

fn run_init(data_dir: &Path, init: InitArgs) -> anyhow::Result<ExitCode> {
    let hub_id =
        HubId::new(&init.hub_id).map_err(|message| anyhow::anyhow!("--hub-id: {message}"))?;
    let path = data_dir.join(FEDERATION_FILE_NAME);
    if path.exists() && !init.force {
        anyhow::bail!(
            "{} exists; `relay federation show` prints it, --force replaces it",
            path.display()
        );
    }
    let secret = if init.secret_stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Key32::from_hex(&text)
            .map_err(|message| anyhow::anyhow!("the secret on stdin: {message}"))?
    } else {
        Key32::random()?
    };
    crate::data_dir::create_private_dir(data_dir)?;
    let text = config::initial_text(&hub_id, init.listen, &secret);
    // Checked before it is written: init never leaves a file the hub would refuse.
    config::parse(&text, &path, data_dir)?;
    write_private(&path, &text)?;
    let key = StaticKey::load_or_create(&data_dir.join("federation"))?;
    let mut out = Out::new();
    out.line(format_args!(
        "wrote {} (hub {hub_id}, mode 0600)",
        path.display()
    ))?;
    out.line(format_args!(
        "static key of this hub: {}",
        key.public.to_hex()
    ))?;
    out.line(format_args!(
        "every hub of the federation needs the same secret; to set up another machine:\n  relay federation secret | ssh OTHER-MACHINE relay federation init --hub-id OTHER-ID --secret-stdin\nthen list each hub under [[peer]] in the other's {FEDERATION_FILE_NAME}"
    ))?;
    out.flush()?;
    Ok(ExitCode::Success)
}

fn run_show(data_dir: &Path) -> anyhow::Result<ExitCode> {
    let config = load(data_dir)?;
    let mut out = Out::new();
    out.line(format_args!("hub id:  {}", config.hub_id))?;
    match config.listen {
        Some(listen) => out.line(format_args!("listen:  {listen}"))?,
        None => out.line(format_args!("listen:  (none: this hub only dials)"))?,
    }
    let key_dir = data_dir.join("federation");
    match std::fs::read_to_string(key_dir.join(crate::federation::noise::STATIC_KEY_FILE_NAME)) {
        Ok(text) => out.line(format_args!(
            "key:     {}",
            text.lines().nth(1).unwrap_or("(unreadable)")
        ))?,
        Err(_) => out.line(format_args!(
            "key:     (none yet: made at first link or by `relay federation init`)"
        ))?,
    }
    for peer in &config.peers {
        let address = peer
            .address
            .map_or_else(|| "(dials us)".to_owned(), |address| address.to_string());
        let key = if peer.public_key.is_some() {
            "key pinned in config"
        } else {
            "key pinned at first link"
        };
        out.line(format_args!("peer:    {}  {address}  {key}", peer.hub_id))?;
    }
    if let Some(relay) = &config.relay {
        out.line(format_args!("relay:   {}", relay.url))?;
    }
    out.line(format_args!(
        "status:  the config is valid; the hub links at start (`relay status` shows each link); direct messages, asks and replies cross hubs as name@hub, groups do not yet (docs/federation.md)"
    ))?;
    out.flush()?;
    Ok(ExitCode::Success)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let temporary = path.with_extension("toml.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    Ok(())
}
