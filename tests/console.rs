//! End-to-end: the web console (PRODUCT §7) — a real headless Chromium drives
//! the main flows (tests/browser/console.py, Selenium), and curl checks what
//! must hold for every page: no access without a session, no state change
//! without the CSRF token, hostile input escaped, login throttling, headers.

mod common;

use std::path::Path;
use std::process::Command;

use common::peers::SmtpSink;
use common::*;

const PASSWORD: &str = "console-test-password";

fn start(dir: &Path) -> Server {
    Server::start(dir, &[("BRIDGEHEAD_ADMIN_PASSWORD", PASSWORD)])
}

/// curl with a cookie jar in `dir`; returns (status, headers + body).
fn curl(dir: &Path, args: &[&str]) -> (u16, String) {
    let jar = dir.join("cookies.txt");
    let out = Command::new("curl")
        .args([
            "-s",
            "-i",
            "-c",
            jar.to_str().unwrap(),
            "-b",
            jar.to_str().unwrap(),
            "--max-time",
            "20",
        ])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A started server with a console session: the server, its console URL and
/// the `_csrf=...` form field for [`post`].
fn signed_in(dir: &Path) -> (Server, String, String) {
    let s = start(dir);
    let base = format!("http://{}", s.admin);
    let csrf = login(&s, dir);
    (s, base, format!("_csrf={csrf}"))
}

/// A form POST with the CSRF token (`_csrf=...`) and `data` to `url`.
fn post(dir: &Path, token: &str, data: &str, url: &str) -> (u16, String) {
    curl(dir, &["--data-urlencode", token, "-d", data, url])
}

fn field(html: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    html.split(&key)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_string()
}

/// Logs in through the form; returns the session's CSRF token.
fn login(s: &Server, dir: &Path) -> String {
    let base = format!("http://{}", s.admin);
    let (_, page) = curl(dir, &[&format!("{base}/login")]);
    let token = field(&page, "login_token");
    let (status, _) = curl(
        dir,
        &[
            "--data-urlencode",
            "username=admin",
            "--data-urlencode",
            &format!("password={PASSWORD}"),
            "--data-urlencode",
            &format!("login_token={token}"),
            &format!("{base}/login"),
        ],
    );
    assert_eq!(status, 303, "logged in");
    let (_, account) = curl(dir, &[&format!("{base}/account")]);
    let csrf = field(&account, "_csrf");
    assert_eq!(csrf.len(), 64, "{account}");
    csrf
}

const PAGES: &[&str] = &[
    "/",
    "/org/hub-transport",
    "/org/hub-transport?tab=send-connectors",
    "/org/send-connectors/new",
    "/server/receive-connectors/new",
    "/server/hub-transport",
    "/server/hub-transport?tab=properties",
    "/recipients/mailboxes",
    "/recipients/mailboxes/new",
    "/recipients/groups",
    "/recipients/contacts",
    "/toolbox/queues",
    "/toolbox/messages?queue=unreachable",
    "/toolbox/tracking",
    "/toolbox/protocol-logs",
    "/toolbox/dns",
    "/audit",
    "/account",
];

const POSTS: &[&str] = &[
    "/logout",
    "/account",
    "/org/accepted-domains/new",
    "/org/accepted-domains/remove",
    "/org/address-policies/apply",
    "/org/send-connectors/new",
    "/org/send-connectors/toggle",
    "/org/send-connectors/remove",
    "/server/hub-transport",
    "/server/receive-connectors/toggle",
    "/recipients/mailboxes/new",
    "/recipients/mailboxes/properties",
    "/recipients/mailboxes/remove",
    "/toolbox/queues/action",
    "/toolbox/message/action",
    "/account/tokens",
    "/account/tokens/remove",
    "/server/receive-connectors/new",
    "/account/users",
    "/account/users/remove",
    "/recipients/groups",
    "/recipients/groups/remove",
    "/recipients/contacts",
    "/recipients/contacts/remove",
    "/recipients/groups/properties",
    "/org/remote-domains/new",
    "/org/remote-domains/remove",
    "/org/address-policies/new",
    "/org/address-policies/remove",
];

#[test]
fn nothing_works_without_a_session_and_csrf_token() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = start(d);
    let base = format!("http://{}", s.admin);
    for p in PAGES {
        let (status, text) = curl(d, &[&format!("{base}{p}")]);
        assert_eq!(status, 303, "{p} without a session");
        assert!(text.contains("location: /login"), "{p}: {text}");
    }
    for p in POSTS {
        let (status, _) = curl(d, &["-d", "name=x", &format!("{base}{p}")]);
        assert_eq!(status, 401, "POST {p} without a session");
    }
    let (status, _) = curl(
        d,
        &[&format!(
            "{base}/toolbox/message/export?id=0123456789ABCDEF"
        )],
    );
    assert_eq!(status, 303);

    let csrf = login(&s, d);
    for p in PAGES {
        let (status, text) = curl(d, &[&format!("{base}{p}")]);
        assert_eq!(status, 200, "{p}: {text}");
        for h in [
            "content-security-policy: default-src 'self'",
            "x-frame-options: DENY",
            "x-content-type-options: nosniff",
            "cache-control: no-store",
        ] {
            assert!(
                text.to_lowercase().contains(&h.to_lowercase()),
                "{p} lacks {h}"
            );
        }
    }
    // Every POST without the token (or with a wrong one) is refused, and changes nothing.
    for p in POSTS {
        let (status, _) = curl(
            d,
            &[
                "-d",
                "name=example.com&type=authoritative",
                &format!("{base}{p}"),
            ],
        );
        assert_eq!(status, 403, "POST {p} without the CSRF token");
        let (status, _) = curl(
            d,
            &["-d", "_csrf=0000&name=example.com", &format!("{base}{p}")],
        );
        assert_eq!(status, 403, "POST {p} with a wrong token");
    }
    assert_eq!(sql(d, "SELECT COUNT(*) FROM accepted_domains"), "0");
    // With it, it works.
    let (status, _) = curl(
        d,
        &[
            "--data-urlencode",
            &format!("_csrf={csrf}"),
            "-d",
            "name=example.com&type=authoritative",
            &format!("{base}/org/accepted-domains/new"),
        ],
    );
    assert_eq!(status, 303);
    assert_eq!(sql(d, "SELECT name FROM accepted_domains"), "example.com");
    assert!(
        sql(d, "SELECT action || ' ' || actor FROM audit_log")
            .contains("accepted-domain.new admin")
    );

    // Logout ends the session.
    let (status, _) = curl(
        d,
        &[
            "--data-urlencode",
            &format!("_csrf={csrf}"),
            &format!("{base}/logout"),
        ],
    );
    assert_eq!(status, 303);
    let (status, _) = curl(d, &[&format!("{base}/")]);
    assert_eq!(status, 303, "logged out");
}

