//! Connector Properties dialogs with the seeds' tabs: a send connector's
//! General, Address Space, Network and Source Server; a receive connector's
//! General, Network, Authentication, Permission Groups and Limits. Each tab is a
//! form over some fields; saving a tab updates only those fields, through the
//! same `update` functions as the CLI.

use axum::Router;
use axum::extract::{Extension, Form, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use super::{
    Block, Field, Form as PageForm, Page, Params, audit, checked, done, invalid, joined, num, opt,
    urlencode,
};
use crate::admin::AdminState;
use crate::admin::session::Session;
use crate::directory::Error;
use crate::receive::connector::{self as receive, ConnectorInput, MB, ReceiveConnector};
use crate::routing::connector::{self as send, SendConnector, SendConnectorInput};

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route(
            "/org/send-connectors/properties",
            get(send_props).post(send_save),
        )
        .route(
            "/server/receive-connectors/properties",
            get(receive_props).post(receive_save),
        )
}

fn flag(b: bool) -> &'static str {
    if b { "true" } else { "" }
}

const SEND_TABS: &[(&str, &str)] = &[
    ("general", "General"),
    ("address-space", "Address Space"),
    ("network", "Network"),
    ("source-server", "Source Server"),
];

fn send_fields(c: &SendConnector, tab: &str) -> Vec<Field> {
    match tab {
        "address-space" => vec![
            Field::new(
                "address_spaces",
                "Address spaces",
                "textarea",
                joined(&c.address_spaces),
            )
            .help("Comma-separated: *, contoso.com;5, *.contoso.com;10 (cost 1-100)"),
        ],
        "network" => vec![
            Field::new(
                "dns_routing",
                "Use DNS MX records to route mail",
                "checkbox",
                flag(c.dns_routing),
            ),
            Field::new("smart_hosts", "Smart hosts", "text", joined(&c.smart_hosts))
                .help("Comma-separated HOST[:PORT], tried in order"),
            Field::new("port", "Port", "number", c.port.to_string()),
            Field::select(
                "auth",
                "Smart host authentication",
                c.auth.as_str(),
                &[
                    ("none", "None"),
                    ("basic", "Basic authentication"),
                    ("basic-require-tls", "Basic authentication over TLS"),
                    ("externally-secured", "Externally secured"),
                ],
            ),
            Field::new(
                "username",
                "User name",
                "text",
                c.username.clone().unwrap_or_default(),
            ),
            Field::new("password", "Password", "password", "").help(if c.password.is_some() {
                "Set; empty keeps it"
            } else {
                "Not set"
            }),
            Field::new(
                "require_tls",
                "Require TLS",
                "checkbox",
                flag(c.require_tls),
            ),
            Field::new(
                "verify_certificate",
                "Verify the remote certificate",
                "checkbox",
                flag(c.verify_certificate),
            ),
            Field::new(
                "force_helo",
                "Send HELO instead of EHLO",
                "checkbox",
                flag(c.force_helo),
            ),
        ],
        "source-server" => vec![
            Field::new(
                "max_connections",
                "Maximum connections",
                "number",
                c.max_connections.to_string(),
            ),
            Field::new(
                "max_per_destination",
                "Maximum connections per destination",
                "number",
                c.max_per_destination.to_string(),
            ),
            Field::new(
                "connect_timeout_secs",
                "Connection timeout (s)",
                "number",
                c.connect_timeout_secs.to_string(),
            ),
            Field::new(
                "command_timeout_secs",
                "Command timeout (s)",
                "number",
                c.command_timeout_secs.to_string(),
            ),
        ],
        _ => vec![
            Field::new("name", "Name", "text", &c.name),
            Field::new("enabled", "Enabled", "checkbox", flag(c.enabled)),
            Field::new(
                "fqdn",
                "FQDN for HELO/EHLO",
                "text",
                c.fqdn.clone().unwrap_or_default(),
            )
            .help("Empty: the server hostname"),
            Field::new(
                "max_message_size_mb",
                "Maximum message size (MB)",
                "number",
                (c.max_message_size / MB).to_string(),
            ),
            Field::select(
                "protocol_logging",
                "Protocol logging",
                c.protocol_logging.as_str(),
                &[("none", "None"), ("verbose", "Verbose")],
            ),
        ],
    }
}

