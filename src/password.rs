//! Password hashing with argon2id (RFC 9106) in PHC string form.
//!
//! Hashing costs ~19 MiB and tens of milliseconds by design, so the async
//! wrappers run it on a few dedicated threads, never on a runtime thread, and
//! never more of them at once than there are cores: 250 parallel wrong `AUTH`s
//! on tokio's blocking pool (up to 512 threads, each with its own malloc arena)
//! once took the server from 18 MB to 6.5 GB. Jobs wait in a bounded queue for
//! at most [`MAX_WAIT`]; past that, or when the queue is full, the caller gets
//! [`Busy`] and answers "try later" (SMTP `454 4.7.0`, console 503).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};

/// Shortest password accepted for mailboxes and console users.
pub const MIN_LENGTH: usize = 8;
/// Longest password accepted (bounds hashing work and memory).
pub const MAX_LENGTH: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be at least {MIN_LENGTH} characters")]
    TooShort,
    #[error("password must be at most {MAX_LENGTH} characters")]
    TooLong,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

pub fn check_strength(password: &str) -> Result<(), PasswordError> {
    match password.chars().count() {
        n if n < MIN_LENGTH => Err(PasswordError::TooShort),
        _ if password.len() > MAX_LENGTH => Err(PasswordError::TooLong),
        _ => Ok(()),
    }
}

/// Hashes with argon2id and a random salt (blocking).
pub fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Verifies a password against a stored PHC string (blocking). A malformed
/// stored hash verifies nothing.
pub fn verify_blocking(hash: &str, password: &str) -> bool {
    if password.len() > MAX_LENGTH {
        return false;
    }
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// argon2id (default parameters) of a random password nobody knows: verified
/// against when a user does not exist, so the answer takes as long either way.
/// A constant, so nothing is hashed at start or on a runtime thread.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$RdescudvJCsgt3ub+b+dWRWJTmaaJObG9hWoZ0cBm1A";

/// How long a job may wait for a hashing thread before the caller is told
/// [`Busy`].
pub const MAX_WAIT: Duration = Duration::from_secs(5);
/// Jobs that may wait for a hashing thread, per thread.
const QUEUE_PER_THREAD: usize = 16;

/// Too many password checks are waiting: answer "try again later".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks in progress; try again later")]
pub struct Busy;

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads and their bounded queue (see the module docs).
struct Pool {
    jobs: std::sync::mpsc::SyncSender<(Instant, Job)>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8);
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Instant, Job)>(threads * QUEUE_PER_THREAD);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || worker(&rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Pool { jobs: tx }
    })
}

fn worker(rx: &Mutex<std::sync::mpsc::Receiver<(Instant, Job)>>) {
    loop {
        let next = match rx.lock() {
            Ok(r) => r.recv(),
            Err(_) => return,
        };
        let Ok((queued, job)) = next else { return };
        // A job that waited too long is dropped unrun: its caller has already
        // been told Busy (dropping the job drops its reply channel).
        if queued.elapsed() <= MAX_WAIT {
            job();
            trim_heap();
        }
    }
}

/// Gives the freed argon2 memory back to the system: glibc keeps a large freed
/// block in the thread's arena (its mmap threshold rises after the first free),
/// so without this each hashing thread would hold ~19 MiB for ever.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Runs `f` on a hashing thread, or returns [`Busy`] when the queue is full or
/// the job waited longer than [`MAX_WAIT`].
async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    pool()
        .jobs
        .try_send((Instant::now(), job))
        .map_err(|_| Busy)?;
    match tokio::time::timeout(MAX_WAIT + Duration::from_secs(30), rx).await {
        Ok(Ok(v)) => Ok(v),
        _ => Err(Busy),
    }
}

pub async fn hash(password: String) -> Result<String, PasswordError> {
    run(move || hash_blocking(&password))
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))?
}

/// Verifies `password` against `hash` on a hashing thread; `Err(Busy)` when
/// too many checks are waiting already.
pub async fn verify(hash: String, password: String) -> Result<bool, Busy> {
    run(move || verify_blocking(&hash, &password)).await
}

/// A random password of `len` letters and digits, for generated credentials.
pub fn generate(len: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_blocking("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_blocking(&h, "correct horse"));
        assert!(!verify_blocking(&h, "wrong horse"));
        assert!(!verify_blocking("not a hash", "x"));
    }

    #[test]
    fn dummy_hash_is_a_default_argon2id_hash() {
        let parsed = PasswordHash::new(DUMMY_HASH).unwrap();
        let ours = hash_blocking("x").unwrap();
        let ours = PasswordHash::new(&ours).unwrap();
        assert_eq!(parsed.algorithm, ours.algorithm);
        assert_eq!(parsed.params, ours.params, "same cost as a real check");
        assert!(!verify_blocking(DUMMY_HASH, "bridgehead"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verification_is_bounded() {
        // Far more checks than threads + queue at once: the ones that do not fit
        // are told Busy at once, the rest verify correctly.
        let h = hash_blocking("correct horse").unwrap();
        let tasks: Vec<_> = (0..300)
            .map(|i| {
                let h = h.clone();
                tokio::spawn(async move {
                    let pw = if i == 0 { "correct horse" } else { "wrong" };
                    verify(h, pw.into()).await
                })
            })
            .collect();
        let mut busy = 0;
        let mut matched = 0;
        for t in tasks {
            match t.await.unwrap() {
                Err(Busy) => busy += 1,
                Ok(true) => matched += 1,
                Ok(false) => {}
            }
        }
        assert!(busy > 0, "the queue is bounded");
        assert!(busy < 300, "some checks ran");
        assert!(matched <= 1);
        assert_eq!(verify(h, "correct horse".into()).await, Ok(true));
    }

    #[test]
    fn strength_and_generate() {
        assert!(check_strength("short").is_err());
        assert!(check_strength("long enough").is_ok());
        let p = generate(20);
        assert_eq!(p.len(), 20);
        assert_ne!(p, generate(20));
    }
}
