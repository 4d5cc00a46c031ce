//! What the shell commands that talk to the hub share: how they connect and register.

use clap::Args;

use super::DataDirArgs;
use crate::client::HubClient;
use crate::hub::spawn::SpawnOptions;
use crate::protocol::{ClientKind, PeerName, RegisterParams, RpcError, WorkingDirectory};

/// Environment variable naming a fixed identity (never suffixed).
pub const RELAY_PEER_ID_ENV: &str = "RELAY_PEER_ID";

/// How a shell command identifies itself to the hub.
#[derive(Clone, Debug, Args)]
pub struct SessionArgs {
    #[command(flatten)]
    pub data_dir: DataDirArgs,
    /// Act as this fixed identity [default: $RELAY_PEER_ID, else a slug of the current directory].
    #[arg(long = "as", env = RELAY_PEER_ID_ENV, value_name = "NAME")]
    pub name: Option<String>,
}

/// A connected and registered session, with the name the hub gave it.
pub struct Connected {
    /// The client.
    pub client: HubClient,
    /// Our name.
    pub name: String,
}

/// Connects to (or starts) the hub and registers.
///
/// # Errors
/// The hub cannot be reached (`hub_unreachable`) or refused the registration.
pub async fn connect(args: &SessionArgs) -> Result<Connected, RpcError> {
    let data_dir = args.data_dir.resolve();
    let client = HubClient::connect(
        &data_dir,
        &SpawnOptions::default(),
        concat!("relay-cli/", env!("CARGO_PKG_VERSION")),
    )
    .await?;
    warn_version_skew(&client);
    let bad = |error: crate::protocol::FieldError| {
        RpcError::new(crate::protocol::ErrorCode::BadArguments, error.to_string())
    };
    let name = args
        .name
        .as_deref()
        .map(PeerName::new)
        .transpose()
        .map_err(bad)?;
    let cwd = std::env::current_dir()
        .map(|cwd| cwd.display().to_string())
        .unwrap_or_else(|_| "/".to_owned());
    let params = RegisterParams {
        delivery: None,
        name,
        session_name: None,
        cwd: WorkingDirectory::new(cwd).map_err(bad)?,
        git_branch: None,
        client: ClientKind::Cli,
    };
    let registered = client.call(params).await?;
    Ok(Connected {
        client,
        name: registered.name,
    })
}

/// Says on stderr when the hub runs another version than this binary.
pub fn warn_version_skew(client: &HubClient) {
    if let Some(skew) = client.version_skew() {
        eprintln!("relay: warning: {skew}");
    }
}

/// Maps a hub error to the exit code: unreachable hub is 4, anything else 1.
pub fn exit_for(error: &RpcError) -> super::exit_code::ExitCode {
    eprintln!("relay: {}: {}", error.code.name(), error.message);
    if error.code == crate::protocol::ErrorCode::HubUnreachable {
        super::exit_code::ExitCode::NoHub
    } else {
        super::exit_code::ExitCode::Failed
    }
}

/// A current-thread runtime for one shell command.
///
/// # Errors
/// The runtime could not be built.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
