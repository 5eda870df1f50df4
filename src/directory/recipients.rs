//! Recipients: mailboxes, distribution groups and mail contacts, and their
//! addresses (one primary, any number of proxies, unique across the organization).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    Directory, DistributionGroup, Error, MailContact, Mailbox, MemberRef, Owner, Resolution,
    Result, invalid, policies,
};
use crate::password;
use crate::serde_util::double_option;
use crate::smtp::address::{EmailAddress, validate_local_part};
use crate::store::{Store, organization as rows};

/// Largest mailbox quota accepted, in MB (1 TiB).
pub const MAX_QUOTA_MB: i64 = 1024 * 1024;
/// Longest display name, given name, surname or contact name.
const MAX_NAME: usize = 256;

fn check_name(field: &'static str, value: &str, required: bool) -> Result<String> {
    let v = value.trim();
    if required && v.is_empty() {
        return Err(invalid(field, format!("{field} must not be empty")));
    }
    if v.chars().count() > MAX_NAME {
        return Err(invalid(
            field,
            format!("{field} is longer than {MAX_NAME} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("{field} contains control characters"),
        ));
    }
    Ok(v.to_string())
}

fn check_quota(quota_mb: Option<i64>) -> Result<Option<i64>> {
    match quota_mb {
        Some(q) if !(1..=MAX_QUOTA_MB).contains(&q) => Err(invalid(
            "quota_mb",
            format!("quota must be between 1 and {MAX_QUOTA_MB} MB"),
        )),
        q => Ok(q),
    }
}

fn check_alias(alias: &str) -> Result<String> {
    let a = alias.trim();
    validate_local_part(a)
        .map_err(|why| invalid("alias", format!("alias `{a}` is not valid: {why}")))?;
    Ok(a.to_string())
}

async fn hash_password(pw: &str) -> Result<String> {
    password::check_strength(pw).map_err(|e| invalid("password", e.to_string()))?;
    password::hash(pw.to_string())
        .await
        .map_err(|e| invalid("password", e.to_string()))
}

fn parse_sender(field: &'static str, input: &str) -> Result<EmailAddress> {
    EmailAddress::parse(input).map_err(|e| invalid(field, e.to_string()))
}

// ---------------------------------------------------------------- mailboxes

/// A new mailbox (CLI `mailbox new`, API `POST /mailboxes`).
#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NewMailbox {
    /// The primary SMTP address.
    pub address: String,
    pub display_name: String,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub initials: Option<String>,
    pub alias: Option<String>,
    /// For SMTP AUTH. Write-only: never returned.
    #[schema(write_only, format = Password)]
    pub password: Option<String>,
    /// Quota in MB; absent = unlimited.
    pub quota_mb: Option<i64>,
    pub disabled: bool,
}

impl std::fmt::Debug for NewMailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewMailbox")
            .field("address", &self.address)
            .field("display_name", &self.display_name)
            .field("password", &self.password.as_ref().map(|_| "****"))
            .field("quota_mb", &self.quota_mb)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// Changes to a mailbox; absent fields stay as they are.
#[derive(Clone, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MailboxUpdate {
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub initials: Option<String>,
    pub alias: Option<String>,
    /// `Some(None)` (JSON `null`) removes the quota.
    #[serde(deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub quota_mb: Option<Option<i64>>,
    pub enabled: Option<bool>,
    /// `Some(None)` (JSON `null`) removes the password (the mailbox can no longer
    /// authenticate). Write-only: never returned.
    #[serde(deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, write_only, format = Password)]
    pub password: Option<Option<String>>,
    pub add_addresses: Vec<String>,
    pub remove_addresses: Vec<String>,
    pub primary_address: Option<String>,
}

impl std::fmt::Debug for MailboxUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailboxUpdate")
            .field("display_name", &self.display_name)
            .field("quota_mb", &self.quota_mb)
            .field("enabled", &self.enabled)
            .field(
                "password",
                &self.password.as_ref().map(|p| p.as_ref().map(|_| "****")),
            )
            .field("add_addresses", &self.add_addresses)
            .field("remove_addresses", &self.remove_addresses)
            .field("primary_address", &self.primary_address)
            .finish_non_exhaustive()
    }
}

