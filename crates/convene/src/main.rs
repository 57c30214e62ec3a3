//! The `convene` binary: loads the configuration and wires the roles together.

mod api;
mod config;
mod http;
mod ops;
mod serve;
mod token;
mod user;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use config::Config;

/// Self-hosted video conferencing: XMPP server, conference focus, media bridge and web
/// client in one process. With no arguments it runs every role with embedded defaults.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file; flags override it.
    #[arg(long, short, global = true, env = "CONVENE_CONFIG")]
    config: Option<PathBuf>,
    /// XMPP domain (default `localhost`).
    #[arg(long, global = true)]
    domain: Option<String>,
    /// Directory for accounts and generated certificates (default `./data`).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// HTTP listen address (default `0.0.0.0:8080`).
    #[arg(long, global = true)]
    http_listen: Option<SocketAddr>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run every role (the default).
    Run,
    /// Manage XMPP accounts (like `prosodyctl register`).
    User {
        #[command(subcommand)]
        action: user::UserAction,
    },
    /// Print a Jitsi token (HS256, signed with `[auth.token] app_secret`) for a room and
    /// a user: open `http://HOST/<room>?jwt=<token>`.
    Token(token::TokenArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(domain) = cli.domain {
        config.domain = domain;
    }
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    if let Some(addr) = cli.http_listen {
        config.http_listen = addr;
    }
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            let runtime = tokio::runtime::Runtime::new()?;
            let served = runtime.block_on(serve::run(config));
            // A task still blocked (a hung role, a blocking read) must not hold up the exit.
            runtime.shutdown_timeout(Duration::from_secs(1));
            served
        }
        Command::User { action } => user::run(&config, action),
        Command::Token(args) => token::run(&config, args),
    }
}
