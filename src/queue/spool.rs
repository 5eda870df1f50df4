//! Message bodies on disk: `data/spool/tmp/<id>` while being received, then
//! fsync'd, renamed to `data/spool/msg/<id>`, and the directory fsync'd so the
//! rename is durable before the queue row that names the file is committed.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncWriteExt, BufWriter};

use super::QueueId;

/// Spool files are written through a buffer this large, so the blocking-pool hop
/// of each tokio file write is paid per 256 KiB, not per network read.
const WRITE_BUFFER: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
}

impl Spool {
    pub fn open(data_dir: &Path) -> std::io::Result<Spool> {
        let root = data_dir.join("spool");
        std::fs::create_dir_all(root.join("tmp"))?;
        std::fs::create_dir_all(root.join("msg"))?;
        Ok(Spool { root })
    }

    pub fn message_path(&self, id: &QueueId) -> PathBuf {
        self.root.join("msg").join(id.as_str())
    }

    /// The message is still being received or made durable (its file is in `tmp/`).
    pub fn in_progress(&self, id: &QueueId) -> bool {
        self.root.join("tmp").join(id.as_str()).exists()
    }

    pub fn msg_dir(&self) -> PathBuf {
        self.root.join("msg")
    }

    /// Starts a new spool file for `id`.
    pub async fn create(&self, id: &QueueId) -> std::io::Result<SpoolWriter> {
        let tmp = self.root.join("tmp").join(id.as_str());
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await?;
        Ok(SpoolWriter {
            file: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            tmp,
            dest: self.message_path(id),
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
        use std::io::Write;
        let tmp = self.root.join("tmp").join(id.as_str());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        let result = (|| {
            let mut w = std::io::BufWriter::new(&file);
            let r = write(&mut w)?;
            w.flush()?;
            drop(w);
            file.sync_all()?;
            let size = file.metadata()?.len();
            std::fs::rename(&tmp, self.message_path(id))?;
            sync_dir(&self.msg_dir())?;
            Ok((r, size))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Removes a message's spool file (after the queue forgot it).
    pub fn remove(&self, id: &str) -> std::io::Result<()> {
        match QueueId::parse(id) {
            Some(id) => match std::fs::remove_file(self.message_path(&id)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            None => Ok(()),
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

/// Makes the renames into `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// A spool file being written. Dropped without `commit`, it removes itself.
pub struct SpoolWriter {
    file: Option<BufWriter<tokio::fs::File>>,
    tmp: PathBuf,
    dest: PathBuf,
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
    /// afterwards the file survives power loss under its final name. (Concurrent
    /// sessions' directory fsyncs share the file system's journal commits.)
    pub async fn commit(mut self) -> std::io::Result<PathBuf> {
        let Some(mut f) = self.file.take() else {
            return Ok(self.dest.clone());
        };
        let (tmp, dest) = (self.tmp.clone(), self.dest.clone());
        let result = async move {
            f.flush().await?;
            let file = f.into_inner().into_std().await;
            // One hop to the blocking pool for all three system calls.
            tokio::task::spawn_blocking(move || {
                file.sync_all()?;
                drop(file);
                std::fs::rename(&tmp, &dest)?;
                match dest.parent() {
                    Some(dir) => sync_dir(dir),
                    None => Ok(()),
                }
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