#[test]
fn hostile_input_is_escaped_and_refused_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (_server, base, tok) = signed_in(d);
    let hostile = "<script>alert(\"x\")</script>'\"&";
    let (status, page) = curl(
        d,
        &[
            "--data-urlencode",
            &tok,
            "--data-urlencode",
            &format!("name={hostile}"),
            "-d",
            "type=authoritative",
            &format!("{base}/org/accepted-domains/new"),
        ],
    );
    assert_eq!(status, 400);
    assert!(!page.contains("<script>alert"), "escaped: {page}");
    assert!(page.contains("&#60;script&#62;"), "{page}");
    assert!(page.contains("id=\"err-name\""), "error beside the field");
    // A display name with markup is stored and shown escaped.
    post(
        d,
        &tok,
        "name=example.com&type=authoritative",
        &format!("{base}/org/accepted-domains/new"),
    );
    let (status, _) = curl(
        d,
        &[
            "--data-urlencode",
            &tok,
            "-d",
            "address=eve@example.com",
            "--data-urlencode",
            &format!("display_name={hostile}"),
            &format!("{base}/recipients/mailboxes/new"),
        ],
    );
    assert_eq!(status, 303);
    let (_, list) = curl(d, &[&format!("{base}/recipients/mailboxes")]);
    assert!(
        list.contains("&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62;&#39;&#34;&#38;"),
        "{list}"
    );
    assert!(!list.contains("<script>alert"));
    // Very long values: refused with a message, not a broken page.
    let long = d.join("long.txt");
    std::fs::write(&long, format!("{}@example.com", "a".repeat(100_000))).unwrap();
    let (status, page) = curl(
        d,
        &[
            "--data-urlencode",
            &tok,
            "--data-urlencode",
            &format!("address@{}", long.display()),
            "-d",
            "display_name=Long",
            &format!("{base}/recipients/mailboxes/new"),
        ],
    );
    assert_eq!(status, 400, "{}", &page[..page.len().min(500)]);
    assert!(page.contains("err-address"));
    // Bigger than any form: 413.
    let huge = d.join("huge.txt");
    std::fs::write(&huge, "b".repeat(400_000)).unwrap();
    let (status, _) = curl(
        d,
        &[
            "--data-urlencode",
            &tok,
            "--data-urlencode",
            &format!("display_name@{}", huge.display()),
            &format!("{base}/recipients/mailboxes/new"),
        ],
    );
    assert_eq!(status, 413);
    // A tracking query with markup.
    let (status, page) = curl(
        d,
        &[
            "-G",
            "--data-urlencode",
            &format!("sender={hostile}"),
            &format!("{base}/toolbox/tracking"),
        ],
    );
    assert_eq!(status, 200);
    assert!(!page.contains("<script>alert"));
}

