//! E-mail addresses and domain names (RFC 5321 §4.1.2, RFC 6531 for UTF-8).
//!
//! One address type serves the whole server: the directory stores it, the SMTP
//! session parses it out of `MAIL FROM`/`RCPT TO`, the queue and routing key on it.
//! Domains compare case-insensitively; local parts are compared case-insensitively
//! too (as Exchange does), so [`EmailAddress::key`] is the lookup key everywhere.

use std::fmt;

/// Longest local part (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART: usize = 64;
/// Longest domain (RFC 5321 §4.5.3.1.2).
pub const MAX_DOMAIN: usize = 255;
/// Longest path (RFC 5321 §4.5.3.1.3), without the angle brackets.
pub const MAX_ADDRESS: usize = 254;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address is empty")]
    Empty,
    #[error("address `{0}` has no @domain part")]
    NoDomain(String),
    #[error("address `{0}` is longer than {MAX_ADDRESS} characters")]
    TooLong(String),
    #[error("local part of `{0}` is not valid: {1}")]
    BadLocalPart(String, &'static str),
    #[error("domain `{0}` is not valid: {1}")]
    BadDomain(String, &'static str),
}

/// A validated `local@domain` address. The domain is stored lower-case; the local
/// part keeps the case it was given (it is shown back that way).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress {
    local: String,
    domain: String,
}

impl EmailAddress {
    /// Parses an address as an admin or a client writes it: `alice@example.com`.
    /// Only dot-atom local parts are accepted here; quoted local parts are handled
    /// (and mostly refused) by the SMTP path parser.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        if s.len() > MAX_ADDRESS {
            return Err(AddressError::TooLong(s.to_string()));
        }
        let at = s
            .rfind('@')
            .ok_or_else(|| AddressError::NoDomain(s.to_string()))?;
        let (local, domain) = (&s[..at], &s[at + 1..]);
        validate_local_part(local).map_err(|why| AddressError::BadLocalPart(s.to_string(), why))?;
        let domain = normalize_domain(domain)?;
        Ok(EmailAddress {
            local: local.to_string(),
            domain,
        })
    }

    /// Builds an address from parts that were validated separately.
    pub fn from_parts(local: &str, domain: &str) -> Result<Self, AddressError> {
        Self::parse(&format!("{local}@{domain}"))
    }

    pub fn local_part(&self) -> &str {
        &self.local
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The case-folded form used as the unique key in the directory and queue.
    pub fn key(&self) -> String {
        format!("{}@{}", self.local.to_lowercase(), self.domain)
    }

    /// True when either part needs SMTPUTF8 (RFC 6531).
    pub fn is_utf8(&self) -> bool {
        !self.local.is_ascii() || !self.domain.is_ascii()
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl std::str::FromStr for EmailAddress {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for EmailAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

crate::string_schema!(
    EmailAddress,
    "EmailAddress",
    "An e-mail address (local@domain)"
);

/// `atext` of RFC 5322 §3.2.3, extended with any non-ASCII character (RFC 6531).
pub fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !c.is_control())
}

/// A dot-atom local part: atext runs separated by single dots.
pub fn validate_local_part(local: &str) -> Result<(), &'static str> {
    if local.is_empty() {
        return Err("it is empty");
    }
    if local.len() > MAX_LOCAL_PART {
        return Err("it is longer than 64 octets");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("dots may not lead, trail or repeat");
    }
    if let Some(c) = local.chars().find(|&c| c != '.' && !is_atext(c)) {
        return Err(if c == '"' {
            "quoted local parts are not accepted"
        } else if c.is_whitespace() {
            "it contains white space"
        } else {
            "it contains a character not allowed in an address"
        });
    }
    Ok(())
}

/// Validates a domain name and returns it lower-cased. Labels are LDH
/// (letters, digits, hyphen; RFC 1035/5890) or U-labels with non-ASCII letters.
/// A trailing dot is refused: it is a classic relay trick and never needed in mail.
pub fn normalize_domain(domain: &str) -> Result<String, AddressError> {
    let bad = |why| AddressError::BadDomain(domain.to_string(), why);
    if domain.is_empty() {
        return Err(bad("it is empty"));
    }
    if domain.len() > MAX_DOMAIN {
        return Err(bad("it is longer than 255 octets"));
    }
    if domain.ends_with('.') {
        return Err(bad("it ends with a dot"));
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(bad("it has an empty label"));
        }
        if label.len() > 63 {
            return Err(bad("a label is longer than 63 octets"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label starts or ends with a hyphen"));
        }
        if !label.chars().all(|c| {
            c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric())
        }) {
            return Err(bad("it contains a character not allowed in a domain name"));
        }
    }
    if domain
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(bad(
            "the last label is numeric (an IP address is not a domain)",
        ));
    }
    Ok(domain.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalizes() {
        let a = EmailAddress::parse("Alice.Smith@Example.COM").unwrap();
        assert_eq!(a.local_part(), "Alice.Smith");
        assert_eq!(a.domain(), "example.com");
        assert_eq!(a.key(), "alice.smith@example.com");
        assert_eq!(a.to_string(), "Alice.Smith@example.com");
        assert!(!a.is_utf8());
    }

    #[test]
    fn accepts_utf8() {
        let a = EmailAddress::parse("Jörg@Bücher.example").unwrap();
        assert!(a.is_utf8());
        assert_eq!(a.key(), "jörg@bücher.example");
    }

    #[test]
    fn refuses_bad_addresses() {
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "al ice@example.com",
            ".alice@example.com",
            "alice.@example.com",
            "a..b@example.com",
            "\"a@b\"@example.com",
            "alice@example.com.",
            "alice@-example.com",
            "alice@exa_mple.com",
            "alice@example..com",
            "alice@1.2.3.4",
        ] {
            assert!(
                EmailAddress::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(EmailAddress::parse(&long_local).is_err());
        let long_label = format!("a@{}.com", "b".repeat(64));
        assert!(EmailAddress::parse(&long_label).is_err());
    }

    #[test]
    fn domains() {
        assert_eq!(
            normalize_domain("Mail.Example.COM").unwrap(),
            "mail.example.com"
        );
        assert_eq!(normalize_domain("localhost").unwrap(), "localhost");
        assert!(normalize_domain("exa mple.com").is_err());
        assert!(normalize_domain("example.com.").is_err());
    }
}
