//! Remote domains: per-destination outbound options (Exchange 2007 "Remote
//! Domains" tab). The most specific pattern applies; `*` ("Default") always exists
//! unless an admin removes it.

use super::pattern::DomainPattern;
use super::{Directory, Error, RemoteDomain, Result, invalid};
use crate::store::{Store, organization as rows};

/// Optional changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteDomainInput {
    pub name: Option<String>,
    pub domain: Option<String>,
    pub allow_out_of_office: Option<bool>,
    pub allow_auto_reply: Option<bool>,
    pub allow_auto_forward: Option<bool>,
    pub allow_delivery_reports: Option<bool>,
    pub allow_ndr: Option<bool>,
    /// `Some(None)` (JSON `null`): no line wrapping.
    #[serde(deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<i64>)]
    pub line_length: Option<Option<i64>>,
    /// `Some(None)` (JSON `null`): leave the charset as the sender wrote it.
    #[serde(deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>)]
    pub charset: Option<Option<String>>,
}

/// A remote domain is named by its name or its domain pattern.
pub fn find<'a>(dir: &'a Directory, key: &str) -> Result<&'a RemoteDomain> {
    let key = key.trim();
    dir.remote_domains()
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(key) || d.domain.eq_ignore_ascii_case(key))
        .ok_or_else(|| Error::NotFound(format!("no remote domain {key}")))
}

fn apply(dir: &Directory, d: &mut RemoteDomain, input: RemoteDomainInput) -> Result<()> {
    if let Some(domain) = input.domain {
        d.domain = DomainPattern::parse(&domain)
            .map_err(|e| invalid("domain", e))?
            .to_string();
    }
    if let Some(name) = input.name {
        let name = name.trim().to_string();
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(invalid(
                "name",
                "name must be 1 to 256 printable characters",
            ));
        }
        d.name = name;
    }
    if let Some(clash) = dir
        .remote_domains()
        .iter()
        .find(|o| o.id != d.id && (o.domain == d.domain || o.name.eq_ignore_ascii_case(&d.name)))
    {
        return Err(Error::Conflict(format!(
            "remote domain {} ({}) already exists",
            clash.name, clash.domain
        )));
    }
    let flags = [
        (input.allow_out_of_office, &mut d.allow_out_of_office),
        (input.allow_auto_reply, &mut d.allow_auto_reply),
        (input.allow_auto_forward, &mut d.allow_auto_forward),
        (input.allow_delivery_reports, &mut d.allow_delivery_reports),
        (input.allow_ndr, &mut d.allow_ndr),
    ];
    for (value, field) in flags {
        if let Some(v) = value {
            *field = v;
        }
    }
    if let Some(l) = input.line_length {
        // RFC 5322 §2.1.1: lines must not exceed 998 characters; below 40 is unreadable.
        if let Some(n) = l
            && !(40..=998).contains(&n)
        {
            return Err(invalid(
                "line_length",
                "line length must be between 40 and 998",
            ));
        }
        d.line_length = l;
    }
    if let Some(c) = input.charset {
        d.charset = match c.map(|c| c.trim().to_ascii_lowercase()) {
            None => None,
            Some(c) if c.is_empty() => None,
            Some(c)
                if c.len() <= 40
                    && c.chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || "-_.:".contains(ch)) =>
            {
                Some(c)
            }
            Some(c) => {
                return Err(invalid(
                    "charset",
                    format!("`{c}` is not a character set name"),
                ));
            }
        };
    }
    Ok(())
}

pub async fn create(
    store: &Store,
    domain: &str,
    mut input: RemoteDomainInput,
) -> Result<RemoteDomain> {
    let dir = Directory::load(store).await?;
    let pattern = DomainPattern::parse(domain)
        .map_err(|e| invalid("domain", e))?
        .to_string();
    let mut d = RemoteDomain {
        id: 0,
        name: input.name.take().unwrap_or_else(|| pattern.clone()),
        domain: pattern,
        allow_out_of_office: true,
        allow_auto_reply: true,
        allow_auto_forward: true,
        allow_delivery_reports: true,
        allow_ndr: true,
        line_length: None,
        charset: None,
    };
    let name = d.name.clone();
    apply(
        &dir,
        &mut d,
        RemoteDomainInput {
            name: Some(name),
            ..input
        },
    )?;
    let mut tx = store.pool().begin().await?;
    d.id = rows::upsert_remote_domain(&mut tx, &d)
        .await
        .map_err(|e| super::conflict_on_unique(e, || "that remote domain already exists".into()))?;
    tx.commit().await?;
    Ok(d)
}

pub async fn update(store: &Store, key: &str, input: RemoteDomainInput) -> Result<RemoteDomain> {
    let dir = Directory::load(store).await?;
    let mut d = find(&dir, key)?.clone();
    apply(&dir, &mut d, input)?;
    let mut tx = store.pool().begin().await?;
    rows::upsert_remote_domain(&mut tx, &d)
        .await
        .map_err(|e| super::conflict_on_unique(e, || "that remote domain already exists".into()))?;
    tx.commit().await?;
    Ok(d)
}

pub async fn remove(store: &Store, key: &str) -> Result<RemoteDomain> {
    let dir = Directory::load(store).await?;
    let d = find(&dir, key)?.clone();
    let mut tx = store.pool().begin().await?;
    rows::delete_remote_domain(&mut tx, d.id).await?;
    tx.commit().await?;
    Ok(d)
}
