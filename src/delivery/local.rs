//! Local delivery into Maildir (<https://cr.yp.to/proto/maildir.html>):
//! `<root>/<folder>/Maildir/{tmp,new,cur}`.
//!
//! One delivery: write `Return-Path`, `Delivered-To` and the spool file's bytes
//! into `tmp/`, fsync the file, rename it into `new/`, fsync `new/`. The final
//! name is `{secs}.{key}.{host},S={size}` where `{key}` is the caller's
//! `unique_key` (with `.` written as `_`, see [`encode_key`]), so a delivery that
//! is repeated after a crash (file renamed, queue not yet told) finds the file in
//! `new/` or `cur/` and answers [`DeliveryOutcome::AlreadyDelivered`] instead of
//! writing a duplicate.
//!
//! Quota: the bytes in `new/` and `cur/` are counted by a directory walk the first
//! time a folder is used and then kept in memory. The existence check, the quota
//! check, the write and the usage update of one folder run under that folder's
//! async mutex, so concurrent deliveries to one mailbox cannot both pass the
//! quota; different folders proceed in parallel. All filesystem work of one
//! delivery runs in a single `spawn_blocking` call that owns the folder's lock,
//! so cancelling `deliver` can neither tear a delivery in half nor release the
//! lock before the filesystem work is over.

use std::collections::HashMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Mutex, OwnedMutexGuard};

/// Files left in `tmp/` longer than this are debris of a crash (the Maildir
/// convention is 36 hours); they are removed the first time a folder is used.
const STALE_TMP: Duration = Duration::from_secs(36 * 3600);

/// Longest folder name [`folder_name`] returns (file names are limited to 255).
const MAX_FOLDER_NAME: usize = 200;

/// Delivers into the Maildirs under `data_dir/mailboxes`.
#[derive(Debug)]
pub struct LocalDelivery {
    root: PathBuf,
    hostname: String,
    folders: std::sync::Mutex<HashMap<String, Arc<Mutex<FolderState>>>>,
}

/// What we remember about one folder, guarded by its async mutex.
#[derive(Debug, Default)]
struct FolderState {
    /// Bytes in `new/` + `cur/`; `None` until the first walk.
    usage: Option<u64>,
    /// `tmp/`, `new/`, `cur/` exist (and were fsync'd into place) in this process.
    dirs_ready: bool,
}

/// One message copy for one local recipient.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryRequest<'a> {
    /// Mailbox folder name, already safe (see [`folder_name`]).
    pub folder: &'a str,
    /// `None` = unlimited.
    pub quota_bytes: Option<u64>,
    /// The stored message (CRLF line endings); copied verbatim after our headers.
    pub spool_path: &'a Path,
    /// Envelope sender; `None` = the null sender `<>`.
    pub return_path: Option<&'a str>,
    /// The recipient address.
    pub delivered_to: &'a str,
    /// E.g. `"<queue id>.<recipient seq>"`: the same key means the same message
    /// copy, and is delivered at most once per folder.
    pub unique_key: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Written, fsync'd and renamed into `new/`; `bytes` includes our headers.
    Delivered { path: PathBuf, bytes: u64 },
    /// A file with this `unique_key` is already in `new/` or `cur/` (a crash
    /// after the rename but before the queue recorded it). Nothing was written.
    AlreadyDelivered { path: PathBuf },
    /// Permanent (`5.2.2`): the message would push the mailbox over its quota.
    /// Nothing was written. `usage` is the current usage, before this message.
    OverQuota { usage: u64, quota: u64 },
    /// Disk full, I/O error, …: try again later (`4.3.0` / `4.2.2`).
    Transient(String),
}