#[test]
fn logins_are_throttled() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = start(d);
    let base = format!("http://{}", s.admin);
    let attempt = |pw: &str| {
        let (_, page) = curl(d, &[&format!("{base}/login")]);
        let token = field(&page, "login_token");
        curl(
            d,
            &[
                "--data-urlencode",
                "username=admin",
                "--data-urlencode",
                &format!("password={pw}"),
                "--data-urlencode",
                &format!("login_token={token}"),
                &format!("{base}/login"),
            ],
        )
        .0
    };
    // Without the login form's token: refused.
    let (status, _) = curl(
        d,
        &[
            "-d",
            &format!("username=admin&password={PASSWORD}"),
            &format!("{base}/login"),
        ],
    );
    assert_eq!(status, 403);
    for _ in 0..5 {
        assert_eq!(attempt("wrong-password-1"), 401);
    }
    assert_eq!(
        attempt(PASSWORD),
        429,
        "locked out even with the right password"
    );
    let (status, _) = curl(d, &[&format!("{base}/")]);
    assert_eq!(status, 303, "no session was made");
}

#[test]
fn the_console_in_a_real_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let sink = SmtpSink::start(&[]);
    let s = start(d);
    let shots = std::env::var("BRIDGEHEAD_SCREENSHOTS")
        .unwrap_or_else(|_| format!("{}/screenshots", env!("CARGO_TARGET_TMPDIR")));
    let out = Command::new("/usr/bin/python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/browser/console.py"
        ))
        .arg(format!("http://{}", s.admin))
        .arg(PASSWORD)
        .arg(s.smtp[0].to_string())
        .arg(sink.port.to_string())
        .arg(&shots)
        .output()
        .expect(
            "python3 with selenium (.ci/run installs python3-selenium, chromium, chromium-driver)",
        );
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("all steps passed"),
        "{text}"
    );
    assert!(Path::new(&shots).join("dashboard.png").exists());
}

