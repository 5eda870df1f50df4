//! Send connectors (PRODUCT §6; Exchange 2007 New-SendConnector): which remote
//! domains a connector serves (address spaces with costs), and how it delivers —
//! through smart hosts or by DNS MX — with what TLS, authentication and limits.
//!
//! Validation lives here once; the CLI, API and console call [`create`] and
//! [`update`]. The smart-host password is write-only: it is stored (the server
//! must present it) but never serialised, printed or logged.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use super::AddressSpace;
use crate::directory::{Error, Result, check_range, invalid};
use crate::protocol_log::ProtocolLogging;
use crate::receive::connector::MB;
use crate::store::{Store, connectors as rows};

/// Intended use (the New Send Connector wizard's first page); pre-fills defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SendUsage {
    Custom,
    Internal,
    Internet,
    Partner,
}

impl SendUsage {
    pub fn parse(s: &str) -> Result<SendUsage> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "custom" => SendUsage::Custom,
            "internal" => SendUsage::Internal,
            "internet" => SendUsage::Internet,
            "partner" => SendUsage::Partner,
            other => {
                return Err(invalid(
                    "usage",
                    format!("unknown usage `{other}`; use custom, internal, internet or partner"),
                ));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SendUsage::Custom => "custom",
            SendUsage::Internal => "internal",
            SendUsage::Internet => "internet",
            SendUsage::Partner => "partner",
        }
    }
}

/// How the connector authenticates to its smart hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SendAuth {
    None,
    /// AUTH PLAIN/LOGIN, also over a plaintext connection.
    Basic,
    /// AUTH PLAIN/LOGIN only after STARTTLS; never credentials in plaintext.
    BasicRequireTls,
    /// The path is secured by other means (IPsec, a private link); no AUTH.
    ExternallySecured,
}

impl SendAuth {
    pub fn parse(s: &str) -> Result<SendAuth> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "none" => SendAuth::None,
            "basic" => SendAuth::Basic,
            "basic-require-tls" | "basicrequiretls" => SendAuth::BasicRequireTls,
            "externally-secured" | "externalauthoritative" => SendAuth::ExternallySecured,
            other => {
                return Err(invalid(
                    "auth",
                    format!(
                        "unknown auth `{other}`; use none, basic, basic-require-tls or externally-secured"
                    ),
                ));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SendAuth::None => "none",
            SendAuth::Basic => "basic",
            SendAuth::BasicRequireTls => "basic-require-tls",
            SendAuth::ExternallySecured => "externally-secured",
        }
    }

    fn needs_credentials(self) -> bool {
        matches!(self, SendAuth::Basic | SendAuth::BasicRequireTls)
    }
}

/// A smart host: a DNS name or an IP, with an optional port (else the connector's).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SmartHost {
    pub host: String,
    pub port: Option<u16>,
}

impl SmartHost {
    /// `relay.example.com`, `relay.example.com:587`, `192.0.2.1:25`, `[2001:db8::1]:25`, `2001:db8::1`.
    pub fn parse(input: &str) -> Result<SmartHost> {
        let s = input.trim();
        let bad = || {
            invalid(
                "smart_hosts",
                format!("`{s}` is not HOST[:PORT] (IPv6 in brackets: [2001:db8::1]:25)"),
            )
        };
        if s.is_empty() || s.len() > 300 {
            return Err(bad());
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(bad)?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?),
            };
            if h.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad());
            }
            (h.to_string(), port)
        } else if s.parse::<IpAddr>().is_ok() {
            (s.to_string(), None) // bare IPv6 (or IPv4) without a port
        } else {
            match s.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (s.to_string(), None),
            }
        };
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(bad()),
            },
        };
        let host = if host.parse::<IpAddr>().is_ok() {
            host
        } else {
            crate::smtp::address::normalize_domain(&host).map_err(|_| bad())?
        };
        Ok(SmartHost { host, port })
    }
}

impl fmt::Display for SmartHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) => write!(f, "{host}:{p}"),
            None => f.write_str(&host),
        }
    }
}

