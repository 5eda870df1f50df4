//! Mail-exchanger lookup for outbound delivery (PRODUCT §6), on hickory-resolver.
//!
//! Why a module of its own rather than calling the resolver from the queue: the
//! SMTP rules for turning a domain into a list of hosts are easy to get subtly
//! wrong, and the queue needs a *classified* answer, not a resolver error.
//!
//! * MX records are tried by preference, randomly shuffled among equal
//!   preference so load spreads as the publisher intended (RFC 5321 §5.1).
//! * A domain that exists but has no MX gets the implicit MX: the domain itself,
//!   preference 0 (RFC 5321 §5.1).
//! * A null MX (RFC 7505, target ".") means the domain accepts no mail: a
//!   permanent failure, never retried.
//! * NXDOMAIN is permanent; SERVFAIL, REFUSED, timeouts and I/O errors are
//!   transient, so the message is deferred and retried instead of bounced.
//! * Address literals (`[192.0.2.1]`, `[IPv6:2001:db8::1]`) need no DNS at all.
//!
//! Every name is queried as a fully qualified name (no search domains, ndots 0):
//! a mail domain is never relative to the server's own domain. Answers are cached
//! for their TTL by the resolver.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{Name, ResolveError, TokioResolver};
use rand::Rng;
use rand::seq::SliceRandom;

/// Per-query timeout of [`MailResolver::new`].
const TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per query of [`MailResolver::new`].
const ATTEMPTS: usize = 2;
/// Records kept in the resolver's cache.
const CACHE_SIZE: usize = 1024;

/// Resolver for outbound delivery (PRODUCT §6). Cheap to clone (Arc inside).
#[derive(Clone)]
pub struct MailResolver {
    resolver: Arc<TokioResolver>,
}

/// One host to try for a domain, in the order [`MailResolver::mail_hosts`] gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailHost {
    /// Lower-case host name without the trailing dot; for an address literal,
    /// the literal, lower-cased (e.g. `[127.0.0.1]`, `[ipv6:::1]`).
    pub name: String,
    /// MX preference (0 for an implicit MX or an address literal).
    pub preference: u16,
    /// True when the domain has no MX and the domain itself is used (RFC 5321 §5.1).
    pub implicit: bool,
    /// The address of an address-literal domain; no DNS lookup is needed.
    pub literal: Option<IpAddr>,
}

/// Why a lookup gave no usable host, classified for the queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("{0} publishes a null MX (RFC 7505): it accepts no mail")]
    NullMx(String),
    #[error("domain {0} does not exist (NXDOMAIN)")]
    NoSuchDomain(String),
    #[error("host {0} has no A or AAAA record")]
    NoAddress(String),
    #[error("DNS lookup failed: {0}")]
    Transient(String),
}

impl DnsError {
    /// RFC 3463 status for an NDR/deferral. `NoAddress` is transient: the MX host
    /// may come back.
    pub fn status(&self) -> &'static str {
        match self {
            DnsError::NullMx(_) => "5.1.10",
            DnsError::NoSuchDomain(_) => "5.1.2",
            DnsError::NoAddress(_) | DnsError::Transient(_) => "4.4.3",
        }
    }

    /// True for answers that will not change on retry (null MX, NXDOMAIN).
    pub fn is_permanent(&self) -> bool {
        matches!(self, DnsError::NullMx(_) | DnsError::NoSuchDomain(_))
    }
}

impl MailResolver {
    /// `nameservers` empty = the system resolver (/etc/resolv.conf and /etc/hosts);
    /// otherwise only these (UDP, TCP for truncated answers), no hosts file. Timeout
    /// 5 s, 2 attempts, no search domains, cache on (TTLs respected).
    pub fn new(nameservers: &[SocketAddr]) -> anyhow::Result<MailResolver> {
        Self::with_timeout(nameservers, TIMEOUT, ATTEMPTS)
    }

