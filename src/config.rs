//! Bootstrap configuration (PRODUCT §2): what must be known before the database
//! opens. Everything an admin edits day to day lives in SQLite instead.
//!
//! The file is TOML; every key can be overridden by `BRIDGEHEAD_<SECTION>_<KEY>`
//! (`BRIDGEHEAD_HOSTNAME` and `BRIDGEHEAD_DATA_DIR` for the top-level keys). Errors
//! name the key and where it came from, in one line, and never panic.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The embedded default configuration, shown in `config.example.toml` too.
pub const DEFAULT_LISTEN_ADMIN: &str = "127.0.0.1:8080";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// FQDN used in banners, HELO, Received headers and DSNs.
    pub hostname: String,
    pub data_dir: PathBuf,
    pub admin: AdminConfig,
    pub smtp: SmtpConfig,
    pub tls: TlsConfig,
    pub dns: DnsConfig,
    pub log: LogConfig,
    /// Where the configuration came from, for messages (`embedded defaults` or a path).
    pub source: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// Names the console answers to in the `Host` header besides `localhost`,
    /// the server's hostname and IP literals (a DNS-rebinding page reaches the
    /// console only under a name of its own, so other names are refused).
    pub hosts: Vec<String>,
}

/// Bindings of the three default receive connectors, used when the database is created.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpConfig {
    pub internet: SocketAddr,
    pub submission: SocketAddr,
    pub submissions: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DnsConfig {
    /// Empty means the system resolver.
    pub nameservers: Vec<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("config file {path} is not valid TOML: {reason}")]
    Syntax { path: String, reason: String },
    #[error("unknown key `{key}` in {source_name}")]
    UnknownKey { key: String, source_name: String },
    #[error("bad value for `{key}` in {source_name}: {reason}")]
    BadValue {
        key: String,
        source_name: String,
        reason: String,
    },
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hostname: default_hostname(),
            data_dir: PathBuf::from("./data"),
            admin: AdminConfig {
                listen: parse_addr(DEFAULT_LISTEN_ADMIN),
                hosts: Vec::new(),
            },
            smtp: SmtpConfig {
                internet: parse_addr("0.0.0.0:25"),
                submission: parse_addr("0.0.0.0:587"),
                submissions: parse_addr("0.0.0.0:465"),
            },
            tls: TlsConfig::default(),
            dns: DnsConfig::default(),
            log: LogConfig {
                level: "info".into(),
                format: LogFormat::Text,
            },
            source: "embedded defaults".into(),
        }
    }
}

