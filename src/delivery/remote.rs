//! Remote delivery over send connectors (PRODUCT §6): for one route and one
//! batch of recipients of one message, find the servers (smart hosts in order,
//! or MX hosts by preference), connect within the connector's limits, reuse an
//! idle connection to the same server when there is one, and hand the
//! transaction to the SMTP client. When every server of the chosen connector is
//! unreachable, the next connector of the route is tried (failover).
//!
//! The outcome says what happened; the queue manager decides retries and NDRs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::dns::{DnsError, MailResolver};
use super::smtp::{
    AuthMode, ClientConfig, ConnectError, Connection, RcptOutcome, TlsMode, Transaction,
};
use crate::protocol_log::ProtocolLog;
use crate::protocol_log::ProtocolLogging;
use crate::routing::connector::{SendAuth, SendConnector};
use crate::routing::{Route, hop_key};
use crate::smtp::reply::Reply;

/// How long an idle connection waits in the pool for the next message.
const IDLE: Duration = Duration::from_secs(10);
/// Servers tried per connector before giving up on it (RFC 5321 §5.1 asks for
/// "a reasonable number" of MX hosts).
const MAX_TARGETS: usize = 10;
/// Waiting for the final reply after the data (RFC 5321 §4.5.3.2.6: 10 minutes).
const DATA_TIMEOUT: Duration = Duration::from_secs(600);

/// What one delivery attempt came to.
#[derive(Debug)]
pub enum HopOutcome {
    /// A server answered the transaction: one outcome per recipient, in order.
    Done {
        outcomes: Vec<RcptOutcome>,
        /// The connector that carried it (after failover, not the first choice).
        connector: String,
        /// The server's name, for Remote-MTA.
        remote: String,
        /// The server offered DSN, so it reports success itself (RFC 3461 §6.2.4).
        remote_dsn: bool,
    },
    /// Never deliverable this way: null MX, no such domain, too big for the
    /// connector. Every recipient fails with `status`.
    Permanent { status: String, message: String },
    /// No server of any candidate connector could be reached: the whole next hop
    /// goes to Retry.
    Unreachable { message: String },
    /// The connection broke during the transaction: try these recipients later.
    Interrupted { message: String, remote: String },
}

struct Idle {
    conn: Connection,
    since: Instant,
}

/// Connection-limit entries (per connector and per next hop) kept before the
/// idle ones are forgotten.
const MAX_LIMIT_ENTRIES: usize = 1024;

/// The connection-limit semaphores, per connector and per next hop.
#[derive(Default)]
struct Limits(Mutex<HashMap<String, Arc<Semaphore>>>);

impl Limits {
    /// The semaphore for `key` (made with `max` permits). There is one entry
    /// per next hop, which with DNS routing is one per destination domain, so
    /// once the map reaches [`MAX_LIMIT_ENTRIES`] the idle entries (nobody
    /// holds or waits for a permit: only the map has the `Arc`) are forgotten.
    fn semaphore(&self, key: String, max: u32) -> Option<Arc<Semaphore>> {
        let mut map = self.0.lock().ok()?;
        if map.len() >= MAX_LIMIT_ENTRIES {
            map.retain(|_, sem| Arc::strong_count(sem) > 1);
        }
        Some(
            map.entry(key)
                .or_insert_with(|| Arc::new(Semaphore::new(max as usize)))
                .clone(),
        )
    }
}

/// Shared by every queue worker; cheap to share behind an `Arc`.
pub struct RemoteDelivery {
    resolver: MailResolver,
    hostname: String,
    protocol_log: ProtocolLog,
    pool: Mutex<HashMap<(String, SocketAddr), Vec<Idle>>>,
    limits: Limits,
}

impl RemoteDelivery {
    pub fn new(
        resolver: MailResolver,
        hostname: String,
        protocol_log: ProtocolLog,
    ) -> RemoteDelivery {
        RemoteDelivery {
            resolver,
            hostname,
            protocol_log,
            pool: Mutex::new(HashMap::new()),
            limits: Limits::default(),
        }
    }

