//! Routing (PRODUCT §6): which send connector carries mail for a remote domain.
//!
//! For a domain, the enabled connectors whose address spaces match it most
//! specifically form the candidates (`contoso.com` beats `*.contoso.com` beats
//! `*.com` beats `*`); among them the lowest cost goes first and equal costs are
//! shuffled so they share the load; the rest follow in cost order as failover.
//! The next hop is named after the whole lowest-cost group, so its name (the
//! Retry gate's key) does not depend on the shuffle.
//! No I/O here: the queue manager asks, `delivery/` connects.

pub mod connector;

use std::fmt;
use std::sync::Arc;

use rand::seq::SliceRandom;
use serde::Serialize;

pub use connector::SendConnector;

/// The domain part of an address space.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DomainPattern {
    /// `*`: every domain.
    Any,
    /// `contoso.com`: that domain only.
    Exact(String),
    /// `*.contoso.com`: contoso.com and every subdomain.
    Subtree(String),
}

/// One address space of a connector with its cost (1–100, lower is preferred).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressSpace {
    pub pattern: DomainPattern,
    pub cost: u8,
}

impl AddressSpace {
    /// `*`, `contoso.com`, `*.contoso.com`, each optionally `;COST`; Exchange's
    /// `SMTP:` type prefix is accepted.
    pub fn parse(input: &str) -> Result<AddressSpace, String> {
        let s = input.trim();
        let s = s
            .get(..5)
            .filter(|p| p.eq_ignore_ascii_case("smtp:"))
            .map_or(s, |_| &s[5..]);
        let (pattern, cost) = match s.split_once(';') {
            Some((p, c)) => {
                let cost = c
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|c| (1..=100).contains(c))
                    .ok_or_else(|| format!("cost in `{input}` must be a number from 1 to 100"))?;
                (p.trim(), cost)
            }
            None => (s, 1),
        };
        let domain = |d: &str| {
            crate::smtp::address::normalize_domain(d).map_err(|e| {
                format!(
                    "`{input}` is not an address space (`*`, `contoso.com` or `*.contoso.com`): {e}"
                )
            })
        };
        let pattern = if pattern == "*" {
            DomainPattern::Any
        } else if let Some(rest) = pattern.strip_prefix("*.") {
            DomainPattern::Subtree(domain(rest)?)
        } else {
            DomainPattern::Exact(domain(pattern)?)
        };
        Ok(AddressSpace { pattern, cost })
    }

    /// How specifically this space matches `domain` (higher wins), or `None`.
    /// `domain` must be normalised (lower case, no trailing dot).
    pub fn specificity(&self, domain: &str) -> Option<usize> {
        let labels = |d: &str| d.split('.').count();
        match &self.pattern {
            DomainPattern::Any => Some(0),
            DomainPattern::Exact(d) => (d == domain).then(|| 2 * labels(d) + 1),
            DomainPattern::Subtree(d) => {
                let inside = domain == d
                    || (domain.len() > d.len()
                        && domain.ends_with(d.as_str())
                        && domain.as_bytes()[domain.len() - d.len() - 1] == b'.');
                inside.then(|| 2 * labels(d))
            }
        }
    }
}

impl fmt::Display for AddressSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pattern {
            DomainPattern::Any => f.write_str("*")?,
            DomainPattern::Exact(d) => f.write_str(d)?,
            DomainPattern::Subtree(d) => write!(f, "*.{d}")?,
        }
        write!(f, ";{}", self.cost)
    }
}

impl Serialize for AddressSpace {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

crate::string_schema!(
    AddressSpace,
    "AddressSpace",
    "`*`, `contoso.com` or `*.contoso.com`, optionally `;COST` (1-100)"
);

/// Where mail for one domain goes.
#[derive(Debug, Clone)]
pub struct Route {
    /// Names the Remote delivery queue: connector and smart hosts, or connector
    /// and domain for DNS routing.
    pub key: String,
    /// The chosen connector first, then failover candidates in cost order.
    pub connectors: Vec<Arc<SendConnector>>,
}

impl Route {
    /// A message of `size` bytes is over the chosen connector's limit: it fails
    /// with `5.3.4` without a connection, whatever the next hop's state.
    pub fn too_big(&self, size: u64) -> bool {
        self.connectors
            .first()
            .is_some_and(|c| size > c.max_message_size)
    }
}

/// The next-hop key for mail to `domain` over `c`.
pub fn hop_key(c: &SendConnector, domain: &str) -> String {
    if c.dns_routing {
        format!("{} [{domain}]", c.name)
    } else {
        let hosts: Vec<String> = c.smart_hosts.iter().map(ToString::to_string).collect();
        format!("{} [{}]", c.name, hosts.join(","))
    }
}

/// Picks the connectors for `domain` (normalised), or `None` when no enabled
/// connector covers it (the Unreachable queue).
pub fn route(connectors: &[Arc<SendConnector>], domain: &str) -> Option<Route> {
    // (specificity, cost, connector) of each enabled connector's best match.
    let mut matches: Vec<(usize, u8, Arc<SendConnector>)> = connectors
        .iter()
        .filter(|c| c.enabled)
        .filter_map(|c| {
            c.address_spaces
                .iter()
                .filter_map(|s| s.specificity(domain).map(|sp| (sp, s.cost)))
                .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
                .map(|(sp, cost)| (sp, cost, c.clone()))
        })
        .collect();
    let best = matches.iter().map(|m| m.0).max()?;
    matches.retain(|m| m.0 == best);
    // Shuffle first, then a stable sort by cost: equal costs end up in random order.
    matches.shuffle(&mut rand::thread_rng());
    matches.sort_by_key(|m| m.1);
    let lowest = matches.first().map(|m| m.1)?;
    // The hop is named after the whole lowest-cost group, in name order, never
    // after whichever of them the shuffle put first: the key is the Retry gate
    // and the queue's name, so it must be the same on every run (a probe that
    // drew another key would open the gate for every parked message at once).
    let mut group: Vec<String> = matches
        .iter()
        .filter(|m| m.1 == lowest)
        .map(|m| hop_key(&m.2, domain))
        .collect();
    group.sort();
    group.dedup();
    let key = group.join(" + ");
    let connectors: Vec<Arc<SendConnector>> = matches.into_iter().map(|m| m.2).collect();
    Some(Route { key, connectors })
}

#[cfg(test)]
mod tests {
    use super::connector::{SendConnector, SendUsage, SmartHost};
    use super::*;