impl Serialize for SmartHost {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

crate::string_schema!(
    SmartHost,
    "SmartHost",
    "HOST[:PORT]; IPv6 in brackets, e.g. [2001:db8::1]:25"
);

#[derive(Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SendConnector {
    pub id: i64,
    pub name: String,
    pub enabled: bool,
    pub usage: SendUsage,
    pub address_spaces: Vec<AddressSpace>,
    /// Deliver by MX lookup; otherwise through `smart_hosts`.
    pub dns_routing: bool,
    pub smart_hosts: Vec<SmartHost>,
    /// Port for smart hosts without one, and for MX hosts.
    pub port: u16,
    pub auth: SendAuth,
    pub username: Option<String>,
    /// Write-only: never serialised, printed or logged.
    #[serde(skip)]
    pub password: Option<String>,
    pub require_tls: bool,
    /// Check the peer's certificate chain and name (else encrypt without checking,
    /// as opportunistic TLS between mail servers usually does).
    pub verify_certificate: bool,
    /// HELO/EHLO name; `None` = the server hostname.
    pub fqdn: Option<String>,
    pub force_helo: bool,
    pub max_message_size: u64,
    /// Connections this connector may have open at once.
    pub max_connections: u32,
    /// Connections to one next hop at once.
    pub max_per_destination: u32,
    pub connect_timeout_secs: u64,
    pub command_timeout_secs: u64,
    pub protocol_logging: ProtocolLogging,
}

impl fmt::Debug for SendConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendConnector")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .field("address_spaces", &self.address_spaces)
            .field("dns_routing", &self.dns_routing)
            .field("smart_hosts", &self.smart_hosts)
            .field("port", &self.port)
            .field("auth", &self.auth)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "****"))
            .finish_non_exhaustive()
    }
}

impl SendConnector {
    /// A new connector pre-filled for its usage (seed 003, New-SendConnector -Usage).
    pub fn template(name: &str, usage: SendUsage) -> SendConnector {
        SendConnector {
            id: 0,
            name: name.to_string(),
            enabled: true,
            usage,
            address_spaces: Vec::new(),
            dns_routing: true,
            smart_hosts: Vec::new(),
            port: 25,
            // Internal: other servers of the organization over a trusted network.
            auth: if usage == SendUsage::Internal {
                SendAuth::ExternallySecured
            } else {
                SendAuth::None
            },
            username: None,
            password: None,
            // Partner: domain security, i.e. TLS with a verified certificate.
            require_tls: usage == SendUsage::Partner,
            verify_certificate: usage == SendUsage::Partner,
            fqdn: None,
            force_helo: false,
            max_message_size: 35 * MB,
            max_connections: 100,
            max_per_destination: 20,
            connect_timeout_secs: 30,
            command_timeout_secs: 300,
            protocol_logging: ProtocolLogging::None,
        }
    }

    /// Where the connector sends mail, for lists and summaries.
    pub fn route_text(&self) -> String {
        if self.dns_routing {
            format!("DNS MX (port {})", self.port)
        } else {
            let hosts: Vec<String> = self.smart_hosts.iter().map(ToString::to_string).collect();
            hosts.join(", ")
        }
    }

