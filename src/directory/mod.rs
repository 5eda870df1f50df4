//! The organization directory: accepted domains, mailboxes and their proxy
//! addresses, distribution groups, mail contacts, e-mail address policies and
//! remote domains.
//!
//! Reads go through [`Directory`], an immutable in-memory snapshot that answers
//! "who is this address?" without touching the database (the SMTP session asks at
//! every RCPT). Writes go through the functions of the submodules, which validate
//! once (the CLI, the API and the console all call them) and then write `store/`.

pub mod domains;
pub mod pattern;
pub mod policies;
pub mod recipients;
pub mod remote_domains;

use std::collections::HashMap;

use crate::smtp::address::EmailAddress;
pub use crate::store::organization::{
    AcceptedDomain, AddressPolicy, DistributionGroup, DomainType, MailContact, Mailbox, MemberRef,
    Owner, RemoteDomain,
};
use crate::store::{Store, StoreError, organization::OrgRows};
use pattern::DomainPattern;

/// A directory operation failed. `Invalid` names the input field, so a form can
/// show the message beside it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Store(StoreError::Sql(e))
    }
}

pub fn invalid(field: &'static str, message: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        message: message.into(),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `v` if it lies in `min..=max`, else an error naming the field and the bounds.
pub fn check_range<T: PartialOrd + std::fmt::Display + Copy>(
    field: &'static str,
    v: T,
    min: T,
    max: T,
) -> Result<T> {
    if v < min || v > max {
        return Err(invalid(
            field,
            format!("{field} must be between {min} and {max}"),
        ));
    }
    Ok(v)
}

/// The answer to "who is this address?".
#[derive(Debug, Clone, Copy)]
pub enum Resolution<'a> {
    Mailbox(&'a Mailbox),
    Group(&'a DistributionGroup),
    Contact(&'a MailContact),
    /// The domain is accepted but no recipient has this address. For an
    /// authoritative domain that means "no such user" (5.1.1); for a relay domain,
    /// route it out.
    Unknown(&'a AcceptedDomain),
    /// Not an accepted domain: the address is outside the organization.
    External,
}

/// An immutable snapshot of the organization.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    rows: OrgRows,
    by_address: HashMap<String, Owner>,
    mailbox_index: HashMap<i64, usize>,
    group_index: HashMap<i64, usize>,
    contact_index: HashMap<i64, usize>,
}

impl Directory {
    pub async fn load(store: &Store) -> Result<Directory, StoreError> {
        Ok(Directory::from_rows(
            crate::store::organization::load(store.pool()).await?,
        ))
    }

    pub fn from_rows(rows: OrgRows) -> Directory {
        let mut by_address = HashMap::new();
        for m in &rows.mailboxes {
            for a in std::iter::once(&m.primary_address).chain(&m.proxy_addresses) {
                by_address.insert(a.key(), Owner::Mailbox(m.id));
            }
        }
        for g in &rows.groups {
            for a in std::iter::once(&g.primary_address).chain(&g.proxy_addresses) {
                by_address.insert(a.key(), Owner::Group(g.id));
            }
        }
        for c in &rows.contacts {
            if let Some(a) = &c.address {
                by_address.insert(a.key(), Owner::Contact(c.id));
            }
        }
        let index = |ids: Vec<i64>| ids.into_iter().enumerate().map(|(i, id)| (id, i)).collect();
        Directory {
            mailbox_index: index(rows.mailboxes.iter().map(|m| m.id).collect()),
            group_index: index(rows.groups.iter().map(|g| g.id).collect()),
            contact_index: index(rows.contacts.iter().map(|c| c.id).collect()),
            by_address,
            rows,
        }
    }

    /// The store's change counter this snapshot was read at.
    pub fn version(&self) -> i64 {
        self.rows.version
    }

    /// Who is this address? Domains match case-insensitively (the address type
    /// keeps them lower-case); local parts too, as Exchange does.
    pub fn resolve(&self, address: &EmailAddress) -> Resolution<'_> {
        if let Some(owner) = self.by_address.get(&address.key()) {
            let found = match *owner {
                Owner::Mailbox(id) => self.mailbox(id).map(Resolution::Mailbox),
                Owner::Group(id) => self.group(id).map(Resolution::Group),
                Owner::Contact(id) => self.contact(id).map(Resolution::Contact),
            };
            if let Some(found) = found {
                return found;
            }
        }
        match self.accepted_domain(address.domain()) {
            Some(d) => Resolution::Unknown(d),
            None => Resolution::External,
        }
    }

    /// The accepted domain that covers `domain` most specifically.
    pub fn accepted_domain(&self, domain: &str) -> Option<&AcceptedDomain> {
        let domain = domain.to_lowercase();
        pattern::most_specific(
            &self.rows.accepted_domains,
            |d| DomainPattern::parse(&d.name).ok(),
            &domain,
        )
    }

    /// The remote-domain settings for mail going to `domain`, most specific first;
    /// `None` only when an admin removed even the default `*` entry.
    pub fn remote_domain(&self, domain: &str) -> Option<&RemoteDomain> {
        let domain = domain.to_lowercase();
        pattern::most_specific(
            &self.rows.remote_domains,
            |d| DomainPattern::parse(&d.domain).ok(),
            &domain,
        )
    }

    pub fn owner_of(&self, address: &EmailAddress) -> Option<Owner> {
        self.by_address.get(&address.key()).copied()
    }

    pub fn mailbox(&self, id: i64) -> Option<&Mailbox> {
        self.mailbox_index
            .get(&id)
            .map(|&i| &self.rows.mailboxes[i])
    }

    pub fn group(&self, id: i64) -> Option<&DistributionGroup> {
        self.group_index.get(&id).map(|&i| &self.rows.groups[i])
    }

    pub fn contact(&self, id: i64) -> Option<&MailContact> {
        self.contact_index.get(&id).map(|&i| &self.rows.contacts[i])
    }

    pub fn mailbox_by_address(&self, address: &EmailAddress) -> Option<&Mailbox> {
        match self.resolve(address) {
            Resolution::Mailbox(m) => Some(m),
            _ => None,
        }
    }

    pub fn accepted_domains(&self) -> &[AcceptedDomain] {
        &self.rows.accepted_domains
    }
    pub fn mailboxes(&self) -> &[Mailbox] {
        &self.rows.mailboxes
    }
    pub fn groups(&self) -> &[DistributionGroup] {
        &self.rows.groups
    }
    pub fn contacts(&self) -> &[MailContact] {
        &self.rows.contacts
    }
    pub fn policies(&self) -> &[AddressPolicy] {
        &self.rows.policies
    }
    pub fn remote_domains(&self) -> &[RemoteDomain] {
        &self.rows.remote_domains
    }

    /// The primary address of a group member, for display.
    pub fn member_address(&self, member: MemberRef) -> Option<&EmailAddress> {
        match member {
            MemberRef::Mailbox(id) => self.mailbox(id).map(|m| &m.primary_address),
            MemberRef::Group(id) => self.group(id).map(|g| &g.primary_address),
            MemberRef::Contact(id) => self
                .contact(id)
                .map(|c| c.address.as_ref().unwrap_or(&c.external_address)),
        }
    }

    /// Checks that `address` may become a new address of an organization object:
    /// valid, in an accepted domain that holds local recipients, and unused (or
    /// already owned by `owner`).
    pub fn check_new_address(
        &self,
        field: &'static str,
        input: &str,
        owner: Option<Owner>,
    ) -> Result<EmailAddress> {
        let address = EmailAddress::parse(input).map_err(|e| invalid(field, e.to_string()))?;
        match self.accepted_domain(address.domain()) {
            None => {
                return Err(invalid(
                    field,
                    format!(
                        "{} is not an accepted domain; add it first with `bridgehead accepted-domain new {}`",
                        address.domain(),
                        address.domain()
                    ),
                ));
            }
            Some(d) if d.domain_type == DomainType::ExternalRelay => {
                return Err(invalid(
                    field,
                    format!(
                        "{} is an external-relay domain: its recipients live elsewhere, so no local object can have an address there",
                        d.name
                    ),
                ));
            }
            Some(_) => {}
        }
        match self.owner_of(&address) {
            Some(o) if Some(o) == owner => Ok(address),
            Some(o) => Err(Error::Conflict(format!(
                "address {address} is already used by {}",
                self.describe(o)
            ))),
            None => Ok(address),
        }
    }

    /// "mailbox alice@example.com", "group sales@example.com", "contact partner".
    pub fn describe(&self, owner: Owner) -> String {
        match owner {
            Owner::Mailbox(id) => self.mailbox(id).map_or_else(
                || format!("mailbox #{id}"),
                |m| format!("mailbox {}", m.primary_address),
            ),
            Owner::Group(id) => self.group(id).map_or_else(
                || format!("group #{id}"),
                |g| format!("group {}", g.primary_address),
            ),
            Owner::Contact(id) => self.contact(id).map_or_else(
                || format!("contact #{id}"),
                |c| format!("contact {}", c.name),
            ),
        }
    }
}

/// Converts a UNIQUE violation that slipped past the snapshot checks (another
/// writer got there first) into a clear conflict.
pub(crate) fn conflict_on_unique(e: StoreError, what: impl FnOnce() -> String) -> Error {
    match &e {
        StoreError::Sql(sql) if crate::store::is_unique_violation(sql) => Error::Conflict(what()),
        _ => Error::Store(e),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::organization::*;

    pub fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    pub fn sample() -> Directory {
        let mailbox = |id, a: &str, proxies: &[&str]| Mailbox {
            id,
            primary_address: addr(a),
            proxy_addresses: proxies.iter().map(|p| addr(p)).collect(),
            display_name: a.into(),
            given_name: String::new(),
            surname: String::new(),
            initials: String::new(),
            alias: a.split('@').next().unwrap_or_default().into(),
            password_hash: None,
            quota_mb: None,
            enabled: true,
            folder: a.to_lowercase(),
        };
        let domain = |id, name: &str, t| AcceptedDomain {
            id,
            name: name.into(),
            domain_type: t,
            is_default: false,
        };
        Directory::from_rows(OrgRows {
            version: 7,
            accepted_domains: vec![
                domain(1, "example.com", DomainType::Authoritative),
                domain(2, "*.example.com", DomainType::InternalRelay),
                domain(3, "partner.test", DomainType::ExternalRelay),
            ],
            mailboxes: vec![
                mailbox(
                    1,
                    "Alice@example.com",
                    &["alice.smith@example.com", "a@sales.example.com"],
                ),
                mailbox(2, "bob@example.com", &[]),
            ],
            groups: vec![DistributionGroup {
                id: 1,
                primary_address: addr("sales@example.com"),
                proxy_addresses: vec![],
                display_name: "Sales".into(),
                members: vec![MemberRef::Mailbox(1), MemberRef::Contact(1)],
                only_authenticated: true,
                accept_from: vec![],
                reject_from: vec![],
            }],
            contacts: vec![MailContact {
                id: 1,
                name: "partner".into(),
                display_name: "Partner".into(),
                external_address: addr("bob@partner.test"),
                address: Some(addr("partner@example.com")),
            }],
            policies: vec![],
            remote_domains: vec![],
        })
    }

    #[test]
    fn resolves_every_kind() {
        let d = sample();
        assert!(
            matches!(d.resolve(&addr("alice@EXAMPLE.com")), Resolution::Mailbox(m) if m.id == 1)
        );
        assert!(
            matches!(d.resolve(&addr("ALICE.SMITH@example.com")), Resolution::Mailbox(m) if m.id == 1)
        );
        assert!(
            matches!(d.resolve(&addr("a@Sales.Example.com")), Resolution::Mailbox(m) if m.id == 1)
        );
        assert!(matches!(d.resolve(&addr("sales@example.com")), Resolution::Group(g) if g.id == 1));
        assert!(
            matches!(d.resolve(&addr("partner@example.com")), Resolution::Contact(c) if c.id == 1)
        );
        assert!(matches!(d.resolve(&addr("nobody@example.com")),
            Resolution::Unknown(ad) if ad.domain_type == DomainType::Authoritative));
        assert!(matches!(d.resolve(&addr("nobody@eu.example.com")),
            Resolution::Unknown(ad) if ad.domain_type == DomainType::InternalRelay));
        assert!(matches!(d.resolve(&addr("x@partner.test")),
            Resolution::Unknown(ad) if ad.domain_type == DomainType::ExternalRelay));
        assert!(matches!(
            d.resolve(&addr("x@elsewhere.org")),
            Resolution::External
        ));
        assert!(matches!(
            d.resolve(&addr("bob@partner.test")),
            Resolution::Unknown(_)
        ));
    }

    #[test]
    fn utf8_addresses_fold_case() {
        let mut rows = sample().rows;
        rows.accepted_domains.push(AcceptedDomain {
            id: 9,
            name: "bücher.example".into(),
            domain_type: DomainType::Authoritative,
            is_default: false,
        });
        rows.mailboxes[1]
            .proxy_addresses
            .push(addr("jörg@bücher.example"));
        let d = Directory::from_rows(rows);
        assert!(
            matches!(d.resolve(&addr("JÖRG@BÜCHER.example")), Resolution::Mailbox(m) if m.id == 2)
        );
        assert!(matches!(
            d.resolve(&addr("anna@bücher.example")),
            Resolution::Unknown(_)
        ));
    }

    #[test]
    fn new_address_checks() {
        let d = sample();
        assert!(
            d.check_new_address("address", "carol@example.com", None)
                .is_ok()
        );
        assert!(
            matches!(d.check_new_address("address", "alice@example.com", None), Err(Error::Conflict(m)) if m.contains("mailbox Alice@example.com"))
        );
        assert!(
            d.check_new_address("address", "alice@example.com", Some(Owner::Mailbox(1)))
                .is_ok()
        );
        assert!(matches!(
            d.check_new_address("address", "x@nowhere.test", None),
            Err(Error::Invalid {
                field: "address",
                ..
            })
        ));
        assert!(matches!(
            d.check_new_address("address", "x@partner.test", None),
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            d.check_new_address("address", "bad address", None),
            Err(Error::Invalid { .. })
        ));
    }
}
