//! Typed rows and SQL for the organization tables: accepted domains, mailboxes,
//! distribution groups, mail contacts, their addresses, address policies and
//! remote domains. No policy here: `directory/` validates before it writes.

use serde::Serialize;
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use super::StoreError;
use crate::smtp::address::EmailAddress;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DomainType {
    /// Every recipient is local; unknown ones are refused (5.1.1).
    Authoritative,
    /// Local if the recipient exists, else routed out through a send connector.
    InternalRelay,
    /// Never local: accepted from anyone and always routed out.
    ExternalRelay,
}

impl DomainType {
    pub fn as_str(self) -> &'static str {
        match self {
            DomainType::Authoritative => "authoritative",
            DomainType::InternalRelay => "internal-relay",
            DomainType::ExternalRelay => "external-relay",
        }
    }

    pub fn parse(s: &str) -> Option<DomainType> {
        match s.to_ascii_lowercase().as_str() {
            "authoritative" => Some(DomainType::Authoritative),
            "internal-relay" | "internalrelay" => Some(DomainType::InternalRelay),
            "external-relay" | "externalrelay" => Some(DomainType::ExternalRelay),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AcceptedDomain {
    pub id: i64,
    /// `example.com` or `*.example.com`.
    pub name: String,
    pub domain_type: DomainType,
    pub is_default: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Mailbox {
    pub id: i64,
    pub primary_address: EmailAddress,
    /// Secondary (proxy) addresses.
    pub proxy_addresses: Vec<EmailAddress>,
    pub display_name: String,
    pub given_name: String,
    pub surname: String,
    pub initials: String,
    pub alias: String,
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub quota_mb: Option<i64>,
    pub enabled: bool,
    /// The Maildir folder under `data/mailboxes/`, fixed at creation.
    pub folder: String,
}

impl Mailbox {
    pub fn has_password(&self) -> bool {
        self.password_hash.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum MemberRef {
    Mailbox(i64),
    Contact(i64),
    Group(i64),
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DistributionGroup {
    pub id: i64,
    pub primary_address: EmailAddress,
    pub proxy_addresses: Vec<EmailAddress>,
    pub display_name: String,
    pub members: Vec<MemberRef>,
    pub only_authenticated: bool,
    pub accept_from: Vec<EmailAddress>,
    pub reject_from: Vec<EmailAddress>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MailContact {
    pub id: i64,
    pub name: String,
    pub display_name: String,
    pub external_address: EmailAddress,
    /// The optional address inside the organization that reaches this contact.
    pub address: Option<EmailAddress>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AddressPolicy {
    pub id: i64,
    pub name: String,
    pub priority: i64,
    /// `None`: all recipients; else recipients whose primary address is in this domain.
    pub filter_domain: Option<String>,
    pub templates: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RemoteDomain {
    pub id: i64,
    pub name: String,
    /// `*`, `example.com` or `*.example.com`.
    pub domain: String,
    pub allow_out_of_office: bool,
    pub allow_auto_reply: bool,
    pub allow_auto_forward: bool,
    pub allow_delivery_reports: bool,
    pub allow_ndr: bool,
    pub line_length: Option<i64>,
    pub charset: Option<String>,
}

/// Everything in the organization tables, read in one transaction.
#[derive(Debug, Clone, Default)]
pub struct OrgRows {
    pub version: i64,
    pub accepted_domains: Vec<AcceptedDomain>,
    pub mailboxes: Vec<Mailbox>,
    pub groups: Vec<DistributionGroup>,
    pub contacts: Vec<MailContact>,
    pub policies: Vec<AddressPolicy>,
    pub remote_domains: Vec<RemoteDomain>,
}

/// Who owns an address row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Mailbox(i64),
    Group(i64),
    Contact(i64),
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Sql(sqlx::Error::Decode(
        format!("stored {what} `{value}` is not valid").into(),
    ))
}

fn addr(value: &str) -> Result<EmailAddress, StoreError> {
    EmailAddress::parse(value).map_err(|_| corrupt("address", value))
}

/// Reads the whole organization consistently (one read transaction).
pub async fn load(pool: &SqlitePool) -> Result<OrgRows, StoreError> {
    let mut tx = pool.begin().await?;
    let version: i64 = sqlx::query_scalar("SELECT version FROM org_version WHERE id = 1")
        .fetch_one(&mut *tx)
        .await?;

    let mut accepted_domains = Vec::new();
    for r in
        sqlx::query("SELECT id, name, domain_type, is_default FROM accepted_domains ORDER BY name")
            .fetch_all(&mut *tx)
            .await?
    {
        let t: String = r.get("domain_type");
        accepted_domains.push(AcceptedDomain {
            id: r.get("id"),
            name: r.get("name"),
            domain_type: DomainType::parse(&t).ok_or_else(|| corrupt("domain type", &t))?,
            is_default: r.get("is_default"),
        });
    }

    // All addresses, grouped by owner; primaries first.
    let mut mailbox_addrs: std::collections::HashMap<i64, Vec<(EmailAddress, bool)>> =
        Default::default();
    let mut group_addrs: std::collections::HashMap<i64, Vec<(EmailAddress, bool)>> =
        Default::default();
    let mut contact_addrs: std::collections::HashMap<i64, EmailAddress> = Default::default();
    for r in sqlx::query(
        "SELECT address, is_primary, mailbox_id, group_id, contact_id FROM addresses \
         ORDER BY is_primary DESC, address_key",
    )
    .fetch_all(&mut *tx)
    .await?
    {
        let a = addr(r.get("address"))?;
        let primary: bool = r.get("is_primary");
        if let Some(id) = r.get::<Option<i64>, _>("mailbox_id") {
            mailbox_addrs.entry(id).or_default().push((a, primary));
        } else if let Some(id) = r.get::<Option<i64>, _>("group_id") {
            group_addrs.entry(id).or_default().push((a, primary));
        } else if let Some(id) = r.get::<Option<i64>, _>("contact_id") {
            contact_addrs.insert(id, a);
        }
    }
    let split = |list: Option<Vec<(EmailAddress, bool)>>, what: &str, id: i64| {
        let list = list.unwrap_or_default();
        let primary = list
            .iter()
            .find(|(_, p)| *p)
            .map(|(a, _)| a.clone())
            .ok_or_else(|| corrupt(what, &format!("#{id} without a primary address")))?;
        let proxies = list
            .into_iter()
            .filter(|(_, p)| !p)
            .map(|(a, _)| a)
            .collect();
        Ok::<_, StoreError>((primary, proxies))
    };

    let mut mailboxes = Vec::new();
    for r in sqlx::query(
        "SELECT id, display_name, given_name, surname, initials, alias, password_hash, quota_mb, enabled, folder \
         FROM mailboxes ORDER BY id",
    )
    .fetch_all(&mut *tx)
    .await?
    {
        let id: i64 = r.get("id");
        let (primary_address, proxy_addresses) = split(mailbox_addrs.remove(&id), "mailbox", id)?;
        mailboxes.push(Mailbox {
            id,
            primary_address,
            proxy_addresses,
            display_name: r.get("display_name"),
            given_name: r.get("given_name"),
            surname: r.get("surname"),
            initials: r.get("initials"),
            alias: r.get("alias"),
            password_hash: r.get("password_hash"),
            quota_mb: r.get("quota_mb"),
            enabled: r.get("enabled"),
            folder: r.get("folder"),
        });
    }

    let mut members: std::collections::HashMap<i64, Vec<MemberRef>> = Default::default();
    for r in sqlx::query("SELECT group_id, mailbox_id, contact_id, member_group_id FROM group_members ORDER BY rowid")
        .fetch_all(&mut *tx)
        .await?
    {
        let m = if let Some(id) = r.get::<Option<i64>, _>("mailbox_id") {
            MemberRef::Mailbox(id)
        } else if let Some(id) = r.get::<Option<i64>, _>("contact_id") {
            MemberRef::Contact(id)
        } else {
            MemberRef::Group(r.get("member_group_id"))
        };
        members.entry(r.get("group_id")).or_default().push(m);
    }
    let mut senders: std::collections::HashMap<(i64, String), Vec<EmailAddress>> =
        Default::default();
    for r in
        sqlx::query("SELECT group_id, list, sender FROM group_sender_lists ORDER BY sender_key")
            .fetch_all(&mut *tx)
            .await?
    {
        senders
            .entry((r.get("group_id"), r.get("list")))
            .or_default()
            .push(addr(r.get("sender"))?);
    }
    let mut groups = Vec::new();
    for r in sqlx::query(
        "SELECT id, display_name, only_authenticated FROM distribution_groups ORDER BY id",
    )
    .fetch_all(&mut *tx)
    .await?
    {
        let id: i64 = r.get("id");
        let (primary_address, proxy_addresses) = split(group_addrs.remove(&id), "group", id)?;
        groups.push(DistributionGroup {
            id,
            primary_address,
            proxy_addresses,
            display_name: r.get("display_name"),
            members: members.remove(&id).unwrap_or_default(),
            only_authenticated: r.get("only_authenticated"),
            accept_from: senders.remove(&(id, "accept".into())).unwrap_or_default(),
            reject_from: senders.remove(&(id, "reject".into())).unwrap_or_default(),
        });
    }

    let mut contacts = Vec::new();
    for r in sqlx::query(
        "SELECT id, name, display_name, external_address FROM mail_contacts ORDER BY name",
    )
    .fetch_all(&mut *tx)
    .await?
    {
        let id: i64 = r.get("id");
        contacts.push(MailContact {
            id,
            name: r.get("name"),
            display_name: r.get("display_name"),
            external_address: addr(r.get("external_address"))?,
            address: contact_addrs.remove(&id),
        });
    }

    let mut policies = Vec::new();
    for r in sqlx::query("SELECT id, name, priority, filter_domain, templates FROM address_policies ORDER BY priority, name")
        .fetch_all(&mut *tx)
        .await?
    {
        let t: String = r.get("templates");
        policies.push(AddressPolicy {
            id: r.get("id"),
            name: r.get("name"),
            priority: r.get("priority"),
            filter_domain: r.get("filter_domain"),
            templates: serde_json::from_str(&t).map_err(|_| corrupt("policy templates", &t))?,
        });
    }

    let mut remote_domains = Vec::new();
    for r in sqlx::query(
        "SELECT id, name, domain, allow_out_of_office, allow_auto_reply, allow_auto_forward, \
         allow_delivery_reports, allow_ndr, line_length, charset FROM remote_domains ORDER BY name",
    )
    .fetch_all(&mut *tx)
    .await?
    {
        remote_domains.push(RemoteDomain {
            id: r.get("id"),
            name: r.get("name"),
            domain: r.get("domain"),
            allow_out_of_office: r.get("allow_out_of_office"),
            allow_auto_reply: r.get("allow_auto_reply"),
            allow_auto_forward: r.get("allow_auto_forward"),
            allow_delivery_reports: r.get("allow_delivery_reports"),
            allow_ndr: r.get("allow_ndr"),
            line_length: r.get("line_length"),
            charset: r.get("charset"),
        });
    }
    tx.commit().await?;
    Ok(OrgRows {
        version,
        accepted_domains,
        mailboxes,
        groups,
        contacts,
        policies,
        remote_domains,
    })
}

pub type Tx<'a> = Transaction<'a, Sqlite>;

// ---- accepted domains ----

pub async fn insert_accepted_domain(
    tx: &mut Tx<'_>,
    name: &str,
    domain_type: DomainType,
    is_default: bool,
) -> Result<i64, StoreError> {
    if is_default {
        sqlx::query("UPDATE accepted_domains SET is_default = 0 WHERE is_default = 1")
            .execute(&mut **tx)
            .await?;
    }
    let id = sqlx::query(
        "INSERT INTO accepted_domains (name, domain_type, is_default) VALUES (?, ?, ?)",
    )
    .bind(name)
    .bind(domain_type.as_str())
    .bind(is_default)
    .execute(&mut **tx)
    .await?
    .last_insert_rowid();
    Ok(id)
}

pub async fn update_accepted_domain(
    tx: &mut Tx<'_>,
    id: i64,
    domain_type: DomainType,
    is_default: bool,
) -> Result<(), StoreError> {
    if is_default {
        sqlx::query("UPDATE accepted_domains SET is_default = 0 WHERE is_default = 1 AND id <> ?")
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query("UPDATE accepted_domains SET domain_type = ?, is_default = ? WHERE id = ?")
        .bind(domain_type.as_str())
        .bind(is_default)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn delete_accepted_domain(tx: &mut Tx<'_>, id: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM accepted_domains WHERE id = ?")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

// ---- addresses (shared by mailboxes, groups, contacts) ----

pub async fn insert_address(
    tx: &mut Tx<'_>,
    owner: Owner,
    address: &EmailAddress,
    is_primary: bool,
) -> Result<(), StoreError> {
    let (m, g, c) = match owner {
        Owner::Mailbox(id) => (Some(id), None, None),
        Owner::Group(id) => (None, Some(id), None),
        Owner::Contact(id) => (None, None, Some(id)),
    };
    sqlx::query(
        "INSERT INTO addresses (address_key, address, is_primary, mailbox_id, group_id, contact_id) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(address.key())
    .bind(address.to_string())
    .bind(is_primary)
    .bind(m)
    .bind(g)
    .bind(c)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn delete_address(tx: &mut Tx<'_>, address: &EmailAddress) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM addresses WHERE address_key = ?")
        .bind(address.key())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Makes `address` (already owned by the same object) the primary one.
pub async fn set_primary_address(
    tx: &mut Tx<'_>,
    owner: Owner,
    address: &EmailAddress,
) -> Result<(), StoreError> {
    let (column, id) = match owner {
        Owner::Mailbox(id) => ("mailbox_id", id),
        Owner::Group(id) => ("group_id", id),
        Owner::Contact(id) => ("contact_id", id),
    };
    sqlx::query(&format!(
        "UPDATE addresses SET is_primary = (address_key = ?) WHERE {column} = ?"
    ))
    .bind(address.key())
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

// ---- mailboxes ----

pub struct MailboxFields<'a> {
    pub display_name: &'a str,
    pub given_name: &'a str,
    pub surname: &'a str,
    pub initials: &'a str,
    pub alias: &'a str,
    pub quota_mb: Option<i64>,
    pub enabled: bool,
}

pub async fn insert_mailbox(
    tx: &mut Tx<'_>,
    f: &MailboxFields<'_>,
    password_hash: Option<&str>,
    folder: &str,
) -> Result<i64, StoreError> {
    Ok(sqlx::query(
        "INSERT INTO mailboxes (display_name, given_name, surname, initials, alias, password_hash, quota_mb, \
         enabled, folder) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(f.display_name)
    .bind(f.given_name)
    .bind(f.surname)
    .bind(f.initials)
    .bind(f.alias)
    .bind(password_hash)
    .bind(f.quota_mb)
    .bind(f.enabled)
    .bind(folder)
    .execute(&mut **tx)
    .await?
    .last_insert_rowid())
}

pub async fn update_mailbox(
    tx: &mut Tx<'_>,
    id: i64,
    f: &MailboxFields<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE mailboxes SET display_name = ?, given_name = ?, surname = ?, initials = ?, alias = ?, \
         quota_mb = ?, enabled = ? WHERE id = ?",
    )
    .bind(f.display_name)
    .bind(f.given_name)
    .bind(f.surname)
    .bind(f.initials)
    .bind(f.alias)
    .bind(f.quota_mb)
    .bind(f.enabled)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn set_mailbox_password(
    pool: &SqlitePool,
    id: i64,
    password_hash: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE mailboxes SET password_hash = ? WHERE id = ?")
        .bind(password_hash)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn delete_mailbox(tx: &mut Tx<'_>, id: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM mailboxes WHERE id = ?")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

// ---- distribution groups ----

pub async fn insert_group(
    tx: &mut Tx<'_>,
    display_name: &str,
    only_authenticated: bool,
) -> Result<i64, StoreError> {
    Ok(sqlx::query(
        "INSERT INTO distribution_groups (display_name, only_authenticated) VALUES (?, ?)",
    )
    .bind(display_name)
    .bind(only_authenticated)
    .execute(&mut **tx)
    .await?
    .last_insert_rowid())
}

pub async fn update_group(
    tx: &mut Tx<'_>,
    id: i64,
    display_name: &str,
    only_authenticated: bool,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE distribution_groups SET display_name = ?, only_authenticated = ? WHERE id = ?",
    )
    .bind(display_name)
    .bind(only_authenticated)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Replaces the member list and the sender lists of a group.
pub async fn replace_group_lists(
    tx: &mut Tx<'_>,
    id: i64,
    members: &[MemberRef],
    accept_from: &[EmailAddress],
    reject_from: &[EmailAddress],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM group_members WHERE group_id = ?")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    for m in members {
        let (mb, c, g) = match *m {
            MemberRef::Mailbox(x) => (Some(x), None, None),
            MemberRef::Contact(x) => (None, Some(x), None),
            MemberRef::Group(x) => (None, None, Some(x)),
        };
        sqlx::query("INSERT INTO group_members (group_id, mailbox_id, contact_id, member_group_id) VALUES (?, ?, ?, ?)")
            .bind(id)
            .bind(mb)
            .bind(c)
            .bind(g)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query("DELETE FROM group_sender_lists WHERE group_id = ?")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    for (list, senders) in [("accept", accept_from), ("reject", reject_from)] {
        for s in senders {
            sqlx::query("INSERT INTO group_sender_lists (group_id, list, sender_key, sender) VALUES (?, ?, ?, ?)")
                .bind(id)
                .bind(list)
                .bind(s.key())
                .bind(s.to_string())
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

pub async fn delete_group(tx: &mut Tx<'_>, id: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM distribution_groups WHERE id = ?")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

// ---- mail contacts ----

pub async fn insert_contact(
    tx: &mut Tx<'_>,
    name: &str,
    display_name: &str,
    external: &EmailAddress,
) -> Result<i64, StoreError> {
    Ok(sqlx::query(
        "INSERT INTO mail_contacts (name, display_name, external_address) VALUES (?, ?, ?)",
    )
    .bind(name)
    .bind(display_name)
    .bind(external.to_string())
    .execute(&mut **tx)
    .await?
    .last_insert_rowid())
}

pub async fn update_contact(
    tx: &mut Tx<'_>,
    id: i64,
    display_name: &str,
    external: &EmailAddress,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE mail_contacts SET display_name = ?, external_address = ? WHERE id = ?")
        .bind(display_name)
        .bind(external.to_string())
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn delete_contact(tx: &mut Tx<'_>, id: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM mail_contacts WHERE id = ?")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

// ---- address policies ----

pub async fn upsert_policy(tx: &mut Tx<'_>, p: &AddressPolicy) -> Result<i64, StoreError> {
    let templates =
        serde_json::to_string(&p.templates).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    if p.id == 0 {
        Ok(
            sqlx::query("INSERT INTO address_policies (name, priority, filter_domain, templates) VALUES (?, ?, ?, ?)")
                .bind(&p.name)
                .bind(p.priority)
                .bind(&p.filter_domain)
                .bind(templates)
                .execute(&mut **tx)
                .await?
                .last_insert_rowid(),
        )
    } else {
        sqlx::query("UPDATE address_policies SET priority = ?, filter_domain = ?, templates = ? WHERE id = ?")
            .bind(p.priority)
            .bind(&p.filter_domain)
            .bind(templates)
            .bind(p.id)
            .execute(&mut **tx)
            .await?;
        Ok(p.id)
    }
}

pub async fn delete_policy(tx: &mut Tx<'_>, id: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM address_policies WHERE id = ?")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

// ---- remote domains ----

pub async fn upsert_remote_domain(tx: &mut Tx<'_>, d: &RemoteDomain) -> Result<i64, StoreError> {
    // The id goes last, so the INSERT (which has no id placeholder) and the UPDATE
    // share one bind list; `id = 0` means "new".
    let sql = if d.id == 0 {
        "INSERT INTO remote_domains (name, domain, allow_out_of_office, allow_auto_reply, allow_auto_forward, \
         allow_delivery_reports, allow_ndr, line_length, charset) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    } else {
        "UPDATE remote_domains SET name = ?, domain = ?, allow_out_of_office = ?, allow_auto_reply = ?, \
         allow_auto_forward = ?, allow_delivery_reports = ?, allow_ndr = ?, line_length = ?, charset = ? \
         WHERE id = ?"
    };
    let mut q = sqlx::query(sql)
        .bind(&d.name)
        .bind(&d.domain)
        .bind(d.allow_out_of_office)
        .bind(d.allow_auto_reply)
        .bind(d.allow_auto_forward)
        .bind(d.allow_delivery_reports)
        .bind(d.allow_ndr)
        .bind(d.line_length)
        .bind(&d.charset);
    if d.id != 0 {
        q = q.bind(d.id);
    }
    let result = q.execute(&mut **tx).await?;
    Ok(if d.id == 0 {
        result.last_insert_rowid()
    } else {
        d.id
    })
}

pub async fn delete_remote_domain(tx: &mut Tx<'_>, id: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM remote_domains WHERE id = ?")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