fn parse_addr(s: &str) -> SocketAddr {
    // Only called on the constant defaults above.
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// The machine's host name, or `localhost` when it cannot be read or is not a domain.
fn default_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_lowercase())
        .filter(|h| crate::smtp::address::normalize_domain(h).is_ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Every key the file may hold: `section.key` (or `key` at the top level).
const KEYS: &[&str] = &[
    "hostname",
    "data_dir",
    "admin.listen",
    "admin.hosts",
    "smtp.internet",
    "smtp.submission",
    "smtp.submissions",
    "tls.cert",
    "tls.key",
    "dns.nameservers",
    "log.level",
    "log.format",
];

impl Config {
    /// Picks the file as PRODUCT §3 says: `--config`, then `$BRIDGEHEAD_CONFIG`,
    /// then `./bridgehead.toml` if present, else the embedded defaults; then applies
    /// the environment overrides.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let env_path = std::env::var_os("BRIDGEHEAD_CONFIG").map(PathBuf::from);
        let local = PathBuf::from("bridgehead.toml");
        let path = explicit
            .map(Path::to_path_buf)
            .or(env_path)
            .or_else(|| local.exists().then_some(local));
        let mut config = match path {
            Some(p) => Config::from_file(&p)?,
            None => Config::default(),
        };
        config.apply_env(std::env::vars())?;
        config.check()?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
            path: name.clone(),
            reason: e.to_string(),
        })?;
        Config::from_toml(&text, &name)
    }

    pub fn from_toml(text: &str, source_name: &str) -> Result<Config, ConfigError> {
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: source_name.to_string(),
                    reason: e.message().to_string(),
                })?;
        let mut config = Config {
            source: source_name.to_string(),
            ..Config::default()
        };
        for (name, value) in &table {
            match value {
                toml::Value::Table(section) if !KEYS.contains(&name.as_str()) => {
                    if !KEYS.iter().any(|k| k.starts_with(&format!("{name}."))) {
                        return Err(unknown(name, source_name));
                    }
                    for (key, v) in section {
                        config.set(&format!("{name}.{key}"), Raw::Toml(v), source_name)?;
                    }
                }
                v => config.set(name, Raw::Toml(v), source_name)?,
            }
        }
        Ok(config)
    }

    /// Applies `BRIDGEHEAD_<SECTION>_<KEY>` variables. Variables that name no key
    /// (such as `BRIDGEHEAD_CONFIG` or `BRIDGEHEAD_ADMIN_PASSWORD`) are not config
    /// keys and are left alone.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        for (var, value) in vars {
            let Some(rest) = var.strip_prefix("BRIDGEHEAD_") else {
                continue;
            };
            let rest = rest.to_ascii_lowercase();
            let key = KEYS.iter().find(|k| k.replace('.', "_") == rest);
            if let Some(key) = key {
                let source = format!("environment variable {var}");
                self.set(key, Raw::Env(&value), &source)?;
            }
        }
        Ok(())
    }

    fn set(&mut self, key: &str, value: Raw<'_>, source_name: &str) -> Result<(), ConfigError> {
        let bad = |reason: String| ConfigError::BadValue {
            key: key.to_string(),
            source_name: source_name.to_string(),
            reason,
        };
        match key {
            "hostname" => {
                let h = value.string().map_err(bad)?;
                self.hostname =
                    crate::smtp::address::normalize_domain(&h).map_err(|e| bad(e.to_string()))?;
            }
            "data_dir" => self.data_dir = PathBuf::from(value.string().map_err(bad)?),
            "admin.listen" => self.admin.listen = value.socket_addr().map_err(bad)?,
            "admin.hosts" => {
                self.admin.hosts = value
                    .list()
                    .map_err(bad)?
                    .iter()
                    .map(|h| {
                        crate::smtp::address::normalize_domain(h.trim())
                            .map_err(|e| bad(format!("{h:?}: {e}")))
                    })
                    .collect::<Result<_, _>>()?
            }
            "smtp.internet" => self.smtp.internet = value.socket_addr().map_err(bad)?,
            "smtp.submission" => self.smtp.submission = value.socket_addr().map_err(bad)?,
            "smtp.submissions" => self.smtp.submissions = value.socket_addr().map_err(bad)?,
            "tls.cert" => self.tls.cert = Some(PathBuf::from(value.string().map_err(bad)?)),
            "tls.key" => self.tls.key = Some(PathBuf::from(value.string().map_err(bad)?)),
            "dns.nameservers" => {
                self.dns.nameservers = value
                    .list()
                    .map_err(bad)?
                    .iter()
                    .map(|s| parse_nameserver(s))
                    .collect::<Result<_, _>>()
                    .map_err(bad)?
            }
            "log.level" => {
                let level = value.string().map_err(bad)?;
                tracing_subscriber::EnvFilter::try_new(&level)
                    .map_err(|e| bad(format!("not a tracing filter: {e}")))?;
                self.log.level = level;
            }
            "log.format" => {
                self.log.format = match value.string().map_err(bad)?.as_str() {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    other => {
                        return Err(bad(format!(
                            "expected \"text\" or \"json\", got \"{other}\""
                        )));
                    }
                }
            }
            _ => return Err(unknown(key, source_name)),
        }
        Ok(())
    }

    /// Checks that concern several keys at once.
    fn check(&self) -> Result<(), ConfigError> {
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) | (None, Some(_)) => Err(ConfigError::BadValue {
                key: if self.tls.cert.is_some() {
                    "tls.key"
                } else {
                    "tls.cert"
                }
                .into(),
                source_name: self.source.clone(),
                reason: "tls.cert and tls.key must be given together".into(),
            }),
            _ => Ok(()),
        }
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("bridgehead.db")
    }
}

fn unknown(key: &str, source_name: &str) -> ConfigError {
    ConfigError::UnknownKey {
        key: key.to_string(),
        source_name: source_name.to_string(),
    }
}

/// A value from the file (typed TOML) or from the environment (always a string).
enum Raw<'a> {
    Toml(&'a toml::Value),
    Env(&'a str),
}

impl Raw<'_> {
    fn string(&self) -> Result<String, String> {
        let s = match self {
            Raw::Toml(toml::Value::String(s)) => s.as_str(),
            Raw::Env(s) => s,
            Raw::Toml(v) => return Err(format!("expected a string, got {}", v.type_str())),
        };
        match s.trim() {
            "" => Err("must not be empty".into()),
            t => Ok(t.to_string()),
        }
    }

    fn socket_addr(&self) -> Result<SocketAddr, String> {
        let s = self.string()?;
        s.parse().map_err(|_| {
            format!("expected IP:PORT such as 127.0.0.1:8080 or [::1]:25, got \"{s}\"")
        })
    }

    fn list(&self) -> Result<Vec<String>, String> {
        match self {
            Raw::Env(s) => Ok(s
                .split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect()),
            Raw::Toml(toml::Value::Array(items)) => items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => Ok(s.clone()),
                    other => Err(format!(
                        "expected a list of strings, found {}",
                        other.type_str()
                    )),
                })
                .collect(),
            Raw::Toml(v) => Err(format!("expected a list of strings, got {}", v.type_str())),
        }
    }
}