#[test]
fn connector_properties_tabs_save_through_the_shared_validation() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let o = cli(
        d,
        &[
            "send-connector",
            "new",
            "--name",
            "Out",
            "--address-space",
            "*",
            "--smart-host",
            "127.0.0.1:2525",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (_server, base, tok) = signed_in(d);
    for tab in ["general", "address-space", "network", "source-server"] {
        let (status, page) = curl(
            d,
            &[&format!(
                "{base}/org/send-connectors/properties?name=Out&tab={tab}"
            )],
        );
        assert_eq!(status, 200, "{tab}: {page}");
    }
    for tab in [
        "general",
        "network",
        "authentication",
        "permission-groups",
        "limits",
    ] {
        let (status, _) = curl(
            d,
            &[&format!(
                "{base}/server/receive-connectors/properties?name=Default%20Internet&tab={tab}"
            )],
        );
        assert_eq!(status, 200, "{tab}");
    }
    // Network tab: a bad smart host is refused beside its field, a good one saved.
    let url = format!("{base}/org/send-connectors/properties?name=Out");
    let (status, page) = post(
        d,
        &tok,
        "tab=network&smart_hosts=bad:host:x&port=25&auth=none",
        &url,
    );
    assert_eq!(status, 400);
    assert!(page.contains("id=\"err-smart_hosts\""), "{page}");
    let (status, _) = post(
        d,
        &tok,
        "tab=network&smart_hosts=relay.example.net:587&port=25&auth=none&require_tls=true",
        &url,
    );
    assert_eq!(status, 303);
    let show = stdout(&cli(d, &["send-connector", "show", "Out", "--json"]));
    assert!(
        show.contains("relay.example.net:587") && show.contains("\"require_tls\": true"),
        "{show}"
    );
    // Receive connector limits.
    let url = format!("{base}/server/receive-connectors/properties?name=Default%20Internet");
    let (status, page) = post(d, &tok, "tab=limits&max_recipients=0", &url);
    assert_eq!(status, 400);
    assert!(page.contains("id=\"err-max_recipients\""), "{page}");
    let (status, _) = post(d, &tok, "tab=limits&max_recipients=50", &url);
    assert_eq!(status, 303);
    let show = stdout(&cli(
        d,
        &["receive-connector", "show", "Default Internet", "--json"],
    ));
    assert!(show.contains("\"max_recipients\": 50"), "{show}");
    assert!(sql(d, "SELECT group_concat(action) FROM audit_log").contains("receive-connector.set"));
}

#[test]
fn the_api_accepts_a_console_session_with_its_csrf_header() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = start(d);
    let base = format!("http://{}", s.admin);
    let csrf = login(&s, d);
    let (status, body) = curl(d, &[&format!("{base}/api/v1/accepted-domains")]);
    assert_eq!(status, 200, "{body}");
    let json = [
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"name":"example.com"}"#,
    ];
    let (status, _) = curl(
        d,
        &[&json[..], &[&format!("{base}/api/v1/accepted-domains")]].concat(),
    );
    assert_eq!(
        status, 403,
        "a session without the CSRF header cannot change anything"
    );
    let header = format!("X-CSRF-Token: {csrf}");
    let (status, body) = curl(
        d,
        &[
            &json[..],
            &["-H", &header, &format!("{base}/api/v1/accepted-domains")],
        ]
        .concat(),
    );
    assert_eq!(status, 201, "{body}");
    assert!(
        sql(
            d,
            "SELECT actor FROM audit_log WHERE action = 'accepted-domain.new'"
        )
        .contains("admin")
    );
}

#[test]
fn api_tokens_are_made_in_the_console_and_work() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = start(d);
    let base = format!("http://{}", s.admin);
    let csrf = login(&s, d);
    let (status, page) = curl(
        d,
        &[
            "--data-urlencode",
            &format!("_csrf={csrf}"),
            "-d",
            "name=monitoring",
            &format!("{base}/account/tokens"),
        ],
    );
    assert_eq!(status, 200, "{page}");
    let token = page
        .split("<pre>")
        .nth(1)
        .and_then(|r| r.split("</pre>").next())
        .unwrap_or_default()
        .to_string();
    assert!(token.len() > 20, "{page}");
    // The token works without the cookie jar.
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            &format!("Authorization: Bearer {token}"),
            &format!("{base}/api/v1/mailboxes"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    let (_, account) = curl(d, &[&format!("{base}/account")]);
    assert!(
        account.contains("monitoring") && !account.contains(&token),
        "listed, never shown again"
    );
    let (status, _) = curl(
        d,
        &[
            "--data-urlencode",
            &format!("_csrf={csrf}"),
            "-d",
            "name=monitoring",
            &format!("{base}/account/tokens/remove"),
        ],
    );
    assert_eq!(status, 303);
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            &format!("Authorization: Bearer {token}"),
            &format!("{base}/api/v1/mailboxes"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401", "revoked");
}

#[test]
fn new_receive_connector_wizard_shows_the_command_then_listens() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = start(d);
    let base = format!("http://{}", s.admin);
    let csrf = login(&s, d);
    let port = free_port();
    let binding = format!("bindings=127.0.0.1:{port}");
    let url = format!("{base}/server/receive-connectors/new");
    // The same binding and range as an existing connector: refused beside the field.
    let taken = format!("bindings=127.0.0.1:{}", s.smtp[0]);
    let (status, page) = curl(
        d,
        &[
            "--data-urlencode",
            &format!("_csrf={csrf}"),
            "-d",
            "name=Dup&usage=internet",
            "-d",
            &taken,
            &url,
        ],
    );
    assert_eq!(status, 409, "{page}");
    let (status, page) = curl(
        d,
        &[
            "--data-urlencode",
            &format!("_csrf={csrf}"),
            "-d",
            "name=Relay&usage=custom&remote_ranges=127.0.0.0/8",
            "-d",
            &binding,
            &url,
        ],
    );
    assert_eq!(status, 200);
    assert!(page.contains(&format!("bridgehead receive-connector new --name Relay --usage custom --binding 127.0.0.1:{port} --remote-ip 127.0.0.0/8")), "{page}");
    assert_eq!(
        sql(
            d,
            "SELECT COUNT(*) FROM receive_connectors WHERE name = 'Relay'"
        ),
        "0",
        "not saved before Create"
    );
    let (status, _) = curl(
        d,
        &[
            "--data-urlencode",
            &format!("_csrf={csrf}"),
            "-d",
            "name=Relay&usage=custom&remote_ranges=127.0.0.0/8&step=create",
            "-d",
            &binding,
            &url,
        ],
    );
    assert_eq!(status, 303);
    assert!(
        eventually(5, || std::net::TcpStream::connect(("127.0.0.1", port))
            .is_ok()),
        "the new connector listens"
    );
}