pub fn find_mailbox<'a>(dir: &'a Directory, address: &str) -> Result<&'a Mailbox> {
    let a = EmailAddress::parse(address).map_err(|e| invalid("address", e.to_string()))?;
    dir.mailbox_by_address(&a)
        .ok_or_else(|| Error::NotFound(format!("no mailbox has the address {a}")))
}

pub async fn create_mailbox(store: &Store, new: NewMailbox) -> Result<Mailbox> {
    let dir = Directory::load(store).await?;
    let primary = dir.check_new_address("address", &new.address, None)?;
    let display_name = check_name("display_name", &new.display_name, true)?;
    // "Alice Smith" gives given name Alice and surname Smith unless they are given.
    let (g, s) = display_name.split_once(' ').unwrap_or((&display_name, ""));
    let given_name = check_name("given_name", new.given_name.as_deref().unwrap_or(g), false)?;
    let surname = check_name("surname", new.surname.as_deref().unwrap_or(s), false)?;
    let initials = check_name("initials", new.initials.as_deref().unwrap_or(""), false)?;
    let alias = check_alias(new.alias.as_deref().unwrap_or(primary.local_part()))?;
    let quota_mb = check_quota(new.quota_mb)?;
    let hash = match &new.password {
        Some(pw) => Some(hash_password(pw).await?),
        None => None,
    };
    let mut mailbox = Mailbox {
        id: 0,
        primary_address: primary,
        proxy_addresses: Vec::new(),
        display_name,
        given_name,
        surname,
        initials,
        alias,
        password_hash: hash,
        quota_mb,
        enabled: !new.disabled,
        folder: String::new(),
    };
    // The Maildir folder is named after the address at creation and never moves.
    let base = crate::delivery::local::folder_name(&mailbox.primary_address.key());
    mailbox.folder = (1..)
        .map(|n| {
            if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            }
        })
        .find(|f| !dir.mailboxes().iter().any(|m| &m.folder == f))
        .unwrap_or(base);
    // The e-mail address policy that applies stamps its addresses at creation.
    if let Some(policy) = policies::applicable(&dir, &mailbox) {
        mailbox.proxy_addresses = policies::generate(&dir, &mailbox, policy);
    }
    let mut tx = store.pool().begin().await?;
    let id = rows::insert_mailbox(
        &mut tx,
        &fields(&mailbox),
        mailbox.password_hash.as_deref(),
        &mailbox.folder,
    )
    .await?;
    mailbox.id = id;
    insert_addresses(
        &mut tx,
        Owner::Mailbox(id),
        &mailbox.primary_address,
        &mailbox.proxy_addresses,
    )
    .await?;
    tx.commit().await?;
    Ok(mailbox)
}

fn fields(m: &Mailbox) -> rows::MailboxFields<'_> {
    rows::MailboxFields {
        display_name: &m.display_name,
        given_name: &m.given_name,
        surname: &m.surname,
        initials: &m.initials,
        alias: &m.alias,
        quota_mb: m.quota_mb,
        enabled: m.enabled,
    }
}

async fn insert_addresses(
    tx: &mut rows::Tx<'_>,
    owner: Owner,
    primary: &EmailAddress,
    proxies: &[EmailAddress],
) -> Result<()> {
    for (a, is_primary) in
        std::iter::once((primary, true)).chain(proxies.iter().map(|p| (p, false)))
    {
        rows::insert_address(tx, owner, a, is_primary)
            .await
            .map_err(|e| {
                super::conflict_on_unique(e, || format!("address {a} is already in use"))
            })?;
    }
    Ok(())
}

