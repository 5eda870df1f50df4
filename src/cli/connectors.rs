//! `receive-connector` commands (PRODUCT §3, §4).

use anyhow::Result;
use clap::{Args, Subcommand};

use super::output::{Table, details, done, json, list, yes_no};
use crate::receive::connector::{self, ConnectorInput, ReceiveConnector};
use crate::store::Store;

fn parse_bool(s: &str) -> Result<bool, String> {
    super::objects::parse_bool(s)
}

#[derive(Debug, Args, Default)]
pub struct ReceiveOptions {
    /// Local IP:PORT to listen on (repeat, or comma-separate).
    #[arg(long = "binding")]
    bindings: Vec<String>,
    /// Remote IPs served: CIDR, a-b range or single IP (repeat; default: all).
    #[arg(long = "remote-ip")]
    remote_ips: Vec<String>,
    /// internet, client, internal, partner or custom (pre-fills the rest on `new`).
    #[arg(long)]
    usage: Option<String>,
    /// anonymous, users, partners, servers (comma-separated).
    #[arg(long)]
    permission_groups: Option<String>,
    /// tls, basic, basic-require-tls, externally-secured (comma-separated).
    #[arg(long)]
    auth: Option<String>,
    /// Let anonymous clients relay to any domain (only with a narrow --remote-ip!).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool)]
    anonymous_relay: Option<bool>,
    /// Refuse mail before STARTTLS.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool)]
    require_tls: Option<bool>,
    /// TLS from the first byte (port 465 style).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool)]
    implicit_tls: Option<bool>,
    /// Name in the banner, EHLO and Received header (default: the server hostname).
    #[arg(long)]
    fqdn: Option<String>,
    /// Text after the name in the 220 greeting.
    #[arg(long)]
    banner: Option<String>,
    #[arg(long)]
    max_message_size_mb: Option<u64>,
    #[arg(long)]
    max_recipients: Option<u32>,
    #[arg(long)]
    max_connections: Option<u32>,
    #[arg(long)]
    max_connections_per_ip: Option<u32>,
    /// Seconds a whole connection may last.
    #[arg(long)]
    connection_timeout: Option<u64>,
    /// Seconds to wait for a command.
    #[arg(long)]
    command_timeout: Option<u64>,
    #[arg(long)]
    max_bad_commands: Option<u32>,
    #[arg(long)]
    max_auth_failures: Option<u32>,
    /// none or verbose.
    #[arg(long)]
    protocol_logging: Option<String>,
}

