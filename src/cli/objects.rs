//! Organization object commands: accepted-domain, mailbox, group, contact,
//! address-policy, remote-domain. Each returns the text to print.

use anyhow::Result;
use clap::{Args, Subcommand};

use super::Command;
use super::output::{Table, details, done, json, list, yes_no};
use crate::directory::{
    self, Directory, domains, policies,
    recipients::{
        self, ContactUpdate, GroupUpdate, MailboxUpdate, NewContact, NewGroup, NewMailbox,
    },
    remote_domains::{self, RemoteDomainInput},
};
use crate::store::Store;

pub async fn run(store: &Store, command: Command, as_json: bool) -> Result<String> {
    match command {
        Command::Serve => anyhow::bail!("`serve` is not an object command"),
        Command::AcceptedDomain(c) => accepted_domain(store, c, as_json).await,
        Command::Mailbox(c) => mailbox(store, c, as_json).await,
        Command::Group(c) => group(store, c, as_json).await,
        Command::Contact(c) => contact(store, c, as_json).await,
        Command::AddressPolicy(c) => policy(store, c, as_json).await,
        Command::RemoteDomain(c) => remote_domain(store, c, as_json).await,
        Command::ReceiveConnector(c) => super::connectors::receive(store, c, as_json).await,
        Command::SendConnector(c) => super::send_connectors::send(store, c, as_json).await,
        Command::Queue(_)
        | Command::Message(_)
        | Command::Track(_)
        | Command::Server(_)
        | Command::ApiToken(_) => {
            anyhow::bail!("not an organization command")
        }
    }
}

/// `true`/`false` (also yes/no, on/off) for options that set a flag either way.
pub(super) fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("expected true or false, got `{s}`")),
    }
}

/// A number, or `none`/`unlimited` for "no limit" (a newtype, because clap reads
/// `Option<Option<T>>` as "option with an optional value").
#[derive(Debug, Clone, Copy)]
pub struct Limit(Option<i64>);

fn parse_optional_number(s: &str) -> Result<Limit, String> {
    match s.to_ascii_lowercase().as_str() {
        "none" | "unlimited" => Ok(Limit(None)),
        n => n
            .parse()
            .map(|v| Limit(Some(v)))
            .map_err(|_| format!("expected a number or `none`, got `{s}`")),
    }
}

// ------------------------------------------------------------ accepted-domain

#[derive(Debug, Subcommand)]
pub enum AcceptedDomainCmd {
    /// Add an accepted domain (`example.com`, or `*.example.com` for it and its subdomains).
    New {
        name: String,
        /// authoritative (default), internal-relay or external-relay.
        #[arg(long = "type", default_value = "authoritative")]
        domain_type: String,
        /// Make this the default domain.
        #[arg(long)]
        default: bool,
    },
    List,
    Show {
        name: String,
    },
    /// Change the type or the default flag.
    Set {
        name: String,
        #[arg(long = "type")]
        domain_type: Option<String>,
        #[arg(long, value_parser = parse_bool)]
        default: Option<bool>,
    },
    Remove {
        name: String,
    },
}

async fn accepted_domain(store: &Store, cmd: AcceptedDomainCmd, as_json: bool) -> Result<String> {
    match cmd {
        AcceptedDomainCmd::New {
            name,
            domain_type,
            default,
        } => {
            let d =
                domains::create(store, &name, domains::parse_type(&domain_type)?, default).await?;
            done(
                as_json,
                &d,
                format!(
                    "accepted domain {} added ({})",
                    d.name,
                    d.domain_type.as_str()
                ),
            )
        }
        AcceptedDomainCmd::List => {
            let dir = Directory::load(store).await?;
            if as_json {
                return json(dir.accepted_domains());
            }
            let mut t = Table::new(&["NAME", "TYPE", "DEFAULT"]);
            for d in dir.accepted_domains() {
                t.row(vec![
                    d.name.clone(),
                    d.domain_type.as_str().into(),
                    yes_no(d.is_default),
                ]);
            }
            Ok(t.render())
        }
        AcceptedDomainCmd::Show { name } => {
            let dir = Directory::load(store).await?;
            let pattern = domains::parse_name(&name)?.to_string();
            let d = dir
                .accepted_domains()
                .iter()
                .find(|d| d.name == pattern)
                .ok_or_else(|| {
                    directory::Error::NotFound(format!("no accepted domain {pattern}"))
                })?;
            done(
                as_json,
                d,
                details(&[
                    ("Name", d.name.clone()),
                    ("Type", d.domain_type.as_str().into()),
                    ("Default", yes_no(d.is_default)),
                ])
                .trim_end()
                .to_string(),
            )
        }
        AcceptedDomainCmd::Set {
            name,
            domain_type,
            default,
        } => {
            let t = domain_type
                .as_deref()
                .map(domains::parse_type)
                .transpose()?;
            let d = domains::update(store, &name, t, default).await?;
            done(as_json, &d, format!("accepted domain {} updated", d.name))
        }
        AcceptedDomainCmd::Remove { name } => {
            let d = domains::remove(store, &name).await?;
            done(as_json, &d, format!("accepted domain {} removed", d.name))
        }
    }
}

