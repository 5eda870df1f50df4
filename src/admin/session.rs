//! Console sessions (PRODUCT §7): login with argon2id, an opaque session cookie
//! (HttpOnly, SameSite=Strict, Secure over TLS), a per-session CSRF token checked
//! on every state-changing request, login throttling, logout.
//!
//! Sessions live in memory: a restart logs everybody out, which is acceptable for
//! an admin console and keeps session secrets out of the database.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use rand::RngCore;

use super::{AdminState, Principal};

pub const COOKIE: &str = "bh_session";
/// The form field and header that carry the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session ends after this long without a request…
const IDLE: Duration = Duration::from_secs(60 * 60);
/// …and after this long in any case.
const ABSOLUTE: Duration = Duration::from_secs(12 * 60 * 60);
/// Failed logins for one (client address, user name) before waits begin…
const FREE_FAILURES: u32 = 5;
/// …and from one client address for any user names (password spraying).
const FREE_FAILURES_PER_IP: u32 = 20;
/// The first wait; it doubles with each further failure…
const FIRST_WAIT: Duration = Duration::from_secs(2);
/// …up to this, and a failure this old is forgotten.
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Largest form body the CSRF check reads (forms are small).
pub const MAX_FORM: usize = 256 * 1024;
/// Most sessions kept at once (oldest dropped first).
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

#[derive(Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Sessions {
    /// Starts a session for `user`; returns its id (the cookie value).
    pub fn create(&self, user: &str) -> String {
        let id = random_token();
        let now = Instant::now();
        if let Ok(mut s) = self.sessions.lock() {
            s.retain(|_, v| alive(v, now));
            if s.len() >= MAX_SESSIONS
                && let Some(oldest) = s
                    .iter()
                    .min_by_key(|(_, v)| v.created)
                    .map(|(k, _)| k.clone())
            {
                s.remove(&oldest);
            }
            s.insert(
                id.clone(),
                Session {
                    user: user.to_string(),
                    csrf: random_token(),
                    created: now,
                    last_seen: now,
                },
            );
        }
        id
    }

    /// The live session with this id (and marks it used).
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut s = self.sessions.lock().ok()?;
        let alive_now = s.get(id).is_some_and(|v| alive(v, now));
        if !alive_now {
            s.remove(id);
            return None;
        }
        let v = s.get_mut(id)?;
        v.last_seen = now;
        Some(v.clone())
    }

    pub fn remove(&self, id: &str) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(id);
        }
    }

    /// Ends every session of `user` (after a password change), except `keep`.
    pub fn remove_user(&self, user: &str, keep: Option<&str>) {
        if let Ok(mut s) = self.sessions.lock() {
            s.retain(|k, v| v.user != user || Some(k.as_str()) == keep);
        }
    }

    /// Counts a login attempt *before* its password is checked, so that the
    /// check and the count are one step: parallel attempts cannot all slip in
    /// before the first failure is recorded. `Err(wait)` when this (client
    /// address, user) pair, or this address for any user, has used its free
    /// failures and must wait; the wait doubles with each further failure. No
    /// per-user lock-out: a stranger elsewhere cannot lock `admin` out.
    pub fn attempt(&self, ip: IpAddr, user: &str) -> Result<(), Duration> {
        let Ok(mut f) = self.failures.lock() else {
            return Err(MAX_WAIT);
        };
        f.retain(|_, (_, at)| at.elapsed() < MAX_WAIT);
        let keys = [
            (pair_key(ip, user), FREE_FAILURES),
            (ip.to_string(), FREE_FAILURES_PER_IP),
        ];
        for (key, free) in &keys {
            if let Some((n, last)) = f.get(key)
                && *n >= *free
            {
                let wait = backoff(*n - *free);
                let waited = last.elapsed();
                if waited < wait {
                    return Err(wait - waited);
                }
            }
        }
        for (key, _) in keys {
            let e = f.entry(key).or_insert((0, Instant::now()));
            e.0 += 1;
            e.1 = Instant::now();
        }
        Ok(())
    }

    /// The attempt counted by [`Sessions::attempt`] succeeded: the pair starts
    /// over and the address gets that attempt back.
    pub fn succeeded(&self, ip: IpAddr, user: &str) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(&pair_key(ip, user));
            if let Some(e) = f.get_mut(&ip.to_string()) {
                e.0 = e.0.saturating_sub(1);
            }
        }
    }
}