    /// [`MailResolver::new`] with another per-query `timeout` and number of
    /// `attempts` (tests use a short one).
    pub fn with_timeout(
        nameservers: &[SocketAddr],
        timeout: Duration,
        attempts: usize,
    ) -> anyhow::Result<MailResolver> {
        let (servers, mut opts) = if nameservers.is_empty() {
            let (config, opts) = hickory_resolver::system_conf::read_system_conf()
                .context("reading the system resolver configuration (/etc/resolv.conf)")?;
            (config.name_servers().to_vec(), opts)
        } else {
            let servers = nameservers
                .iter()
                .flat_map(|&addr| {
                    [Protocol::Udp, Protocol::Tcp]
                        .map(|protocol| NameServerConfig::new(addr, protocol))
                })
                .collect();
            (servers, ResolverOpts::default())
        };
        anyhow::ensure!(!servers.is_empty(), "no DNS name servers configured");
        opts.ndots = 0;
        opts.timeout = timeout;
        opts.attempts = attempts;
        opts.cache_size = CACHE_SIZE;
        // With the system resolver, /etc/hosts counts too (admins name smart
        // hosts there); with configured name servers, only they answer.
        opts.use_hosts_file = if nameservers.is_empty() {
            ResolveHosts::Always
        } else {
            ResolveHosts::Never
        };
        opts.edns0 = true;
        opts.try_tcp_on_error = true;
        let config = ResolverConfig::from_parts(None, vec![], servers);
        let resolver =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(opts)
                .build();
        Ok(MailResolver {
            resolver: Arc::new(resolver),
        })
    }

    /// The hosts to try for `domain`, in order: MX by preference, randomly
    /// shuffled among equal preference; the implicit MX when the domain exists
    /// but has no MX; one literal host for an address literal.
    pub async fn mail_hosts(&self, domain: &str) -> Result<Vec<MailHost>, DnsError> {
        if let Some(literal) = address_literal(domain) {
            let ip = literal.ok_or_else(|| DnsError::NoSuchDomain(domain.to_string()))?;
            return Ok(vec![MailHost {
                name: normalize(domain),
                preference: 0,
                implicit: false,
                literal: Some(ip),
            }]);
        }
        let domain = normalize(domain);
        let name = fqdn(&domain).ok_or_else(|| DnsError::NoSuchDomain(domain.clone()))?;
        let records: Vec<(u16, String)> = match self.resolver.mx_lookup(name).await {
            Ok(lookup) => lookup
                .iter()
                .map(|mx| (mx.preference(), normalize(&mx.exchange().to_ascii())))
                .collect(),
            Err(e) => match classify(&e) {
                Failure::NxDomain => return Err(DnsError::NoSuchDomain(domain)),
                Failure::NoData => Vec::new(),
                Failure::Transient(text) => {
                    return Err(DnsError::Transient(format!("MX {domain}: {text}")));
                }
            },
        };
        if records.iter().any(|(_, host)| host.is_empty()) {
            return Err(DnsError::NullMx(domain));
        }
        if records.is_empty() {
            return Ok(vec![MailHost {
                name: domain,
                preference: 0,
                implicit: true,
                literal: None,
            }]);
        }
        Ok(order_mx(records, &mut rand::thread_rng()))
    }

    /// The A and AAAA addresses of `host` (CNAMEs followed), IPv4 first, without
    /// duplicates. An IP address (or address literal) returns itself. When one of
    /// the two queries fails transiently but the other gives addresses, those are
    /// returned.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        if let Ok(ip) = host.trim().parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        if let Some(literal) = address_literal(host) {
            return literal
                .map(|ip| vec![ip])
                .ok_or_else(|| DnsError::NoAddress(host.to_string()));
        }
        let host = normalize(host);
        let name = fqdn(&host).ok_or_else(|| DnsError::NoAddress(host.clone()))?;
        let (v4, v6) = tokio::join!(
            self.resolver.ipv4_lookup(name.clone()),
            self.resolver.ipv6_lookup(name)
        );
        let mut addrs: Vec<IpAddr> = Vec::new();
        let mut transient = Vec::new();
        match v4 {
            Ok(lookup) => addrs.extend(lookup.iter().map(|a| IpAddr::V4(a.0))),
            Err(e) => {
                if let Failure::Transient(text) = classify(&e) {
                    transient.push(format!("A {host}: {text}"));
                }
            }
        }
        match v6 {
            Ok(lookup) => addrs.extend(lookup.iter().map(|a| IpAddr::V6(a.0))),
            Err(e) => {
                if let Failure::Transient(text) = classify(&e) {
                    transient.push(format!("AAAA {host}: {text}"));
                }
            }
        }
        let mut unique = Vec::with_capacity(addrs.len());
        for ip in addrs {
            if !unique.contains(&ip) {
                unique.push(ip);
            }
        }
        if !unique.is_empty() {
            Ok(unique)
        } else if !transient.is_empty() {
            Err(DnsError::Transient(transient.join("; ")))
        } else {
            Err(DnsError::NoAddress(host))
        }
    }
}