/// Adds, removes and re-primaries addresses of one object (mailbox or group).
/// Returns the new primary and proxy list after validation; writes nothing.
fn plan_addresses(
    dir: &Directory,
    owner: Owner,
    primary: &EmailAddress,
    proxies: &[EmailAddress],
    add: &[String],
    remove: &[String],
    new_primary: Option<&str>,
) -> Result<(EmailAddress, Vec<EmailAddress>)> {
    let mut all: Vec<EmailAddress> = std::iter::once(primary.clone())
        .chain(proxies.iter().cloned())
        .collect();
    for a in add {
        let a = dir.check_new_address("add_address", a, Some(owner))?;
        if !all.iter().any(|x| x.key() == a.key()) {
            all.push(a);
        }
    }
    let mut primary = primary.clone();
    if let Some(p) = new_primary {
        let p = dir.check_new_address("primary_address", p, Some(owner))?;
        if !all.iter().any(|x| x.key() == p.key()) {
            all.push(p.clone());
        }
        primary = p;
    }
    for r in remove {
        let r = EmailAddress::parse(r).map_err(|e| invalid("remove_address", e.to_string()))?;
        if r.key() == primary.key() {
            return Err(invalid(
                "remove_address",
                format!("{r} is the primary address; make another address primary first"),
            ));
        }
        let before = all.len();
        all.retain(|x| x.key() != r.key());
        if all.len() == before {
            return Err(invalid(
                "remove_address",
                format!("{r} is not an address of this recipient"),
            ));
        }
    }
    let proxies = all
        .into_iter()
        .filter(|a| a.key() != primary.key())
        .collect();
    Ok((primary, proxies))
}

/// Writes the difference between the old and new address sets.
async fn write_addresses(
    tx: &mut rows::Tx<'_>,
    owner: Owner,
    old: (&EmailAddress, &[EmailAddress]),
    new: (&EmailAddress, &[EmailAddress]),
) -> Result<()> {
    let old_all: Vec<&EmailAddress> = std::iter::once(old.0).chain(old.1).collect();
    let new_all: Vec<&EmailAddress> = std::iter::once(new.0).chain(new.1).collect();
    for a in &old_all {
        if !new_all.iter().any(|n| n.key() == a.key()) {
            rows::delete_address(tx, a).await?;
        }
    }
    for a in &new_all {
        if !old_all.iter().any(|o| o.key() == a.key()) {
            rows::insert_address(tx, owner, a, false)
                .await
                .map_err(|e| {
                    super::conflict_on_unique(e, || format!("address {a} is already in use"))
                })?;
        }
    }
    rows::set_primary_address(tx, owner, new.0).await?;
    Ok(())
}

pub async fn update_mailbox(store: &Store, address: &str, u: MailboxUpdate) -> Result<Mailbox> {
    let dir = Directory::load(store).await?;
    let old = find_mailbox(&dir, address)?.clone();
    let mut m = old.clone();
    if let Some(v) = &u.display_name {
        m.display_name = check_name("display_name", v, true)?;
    }
    if let Some(v) = &u.given_name {
        m.given_name = check_name("given_name", v, false)?;
    }
    if let Some(v) = &u.surname {
        m.surname = check_name("surname", v, false)?;
    }
    if let Some(v) = &u.initials {
        m.initials = check_name("initials", v, false)?;
    }
    if let Some(v) = &u.alias {
        m.alias = check_alias(v)?;
    }
    if let Some(q) = u.quota_mb {
        m.quota_mb = check_quota(q)?;
    }
    if let Some(e) = u.enabled {
        m.enabled = e;
    }
    let owner = Owner::Mailbox(m.id);
    let (primary, proxies) = plan_addresses(
        &dir,
        owner,
        &old.primary_address,
        &old.proxy_addresses,
        &u.add_addresses,
        &u.remove_addresses,
        u.primary_address.as_deref(),
    )?;
    m.primary_address = primary;
    m.proxy_addresses = proxies;
    let new_hash = match &u.password {
        Some(Some(pw)) => Some(Some(hash_password(pw).await?)),
        Some(None) => Some(None),
        None => None,
    };
    let mut tx = store.pool().begin().await?;
    rows::update_mailbox(&mut tx, m.id, &fields(&m)).await?;
    write_addresses(
        &mut tx,
        owner,
        (&old.primary_address, &old.proxy_addresses),
        (&m.primary_address, &m.proxy_addresses),
    )
    .await?;
    tx.commit().await?;
    if let Some(h) = new_hash {
        rows::set_mailbox_password(store.pool(), m.id, h.as_deref()).await?;
        m.password_hash = h;
    }
    Ok(m)
}

