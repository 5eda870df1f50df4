//! Accepted domains: the SMTP domains this organization receives mail for.

use super::pattern::DomainPattern;
use super::{AcceptedDomain, Directory, DomainType, Error, Result, invalid};
use crate::store::{Store, organization as rows};

/// Validates an accepted-domain name: `example.com` or `*.example.com`.
pub fn parse_name(input: &str) -> Result<DomainPattern> {
    match DomainPattern::parse(input) {
        Ok(DomainPattern::Any) => Err(invalid(
            "name",
            "`*` cannot be an accepted domain: that would accept mail for every domain (an open relay)",
        )),
        Ok(p) => Ok(p),
        Err(e) => Err(invalid("name", e)),
    }
}

pub fn parse_type(input: &str) -> Result<DomainType> {
    DomainType::parse(input).ok_or_else(|| {
        invalid(
            "type",
            format!(
                "unknown domain type `{input}`; use authoritative, internal-relay or external-relay"
            ),
        )
    })
}

pub fn find<'a>(dir: &'a Directory, name: &str) -> Result<&'a AcceptedDomain> {
    let pattern = parse_name(name)?.to_string();
    dir.accepted_domains()
        .iter()
        .find(|d| d.name == pattern)
        .ok_or_else(|| Error::NotFound(format!("no accepted domain {pattern}")))
}

pub async fn create(
    store: &Store,
    name: &str,
    domain_type: DomainType,
    is_default: bool,
) -> Result<AcceptedDomain> {
    let pattern = parse_name(name)?;
    let name = pattern.to_string();
    if is_default && matches!(pattern, DomainPattern::Subtree(_)) {
        return Err(invalid(
            "default",
            "a wildcard domain cannot be the default domain",
        ));
    }
    let mut tx = store.pool().begin().await?;
    let id = rows::insert_accepted_domain(&mut tx, &name, domain_type, is_default)
        .await
        .map_err(|e| {
            super::conflict_on_unique(e, || format!("accepted domain {name} already exists"))
        })?;
    tx.commit().await?;
    Ok(AcceptedDomain {
        id,
        name,
        domain_type,
        is_default,
    })
}

pub async fn update(
    store: &Store,
    name: &str,
    domain_type: Option<DomainType>,
    is_default: Option<bool>,
) -> Result<AcceptedDomain> {
    let dir = Directory::load(store).await?;
    let mut d = find(&dir, name)?.clone();
    if let Some(t) = domain_type {
        if t == DomainType::ExternalRelay {
            refuse_if_used(&dir, &d, "make it external-relay")?;
        }
        d.domain_type = t;
    }
    if let Some(def) = is_default {
        if def && d.name.starts_with("*.") {
            return Err(invalid(
                "default",
                "a wildcard domain cannot be the default domain",
            ));
        }
        d.is_default = def;
    }
    let mut tx = store.pool().begin().await?;
    rows::update_accepted_domain(&mut tx, d.id, d.domain_type, d.is_default).await?;
    tx.commit().await?;
    Ok(d)
}

pub async fn remove(store: &Store, name: &str) -> Result<AcceptedDomain> {
    let dir = Directory::load(store).await?;
    let d = find(&dir, name)?.clone();
    refuse_if_used(&dir, &d, "remove it")?;
    let mut tx = store.pool().begin().await?;
    rows::delete_accepted_domain(&mut tx, d.id).await?;
    tx.commit().await?;
    Ok(d)
}

/// A domain that recipients still have addresses in cannot go away (or stop being
/// local) without orphaning them; say which ones.
fn refuse_if_used(dir: &Directory, d: &AcceptedDomain, action: &str) -> Result<()> {
    let Ok(pattern) = DomainPattern::parse(&d.name) else {
        return Ok(());
    };
    let used: Vec<String> = dir
        .mailboxes()
        .iter()
        .flat_map(|m| std::iter::once(&m.primary_address).chain(&m.proxy_addresses))
        .chain(
            dir.groups()
                .iter()
                .flat_map(|g| std::iter::once(&g.primary_address).chain(&g.proxy_addresses)),
        )
        .chain(dir.contacts().iter().filter_map(|c| c.address.as_ref()))
        // Only addresses this entry is the covering domain for.
        .filter(|a| {
            pattern.matches(a.domain())
                && dir.accepted_domain(a.domain()).map(|x| x.id) == Some(d.id)
        })
        .map(|a| a.to_string())
        .collect();
    if let Some(a) = used.first() {
        return Err(Error::Conflict(format!(
            "cannot {action}: {} address(es) still use {}, e.g. {a}; remove or change them first",
            used.len(),
            d.name
        )));
    }
    let policy = dir.policies().iter().find(|p| {
        p.templates.iter().any(|t| {
            t.rsplit('@')
                .next()
                .is_some_and(|td| pattern.matches(&td.to_lowercase()))
        })
    });
    match policy {
        Some(p) => Err(Error::Conflict(format!(
            "cannot {action}: e-mail address policy `{}` generates addresses in {}; change or remove it first",
            p.name, d.name
        ))),
        None => Ok(()),
    }
}