fn send_input(p: &Params, tab: &str) -> Result<SendConnectorInput, Error> {
    let mut i = SendConnectorInput::default();
    match tab {
        "address-space" => {
            i.address_spaces = Some(vec![p.get("address_spaces").cloned().unwrap_or_default()])
        }
        "network" => {
            let dns = checked(p, "dns_routing");
            i.dns_routing = Some(dns);
            if !dns {
                i.smart_hosts = Some(vec![p.get("smart_hosts").cloned().unwrap_or_default()]);
                i.dns_routing = Some(false);
            }
            i.port = num(p, "port")?;
            i.auth = opt(p, "auth");
            i.username = Some(opt(p, "username"));
            i.password = opt(p, "password").map(Some);
            i.require_tls = Some(checked(p, "require_tls"));
            i.verify_certificate = Some(checked(p, "verify_certificate"));
            i.force_helo = Some(checked(p, "force_helo"));
        }
        "source-server" => {
            i.max_connections = num(p, "max_connections")?;
            i.max_per_destination = num(p, "max_per_destination")?;
            i.connect_timeout_secs = num(p, "connect_timeout_secs")?;
            i.command_timeout_secs = num(p, "command_timeout_secs")?;
        }
        _ => {
            i.name = opt(p, "name");
            i.enabled = Some(checked(p, "enabled"));
            i.fqdn = Some(opt(p, "fqdn"));
            i.max_message_size_mb = num(p, "max_message_size_mb")?;
            i.protocol_logging = opt(p, "protocol_logging");
        }
    }
    Ok(i)
}

fn tab_of(p: &Params, tabs: &[(&'static str, &'static str)]) -> &'static str {
    let want = p.get("tab").map(String::as_str).unwrap_or("general");
    tabs.iter()
        .find(|(k, _)| *k == want)
        .or(tabs.first())
        .map_or("general", |(k, _)| k)
}

fn props_page(
    state: &AdminState,
    s: &Session,
    section: &'static str,
    title: &str,
    base: &str,
    tabs: &[(&str, &str)],
    tab: &str,
) -> Page {
    let mut page = Page::new(state, Some(s), section, title);
    page.p.tabs = tabs
        .iter()
        .map(|(k, l)| super::Tab {
            label: l.to_string(),
            href: format!("{base}&tab={k}"),
            active: *k == tab,
        })
        .collect();
    page
}

async fn send_props(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Query(q): Query<Params>,
) -> Response {
    let name = q.get("name").cloned().unwrap_or_default();
    let tab = tab_of(&q, SEND_TABS);
    let all = send::list(&state.store).await.unwrap_or_default();
    let base = format!("/org/send-connectors/properties?name={}", urlencode(&name));
    let mut page = props_page(
        &state,
        &s,
        "org",
        &format!("{name} Properties"),
        &base,
        SEND_TABS,
        tab,
    );
    page.p.notice = q.get("notice").cloned();
    let Ok(c) = send::find(&all, &name) else {
        page.p.error = Some(format!("no send connector named {name}"));
        let mut res = page.render();
        *res.status_mut() = StatusCode::NOT_FOUND;
        return res;
    };
    if tab == "source-server" {
        page.push(Block::Text(format!(
            "Source server: this server ({}). Limits for its connections:",
            state.hostname
        )));
    }
    let mut form = PageForm::post("send-properties", &base, "Save", send_fields(c, tab));
    form.hidden.push(("tab".into(), tab.into()));
    page.push(Block::Form(form));
    page.render()
}

async fn send_save(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Query(q): Query<Params>,
    Form(p): Form<Params>,
) -> Response {
    let name = q.get("name").cloned().unwrap_or_default();
    let tab = tab_of(&p, SEND_TABS);
    let result = match send_input(&p, tab) {
        Ok(input) => send::update(&state.store, &name, input).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(c) => {
            audit(&state, &s, "send-connector.set", &c.name, Some(tab)).await;
            done(
                &format!(
                    "/org/send-connectors/properties?name={}&tab={tab}",
                    urlencode(&c.name)
                ),
                "Saved. It applies to the next connection.",
            )
        }
        Err(e) => {
            let all = send::list(&state.store).await.unwrap_or_default();
            let base = format!("/org/send-connectors/properties?name={}", urlencode(&name));
            let page = props_page(
                &state,
                &s,
                "org",
                &format!("{name} Properties"),
                &base,
                SEND_TABS,
                tab,
            );
            let mut fields = match send::find(&all, &name) {
                Ok(c) => send_fields(c, tab),
                Err(_) => Vec::new(),
            };
            for f in &mut fields {
                if f.kind != "password"
                    && let Some(v) = p.get(&f.name)
                {
                    f.value = v.clone();
                }
            }
            let mut form = PageForm::post("send-properties", &base, "Save", fields);
            form.hidden.push(("tab".into(), tab.into()));
            invalid(page, form, &e)
        }
    }
}