// ------------------------------------------------------------ mailbox

#[derive(Debug, Args)]
pub struct MailboxFields {
    /// Given name (used by address policies as %g).
    #[arg(long)]
    given_name: Option<String>,
    /// Surname (%s).
    #[arg(long)]
    surname: Option<String>,
    /// Initials (%i).
    #[arg(long)]
    initials: Option<String>,
    /// Alias (%m); default: the local part of the address.
    #[arg(long)]
    alias: Option<String>,
    /// Read the password (for SMTP AUTH) from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum MailboxCmd {
    /// Create a mailbox.
    New {
        address: String,
        /// Display name, e.g. "Alice Smith".
        #[arg(long)]
        name: String,
        #[command(flatten)]
        fields: MailboxFields,
        /// Quota in MB (default: unlimited).
        #[arg(long)]
        quota_mb: Option<i64>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
    },
    List,
    Show {
        address: String,
    },
    /// Change a mailbox.
    Set {
        address: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        fields: MailboxFields,
        /// Remove the password: the mailbox can no longer authenticate.
        #[arg(long, conflicts_with = "password_stdin")]
        clear_password: bool,
        /// Quota in MB, or `none`.
        #[arg(long, value_parser = parse_optional_number)]
        quota_mb: Option<Limit>,
        #[arg(long, value_parser = parse_bool)]
        enabled: Option<bool>,
        /// Add a proxy (secondary) address.
        #[arg(long = "add-address")]
        add_addresses: Vec<String>,
        /// Remove a proxy address.
        #[arg(long = "remove-address")]
        remove_addresses: Vec<String>,
        /// Make this address (new or existing) the primary one.
        #[arg(long)]
        primary_address: Option<String>,
    },
    Remove {
        address: String,
    },
}

fn mailbox_details(m: &directory::Mailbox) -> String {
    details(&[
        ("Address", m.primary_address.to_string()),
        ("Proxy addresses", list(&m.proxy_addresses)),
        ("Display name", m.display_name.clone()),
        ("Given name", m.given_name.clone()),
        ("Surname", m.surname.clone()),
        ("Initials", m.initials.clone()),
        ("Alias", m.alias.clone()),
        (
            "Quota",
            m.quota_mb.map_or("unlimited".into(), |q| format!("{q} MB")),
        ),
        ("Enabled", yes_no(m.enabled)),
        ("Password set", yes_no(m.has_password())),
    ])
    .trim_end()
    .to_string()
}