    /// A key that changes whenever anything affecting a connection changes, so
    /// pooled connections made under an older configuration are not reused.
    pub fn generation(&self) -> String {
        let mut parts = serde_json::to_string(self).unwrap_or_default();
        parts.push_str(self.password.as_deref().unwrap_or(""));
        format!("{}#{:016x}", self.id, fnv1a(parts.as_bytes()))
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The fields a command, API call or form may set; `None` leaves a field alone.
#[derive(Default, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SendConnectorInput {
    pub name: Option<String>,
    pub usage: Option<String>,
    pub address_spaces: Option<Vec<String>>,
    pub dns_routing: Option<bool>,
    pub smart_hosts: Option<Vec<String>>,
    pub port: Option<u16>,
    pub auth: Option<String>,
    /// `null` removes the user name.
    #[serde(deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>)]
    pub username: Option<Option<String>>,
    /// Smart-host password. Write-only: never returned. `null` removes it.
    #[serde(deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>, write_only, format = Password)]
    pub password: Option<Option<String>>,
    pub require_tls: Option<bool>,
    pub verify_certificate: Option<bool>,
    /// `null` resets to the server hostname.
    #[serde(deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>)]
    pub fqdn: Option<Option<String>>,
    pub force_helo: Option<bool>,
    pub max_message_size_mb: Option<u64>,
    pub max_connections: Option<u32>,
    pub max_per_destination: Option<u32>,
    pub connect_timeout_secs: Option<u64>,
    pub command_timeout_secs: Option<u64>,
    pub protocol_logging: Option<String>,
    pub enabled: Option<bool>,
}

impl fmt::Debug for SendConnectorInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendConnectorInput")
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "****"))
            .finish_non_exhaustive()
    }
}

fn split_list(items: &[String]) -> impl Iterator<Item = &str> {
    items
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn apply(c: &mut SendConnector, input: SendConnectorInput) -> Result<()> {
    if let Some(name) = input.name {
        let name = name.trim().to_string();
        if name.is_empty()
            || name.len() > 64
            || name.chars().any(char::is_control)
            || name.contains([',', '[', ']'])
        {
            return Err(invalid(
                "name",
                "name must be 1 to 64 printable characters without commas or brackets",
            ));
        }
        c.name = name;
    }
    if let Some(u) = input.usage {
        c.usage = SendUsage::parse(&u)?;
    }
    if let Some(spaces) = input.address_spaces {
        let mut list: Vec<AddressSpace> = Vec::new();
        for s in split_list(&spaces) {
            let space = AddressSpace::parse(s).map_err(|e| invalid("address_spaces", e))?;
            if let Some(i) = list.iter().position(|x| x.pattern == space.pattern) {
                list[i] = space; // the same pattern twice: the last cost wins
            } else {
                list.push(space);
            }
        }
        if list.len() > 200 {
            return Err(invalid("address_spaces", "at most 200 address spaces"));
        }
        c.address_spaces = list;
    }
    if let Some(hosts) = input.smart_hosts {
        let list = split_list(&hosts)
            .map(SmartHost::parse)
            .collect::<Result<Vec<_>>>()?;
        if list.len() > 20 {
            return Err(invalid("smart_hosts", "at most 20 smart hosts"));
        }
        // Smart hosts given: they are the route, unless DNS routing is asked
        // for explicitly below.
        c.dns_routing = list.is_empty();
        c.smart_hosts = list;
    }
    if let Some(d) = input.dns_routing {
        c.dns_routing = d;
        if d {
            c.smart_hosts.clear();
        }
    }
    if let Some(p) = input.port {
        c.port = check_range("port", p, 1, 65_535)?;
    }
    if let Some(a) = input.auth {
        c.auth = SendAuth::parse(&a)?;
    }
    if let Some(u) = input.username {
        c.username = match u.map(|s| s.trim().to_string()) {
            Some(s) if s.is_empty() => None,
            Some(s) if s.len() > 256 || s.chars().any(char::is_control) => {
                return Err(invalid(
                    "username",
                    "username must be at most 256 printable characters",
                ));
            }
            other => other,
        };
    }
    if let Some(p) = input.password {
        c.password = match p {
            Some(s) if s.is_empty() => None,
            Some(s) if s.len() > 1024 || s.contains(['\r', '\n', '\0']) => {
                return Err(invalid(
                    "password",
                    "password must be at most 1024 characters on one line",
                ));
            }
            other => other,
        };
    }
    if let Some(v) = input.require_tls {
        c.require_tls = v;
    }
    if let Some(v) = input.verify_certificate {
        c.verify_certificate = v;
    }
    if let Some(f) = input.fqdn {
        c.fqdn = match f.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) {
            None => None,
            Some(f) => Some(
                crate::smtp::address::normalize_domain(&f)
                    .map_err(|e| invalid("fqdn", format!("`{f}` is not a host name: {e}")))?,
            ),
        };
    }
    if let Some(v) = input.force_helo {
        c.force_helo = v;
    }
    if let Some(v) = input.max_message_size_mb {
        c.max_message_size = check_range("max_message_size_mb", v, 1, 2048)? * MB;
    }
    if let Some(v) = input.max_connections {
        c.max_connections = check_range("max_connections", v, 1, 10_000)?;
    }
    if let Some(v) = input.max_per_destination {
        c.max_per_destination = check_range("max_per_destination", v, 1, 1_000)?;
    }
    if let Some(v) = input.connect_timeout_secs {
        c.connect_timeout_secs = check_range("connect_timeout_secs", v, 1, 600)?;
    }
    if let Some(v) = input.command_timeout_secs {
        c.command_timeout_secs = check_range("command_timeout_secs", v, 1, 3_600)?;
    }
    if let Some(p) = input.protocol_logging {
        c.protocol_logging = ProtocolLogging::parse(&p)?;
    }
    if let Some(e) = input.enabled {
        c.enabled = e;
    }
    check_whole(c)
}

