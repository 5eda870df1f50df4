//! E-mail address policies (Exchange 2007; "recipient policies" in 2003): templates
//! such as `%g.%s@example.com` that stamp addresses onto mailboxes.
//!
//! Variables follow Exchange: `%g` given name, `%s` surname, `%i` initials, `%m`
//! alias, `%d` display name; a digit between `%` and the letter takes only the
//! first N characters (`%1g%s` → `asmith`). Generated local parts are lower-case
//! and stripped of characters an address cannot hold. Of the policies whose filter
//! matches a mailbox, the one with the highest priority (lowest number) applies.

use serde::Serialize;

use super::{AddressPolicy, Directory, DomainType, Error, Mailbox, Owner, Result, invalid};
use crate::smtp::address::{EmailAddress, is_atext, normalize_domain, validate_local_part};
use crate::store::{Store, organization as rows};

/// Collisions are resolved by appending 2, 3, … up to this number.
const MAX_SUFFIX: u32 = 99;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Var { name: char, first: Option<usize> },
}

/// A parsed template: the local part with variables, and a literal domain.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
    domain: String,
}

impl Template {
    pub fn parse(input: &str) -> Result<Template, String> {
        let s = input.trim();
        let (local, domain) = s
            .rsplit_once('@')
            .ok_or_else(|| format!("template `{s}` has no @domain part"))?;
        let domain = normalize_domain(domain).map_err(|e| format!("template `{s}`: {e}"))?;
        let mut parts = Vec::new();
        let mut chars = local.chars().peekable();
        let mut literal = String::new();
        while let Some(c) = chars.next() {
            if c != '%' {
                if c != '.' && !is_atext(c) {
                    return Err(format!(
                        "template `{s}` contains `{c}`, which an address cannot hold"
                    ));
                }
                literal.push(c);
                continue;
            }
            let mut first = None;
            if let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                chars.next();
                if d == 0 {
                    return Err(format!("template `{s}`: %0 takes no characters"));
                }
                first = Some(d as usize);
            }
            match chars.next() {
                Some(name @ ('g' | 's' | 'i' | 'm' | 'd')) => {
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Var { name, first });
                }
                Some(other) => {
                    return Err(format!(
                        "template `{s}`: unknown variable %{other}; use %g, %s, %i, %m or %d (with an optional length, e.g. %1g)"
                    ));
                }
                None => return Err(format!("template `{s}` ends with a lone %")),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        if !parts.iter().any(|p| matches!(p, Part::Var { .. })) {
            return Err(format!(
                "template `{s}` has no variable, so every mailbox would get the same address"
            ));
        }
        Ok(Template { parts, domain })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The local part for `m`, or `None` when the variables leave nothing usable
    /// (e.g. `%g` for a mailbox without a given name).
    pub fn local_part(&self, m: &Mailbox) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Var { name, first } => {
                    let value = match name {
                        'g' => &m.given_name,
                        's' => &m.surname,
                        'i' => &m.initials,
                        'm' => &m.alias,
                        _ => &m.display_name,
                    };
                    let clean: String = value
                        .chars()
                        .filter(|&c| c == '.' || (is_atext(c) && c != '%'))
                        .collect();
                    match first {
                        Some(n) => out.extend(clean.chars().take(*n)),
                        None => out.push_str(&clean),
                    }
                }
            }
        }
        // Collapse the dots an empty variable leaves behind ("%g.%s" without %g).
        let local = out
            .to_lowercase()
            .split('.')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(".");
        validate_local_part(&local).ok().map(|_| local)
    }
}

/// The policy that applies to `m`: the highest-priority one whose filter matches.
pub fn applicable<'a>(dir: &'a Directory, m: &Mailbox) -> Option<&'a AddressPolicy> {
    dir.policies()
        .iter()
        .filter(|p| match &p.filter_domain {
            None => true,
            Some(d) => m.primary_address.domain() == d,
        })
        .min_by_key(|p| (p.priority, p.id))
}

/// The addresses `policy` gives `m` that `m` does not have yet, each unique in the
/// organization: on a collision with another recipient, `alice.smith2@…`, `…3@…`.
pub fn generate(dir: &Directory, m: &Mailbox, policy: &AddressPolicy) -> Vec<EmailAddress> {
    let mine = |a: &EmailAddress| {
        m.primary_address.key() == a.key() || m.proxy_addresses.iter().any(|p| p.key() == a.key())
    };
    let mut out: Vec<EmailAddress> = Vec::new();
    for t in policy
        .templates
        .iter()
        .filter_map(|t| Template::parse(t).ok())
    {
        let Some(local) = t.local_part(m) else {
            continue;
        };
        for n in 1..=MAX_SUFFIX {
            let candidate = if n == 1 {
                local.clone()
            } else {
                format!("{local}{n}")
            };
            let Ok(a) = EmailAddress::from_parts(&candidate, t.domain()) else {
                break;
            };
            if mine(&a) || out.iter().any(|o| o.key() == a.key()) {
                break; // already has it
            }
            if dir.owner_of(&a).is_none() {
                out.push(a);
                break;
            }
            // Taken by another recipient: try the next suffix.
        }
    }
    out
}