#[test]
fn more_console_users_can_log_in_and_be_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (_server, base, tok) = signed_in(d);
    let (status, page) = post(
        d,
        &tok,
        "username=bob&password=short",
        &format!("{base}/account/users"),
    );
    assert_eq!(status, 400);
    assert!(page.contains("id=\"err-password\""), "{page}");
    let (status, _) = post(
        d,
        &tok,
        "username=bob&password=bobs-long-password",
        &format!("{base}/account/users"),
    );
    assert_eq!(status, 303);
    // bob logs in with his own cookie jar.
    let bob = tmp.path().join("bob");
    std::fs::create_dir(&bob).unwrap();
    let (_, login_page) = curl(&bob, &[&format!("{base}/login")]);
    let t = field(&login_page, "login_token");
    let (status, _) = curl(
        &bob,
        &[
            "-d",
            "username=bob&password=bobs-long-password",
            "--data-urlencode",
            &format!("login_token={t}"),
            &format!("{base}/login"),
        ],
    );
    assert_eq!(status, 303);
    let (status, _) = curl(&bob, &[&format!("{base}/")]);
    assert_eq!(status, 200);
    // Removing him ends his session.
    let (status, _) = post(
        d,
        &tok,
        "username=bob",
        &format!("{base}/account/users/remove"),
    );
    assert_eq!(status, 303);
    let (status, _) = curl(&bob, &[&format!("{base}/")]);
    assert_eq!(status, 303, "bob's session is gone");
}

#[test]
fn groups_and_contacts_are_made_and_removed_in_the_console() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (_server, base, tok) = signed_in(d);
    post(
        d,
        &tok,
        "name=example.com&type=authoritative",
        &format!("{base}/org/accepted-domains/new"),
    );
    post(
        d,
        &tok,
        "address=alice@example.com&display_name=Alice",
        &format!("{base}/recipients/mailboxes/new"),
    );
    let (status, _) = post(
        d,
        &tok,
        "name=partner&external_address=pat@partner.test",
        &format!("{base}/recipients/contacts"),
    );
    assert_eq!(status, 303);
    let (status, page) = post(
        d,
        &tok,
        "address=sales@example.com&members=alice@example.com,nobody@example.com",
        &format!("{base}/recipients/groups"),
    );
    assert_eq!(status, 400, "an unknown member is refused");
    assert!(page.contains("nobody@example.com"), "{page}");
    let (status, _) = post(
        d,
        &tok,
        "address=sales@example.com&members=alice@example.com,partner&only_authenticated=true",
        &format!("{base}/recipients/groups"),
    );
    assert_eq!(status, 303);
    let show = stdout(&cli(d, &["group", "show", "sales@example.com"]));
    assert!(
        show.contains("Members:                     alice@example.com, pat@partner.test"),
        "{show}"
    );
    assert!(show.contains("Only authenticated senders:  yes"), "{show}");
    // Properties: members and restrictions change through the shared validation.
    let props = format!("{base}/recipients/groups/properties");
    let (status, page) = post(
        d,
        &tok,
        "address=sales@example.com&add_members=ghost@example.com",
        &props,
    );
    assert_eq!(status, 400);
    assert!(page.contains("ghost@example.com"), "{page}");
    let (status, _) = post(
        d,
        &tok,
        "address=sales@example.com&remove_members=partner&add_reject_from=spam@bad.test",
        &props,
    );
    assert_eq!(status, 303);
    let (status, page) = curl(d, &[&format!("{props}?address=sales%40example.com")]);
    assert_eq!(status, 200);
    assert!(
        page.contains("<th>Members</th><td>alice@example.com</td>")
            && page.contains("spam@bad.test"),
        "{page}"
    );
    assert!(
        page.contains("<th>Only authenticated senders</th><td>No</td>"),
        "the unchecked box turns it off: {page}"
    );
    let (status, _) = post(
        d,
        &tok,
        "address=sales@example.com",
        &format!("{base}/recipients/groups/remove"),
    );
    assert_eq!(status, 303);
    let (status, _) = post(
        d,
        &tok,
        "name=partner",
        &format!("{base}/recipients/contacts/remove"),
    );
    assert_eq!(status, 303);
    assert_eq!(
        sql(d, "SELECT COUNT(*) FROM distribution_groups")
            + &sql(d, "SELECT COUNT(*) FROM mail_contacts"),
        "00"
    );
}