    fn conn(name: &str, spaces: &[&str]) -> Arc<SendConnector> {
        let mut c = SendConnector::template(name, SendUsage::Custom);
        c.address_spaces = spaces
            .iter()
            .map(|s| AddressSpace::parse(s).unwrap())
            .collect();
        c.dns_routing = false;
        c.smart_hosts =
            vec![SmartHost::parse(&format!("{}.relay.test", name.to_lowercase())).unwrap()];
        Arc::new(c)
    }

    fn names(r: &Route) -> Vec<&str> {
        r.connectors.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn address_spaces_parse_and_match() {
        let p = |s: &str| AddressSpace::parse(s).unwrap();
        assert_eq!(p("*").to_string(), "*;1");
        assert_eq!(p("SMTP:Contoso.COM;5").to_string(), "contoso.com;5");
        assert_eq!(p("*.contoso.com;100").to_string(), "*.contoso.com;100");
        for bad in ["", "*;0", "*;101", "a;b", "*.", "a..b", "exa mple.com"] {
            assert!(AddressSpace::parse(bad).is_err(), "{bad}");
        }
        let sub = p("*.contoso.com");
        assert!(sub.specificity("contoso.com").is_some());
        assert!(sub.specificity("mail.contoso.com").is_some());
        assert!(sub.specificity("notcontoso.com").is_none());
        assert!(p("contoso.com").specificity("contoso.com") > sub.specificity("contoso.com"));
        assert!(sub.specificity("a.contoso.com") > p("*.com").specificity("a.contoso.com"));
        assert!(p("*.com").specificity("x.com") > p("*").specificity("x.com"));
    }

    #[test]
    fn most_specific_then_cost_then_failover() {
        let all = vec![
            conn("Star", &["*;1"]),
            conn("Contoso", &["contoso.com;10"]),
            conn("Backup", &["contoso.com;50"]),
        ];
        let r = route(&all, "contoso.com").unwrap();
        assert_eq!(
            names(&r),
            ["Contoso", "Backup"],
            "specific beats * even at higher cost"
        );
        assert_eq!(r.key, "Contoso [contoso.relay.test]");
        assert_eq!(names(&route(&all, "fabrikam.com").unwrap()), ["Star"]);
    }

    #[test]
    fn disabled_and_unmatched() {
        let mut only = (*conn("Only", &["contoso.com"])).clone();
        assert!(route(&[Arc::new(only.clone())], "fabrikam.com").is_none());
        only.enabled = false;
        assert!(route(&[Arc::new(only)], "contoso.com").is_none());
    }

    #[test]
    fn equal_costs_share_the_load() {
        let all = vec![
            conn("A", &["*;5"]),
            conn("B", &["*;5"]),
            conn("C", &["*;9"]),
        ];
        let mut firsts = std::collections::HashSet::new();
        for _ in 0..200 {
            let r = route(&all, "x.test").unwrap();
            assert_eq!(r.connectors[2].name, "C");
            firsts.insert(r.connectors[0].name.clone());
        }
        assert_eq!(firsts.len(), 2, "both equal-cost connectors get picked");
    }

    #[test]
    fn equal_cost_hop_identity_is_deterministic() {
        let all = vec![
            conn("B", &["*;5"]),
            conn("A", &["*;5"]),
            conn("C", &["*;9"]),
        ];
        let keys: std::collections::HashSet<String> = (0..200)
            .map(|_| route(&all, "x.test").unwrap().key)
            .collect();
        assert_eq!(
            keys.into_iter().collect::<Vec<_>>(),
            vec!["A [a.relay.test] + B [b.relay.test]".to_string()],
            "one key whichever connector is tried first"
        );
        // A single lowest-cost connector keeps its own key.
        let one = vec![conn("A", &["*;5"]), conn("C", &["*;9"])];
        assert_eq!(route(&one, "x.test").unwrap().key, "A [a.relay.test]");
    }

    #[test]
    fn dns_hop_keys_name_the_domain() {
        let mut c = SendConnector::template("Internet", SendUsage::Internet);
        c.address_spaces = vec![AddressSpace::parse("*").unwrap()];
        assert_eq!(hop_key(&c, "example.org"), "Internet [example.org]");
    }
}