/// The connector [`create`] would make from `input` (pre-filled for its usage,
/// validated, its name free among `existing`), without saving it: the console's
/// wizard shows this on its summary page.
pub fn validate_new(
    existing: &[SendConnector],
    input: SendConnectorInput,
) -> Result<SendConnector> {
    let usage = SendUsage::parse(input.usage.as_deref().unwrap_or("custom"))?;
    let name = input
        .name
        .clone()
        .ok_or_else(|| invalid("name", "a send connector needs a name"))?;
    let mut c = SendConnector::template(&name, usage);
    apply(&mut c, input)?;
    check_name_free(existing, &c)?;
    Ok(c)
}

/// Rules between fields, checked after every change.
fn check_whole(c: &SendConnector) -> Result<()> {
    if c.address_spaces.is_empty() {
        return Err(invalid(
            "address_spaces",
            "a send connector needs at least one address space, e.g. `*` or `contoso.com;5`",
        ));
    }
    if !c.dns_routing && c.smart_hosts.is_empty() {
        return Err(invalid(
            "smart_hosts",
            "give at least one --smart-host, or use --dns-routing",
        ));
    }
    if c.auth.needs_credentials() && (c.username.is_none() || c.password.is_none()) {
        return Err(invalid(
            "username",
            format!(
                "auth {} needs --username and a password (--password-stdin)",
                c.auth.as_str()
            ),
        ));
    }
    if c.auth.needs_credentials() && c.dns_routing {
        return Err(invalid(
            "auth",
            "smart-host authentication needs smart hosts; MX hosts are not given credentials",
        ));
    }
    Ok(())
}

pub async fn list(store: &Store) -> Result<Vec<SendConnector>> {
    Ok(rows::load_send(store.pool()).await?)
}

pub fn find<'a>(all: &'a [SendConnector], name: &str) -> Result<&'a SendConnector> {
    all.iter()
        .find(|c| c.name.eq_ignore_ascii_case(name.trim()))
        .ok_or_else(|| Error::NotFound(format!("no send connector named {name}")))
}

fn check_name_free(all: &[SendConnector], c: &SendConnector) -> Result<()> {
    if all
        .iter()
        .any(|o| o.id != c.id && o.name.eq_ignore_ascii_case(&c.name))
    {
        return Err(Error::Conflict(format!(
            "a send connector named {} already exists",
            c.name
        )));
    }
    Ok(())
}

pub async fn create(store: &Store, input: SendConnectorInput) -> Result<SendConnector> {
    let mut c = validate_new(&list(store).await?, input)?;
    c.id = rows::insert_send(store.pool(), &c).await.map_err(|e| {
        crate::directory::conflict_on_unique(e, || {
            "a send connector of that name already exists".into()
        })
    })?;
    Ok(c)
}