#[test]
fn remote_domains_and_address_policies_in_the_console() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (_server, base, tok) = signed_in(d);
    post(
        d,
        &tok,
        "name=example.com&type=authoritative",
        &format!("{base}/org/accepted-domains/new"),
    );
    post(
        d,
        &tok,
        "address=alice@example.com&display_name=Alice&given_name=Alice&surname=Smith",
        &format!("{base}/recipients/mailboxes/new"),
    );
    let (status, _) = post(
        d,
        &tok,
        "domain=partner.test&name=Partner&allow_ndr=true",
        &format!("{base}/org/remote-domains/new"),
    );
    assert_eq!(status, 303);
    let (status, page) = post(
        d,
        &tok,
        "domain=bad domain",
        &format!("{base}/org/remote-domains/new"),
    );
    assert_eq!(status, 400);
    assert!(page.contains("id=\"err-domain\""), "{page}");
    let (status, page) = curl(
        d,
        &[
            "--data-urlencode",
            &tok,
            "-d",
            "name=Std",
            "--data-urlencode",
            "templates=%q@example.com",
            &format!("{base}/org/address-policies/new"),
        ],
    );
    assert_eq!(status, 400, "{page}");
    let (status, _) = curl(
        d,
        &[
            "--data-urlencode",
            &tok,
            "-d",
            "name=Std&apply=true",
            "--data-urlencode",
            "templates=%g.%s@example.com",
            &format!("{base}/org/address-policies/new"),
        ],
    );
    assert_eq!(status, 303);
    let show = stdout(&cli(d, &["mailbox", "show", "alice@example.com"]));
    assert!(
        show.to_lowercase().contains("alice.smith@example.com"),
        "applied: {show}"
    );
    let (status, _) = post(
        d,
        &tok,
        "name=Std",
        &format!("{base}/org/address-policies/remove"),
    );
    assert_eq!(status, 303);
    let (status, _) = post(
        d,
        &tok,
        "domain=partner.test",
        &format!("{base}/org/remote-domains/remove"),
    );
    assert_eq!(status, 303);
    assert_eq!(sql(d, "SELECT COUNT(*) FROM address_policies"), "0");
}

#[test]
fn the_send_wizard_summary_shows_what_the_usage_prefills() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = start(d);
    let base = format!("http://{}", s.admin);
    let csrf = login(&s, d);
    let url = format!("{base}/org/send-connectors/new");
    let (status, page) = curl(
        d,
        &[
            "--data-urlencode",
            &format!("_csrf={csrf}"),
            "-d",
            "name=Contoso&usage=partner&address_spaces=contoso.com",
            &url,
        ],
    );
    assert_eq!(status, 200);
    assert!(
        page.contains("<th>Require TLS</th><td>Yes</td>"),
        "partner requires TLS: {page}"
    );
    let (status, page) = curl(
        d,
        &[
            "--data-urlencode",
            &format!("_csrf={csrf}"),
            "-d",
            "name=Bad&address_spaces=*&port=twenty-five",
            &url,
        ],
    );
    assert_eq!(status, 400);
    assert!(page.contains("id=\"err-port\""), "{page}");
}

