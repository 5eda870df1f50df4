//! Domain patterns: `*` (any domain), `example.com` (exactly), `*.example.com`
//! (the domain and every subdomain). Accepted domains, remote domains and send
//! connector address spaces all use them; the most specific match wins.

use std::fmt;

use crate::smtp::address::normalize_domain;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DomainPattern {
    Any,
    Exact(String),
    /// The domain itself and all its subdomains.
    Subtree(String),
}

impl DomainPattern {
    pub fn parse(input: &str) -> Result<DomainPattern, String> {
        let s = input.trim();
        if s == "*" {
            return Ok(DomainPattern::Any);
        }
        let (subtree, name) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let name = normalize_domain(name).map_err(|e| e.to_string())?;
        Ok(if subtree {
            DomainPattern::Subtree(name)
        } else {
            DomainPattern::Exact(name)
        })
    }

    /// Does this pattern cover `domain` (already lower-case)?
    pub fn matches(&self, domain: &str) -> bool {
        match self {
            DomainPattern::Any => true,
            DomainPattern::Exact(d) => d == domain,
            DomainPattern::Subtree(d) => {
                domain == d
                    || (domain.len() > d.len()
                        && domain.ends_with(d.as_str())
                        && domain.as_bytes()[domain.len() - d.len() - 1] == b'.')
            }
        }
    }

    /// Higher is more specific: exact beats any subtree, a longer subtree beats a
    /// shorter one, and `*` is the least specific.
    pub fn specificity(&self) -> (u8, usize) {
        match self {
            DomainPattern::Any => (0, 0),
            DomainPattern::Subtree(d) => (1, d.split('.').count()),
            DomainPattern::Exact(d) => (2, d.split('.').count()),
        }
    }

    /// The domain named, if any (`None` for `*`).
    pub fn domain(&self) -> Option<&str> {
        match self {
            DomainPattern::Any => None,
            DomainPattern::Exact(d) | DomainPattern::Subtree(d) => Some(d),
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Any => f.write_str("*"),
            DomainPattern::Exact(d) => f.write_str(d),
            DomainPattern::Subtree(d) => write!(f, "*.{d}"),
        }
    }
}

/// The item whose pattern matches `domain` most specifically.
pub fn most_specific<'a, T>(
    items: impl IntoIterator<Item = &'a T>,
    pattern: impl Fn(&T) -> Option<DomainPattern>,
    domain: &str,
) -> Option<&'a T> {
    items
        .into_iter()
        .filter_map(|item| {
            pattern(item)
                .filter(|p| p.matches(domain))
                .map(|p| (p.specificity(), item))
        })
        .max_by_key(|(spec, _)| *spec)
        .map(|(_, item)| item)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let any = DomainPattern::parse("*").unwrap();
        let exact = DomainPattern::parse("Example.com").unwrap();
        let sub = DomainPattern::parse("*.example.com").unwrap();
        assert_eq!(exact.to_string(), "example.com");
        assert_eq!(sub.to_string(), "*.example.com");
        assert!(any.matches("x.org"));
        assert!(exact.matches("example.com") && !exact.matches("a.example.com"));
        assert!(sub.matches("example.com") && sub.matches("a.b.example.com"));
        assert!(!sub.matches("badexample.com"));
        assert!(DomainPattern::parse("*.").is_err());
        assert!(DomainPattern::parse("a.*.com").is_err());
        assert!(DomainPattern::parse("exa mple.com").is_err());
    }

    #[test]
    fn most_specific_wins() {
        let pats = [
            "*",
            "*.example.com",
            "sales.example.com",
            "*.sales.example.com",
        ];
        let pick =
            |d: &str| most_specific(pats.iter(), |p| DomainPattern::parse(p).ok(), d).copied();
        assert_eq!(pick("sales.example.com"), Some("sales.example.com"));
        assert_eq!(pick("eu.sales.example.com"), Some("*.sales.example.com"));
        assert_eq!(pick("example.com"), Some("*.example.com"));
        assert_eq!(pick("other.org"), Some("*"));
    }
}
