//! The command line (PRODUCT §3): `bridgehead [--config FILE] [--json] <command>`.
//! Object commands mirror the Exchange Management Shell and call the same
//! `directory/` functions as the API and the console; no validation lives here.
//!
//! Exit codes: 0 success, 1 failure (one line on stderr), 2 usage error.

mod api_tokens;
mod connectors;
mod objects;
pub mod output;
mod queue;
mod send_connectors;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "bridgehead",
    version,
    about = "Bridgehead mail server: SMTP receive and send connectors, queue, console"
)]
pub struct Cli {
    /// Bootstrap configuration file (default: $BRIDGEHEAD_CONFIG, then ./bridgehead.toml if present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Accepted domains: the domains this organization receives mail for.
    #[command(subcommand)]
    AcceptedDomain(objects::AcceptedDomainCmd),
    /// Mailboxes: local recipients with a Maildir and (optionally) a password.
    #[command(subcommand)]
    Mailbox(objects::MailboxCmd),
    /// Distribution groups.
    #[command(subcommand)]
    Group(objects::GroupCmd),
    /// Mail contacts: names in the organization for external addresses.
    #[command(subcommand)]
    Contact(objects::ContactCmd),
    /// E-mail address policies: templates that stamp addresses onto mailboxes.
    #[command(subcommand)]
    AddressPolicy(objects::PolicyCmd),
    /// Remote domains: outbound options per destination domain.
    #[command(subcommand)]
    RemoteDomain(objects::RemoteDomainCmd),
    /// Receive connectors: SMTP listeners and who may use them.
    #[command(subcommand)]
    ReceiveConnector(connectors::ReceiveConnectorCmd),
    /// Send connectors: which remote domains go out how (smart hosts or DNS MX).
    #[command(subcommand)]
    SendConnector(send_connectors::SendConnectorCmd),
    /// Queues (Queue Viewer): list, retry, suspend, resume.
    #[command(subcommand)]
    Queue(queue::QueueCmd),
    /// Queued messages: show, suspend, resume, remove, export.
    #[command(subcommand)]
    Message(queue::MessageCmd),
    /// Message tracking: search events by sender, recipient, Message-ID, time.
    Track(queue::TrackArgs),
    /// Server properties: retry policy, NDR copy address, tracking retention.
    #[command(subcommand)]
    Server(queue::ServerCmd),
    /// API tokens for the JSON API under /api/v1.
    #[command(subcommand)]
    ApiToken(api_tokens::ApiTokenCmd),
}

/// Parses the arguments, runs the command, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    crate::app::private_umask();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

fn run(cli: Cli) -> Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    let serving = matches!(cli.command, Command::Serve);
    init_logging(&config, serving);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        if serving {
            return crate::app::serve(config).await;
        }
        let store = crate::app::open_store(&config).await?;
        let out = match cli.command {
            Command::Queue(c) => queue::queue(&store, c, cli.json).await,
            Command::Message(c) => queue::message(&store, &config, c, cli.json).await,
            Command::Track(a) => queue::track(&store, a, cli.json).await,
            Command::Server(c) => queue::server(&store, c, cli.json).await,
            Command::ApiToken(c) => api_tokens::run(&store, c, cli.json).await,
            other => objects::run(&store, other, cli.json).await,
        };
        store.close().await;
        print!("{}", out?);
        Ok(())
    })
}

/// Logs go to stderr. Object commands log only warnings, so their stdout stays clean.
fn init_logging(config: &Config, serving: bool) {
    let level = if serving {
        config.log.level.as_str()
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        // When stderr cannot be written (its file is on a full disk), drop the
        // line: the default fallback eprintln!s, which panics and would take the
        // SMTP session or queue worker that logged with it.
        .log_internal_errors(false);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Reads a password from the first line of standard input (`--password-stdin`).
pub fn read_password_stdin() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    anyhow::ensure!(!pw.is_empty(), "no password on standard input");
    Ok(pw)
}
