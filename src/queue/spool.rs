//! Message bodies on disk: `data/spool/tmp/<id>` while being received, then
//! fsync'd, renamed to `data/spool/msg/<id>`, and the directory fsync'd so the
//! rename is durable before the queue row that names the file is committed.
//!
//! Files are recycled: a finished message's file moves to `data/spool/free/`
//! (up to [`FREE_FILES`] of them) and the next message is written over it, cut to
//! its own length before its fsync. Creating and deleting a file per message
//! costs an inode allocation and release each time; profiled on ext4, inode
//! allocation (`__ext4_new_inode`, done under the directory's lock) was a fifth
//! of the server's CPU at 50 sessions.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use tokio::io::{AsyncWriteExt, BufWriter};

use super::QueueId;

/// Spool files are written through a buffer this large, so the blocking-pool hop
/// of each tokio file write is paid per 256 KiB, not per network read.
const WRITE_BUFFER: usize = 256 * 1024;

/// Finished spool files kept for reuse (a few seconds' worth at full speed).
const FREE_FILES: usize = 512;

#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
    msg_sync: Arc<DirSync>,
    /// Files in `free/`, ready to be written over.
    free: Arc<Mutex<Vec<PathBuf>>>,
}

impl Spool {
    pub fn open(data_dir: &Path) -> std::io::Result<Spool> {
        let root = data_dir.join("spool");
        for dir in ["tmp", "msg", "free"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        let mut free = Vec::new();
        for entry in std::fs::read_dir(root.join("free"))? {
            let path = entry?.path();
            if free.len() < FREE_FILES {
                free.push(path);
            } else {
                std::fs::remove_file(path)?;
            }
        }
        Ok(Spool {
            msg_sync: Arc::new(DirSync::new(root.join("msg"))),
            free: Arc::new(Mutex::new(free)),
            root,
        })
    }

    fn free_list(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        // A list of paths: consistent whatever panicked while holding it.
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens `tmp/<id>` for writing: a recycled file (renamed from `free/`, its
    /// old content still there until written over and cut) or a new one.
    /// Returns the file and whether it was recycled. Blocking.
    fn open_tmp_blocking(&self, id: &QueueId) -> std::io::Result<(std::fs::File, bool)> {
        let tmp = self.root.join("tmp").join(id.as_str());
        let recycled = self.free_list().pop();
        if let Some(old) = recycled
            && std::fs::rename(&old, &tmp).is_ok()
        {
            let file = std::fs::OpenOptions::new().write(true).open(&tmp)?;
            // A second name for the same file can only come from a power loss
            // on a file system without a journal (a rename half on disk, then
            // fsck): the other name may be a queued message, so never write
            // over such a file; drop this name and start a new one.
            if std::os::unix::fs::MetadataExt::nlink(&file.metadata()?) == 1 {
                return Ok((file, true));
            }
            drop(file);
            std::fs::remove_file(&tmp)?;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        Ok((file, false))
    }

    pub fn message_path(&self, id: &QueueId) -> PathBuf {
        self.root.join("msg").join(id.as_str())
    }

    /// The message is still being received or made durable (its file is in `tmp/`).
    pub fn in_progress(&self, id: &QueueId) -> bool {
        self.root.join("tmp").join(id.as_str()).exists()
    }

    /// Bytes an unprivileged writer may still use on the spool's file system.
    pub fn free_space(&self) -> std::io::Result<u64> {
        let st = rustix::fs::statvfs(&self.root)?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Starts a new spool file for `id`.
    pub async fn create(&self, id: &QueueId) -> std::io::Result<SpoolWriter> {
        let (spool, qid) = (self.clone(), id.clone());
        let (file, recycled) = tokio::task::spawn_blocking(move || spool.open_tmp_blocking(&qid))
            .await
            .map_err(std::io::Error::other)??;
        Ok(SpoolWriter {
            file: Some(BufWriter::with_capacity(
                WRITE_BUFFER,
                tokio::fs::File::from_std(file),
            )),
            tmp: self.root.join("tmp").join(id.as_str()),
            dest: self.message_path(id),
            msg_sync: self.msg_sync.clone(),
            recycled,
            written: 0,
        })
    }

    /// Writes a whole new spool file synchronously (for messages we generate, such
    /// as DSNs; call from the blocking pool): tmp file, fsync, rename into `msg/`.
    /// Returns what `write` returned and the file size.
    pub fn write_blocking<R>(
        &self,
        id: &QueueId,
        write: impl FnOnce(&mut std::io::BufWriter<&std::fs::File>) -> std::io::Result<R>,
    ) -> std::io::Result<(R, u64)> {
        use std::io::{Seek, Write};
        let tmp = self.root.join("tmp").join(id.as_str());
        let (file, _) = self.open_tmp_blocking(id)?;
        let result = (|| {
            let mut w = std::io::BufWriter::new(&file);
            let r = write(&mut w)?;
            w.flush()?;
            drop(w);
            // A recycled file may be longer than what was just written.
            let size = (&file).stream_position()?;
            file.set_len(size)?;
            file.sync_all()?;
            std::fs::rename(&tmp, self.message_path(id))?;
            self.msg_sync.sync()?;
            Ok((r, size))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Removes a message's spool file (after the queue forgot it): into
    /// `free/` for the next message while fewer than [`FREE_FILES`] wait there,
    /// else deleted.
    pub fn remove(&self, id: &str) -> std::io::Result<()> {
        let Some(id) = QueueId::parse(id) else {
            return Ok(());
        };
        let path = self.message_path(&id);
        if self.free_list().len() < FREE_FILES {
            let free = self.root.join("free").join(id.as_str());
            match std::fs::rename(&path, &free) {
                Ok(()) => {
                    self.free_list().push(free);
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(_) => {} // deleted below instead
            }
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The header block of a stored message (up to the first empty line, at most
    /// `limit` bytes).
    pub async fn read_headers(&self, id: &QueueId, limit: usize) -> std::io::Result<Vec<u8>> {
        use tokio::io::AsyncReadExt;
        let mut file = tokio::fs::File::open(self.message_path(id)).await?;
        let mut buf = vec![0u8; limit];
        let mut filled = 0;
        while filled < limit {
            let n = file.read(&mut buf[filled..]).await?;
            if n == 0 {
                break;
            }
            filled += n;
            if let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                buf.truncate(end + 2);
                return Ok(buf);
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    /// Removes leftovers of transfers that never finished (after a crash).
    pub fn clean_tmp(&self) -> std::io::Result<usize> {
        let mut n = 0;
        for entry in std::fs::read_dir(self.root.join("tmp"))? {
            std::fs::remove_file(entry?.path())?;
            n += 1;
        }
        Ok(n)
    }
}

/// Makes renames into one directory durable with as few fsyncs as possible:
/// a caller that renamed a file calls [`DirSync::sync`]; if an fsync of the
/// directory is already running it may have started before that rename, so the
/// caller waits for the next one, which then covers every rename made while the
/// first ran. Fifty sessions finishing together share two or three directory
/// fsyncs instead of making fifty. (Blocking: call from the blocking pool.)
#[derive(Debug)]
struct DirSync {
    dir: PathBuf,
    state: Mutex<SyncState>,
    done: Condvar,
    /// Directory fsyncs made (for the tests).
    fsyncs: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Renames announced so far (a ticket number each).
    requested: u64,
    /// Every ticket up to this one is durable.
    synced: u64,
    running: bool,
}

impl DirSync {
    fn new(dir: PathBuf) -> DirSync {
        DirSync {
            dir,
            state: Mutex::new(SyncState::default()),
            done: Condvar::new(),
            fsyncs: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Returns once a directory fsync that began after this call has finished.
    fn sync(&self) -> std::io::Result<()> {
        // A panic elsewhere cannot leave the counters inconsistent: go on.
        let lock = || self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = lock();
        st.requested += 1;
        let ticket = st.requested;
        loop {
            if st.synced >= ticket {
                return Ok(());
            }
            if st.running {
                st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            // This caller runs the fsync for everyone who has a ticket so far.
            st.running = true;
            let covers = st.requested;
            drop(st);
            let result = sync_dir(&self.dir);
            self.fsyncs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            st = lock();
            st.running = false;
            if result.is_ok() {
                st.synced = st.synced.max(covers);
            }
            self.done.notify_all();
            // On failure the others try again themselves (and see their own error).
            result?;
        }
    }
}

/// Makes the renames into `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// A spool file being written. Dropped without `commit`, it removes itself.
pub struct SpoolWriter {
    file: Option<BufWriter<tokio::fs::File>>,
    tmp: PathBuf,
    dest: PathBuf,
    msg_sync: Arc<DirSync>,
    /// Written over an old message's file: cut to length before the fsync.
    recycled: bool,
    written: u64,
}

impl SpoolWriter {
    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if let Some(f) = self.file.as_mut() {
            f.write_all(bytes).await?;
            self.written += bytes.len() as u64;
        }
        Ok(())
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes, fsyncs and renames the file into `msg/`, then fsyncs `msg/`:
    /// afterwards the file survives power loss under its final name. (Sessions
    /// finishing together share directory fsyncs: see [`DirSync`].)
    pub async fn commit(mut self) -> std::io::Result<PathBuf> {
        let Some(mut f) = self.file.take() else {
            return Ok(self.dest.clone());
        };
        let (tmp, dest, msg_sync) = (self.tmp.clone(), self.dest.clone(), self.msg_sync.clone());
        let cut = self.recycled.then_some(self.written);
        let result = async move {
            // The buffer's tail is written in the same blocking-pool hop as the
            // fsyncs (a small message is all tail): one hop per message.
            // First wait for writes already handed to the pool: their errors
            // (a full disk) surface here, whereas `into_std` drops them.
            f.get_mut().flush().await?;
            let tail = f.buffer().to_vec();
            let mut file = f.into_inner().into_std().await;
            tokio::task::spawn_blocking(move || {
                use std::io::Write;
                file.write_all(&tail)?;
                if let Some(len) = cut {
                    file.set_len(len)?;
                }
                file.sync_all()?;
                drop(file);
                std::fs::rename(&tmp, &dest)?;
                msg_sync.sync()
            })
            .await
            .map_err(std::io::Error::other)?
        }
        .await;
        if let Err(e) = result {
            // Not accepted: neither name may linger.
            let _ = std::fs::remove_file(&self.tmp);
            let _ = std::fs::remove_file(&self.dest);
            return Err(e);
        }
        Ok(self.dest.clone())
    }
}

impl Drop for SpoolWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn concurrent_renames_share_directory_fsyncs() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let sync = Arc::new(DirSync::new(dir.path().to_path_buf()));
        let (threads, calls) = (8, 20);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (sync, dir) = (sync.clone(), dir.path().to_path_buf());
                std::thread::spawn(move || -> std::io::Result<()> {
                    for i in 0..calls {
                        let tmp = dir.join(format!("tmp-{t}-{i}"));
                        std::fs::write(&tmp, b"x")?;
                        std::fs::rename(&tmp, dir.join(format!("msg-{t}-{i}")))?;
                        sync.sync()?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| std::io::Error::other("thread panicked"))??;
        }
        let fsyncs = sync.fsyncs.load(Ordering::Relaxed);
        assert!(
            fsyncs >= 1 && fsyncs < threads * calls,
            "{fsyncs} fsyncs for {} renames",
            threads * calls
        );
        Ok(())
    }

    #[tokio::test]
    async fn finished_files_are_recycled_and_cut_to_the_new_length() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let spool = Spool::open(dir.path())?;
        let (long, short, dsn) = (
            QueueId::generate(),
            QueueId::generate(),
            QueueId::generate(),
        );
        let mut w = spool.create(&long).await?;
        w.write(&b"L".repeat(300_000)).await?;
        w.commit().await?;
        spool.remove(long.as_str())?;
        assert_eq!(spool.free_list().len(), 1);
        assert!(!spool.message_path(&long).exists());
        // The next message is written over it: only its own bytes remain.
        let mut w = spool.create(&short).await?;
        assert!(w.recycled);
        w.write(b"short body\r\n").await?;
        w.commit().await?;
        assert_eq!(
            std::fs::read(spool.message_path(&short))?,
            b"short body\r\n"
        );
        assert!(spool.free_list().is_empty());
        // Messages the server writes itself (DSNs) recycle too.
        spool.remove(short.as_str())?;
        let (_, size) = spool.write_blocking(&dsn, |w| {
            use std::io::Write;
            w.write_all(b"DSN")
        })?;
        assert_eq!(size, 3);
        assert_eq!(std::fs::read(spool.message_path(&dsn))?, b"DSN");
        // A restart finds the files waiting in free/.
        spool.remove(dsn.as_str())?;
        assert_eq!(Spool::open(dir.path())?.free_list().len(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn a_free_file_with_a_second_name_is_never_written_over() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let spool = Spool::open(dir.path())?;
        let (queued, next) = (QueueId::generate(), QueueId::generate());
        let mut w = spool.create(&queued).await?;
        w.write(b"queued message").await?;
        w.commit().await?;
        // As fsck may leave it after a power loss mid-rename: the queued
        // message's file also listed in free/.
        let alias = dir.path().join("spool/free/alias");
        std::fs::hard_link(spool.message_path(&queued), &alias)?;
        spool.free_list().push(alias);
        let mut w = spool.create(&next).await?;
        assert!(!w.recycled);
        w.write(b"next").await?;
        w.commit().await?;
        assert_eq!(
            std::fs::read(spool.message_path(&queued))?,
            b"queued message"
        );
        assert_eq!(std::fs::read(spool.message_path(&next))?, b"next");
        Ok(())
    }

    #[test]
    fn a_failing_directory_fsync_reaches_every_caller() {
        let sync = Arc::new(DirSync::new(PathBuf::from("/nonexistent/spool/msg")));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let sync = sync.clone();
                std::thread::spawn(move || sync.sync().is_err())
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap_or(false), "every caller sees the error");
        }
    }
}
