//! The `relay` binary: parses the command line and hands over to [`relay::cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = relay::cli::Cli::parse();
    if !relay::cli::logs_to_data_dir(&cli) {
        init_stderr_logging();
    }
    relay::cli::run(cli).into()
}

fn init_stderr_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RELAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
}
