//! Start-up and shutdown of `bridgehead serve`: opens the store, makes sure the
//! first-run state exists (data directory, certificate, console user), keeps the
//! directory snapshot fresh, serves the admin HTTP surface, and stops cleanly on
//! SIGINT/SIGTERM.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::watch;

use crate::config::Config;
use crate::delivery::dns::MailResolver;
use crate::delivery::local::LocalDelivery;
use crate::delivery::remote::RemoteDelivery;
use crate::directory::Directory;
use crate::metrics::Metrics;
use crate::password;
use crate::protocol_log::ProtocolLog;
use crate::queue::manager::QueueContext;
use crate::queue::{spool::Spool, submit::Submitter};
use crate::receive::connector::{self, ReceiveConnector};
use crate::receive::listener::ReceiveContext;
use crate::routing::SendConnector;
use crate::settings::{self, ServerSettings};
use crate::store::writer::Writer;
use crate::store::{Store, console_users};

/// How long a stop waits for SMTP sessions inside a message body.
const SESSION_GRACE: Duration = Duration::from_secs(10);

/// How often the server looks for changes made by another process (the CLI).
/// PRODUCT §3 promises changes apply within 2 seconds.
pub const DIRECTORY_POLL: Duration = Duration::from_millis(500);

/// The first console user.
pub const ADMIN_USER: &str = "admin";

