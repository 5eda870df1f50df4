//! Receive connectors (PRODUCT §4; Exchange 2007 New-ReceiveConnector): who may
//! connect where, and what they may do once connected.
//!
//! A connection is served by the enabled connector whose binding matches its local
//! address and port and whose remote IP range contains the client most
//! specifically (the smallest range wins). Two connectors with the same binding and
//! the same remote range are refused at configuration time.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Serialize;

use crate::directory::{Error, Result, check_range, invalid};
pub use crate::protocol_log::ProtocolLogging;
use crate::store::{Store, connectors as rows};

pub const MB: u64 = 1024 * 1024;

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    start: IpAddr,
    end: IpAddr,
}

impl IpRange {
    pub const ALL_V4: IpRange = IpRange {
        start: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        end: IpAddr::V4(Ipv4Addr::BROADCAST),
    };
    pub const ALL_V6: IpRange = IpRange {
        start: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        end: IpAddr::V6(Ipv6Addr::new(
            0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
        )),
    };

    /// `10.0.0.0/8`, `10.0.0.1-10.0.0.9`, `192.168.1.10`, `10.10.0.0(255.255.0.0)`
    /// (the Exchange 2003 address-and-mask form), and the IPv6 equivalents.
    pub fn parse(input: &str) -> Result<IpRange, String> {
        let s = input.trim();
        let bad = || {
            format!(
                "`{s}` is not an IP address, CIDR range (10.0.0.0/8) or range (10.0.0.1-10.0.0.9)"
            )
        };
        if let Some((a, b)) = s.split_once('-') {
            let (a, b): (IpAddr, IpAddr) = (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            );
            if a.is_ipv4() != b.is_ipv4() {
                return Err(format!("`{s}` mixes IPv4 and IPv6"));
            }
            if to_u128(a) > to_u128(b) {
                return Err(format!("`{s}`: the range starts after it ends"));
            }
            return Ok(IpRange { start: a, end: b });
        }
        let (ip, prefix) = if let Some((ip, bits)) = s.split_once('/') {
            let ip: IpAddr = ip.parse().map_err(|_| bad())?;
            let bits: u32 = bits.parse().map_err(|_| bad())?;
            (ip, bits)
        } else if let Some((ip, mask)) = s.strip_suffix(')').and_then(|x| x.split_once('(')) {
            let ip: IpAddr = ip.parse().map_err(|_| bad())?;
            let mask: Ipv4Addr = mask.parse().map_err(|_| bad())?;
            let m = u32::from(mask);
            if m.leading_ones() + m.trailing_zeros() != 32 {
                return Err(format!("`{s}`: the mask is not contiguous"));
            }
            (ip, m.leading_ones())
        } else {
            let ip: IpAddr = s.parse().map_err(|_| bad())?;
            (ip, if ip.is_ipv4() { 32 } else { 128 })
        };
        let width = if ip.is_ipv4() { 32 } else { 128 };
        if prefix > width {
            return Err(format!("`{s}`: prefix longer than {width} bits"));
        }
        let host_bits = width - prefix;
        let host_mask: u128 = if host_bits == 0 {
            0
        } else {
            (u128::MAX) >> (128 - host_bits)
        };
        let v = to_u128(ip);
        Ok(IpRange {
            start: from_u128(v & !host_mask, ip.is_ipv4()),
            end: from_u128(v | host_mask, ip.is_ipv4()),
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.start.is_ipv4()
            && (to_u128(self.start)..=to_u128(self.end)).contains(&to_u128(ip))
    }

    /// Number of addresses minus one: smaller is more specific.
    pub fn size(&self) -> u128 {
        to_u128(self.end) - to_u128(self.start)
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            return write!(f, "{}", self.start);
        }
        let size = self.size();
        let width = if self.start.is_ipv4() { 32 } else { 128 };
        // Print as CIDR when it is one: the size is 2^n - 1 and the start aligned.
        let host_bits = if size == u128::MAX {
            Some(128)
        } else if (size + 1).is_power_of_two() {
            Some((size + 1).trailing_zeros())
        } else {
            None
        };
        if let Some(bits) = host_bits
            && to_u128(self.start) & size == 0
        {
            return write!(f, "{}/{}", self.start, width - bits);
        }
        write!(f, "{}-{}", self.start, self.end)
    }
}

impl Serialize for IpRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

crate::string_schema!(
    IpRange,
    "IpRange",
    "A CIDR block, an a-b range or a single IP"
);

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, from dual-stack sockets) count as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Usage {
    Internet,
    Client,
    Internal,
    Partner,
    Custom,
}

