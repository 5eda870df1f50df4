//! Listeners that follow the receive connectors live: when a connector is added,
//! changed, disabled or removed, sockets are bound or closed within the directory
//! poll interval, and sessions already running are left alone.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

use super::connector::{self, ReceiveConnector, canonical};
use super::session;
use crate::directory::Directory;
use crate::protocol_log::ProtocolLog;
use crate::queue::{spool::Spool, submit::Submitter};

/// Everything a session needs, shared by all of them.
pub struct ReceiveContext {
    pub hostname: String,
    pub tls: Arc<rustls::ServerConfig>,
    pub spool: Spool,
    pub submitter: Submitter,
    pub directory: watch::Receiver<Arc<Directory>>,
    pub protocol_log: ProtocolLog,
    /// Open connections per connector, for the connection limits.
    pub counters: ConnectionCounters,
    /// `smtp_sessions_active`/`smtp_sessions_total` per connector name.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// True once the server is stopping: idle sessions answer 421 4.3.2.
    pub shutdown: watch::Receiver<bool>,
    /// Sessions reading a message body (DATA or a BDAT chunk) right now; the
    /// shutdown waits a bounded time for them to reach their reply.
    pub bodies: BodiesInFlight,
}

/// Counts sessions inside a message body (see [`ReceiveContext::bodies`]).
#[derive(Default, Clone)]
pub struct BodiesInFlight(Arc<std::sync::atomic::AtomicUsize>);

/// One session's place in [`BodiesInFlight`]; released when dropped.
pub struct BodyGuard(Arc<std::sync::atomic::AtomicUsize>);

impl BodiesInFlight {
    pub fn enter(&self) -> BodyGuard {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        BodyGuard(self.0.clone())
    }

    pub fn count(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for BodyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Open connections per connector and per (connector, client IP).
#[derive(Default)]
pub struct ConnectionCounters {
    inner: Mutex<CounterMaps>,
}

#[derive(Default)]
struct CounterMaps {
    total: HashMap<i64, u32>,
    per_ip: HashMap<(i64, IpAddr), u32>,
}

/// Holds a connection's place in the counters; releases it when dropped.
pub struct ConnectionSlot<'a> {
    counters: &'a ConnectionCounters,
    connector: i64,
    ip: IpAddr,
}

pub enum Admission<'a> {
    Admitted(ConnectionSlot<'a>),
    TooManyTotal,
    TooManyFromIp,
}

impl ConnectionCounters {
    pub fn admit(&self, c: &ReceiveConnector, ip: IpAddr) -> Admission<'_> {
        let Ok(mut m) = self.inner.lock() else {
            return Admission::TooManyTotal;
        };
        let total = m.total.get(&c.id).copied().unwrap_or(0);
        if total >= c.max_connections {
            return Admission::TooManyTotal;
        }
        let from_ip = m.per_ip.get(&(c.id, ip)).copied().unwrap_or(0);
        if from_ip >= c.max_connections_per_ip {
            return Admission::TooManyFromIp;
        }
        *m.total.entry(c.id).or_default() += 1;
        *m.per_ip.entry((c.id, ip)).or_default() += 1;
        Admission::Admitted(ConnectionSlot {
            counters: self,
            connector: c.id,
            ip,
        })
    }

    /// Open sessions per connector id.
    pub fn sessions(&self) -> HashMap<i64, u32> {
        self.inner
            .lock()
            .map(|m| m.total.clone())
            .unwrap_or_default()
    }
}

impl Drop for ConnectionSlot<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.counters.inner.lock() {
            if let Some(n) = m.total.get_mut(&self.connector) {
                *n = n.saturating_sub(1);
            }
            let key = (self.connector, self.ip);
            if let Some(n) = m.per_ip.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.per_ip.remove(&key);
                }
            }
        }
    }
}

/// The socket addresses to listen on: every binding of every enabled connector,
/// less specific addresses that a wildcard binding on the same port already covers.
pub fn wanted_addresses(connectors: &[ReceiveConnector]) -> HashSet<SocketAddr> {
    let all: HashSet<SocketAddr> = connectors
        .iter()
        .filter(|c| c.enabled)
        .flat_map(|c| c.bindings.iter().copied())
        .collect();
    all.iter()
        .copied()
        .filter(|a| {
            a.ip().is_unspecified()
                || !all.iter().any(|w| {
                    w.ip().is_unspecified() && w.port() == a.port() && w.is_ipv4() == a.is_ipv4()
                })
        })
        .collect()
}