impl LocalDelivery {
    pub fn new(mailboxes_root: PathBuf) -> LocalDelivery {
        LocalDelivery {
            root: mailboxes_root,
            hostname: sanitize_hostname(&system_hostname()),
            folders: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Uses `hostname` (e.g. the configured server name) in file names instead of
    /// the kernel's host name.
    pub fn with_hostname(mut self, hostname: &str) -> LocalDelivery {
        self.hostname = sanitize_hostname(hostname);
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Delivers one message copy into `<root>/<folder>/Maildir/new/`.
    pub async fn deliver(&self, req: &DeliveryRequest<'_>) -> DeliveryOutcome {
        if !folder_is_safe(req.folder) {
            return DeliveryOutcome::Transient(format!(
                "local delivery: refusing unsafe mailbox folder name {:?}",
                req.folder
            ));
        }
        if req.unique_key.is_empty() {
            return DeliveryOutcome::Transient("local delivery: empty unique key".into());
        }
        let job = Job {
            maildir: self.root.join(req.folder).join("Maildir"),
            root: self.root.clone(),
            folder: req.folder.to_string(),
            quota: req.quota_bytes,
            spool: req.spool_path.to_path_buf(),
            headers: headers(req.return_path, req.delivered_to),
            key: encode_key(req.unique_key),
            hostname: self.hostname.clone(),
        };
        let guard = self.folder(req.folder).lock_owned().await;
        match tokio::task::spawn_blocking(move || job.run(guard)).await {
            Ok(outcome) => outcome,
            Err(e) => DeliveryOutcome::Transient(format!(
                "local delivery to {}: task failed: {e}",
                req.folder
            )),
        }
    }

    /// Bytes currently stored in a mailbox folder (`new/` + `cur/`), for the
    /// console. 0 for a folder that has no Maildir yet.
    pub async fn usage(&self, folder: &str) -> std::io::Result<u64> {
        if !folder_is_safe(folder) {
            return Err(std::io::Error::new(
                ErrorKind::InvalidInput,
                format!("unsafe mailbox folder name {folder:?}"),
            ));
        }
        let mut guard = self.folder(folder).lock_owned().await;
        if let Some(usage) = guard.usage {
            return Ok(usage);
        }
        let maildir = self.root.join(folder).join("Maildir");
        tokio::task::spawn_blocking(move || {
            let usage = walk_usage(&maildir)?;
            guard.usage = Some(usage);
            Ok(usage)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Forgets the cached usage of `folder`, so the next delivery or `usage` call
    /// walks the Maildir again (e.g. after messages were removed by a client).
    pub async fn invalidate_usage(&self, folder: &str) {
        self.folder(folder).lock().await.usage = None;
    }

    fn folder(&self, folder: &str) -> Arc<Mutex<FolderState>> {
        let mut map = self.folders.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(folder.to_string()).or_default().clone()
    }
}

/// Everything one delivery needs, owned, for the blocking pool.
struct Job {
    root: PathBuf,
    maildir: PathBuf,
    folder: String,
    quota: Option<u64>,
    spool: PathBuf,
    headers: String,
    key: String,
    hostname: String,
}

impl Job {
    fn run(self, mut state: OwnedMutexGuard<FolderState>) -> DeliveryOutcome {
        match self.try_run(&mut state) {
            Ok(outcome) => outcome,
            Err(e) => DeliveryOutcome::Transient(format!("local delivery to {}: {e}", self.folder)),
        }
    }

    fn try_run(&self, state: &mut FolderState) -> Result<DeliveryOutcome, DiskError> {
        if !state.dirs_ready {
            self.prepare_dirs()?;
            state.dirs_ready = true;
        }
        let new = self.maildir.join("new");
        let cur = self.maildir.join("cur");

        for dir in [&new, &cur] {
            if let Some(path) =
                find_key(dir, &self.key).map_err(|e| DiskError::new("cannot list", dir, e))?
            {
                // The rename may have happened without the directory fsync.
                sync_dir(dir)?;
                return Ok(DeliveryOutcome::AlreadyDelivered { path });
            }
        }

        let usage = match state.usage {
            Some(u) => u,
            None => {
                let u = walk_usage(&self.maildir)
                    .map_err(|e| DiskError::new("cannot measure", &self.maildir, e))?;
                state.usage = Some(u);
                u
            }
        };
        let spool_len = std::fs::metadata(&self.spool)
            .map_err(|e| DiskError::new("cannot read spool file", &self.spool, e))?
            .len();
        let size = (self.headers.len() as u64).saturating_add(spool_len);
        if let Some(quota) = self.quota
            && usage.saturating_add(size) > quota
        {
            return Ok(DeliveryOutcome::OverQuota { usage, quota });
        }

        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let tmp = TmpFile(Some(self.maildir.join("tmp").join(format!(
            "{secs}.{}_R{:016x}.{}",
            self.key,
            rand::random::<u64>(),
            self.hostname
        ))));
        let tmp_path = tmp.path();
        let bytes = self.write_tmp(tmp_path)?;
        let dest = new.join(format!("{secs}.{}.{},S={bytes}", self.key, self.hostname));
        std::fs::rename(tmp_path, &dest)
            .map_err(|e| DiskError::new("cannot rename into", &dest, e))?;
        tmp.disarm();
        // The file is in new/ now: count it even if the directory fsync fails (a
        // retry will then find it and answer AlreadyDelivered).
        state.usage = Some(usage.saturating_add(bytes));
        sync_dir(&new)?;
        Ok(DeliveryOutcome::Delivered { path: dest, bytes })
    }

    /// Writes headers + spool bytes into `tmp` and fsyncs it; returns its size.
    fn write_tmp(&self, tmp: &Path) -> Result<u64, DiskError> {
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)
            .map_err(|e| DiskError::new("cannot create", tmp, e))?;
        let mut spool = File::open(&self.spool)
            .map_err(|e| DiskError::new("cannot open spool file", &self.spool, e))?;
        out.write_all(self.headers.as_bytes())
            .map_err(|e| DiskError::new("cannot write", tmp, e))?;
        // Streams (copy_file_range on Linux, else a small buffer), never the whole
        // message in memory.
        let body = std::io::copy(&mut spool, &mut out)
            .map_err(|e| DiskError::new("cannot write", tmp, e))?;
        out.sync_all()
            .map_err(|e| DiskError::new("cannot fsync", tmp, e))?;
        Ok(self.headers.len() as u64 + body)
    }

    /// Creates `<folder>/Maildir/{tmp,new,cur}` (0700), makes the new directory
    /// entries durable, and clears stale files out of `tmp/`.
    fn prepare_dirs(&self) -> Result<(), DiskError> {
        let mut builder = DirBuilder::new();
        builder.recursive(true).mode(0o700);
        let mut created = false;
        for sub in ["tmp", "new", "cur"] {
            let dir = self.maildir.join(sub);
            if !dir.is_dir() {
                builder
                    .create(&dir)
                    .map_err(|e| DiskError::new("cannot create", &dir, e))?;
                created = true;
            }
        }
        if created {
            let folder_dir = self.root.join(&self.folder);
            for dir in [&self.maildir, &folder_dir, &self.root] {
                sync_dir(dir)?;
            }
        }
        clean_stale_tmp(&self.maildir.join("tmp"));
        Ok(())
    }
}

/// Removes the tmp file on drop unless disarmed (errors and panics alike).
struct TmpFile(Option<PathBuf>);

impl TmpFile {
    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// An I/O error with what we were doing and on which path; disk full and
/// filesystem quota are named plainly.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {}", .path.display(), describe(.source))]
struct DiskError {
    what: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

impl DiskError {
    fn new(what: &'static str, path: &Path, source: std::io::Error) -> DiskError {
        DiskError {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

fn describe(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::StorageFull => format!("disk full ({e})"),
        ErrorKind::QuotaExceeded => format!("filesystem quota exceeded ({e})"),
        _ => e.to_string(),
    }
}

fn sync_dir(dir: &Path) -> Result<(), DiskError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| DiskError::new("cannot fsync directory", dir, e))
}

/// The first file in `dir` whose name carries `key` as its second dot-separated
/// part (`{secs}.{key}.{host}…`). `key` is encoded and so contains no dot.
fn find_key(dir: &Path, key: &str) -> std::io::Result<Option<PathBuf>> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.split('.').nth(1) == Some(key) {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

/// Sum of the sizes of the regular files in `new/` and `cur/`; a missing
/// directory counts as empty, and so do files that vanish during the walk.
fn walk_usage(maildir: &Path) -> std::io::Result<u64> {
    let mut total = 0u64;
    for sub in ["new", "cur"] {
        let entries = match std::fs::read_dir(maildir.join(sub)) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            match entry.metadata() {
                Ok(m) if m.is_file() => total = total.saturating_add(m.len()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(total)
}

/// Best effort: a failure here must not fail a delivery.
fn clean_stale_tmp(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > STALE_TMP);
        if old {
            let path = entry.path();
            if std::fs::remove_file(&path).is_ok() {
                tracing::info!(path = %path.display(), "removed stale Maildir tmp file");
            }
        }
    }
}

/// `Return-Path: <sender>` and `Delivered-To: rcpt`, CRLF-terminated; control
/// characters are dropped so an address can never start a new header.
fn headers(return_path: Option<&str>, delivered_to: &str) -> String {
    let clean = |s: &str| s.chars().filter(|c| !c.is_control()).collect::<String>();
    let sender = return_path.map(clean).unwrap_or_default();
    format!(
        "Return-Path: <{sender}>\r\nDelivered-To: {}\r\n",
        clean(delivered_to)
    )
}

/// The unique key as it appears in file names: `[A-Za-z0-9-]` kept, `.` written
/// as `_` (so `"<queue id>.<seq>"` reads `ID_3`), every other byte `%XX`. The
/// mapping is injective and the result never contains `.`, `/`, `:` or `,`.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' => out.push(b as char),
            b'.' => out.push('_'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Host name for file names: `/` → `\057`, `:` → `\072` (as the Maildir spec
/// says), `,` → `\054` (Maildir++ uses it for `,S=`); other unusual bytes dropped.
fn sanitize_hostname(host: &str) -> String {
    let mut out = String::new();
    for c in host.trim().chars() {
        match c {
            '/' => out.push_str("\\057"),
            ':' => out.push_str("\\072"),
            ',' => out.push_str("\\054"),
            c if c.is_ascii_graphic() => out.push(c),
            _ => {}
        }
    }
    if out.is_empty() {
        out.push_str("localhost");
    }
    out
}

fn system_hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "localhost".to_string())
}

/// What [`folder_name`] can produce: non-empty, bounded, only its alphabet, no
/// leading dot. Checked again at delivery so a bad name can never escape `root`.
fn folder_is_safe(folder: &str) -> bool {
    !folder.is_empty()
        && folder.len() <= 255
        && !folder.starts_with('.')
        && folder
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'A'..=b'F' | b'0'..=b'9' | b'.' | b'@' | b'_' | b'+' | b'-' | b'%' | b'~'))
}

/// A safe directory name for a mailbox from its address: lower-cased, only
/// `[a-z0-9.@_+-]` kept, every other byte (UTF-8 included) `%XX`-encoded, a
/// leading dot encoded (so never `.`, `..` or hidden), an empty address `%00`.
/// Names longer than 200 bytes are cut and end in `~` + a 64-bit FNV-1a hash of
/// the full name, so the result stays at most 200 bytes and distinct addresses
/// stay distinct (up to the hash).
pub fn folder_name(address: &str) -> String {
    let lower = address.to_lowercase();
    let mut out = String::with_capacity(lower.len());
    for (i, b) in lower.bytes().enumerate() {
        match b {
            b'.' if i == 0 => out.push_str("%2E"),
            b'a'..=b'z' | b'0'..=b'9' | b'.' | b'@' | b'_' | b'+' | b'-' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    if out.is_empty() {
        return "%00".to_string();
    }
    if out.len() > MAX_FOLDER_NAME {
        let hash = format!("~{:016x}", fnv1a(out.as_bytes()));
        let mut cut = MAX_FOLDER_NAME - hash.len();
        // Do not split a %XX escape.
        let bytes = out.as_bytes();
        if bytes[cut - 1] == b'%' {
            cut -= 1;
        } else if bytes[cut - 2] == b'%' {
            cut -= 2;
        }
        out.truncate(cut);
        out.push_str(&hash);
    }
    out
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"Subject: hi\r\nFrom: a@example.org\r\n\r\nHello there.\r\n";

    fn spool(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    fn req<'a>(spool: &'a Path, key: &'a str, quota: Option<u64>) -> DeliveryRequest<'a> {
        DeliveryRequest {
            folder: "bob@example.com",
            quota_bytes: quota,
            spool_path: spool,
            return_path: Some("alice@example.org"),
            delivered_to: "bob@example.com",
            unique_key: key,
        }
    }

    fn header_len() -> u64 {
        headers(Some("alice@example.org"), "bob@example.com").len() as u64
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }

    #[tokio::test]
    async fn delivers_into_new_with_headers() {
        let tmp = tempfile::tempdir().unwrap();
        let sp = spool(tmp.path(), "spool", BODY);
        let root = tmp.path().join("mailboxes");
        let ld = LocalDelivery::new(root.clone()).with_hostname("mx1.example.com");
        let out = ld.deliver(&req(&sp, "0123456789ABCDEF.1", None)).await;
        let DeliveryOutcome::Delivered { path, bytes } = out else {
            panic!("{out:?}");
        };
        let maildir = root.join("bob@example.com/Maildir");
        for sub in ["tmp", "new", "cur"] {
            assert!(maildir.join(sub).is_dir(), "{sub}");
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(maildir.join(sub))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700, "{sub}");
        }
        assert_eq!(files(&maildir.join("new")), vec![path.clone()]);
        assert!(files(&maildir.join("tmp")).is_empty());
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            name.contains(".0123456789ABCDEF_1.mx1.example.com,S="),
            "{name}"
        );
        assert!(name.ends_with(&format!(",S={bytes}")), "{name}");

        let content = std::fs::read(&path).unwrap();
        assert_eq!(bytes, content.len() as u64);
        assert!(
            content.starts_with(
                b"Return-Path: <alice@example.org>\r\nDelivered-To: bob@example.com\r\n"
            )
        );
        assert!(content.ends_with(BODY));
        assert_eq!(bytes, header_len() + BODY.len() as u64);
        assert_eq!(ld.usage("bob@example.com").await.unwrap(), bytes);
        // A fresh instance walks the directory and agrees.
        let ld2 = LocalDelivery::new(root);
        assert_eq!(ld2.usage("bob@example.com").await.unwrap(), bytes);
        assert_eq!(ld2.usage("nobody@example.com").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn null_sender_and_large_body() {
        let tmp = tempfile::tempdir().unwrap();
        // Larger than any copy buffer, to exercise streaming.
        let body: Vec<u8> = (0..3_000_000u32)
            .map(|i| b"abcdefgh\r\n"[(i % 10) as usize])
            .collect();
        let sp = spool(tmp.path(), "spool", &body);
        let ld = LocalDelivery::new(tmp.path().join("mailboxes"));
        let mut r = req(&sp, "K.1", None);
        r.return_path = None;
        let DeliveryOutcome::Delivered { path, bytes } = ld.deliver(&r).await else {
            panic!("not delivered");
        };
        let content = std::fs::read(&path).unwrap();
        let head = b"Return-Path: <>\r\nDelivered-To: bob@example.com\r\n";
        assert!(content.starts_with(head));
        assert_eq!(&content[head.len()..], &body[..]);
        assert_eq!(bytes, content.len() as u64);
    }

    #[tokio::test]
    async fn same_key_twice_is_already_delivered() {
        let tmp = tempfile::tempdir().unwrap();
        let sp = spool(tmp.path(), "spool", BODY);
        let root = tmp.path().join("mailboxes");
        let ld = LocalDelivery::new(root.clone());
        let DeliveryOutcome::Delivered { path, bytes } = ld.deliver(&req(&sp, "Q1.1", None)).await
        else {
            panic!("not delivered");
        };
        assert_eq!(
            ld.deliver(&req(&sp, "Q1.1", None)).await,
            DeliveryOutcome::AlreadyDelivered { path: path.clone() }
        );
        let maildir = root.join("bob@example.com/Maildir");
        assert_eq!(files(&maildir.join("new")).len(), 1);

        // After a restart (fresh instance) and after a client moved it to cur/.
        let cur = maildir.join("cur").join(format!(
            "{}:2,S",
            path.file_name().unwrap().to_str().unwrap()
        ));
        std::fs::rename(&path, &cur).unwrap();
        let ld2 = LocalDelivery::new(root);
        assert_eq!(
            ld2.deliver(&req(&sp, "Q1.1", None)).await,
            DeliveryOutcome::AlreadyDelivered { path: cur }
        );
        assert_eq!(ld2.usage("bob@example.com").await.unwrap(), bytes);
        // A key that merely shares a prefix is a different message.
        assert!(matches!(
            ld2.deliver(&req(&sp, "Q1.10", None)).await,
            DeliveryOutcome::Delivered { .. }
        ));
        assert!(matches!(
            ld2.deliver(&req(&sp, "Q1", None)).await,
            DeliveryOutcome::Delivered { .. }
        ));
        assert_eq!(ld2.usage("bob@example.com").await.unwrap(), 3 * bytes);
    }

    #[tokio::test]
    async fn quota_is_enforced() {
        let tmp = tempfile::tempdir().unwrap();
        let sp = spool(tmp.path(), "spool", BODY);
        let root = tmp.path().join("mailboxes");
        let ld = LocalDelivery::new(root.clone());
        let size = header_len() + BODY.len() as u64;
        let quota = Some(size + size / 2);
        assert!(matches!(
            ld.deliver(&req(&sp, "A.1", quota)).await,
            DeliveryOutcome::Delivered { .. }
        ));
        assert_eq!(
            ld.deliver(&req(&sp, "A.2", quota)).await,
            DeliveryOutcome::OverQuota {
                usage: size,
                quota: size + size / 2
            }
        );
        let maildir = root.join("bob@example.com/Maildir");
        assert_eq!(files(&maildir.join("new")).len(), 1);
        assert!(files(&maildir.join("tmp")).is_empty());
        assert_eq!(ld.usage("bob@example.com").await.unwrap(), size);
        // Unlimited still delivers.
        assert!(matches!(
            ld.deliver(&req(&sp, "A.3", None)).await,
            DeliveryOutcome::Delivered { .. }
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_deliveries_respect_quota() {
        let tmp = tempfile::tempdir().unwrap();
        let sp = spool(tmp.path(), "spool", BODY);
        let root = tmp.path().join("mailboxes");
        let ld = Arc::new(LocalDelivery::new(root.clone()));
        let size = header_len() + BODY.len() as u64;
        let mut tasks = Vec::new();
        for i in 0..20 {
            let ld = ld.clone();
            let sp = sp.clone();
            tasks.push(tokio::spawn(async move {
                let key = format!("C.{i}");
                ld.deliver(&req(&sp, &key, Some(10 * size))).await
            }));
        }
        let (mut delivered, mut over) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                DeliveryOutcome::Delivered { .. } => delivered += 1,
                DeliveryOutcome::OverQuota { usage, quota } => {
                    assert_eq!((usage, quota), (10 * size, 10 * size));
                    over += 1;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((delivered, over), (10, 10));
        let maildir = root.join("bob@example.com/Maildir");
        assert_eq!(files(&maildir.join("new")).len(), 10);
        assert_eq!(ld.usage("bob@example.com").await.unwrap(), 10 * size);
    }

    #[tokio::test]
    async fn missing_spool_is_transient_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("mailboxes");
        let ld = LocalDelivery::new(root.clone());
        let missing = tmp.path().join("nope");
        let DeliveryOutcome::Transient(msg) = ld.deliver(&req(&missing, "M.1", None)).await else {
            panic!("not transient");
        };
        assert!(msg.contains("spool"), "{msg}");
        let maildir = root.join("bob@example.com/Maildir");
        assert!(files(&maildir.join("tmp")).is_empty());
        assert!(files(&maildir.join("new")).is_empty());
        // Unsafe folder names are refused, not followed.
        let sp = spool(tmp.path(), "spool", BODY);
        let mut r = req(&sp, "M.2", None);
        r.folder = "../etc";
        assert!(matches!(
            ld.deliver(&r).await,
            DeliveryOutcome::Transient(_)
        ));
        assert!(ld.usage("..").await.is_err());
    }

    #[test]
    fn disk_full_is_named() {
        let e = DiskError::new(
            "cannot write",
            Path::new("/x"),
            std::io::Error::from_raw_os_error(28),
        );
        assert!(e.to_string().contains("disk full"), "{e}");
    }

    #[test]
    fn folder_names_are_safe() {
        assert_eq!(
            folder_name("Bob.Smith+tag@Example.COM"),
            "bob.smith+tag@example.com"
        );
        assert_eq!(folder_name("../etc"), "%2E.%2Fetc");
        assert_eq!(folder_name("a/b@x"), "a%2Fb@x");
        assert_eq!(folder_name(".hidden@x"), "%2Ehidden@x");
        assert_eq!(folder_name("."), "%2E");
        assert_eq!(folder_name(".."), "%2E.");
        assert_eq!(folder_name(""), "%00");
        assert_eq!(folder_name("50%@x"), "50%25@x");
        assert_eq!(folder_name("a b\0c:d\\e@x"), "a%20b%00c%3Ad%5Ce@x");
        // Unicode is lower-cased, then its UTF-8 bytes are escaped.
        assert_eq!(folder_name("JÖRG@bücher.de"), "j%C3%B6rg@b%C3%BCcher.de");
        assert_eq!(folder_name("Jörg@x"), folder_name("JÖRG@X"));

        let long = "é".repeat(300) + "@x";
        let a = folder_name(&long);
        assert!(a.len() <= MAX_FOLDER_NAME, "{}", a.len());
        assert_ne!(a, folder_name(&("é".repeat(301) + "@x")));
        let (head, _) = a.rsplit_once('~').unwrap();
        assert!(!head.ends_with('%') && head.as_bytes()[head.len() - 2] != b'%');
        for name in [
            a,
            folder_name("../etc"),
            folder_name(".."),
            folder_name("a/b@x"),
        ] {
            assert!(folder_is_safe(&name), "{name}");
            assert!(!name.contains('/') && !name.starts_with('.'));
        }
    }

    #[test]
    fn keys_and_hosts_encode() {
        assert_eq!(encode_key("0123ABC.7"), "0123ABC_7");
        assert_eq!(encode_key("a_b/c:d"), "a%5Fb%2Fc%3Ad");
        assert_eq!(sanitize_hostname("a/b:c,d"), "a\\057b\\072c\\054d");
        assert_eq!(sanitize_hostname(" "), "localhost");
    }
}