impl Usage {
    pub fn parse(s: &str) -> Result<Usage> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "internet" => Usage::Internet,
            "client" => Usage::Client,
            "internal" => Usage::Internal,
            "partner" => Usage::Partner,
            "custom" => Usage::Custom,
            other => {
                return Err(invalid(
                    "usage",
                    format!(
                        "unknown usage `{other}`; use internet, client, internal, partner or custom"
                    ),
                ));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Usage::Internet => "internet",
            Usage::Client => "client",
            Usage::Internal => "internal",
            Usage::Partner => "partner",
            Usage::Custom => "custom",
        }
    }
}

/// Authentication mechanisms a connector offers (Exchange's Authentication tab).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMechanism {
    /// Offer STARTTLS.
    Tls,
    /// AUTH PLAIN/LOGIN, also without TLS.
    Basic,
    /// AUTH PLAIN/LOGIN only after STARTTLS.
    BasicRequireTls,
    /// The network is secured by other means (IPsec, VPN): every session counts
    /// as authenticated and may relay.
    ExternallySecured,
}

impl AuthMechanism {
    pub const ALL: [AuthMechanism; 4] = [
        AuthMechanism::Tls,
        AuthMechanism::Basic,
        AuthMechanism::BasicRequireTls,
        AuthMechanism::ExternallySecured,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMechanism::Tls => "tls",
            AuthMechanism::Basic => "basic",
            AuthMechanism::BasicRequireTls => "basic-require-tls",
            AuthMechanism::ExternallySecured => "externally-secured",
        }
    }
}

/// Who may submit through a connector (Exchange's Permission Groups tab).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PermissionGroup {
    /// Unauthenticated clients may send to accepted domains.
    Anonymous,
    /// Authenticated mailbox users may send anywhere.
    Users,
    /// Unauthenticated partners may send to accepted domains over TLS.
    Partners,
    /// Other mail servers of the organization (with externally-secured auth).
    Servers,
}

impl PermissionGroup {
    pub const ALL: [PermissionGroup; 4] = [
        PermissionGroup::Anonymous,
        PermissionGroup::Users,
        PermissionGroup::Partners,
        PermissionGroup::Servers,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            PermissionGroup::Anonymous => "anonymous",
            PermissionGroup::Users => "users",
            PermissionGroup::Partners => "partners",
            PermissionGroup::Servers => "servers",
        }
    }
}