impl ReceiveOptions {
    fn into_input(self, name: Option<String>) -> ConnectorInput {
        let text = |v: Option<String>| {
            v.map(|s| {
                if s.eq_ignore_ascii_case("none") || s.is_empty() {
                    None
                } else {
                    Some(s)
                }
            })
        };
        ConnectorInput {
            name,
            usage: self.usage,
            bindings: (!self.bindings.is_empty()).then_some(self.bindings),
            remote_ranges: (!self.remote_ips.is_empty()).then_some(self.remote_ips),
            fqdn: text(self.fqdn),
            banner: text(self.banner),
            auth_mechanisms: self.auth.map(|a| vec![a]),
            permission_groups: self.permission_groups.map(|g| vec![g]),
            anonymous_relay: self.anonymous_relay,
            require_tls: self.require_tls,
            implicit_tls: self.implicit_tls,
            max_message_size_mb: self.max_message_size_mb,
            max_recipients: self.max_recipients,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            connection_timeout_secs: self.connection_timeout,
            command_timeout_secs: self.command_timeout,
            max_bad_commands: self.max_bad_commands,
            max_auth_failures: self.max_auth_failures,
            protocol_logging: self.protocol_logging,
            enabled: None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ReceiveConnectorCmd {
    /// Create a receive connector.
    New {
        #[arg(long)]
        name: String,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        options: ReceiveOptions,
    },
    List,
    Show {
        name: String,
    },
    /// Change a connector; lists given here replace the stored ones.
    Set {
        name: String,
        #[arg(long = "new-name")]
        new_name: Option<String>,
        #[command(flatten)]
        options: ReceiveOptions,
    },
    Enable {
        name: String,
    },
    Disable {
        name: String,
    },
    Remove {
        name: String,
    },
}

fn show_text(c: &ReceiveConnector) -> String {
    let mb = |b: u64| format!("{} MB", b / connector::MB);
    details(&[
        ("Name", c.name.clone()),
        ("Enabled", yes_no(c.enabled)),
        ("Usage", c.usage.as_str().into()),
        ("Bindings", list(&c.bindings)),
        ("Remote IP ranges", list(&c.remote_ranges)),
        (
            "FQDN",
            c.fqdn.clone().unwrap_or_else(|| "(server hostname)".into()),
        ),
        (
            "Banner",
            c.banner.clone().unwrap_or_else(|| "(default)".into()),
        ),
        (
            "Authentication",
            list(
                &c.auth_mechanisms
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>(),
            ),
        ),
        (
            "Permission groups",
            list(
                &c.permission_groups
                    .iter()
                    .map(|g| g.as_str())
                    .collect::<Vec<_>>(),
            ),
        ),
        ("Anonymous relay", yes_no(c.anonymous_relay)),
        ("Require TLS", yes_no(c.require_tls)),
        ("Implicit TLS", yes_no(c.implicit_tls)),
        ("Max message size", mb(c.max_message_size)),
        ("Max recipients", c.max_recipients.to_string()),
        ("Max connections", c.max_connections.to_string()),
        (
            "Max connections per IP",
            c.max_connections_per_ip.to_string(),
        ),
        (
            "Connection timeout",
            format!("{} s", c.connection_timeout_secs),
        ),
        ("Command timeout", format!("{} s", c.command_timeout_secs)),
        ("Max bad commands", c.max_bad_commands.to_string()),
        ("Max AUTH failures", c.max_auth_failures.to_string()),
        ("Protocol logging", c.protocol_logging.as_str().into()),
    ])
    .trim_end()
    .to_string()
}

pub async fn receive(store: &Store, cmd: ReceiveConnectorCmd, as_json: bool) -> Result<String> {
    match cmd {
        ReceiveConnectorCmd::New {
            name,
            disabled,
            options,
        } => {
            let mut input = options.into_input(Some(name));
            input.enabled = Some(!disabled);
            let c = connector::create(store, input).await?;
            done(
                as_json,
                &c,
                format!(
                    "receive connector {} created on {}",
                    c.name,
                    list(&c.bindings)
                ),
            )
        }
        ReceiveConnectorCmd::List => {
            let all = connector::list(store).await?;
            if as_json {
                return json(&all);
            }
            let mut t = Table::new(&[
                "NAME",
                "ENABLED",
                "USAGE",
                "BINDINGS",
                "REMOTE IP RANGES",
                "GROUPS",
                "AUTH",
            ]);
            for c in &all {
                t.row(vec![
                    c.name.clone(),
                    yes_no(c.enabled),
                    c.usage.as_str().into(),
                    list(&c.bindings),
                    list(&c.remote_ranges),
                    list(
                        &c.permission_groups
                            .iter()
                            .map(|g| g.as_str())
                            .collect::<Vec<_>>(),
                    ),
                    list(
                        &c.auth_mechanisms
                            .iter()
                            .map(|a| a.as_str())
                            .collect::<Vec<_>>(),
                    ),
                ]);
            }
            Ok(t.render())
        }
        ReceiveConnectorCmd::Show { name } => {
            let all = connector::list(store).await?;
            let c = connector::find(&all, &name)?;
            done(as_json, c, show_text(c))
        }
        ReceiveConnectorCmd::Set {
            name,
            new_name,
            options,
        } => {
            let c = connector::update(store, &name, options.into_input(new_name)).await?;
            done(as_json, &c, format!("receive connector {} updated", c.name))
        }
        ReceiveConnectorCmd::Enable { name } => toggle(store, &name, true, as_json).await,
        ReceiveConnectorCmd::Disable { name } => toggle(store, &name, false, as_json).await,
        ReceiveConnectorCmd::Remove { name } => {
            let c = connector::remove(store, &name).await?;
            done(as_json, &c, format!("receive connector {} removed", c.name))
        }
    }
}

async fn toggle(store: &Store, name: &str, enabled: bool, as_json: bool) -> Result<String> {
    let input = ConnectorInput {
        enabled: Some(enabled),
        ..Default::default()
    };
    let c = connector::update(store, name, input).await?;
    let word = if enabled { "enabled" } else { "disabled" };
    done(as_json, &c, format!("receive connector {} {word}", c.name))
}