const RECEIVE_TABS: &[(&str, &str)] = &[
    ("general", "General"),
    ("network", "Network"),
    ("authentication", "Authentication"),
    ("permission-groups", "Permission Groups"),
    ("limits", "Limits"),
];

fn receive_fields(c: &ReceiveConnector, tab: &str) -> Vec<Field> {
    let has_auth = |m: receive::AuthMechanism| flag(c.auth_mechanisms.contains(&m));
    let has_group = |g: receive::PermissionGroup| flag(c.permission_groups.contains(&g));
    match tab {
        "network" => vec![
            Field::new(
                "bindings",
                "Local IP addresses and ports",
                "text",
                joined(&c.bindings),
            )
            .help("Comma-separated IP:PORT"),
            Field::new(
                "remote_ranges",
                "Receive mail from remote IP addresses",
                "textarea",
                joined(&c.remote_ranges),
            )
            .help("CIDR, a-b ranges or single IPs"),
        ],
        "authentication" => vec![
            Field::new(
                "auth_tls",
                "Transport Layer Security (STARTTLS)",
                "checkbox",
                has_auth(receive::AuthMechanism::Tls),
            ),
            Field::new(
                "auth_basic",
                "Basic authentication",
                "checkbox",
                has_auth(receive::AuthMechanism::Basic),
            ),
            Field::new(
                "auth_basic_require_tls",
                "Basic authentication only after TLS",
                "checkbox",
                has_auth(receive::AuthMechanism::BasicRequireTls),
            ),
            Field::new(
                "auth_externally_secured",
                "Externally secured (e.g. IPsec)",
                "checkbox",
                has_auth(receive::AuthMechanism::ExternallySecured),
            ),
            Field::new(
                "require_tls",
                "Require TLS",
                "checkbox",
                flag(c.require_tls),
            ),
        ],
        "permission-groups" => vec![
            Field::new(
                "group_anonymous",
                "Anonymous users",
                "checkbox",
                has_group(receive::PermissionGroup::Anonymous),
            ),
            Field::new(
                "group_users",
                "Exchange users (mailboxes)",
                "checkbox",
                has_group(receive::PermissionGroup::Users),
            ),
            Field::new(
                "group_partners",
                "Partners",
                "checkbox",
                has_group(receive::PermissionGroup::Partners),
            ),
            Field::new(
                "group_servers",
                "Exchange servers",
                "checkbox",
                has_group(receive::PermissionGroup::Servers),
            ),
            Field::new(
                "anonymous_relay",
                "Anonymous users may relay",
                "checkbox",
                flag(c.anonymous_relay),
            )
            .help("Only with narrow remote IP ranges!"),
        ],
        "limits" => vec![
            Field::new(
                "max_message_size_mb",
                "Maximum message size (MB)",
                "number",
                (c.max_message_size / MB).to_string(),
            ),
            Field::new(
                "max_recipients",
                "Maximum recipients per message",
                "number",
                c.max_recipients.to_string(),
            ),
            Field::new(
                "max_connections",
                "Maximum connections",
                "number",
                c.max_connections.to_string(),
            ),
            Field::new(
                "max_connections_per_ip",
                "Maximum connections per IP",
                "number",
                c.max_connections_per_ip.to_string(),
            ),
            Field::new(
                "connection_timeout_secs",
                "Connection timeout (s)",
                "number",
                c.connection_timeout_secs.to_string(),
            ),
            Field::new(
                "command_timeout_secs",
                "Command timeout (s)",
                "number",
                c.command_timeout_secs.to_string(),
            ),
            Field::new(
                "max_bad_commands",
                "Maximum bad commands",
                "number",
                c.max_bad_commands.to_string(),
            ),
            Field::new(
                "max_auth_failures",
                "Maximum AUTH failures",
                "number",
                c.max_auth_failures.to_string(),
            ),
        ],
        _ => vec![
            Field::new("name", "Name", "text", &c.name),
            Field::new("enabled", "Enabled", "checkbox", flag(c.enabled)),
            Field::new(
                "fqdn",
                "FQDN in HELO/EHLO and banner",
                "text",
                c.fqdn.clone().unwrap_or_default(),
            )
            .help("Empty: the server hostname"),
            Field::new(
                "banner",
                "Banner",
                "text",
                c.banner.clone().unwrap_or_default(),
            ),
            Field::select(
                "protocol_logging",
                "Protocol logging",
                c.protocol_logging.as_str(),
                &[("none", "None"), ("verbose", "Verbose")],
            ),
        ],
    }
}

