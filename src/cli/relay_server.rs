//! `relay relay-server`: run the WebSocket router that pairs hubs behind NAT
//! ([`crate::federation::relay_server`]), or print a fresh hub token.
//!
//! With `[tls]` in the config it serves `wss://`; without, plain `ws://`, which it serves on a
//! loopback address only unless `--behind-tls-proxy` says a TLS proxy in front terminates
//! `wss://` (hubs refuse `ws://` to anything but loopback, so a plain server elsewhere is
//! reachable only through such a proxy).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::exit_code::ExitCode;
use crate::federation::relay_server;

/// Pair hubs behind NAT: a WebSocket router every hub connects out to.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  relay relay-server --listen 0.0.0.0:9800 --config relay-server.toml     # with [tls]: wss://\n  relay relay-server --listen 127.0.0.1:9800 --config relay-server.toml   # no [tls]: ws://\n  relay relay-server --listen 0.0.0.0:9800 --config relay-server.toml --behind-tls-proxy\n  relay relay-server --new-token\n\nThe config (mode 0600) lists each hub that may connect, and the TLS certificate:\n  [[hub]]\n  hub_id = \"lab\"\n  token = \"<from --new-token>\"\n  [tls]\n  cert_file = \"/etc/relay/fullchain.pem\"   # PEM, leaf first\n  key_file = \"/etc/relay/privkey.pem\"      # PEM, mode 0600\n\nWith [tls] hubs use url = \"wss://HOST:9800\" under [relay] in their federation.toml (with\nca_file = \"…\" for a self-signed or private-CA certificate). Without [tls] the server speaks\nplain ws://: on loopback only, unless --behind-tls-proxy (a TLS proxy terminates wss://).\nThe server only carries the hubs' encrypted Noise links; see docs/federation.md, \"Relay server\"."
)]
pub struct RelayServerArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port and prints it).
    #[arg(long, value_name = "ADDR", required_unless_present = "new_token")]
    listen: Option<SocketAddr>,
    /// The relay-server config: one [[hub]] with hub_id and token per hub, and [tls] with
    /// cert_file and key_file to serve wss://.
    #[arg(long, value_name = "FILE", required_unless_present = "new_token")]
    config: Option<PathBuf>,
    /// Serve plain ws:// on a non-loopback address: a TLS proxy in front of this server
    /// terminates the hubs' wss:// (without [tls] in the config, only loopback is served).
    #[arg(long)]
    behind_tls_proxy: bool,
    /// Print a fresh random token (64 hex digits) for a [[hub]] entry and exit.
    #[arg(long, conflicts_with_all = ["listen", "config", "behind_tls_proxy"])]
    new_token: bool,
}

/// Runs `relay relay-server …` until SIGTERM or ctrl-c.
///
/// # Errors
/// A config that cannot be used, an address that cannot be bound.
pub fn run(args: RelayServerArgs) -> anyhow::Result<ExitCode> {
    if args.new_token {
        println!("{}", relay_server::new_token().context("making a token")?);
        return Ok(ExitCode::Success);
    }
    let (Some(listen), Some(config_path)) = (args.listen, args.config) else {
        anyhow::bail!("give --listen ADDR and --config FILE (or --new-token)");
    };
    let config = relay_server::load_config(&config_path)?;
    let serving = match (&config.tls, args.behind_tls_proxy) {
        (Some(_), true) => anyhow::bail!(
            "--behind-tls-proxy is for a server without [tls]; {} has [tls], so this server \
             terminates TLS itself: drop the flag (or the [tls] section)",
            config_path.display()
        ),
        (Some(tls), false) => format!("wss:// with {}", tls.cert_file.display()),
        (None, true) => "plain ws:// behind a TLS proxy".to_owned(),
        (None, false) if !listen.ip().is_loopback() => anyhow::bail!(
            "--listen {listen}: {} has no [tls], and hubs accept plain ws:// to loopback only; \
             add [tls] with cert_file and key_file, listen on 127.0.0.1, or pass \
             --behind-tls-proxy if a TLS proxy in front terminates wss://",
            config_path.display()
        ),
        (None, false) => "plain ws://, loopback only".to_owned(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Installed before the startup line, so a SIGTERM right after it stops cleanly.
        let signals = Signals::install()?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}; is the port in use?"))?;
        let bound = listener.local_addr()?;
        eprintln!(
            "relay relay-server: listening on {bound} for {} hubs (from {}; {serving}); stop with ctrl-c or SIGTERM",
            config.hubs.len(),
            config_path.display()
        );
        relay_server::serve(listener, config, signals.wait()).await?;
        eprintln!("relay relay-server: stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::Success)
}

/// SIGTERM and SIGINT (ctrl-c), caught from [`Signals::install`] on.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind| signal(kind).context("cannot install the SIGTERM and SIGINT handlers");
        Ok(Signals {
            terminate: install(SignalKind::terminate())?,
            interrupt: install(SignalKind::interrupt())?,
        })
    }

    /// Completes on the first of the two signals.
    async fn wait(mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}
