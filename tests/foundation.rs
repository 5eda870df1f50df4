//! End-to-end: the real binary on an empty directory (issue: foundation).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn first_start_creates_state_and_serves_healthz() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path(), &[]);
    let data = tmp.path().join("data");

    assert!(data.join("bridgehead.db").is_file(), "database created");
    assert!(
        data.join("tls/cert.pem").is_file() && data.join("tls/key.pem").is_file(),
        "self-signed certificate"
    );
    let key_mode = std::fs::metadata(data.join("tls/key.pem"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(key_mode, 0o600, "TLS key is private");

    let pw_file = data.join("initial-admin-password");
    let mode = std::fs::metadata(&pw_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "password file mode");
    let password = std::fs::read_to_string(&pw_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(
        password.len() >= 16,
        "generated password is long: {password:?}"
    );
    let notice = server.first_stdout_line();
    assert!(
        notice.contains(&password),
        "password printed once on stdout: {notice:?}"
    );

    // The database is in WAL mode and holds the admin user with an argon2id hash.
    let db = sqlite(
        &data.join("bridgehead.db"),
        "PRAGMA journal_mode; SELECT username, substr(password_hash, 1, 10) FROM console_users;",
    );
    assert!(db.contains("wal"), "{db}");
    assert!(db.contains("admin|$argon2id$"), "{db}");

    let health = server.healthz();
    assert_eq!(health["status"], "ok");

    // A second start must not create another password.
    assert!(server.terminate().success(), "graceful exit on SIGTERM");
    let mut again = Server::start(tmp.path(), &[]);
    assert_eq!(std::fs::read_to_string(&pw_file).unwrap().trim(), password);
    assert!(again.terminate().success());
    assert!(
        !again.read_stdout().contains("password"),
        "password printed only on first start"
    );
}

fn sqlite(db: &std::path::Path, sql: &str) -> String {
    // Read through the binary's own store would hide bugs; use Python's sqlite3.
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); [print('|'.join(map(str,r))) for s in sys.argv[2].split(';') if s.strip() for r in c.execute(s)]")
        .arg(db)
        .arg(sql)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn admin_password_from_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        tmp.path(),
        &[("BRIDGEHEAD_ADMIN_PASSWORD", "a-long-secret-pw")],
    );
    assert!(!tmp.path().join("data/initial-admin-password").exists());
    assert!(server.terminate().success());
    assert!(
        !server.read_stdout().contains("a-long-secret-pw"),
        "never echoed"
    );
}

#[test]
fn cli_changes_reach_the_running_server_within_two_seconds() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), &[]);
    let before = server.healthz()["directory_version"].as_i64().unwrap();

    let out = cli(
        tmp.path(),
        &["accepted-domain", "new", "example.com", "--default"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let changed = Instant::now();
    loop {
        let now = server.healthz()["directory_version"].as_i64().unwrap();
        if now > before {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(2),
            "server did not see the change within 2 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn quick_start_from_the_readme() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ok = |args: &[&str]| {
        let o = cli(d, args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    ok(&["accepted-domain", "new", "example.com", "--default"]);
    let o = cli_stdin(
        d,
        &[
            "mailbox",
            "new",
            "alice@example.com",
            "--name",
            "Alice Smith",
            "--password-stdin",
        ],
        "s3cret-pass\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    ok(&[
        "address-policy",
        "new",
        "Default",
        "--template",
        "%g.%s@example.com",
        "--apply",
    ]);
    let show: serde_json::Value = serde_json::from_str(&ok(&[
        "mailbox",
        "show",
        "alice.smith@example.com",
        "--json",
    ]))
    .unwrap();
    assert_eq!(show["primary_address"], "alice@example.com");
    assert_eq!(show["proxy_addresses"][0], "alice.smith@example.com");
    assert!(show.get("password_hash").is_none(), "hash never shown");

    let list = ok(&["accepted-domain", "list"]);
    assert!(
        list.contains("example.com") && list.contains("authoritative"),
        "{list}"
    );
    ok(&[
        "group",
        "new",
        "sales@example.com",
        "--member",
        "alice@example.com",
    ]);
    ok(&[
        "contact",
        "new",
        "partner",
        "--external-address",
        "bob@partner.test",
    ]);
    let groups: serde_json::Value =
        serde_json::from_str(&ok(&["group", "list", "--json"])).unwrap();
    assert_eq!(groups[0]["member_addresses"][0], "alice@example.com");
    ok(&["remote-domain", "new", "partner.test", "--ndr", "false"]);
    let rd = ok(&["remote-domain", "show", "partner.test"]);
    assert!(rd.contains("Non-delivery reports:  no"), "{rd}");
}

#[test]
fn exit_codes_and_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Usage error: 2.
    assert_eq!(cli(d, &["mailbox", "frobnicate"]).status.code(), Some(2));
    assert_eq!(cli(d, &["accepted-domain", "new"]).status.code(), Some(2));
    // Failure: 1 with one line.
    let o = cli(d, &["accepted-domain", "new", "bad domain"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("bad domain"), "{err}");
    let o = cli(d, &["mailbox", "new", "x@nowhere.test", "--name", "X"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not an accepted domain"));

    cli(d, &["accepted-domain", "new", "example.com"]);
    cli(d, &["mailbox", "new", "alice@example.com", "--name", "A"]);
    let o = cli(d, &["group", "new", "alice@example.com"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("already used by mailbox alice@example.com"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_config_is_one_line_naming_key_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("bad.toml"), "[admin]\nlisten = \"not-an-address\"\n").unwrap();
    let o = cli(d, &["--config", "bad.toml", "serve"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("admin.listen") && err.contains("bad.toml"),
        "{err}"
    );

    std::fs::write(d.join("bridgehead.toml"), "[smtp]\nport = 25\n").unwrap();
    let o = cli(d, &["accepted-domain", "list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unknown key `smtp.port` in bridgehead.toml"),
        "{}",
        stderr(&o)
    );

    let o = cli(d, &["--config", "missing.toml", "serve"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot read config file missing.toml"));

    std::fs::remove_file(d.join("bridgehead.toml")).unwrap();
    let o = command(d)
        .args(["accepted-domain", "list"])
        .env("BRIDGEHEAD_LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("BRIDGEHEAD_LOG_FORMAT"),
        "{}",
        stderr(&o)
    );
}