pub async fn remove_mailbox(store: &Store, address: &str) -> Result<Mailbox> {
    let dir = Directory::load(store).await?;
    let m = find_mailbox(&dir, address)?.clone();
    let mut tx = store.pool().begin().await?;
    rows::delete_mailbox(&mut tx, m.id).await?;
    tx.commit().await?;
    Ok(m)
}

// ---------------------------------------------------------------- groups

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NewGroup {
    pub address: String,
    pub display_name: Option<String>,
    pub members: Vec<String>,
    pub only_authenticated: bool,
    pub accept_from: Vec<String>,
    pub reject_from: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GroupUpdate {
    pub display_name: Option<String>,
    pub add_members: Vec<String>,
    pub remove_members: Vec<String>,
    pub only_authenticated: Option<bool>,
    pub add_accept_from: Vec<String>,
    pub remove_accept_from: Vec<String>,
    pub add_reject_from: Vec<String>,
    pub remove_reject_from: Vec<String>,
    pub add_addresses: Vec<String>,
    pub remove_addresses: Vec<String>,
    pub primary_address: Option<String>,
}

pub fn find_group<'a>(dir: &'a Directory, address: &str) -> Result<&'a DistributionGroup> {
    let a = EmailAddress::parse(address).map_err(|e| invalid("address", e.to_string()))?;
    match dir.resolve(&a) {
        Resolution::Group(g) => Ok(g),
        _ => Err(Error::NotFound(format!(
            "no distribution group has the address {a}"
        ))),
    }
}

/// A member is named by any of its addresses, or a contact by its name.
fn resolve_member(dir: &Directory, input: &str) -> Result<MemberRef> {
    if let Ok(a) = EmailAddress::parse(input) {
        match dir.owner_of(&a) {
            Some(Owner::Mailbox(id)) => return Ok(MemberRef::Mailbox(id)),
            Some(Owner::Group(id)) => return Ok(MemberRef::Group(id)),
            Some(Owner::Contact(id)) => return Ok(MemberRef::Contact(id)),
            None => {}
        }
        if let Some(c) = dir
            .contacts()
            .iter()
            .find(|c| c.external_address.key() == a.key())
        {
            return Ok(MemberRef::Contact(c.id));
        }
    }
    if let Some(c) = dir
        .contacts()
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(input.trim()))
    {
        return Ok(MemberRef::Contact(c.id));
    }
    Err(invalid(
        "members",
        format!("member `{input}` is not a mailbox, group or contact of this organization"),
    ))
}

fn edit_list<T: PartialEq + Clone>(list: &mut Vec<T>, add: Vec<T>, remove: Vec<T>) {
    for a in add {
        if !list.contains(&a) {
            list.push(a);
        }
    }
    list.retain(|x| !remove.contains(x));
}

fn parse_senders(field: &'static str, inputs: &[String]) -> Result<Vec<EmailAddress>> {
    inputs.iter().map(|s| parse_sender(field, s)).collect()
}

fn check_group_lists(g: &DistributionGroup) -> Result<()> {
    if g.members.contains(&MemberRef::Group(g.id)) && g.id != 0 {
        return Err(invalid("members", "a group cannot be a member of itself"));
    }
    if let Some(a) = g
        .accept_from
        .iter()
        .find(|a| g.reject_from.iter().any(|r| r.key() == a.key()))
    {
        return Err(invalid(
            "reject_from",
            format!("{a} is on both the accept and the reject list"),
        ));
    }
    Ok(())
}