async fn mailbox(store: &Store, cmd: MailboxCmd, as_json: bool) -> Result<String> {
    match cmd {
        MailboxCmd::New {
            address,
            name,
            fields,
            quota_mb,
            disabled,
        } => {
            let password = fields
                .password_stdin
                .then(super::read_password_stdin)
                .transpose()?;
            let m = recipients::create_mailbox(
                store,
                NewMailbox {
                    address,
                    display_name: name,
                    given_name: fields.given_name,
                    surname: fields.surname,
                    initials: fields.initials,
                    alias: fields.alias,
                    password,
                    quota_mb,
                    disabled,
                },
            )
            .await?;
            let mut text = format!("mailbox {} created", m.primary_address);
            if !m.proxy_addresses.is_empty() {
                text += &format!(" (policy addresses: {})", list(&m.proxy_addresses));
            }
            done(as_json, &m, text)
        }
        MailboxCmd::List => {
            let dir = Directory::load(store).await?;
            if as_json {
                return json(dir.mailboxes());
            }
            let mut t = Table::new(&[
                "ADDRESS",
                "DISPLAY NAME",
                "QUOTA",
                "ENABLED",
                "PROXY ADDRESSES",
            ]);
            for m in dir.mailboxes() {
                t.row(vec![
                    m.primary_address.to_string(),
                    m.display_name.clone(),
                    m.quota_mb.map_or("unlimited".into(), |q| format!("{q} MB")),
                    yes_no(m.enabled),
                    list(&m.proxy_addresses),
                ]);
            }
            Ok(t.render())
        }
        MailboxCmd::Show { address } => {
            let dir = Directory::load(store).await?;
            let m = recipients::find_mailbox(&dir, &address)?;
            done(as_json, m, mailbox_details(m))
        }
        MailboxCmd::Set {
            address,
            name,
            fields,
            clear_password,
            quota_mb,
            enabled,
            add_addresses,
            remove_addresses,
            primary_address,
        } => {
            let password = if clear_password {
                Some(None)
            } else if fields.password_stdin {
                Some(Some(super::read_password_stdin()?))
            } else {
                None
            };
            let m = recipients::update_mailbox(
                store,
                &address,
                MailboxUpdate {
                    display_name: name,
                    given_name: fields.given_name,
                    surname: fields.surname,
                    initials: fields.initials,
                    alias: fields.alias,
                    quota_mb: quota_mb.map(|l| l.0),
                    enabled,
                    password,
                    add_addresses,
                    remove_addresses,
                    primary_address,
                },
            )
            .await?;
            done(
                as_json,
                &m,
                format!("mailbox {} updated", m.primary_address),
            )
        }
        MailboxCmd::Remove { address } => {
            let m = recipients::remove_mailbox(store, &address).await?;
            done(
                as_json,
                &m,
                format!("mailbox {} removed", m.primary_address),
            )
        }
    }
}

// ------------------------------------------------------------ group

#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// Create a distribution group.
    New {
        address: String,
        #[arg(long)]
        name: Option<String>,
        /// A member: any address of a mailbox, group or contact (or a contact's name).
        #[arg(long = "member")]
        members: Vec<String>,
        /// Accept mail only from authenticated senders.
        #[arg(long)]
        only_authenticated_senders: bool,
        /// Accept mail only from these senders.
        #[arg(long = "accept-from")]
        accept_from: Vec<String>,
        /// Refuse mail from these senders.
        #[arg(long = "reject-from")]
        reject_from: Vec<String>,
    },
    List,
    Show {
        address: String,
    },
    Set {
        address: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long = "add-member")]
        add_members: Vec<String>,
        #[arg(long = "remove-member")]
        remove_members: Vec<String>,
        #[arg(long, value_parser = parse_bool)]
        only_authenticated_senders: Option<bool>,
        #[arg(long = "add-accept-from")]
        add_accept_from: Vec<String>,
        #[arg(long = "remove-accept-from")]
        remove_accept_from: Vec<String>,
        #[arg(long = "add-reject-from")]
        add_reject_from: Vec<String>,
        #[arg(long = "remove-reject-from")]
        remove_reject_from: Vec<String>,
        #[arg(long = "add-address")]
        add_addresses: Vec<String>,
        #[arg(long = "remove-address")]
        remove_addresses: Vec<String>,
        #[arg(long)]
        primary_address: Option<String>,
    },
    Remove {
        address: String,
    },
}