impl MailResolver {
    /// The TXT records of `name` (each record's strings joined), for the
    /// console's DNS check (SPF, DMARC). No records → an empty list.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        let host = normalize(name);
        let fq = fqdn(&host).ok_or_else(|| DnsError::NoSuchDomain(host.clone()))?;
        match self.resolver.txt_lookup(fq).await {
            Ok(lookup) => Ok(lookup
                .iter()
                .map(|t| {
                    t.txt_data()
                        .iter()
                        .map(|d| String::from_utf8_lossy(d).into_owned())
                        .collect::<String>()
                })
                .collect()),
            Err(e) => match classify(&e) {
                Failure::NxDomain | Failure::NoData => Ok(Vec::new()),
                Failure::Transient(text) => Err(DnsError::Transient(text)),
            },
        }
    }
}

/// A resolver error, reduced to what delivery cares about.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// The name does not exist.
    NxDomain,
    /// The name exists but has no record of the type asked for.
    NoData,
    /// Anything that may succeed later (SERVFAIL, REFUSED, timeout, I/O).
    Transient(String),
}

fn classify(e: &ResolveError) -> Failure {
    let Some(proto) = e.proto() else {
        return Failure::Transient(e.to_string());
    };
    match proto.kind() {
        ProtoErrorKind::NoRecordsFound { response_code, .. } => match *response_code {
            ResponseCode::NXDomain => Failure::NxDomain,
            ResponseCode::NoError => Failure::NoData,
            code => Failure::Transient(format!("server answered {code}")),
        },
        _ => Failure::Transient(proto.to_string()),
    }
}

/// `name` as an absolute DNS name; `None` if it is not a valid name. Non-ASCII
/// (IDN) names are converted to their `xn--` form.
fn fqdn(name: &str) -> Option<Name> {
    if name.is_empty() {
        return None;
    }
    let mut name = Name::from_utf8(name).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// Lower-cases `name` and strips surrounding blanks and one trailing dot; the
/// root name "." becomes "".
fn normalize(name: &str) -> String {
    let name = name.trim();
    name.strip_suffix('.').unwrap_or(name).to_lowercase()
}

/// `Some` if `domain` is an address literal (`[...]`, RFC 5321 §4.1.3): the
/// address, or `None` inside when the literal is malformed or of an unknown kind.
fn address_literal(domain: &str) -> Option<Option<IpAddr>> {
    let inner = domain.trim().strip_prefix('[')?.strip_suffix(']')?;
    let ip = match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
            inner[5..].parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        }
        _ => inner.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
    };
    Some(ip)
}