pub async fn create_group(store: &Store, new: NewGroup) -> Result<DistributionGroup> {
    let dir = Directory::load(store).await?;
    let primary = dir.check_new_address("address", &new.address, None)?;
    let display_name = check_name(
        "display_name",
        new.display_name.as_deref().unwrap_or(primary.local_part()),
        true,
    )?;
    let mut members = Vec::new();
    for m in &new.members {
        let r = resolve_member(&dir, m)?;
        if !members.contains(&r) {
            members.push(r);
        }
    }
    let mut g = DistributionGroup {
        id: 0,
        primary_address: primary,
        proxy_addresses: Vec::new(),
        display_name,
        members,
        only_authenticated: new.only_authenticated,
        accept_from: parse_senders("accept_from", &new.accept_from)?,
        reject_from: parse_senders("reject_from", &new.reject_from)?,
    };
    check_group_lists(&g)?;
    let mut tx = store.pool().begin().await?;
    g.id = rows::insert_group(&mut tx, &g.display_name, g.only_authenticated).await?;
    insert_addresses(&mut tx, Owner::Group(g.id), &g.primary_address, &[]).await?;
    rows::replace_group_lists(&mut tx, g.id, &g.members, &g.accept_from, &g.reject_from).await?;
    tx.commit().await?;
    Ok(g)
}

pub async fn update_group(
    store: &Store,
    address: &str,
    u: GroupUpdate,
) -> Result<DistributionGroup> {
    let dir = Directory::load(store).await?;
    let old = find_group(&dir, address)?.clone();
    let mut g = old.clone();
    if let Some(n) = &u.display_name {
        g.display_name = check_name("display_name", n, true)?;
    }
    if let Some(o) = u.only_authenticated {
        g.only_authenticated = o;
    }
    let add = u
        .add_members
        .iter()
        .map(|m| resolve_member(&dir, m))
        .collect::<Result<Vec<_>>>()?;
    let remove = u
        .remove_members
        .iter()
        .map(|m| resolve_member(&dir, m))
        .collect::<Result<Vec<_>>>()?;
    if let Some(m) = remove.iter().find(|m| !g.members.contains(m)) {
        let name = dir
            .member_address(*m)
            .map(|a| a.to_string())
            .unwrap_or_default();
        return Err(invalid(
            "remove_members",
            format!("{name} is not a member of {}", g.primary_address),
        ));
    }
    edit_list(&mut g.members, add, remove);
    edit_list(
        &mut g.accept_from,
        parse_senders("accept_from", &u.add_accept_from)?,
        parse_senders("accept_from", &u.remove_accept_from)?,
    );
    edit_list(
        &mut g.reject_from,
        parse_senders("reject_from", &u.add_reject_from)?,
        parse_senders("reject_from", &u.remove_reject_from)?,
    );
    check_group_lists(&g)?;
    let owner = Owner::Group(g.id);
    let (primary, proxies) = plan_addresses(
        &dir,
        owner,
        &old.primary_address,
        &old.proxy_addresses,
        &u.add_addresses,
        &u.remove_addresses,
        u.primary_address.as_deref(),
    )?;
    g.primary_address = primary;
    g.proxy_addresses = proxies;
    let mut tx = store.pool().begin().await?;
    rows::update_group(&mut tx, g.id, &g.display_name, g.only_authenticated).await?;
    rows::replace_group_lists(&mut tx, g.id, &g.members, &g.accept_from, &g.reject_from).await?;
    write_addresses(
        &mut tx,
        owner,
        (&old.primary_address, &old.proxy_addresses),
        (&g.primary_address, &g.proxy_addresses),
    )
    .await?;
    tx.commit().await?;
    Ok(g)
}

pub async fn remove_group(store: &Store, address: &str) -> Result<DistributionGroup> {
    let dir = Directory::load(store).await?;
    let g = find_group(&dir, address)?.clone();
    let mut tx = store.pool().begin().await?;
    rows::delete_group(&mut tx, g.id).await?;
    tx.commit().await?;
    Ok(g)
}

// ---------------------------------------------------------------- contacts

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NewContact {
    pub name: String,
    pub display_name: Option<String>,
    pub external_address: String,
    pub address: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ContactUpdate {
    pub display_name: Option<String>,
    pub external_address: Option<String>,
    /// `Some(None)` removes the internal address.
    #[serde(deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub address: Option<Option<String>>,
}

/// A contact is named by its name or its internal address.
pub fn find_contact<'a>(dir: &'a Directory, name: &str) -> Result<&'a MailContact> {
    if let Some(c) = dir
        .contacts()
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(name.trim()))
    {
        return Ok(c);
    }
    if let Ok(a) = EmailAddress::parse(name)
        && let Resolution::Contact(c) = dir.resolve(&a)
    {
        return Ok(c);
    }
    Err(Error::NotFound(format!("no mail contact named {name}")))
}