pub async fn update(store: &Store, name: &str, input: SendConnectorInput) -> Result<SendConnector> {
    let all = list(store).await?;
    let mut c = find(&all, name)?.clone();
    apply(&mut c, input)?;
    check_name_free(&all, &c)?;
    rows::update_send(store.pool(), &c).await.map_err(|e| {
        crate::directory::conflict_on_unique(e, || {
            "a send connector of that name already exists".into()
        })
    })?;
    Ok(c)
}

pub async fn remove(store: &Store, name: &str) -> Result<SendConnector> {
    let all = list(store).await?;
    let c = find(&all, name)?.clone();
    rows::delete_send(store.pool(), c.id).await?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(spaces: &[&str], hosts: &[&str]) -> SendConnectorInput {
        SendConnectorInput {
            name: Some("Out".into()),
            address_spaces: Some(spaces.iter().map(|s| s.to_string()).collect()),
            smart_hosts: (!hosts.is_empty()).then(|| hosts.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    fn built(usage: SendUsage, i: SendConnectorInput) -> Result<SendConnector> {
        let mut c = SendConnector::template("x", usage);
        apply(&mut c, i).map(|_| c)
    }

    #[test]
    fn smart_hosts_parse() {
        let p = |s: &str| SmartHost::parse(s).map(|h| h.to_string());
        assert_eq!(p("Relay.Example.COM").unwrap(), "relay.example.com");
        assert_eq!(p("relay.example.com:587").unwrap(), "relay.example.com:587");
        assert_eq!(p("192.0.2.1:2525").unwrap(), "192.0.2.1:2525");
        assert_eq!(p("[2001:db8::1]:25").unwrap(), "[2001:db8::1]:25");
        assert_eq!(p("2001:db8::1").unwrap(), "[2001:db8::1]");
        assert_eq!(SmartHost::parse("[::1]").unwrap().port, None);
        for bad in [
            "",
            "host:0",
            "host:99999",
            "[nothex]:25",
            "a b",
            "host:",
            "[::1]x",
        ] {
            assert!(SmartHost::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn usage_prefills_and_rules_hold() {
        let c = built(SendUsage::Partner, input(&["partner.test"], &[])).unwrap();
        assert!(c.require_tls && c.verify_certificate && c.dns_routing);
        let c = built(SendUsage::Internal, input(&["*"], &["10.0.0.5"])).unwrap();
        assert_eq!(c.auth, SendAuth::ExternallySecured);
        assert!(!c.dns_routing);
        let c = built(SendUsage::Internet, input(&["*;1", "contoso.com;5"], &[])).unwrap();
        assert_eq!(c.address_spaces.len(), 2);
        assert_eq!(c.address_spaces[1].cost, 5);

        assert!(
            built(SendUsage::Custom, input(&[], &["h"])).is_err(),
            "no address space"
        );
        let mut i = input(&["*"], &["h"]);
        i.auth = Some("basic".into());
        let e = built(SendUsage::Custom, i.clone()).unwrap_err().to_string();
        assert!(e.contains("--username"), "{e}");
        i.username = Some(Some("u".into()));
        i.password = Some(Some("p".into()));
        let c = built(SendUsage::Custom, i).unwrap();
        assert!(
            !format!("{c:?}").contains("\"p\""),
            "password hidden in Debug"
        );
        assert!(!serde_json::to_string(&c).unwrap().contains("password"));

        let mut i = input(&["*"], &[]);
        i.auth = Some("basic".into());
        i.username = Some(Some("u".into()));
        i.password = Some(Some("p".into()));
        assert!(
            built(SendUsage::Custom, i).is_err(),
            "credentials need smart hosts"
        );
    }

    #[test]
    fn generation_follows_changes() {
        let a = built(SendUsage::Custom, input(&["*"], &["h"])).unwrap();
        let mut b = a.clone();
        assert_eq!(a.generation(), b.generation());
        b.password = Some("new".into());
        assert_ne!(a.generation(), b.generation());
    }
}