#[test]
fn message_export_from_the_console_is_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for args in [
        &["accepted-domain", "new", "example.com", "--default"][..],
        &["mailbox", "new", "alice@example.com", "--name", "Alice"],
        &["queue", "suspend", "mailbox"],
    ] {
        let o = cli(d, args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    let (s, base, _) = signed_in(d);
    let (code, out) = swaks(&[
        "--server",
        &format!("127.0.0.1:{}", s.smtp[0]),
        "--from",
        "sender@elsewhere.test",
        "--to",
        "alice@example.com",
        "--header",
        "Subject: exported",
    ]);
    assert_eq!(code, 0, "{out}");
    let mut id = String::new();
    assert!(eventually(10, || {
        id = sql(d, "SELECT id FROM messages");
        !id.is_empty()
    }));
    let (status, text) = curl(d, &[&format!("{base}/toolbox/message/export?id={id}")]);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("Subject: exported"));
    assert_eq!(
        sql(
            d,
            "SELECT actor || ' ' || object FROM audit_log WHERE action = 'message.export'"
        ),
        format!("admin {id}")
    );
}

#[test]
fn a_foreign_host_header_is_refused_dns_rebinding() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = start(d);
    let base = format!("http://{}", s.admin);
    // A DNS-rebinding page reaches 127.0.0.1 under the attacker's own name.
    for path in ["/login", "/metrics", "/healthz", "/api/v1/queues"] {
        let (status, text) = curl(
            d,
            &["-H", "Host: rebind.attacker.test", &format!("{base}{path}")],
        );
        assert_eq!(status, 421, "{path}: {text}");
    }
    for host in ["localhost", "127.0.0.1"] {
        let (status, _) = curl(
            d,
            &[
                "-H",
                &format!("Host: {host}:8080"),
                &format!("{base}/login"),
            ],
        );
        assert_eq!(status, 200, "{host}");
    }
    let (status, _) = curl(d, &[&format!("{base}/metrics")]);
    assert_eq!(status, 200);
}

#[test]
fn parallel_wrong_logins_are_throttled_and_cannot_lock_out_others() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let s = start(d);
    let base = format!("http://{}", s.admin);
    let (_, page) = curl(d, &[&format!("{base}/login")]);
    let token = field(&page, "login_token");
    // 40 wrong logins from one address at the same moment: the check and the
    // count are one step, so only the free five reach the password check. (Not
    // the `curl` helper: it writes the cookie jar, and 40 writers at once tear it.)
    let jar = d.join("cookies.txt");
    let codes: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..40)
            .map(|_| {
                let (jar, base, token) = (jar.clone(), base.clone(), token.clone());
                scope.spawn(move || {
                    let out = Command::new("curl")
                        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-b"])
                        .arg(&jar)
                        .args(["--data-urlencode", "username=admin", "--data-urlencode"])
                        .arg("password=wrong-password")
                        .arg("--data-urlencode")
                        .arg(format!("login_token={token}"))
                        .arg(format!("{base}/login"))
                        .output()
                        .unwrap();
                    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wrong = codes.iter().filter(|&&c| c == 401).count();
    let throttled = codes.iter().filter(|&&c| c == 429).count();
    assert_eq!((wrong, throttled), (5, 35), "{codes:?}");
    // The admin logging in from another address is not locked out by that.
    let jar2 = d.join("cookies2.txt");
    let curl2 = |args: &[&str]| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--interface",
                "127.0.0.2",
                "-c",
            ])
            .arg(&jar2)
            .arg("-b")
            .arg(&jar2)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let out = Command::new("curl")
        .args(["-s", "--interface", "127.0.0.2", "-c"])
        .arg(&jar2)
        .arg(format!("{base}/login"))
        .output()
        .unwrap();
    let token2 = field(&String::from_utf8_lossy(&out.stdout), "login_token");
    let code = curl2(&[
        "--data-urlencode",
        "username=admin",
        "--data-urlencode",
        &format!("password={PASSWORD}"),
        "--data-urlencode",
        &format!("login_token={token2}"),
        &format!("{base}/login"),
    ]);
    assert_eq!(code, "303", "the right password from elsewhere still works");
}