/// The external address must lie outside the organization, or mail to the
/// contact would loop back into it.
fn check_external(dir: &Directory, input: &str) -> Result<EmailAddress> {
    let a = EmailAddress::parse(input).map_err(|e| invalid("external_address", e.to_string()))?;
    match dir.resolve(&a) {
        Resolution::External => Ok(a),
        Resolution::Unknown(d) if d.domain_type != super::DomainType::Authoritative => Ok(a),
        _ => Err(invalid(
            "external_address",
            format!(
                "{a} is inside this organization; a contact's external address must be elsewhere"
            ),
        )),
    }
}

pub async fn create_contact(store: &Store, new: NewContact) -> Result<MailContact> {
    let dir = Directory::load(store).await?;
    let name = check_name("name", &new.name, true)?;
    if dir
        .contacts()
        .iter()
        .any(|c| c.name.eq_ignore_ascii_case(&name))
    {
        return Err(Error::Conflict(format!(
            "a mail contact named {name} already exists"
        )));
    }
    let display_name = check_name(
        "display_name",
        new.display_name.as_deref().unwrap_or(&name),
        true,
    )?;
    let external_address = check_external(&dir, &new.external_address)?;
    let address = match &new.address {
        Some(a) => Some(dir.check_new_address("address", a, None)?),
        None => None,
    };
    let mut c = MailContact {
        id: 0,
        name,
        display_name,
        external_address,
        address,
    };
    let mut tx = store.pool().begin().await?;
    c.id = rows::insert_contact(&mut tx, &c.name, &c.display_name, &c.external_address)
        .await
        .map_err(|e| {
            super::conflict_on_unique(e, || "a mail contact of that name already exists".into())
        })?;
    if let Some(a) = &c.address {
        insert_addresses(&mut tx, Owner::Contact(c.id), a, &[]).await?;
    }
    tx.commit().await?;
    Ok(c)
}

pub async fn update_contact(store: &Store, name: &str, u: ContactUpdate) -> Result<MailContact> {
    let dir = Directory::load(store).await?;
    let old = find_contact(&dir, name)?.clone();
    let mut c = old.clone();
    if let Some(d) = &u.display_name {
        c.display_name = check_name("display_name", d, true)?;
    }
    if let Some(e) = &u.external_address {
        c.external_address = check_external(&dir, e)?;
    }
    if let Some(a) = &u.address {
        c.address = match a {
            Some(a) => Some(dir.check_new_address("address", a, Some(Owner::Contact(c.id)))?),
            None => None,
        };
    }
    let mut tx = store.pool().begin().await?;
    rows::update_contact(&mut tx, c.id, &c.display_name, &c.external_address).await?;
    if old.address.as_ref().map(EmailAddress::key) != c.address.as_ref().map(EmailAddress::key) {
        if let Some(a) = &old.address {
            rows::delete_address(&mut tx, a).await?;
        }
        if let Some(a) = &c.address {
            insert_addresses(&mut tx, Owner::Contact(c.id), a, &[]).await?;
        }
    }
    tx.commit().await?;
    Ok(c)
}

pub async fn remove_contact(store: &Store, name: &str) -> Result<MailContact> {
    let dir = Directory::load(store).await?;
    let c = find_contact(&dir, name)?.clone();
    let mut tx = store.pool().begin().await?;
    rows::delete_contact(&mut tx, c.id).await?;
    tx.commit().await?;
    Ok(c)
}

/// A group with member addresses spelled out, for display (CLI `--json`, API).
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView<'a> {
    #[serde(flatten)]
    pub group: &'a DistributionGroup,
    pub member_addresses: Vec<String>,
}

pub fn group_view<'a>(dir: &Directory, g: &'a DistributionGroup) -> GroupView<'a> {
    GroupView {
        group: g,
        member_addresses: g
            .members
            .iter()
            .filter_map(|m| dir.member_address(*m).map(|a| a.to_string()))
            .collect(),
    }
}