/// A name server as `IP` (port 53) or `IP:PORT`.
fn parse_nameserver(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    s.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("expected IP or IP:PORT, got \"{s}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_file_parses() {
        let c = Config::from_toml(
            r#"
hostname = "Mail.Example.com"
data_dir = "/var/lib/bridgehead"
[admin]
listen = "127.0.0.1:9090"
[smtp]
internet = "0.0.0.0:2525"
submission = "[::1]:2587"
submissions = "127.0.0.1:2465"
[tls]
cert = "/etc/c.pem"
key = "/etc/k.pem"
[dns]
nameservers = ["127.0.0.1:5353", "::1"]
[log]
level = "debug,sqlx=warn"
format = "json"
"#,
            "test.toml",
        )
        .unwrap();
        assert_eq!(c.hostname, "mail.example.com");
        assert_eq!(c.admin.listen.port(), 9090);
        assert_eq!(c.smtp.submission.to_string(), "[::1]:2587");
        assert_eq!(c.dns.nameservers[1].to_string(), "[::1]:53");
        assert_eq!(c.log.format, LogFormat::Json);
        c.check().unwrap();
    }

    fn err(text: &str) -> String {
        Config::from_toml(text, "x.toml").unwrap_err().to_string()
    }

    #[test]
    fn errors_name_key_and_file() {
        assert_eq!(err("colour = 1"), "unknown key `colour` in x.toml");
        assert_eq!(
            err("[smtp]\nport = 25"),
            "unknown key `smtp.port` in x.toml"
        );
        assert_eq!(err("[nope]\na = 1"), "unknown key `nope` in x.toml");
        let e = err("[admin]\nlisten = \"localhost\"");
        assert!(
            e.starts_with("bad value for `admin.listen` in x.toml: expected IP:PORT"),
            "{e}"
        );
        let e = err("[admin]\nhosts = [\"ok.example\", \"bad host\"]");
        assert!(
            e.starts_with("bad value for `admin.hosts` in x.toml") && e.contains("bad host"),
            "{e}"
        );
        let c = Config::from_toml(
            "[admin]\nhosts = [\"SBS01\", \"mail.example.com\"]",
            "x.toml",
        )
        .unwrap();
        assert_eq!(c.admin.hosts, vec!["sbs01", "mail.example.com"]);
        let e = err("[log]\nformat = \"xml\"");
        assert!(e.contains("`log.format`") && e.contains("xml"), "{e}");
        let e = err("hostname = 5");
        assert!(
            e.contains("`hostname`") && e.contains("expected a string"),
            "{e}"
        );
        let e = err("hostname = \"bad host\"");
        assert!(e.contains("`hostname`"), "{e}");
        let e = err("[dns]\nnameservers = \"1.1.1.1\"");
        assert!(e.contains("`dns.nameservers`"), "{e}");
        let e = err("hostname = ");
        assert!(e.starts_with("config file x.toml is not valid TOML"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }

    #[test]
    fn tls_needs_both() {
        let c = Config::from_toml("[tls]\ncert = \"/a\"", "x.toml").unwrap();
        assert!(c.check().unwrap_err().to_string().contains("tls.key"));
    }

    #[test]
    fn env_overrides() {
        let mut c = Config::default();
        c.apply_env([
            (
                "BRIDGEHEAD_ADMIN_LISTEN".to_string(),
                "127.0.0.1:1".to_string(),
            ),
            ("BRIDGEHEAD_DATA_DIR".to_string(), "/tmp/x".to_string()),
            (
                "BRIDGEHEAD_DNS_NAMESERVERS".to_string(),
                "127.0.0.1:5353, ::1".to_string(),
            ),
            (
                "BRIDGEHEAD_ADMIN_PASSWORD".to_string(),
                "not a key".to_string(),
            ),
            ("PATH".to_string(), "/bin".to_string()),
        ])
        .unwrap();
        assert_eq!(c.admin.listen.port(), 1);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.dns.nameservers.len(), 2);
        let e = c
            .apply_env([("BRIDGEHEAD_LOG_FORMAT".to_string(), "yaml".to_string())])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`log.format`") && e.contains("BRIDGEHEAD_LOG_FORMAT"),
            "{e}"
        );
    }

    #[test]
    fn unreadable_file() {
        let e = Config::from_file(Path::new("/nonexistent/b.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot read config file /nonexistent/b.toml"),
            "{e}"
        );
    }

    #[test]
    fn example_file_is_valid() {
        let text = include_str!("../config.example.toml");
        Config::from_toml(text, "config.example.toml").unwrap();
    }
}
