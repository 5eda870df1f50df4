//! End-to-end: the JSON API under /api/v1 against the real server, with tokens
//! made by `bridgehead api-token new`, driven by curl.

mod common;

use std::path::Path;

use common::http::{Api, request};
use common::*;
use serde_json::{Value, json};

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = cli(dir, args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

/// A server with a token named `test`; returns the server and an API client.
fn start(dir: &Path) -> (Server, Api) {
    let out = ok(dir, &["api-token", "new", "test"]);
    let token = out.lines().next().unwrap().trim().to_string();
    assert!(token.starts_with("bh_"), "{out}");
    let s = Server::start(dir, &[]);
    let api = Api::new(s.admin, &token);
    (s, api)
}

fn openapi(s: &Server) -> Value {
    let r = request(s.admin, "GET", "/api/v1/openapi.json", None, None, &[]);
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    r.json()
}

fn audit_actions(api: &Api) -> Vec<(String, String, String, String)> {
    let r = api.get("/api/v1/audit?limit=1000");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
                e["object"].as_str().unwrap().to_string(),
                e["detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn openapi_lists_the_paths_and_every_route_needs_a_token() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, api) = start(tmp.path());
    let doc = openapi(&s);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/accepted-domains",
        "/api/v1/mailboxes/{address}",
        "/api/v1/groups",
        "/api/v1/contacts/{name}",
        "/api/v1/address-policies/{name}/apply",
        "/api/v1/remote-domains",
        "/api/v1/receive-connectors/{name}",
        "/api/v1/send-connectors",
        "/api/v1/queues/{queue}/retry",
        "/api/v1/messages/{id}/export",
        "/api/v1/tracking",
        "/api/v1/settings",
        "/api/v1/audit",
        "/api/v1/api-tokens/{name}",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    let mut checked = 0;
    for (path, item) in paths {
        for method in ["get", "post", "patch", "put", "delete"] {
            let Some(op) = item.get(method) else { continue };
            // Only the document itself is open (`security: [{}]`).
            let open = op["security"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
            });
            if open {
                assert_eq!(path, "/api/v1/openapi.json");
                continue;
            }
            let concrete = path
                .replace("{id}", "0123456789abcdef")
                .replace("{address}", "alice@example.com")
                .replace(['{', '}'], "");
            let m = method.to_uppercase();
            let body: Option<&[u8]> = matches!(method, "post" | "patch").then_some(b"{}");
            for token in [None, Some("bh_not-a-real-token"), Some("garbage")] {
                let r = request(s.admin, &m, &concrete, token, body, &[]);
                assert_eq!(r.status, 401, "{m} {concrete} with {token:?}: {}", r.text());
                assert!(
                    r.header("www-authenticate")
                        .is_some_and(|h| h.starts_with("Bearer")),
                    "{m} {concrete}"
                );
                assert!(r.json()["error"].is_string());
            }
            checked += 1;
        }
    }
    assert!(checked >= 55, "only {checked} operations checked");
    // Unknown API paths need a token too, and are 404 with one.
    let r = request(s.admin, "GET", "/api/v1/nothing-here", None, None, &[]);
    assert_eq!(r.status, 401);
    assert_eq!(api.get("/api/v1/nothing-here").status, 404);
    // The security headers apply to the API.
    let r = api.get("/api/v1/queues");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[test]
fn mailbox_crud_round_trip_with_errors_and_audit() {
    let tmp = tempfile::tempdir().unwrap();
    let (_s, api) = start(tmp.path());

    // Validation names the field; unknown domain is invalid input.
    let r = api.post(
        "/api/v1/mailboxes",
        json!({"address": "alice@example.com", "display_name": "Alice Smith"}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["field"], "address");

    let r = api.post(
        "/api/v1/accepted-domains",
        json!({"name": "example.com", "is_default": true}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("/api/v1/accepted-domains/example.com")
    );
    let r = api.post(
        "/api/v1/accepted-domains",
        json!({"name": "example.org", "domain_type": "sideways"}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "domain_type");

    let secret = "Correct-Horse-Battery-9";
    let r = api.post(
        "/api/v1/mailboxes",
        json!({"address": "alice@example.com", "display_name": "Alice Smith",
               "password": secret, "quota_mb": 50}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("/api/v1/mailboxes/alice@example.com")
    );
    let m = r.json();
    assert_eq!(m["primary_address"], "alice@example.com");
    assert_eq!(m["quota_mb"], 50);
    assert_eq!(m["password_set"], true);
    assert!(!r.text().contains(secret) && m.get("password").is_none());
    assert!(m.get("password_hash").is_none());

    // Duplicate → 409.
    let r = api.post(
        "/api/v1/mailboxes",
        json!({"address": "ALICE@example.com", "display_name": "Other"}),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("already"));

    // Read it back, in the list and alone.
    let list = api.get("/api/v1/mailboxes").json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let r = api.get("/api/v1/mailboxes/alice@example.com");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["display_name"], "Alice Smith");

    // PATCH: proxy address, quota cleared (null), new password; others unchanged.
    let r = api.patch(
        "/api/v1/mailboxes/alice@example.com",
        json!({"add_addresses": ["a.smith@example.com"], "quota_mb": null,
               "password": "Another-Good-Passw0rd"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let m = r.json();
    assert_eq!(m["proxy_addresses"], json!(["a.smith@example.com"]));
    assert!(m["quota_mb"].is_null());
    assert_eq!(m["display_name"], "Alice Smith");
    assert!(!r.text().contains("Another-Good"));
    // The mailbox is found by its proxy address too.
    assert_eq!(api.get("/api/v1/mailboxes/a.smith@example.com").status, 200);
    // Invalid quota → 400 with the field; a typo in a field name → 400.
    let r = api.patch(
        "/api/v1/mailboxes/alice@example.com",
        json!({"quota_mb": 0}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "quota_mb");
    let r = api.patch(
        "/api/v1/mailboxes/alice@example.com",
        json!({"pasword": "x"}),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("pasword"));
    // Clearing the password with null.
    let r = api.patch(
        "/api/v1/mailboxes/alice@example.com",
        json!({"password": null}),
    );
    assert_eq!(r.json()["password_set"], false);

    // Unknown → 404.
    let r = api.get("/api/v1/mailboxes/nobody@example.com");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string());
    assert_eq!(
        api.patch("/api/v1/mailboxes/nobody@example.com", json!({}))
            .status,
        404
    );
    assert_eq!(
        api.delete("/api/v1/mailboxes/nobody@example.com").status,
        404
    );

    // The CLI sees the API's change (one set of functions, one store).
    let shown = ok(tmp.path(), &["mailbox", "show", "alice@example.com"]);
    assert!(shown.contains("a.smith@example.com"), "{shown}");

    // Delete.
    assert_eq!(
        api.delete("/api/v1/mailboxes/alice@example.com").status,
        204
    );
    assert_eq!(api.get("/api/v1/mailboxes/alice@example.com").status, 404);

    // Audit: who did what, field names but never the password.
    let entries = audit_actions(&api);
    let has = |action: &str, object: &str| {
        entries
            .iter()
            .any(|(actor, a, o, _)| actor == "token:test" && a == action && o == object)
    };
    assert!(has("accepted-domain.new", "example.com"));
    assert!(has("mailbox.new", "alice@example.com"));
    assert!(has("mailbox.set", "alice@example.com"));
    assert!(has("mailbox.remove", "alice@example.com"));
    assert!(
        entries
            .iter()
            .any(|(actor, a, o, _)| actor == "cli" && a == "api-token.new" && o == "test")
    );
    let everything = sql(tmp.path(), "SELECT * FROM audit_log");
    assert!(!everything.contains(secret) && !everything.contains("Another-Good"));
    assert!(everything.contains("password"), "field names are kept");
    // The token's use is recorded.
    let tokens = api.get("/api/v1/api-tokens").json();
    assert!(tokens[0]["last_used_at"].is_string(), "{tokens}");
    assert!(tokens[0].get("token").is_none() && tokens[0].get("token_sha256").is_none());
}

#[test]
fn send_connector_password_is_write_only() {
    let tmp = tempfile::tempdir().unwrap();
    let (_s, api) = start(tmp.path());
    let secret = "smart-host-S3cret";
    let r = api.post(
        "/api/v1/send-connectors",
        json!({"name": "To relay", "address_spaces": ["*", "contoso.com;5"],
               "smart_hosts": ["relay.test:2525"], "auth": "basic",
               "username": "relayuser", "password": secret}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("/api/v1/send-connectors/To%20relay")
    );
    let c = r.json();
    assert_eq!(c["dns_routing"], false);
    assert_eq!(c["smart_hosts"], json!(["relay.test:2525"]));
    assert_eq!(c["password_set"], true);
    assert!(c.get("password").is_none() && !r.text().contains(secret));

    for path in [
        "/api/v1/send-connectors",
        "/api/v1/send-connectors/To%20relay",
    ] {
        let r = api.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert!(!r.text().contains(secret), "{path}");
        assert!(!r.text().contains("\"password\""), "{path}");
    }
    // The server still holds it (it must present it).
    assert_eq!(
        sql(
            tmp.path(),
            "SELECT password FROM send_connectors WHERE name = 'To relay'"
        ),
        secret
    );
    // PATCH leaves the password alone unless given; disable via `enabled`.
    let r = api.patch(
        "/api/v1/send-connectors/to relay"
            .replace(' ', "%20")
            .as_str(),
        json!({"port": 587, "enabled": false}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["port"], 587);
    assert_eq!(r.json()["enabled"], false);
    assert_eq!(r.json()["password_set"], true);
    // Validation: a bad smart host names the field.
    let r = api.patch(
        "/api/v1/send-connectors/To%20relay",
        json!({"smart_hosts": ["bad host:99999"]}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "smart_hosts");
    // Duplicate name.
    let r = api.post(
        "/api/v1/send-connectors",
        json!({"name": "TO RELAY", "address_spaces": ["*"]}),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    // The CLI shows the same connector, without the password.
    let shown = ok(tmp.path(), &["send-connector", "show", "To relay"]);
    assert!(shown.contains("relayuser (password set)") && !shown.contains(secret));
    // Audit detail names the field, never the value.
    let audit = sql(tmp.path(), "SELECT * FROM audit_log");
    assert!(audit.contains("send-connector.new") && !audit.contains(secret));
    assert_eq!(api.delete("/api/v1/send-connectors/To%20relay").status, 204);
    assert_eq!(api.get("/api/v1/send-connectors/To%20relay").status, 404);
}

#[test]
fn every_object_kind_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let (_s, api) = start(tmp.path());
    let created = |path: &str, body: Value| {
        let r = api.post(path, body);
        assert_eq!(r.status, 201, "{path}: {}", r.text());
        assert!(r.header("location").is_some());
        r.json()
    };
    created("/api/v1/accepted-domains", json!({"name": "example.com"}));
    let r = api.patch(
        "/api/v1/accepted-domains/example.com",
        json!({"is_default": true}),
    );
    assert_eq!(r.json()["is_default"], true);
    created(
        "/api/v1/mailboxes",
        json!({"address": "alice@example.com", "display_name": "Alice Smith"}),
    );

    // Contact, group with members and restrictions.
    created(
        "/api/v1/contacts",
        json!({"name": "partner", "external_address": "bob@partner.test",
               "address": "partner@example.com"}),
    );
    let r = api.patch(
        "/api/v1/contacts/partner",
        json!({"display_name": "Bob at Partner", "address": null}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["address"].is_null());
    let g = created(
        "/api/v1/groups",
        json!({"address": "sales@example.com", "display_name": "Sales",
               "members": ["alice@example.com", "partner"],
               "only_authenticated": true}),
    );
    assert_eq!(
        g["member_addresses"],
        json!(["alice@example.com", "bob@partner.test"])
    );
    assert_eq!(g["only_authenticated"], true);
    let r = api.patch(
        "/api/v1/groups/sales@example.com",
        json!({"remove_members": ["partner"], "add_reject_from": ["spam@bad.test"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["member_addresses"], json!(["alice@example.com"]));
    assert_eq!(r.json()["reject_from"], json!(["spam@bad.test"]));
    assert_eq!(
        api.get("/api/v1/groups").json().as_array().unwrap().len(),
        1
    );
    let r = api.post(
        "/api/v1/groups",
        json!({"address": "x@example.com", "members": ["ghost@example.com"]}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["field"], "members");

    // Address policy, applied.
    created(
        "/api/v1/address-policies",
        json!({"name": "Dotted", "templates": ["%g.%s@example.com"]}),
    );
    let r = api.action("/api/v1/address-policies/Dotted/apply");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()[0]["added"], json!(["alice.smith@example.com"]));
    let r = api.patch("/api/v1/address-policies/Dotted", json!({"priority": 3}));
    assert_eq!(r.json()["priority"], 3);
    let r = api.post(
        "/api/v1/address-policies",
        json!({"name": "Bad", "templates": ["%g@nowhere.test"]}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "templates");

    // Remote domain.
    created(
        "/api/v1/remote-domains",
        json!({"domain": "*.contoso.com", "name": "Contoso", "allow_auto_forward": false,
               "line_length": 78}),
    );
    let r = api.patch(
        "/api/v1/remote-domains/Contoso",
        json!({"line_length": null, "charset": "utf-8"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["line_length"].is_null());
    assert_eq!(r.json()["charset"], "utf-8");
    assert_eq!(api.get("/api/v1/remote-domains/*.contoso.com").status, 200);
    let r = api.post("/api/v1/remote-domains", json!({"name": "No domain"}));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "domain");

    // Receive connector.
    let port = free_port();
    let c = created(
        "/api/v1/receive-connectors",
        json!({"name": "Scanner", "usage": "internal",
               "bindings": [format!("127.0.0.1:{port}")],
               "remote_ranges": ["127.0.0.1"], "banner": "<hello>"}),
    );
    assert_eq!(c["bindings"], json!([format!("127.0.0.1:{port}")]));
    assert_eq!(c["banner"], "<hello>");
    let r = api.patch(
        "/api/v1/receive-connectors/Scanner",
        json!({"banner": null, "max_recipients": 10}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["banner"].is_null());
    assert_eq!(r.json()["max_recipients"], 10);
    let r = api.post(
        "/api/v1/receive-connectors",
        json!({"name": "Broken", "bindings": ["not-an-address"]}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "bindings");

    // Server settings.
    let r = api.patch(
        "/api/v1/settings",
        json!({"first_interval": "2m", "expiration": 172800, "ndr_copy_to": "postmaster@example.com"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let s = api.get("/api/v1/settings").json();
    assert_eq!(s["retry"]["first_interval"], 120);
    assert_eq!(s["retry"]["expiration"], 172800);
    assert_eq!(s["ndr_copy_to"], "postmaster@example.com");
    let r = api.patch("/api/v1/settings", json!({"first_interval": "soon"}));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "first_interval");

    // Removal, in dependency order; a domain in use cannot go.
    let r = api.delete("/api/v1/accepted-domains/example.com");
    assert_eq!(r.status, 409, "{}", r.text());
    for path in [
        "/api/v1/receive-connectors/Scanner",
        "/api/v1/remote-domains/Contoso",
        "/api/v1/address-policies/Dotted",
        "/api/v1/groups/sales@example.com",
        "/api/v1/contacts/partner",
        "/api/v1/mailboxes/alice@example.com",
        "/api/v1/accepted-domains/example.com",
    ] {
        let r = api.delete(path);
        assert_eq!(r.status, 204, "{path}: {}", r.text());
        assert_eq!(api.get(path).status, 404, "{path}");
    }
    let actions: Vec<String> = audit_actions(&api).into_iter().map(|e| e.1).collect();
    for a in [
        "contact.new",
        "contact.set",
        "group.new",
        "group.set",
        "address-policy.apply",
        "remote-domain.set",
        "receive-connector.new",
        "server.set",
        "group.remove",
        "accepted-domain.remove",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} not audited");
    }
}

#[test]
fn hostile_and_malformed_input() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, api) = start(tmp.path());
    api.post("/api/v1/accepted-domains", json!({"name": "example.com"}));

    // Markup and quotes are data: stored and returned exactly, as JSON strings.
    let nasty = "<script>alert('x')</script> \"Bobby\" O'Brien & co";
    let r = api.post(
        "/api/v1/mailboxes",
        json!({"address": "bob@example.com", "display_name": nasty}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(r.json()["display_name"], nasty);
    assert_eq!(
        api.get("/api/v1/mailboxes/bob@example.com").json()["display_name"],
        nasty
    );
    // A script in an address or a token name is refused.
    let r = api.post(
        "/api/v1/mailboxes",
        json!({"address": "<script>@example.com", "display_name": "x"}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "address");
    let r = api.post("/api/v1/api-tokens", json!({"name": "<img src=x>"}));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "name");

    // 100 KB values: refused with the field named.
    let big = "A".repeat(100 * 1024);
    let r = api.post(
        "/api/v1/mailboxes",
        json!({"address": "carol@example.com", "display_name": big}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "display_name");
    let r = api.post(
        "/api/v1/mailboxes",
        json!({"address": format!("{big}@example.com"), "display_name": "C"}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "address");
    let r = api.get(&format!("/api/v1/contacts/{}", "B".repeat(8000)));
    assert_eq!(r.status, 404);
    let r = api.post(
        "/api/v1/send-connectors",
        json!({"name": big, "address_spaces": ["*"]}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "name");

    // Oversize body → 413; bad JSON, wrong types, wrong content type → clean errors.
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let r = request(
        s.admin,
        "POST",
        "/api/v1/contacts",
        api.token.as_deref(),
        Some(huge.as_bytes()),
        &[],
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.json()["error"].is_string());
    for bad in [
        &b"{not json"[..],
        b"",
        b"[1,2,3]",
        b"{\"address\": 42}",
        b"{\"address\": \"d@example.com\", \"display_name\": \"D\", \"quota_mb\": \"lots\"}",
        b"\xff\xfe\x00",
    ] {
        let r = request(
            s.admin,
            "POST",
            "/api/v1/mailboxes",
            api.token.as_deref(),
            Some(bad),
            &[],
        );
        assert_eq!(
            r.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(bad),
            r.text()
        );
        assert!(r.json()["error"].as_str().unwrap().contains("JSON"));
    }
    let r = request(
        s.admin,
        "POST",
        "/api/v1/contacts",
        api.token.as_deref(),
        Some(b"name=x"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
    );
    assert_eq!(r.status, 415);
    // Bad query strings and ids.
    let r = api.delete("/api/v1/messages/0123456789abcdef?ndr=perhaps");
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].is_string());
    let r = api.get("/api/v1/messages/..%2F..%2Fetc%2Fpasswd/export");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["field"], "id");
    let r = api.get("/api/v1/tracking?since=yesterday");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "since");
    // Wrong method.
    let r = request(
        s.admin,
        "PUT",
        "/api/v1/mailboxes",
        api.token.as_deref(),
        None,
        &[],
    );
    assert_eq!(r.status, 405);
    // The server is still fine.
    assert_eq!(s.healthz()["status"], "ok");
}

#[test]
fn tokens_can_be_made_used_and_revoked_through_the_api() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, api) = start(tmp.path());
    let r = api.post("/api/v1/api-tokens", json!({"name": "deploy"}));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("location"), Some("/api/v1/api-tokens/deploy"));
    let t = r.json();
    let token = t["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("bh_") && token.len() > 40);
    assert_eq!(t["created_by"], "token:test");
    // Shown once: never in a list, a GET, or the database.
    let list = api.get("/api/v1/api-tokens");
    assert!(!list.text().contains(&token));
    assert!(!api.get("/api/v1/api-tokens/deploy").text().contains(&token));
    assert!(!sql(tmp.path(), "SELECT * FROM api_tokens").contains(&token));
    assert_eq!(
        api.post("/api/v1/api-tokens", json!({"name": "DEPLOY"}))
            .status,
        409
    );

    let deploy = Api::new(s.admin, &token);
    assert_eq!(deploy.get("/api/v1/queues").status, 200);
    let r = deploy.post("/api/v1/accepted-domains", json!({"name": "example.net"}));
    assert_eq!(r.status, 201);
    assert!(
        audit_actions(&api)
            .iter()
            .any(|(actor, a, _, _)| actor == "token:deploy" && a == "accepted-domain.new")
    );

    // The CLI lists it; revoking it works at once.
    assert!(ok(tmp.path(), &["api-token", "list"]).contains("deploy"));
    assert_eq!(api.delete("/api/v1/api-tokens/deploy").status, 204);
    assert_eq!(deploy.get("/api/v1/queues").status, 401);
    assert_eq!(api.delete("/api/v1/api-tokens/deploy").status, 404);
    // And from the CLI.
    ok(tmp.path(), &["api-token", "remove", "test"]);
    assert_eq!(api.get("/api/v1/queues").status, 401);
    let o = cli(tmp.path(), &["api-token", "remove", "test"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn queue_actions_and_tracking_after_real_mail() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (s, api) = start(d);
    api.post("/api/v1/accepted-domains", json!({"name": "example.com"}));
    let r = api.post(
        "/api/v1/mailboxes",
        json!({"address": "alice@example.com", "display_name": "Alice"}),
    );
    assert_eq!(r.status, 201);
    // Wait until the running server knows alice.
    let v = api.get("/api/v1/audit").json();
    assert!(!v.as_array().unwrap().is_empty());
    let version: i64 = sql(d, "SELECT version FROM org_version")
        .parse()
        .unwrap_or(0);
    assert!(eventually(10, || s.healthz()["directory_version"]
        .as_i64()
        .unwrap_or(0)
        >= version));

    let r = api.action("/api/v1/queues/mailbox/suspend");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["display_name"], "Mailbox delivery");
    let r = api.action("/api/v1/queues/poison/retry");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "queue");

    let server = format!("127.0.0.1:{}", s.smtp[0]);
    for subject in ["keep me", "drop me"] {
        let (code, out) = swaks(&[
            "--server",
            &server,
            "--from",
            "sender@elsewhere.test",
            "--to",
            "alice@example.com",
            "--header",
            &format!("Subject: {subject}"),
        ]);
        assert_eq!(code, 0, "{out}");
    }
    let mut msgs = Value::Null;
    assert!(eventually(10, || {
        msgs = api.get("/api/v1/queues/mailbox/messages").json();
        msgs.as_array().unwrap().len() == 2
    }));
    let queues = api.get("/api/v1/queues").json();
    let mailbox = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "mailbox")
        .unwrap();
    assert_eq!(mailbox["status"], "Suspended");
    let id_of = |subject: &str| {
        msgs.as_array()
            .unwrap()
            .iter()
            .find(|m| m["subject"] == subject)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (keep, drop) = (id_of("keep me"), id_of("drop me"));

    // Show and export.
    let m = api.get(&format!("/api/v1/messages/{keep}")).json();
    assert_eq!(m["recipients"][0]["address"], "alice@example.com");
    let r = api.get(&format!("/api/v1/messages/{keep}/export"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("message/rfc822"));
    assert!(r.text().starts_with("Received: ") && r.text().contains("Subject: keep me"));
    assert_eq!(api.get("/api/v1/messages/ffffffffffffffff").status, 404);

    // Suspend one message, resume it; remove the other without NDR.
    let r = api.action(&format!("/api/v1/messages/{keep}/suspend"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["suspended"], true);
    let filtered = api
        .get("/api/v1/messages?queue=mailbox&status=suspended")
        .json();
    assert_eq!(filtered.as_array().unwrap().len(), 2);
    assert_eq!(
        api.action(&format!("/api/v1/messages/{keep}/resume"))
            .json()["suspended"],
        false
    );
    let r = api.delete(&format!("/api/v1/messages/{drop}?ndr=false"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["recipients"], 1);

    // Resume the queue: the kept message is delivered.
    assert_eq!(api.action("/api/v1/queues/mailbox/resume").status, 200);
    let r = api.action("/api/v1/queues/mailbox/retry");
    assert_eq!(r.status, 200);
    assert!(r.json()["retried"].is_u64());
    assert!(eventually(15, || {
        let t = api.get(&format!("/api/v1/tracking?queue_id={keep}")).json();
        t.as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "DELIVER")
    }));

    // Tracking search by recipient, sender, Message-ID and time.
    let t = api
        .get("/api/v1/tracking?recipient=alice@example.com&since=1h")
        .json();
    let events: Vec<&str> = t
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(
        events.contains(&"RECEIVE") && events.contains(&"DELIVER"),
        "{events:?}"
    );
    let t = api.get(&format!("/api/v1/tracking?queue_id={drop}")).json();
    assert!(t.as_array().unwrap().iter().any(|e| e["event"] == "DROP"));
    let t = api
        .get("/api/v1/tracking?sender=sender@elsewhere.test")
        .json();
    let mid = t[0]["message_id"].as_str().unwrap().to_string();
    let enc = mid
        .replace('<', "%3C")
        .replace('>', "%3E")
        .replace('@', "%40");
    let t = api
        .get(&format!("/api/v1/tracking?message_id={enc}"))
        .json();
    assert!(!t.as_array().unwrap().is_empty());
    assert!(
        api.get("/api/v1/tracking?sender=nobody@nowhere.test")
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );

    let actions: Vec<String> = audit_actions(&api).into_iter().map(|e| e.1).collect();
    for a in [
        "queue.suspend",
        "queue.resume",
        "queue.retry",
        "message.suspend",
        "message.resume",
        "message.remove",
        "message.export",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} not audited");
    }
}