pub async fn serve(config: Config) -> Result<()> {
    let store = open_store(&config).await?;
    let certificate = crate::tls::ensure_certificate(&config)?;
    ensure_admin_user(&config, &store).await?;

    // Snapshots of what admins edit, refreshed when org_version moves.
    let directory = Directory::load(&store)
        .await
        .context("cannot load the organization")?;
    tracing::info!(version = directory.version(), "organization loaded");
    let snapshots = Snapshots {
        directory: watch::channel(Arc::new(directory)).0,
        connectors: watch::channel(Arc::new(
            connector::list(&store)
                .await
                .context("cannot load the receive connectors")?,
        ))
        .0,
        settings: watch::channel(Arc::new(settings::load(&store).await?)).0,
        send_connectors: watch::channel(Arc::new(load_send_connectors(&store).await?)).0,
    };
    let send_rx = snapshots.send_connectors.subscribe();
    let (dir_rx, conn_rx, settings_rx) = (
        snapshots.directory.subscribe(),
        snapshots.connectors.subscribe(),
        snapshots.settings.subscribe(),
    );
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = vec![tokio::spawn(watch_snapshots(
        store.clone(),
        snapshots,
        shutdown_rx.clone(),
    ))];

    // The queue: spool, group committer, queue manager, pickup directory.
    let spool = Spool::open(&config.data_dir).context("cannot open the spool directory")?;
    let leftovers = spool.clean_tmp().context("cannot clean the spool")?;
    if leftovers > 0 {
        tracing::info!(
            files = leftovers,
            "removed unfinished transfers from the spool"
        );
    }
    let metrics = Arc::new(Metrics::new());
    let (committed_tx, committed_rx) = tokio::sync::mpsc::unbounded_channel();
    let writer = Writer::start(&store).context("cannot open the queue's database writer")?;
    let submitter = Submitter::new(
        writer.clone(),
        spool.clone(),
        Some(committed_tx),
        metrics.clone(),
    );
    submitter
        .drop_unspooled(&store)
        .await
        .context("cannot check the queue against the spool")?;
    let queue = Arc::new(QueueContext {
        store: store.clone(),
        spool: spool.clone(),
        submitter: submitter.clone(),
        writer,
        local: LocalDelivery::new(config.data_dir.join("mailboxes")),
        remote: RemoteDelivery::new(
            MailResolver::new(&config.dns.nameservers).context("cannot set up the DNS resolver")?,
            config.hostname.clone(),
            ProtocolLog::start(config.data_dir.join("logs/protocol/send")),
        ),
        send_connectors: send_rx,
        directory: dir_rx.clone(),
        settings: settings_rx.clone(),
        hostname: config.hostname.clone(),
        metrics: metrics.clone(),
    });
    tasks.push(tokio::spawn(crate::queue::manager::run(
        queue.clone(),
        committed_rx,
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(crate::queue::pickup_dir::run(
        queue,
        config.data_dir.join("pickup"),
        shutdown_rx.clone(),
    )));
    let admin_settings = settings_rx.clone();
    tasks.push(tokio::spawn(prune_tracking(
        store.clone(),
        settings_rx,
        shutdown_rx.clone(),
    )));

    // The receive side.
    let bodies = crate::receive::listener::BodiesInFlight::default();
    let receive = Arc::new(ReceiveContext {
        hostname: config.hostname.clone(),
        tls: crate::tls::server_config(&certificate)?,
        submitter,
        spool,
        directory: dir_rx.clone(),
        protocol_log: ProtocolLog::start(config.data_dir.join("logs/protocol/receive")),
        counters: Default::default(),
        metrics: metrics.clone(),
        shutdown: shutdown_rx.clone(),
        bodies: bodies.clone(),
    });
    tasks.push(tokio::spawn(crate::receive::listener::run(
        receive,
        conn_rx,
        shutdown_rx.clone(),
    )));

    // The admin listener.
    let listener = tokio::net::TcpListener::bind(config.admin.listen).await.with_context(|| {
        format!(
            "cannot listen on {} for the console; set [admin].listen in the config file or BRIDGEHEAD_ADMIN_LISTEN",
            config.admin.listen
        )
    })?;
    let admin = crate::admin::router(crate::admin::AdminState {
        store: store.clone(),
        directory: dir_rx,
        settings: admin_settings,
        hostname: config.hostname.clone(),
        data_dir: config.data_dir.clone(),
        tls: false,
        self_signed: certificate.self_signed,
        nameservers: config.dns.nameservers.clone(),
        sessions: Default::default(),
        metrics,
        hosts: Arc::new(config.admin.hosts.clone()),
    });
    tracing::info!(
        listen = %listener.local_addr()?,
        hostname = %config.hostname,
        data_dir = %config.data_dir.display(),
        self_signed_certificate = certificate.self_signed,
        "bridgehead is ready"
    );
    let mut stop = shutdown_rx.clone();
    let server = axum::serve(
        listener,
        admin.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    let server = tokio::spawn(async move { server.await });

    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = shutdown_tx.send(true);
    // Idle SMTP sessions now get 421 4.3.2; those inside a message body get a
    // bounded grace period to finish it and hear their reply (nothing is
    // acknowledged before it is durable, so a cut-off body is never lost).
    let grace = std::time::Instant::now() + SESSION_GRACE;
    while bodies.count() > 0 && std::time::Instant::now() < grace {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if bodies.count() > 0 {
        tracing::warn!(
            sessions = bodies.count(),
            "stopping with message bodies still arriving; they were not acknowledged"
        );
    }
    match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "console server stopped with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "console server task failed"),
        Err(_) => tracing::warn!("console server did not stop within 10 s"),
    }
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Deletes old tracking events once an hour.
async fn prune_tracking(
    store: Store,
    settings: watch::Receiver<Arc<ServerSettings>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let days = settings.borrow().tracking_retention_days;
        match crate::tracking::prune(store.pool(), days).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, days, "pruned old message-tracking events"),
            Err(e) => tracing::warn!(error = %e, "cannot prune message tracking"),
        }
    }
}

/// Everything Bridgehead creates (database, spool, protocol logs, keys,
/// Maildirs) is unreadable to other local users: files at most 0640, directories
/// 0750 (issue 13: the database holds password hashes, the spool other
/// people's mail). Set once, first thing, for the server and every CLI command.
pub fn private_umask() {
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe {
        libc::umask(0o027);
    }
}

/// Tightens a data directory made by an older release (0755 directories, 0644
/// files): directories lose their group-write and all other-user bits, files
/// the same plus group execute. Only walks the tree when the data directory
/// itself is too open, so a large spool costs nothing on later starts.
pub fn tighten_data_dir(dir: &std::path::Path) -> std::io::Result<usize> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o027 == 0 {
        return Ok(0);
    }
    let mut changed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        changed += tighten(&d, 0o750)?;
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                changed += tighten(&entry.path(), 0o640)?;
            }
            // Symbolic links are left alone (their target may be anywhere).
        }
    }
    Ok(changed)
}

/// Clears the bits of `path`'s mode outside `allowed`; 1 if it changed.
fn tighten(path: &std::path::Path, allowed: u32) -> std::io::Result<usize> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::symlink_metadata(path)?.permissions().mode() & 0o7777;
    if mode & !allowed == 0 {
        return Ok(0);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & allowed))?;
    Ok(1)
}