/// The wait after `beyond` failures past the free ones: 2 s, 4 s, 8 s, … at
/// most [`MAX_WAIT`].
fn backoff(beyond: u32) -> Duration {
    FIRST_WAIT
        .saturating_mul(1u32.checked_shl(beyond.min(20)).unwrap_or(u32::MAX))
        .min(MAX_WAIT)
}

fn pair_key(ip: IpAddr, user: &str) -> String {
    format!("{ip} {}", user_key(user))
}

fn user_key(user: &str) -> String {
    format!("user:{}", user.to_lowercase())
}

fn alive(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last_seen) < IDLE && now.duration_since(s.created) < ABSOLUTE
}

pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The `Set-Cookie` value for a new session (or, with `None`, one that clears it).
pub fn set_cookie(id: Option<&str>, tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    match id {
        Some(id) => format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{secure}"),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

fn state_changing(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Constant-time string comparison for the CSRF token.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// For every console page and API route: attaches the session's [`Principal`]
/// and [`Session`], and refuses a state-changing request whose CSRF token (form
/// field `_csrf` or header `X-CSRF-Token`) does not match the session's. Without
/// a session the request continues with no principal: console pages then send
/// the browser to the login page, the API falls back to its bearer token.
pub async fn layer(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    let Some(session) = cookie_value(req.headers()).and_then(|id| state.sessions.get(&id)) else {
        return next.run(req).await;
    };
    let mut req = req;
    if state_changing(req.method()) {
        let header_ok = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| same(t, &session.csrf));
        if !header_ok {
            let (parts, body) = req.into_parts();
            let Ok(bytes) = to_bytes(body, MAX_FORM).await else {
                return (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response();
            };
            let probe = Request::from_parts(parts.clone(), Body::from(bytes.clone()));
            let token = axum::Form::<Vec<(String, String)>>::from_request(probe, &())
                .await
                .ok()
                .and_then(|f| {
                    f.0.into_iter()
                        .find(|(k, _)| k == CSRF_FIELD)
                        .map(|(_, v)| v)
                });
            if !token.is_some_and(|t| same(&t, &session.csrf)) {
                return (
                    StatusCode::FORBIDDEN,
                    "missing or wrong CSRF token: reload the page and try again",
                )
                    .into_response();
            }
            req = Request::from_parts(parts, Body::from(bytes));
        }
    }
    req.extensions_mut().insert(Principal {
        user: session.user.clone(),
    });
    req.extensions_mut().insert(session);
    next.run(req).await
}

/// For console pages: no session → the login page (GET) or 401.
pub async fn require(req: Request, next: Next) -> Response {
    if req.extensions().get::<Session>().is_some() {
        return next.run(req).await;
    }
    if req.method() == Method::GET {
        Redirect::to("/login").into_response()
    } else {
        (StatusCode::UNAUTHORIZED, "log in first").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_lockout() {
        let s = Sessions::default();
        let id = s.create("admin");
        assert_eq!(s.get(&id).map(|x| x.user), Some("admin".into()));
        assert!(s.get("nope").is_none());
        s.remove_user("admin", None);
        assert!(s.get(&id).is_none());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..FREE_FAILURES {
            assert_eq!(s.attempt(ip, "Admin"), Ok(()));
        }
        let wait = s.attempt(ip, "admin").unwrap_err();
        assert!(wait <= FIRST_WAIT && wait > Duration::ZERO, "{wait:?}");
        // Not per user: the same user from elsewhere is not locked out.
        assert_eq!(s.attempt("10.0.0.1".parse().unwrap(), "ADMIN"), Ok(()));
        s.succeeded(ip, "admin");
        assert_eq!(s.attempt(ip, "admin"), Ok(()));
        // Spraying many user names from one address meets the per-address limit.
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        for i in 0..FREE_FAILURES_PER_IP {
            assert_eq!(s.attempt(other, &format!("user{i}")), Ok(()));
        }
        assert!(s.attempt(other, "someone-else").is_err());
    }

    #[test]
    fn waits_grow_and_are_bounded() {
        assert_eq!(backoff(0), Duration::from_secs(2));
        assert_eq!(backoff(1), Duration::from_secs(4));
        assert_eq!(backoff(3), Duration::from_secs(16));
        assert_eq!(backoff(40), MAX_WAIT);
    }

    #[test]
    fn cookies() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=b; bh_session=xyz; c=d".parse().unwrap());
        assert_eq!(cookie_value(&h).as_deref(), Some("xyz"));
        assert!(set_cookie(Some("x"), true).contains("HttpOnly; SameSite=Strict; Secure"));
        assert!(set_cookie(None, false).contains("Max-Age=0"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