/// Orders MX `(preference, host)` records: by preference, shuffled among equal
/// preference; a host listed twice keeps its first (best) place.
fn order_mx<R: Rng + ?Sized>(mut records: Vec<(u16, String)>, rng: &mut R) -> Vec<MailHost> {
    records.shuffle(rng);
    // Stable: the shuffle decides the order within one preference.
    records.sort_by_key(|(preference, _)| *preference);
    let mut hosts: Vec<MailHost> = Vec::with_capacity(records.len());
    for (preference, name) in records {
        if !hosts.iter().any(|h| h.name == name) {
            hosts.push(MailHost {
                name,
                preference,
                implicit: false,
                literal: None,
            });
        }
    }
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    use hickory_resolver::proto::ProtoError;
    use hickory_resolver::proto::op::Query;

    fn mx(records: &[(u16, &str)]) -> Vec<(u16, String)> {
        records.iter().map(|(p, h)| (*p, h.to_string())).collect()
    }

    fn names(hosts: &[MailHost]) -> Vec<&str> {
        hosts.iter().map(|h| h.name.as_str()).collect()
    }

    #[test]
    fn order_is_by_preference() {
        let hosts = order_mx(
            mx(&[(30, "c"), (10, "a"), (20, "b")]),
            &mut rand::thread_rng(),
        );
        assert_eq!(names(&hosts), ["a", "b", "c"]);
        assert_eq!(hosts[1].preference, 20);
        assert!(hosts.iter().all(|h| !h.implicit && h.literal.is_none()));
    }

    #[test]
    fn equal_preference_is_shuffled() {
        let records = mx(&[(20, "z"), (10, "a"), (10, "b"), (10, "c")]);
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let hosts = order_mx(records.clone(), &mut rand::thread_rng());
            assert_eq!(hosts[3].name, "z");
            seen.insert(names(&hosts[..3]).join(","));
        }
        assert_eq!(seen.len(), 6, "all orders of a, b, c: {seen:?}");
    }

    #[test]
    fn duplicate_host_keeps_best_preference() {
        let hosts = order_mx(
            mx(&[(20, "a"), (10, "a"), (15, "b")]),
            &mut rand::thread_rng(),
        );
        assert_eq!(names(&hosts), ["a", "b"]);
        assert_eq!(hosts[0].preference, 10);
    }

    #[test]
    fn literals() {
        let v4 = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(address_literal("[127.0.0.1]"), Some(Some(v4)));
        assert_eq!(address_literal(" [127.0.0.1] "), Some(Some(v4)));
        assert_eq!(
            address_literal("[IPv6:::1]"),
            Some(Some("::1".parse().unwrap()))
        );
        assert_eq!(
            address_literal("[ipv6:2001:db8::1]"),
            Some(Some("2001:db8::1".parse().unwrap()))
        );
        assert_eq!(address_literal("[::1]"), Some(None));
        assert_eq!(address_literal("[IPv6:127.0.0.1]"), Some(None));
        assert_eq!(address_literal("[x-tag:stuff]"), Some(None));
        assert_eq!(address_literal("[]"), Some(None));
        assert_eq!(address_literal("example.com"), None);
        assert_eq!(address_literal("127.0.0.1"), None);
    }

    #[test]
    fn normalized_names() {
        assert_eq!(normalize("MX1.Example.COM."), "mx1.example.com");
        assert_eq!(normalize("example.com"), "example.com");
        assert_eq!(normalize("."), "");
        assert_eq!(normalize(" Example.com "), "example.com");
        let name = fqdn("example.com").unwrap();
        assert!(name.is_fqdn());
        assert_eq!(name.to_ascii(), "example.com.");
        assert_eq!(
            fqdn("bücher.example").unwrap().to_ascii(),
            "xn--bcher-kva.example."
        );
        assert!(fqdn("").is_none());
    }

    fn no_records(code: ResponseCode) -> ResolveError {
        ProtoError::from(ProtoErrorKind::NoRecordsFound {
            query: Box::new(Query::default()),
            soa: None,
            ns: None,
            negative_ttl: None,
            response_code: code,
            trusted: false,
            authorities: None,
        })
        .into()
    }

    #[test]
    fn errors_are_classified() {
        assert_eq!(
            classify(&no_records(ResponseCode::NXDomain)),
            Failure::NxDomain
        );
        assert_eq!(
            classify(&no_records(ResponseCode::NoError)),
            Failure::NoData
        );
        for code in [ResponseCode::ServFail, ResponseCode::Refused] {
            assert!(matches!(classify(&no_records(code)), Failure::Transient(_)));
        }
        let timeout: ResolveError = ProtoError::from(ProtoErrorKind::Timeout).into();
        assert!(matches!(classify(&timeout), Failure::Transient(_)));
    }

    #[test]
    fn statuses() {
        let cases = [
            (DnsError::NullMx("a".into()), "5.1.10", true),
            (DnsError::NoSuchDomain("a".into()), "5.1.2", true),
            (DnsError::NoAddress("a".into()), "4.4.3", false),
            (DnsError::Transient("a".into()), "4.4.3", false),
        ];
        for (e, status, permanent) in cases {
            assert_eq!(e.status(), status, "{e}");
            assert_eq!(e.is_permanent(), permanent, "{e}");
        }
    }
}