async fn group(store: &Store, cmd: GroupCmd, as_json: bool) -> Result<String> {
    let text_of = |dir: &Directory, g: &directory::DistributionGroup| {
        let v = recipients::group_view(dir, g);
        details(&[
            ("Address", g.primary_address.to_string()),
            ("Proxy addresses", list(&g.proxy_addresses)),
            ("Display name", g.display_name.clone()),
            ("Members", list(&v.member_addresses)),
            ("Only authenticated senders", yes_no(g.only_authenticated)),
            ("Accept from", list(&g.accept_from)),
            ("Reject from", list(&g.reject_from)),
        ])
        .trim_end()
        .to_string()
    };
    let show = |dir: &Directory, g: &directory::DistributionGroup, text: String| {
        done(as_json, &recipients::group_view(dir, g), text)
    };
    match cmd {
        GroupCmd::New {
            address,
            name,
            members,
            only_authenticated_senders,
            accept_from,
            reject_from,
        } => {
            let g = recipients::create_group(
                store,
                NewGroup {
                    address,
                    display_name: name,
                    members,
                    only_authenticated: only_authenticated_senders,
                    accept_from,
                    reject_from,
                },
            )
            .await?;
            let dir = Directory::load(store).await?;
            show(
                &dir,
                &g,
                format!(
                    "group {} created with {} member(s)",
                    g.primary_address,
                    g.members.len()
                ),
            )
        }
        GroupCmd::List => {
            let dir = Directory::load(store).await?;
            if as_json {
                let views: Vec<_> = dir
                    .groups()
                    .iter()
                    .map(|g| recipients::group_view(&dir, g))
                    .collect();
                return json(&views);
            }
            let mut t = Table::new(&["ADDRESS", "DISPLAY NAME", "MEMBERS", "AUTHENTICATED ONLY"]);
            for g in dir.groups() {
                t.row(vec![
                    g.primary_address.to_string(),
                    g.display_name.clone(),
                    g.members.len().to_string(),
                    yes_no(g.only_authenticated),
                ]);
            }
            Ok(t.render())
        }
        GroupCmd::Show { address } => {
            let dir = Directory::load(store).await?;
            let g = recipients::find_group(&dir, &address)?;
            show(&dir, g, text_of(&dir, g))
        }
        GroupCmd::Set {
            address,
            name,
            add_members,
            remove_members,
            only_authenticated_senders,
            add_accept_from,
            remove_accept_from,
            add_reject_from,
            remove_reject_from,
            add_addresses,
            remove_addresses,
            primary_address,
        } => {
            let g = recipients::update_group(
                store,
                &address,
                GroupUpdate {
                    display_name: name,
                    add_members,
                    remove_members,
                    only_authenticated: only_authenticated_senders,
                    add_accept_from,
                    remove_accept_from,
                    add_reject_from,
                    remove_reject_from,
                    add_addresses,
                    remove_addresses,
                    primary_address,
                },
            )
            .await?;
            let dir = Directory::load(store).await?;
            show(&dir, &g, format!("group {} updated", g.primary_address))
        }
        GroupCmd::Remove { address } => {
            let g = recipients::remove_group(store, &address).await?;
            done(as_json, &g, format!("group {} removed", g.primary_address))
        }
    }
}

// ------------------------------------------------------------ contact

#[derive(Debug, Subcommand)]
pub enum ContactCmd {
    /// Create a mail contact.
    New {
        name: String,
        /// Where mail for the contact goes.
        #[arg(long)]
        external_address: String,
        /// An address inside the organization for the contact.
        #[arg(long)]
        address: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
    },
    List,
    Show {
        name: String,
    },
    Set {
        name: String,
        #[arg(long)]
        external_address: Option<String>,
        #[arg(long, conflicts_with = "clear_address")]
        address: Option<String>,
        /// Remove the internal address.
        #[arg(long)]
        clear_address: bool,
        #[arg(long)]
        display_name: Option<String>,
    },
    Remove {
        name: String,
    },
}

async fn contact(store: &Store, cmd: ContactCmd, as_json: bool) -> Result<String> {
    match cmd {
        ContactCmd::New {
            name,
            external_address,
            address,
            display_name,
        } => {
            let c = recipients::create_contact(
                store,
                NewContact {
                    name,
                    display_name,
                    external_address,
                    address,
                },
            )
            .await?;
            done(
                as_json,
                &c,
                format!("contact {} created ({})", c.name, c.external_address),
            )
        }
        ContactCmd::List => {
            let dir = Directory::load(store).await?;
            if as_json {
                return json(dir.contacts());
            }
            let mut t = Table::new(&["NAME", "DISPLAY NAME", "EXTERNAL ADDRESS", "ADDRESS"]);
            for c in dir.contacts() {
                t.row(vec![
                    c.name.clone(),
                    c.display_name.clone(),
                    c.external_address.to_string(),
                    c.address.as_ref().map_or("-".into(), ToString::to_string),
                ]);
            }
            Ok(t.render())
        }
        ContactCmd::Show { name } => {
            let dir = Directory::load(store).await?;
            let c = recipients::find_contact(&dir, &name)?;
            let text = details(&[
                ("Name", c.name.clone()),
                ("Display name", c.display_name.clone()),
                ("External address", c.external_address.to_string()),
                (
                    "Address",
                    c.address.as_ref().map_or("-".into(), ToString::to_string),
                ),
            ]);
            done(as_json, c, text.trim_end().to_string())
        }
        ContactCmd::Set {
            name,
            external_address,
            address,
            clear_address,
            display_name,
        } => {
            let address = if clear_address {
                Some(None)
            } else {
                address.map(Some)
            };
            let c = recipients::update_contact(
                store,
                &name,
                ContactUpdate {
                    display_name,
                    external_address,
                    address,
                },
            )
            .await?;
            done(as_json, &c, format!("contact {} updated", c.name))
        }
        ContactCmd::Remove { name } => {
            let c = recipients::remove_contact(store, &name).await?;
            done(as_json, &c, format!("contact {} removed", c.name))
        }
    }
}