fn parse_named<T: Copy>(
    field: &'static str,
    items: &[String],
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for item in items
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let found = all
            .iter()
            .copied()
            .find(|v| name(*v).eq_ignore_ascii_case(item))
            .ok_or_else(|| {
                let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
                invalid(
                    field,
                    format!("unknown value `{item}`; use {}", names.join(", ")),
                )
            })?;
        if !out.iter().any(|v| name(*v) == name(found)) {
            out.push(found);
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReceiveConnector {
    pub id: i64,
    pub name: String,
    pub enabled: bool,
    pub usage: Usage,
    /// IP:PORT pairs.
    #[schema(value_type = Vec<String>)]
    pub bindings: Vec<SocketAddr>,
    pub remote_ranges: Vec<IpRange>,
    /// Name in the banner, EHLO reply and Received header; `None` = the server's hostname.
    pub fqdn: Option<String>,
    pub banner: Option<String>,
    pub auth_mechanisms: Vec<AuthMechanism>,
    pub permission_groups: Vec<PermissionGroup>,
    pub anonymous_relay: bool,
    pub require_tls: bool,
    /// TLS from the first byte (port 465, RFC 8314).
    pub implicit_tls: bool,
    pub max_message_size: u64,
    pub max_recipients: u32,
    pub max_connections: u32,
    pub max_connections_per_ip: u32,
    pub connection_timeout_secs: u64,
    pub command_timeout_secs: u64,
    pub max_bad_commands: u32,
    pub max_auth_failures: u32,
    pub protocol_logging: ProtocolLogging,
}

impl ReceiveConnector {
    /// A connector pre-filled for a usage (the New Receive Connector wizard's first page).
    pub fn template(name: &str, usage: Usage, bindings: Vec<SocketAddr>) -> ReceiveConnector {
        use AuthMechanism as A;
        use PermissionGroup as P;
        let (groups, auth, require_tls) = match usage {
            Usage::Internet => (vec![P::Anonymous, P::Partners], vec![A::Tls], false),
            Usage::Client => (vec![P::Users], vec![A::Tls, A::BasicRequireTls], false),
            Usage::Internal => (
                vec![P::Users, P::Servers],
                vec![A::Tls, A::BasicRequireTls],
                false,
            ),
            Usage::Partner => (vec![P::Partners], vec![A::Tls], true),
            Usage::Custom => (vec![], vec![A::Tls], false),
        };
        ReceiveConnector {
            id: 0,
            name: name.to_string(),
            enabled: true,
            usage,
            bindings,
            remote_ranges: vec![IpRange::ALL_V4, IpRange::ALL_V6],
            fqdn: None,
            banner: None,
            auth_mechanisms: auth,
            permission_groups: groups,
            anonymous_relay: false,
            require_tls,
            implicit_tls: false,
            max_message_size: 35 * MB,
            max_recipients: 200,
            max_connections: 5000,
            max_connections_per_ip: 20,
            connection_timeout_secs: 600,
            command_timeout_secs: 300,
            max_bad_commands: 20,
            max_auth_failures: 3,
            protocol_logging: ProtocolLogging::None,
        }
    }

    pub fn has_auth(&self, m: AuthMechanism) -> bool {
        self.auth_mechanisms.contains(&m)
    }

    pub fn has_group(&self, g: PermissionGroup) -> bool {
        self.permission_groups.contains(&g)
    }

    /// Does a binding of this connector cover the local address a client reached?
    pub fn binding_matches(&self, local: SocketAddr) -> Option<bool> {
        let local_ip = canonical(local.ip());
        self.bindings
            .iter()
            .filter(|b| b.port() == local.port())
            .filter_map(|b| {
                if canonical(b.ip()) == local_ip {
                    Some(true) // exact IP binding
                } else if b.ip().is_unspecified() {
                    Some(false) // wildcard binding
                } else {
                    None
                }
            })
            .max()
    }

    /// The most specific of this connector's remote ranges containing `ip`.
    pub fn range_size_for(&self, ip: IpAddr) -> Option<u128> {
        self.remote_ranges
            .iter()
            .filter(|r| r.contains(ip))
            .map(IpRange::size)
            .min()
    }
}

/// The connector that serves a connection from `remote` to `local`: exact local IP
/// beats a wildcard binding, then the smallest remote range wins.
pub fn select(
    connectors: &[ReceiveConnector],
    local: SocketAddr,
    remote: IpAddr,
) -> Option<&ReceiveConnector> {
    connectors
        .iter()
        .filter(|c| c.enabled)
        .filter_map(|c| {
            let exact = c.binding_matches(local)?;
            let size = c.range_size_for(remote)?;
            Some(((exact, std::cmp::Reverse(size)), c))
        })
        .max_by_key(|(key, c)| (*key, std::cmp::Reverse(c.id)))
        .map(|(_, c)| c)
}

/// Options as typed on the command line or in a form; `None` leaves a field as is.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectorInput {
    pub name: Option<String>,
    pub usage: Option<String>,
    pub bindings: Option<Vec<String>>,
    pub remote_ranges: Option<Vec<String>>,
    /// `null` resets to the server hostname.
    #[serde(deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>)]
    pub fqdn: Option<Option<String>>,
    /// `null` resets to the default banner.
    #[serde(deserialize_with = "crate::serde_util::double_option")]
    #[schema(value_type = Option<String>)]
    pub banner: Option<Option<String>>,
    pub auth_mechanisms: Option<Vec<String>>,
    pub permission_groups: Option<Vec<String>>,
    pub anonymous_relay: Option<bool>,
    pub require_tls: Option<bool>,
    pub implicit_tls: Option<bool>,
    pub max_message_size_mb: Option<u64>,
    pub max_recipients: Option<u32>,
    pub max_connections: Option<u32>,
    pub max_connections_per_ip: Option<u32>,
    pub connection_timeout_secs: Option<u64>,
    pub command_timeout_secs: Option<u64>,
    pub max_bad_commands: Option<u32>,
    pub max_auth_failures: Option<u32>,
    pub protocol_logging: Option<String>,
    pub enabled: Option<bool>,
}

fn parse_binding(s: &str) -> Result<SocketAddr> {
    s.trim().parse::<SocketAddr>().map_err(|_| {
        invalid(
            "bindings",
            format!("`{s}` is not IP:PORT (e.g. 0.0.0.0:25, 192.0.2.10:2525 or [::]:25)"),
        )
    })
}

fn check_text(field: &'static str, v: Option<String>, max: usize) -> Result<Option<String>> {
    match v.map(|s| s.trim().to_string()) {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) if s.len() > max || s.chars().any(char::is_control) => Err(invalid(
            field,
            format!("{field} must be at most {max} printable characters"),
        )),
        Some(s) => Ok(Some(s)),
    }
}

