//! `send-connector` commands (PRODUCT §3, §6).

use anyhow::Result;
use clap::{Args, Subcommand};

use super::output::{Table, details, done, json, list, yes_no};
use crate::receive::connector::MB;
use crate::routing::connector::{self, SendConnector, SendConnectorInput};
use crate::store::Store;

fn parse_bool(s: &str) -> Result<bool, String> {
    super::objects::parse_bool(s)
}

#[derive(Debug, Args, Default)]
pub struct SendOptions {
    /// Domains served: `*`, `contoso.com`, `*.contoso.com`, each optionally `;COST`
    /// (1-100, default 1). Repeat or comma-separate; replaces the stored list.
    #[arg(long = "address-space")]
    address_spaces: Vec<String>,
    /// custom, internal, internet or partner (pre-fills defaults on `new`).
    #[arg(long)]
    usage: Option<String>,
    /// Smart host HOST[:PORT] (IPv6 in brackets), tried in order. Repeat or
    /// comma-separate; replaces the stored list and turns DNS routing off.
    #[arg(long = "smart-host")]
    smart_hosts: Vec<String>,
    /// Deliver by DNS MX lookup instead of smart hosts.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool)]
    dns_routing: Option<bool>,
    /// Port for MX hosts and smart hosts without one (default 25).
    #[arg(long)]
    port: Option<u16>,
    /// none, basic, basic-require-tls or externally-secured.
    #[arg(long)]
    auth: Option<String>,
    /// Smart-host user name for basic auth.
    #[arg(long)]
    username: Option<String>,
    /// Read the smart-host password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
    /// Refuse to deliver without TLS.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool)]
    require_tls: Option<bool>,
    /// Verify the remote certificate (chain and name) instead of encrypting without checking.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool)]
    verify_certificate: Option<bool>,
    /// Name sent in HELO/EHLO (default: the server hostname; `none` resets).
    #[arg(long)]
    fqdn: Option<String>,
    /// Send HELO instead of EHLO.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool)]
    force_helo: Option<bool>,
    #[arg(long)]
    max_message_size_mb: Option<u64>,
    /// Connections this connector may open at once.
    #[arg(long)]
    max_connections: Option<u32>,
    /// Connections to one next hop at once.
    #[arg(long)]
    max_per_destination: Option<u32>,
    /// Seconds to wait for a TCP connection.
    #[arg(long)]
    connect_timeout: Option<u64>,
    /// Seconds to wait for each reply.
    #[arg(long)]
    command_timeout: Option<u64>,
    /// none or verbose (logs to data/logs/protocol/send/).
    #[arg(long)]
    protocol_logging: Option<String>,
}