#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyInput {
    pub name: String,
    pub priority: Option<i64>,
    pub filter_domain: Option<String>,
    pub templates: Vec<String>,
}

fn check_templates(dir: &Directory, templates: &[String]) -> Result<Vec<String>> {
    if templates.is_empty() {
        return Err(invalid(
            "templates",
            "a policy needs at least one address template",
        ));
    }
    templates
        .iter()
        .map(|t| {
            let parsed = Template::parse(t).map_err(|e| invalid("templates", e))?;
            match dir.accepted_domain(parsed.domain()) {
                Some(d) if d.domain_type != DomainType::ExternalRelay => Ok(t.trim().to_string()),
                Some(d) => Err(invalid(
                    "templates",
                    format!(
                        "{} is an external-relay domain; policies may only use local domains",
                        d.name
                    ),
                )),
                None => Err(invalid(
                    "templates",
                    format!(
                        "{} in template `{t}` is not an accepted domain",
                        parsed.domain()
                    ),
                )),
            }
        })
        .collect()
}

fn check_filter(filter: Option<&str>) -> Result<Option<String>> {
    match filter.map(str::trim) {
        None | Some("") | Some("*") | Some("all") => Ok(None),
        Some(d) => normalize_domain(d)
            .map(Some)
            .map_err(|e| invalid("filter_domain", e.to_string())),
    }
}

pub fn find<'a>(dir: &'a Directory, name: &str) -> Result<&'a AddressPolicy> {
    dir.policies()
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name.trim()))
        .ok_or_else(|| Error::NotFound(format!("no e-mail address policy named {name}")))
}

pub async fn create(store: &Store, input: PolicyInput) -> Result<AddressPolicy> {
    let dir = Directory::load(store).await?;
    let name = input.name.trim().to_string();
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            "policy name must be 1 to 256 printable characters",
        ));
    }
    if dir
        .policies()
        .iter()
        .any(|p| p.name.eq_ignore_ascii_case(&name))
    {
        return Err(Error::Conflict(format!(
            "an e-mail address policy named {name} already exists"
        )));
    }
    let priority = input
        .priority
        .unwrap_or_else(|| dir.policies().iter().map(|p| p.priority).max().unwrap_or(0) + 1);
    if priority < 1 {
        return Err(invalid(
            "priority",
            "priority must be 1 or more (1 is the highest)",
        ));
    }
    let mut p = AddressPolicy {
        id: 0,
        name,
        priority,
        filter_domain: check_filter(input.filter_domain.as_deref())?,
        templates: check_templates(&dir, &input.templates)?,
    };
    let mut tx = store.pool().begin().await?;
    p.id = rows::upsert_policy(&mut tx, &p).await.map_err(|e| {
        super::conflict_on_unique(e, || "a policy of that name already exists".into())
    })?;
    tx.commit().await?;
    Ok(p)
}

pub async fn update(store: &Store, name: &str, input: PolicyInput) -> Result<AddressPolicy> {
    let dir = Directory::load(store).await?;
    let mut p = find(&dir, name)?.clone();
    if let Some(pr) = input.priority {
        if pr < 1 {
            return Err(invalid(
                "priority",
                "priority must be 1 or more (1 is the highest)",
            ));
        }
        p.priority = pr;
    }
    if input.filter_domain.is_some() {
        p.filter_domain = check_filter(input.filter_domain.as_deref())?;
    }
    if !input.templates.is_empty() {
        p.templates = check_templates(&dir, &input.templates)?;
    }
    let mut tx = store.pool().begin().await?;
    rows::upsert_policy(&mut tx, &p).await?;
    tx.commit().await?;
    Ok(p)
}

pub async fn remove(store: &Store, name: &str) -> Result<AddressPolicy> {
    let dir = Directory::load(store).await?;
    let p = find(&dir, name)?.clone();
    let mut tx = store.pool().begin().await?;
    rows::delete_policy(&mut tx, p.id).await?;
    tx.commit().await?;
    Ok(p)
}

/// What applying a policy did to one mailbox.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Stamped {
    pub mailbox: EmailAddress,
    pub added: Vec<EmailAddress>,
}