/// Applies and validates `input` on a connector pre-filled for `input.usage`,
/// without saving (the console's wizard checks its answers with this), including
/// the binding + remote range uniqueness against `existing`.
pub fn validate_new(
    existing: &[ReceiveConnector],
    input: ConnectorInput,
) -> Result<ReceiveConnector> {
    let usage = Usage::parse(input.usage.as_deref().unwrap_or("custom"))?;
    let name = input
        .name
        .clone()
        .ok_or_else(|| invalid("name", "a connector needs a name"))?;
    if input
        .bindings
        .as_ref()
        .is_none_or(|b| b.iter().all(|x| x.trim().is_empty()))
    {
        return Err(invalid(
            "bindings",
            "a connector needs at least one binding (IP:PORT)",
        ));
    }
    let mut c = ReceiveConnector::template(&name, usage, Vec::new());
    apply(&mut c, input)?;
    check_unique(existing, &c)?;
    Ok(c)
}

/// Applies `input` onto `c`, validating every field. Usage, when given for a new
/// connector, has already pre-filled `c` (see [`create`]).
fn apply(c: &mut ReceiveConnector, input: ConnectorInput) -> Result<()> {
    if let Some(name) = input.name {
        let name = name.trim().to_string();
        if name.is_empty()
            || name.len() > 64
            || name.chars().any(char::is_control)
            || name.contains(',')
        {
            return Err(invalid(
                "name",
                "name must be 1 to 64 printable characters without commas",
            ));
        }
        c.name = name;
    }
    if let Some(u) = input.usage {
        c.usage = Usage::parse(&u)?;
    }
    if let Some(b) = input.bindings {
        let list = b
            .iter()
            .flat_map(|s| s.split(','))
            .filter(|s| !s.trim().is_empty())
            .map(parse_binding)
            .collect::<Result<Vec<_>>>()?;
        if list.is_empty() {
            return Err(invalid(
                "bindings",
                "a connector needs at least one binding (IP:PORT)",
            ));
        }
        c.bindings = list;
    }
    if let Some(r) = input.remote_ranges {
        let list = r
            .iter()
            .flat_map(|s| s.split(','))
            .filter(|s| !s.trim().is_empty())
            .map(|s| IpRange::parse(s).map_err(|e| invalid("remote_ranges", e)))
            .collect::<Result<Vec<_>>>()?;
        c.remote_ranges = if list.is_empty() {
            vec![IpRange::ALL_V4, IpRange::ALL_V6]
        } else {
            list
        };
    }
    if let Some(f) = input.fqdn {
        c.fqdn = match check_text("fqdn", f, 255)? {
            Some(f) => Some(
                crate::smtp::address::normalize_domain(&f)
                    .map_err(|e| invalid("fqdn", e.to_string()))?,
            ),
            None => None,
        };
    }
    if let Some(b) = input.banner {
        c.banner = check_text("banner", b, 200)?;
    }
    if let Some(a) = input.auth_mechanisms {
        c.auth_mechanisms = parse_named(
            "auth_mechanisms",
            &a,
            &AuthMechanism::ALL,
            AuthMechanism::as_str,
        )?;
    }
    if let Some(g) = input.permission_groups {
        c.permission_groups = parse_named(
            "permission_groups",
            &g,
            &PermissionGroup::ALL,
            PermissionGroup::as_str,
        )?;
    }
    if let Some(v) = input.anonymous_relay {
        c.anonymous_relay = v;
    }
    if let Some(v) = input.require_tls {
        c.require_tls = v;
    }
    if let Some(v) = input.implicit_tls {
        c.implicit_tls = v;
    }
    if let Some(v) = input.max_message_size_mb {
        c.max_message_size = check_range("max_message_size_mb", v, 1, 2048)? * MB;
    }
    if let Some(v) = input.max_recipients {
        c.max_recipients = check_range("max_recipients", v, 1, 64_000)?;
    }
    if let Some(v) = input.max_connections {
        c.max_connections = check_range("max_connections", v, 1, 100_000)?;
    }
    if let Some(v) = input.max_connections_per_ip {
        c.max_connections_per_ip = check_range("max_connections_per_ip", v, 1, 100_000)?;
    }
    if let Some(v) = input.connection_timeout_secs {
        c.connection_timeout_secs = check_range("connection_timeout_secs", v, 5, 86_400)?;
    }
    if let Some(v) = input.command_timeout_secs {
        c.command_timeout_secs = check_range("command_timeout_secs", v, 1, 3_600)?;
    }
    if let Some(v) = input.max_bad_commands {
        c.max_bad_commands = check_range("max_bad_commands", v, 1, 1_000)?;
    }
    if let Some(v) = input.max_auth_failures {
        c.max_auth_failures = check_range("max_auth_failures", v, 1, 100)?;
    }
    if let Some(p) = input.protocol_logging {
        c.protocol_logging = ProtocolLogging::parse(&p)?;
    }
    if let Some(e) = input.enabled {
        c.enabled = e;
    }
    if c.implicit_tls && c.require_tls {
        c.require_tls = false; // implicit TLS is already TLS from the first byte
    }
    Ok(())
}