/// Keeps the bound sockets in line with the connectors until shutdown.
pub async fn run(
    ctx: Arc<ReceiveContext>,
    mut connectors: watch::Receiver<Arc<Vec<ReceiveConnector>>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut bound: HashMap<SocketAddr, watch::Sender<bool>> = HashMap::new();
    let mut failed: HashSet<SocketAddr> = HashSet::new();
    let mut retry = tokio::time::interval(Duration::from_secs(5));
    loop {
        let current = connectors.borrow_and_update().clone();
        let wanted = wanted_addresses(&current);
        bound.retain(|addr, stop| {
            let keep = wanted.contains(addr);
            if !keep {
                let _ = stop.send(true);
                tracing::info!(%addr, "receive listener closed");
            }
            keep
        });
        let missing: Vec<SocketAddr> = wanted
            .iter()
            .filter(|a| !bound.contains_key(a))
            .copied()
            .collect();
        for addr in &missing {
            match bind(*addr) {
                Ok(listener) => {
                    failed.remove(addr);
                    let (stop_tx, stop_rx) = watch::channel(false);
                    bound.insert(*addr, stop_tx);
                    tracing::info!(%addr, connectors = %names_for(&current, *addr), "receive listener bound");
                    tokio::spawn(accept_loop(
                        ctx.clone(),
                        listener,
                        connectors.clone(),
                        stop_rx,
                    ));
                }
                Err(e) => {
                    if failed.insert(*addr) {
                        tracing::error!(
                            %addr,
                            connectors = %names_for(&current, *addr),
                            error = %e,
                            "cannot listen for SMTP; change the binding with `bridgehead receive-connector set NAME --binding IP:PORT` \
                             (the defaults come from [smtp].internet, [smtp].submission and [smtp].submissions, \
                             or BRIDGEHEAD_SMTP_INTERNET/SUBMISSION/SUBMISSIONS, when the database is created); retrying every 5 s"
                        );
                    }
                }
            }
        }
        tokio::select! {
            r = connectors.changed() => if r.is_err() { break },
            _ = retry.tick(), if !failed.is_empty() => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    for (_, stop) in bound {
        let _ = stop.send(true);
    }
}

fn names_for(connectors: &[ReceiveConnector], addr: SocketAddr) -> String {
    connectors
        .iter()
        .filter(|c| {
            c.enabled
                && c.bindings
                    .iter()
                    .any(|b| b.port() == addr.port() && (b == &addr || addr.ip().is_unspecified()))
        })
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn accept_loop(
    ctx: Arc<ReceiveContext>,
    listener: TcpListener,
    connectors: watch::Receiver<Arc<Vec<ReceiveConnector>>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((stream, remote)) => {
                let snapshot = connectors.borrow().clone();
                tokio::spawn(handle(ctx.clone(), stream, remote, snapshot));
            }
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(
    ctx: Arc<ReceiveContext>,
    mut stream: TcpStream,
    remote: SocketAddr,
    connectors: Arc<Vec<ReceiveConnector>>,
) {
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let remote_ip = canonical(remote.ip());
    let Some(conn) = connector::select(&connectors, local, remote_ip) else {
        tracing::info!(%remote, %local, "no receive connector accepts this client");
        let _ = stream
            .write_all(b"554 5.7.1 No receive connector accepts connections from your address\r\n")
            .await;
        return;
    };
    let conn = Arc::new(conn.clone());
    let slot = match ctx.counters.admit(&conn, remote_ip) {
        Admission::Admitted(slot) => slot,
        Admission::TooManyTotal => {
            let _ = stream
                .write_all(b"421 4.3.2 Too many connections, try again later\r\n")
                .await;
            return;
        }
        Admission::TooManyFromIp => {
            let _ = stream
                .write_all(b"421 4.7.0 Too many connections from your address, try again later\r\n")
                .await;
            return;
        }
    };
    let counted = ctx.metrics.session_started(&conn.name);
    session::serve(&ctx, conn, stream, local, remote).await;
    drop(counted);
    drop(slot);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receive::connector::Usage;

    #[test]
    fn wildcard_covers_specific_bindings() {
        let mk = |b: &[&str]| {
            ReceiveConnector::template(
                "x",
                Usage::Custom,
                b.iter().map(|s| s.parse().unwrap()).collect(),
            )
        };
        let w = wanted_addresses(&[
            mk(&["0.0.0.0:25", "127.0.0.1:587"]),
            mk(&["127.0.0.2:25", "[::1]:25"]),
        ]);
        let mut got: Vec<String> = w.iter().map(|a| a.to_string()).collect();
        got.sort();
        assert_eq!(got, vec!["0.0.0.0:25", "127.0.0.1:587", "[::1]:25"]);
    }
}