impl SendOptions {
    fn into_input(self, name: Option<String>) -> Result<SendConnectorInput> {
        let password = if self.password_stdin {
            Some(Some(super::read_password_stdin()?))
        } else {
            None
        };
        let reset = |v: Option<String>| {
            v.map(|s| (!s.is_empty() && !s.eq_ignore_ascii_case("none")).then_some(s))
        };
        Ok(SendConnectorInput {
            name,
            usage: self.usage,
            address_spaces: (!self.address_spaces.is_empty()).then_some(self.address_spaces),
            dns_routing: self.dns_routing,
            smart_hosts: (!self.smart_hosts.is_empty()).then_some(self.smart_hosts),
            port: self.port,
            auth: self.auth,
            username: reset(self.username),
            password,
            require_tls: self.require_tls,
            verify_certificate: self.verify_certificate,
            fqdn: reset(self.fqdn),
            force_helo: self.force_helo,
            max_message_size_mb: self.max_message_size_mb,
            max_connections: self.max_connections,
            max_per_destination: self.max_per_destination,
            connect_timeout_secs: self.connect_timeout,
            command_timeout_secs: self.command_timeout,
            protocol_logging: self.protocol_logging,
            enabled: None,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum SendConnectorCmd {
    /// Create a send connector.
    New {
        #[arg(long)]
        name: String,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        options: SendOptions,
    },
    List,
    Show {
        name: String,
    },
    /// Change a connector; lists given here replace the stored ones. Takes effect
    /// on the next connection.
    Set {
        name: String,
        #[arg(long = "new-name")]
        new_name: Option<String>,
        #[command(flatten)]
        options: SendOptions,
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

fn show_text(c: &SendConnector) -> String {
    let credentials = match (&c.username, &c.password) {
        (Some(u), Some(_)) => format!("{u} (password set)"),
        (Some(u), None) => format!("{u} (no password)"),
        _ => "(none)".into(),
    };
    details(&[
        ("Name", c.name.clone()),
        ("Enabled", yes_no(c.enabled)),
        ("Usage", c.usage.as_str().into()),
        ("Address spaces", list(&c.address_spaces)),
        ("Route", c.route_text()),
        ("Port", c.port.to_string()),
        ("Authentication", c.auth.as_str().into()),
        ("Credentials", credentials),
        ("Require TLS", yes_no(c.require_tls)),
        ("Verify certificate", yes_no(c.verify_certificate)),
        (
            "FQDN",
            c.fqdn.clone().unwrap_or_else(|| "(server hostname)".into()),
        ),
        ("Force HELO", yes_no(c.force_helo)),
        (
            "Max message size",
            format!("{} MB", c.max_message_size / MB),
        ),
        ("Max connections", c.max_connections.to_string()),
        ("Max per destination", c.max_per_destination.to_string()),
        ("Connect timeout", format!("{} s", c.connect_timeout_secs)),
        ("Command timeout", format!("{} s", c.command_timeout_secs)),
        ("Protocol logging", c.protocol_logging.as_str().into()),
    ])
    .trim_end()
    .to_string()
}

pub async fn send(store: &Store, cmd: SendConnectorCmd, as_json: bool) -> Result<String> {
    match cmd {
        SendConnectorCmd::New {
            name,
            disabled,
            options,
        } => {
            let mut input = options.into_input(Some(name))?;
            input.enabled = Some(!disabled);
            let c = connector::create(store, input).await?;
            let text = format!(
                "send connector {} created for {} via {}",
                c.name,
                list(&c.address_spaces),
                c.route_text()
            );
            done(as_json, &c, text)
        }
        SendConnectorCmd::List => {
            let all = connector::list(store).await?;
            if as_json {
                return json(&all);
            }
            let mut t = Table::new(&[
                "NAME",
                "ENABLED",
                "USAGE",
                "ADDRESS SPACES",
                "ROUTE",
                "AUTH",
                "TLS",
            ]);
            for c in &all {
                t.row(vec![
                    c.name.clone(),
                    yes_no(c.enabled),
                    c.usage.as_str().into(),
                    list(&c.address_spaces),
                    c.route_text(),
                    c.auth.as_str().into(),
                    if c.require_tls {
                        "required"
                    } else {
                        "opportunistic"
                    }
                    .into(),
                ]);
            }
            Ok(t.render())
        }
        SendConnectorCmd::Show { name } => {
            let all = connector::list(store).await?;
            let c = connector::find(&all, &name)?;
            done(as_json, c, show_text(c))
        }
        SendConnectorCmd::Set {
            name,
            new_name,
            options,
        } => {
            let c = connector::update(store, &name, options.into_input(new_name)?).await?;
            done(as_json, &c, format!("send connector {} updated", c.name))
        }
        SendConnectorCmd::Enable { name } => toggle(store, &name, true, as_json).await,
        SendConnectorCmd::Disable { name } => toggle(store, &name, false, as_json).await,
        SendConnectorCmd::Remove { name } => {
            let c = connector::remove(store, &name).await?;
            done(as_json, &c, format!("send connector {} removed", c.name))
        }
    }
}

async fn toggle(store: &Store, name: &str, enabled: bool, as_json: bool) -> Result<String> {
    let input = SendConnectorInput {
        enabled: Some(enabled),
        ..Default::default()
    };
    let c = connector::update(store, name, input).await?;
    let word = if enabled { "enabled" } else { "disabled" };
    done(as_json, &c, format!("send connector {} {word}", c.name))
}