/// Same binding plus same remote range twice would make the choice ambiguous.
fn check_unique(existing: &[ReceiveConnector], c: &ReceiveConnector) -> Result<()> {
    for other in existing.iter().filter(|o| o.id != c.id) {
        if other.name.eq_ignore_ascii_case(&c.name) {
            return Err(Error::Conflict(format!(
                "a receive connector named {} already exists",
                c.name
            )));
        }
        let same_binding = c.bindings.iter().find(|b| other.bindings.contains(b));
        let same_range = c
            .remote_ranges
            .iter()
            .find(|r| other.remote_ranges.contains(r));
        if let (Some(b), Some(r)) = (same_binding, same_range) {
            return Err(Error::Conflict(format!(
                "receive connector {} already uses binding {b} with remote range {r}; \
                 give this connector other remote IP ranges or another binding",
                other.name
            )));
        }
    }
    Ok(())
}

pub async fn list(store: &Store) -> Result<Vec<ReceiveConnector>> {
    Ok(rows::load_receive(store.pool()).await?)
}

pub fn find<'a>(all: &'a [ReceiveConnector], name: &str) -> Result<&'a ReceiveConnector> {
    all.iter()
        .find(|c| c.name.eq_ignore_ascii_case(name.trim()))
        .ok_or_else(|| Error::NotFound(format!("no receive connector named {name}")))
}