fn receive_input(p: &Params, tab: &str) -> Result<ConnectorInput, Error> {
    let mut i = ConnectorInput::default();
    let picked = |pairs: &[(&str, &str)]| -> Vec<String> {
        pairs
            .iter()
            .filter(|(k, _)| checked(p, k))
            .map(|(_, v)| v.to_string())
            .collect()
    };
    match tab {
        "network" => {
            i.bindings = Some(vec![p.get("bindings").cloned().unwrap_or_default()]);
            i.remote_ranges = Some(vec![p.get("remote_ranges").cloned().unwrap_or_default()]);
        }
        "authentication" => {
            i.auth_mechanisms = Some(picked(&[
                ("auth_tls", "tls"),
                ("auth_basic", "basic"),
                ("auth_basic_require_tls", "basic-require-tls"),
                ("auth_externally_secured", "externally-secured"),
            ]));
            i.require_tls = Some(checked(p, "require_tls"));
        }
        "permission-groups" => {
            i.permission_groups = Some(picked(&[
                ("group_anonymous", "anonymous"),
                ("group_users", "users"),
                ("group_partners", "partners"),
                ("group_servers", "servers"),
            ]));
            i.anonymous_relay = Some(checked(p, "anonymous_relay"));
        }
        "limits" => {
            i.max_message_size_mb = num(p, "max_message_size_mb")?;
            i.max_recipients = num(p, "max_recipients")?;
            i.max_connections = num(p, "max_connections")?;
            i.max_connections_per_ip = num(p, "max_connections_per_ip")?;
            i.connection_timeout_secs = num(p, "connection_timeout_secs")?;
            i.command_timeout_secs = num(p, "command_timeout_secs")?;
            i.max_bad_commands = num(p, "max_bad_commands")?;
            i.max_auth_failures = num(p, "max_auth_failures")?;
        }
        _ => {
            i.name = opt(p, "name");
            i.enabled = Some(checked(p, "enabled"));
            i.fqdn = Some(opt(p, "fqdn"));
            i.banner = Some(opt(p, "banner"));
            i.protocol_logging = opt(p, "protocol_logging");
        }
    }
    Ok(i)
}

async fn receive_props(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Query(q): Query<Params>,
) -> Response {
    let name = q.get("name").cloned().unwrap_or_default();
    let tab = tab_of(&q, RECEIVE_TABS);
    let all = receive::list(&state.store).await.unwrap_or_default();
    let base = format!(
        "/server/receive-connectors/properties?name={}",
        urlencode(&name)
    );
    let mut page = props_page(
        &state,
        &s,
        "server",
        &format!("{name} Properties"),
        &base,
        RECEIVE_TABS,
        tab,
    );
    page.p.notice = q.get("notice").cloned();
    let Ok(c) = receive::find(&all, &name) else {
        page.p.error = Some(format!("no receive connector named {name}"));
        let mut res = page.render();
        *res.status_mut() = StatusCode::NOT_FOUND;
        return res;
    };
    let mut form = PageForm::post("receive-properties", &base, "Save", receive_fields(c, tab));
    form.hidden.push(("tab".into(), tab.into()));
    page.push(Block::Form(form));
    page.render()
}

async fn receive_save(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Query(q): Query<Params>,
    Form(p): Form<Params>,
) -> Response {
    let name = q.get("name").cloned().unwrap_or_default();
    let tab = tab_of(&p, RECEIVE_TABS);
    let result = match receive_input(&p, tab) {
        Ok(input) => receive::update(&state.store, &name, input).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(c) => {
            audit(&state, &s, "receive-connector.set", &c.name, Some(tab)).await;
            done(
                &format!(
                    "/server/receive-connectors/properties?name={}&tab={tab}",
                    urlencode(&c.name)
                ),
                "Saved. Listeners follow within 2 seconds.",
            )
        }
        Err(e) => {
            let all = receive::list(&state.store).await.unwrap_or_default();
            let base = format!(
                "/server/receive-connectors/properties?name={}",
                urlencode(&name)
            );
            let page = props_page(
                &state,
                &s,
                "server",
                &format!("{name} Properties"),
                &base,
                RECEIVE_TABS,
                tab,
            );
            let mut fields = match receive::find(&all, &name) {
                Ok(c) => receive_fields(c, tab),
                Err(_) => Vec::new(),
            };
            for f in &mut fields {
                if f.kind != "checkbox"
                    && let Some(v) = p.get(&f.name)
                {
                    f.value = v.clone();
                }
            }
            let mut form = PageForm::post("receive-properties", &base, "Save", fields);
            form.hidden.push(("tab".into(), tab.into()));
            invalid(page, form, &e)
        }
    }
}