/// Stamps the policy's addresses onto every existing mailbox it applies to (the
/// console's "Apply"; Exchange's Recipient Update Service, but synchronous).
/// Mailboxes that a higher-priority policy governs are left alone.
pub async fn apply(store: &Store, name: &str) -> Result<Vec<Stamped>> {
    let mut dir = Directory::load(store).await?;
    let policy = find(&dir, name)?.clone();
    let mut report = Vec::new();
    let ids: Vec<i64> = dir.mailboxes().iter().map(|m| m.id).collect();
    for id in ids {
        let Some(m) = dir.mailbox(id) else { continue };
        if applicable(&dir, m).map(|p| p.id) != Some(policy.id) {
            continue;
        }
        let added = generate(&dir, m, &policy);
        if added.is_empty() {
            continue;
        }
        let mut tx = store.pool().begin().await?;
        for a in &added {
            rows::insert_address(&mut tx, Owner::Mailbox(id), a, false)
                .await
                .map_err(|e| {
                    super::conflict_on_unique(e, || {
                        format!("address {a} was taken meanwhile; apply again")
                    })
                })?;
        }
        tx.commit().await?;
        report.push(Stamped {
            mailbox: m.primary_address.clone(),
            added,
        });
        // Reload so the next mailbox sees the addresses just taken.
        dir = Directory::load(store).await?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::tests::{addr, sample};

    fn mailbox(given: &str, surname: &str, alias: &str) -> Mailbox {
        Mailbox {
            id: 0,
            primary_address: addr(&format!("{alias}@example.com")),
            proxy_addresses: vec![],
            display_name: format!("{given} {surname}"),
            given_name: given.into(),
            surname: surname.into(),
            initials: "Q".into(),
            alias: alias.into(),
            password_hash: None,
            quota_mb: None,
            enabled: true,
            folder: alias.into(),
        }
    }

    #[test]
    fn templates_expand() {
        let m = mailbox("Anna Maria", "O'Neil-Smith", "anna");
        let local = |t: &str| Template::parse(t).unwrap().local_part(&m);
        assert_eq!(
            local("%g.%s@example.com").as_deref(),
            Some("annamaria.o'neil-smith")
        );
        assert_eq!(local("%1g%s@example.com").as_deref(), Some("ao'neil-smith"));
        assert_eq!(local("%3s@example.com").as_deref(), Some("o'n"));
        assert_eq!(local("%m@example.com").as_deref(), Some("anna"));
        assert_eq!(
            local("%g%i%s@example.com").as_deref(),
            Some("annamariaqo'neil-smith")
        );
        assert_eq!(local("x.%m@example.com").as_deref(), Some("x.anna"));
        let nobody = mailbox("", "", "n");
        assert_eq!(
            Template::parse("%g@example.com")
                .unwrap()
                .local_part(&nobody),
            None
        );
        assert_eq!(
            Template::parse("%g.%s.%m@example.com")
                .unwrap()
                .local_part(&nobody)
                .as_deref(),
            Some("n")
        );
    }

    #[test]
    fn bad_templates() {
        for (t, why) in [
            ("%g.%s", "no @domain"),
            ("%x@example.com", "unknown variable %x"),
            ("postmaster@example.com", "no variable"),
            ("%g %s@example.com", "cannot hold"),
            ("%g@exa mple.com", "not valid"),
            ("%g%@example.com", "lone %"),
            ("%0g@example.com", "%0"),
        ] {
            let e = Template::parse(t).unwrap_err();
            assert!(e.contains(why), "{t}: {e}");
        }
    }

    #[test]
    fn generation_avoids_collisions() {
        let dir = sample(); // has alice@ and alice.smith@ (mailbox 1) and bob@ (2)
        let policy = AddressPolicy {
            id: 1,
            name: "p".into(),
            priority: 1,
            filter_domain: None,
            templates: vec![
                "%g.%s@example.com".into(),
                "%1g%s@example.com".into(),
                "%m@example.com".into(),
            ],
        };
        let mut m = mailbox("Alice", "Smith", "alice2");
        m.id = 5;
        let got: Vec<String> = generate(&dir, &m, &policy)
            .iter()
            .map(|a| a.to_string())
            .collect();
        // alice.smith@ belongs to mailbox 1, so the new one gets alice.smith2@.
        assert_eq!(got, vec!["alice.smith2@example.com", "asmith@example.com"]);
    }

    #[test]
    fn highest_priority_applies() {
        let mut rows = sample();
        let mk = |id, priority, filter: Option<&str>| AddressPolicy {
            id,
            name: format!("p{id}"),
            priority,
            filter_domain: filter.map(String::from),
            templates: vec!["%m@example.com".into()],
        };
        rows = Directory::from_rows(crate::store::organization::OrgRows {
            policies: vec![
                mk(1, 5, None),
                mk(2, 2, Some("example.com")),
                mk(3, 1, Some("other.test")),
            ],
            ..rows_of(&rows)
        });
        let m = mailbox("A", "B", "ab");
        assert_eq!(applicable(&rows, &m).map(|p| p.id), Some(2));
    }

    fn rows_of(d: &Directory) -> crate::store::organization::OrgRows {
        d.rows.clone()
    }
}
