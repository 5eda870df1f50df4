//! An HTTP client for API tests: `curl` (a real client we did not write), run
//! with the body on standard input (no argument-length limit) and the status,
//! headers and body captured separately.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request. `token` adds `Authorization: Bearer`; a `body` is sent as
/// `application/json` unless `headers` name another content type.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> Response {
    let dir = tempfile::tempdir().expect("tempdir");
    let head_file = dir.path().join("head");
    let body_file = dir.path().join("body");
    let mut c = Command::new("curl");
    c.args(["-s", "-S", "--max-time", "30", "-X", method])
        .arg("-D")
        .arg(&head_file)
        .arg("-o")
        .arg(&body_file)
        .args(["-w", "%{http_code}"])
        // No "Expect: 100-continue" for big bodies.
        .args(["-H", "Expect:"]);
    if let Some(t) = token {
        c.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let has_type = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    if body.is_some() && !has_type {
        c.args(["-H", "Content-Type: application/json"]);
    }
    for (k, v) in headers {
        c.args(["-H", &format!("{k}: {v}")]);
    }
    if body.is_some() {
        c.args(["--data-binary", "@-"]);
    }
    c.arg(format!("http://{addr}{path}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("curl is installed");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some(b) = body {
            // The server may answer (413) before reading it all.
            let _ = stdin.write_all(b);
        }
    }
    let out = child.wait_with_output().expect("curl");
    let status: u16 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| {
            panic!(
                "curl {method} {path} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let head = std::fs::read_to_string(&head_file).unwrap_or_default();
    let headers = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = std::fs::read(&body_file).unwrap_or_default();
    Response {
        status,
        headers,
        body,
    }
}

/// A client bound to one server and token.
pub struct Api {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

impl Api {
    pub fn new(addr: SocketAddr, token: &str) -> Api {
        Api {
            addr,
            token: Some(token.to_string()),
        }
    }

    fn send(&self, method: &str, path: &str, body: Option<&serde_json::Value>) -> Response {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("json"));
        request(
            self.addr,
            method,
            path,
            self.token.as_deref(),
            bytes.as_deref(),
            &[],
        )
    }

    pub fn get(&self, path: &str) -> Response {
        self.send("GET", path, None)
    }

    pub fn post(&self, path: &str, body: serde_json::Value) -> Response {
        self.send("POST", path, Some(&body))
    }

    /// POST without a body (actions).
    pub fn action(&self, path: &str) -> Response {
        self.send("POST", path, None)
    }

    pub fn patch(&self, path: &str, body: serde_json::Value) -> Response {
        self.send("PATCH", path, Some(&body))
    }

    pub fn delete(&self, path: &str) -> Response {
        self.send("DELETE", path, None)
    }
}