pub async fn create(store: &Store, input: ConnectorInput) -> Result<ReceiveConnector> {
    let mut c = validate_new(&list(store).await?, input)?;
    c.id = rows::insert_receive(store.pool(), &c).await.map_err(|e| {
        crate::directory::conflict_on_unique(e, || {
            "a receive connector of that name already exists".into()
        })
    })?;
    Ok(c)
}

pub async fn update(store: &Store, name: &str, input: ConnectorInput) -> Result<ReceiveConnector> {
    let all = list(store).await?;
    let mut c = find(&all, name)?.clone();
    apply(&mut c, input)?;
    check_unique(&all, &c)?;
    rows::update_receive(store.pool(), &c).await.map_err(|e| {
        crate::directory::conflict_on_unique(e, || {
            "a receive connector of that name already exists".into()
        })
    })?;
    Ok(c)
}

pub async fn remove(store: &Store, name: &str) -> Result<ReceiveConnector> {
    let all = list(store).await?;
    let c = find(&all, name)?.clone();
    rows::delete_receive(store.pool(), c.id).await?;
    Ok(c)
}

/// The three connectors of PRODUCT §4, created once with the database.
pub fn defaults(smtp: &crate::config::SmtpConfig) -> Vec<ReceiveConnector> {
    let internet =
        ReceiveConnector::template("Default Internet", Usage::Internet, vec![smtp.internet]);
    let submission =
        ReceiveConnector::template("Client Submission", Usage::Client, vec![smtp.submission]);
    let mut submissions = ReceiveConnector::template(
        "Client Submissions TLS",
        Usage::Client,
        vec![smtp.submissions],
    );
    submissions.implicit_tls = true;
    submissions.auth_mechanisms = vec![AuthMechanism::Tls, AuthMechanism::Basic];
    vec![internet, submission, submissions]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> IpRange {
        IpRange::parse(s).unwrap()
    }

    #[test]
    fn ranges_parse_and_print() {
        assert_eq!(r("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(r("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(r("10.10.0.0(255.255.0.0)").to_string(), "10.10.0.0/16");
        assert_eq!(r("192.168.1.10").to_string(), "192.168.1.10");
        assert_eq!(r("0.0.0.0-255.255.255.255").to_string(), "0.0.0.0/0");
        assert_eq!(r("10.0.0.1-10.0.0.9").to_string(), "10.0.0.1-10.0.0.9");
        assert_eq!(r("::/0").to_string(), "::/0");
        assert_eq!(r("2001:db8::/32").to_string(), "2001:db8::/32");
        assert!(r("10.0.0.0/8").contains("10.200.1.1".parse().unwrap()));
        assert!(!r("10.0.0.0/8").contains("11.0.0.1".parse().unwrap()));
        assert!(r("127.0.0.1").contains("::ffff:127.0.0.1".parse().unwrap()));
        for bad in [
            "10.0.0.0/33",
            "10.0.0.9-10.0.0.1",
            "1.2.3.4-::1",
            "hello",
            "10.0.0.0(255.0.255.0)",
            "",
        ] {
            assert!(IpRange::parse(bad).is_err(), "{bad}");
        }
    }

    fn conn(id: i64, bindings: &[&str], ranges: &[&str]) -> ReceiveConnector {
        let mut c = ReceiveConnector::template(
            &format!("c{id}"),
            Usage::Custom,
            bindings.iter().map(|b| b.parse().unwrap()).collect(),
        );
        c.id = id;
        c.remote_ranges = ranges.iter().map(|x| r(x)).collect();
        c
    }

    #[test]
    fn most_specific_connector_wins() {
        let all = vec![
            conn(1, &["0.0.0.0:25"], &["0.0.0.0/0"]),
            conn(2, &["0.0.0.0:25"], &["192.0.2.0/24"]),
            conn(3, &["0.0.0.0:25"], &["192.0.2.7"]),
            conn(4, &["127.0.0.2:25"], &["0.0.0.0/0"]),
            conn(5, &["0.0.0.0:587"], &["0.0.0.0/0"]),
        ];
        let pick = |local: &str, remote: &str| {
            select(&all, local.parse().unwrap(), remote.parse().unwrap()).map(|c| c.id)
        };
        assert_eq!(pick("127.0.0.1:25", "198.51.100.1"), Some(1));
        assert_eq!(pick("127.0.0.1:25", "192.0.2.1"), Some(2));
        assert_eq!(pick("127.0.0.1:25", "192.0.2.7"), Some(3));
        assert_eq!(
            pick("127.0.0.2:25", "192.0.2.7"),
            Some(4),
            "exact local IP beats wildcard"
        );
        assert_eq!(pick("127.0.0.1:587", "192.0.2.7"), Some(5));
        assert_eq!(pick("127.0.0.1:2525", "192.0.2.7"), None);
        let mut disabled = all.clone();
        disabled[2].enabled = false;
        assert_eq!(
            select(
                &disabled,
                "127.0.0.1:25".parse().unwrap(),
                "192.0.2.7".parse().unwrap()
            )
            .map(|c| c.id),
            Some(2)
        );
    }

    #[test]
    fn same_binding_and_range_refused() {
        let all = vec![conn(1, &["0.0.0.0:25"], &["0.0.0.0/0"])];
        let dup = conn(
            2,
            &["0.0.0.0:25", "0.0.0.0:26"],
            &["0.0.0.0-255.255.255.255"],
        );
        let e = check_unique(&all, &dup).unwrap_err().to_string();
        assert!(e.contains("c1") && e.contains("0.0.0.0:25"), "{e}");
        assert!(check_unique(&all, &conn(3, &["0.0.0.0:25"], &["10.0.0.1"])).is_ok());
    }

    #[test]
    fn input_validation() {
        let mut c = ReceiveConnector::template("x", Usage::Custom, vec![]);
        let e = apply(
            &mut c,
            ConnectorInput {
                bindings: Some(vec!["localhost:25".into()]),
                ..Default::default()
            },
        );
        assert!(matches!(
            e,
            Err(Error::Invalid {
                field: "bindings",
                ..
            })
        ));
        let e = apply(
            &mut c,
            ConnectorInput {
                permission_groups: Some(vec!["anonymous,admins".into()]),
                ..Default::default()
            },
        );
        assert!(matches!(
            e,
            Err(Error::Invalid {
                field: "permission_groups",
                ..
            })
        ));
        let e = apply(
            &mut c,
            ConnectorInput {
                max_recipients: Some(0),
                ..Default::default()
            },
        );
        assert!(matches!(
            e,
            Err(Error::Invalid {
                field: "max_recipients",
                ..
            })
        ));
        apply(
            &mut c,
            ConnectorInput {
                auth_mechanisms: Some(vec!["tls,basic-require-tls".into()]),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            c.auth_mechanisms,
            vec![AuthMechanism::Tls, AuthMechanism::BasicRequireTls]
        );
    }
}