/// Creates the data directory and opens (creating and migrating) the database.
pub async fn open_store(config: &Config) -> Result<Store> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let changed = tighten_data_dir(&config.data_dir).with_context(|| {
        format!(
            "cannot restrict the permissions of {}",
            config.data_dir.display()
        )
    })?;
    if changed > 0 {
        tracing::warn!(
            dir = %config.data_dir.display(),
            changed,
            "data directory was readable by other users: removed their access (files 0640, directories 0750)"
        );
    }
    let store = Store::open(&config.database_path()).await?;
    // The default receive connectors are created with the database (PRODUCT §4).
    crate::store::connectors::seed_receive_defaults(
        store.pool(),
        &connector::defaults(&config.smtp),
    )
    .await?;
    Ok(store)
}

/// On first start, creates the console user `admin` with the password from
/// `BRIDGEHEAD_ADMIN_PASSWORD`, or a generated one that is printed once and
/// written to `data_dir/initial-admin-password` (mode 0600).
async fn ensure_admin_user(config: &Config, store: &Store) -> Result<()> {
    if console_users::count(store.pool()).await? > 0 {
        return Ok(());
    }
    let from_env = std::env::var("BRIDGEHEAD_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let (pw, generated) = match from_env {
        Some(p) => {
            password::check_strength(&p).context("BRIDGEHEAD_ADMIN_PASSWORD is not acceptable")?;
            (p, false)
        }
        None => (password::generate(20), true),
    };
    let hash = password::hash(pw.clone()).await?;
    if !console_users::insert_if_absent(store.pool(), ADMIN_USER, &hash).await? {
        return Ok(()); // another process created it meanwhile
    }
    if generated {
        let file = config.data_dir.join("initial-admin-password");
        write_private_file(&file, format!("{pw}\n").as_bytes())?;
        println!(
            "Console user `{ADMIN_USER}` created with password: {pw}\n\
             (also written to {}; change it after the first login)",
            file.display()
        );
    } else {
        tracing::info!(
            user = ADMIN_USER,
            "console user created from BRIDGEHEAD_ADMIN_PASSWORD"
        );
    }
    Ok(())
}

/// The snapshots running tasks read; replaced whole, never edited in place.
struct Snapshots {
    directory: watch::Sender<Arc<Directory>>,
    connectors: watch::Sender<Arc<Vec<ReceiveConnector>>>,
    settings: watch::Sender<Arc<ServerSettings>>,
    send_connectors: watch::Sender<Arc<Vec<Arc<SendConnector>>>>,
}

async fn load_send_connectors(store: &Store) -> Result<Vec<Arc<SendConnector>>> {
    Ok(crate::routing::connector::list(store)
        .await
        .context("cannot load the send connectors")?
        .into_iter()
        .map(Arc::new)
        .collect())
}

/// Polls the organization change counter and publishes fresh snapshots when it
/// moves. One indexed single-row read per tick; the reload happens only on change.
async fn watch_snapshots(store: Store, snapshots: Snapshots, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(DIRECTORY_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let current = snapshots.directory.borrow().version();
        match store.org_version().await {
            Ok(v) if v != current => {
                if let Err(e) = reload(&store, &snapshots).await {
                    tracing::error!(error = %e, "cannot reload the configuration");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot read the organization version"),
        }
    }
}

async fn reload(store: &Store, snapshots: &Snapshots) -> Result<()> {
    let dir = Directory::load(store).await?;
    let connectors = connector::list(store).await?;
    let settings = settings::load(store).await?;
    let send_connectors = load_send_connectors(store).await?;
    tracing::info!(version = dir.version(), "configuration changed; reloaded");
    // Only wake the listeners when the connectors really changed.
    snapshots.connectors.send_if_modified(|current| {
        let changed = **current != connectors;
        if changed {
            *current = Arc::new(connectors);
        }
        changed
    });
    snapshots.settings.send_if_modified(|current| {
        let changed = **current != settings;
        if changed {
            *current = Arc::new(settings);
        }
        changed
    });
    snapshots
        .send_connectors
        .send_replace(Arc::new(send_connectors));
    snapshots.directory.send_replace(Arc::new(dir));
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Writes a file readable by its owner only (mode 0600), durably.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file_durably(path, bytes, 0o600)
}

/// Writes `bytes` to a temporary file with `mode`, fsyncs it, renames it into
/// place and fsyncs the directory, so the file is whole or absent after a crash.
pub fn write_file_durably(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename into {}", path.display()))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))?;
    Ok(())
}