// ------------------------------------------------------------ address-policy

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Create an e-mail address policy.
    New {
        name: String,
        /// Address template, e.g. '%g.%s@example.com' (repeat for several; the first is primary).
        #[arg(long = "template", required = true)]
        templates: Vec<String>,
        /// 1 is the highest; default: below every existing policy.
        #[arg(long)]
        priority: Option<i64>,
        /// Apply only to recipients whose primary address is in this domain (default: all).
        #[arg(long)]
        filter_domain: Option<String>,
        /// Stamp the addresses onto existing mailboxes now.
        #[arg(long)]
        apply: bool,
    },
    List,
    Show {
        name: String,
    },
    Set {
        name: String,
        /// Replace the templates.
        #[arg(long = "template")]
        templates: Vec<String>,
        #[arg(long)]
        priority: Option<i64>,
        /// A domain, or `all`.
        #[arg(long)]
        filter_domain: Option<String>,
    },
    /// Stamp the policy's addresses onto existing mailboxes.
    Apply {
        name: String,
    },
    Remove {
        name: String,
    },
}

fn applied_text(report: &[policies::Stamped]) -> String {
    if report.is_empty() {
        return "no mailbox needed new addresses".into();
    }
    report
        .iter()
        .map(|s| format!("{}: added {}", s.mailbox, list(&s.added)))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn policy(store: &Store, cmd: PolicyCmd, as_json: bool) -> Result<String> {
    match cmd {
        PolicyCmd::New {
            name,
            templates,
            priority,
            filter_domain,
            apply,
        } => {
            let p = policies::create(
                store,
                policies::PolicyInput {
                    name,
                    priority,
                    filter_domain,
                    templates,
                },
            )
            .await?;
            let mut text = format!(
                "e-mail address policy {} created (priority {})",
                p.name, p.priority
            );
            let report = if apply {
                Some(policies::apply(store, &p.name).await?)
            } else {
                None
            };
            if let Some(r) = &report {
                text += &format!("\n{}", applied_text(r));
            }
            done(
                as_json,
                &serde_json::json!({ "policy": p, "applied": report }),
                text,
            )
        }
        PolicyCmd::List => {
            let dir = Directory::load(store).await?;
            if as_json {
                return json(dir.policies());
            }
            let mut t = Table::new(&["PRIORITY", "NAME", "FILTER", "TEMPLATES"]);
            for p in dir.policies() {
                t.row(vec![
                    p.priority.to_string(),
                    p.name.clone(),
                    p.filter_domain
                        .clone()
                        .unwrap_or_else(|| "all recipients".into()),
                    list(&p.templates),
                ]);
            }
            Ok(t.render())
        }
        PolicyCmd::Show { name } => {
            let dir = Directory::load(store).await?;
            let p = policies::find(&dir, &name)?;
            let text = details(&[
                ("Name", p.name.clone()),
                ("Priority", p.priority.to_string()),
                (
                    "Filter",
                    p.filter_domain
                        .clone()
                        .unwrap_or_else(|| "all recipients".into()),
                ),
                ("Templates", list(&p.templates)),
            ]);
            done(as_json, p, text.trim_end().to_string())
        }
        PolicyCmd::Set {
            name,
            templates,
            priority,
            filter_domain,
        } => {
            let p = policies::update(
                store,
                &name,
                policies::PolicyInput {
                    name: name.clone(),
                    priority,
                    filter_domain,
                    templates,
                },
            )
            .await?;
            done(
                as_json,
                &p,
                format!("e-mail address policy {} updated", p.name),
            )
        }
        PolicyCmd::Apply { name } => {
            let report = policies::apply(store, &name).await?;
            done(as_json, &report, applied_text(&report))
        }
        PolicyCmd::Remove { name } => {
            let p = policies::remove(store, &name).await?;
            done(
                as_json,
                &p,
                format!("e-mail address policy {} removed", p.name),
            )
        }
    }
}

// ------------------------------------------------------------ remote-domain

#[derive(Debug, Args)]
pub struct RemoteDomainOptions {
    /// Allow out-of-office replies to this domain.
    #[arg(long, value_parser = parse_bool)]
    out_of_office: Option<bool>,
    /// Allow automatic replies.
    #[arg(long, value_parser = parse_bool)]
    auto_reply: Option<bool>,
    /// Allow automatic forwarding.
    #[arg(long, value_parser = parse_bool)]
    auto_forward: Option<bool>,
    /// Allow delivery reports.
    #[arg(long, value_parser = parse_bool)]
    delivery_reports: Option<bool>,
    /// Allow non-delivery reports.
    #[arg(long, value_parser = parse_bool)]
    ndr: Option<bool>,
    /// Wrap lines at this length (40–998), or `none`.
    #[arg(long, value_parser = parse_optional_number)]
    line_length: Option<Limit>,
    /// Character set for outgoing text, or `none`.
    #[arg(long)]
    charset: Option<String>,
}

impl RemoteDomainOptions {
    fn into_input(self, name: Option<String>, domain: Option<String>) -> RemoteDomainInput {
        RemoteDomainInput {
            name,
            domain,
            allow_out_of_office: self.out_of_office,
            allow_auto_reply: self.auto_reply,
            allow_auto_forward: self.auto_forward,
            allow_delivery_reports: self.delivery_reports,
            allow_ndr: self.ndr,
            line_length: self.line_length.map(|l| l.0),
            charset: self.charset.map(|c| {
                if c.eq_ignore_ascii_case("none") {
                    None
                } else {
                    Some(c)
                }
            }),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum RemoteDomainCmd {
    /// Add a remote domain: `*`, `example.com` or `*.example.com`.
    New {
        domain: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        options: RemoteDomainOptions,
    },
    List,
    Show {
        name: String,
    },
    /// Change a remote domain (named by its name or its domain).
    Set {
        name: String,
        #[arg(long = "new-name")]
        new_name: Option<String>,
        #[arg(long)]
        domain: Option<String>,
        #[command(flatten)]
        options: RemoteDomainOptions,
    },
    Remove {
        name: String,
    },
}

fn remote_domain_text(d: &directory::RemoteDomain) -> String {
    details(&[
        ("Name", d.name.clone()),
        ("Domain", d.domain.clone()),
        ("Out of office", yes_no(d.allow_out_of_office)),
        ("Automatic replies", yes_no(d.allow_auto_reply)),
        ("Automatic forwards", yes_no(d.allow_auto_forward)),
        ("Delivery reports", yes_no(d.allow_delivery_reports)),
        ("Non-delivery reports", yes_no(d.allow_ndr)),
        (
            "Line length",
            d.line_length
                .map_or("no wrapping".into(), |n| n.to_string()),
        ),
        (
            "Character set",
            d.charset.clone().unwrap_or_else(|| "as sent".into()),
        ),
    ])
    .trim_end()
    .to_string()
}

async fn remote_domain(store: &Store, cmd: RemoteDomainCmd, as_json: bool) -> Result<String> {
    match cmd {
        RemoteDomainCmd::New {
            domain,
            name,
            options,
        } => {
            let d = remote_domains::create(store, &domain, options.into_input(name, None)).await?;
            done(
                as_json,
                &d,
                format!("remote domain {} ({}) added", d.name, d.domain),
            )
        }
        RemoteDomainCmd::List => {
            let dir = Directory::load(store).await?;
            if as_json {
                return json(dir.remote_domains());
            }
            let mut t = Table::new(&[
                "NAME",
                "DOMAIN",
                "OOF",
                "AUTO-REPLY",
                "AUTO-FORWARD",
                "DSN",
                "NDR",
            ]);
            for d in dir.remote_domains() {
                t.row(vec![
                    d.name.clone(),
                    d.domain.clone(),
                    yes_no(d.allow_out_of_office),
                    yes_no(d.allow_auto_reply),
                    yes_no(d.allow_auto_forward),
                    yes_no(d.allow_delivery_reports),
                    yes_no(d.allow_ndr),
                ]);
            }
            Ok(t.render())
        }
        RemoteDomainCmd::Show { name } => {
            let dir = Directory::load(store).await?;
            let d = remote_domains::find(&dir, &name)?;
            done(as_json, d, remote_domain_text(d))
        }
        RemoteDomainCmd::Set {
            name,
            new_name,
            domain,
            options,
        } => {
            let d =
                remote_domains::update(store, &name, options.into_input(new_name, domain)).await?;
            done(as_json, &d, format!("remote domain {} updated", d.name))
        }
        RemoteDomainCmd::Remove { name } => {
            let d = remote_domains::remove(store, &name).await?;
            done(
                as_json,
                &d,
                format!("remote domain {} ({}) removed", d.name, d.domain),
            )
        }
    }
}