    /// Delivers `tx` to `domain` along `route`.
    pub async fn deliver(&self, route: &Route, domain: &str, tx: &Transaction<'_>) -> HopOutcome {
        let Some(first) = route.connectors.first() else {
            return HopOutcome::Unreachable {
                message: "no send connector".into(),
            };
        };
        if route.too_big(tx.size) {
            return HopOutcome::Permanent {
                status: "5.3.4".into(),
                message: format!(
                    "552 5.3.4 Message of {} bytes exceeds the {} byte limit of send connector {}",
                    tx.size, first.max_message_size, first.name
                ),
            };
        }
        let mut errors: Vec<String> = Vec::new();
        // Servers that refused us for good (5xx greeting or EHLO), and whether
        // anything went wrong that a retry could mend: only when every server
        // tried refused for good does the message bounce, as Postfix does once
        // every MX has answered 5xx.
        let mut refused: Option<Reply> = None;
        let mut transient = false;
        for c in &route.connectors {
            if tx.size > c.max_message_size {
                errors.push(format!("{}: message too big for this connector", c.name));
                continue;
            }
            let _permits = self.permits(c, domain).await;
            let targets = match self.targets(c, domain).await {
                Ok(t) => t,
                Err(e) if e.is_permanent() => {
                    return HopOutcome::Permanent {
                        status: e.status().into(),
                        message: format!("550 {} {e}", e.status()),
                    };
                }
                Err(e) => {
                    transient = true;
                    errors.push(format!("{}: {e}", c.name));
                    continue;
                }
            };
            if targets.is_empty() {
                transient = true;
                errors.push(format!("{}: no server address found", c.name));
                continue;
            }
            // Pooled connections are keyed by this: a changed connector never
            // reuses one made under its old settings.
            let generation = c.generation();
            for (name, addr) in targets {
                let key = (generation.clone(), addr);
                let mut conn = match self.connect(c, &name, &key).await {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::info!(connector = %c.name, server = %name, %addr, error = %e, "cannot connect");
                        match (&e.reply, e.permanent) {
                            (Some(reply), true) => refused = Some(reply.clone()),
                            _ => transient = true,
                        }
                        errors.push(e.to_string());
                        continue;
                    }
                };
                let remote = conn.remote_name().to_string();
                return match conn.send(tx).await {
                    Ok(outcomes) => {
                        let remote_dsn = conn.extensions().dsn;
                        // As many stay open as the connector may use at once
                        // for one destination: with fewer, busy hops kept
                        // closing connections only to open new ones.
                        self.put_back(key, conn, c.max_per_destination as usize);
                        HopOutcome::Done {
                            outcomes,
                            connector: c.name.clone(),
                            remote,
                            remote_dsn,
                        }
                    }
                    Err(e) => HopOutcome::Interrupted {
                        message: e.to_string(),
                        remote,
                    },
                };
            }
        }
        match refused {
            Some(reply) if !transient => HopOutcome::Permanent {
                // RFC 3463: without an enhanced code, 5.0.0 says "permanent".
                status: reply
                    .enhanced
                    .map_or_else(|| "5.0.0".to_string(), |e| e.to_string()),
                message: errors.join("; "),
            },
            _ => HopOutcome::Unreachable {
                message: errors.join("; "),
            },
        }
    }

    /// Waits for room under the connector's and the next hop's connection limits.
    async fn permits(&self, c: &SendConnector, domain: &str) -> Vec<OwnedSemaphorePermit> {
        let keys = [
            (
                format!("connector {} {}", c.id, c.max_connections),
                c.max_connections,
            ),
            (
                format!("hop {} {}", hop_key(c, domain), c.max_per_destination),
                c.max_per_destination,
            ),
        ];
        let mut permits = Vec::new();
        for (key, max) in keys {
            let sem = self.limits.semaphore(key, max);
            if let Some(sem) = sem
                && let Ok(p) = sem.acquire_owned().await
            {
                permits.push(p);
            }
        }
        permits
    }

    /// The servers to try, in order, with the name to greet and verify them by.
    async fn targets(
        &self,
        c: &SendConnector,
        domain: &str,
    ) -> Result<Vec<(String, SocketAddr)>, DnsError> {
        let mut out = Vec::new();
        if c.dns_routing {
            let hosts = self.resolver.mail_hosts(domain).await?;
            let mut last_err = None;
            for h in hosts {
                let ips = match h.literal {
                    Some(ip) => vec![ip],
                    None => match self.resolver.addresses(&h.name).await {
                        Ok(ips) => ips,
                        Err(e) => {
                            last_err = Some(e);
                            continue;
                        }
                    },
                };
                out.extend(
                    ips.into_iter()
                        .map(|ip| (h.name.clone(), SocketAddr::new(ip, c.port))),
                );
            }
            if out.is_empty()
                && let Some(e) = last_err
            {
                // Every MX host without an address: a transient DNS trouble
                // (or a broken zone the owner may fix).
                return Err(DnsError::Transient(e.to_string()));
            }
        } else {
            for sh in &c.smart_hosts {
                match self.resolver.addresses(&sh.host).await {
                    Ok(ips) => out.extend(ips.into_iter().map(|ip| {
                        (
                            sh.host.clone(),
                            SocketAddr::new(ip, sh.port.unwrap_or(c.port)),
                        )
                    })),
                    Err(e) => {
                        tracing::info!(connector = %c.name, smart_host = %sh, error = %e, "smart host does not resolve")
                    }
                }
            }
        }
        out.truncate(MAX_TARGETS);
        Ok(out)
    }

    fn client_config(&self, c: &SendConnector) -> Arc<ClientConfig> {
        let credentials = || {
            (
                c.username.clone().unwrap_or_default(),
                c.password.clone().unwrap_or_default(),
            )
        };
        let auth = match c.auth {
            SendAuth::None => AuthMode::None,
            SendAuth::ExternallySecured => AuthMode::ExternallySecured,
            SendAuth::Basic => {
                let (username, password) = credentials();
                AuthMode::Basic { username, password }
            }
            SendAuth::BasicRequireTls => {
                let (username, password) = credentials();
                AuthMode::BasicRequireTls { username, password }
            }
        };
        let command_timeout = Duration::from_secs(c.command_timeout_secs);
        Arc::new(ClientConfig {
            helo_name: c.fqdn.clone().unwrap_or_else(|| self.hostname.clone()),
            force_helo: c.force_helo,
            tls: if c.require_tls {
                TlsMode::Required
            } else {
                TlsMode::Opportunistic
            },
            verify_certificate: c.verify_certificate,
            auth,
            connect_timeout: Duration::from_secs(c.connect_timeout_secs),
            command_timeout,
            data_timeout: DATA_TIMEOUT.max(command_timeout),
            protocol_log: (c.protocol_logging == ProtocolLogging::Verbose)
                .then(|| self.protocol_log.clone()),
            connector_name: c.name.clone(),
            max_message_size: Some(c.max_message_size),
        })
    }

    /// An idle pooled connection made under the same connector configuration
    /// that still answers RSET, else a new one.
    async fn connect(
        &self,
        c: &SendConnector,
        name: &str,
        key: &(String, SocketAddr),
    ) -> Result<Connection, ConnectError> {
        while let Some(mut idle) = self.take_idle(key) {
            if idle.conn.reset().await.is_ok() {
                return Ok(idle.conn);
            }
        }
        // The client's error names the server and address itself.
        Connection::open(key.1, name, self.client_config(c)).await
    }

    fn take_idle(&self, key: &(String, SocketAddr)) -> Option<Idle> {
        let mut pool = self.pool.lock().ok()?;
        let list = pool.get_mut(key)?;
        while let Some(idle) = list.pop() {
            if idle.since.elapsed() < IDLE {
                return Some(idle);
            }
            // Too old: dropped, which closes the socket.
        }
        None
    }

    fn put_back(&self, key: (String, SocketAddr), conn: Connection, max_idle: usize) {
        if !conn.is_usable() {
            return; // after a 421 or an error: dropping it closes the socket
        }
        if let Ok(mut pool) = self.pool.lock() {
            let list = pool.entry(key).or_default();
            list.retain(|i| i.since.elapsed() < IDLE);
            if list.len() < max_idle {
                list.push(Idle {
                    conn,
                    since: Instant::now(),
                });
            }
        }
    }

    /// Closes idle connections past their time with QUIT; the queue manager
    /// calls this now and then.
    pub async fn close_idle(&self) {
        let stale: Vec<Connection> = match self.pool.lock() {
            Ok(mut pool) => {
                let mut out = Vec::new();
                for list in pool.values_mut() {
                    let (old, keep): (Vec<Idle>, Vec<Idle>) =
                        list.drain(..).partition(|i| i.since.elapsed() >= IDLE);
                    *list = keep;
                    out.extend(old.into_iter().map(|i| i.conn));
                }
                pool.retain(|_, l| !l.is_empty());
                out
            }
            Err(_) => Vec::new(),
        };
        for conn in stale {
            conn.quit().await;
        }
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    #[test]
    fn idle_limits_are_forgotten_and_busy_ones_kept() {
        let limits = Limits::default();
        let busy = limits.semaphore("hop busy".into(), 2).unwrap();
        let permit = busy.clone().try_acquire_owned().unwrap();
        for i in 0..5 * MAX_LIMIT_ENTRIES {
            drop(limits.semaphore(format!("hop {i}.example"), 2));
        }
        let len = limits.0.lock().unwrap().len();
        assert!(len <= MAX_LIMIT_ENTRIES, "{len} entries");
        // The entry in use survived every pruning: it is the same semaphore,
        // with its permit still taken.
        let again = limits.semaphore("hop busy".into(), 2).unwrap();
        assert!(Arc::ptr_eq(&busy, &again));
        assert_eq!(again.available_permits(), 1);
        drop(permit);
    }
}
