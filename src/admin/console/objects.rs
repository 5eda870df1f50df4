//! Organization, Server and Recipient Configuration pages: lists with their
//! action panes, New… and Properties forms, enable/disable/remove. Lists read a
//! fresh `Directory` so a change shows at once after its redirect.

use axum::Router;
use axum::extract::{Extension, Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::{
    Action, Block, Field, Form as PageForm, Notice, Page, Params, Table, audit, cell, changed,
    checked, done, invalid, joined, link, list_param, num, opt, urlencode, wizard_summary, yes_no,
};
use crate::admin::AdminState;
use crate::admin::session::Session;
use crate::directory::{self, Directory, Error, domains, policies, recipients};
use crate::receive::connector as receive;
use crate::routing::connector::{self as send, SendConnectorInput};

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/org/hub-transport", get(org_page))
        .route("/org/accepted-domains/new", post(accepted_domain_new))
        .route("/org/accepted-domains/remove", post(accepted_domain_remove))
        .route("/org/address-policies/apply", post(policy_apply))
        .route("/org/address-policies/new", post(policy_new))
        .route("/org/address-policies/remove", post(policy_remove))
        .route("/org/remote-domains/new", post(remote_domain_new))
        .route("/org/remote-domains/remove", post(remote_domain_remove))
        .route(
            "/org/send-connectors/new",
            get(send_wizard).post(send_wizard_post),
        )
        .route("/org/send-connectors/toggle", post(send_toggle))
        .route("/org/send-connectors/remove", post(send_remove))
        .route(
            "/server/hub-transport",
            get(server_page).post(server_properties),
        )
        .route("/server/receive-connectors/toggle", post(receive_toggle))
        .route(
            "/server/receive-connectors/new",
            get(receive_wizard).post(receive_wizard_post),
        )
        .route("/recipients/mailboxes", get(mailboxes))
        .route(
            "/recipients/mailboxes/new",
            get(mailbox_new_page).post(mailbox_new),
        )
        .route(
            "/recipients/mailboxes/properties",
            get(mailbox_props).post(mailbox_props_post),
        )
        .route("/recipients/mailboxes/remove", post(mailbox_remove))
        .route("/recipients/groups", get(groups).post(group_new))
        .route("/recipients/groups/remove", post(group_remove))
        .route(
            "/recipients/groups/properties",
            get(group_props).post(group_props_post),
        )
        .route("/recipients/contacts", get(contacts).post(contact_new))
        .route("/recipients/contacts/remove", post(contact_remove))
}

async fn fresh(state: &AdminState) -> Result<Directory, Response> {
    Directory::load(&state.store).await.map_err(|e| {
        tracing::error!(error = %e, "cannot load the organization");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot load the organization",
        )
            .into_response()
    })
}

// ---- Organization Configuration › Hub Transport ----

const ORG_TABS: &[(&str, &str)] = &[
    ("remote-domains", "Remote Domains"),
    ("accepted-domains", "Accepted Domains"),
    ("address-policies", "E-mail Address Policies"),
    ("transport-rules", "Transport Rules"),
    ("journaling", "Journaling"),
    ("send-connectors", "Send Connectors"),
];

fn accepted_domain_form() -> PageForm {
    PageForm::post(
        "new-accepted-domain",
        "/org/accepted-domains/new",
        "New accepted domain",
        vec![
            Field::new("name", "Domain", "text", "")
                .help("example.com, or *.example.com for the domain and its subdomains"),
            Field::select(
                "type",
                "Type",
                "authoritative",
                &[
                    ("authoritative", "Authoritative"),
                    ("internal-relay", "Internal relay"),
                    ("external-relay", "External relay"),
                ],
            ),
            Field::new("default", "Default domain", "checkbox", ""),
        ],
    )
}

async fn org_page(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Query(q): Query<Params>,
) -> Response {
    let tab = q
        .get("tab")
        .map(String::as_str)
        .unwrap_or("accepted-domains");
    let tab = ORG_TABS
        .iter()
        .find(|(k, _)| *k == tab)
        .map_or("accepted-domains", |(k, _)| *k);
    let dir = match fresh(&state).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let mut page = Page::new(
        &state,
        Some(&s),
        "org",
        "Organization Configuration › Hub Transport",
    )
    .tabs("/org/hub-transport", ORG_TABS, tab);
    page.p.notice = q.get("notice").cloned();
    match tab {
        "remote-domains" => {
            let mut t = Table::new("remote-domains", &["Name", "Domain", "Out of office", "Auto replies", "Auto forwards", "Delivery reports", "NDRs"], "No remote domains.");
            for r in dir.remote_domains() {
                t.row(
                    vec![cell(&r.name), cell(&r.domain), cell(yes_no(r.allow_out_of_office)), cell(yes_no(r.allow_auto_reply)), cell(yes_no(r.allow_auto_forward)), cell(yes_no(r.allow_delivery_reports)), cell(yes_no(r.allow_ndr))],
                    if r.domain == "*" { vec![] } else { vec![Action::post(&format!("remove-remote-{}", r.id), "Remove", "/org/remote-domains/remove", &[("domain", &r.domain)]).confirmed()] },
                );
            }
            page.push(Block::Table(t));
            page.push(Block::Form(remote_domain_form(&Params::new())));
        }
        "accepted-domains" => {
            let mut t = Table::new("accepted-domains", &["Name", "Type", "Default"], "No accepted domain yet: the server accepts no mail.");
            for d in dir.accepted_domains() {
                t.row(
                    vec![cell(&d.name), cell(d.domain_type.as_str()), cell(yes_no(d.is_default))],
                    vec![Action::post(&format!("remove-domain-{}", d.id), "Remove", "/org/accepted-domains/remove", &[("name", &d.name)]).confirmed()],
                );
            }
            page.push(Block::Table(t));
            page.push(Block::Form(accepted_domain_form()));
        }
        "address-policies" => {
            let mut t = Table::new("address-policies", &["Priority", "Name", "Applies to", "Templates"], "No e-mail address policies.");
            for p in dir.policies() {
                t.row(
                    vec![cell(p.priority.to_string()), cell(&p.name), cell(p.filter_domain.clone().unwrap_or_else(|| "All recipients".into())), cell(p.templates.join(", "))],
                    vec![
                        Action::post(&format!("apply-policy-{}", p.id), "Apply", "/org/address-policies/apply", &[("name", &p.name)]),
                        Action::post(&format!("remove-policy-{}", p.id), "Remove", "/org/address-policies/remove", &[("name", &p.name)]).confirmed(),
                    ],
                );
            }
            page.push(Block::Table(t));
            page.push(Block::Form(policy_form(&Params::new())));
        }
        "transport-rules" => page.push(Block::Text(
            "Transport rules come in a later release of Bridgehead. Nothing is configured here yet.".into(),
        )),
        "journaling" => page.push(Block::Text(
            "Journaling comes in a later release of Bridgehead. Nothing is configured here yet.".into(),
        )),
        _ => {
            let all = match send::list(&state.store).await {
                Ok(a) => a,
                Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
            };
            page.p.actions.push(Action::link("new-send-connector", "New Send Connector…", "/org/send-connectors/new"));
            let mut t = Table::new("send-connectors", &["Name", "Enabled", "Usage", "Address spaces", "Route", "Auth", "TLS"], "No send connector: mail for other domains waits in the Unreachable queue.");
            for c in &all {
                let route = c.route_text();
                let toggle = if c.enabled { "Disable" } else { "Enable" };
                t.row(
                    vec![
                        link(&c.name, format!("/org/send-connectors/properties?name={}", urlencode(&c.name))),
                        cell(yes_no(c.enabled)),
                        cell(c.usage.as_str()),
                        cell(joined(&c.address_spaces)),
                        cell(route),
                        cell(c.auth.as_str()),
                        cell(if c.require_tls { "required" } else { "opportunistic" }),
                    ],
                    vec![
                        Action::post(&format!("toggle-send-{}", c.id), toggle, "/org/send-connectors/toggle", &[("name", &c.name), ("enable", if c.enabled { "false" } else { "true" })]),
                        Action::post(&format!("remove-send-{}", c.id), "Remove", "/org/send-connectors/remove", &[("name", &c.name)]).confirmed(),
                    ],
                );
            }
            page.push(Block::Table(t));
        }
    }
    page.render()
}

async fn accepted_domain_new(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let name = opt(&p, "name").unwrap_or_default();
    let result =
        match domains::parse_type(p.get("type").map(String::as_str).unwrap_or("authoritative")) {
            Ok(t) => domains::create(&state.store, &name, t, checked(&p, "default")).await,
            Err(e) => Err(e),
        };
    match result {
        Ok(d) => {
            audit(
                &state,
                &s,
                "accepted-domain.new",
                &d.name,
                Some(d.domain_type.as_str()),
            )
            .await;
            done(
                "/org/hub-transport?tab=accepted-domains",
                &format!("Accepted domain {} created.", d.name),
            )
        }
        Err(e) => {
            let mut form = accepted_domain_form();
            form.fields[0].value = name;
            let page = Page::new(
                &state,
                Some(&s),
                "org",
                "Organization Configuration › Hub Transport",
            )
            .tabs("/org/hub-transport", ORG_TABS, "accepted-domains");
            invalid(page, form, &e)
        }
    }
}

async fn accepted_domain_remove(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let result = domains::remove(&state.store, &opt(&p, "name").unwrap_or_default()).await;
    changed(
        &state,
        &s,
        "/org/hub-transport?tab=accepted-domains",
        "accepted-domain.remove",
        result,
        |d| {
            (
                d.name.clone(),
                format!("Accepted domain {} removed.", d.name),
            )
        },
    )
    .await
}

async fn policy_apply(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let name = opt(&p, "name").unwrap_or_default();
    let result = policies::apply(&state.store, &name).await;
    changed(
        &state,
        &s,
        "/org/hub-transport?tab=address-policies",
        "address-policy.apply",
        result,
        |stamped| {
            (
                name.clone(),
                format!("Policy {name} applied to {} mailbox(es).", stamped.len()),
            )
        },
    )
    .await
}

// ---- New Send Connector wizard ----

fn wizard_fields(p: &Params) -> Vec<Field> {
    let v = |k: &str| p.get(k).cloned().unwrap_or_default();
    vec![
        Field::new("name", "Name", "text", v("name")),
        Field::select(
            "usage",
            "Intended use",
            &p.get("usage").cloned().unwrap_or_else(|| "custom".into()),
            &[
                ("custom", "Custom"),
                ("internal", "Internal"),
                ("internet", "Internet"),
                ("partner", "Partner"),
            ],
        ),
        Field::new(
            "address_spaces",
            "Address spaces",
            "text",
            p.get("address_spaces")
                .cloned()
                .unwrap_or_else(|| "*".into()),
        )
        .help("Comma-separated: *, contoso.com;5, *.contoso.com"),
        Field::new("smart_hosts", "Smart hosts", "text", v("smart_hosts"))
            .help("Comma-separated HOST[:PORT]; empty = DNS MX routing"),
        Field::new(
            "port",
            "Port",
            "number",
            p.get("port").cloned().unwrap_or_else(|| "25".into()),
        ),
        Field::select(
            "auth",
            "Smart host authentication",
            &p.get("auth").cloned().unwrap_or_else(|| "none".into()),
            &[
                ("none", "None"),
                ("basic", "Basic (AUTH)"),
                ("basic-require-tls", "Basic, only over TLS"),
                ("externally-secured", "Externally secured"),
            ],
        ),
        Field::new("username", "User name", "text", v("username")),
        Field::new("password", "Password", "password", ""),
        Field::new("fqdn", "FQDN for HELO/EHLO", "text", v("fqdn")),
        Field::new("require_tls", "Require TLS", "checkbox", v("require_tls")),
    ]
}

fn wizard_input(p: &Params) -> Result<SendConnectorInput, Error> {
    let list = |k: &str| opt(p, k).map(|v| vec![v]);
    let hosts = list("smart_hosts");
    Ok(SendConnectorInput {
        name: opt(p, "name"),
        usage: opt(p, "usage"),
        address_spaces: list("address_spaces"),
        dns_routing: Some(hosts.is_none()),
        smart_hosts: hosts,
        port: num(p, "port")?,
        auth: opt(p, "auth"),
        username: Some(opt(p, "username")),
        password: opt(p, "password").map(Some),
        require_tls: checked(p, "require_tls").then_some(true),
        fqdn: opt(p, "fqdn").map(Some),
        enabled: Some(true),
        ..Default::default()
    })
}

/// The `bridgehead send-connector new …` command equivalent to the wizard's
/// answers (the password is read from stdin, never put on a command line).
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:@/[]".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn equivalent_command(p: &Params) -> String {
    let mut cmd = vec![
        "bridgehead".to_string(),
        "send-connector".into(),
        "new".into(),
    ];
    let mut arg = |flag: &str, v: &str| {
        cmd.push(flag.into());
        cmd.push(shell_word(v));
    };
    if let Some(n) = opt(p, "name") {
        arg("--name", &n);
    }
    arg(
        "--usage",
        &opt(p, "usage").unwrap_or_else(|| "custom".into()),
    );
    for a in opt(p, "address_spaces")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        arg("--address-space", a);
    }
    let hosts = opt(p, "smart_hosts").unwrap_or_default();
    for h in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        arg("--smart-host", h);
    }
    if let Some(port) = opt(p, "port").filter(|p| p != "25") {
        arg("--port", &port);
    }
    if let Some(a) = opt(p, "auth").filter(|a| a != "none") {
        arg("--auth", &a);
    }
    if let Some(u) = opt(p, "username") {
        arg("--username", &u);
    }
    if let Some(f) = opt(p, "fqdn") {
        arg("--fqdn", &f);
    }
    let mut line = cmd.join(" ");
    if hosts.trim().is_empty() {
        line.push_str(" --dns-routing");
    }
    if checked(p, "require_tls") {
        line.push_str(" --require-tls");
    }
    if opt(p, "password").is_some() {
        line = format!("echo \"$PASSWORD\" | {line} --password-stdin");
    }
    line
}

async fn send_wizard(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Query(q): Query<Params>,
) -> Response {
    let mut page = Page::new(&state, Some(&s), "org", "New Send Connector");
    page.push(Block::Text(
        "Choose the intended use (it pre-fills defaults: Partner requires TLS with a verified certificate; Internal trusts the path), the address spaces, and smart hosts or DNS routing. Check the settings on the next page before the connector is created.".into(),
    ));
    page.push(Block::Form(PageForm::post(
        "send-wizard",
        "/org/send-connectors/new",
        "Next",
        wizard_fields(&q),
    )));
    page.render()
}

async fn send_wizard_post(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let confirmed = p.get("step").is_some_and(|v| v == "create");
    let page = Page::new(&state, Some(&s), "org", "New Send Connector");
    let form = PageForm::post(
        "send-wizard",
        "/org/send-connectors/new",
        "Next",
        wizard_fields(&p),
    );
    let input = match wizard_input(&p) {
        Ok(i) => i,
        Err(e) => return invalid(page, form, &e),
    };
    if !confirmed {
        // Page 2: the connector create() would make, without saving it.
        let existing = send::list(&state.store).await.unwrap_or_default();
        let probe = match send::validate_new(&existing, input) {
            Ok(c) => c,
            Err(e) => return invalid(page, form, &e),
        };
        let summary = vec![
            ("Name".into(), probe.name.clone()),
            ("Intended use".into(), probe.usage.as_str().into()),
            ("Address spaces".into(), joined(&probe.address_spaces)),
            ("Route".into(), probe.route_text()),
            ("Authentication".into(), probe.auth.as_str().into()),
            ("Require TLS".into(), yes_no(probe.require_tls)),
        ];
        return wizard_summary(page, form, &p, summary, equivalent_command(&p));
    }
    match send::create(&state.store, input).await {
        Ok(c) => {
            audit(
                &state,
                &s,
                "send-connector.new",
                &c.name,
                Some(&equivalent_command(&p)),
            )
            .await;
            done(
                "/org/hub-transport?tab=send-connectors",
                &format!("Send connector {} created.", c.name),
            )
        }
        Err(e) => {
            let page = Page::new(&state, Some(&s), "org", "New Send Connector");
            invalid(
                page,
                PageForm::post(
                    "send-wizard",
                    "/org/send-connectors/new",
                    "Next",
                    wizard_fields(&p),
                ),
                &e,
            )
        }
    }
}

async fn send_toggle(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let enable = checked(&p, "enable");
    let input = SendConnectorInput {
        enabled: Some(enable),
        ..Default::default()
    };
    let result = send::update(&state.store, &opt(&p, "name").unwrap_or_default(), input).await;
    let (action, word) = if enable {
        ("send-connector.enable", "enabled")
    } else {
        ("send-connector.disable", "disabled")
    };
    changed(
        &state,
        &s,
        "/org/hub-transport?tab=send-connectors",
        action,
        result,
        |c| (c.name.clone(), format!("Send connector {} {word}.", c.name)),
    )
    .await
}

async fn send_remove(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let result = send::remove(&state.store, &opt(&p, "name").unwrap_or_default()).await;
    changed(
        &state,
        &s,
        "/org/hub-transport?tab=send-connectors",
        "send-connector.remove",
        result,
        |c| {
            (
                c.name.clone(),
                format!("Send connector {} removed.", c.name),
            )
        },
    )
    .await
}

// ---- Server Configuration › Hub Transport ----

const SERVER_TABS: &[(&str, &str)] = &[
    ("receive-connectors", "Receive Connectors"),
    ("properties", "Server properties"),
];

fn properties_form(settings: &crate::settings::ServerSettings) -> PageForm {
    use crate::settings::format_duration as f;
    PageForm::post(
        "server-properties",
        "/server/hub-transport",
        "Save",
        vec![
            Field::new(
                "first_interval",
                "Retry interval",
                "text",
                f(settings.retry.first_interval),
            )
            .help("e.g. 1m"),
            Field::new(
                "first_phase",
                "First retry phase",
                "text",
                f(settings.retry.first_phase),
            ),
            Field::new(
                "later_interval",
                "Later retry interval",
                "text",
                f(settings.retry.later_interval),
            ),
            Field::new(
                "delay_notice_after",
                "Delay notice after",
                "text",
                f(settings.retry.delay_notice_after),
            ),
            Field::new(
                "expiration",
                "Message expiration",
                "text",
                f(settings.retry.expiration),
            ),
            Field::new(
                "ndr_copy_to",
                "Send copy of NDRs to",
                "text",
                settings
                    .ndr_copy_to
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ),
            Field::new(
                "tracking_retention_days",
                "Keep message tracking (days)",
                "number",
                settings.tracking_retention_days.to_string(),
            ),
        ],
    )
}

async fn server_page(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Query(q): Query<Params>,
) -> Response {
    let tab = if q.get("tab").is_some_and(|t| t == "properties") {
        "properties"
    } else {
        "receive-connectors"
    };
    let mut page = Page::new(
        &state,
        Some(&s),
        "server",
        "Server Configuration › Hub Transport",
    )
    .tabs("/server/hub-transport", SERVER_TABS, tab);
    page.p.notice = q.get("notice").cloned();
    if tab == "properties" {
        match crate::settings::load(&state.store).await {
            Ok(settings) => page.push(Block::Form(properties_form(&settings))),
            Err(e) => page.p.error = Some(e.to_string()),
        }
        return page.render();
    }
    let all = match receive::list(&state.store).await {
        Ok(a) => a,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let mut t = Table::new(
        "receive-connectors",
        &[
            "Name",
            "Enabled",
            "Usage",
            "Bindings",
            "Remote IP ranges",
            "Permission groups",
            "Authentication",
            "Max size",
        ],
        "No receive connectors.",
    );
    for c in &all {
        let toggle = if c.enabled { "Disable" } else { "Enable" };
        t.row(
            vec![
                link(
                    &c.name,
                    format!(
                        "/server/receive-connectors/properties?name={}",
                        urlencode(&c.name)
                    ),
                ),
                cell(yes_no(c.enabled)),
                cell(c.usage.as_str()),
                cell(joined(&c.bindings)),
                cell(joined(&c.remote_ranges)),
                cell(
                    c.permission_groups
                        .iter()
                        .map(|g| g.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                cell(
                    c.auth_mechanisms
                        .iter()
                        .map(|a| a.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                cell(format!("{} MB", c.max_message_size / receive::MB)),
            ],
            vec![Action::post(
                &format!("toggle-receive-{}", c.id),
                toggle,
                "/server/receive-connectors/toggle",
                &[
                    ("name", &c.name),
                    ("enable", if c.enabled { "false" } else { "true" }),
                ],
            )],
        );
    }
    page.push(Block::Table(t));
    page.push(Block::Text(
        "Create receive connectors with `bridgehead receive-connector new` or the API.".into(),
    ));
    page.render()
}

async fn server_properties(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let input = crate::settings::SettingsInput {
        first_interval: opt(&p, "first_interval"),
        first_phase: opt(&p, "first_phase"),
        later_interval: opt(&p, "later_interval"),
        delay_notice_after: opt(&p, "delay_notice_after"),
        expiration: opt(&p, "expiration"),
        ndr_copy_to: Some(p.get("ndr_copy_to").cloned().unwrap_or_default()),
        tracking_retention_days: p
            .get("tracking_retention_days")
            .and_then(|v| v.trim().parse().ok()),
    };
    match crate::settings::update(&state.store, input).await {
        Ok(_) => {
            audit(&state, &s, "server.set", "server properties", None).await;
            done(
                "/server/hub-transport?tab=properties",
                "Server properties saved.",
            )
        }
        Err(e) => {
            let settings = crate::settings::load(&state.store)
                .await
                .unwrap_or_default();
            let mut form = properties_form(&settings);
            for f in &mut form.fields {
                if let Some(v) = p.get(&f.name) {
                    f.value = v.clone();
                }
            }
            let page = Page::new(
                &state,
                Some(&s),
                "server",
                "Server Configuration › Hub Transport",
            )
            .tabs("/server/hub-transport", SERVER_TABS, "properties");
            invalid(page, form, &e)
        }
    }
}

async fn receive_toggle(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let enable = checked(&p, "enable");
    let input = receive::ConnectorInput {
        enabled: Some(enable),
        ..Default::default()
    };
    let result = receive::update(&state.store, &opt(&p, "name").unwrap_or_default(), input).await;
    let (action, word) = if enable {
        ("receive-connector.enable", "enabled")
    } else {
        ("receive-connector.disable", "disabled")
    };
    changed(&state, &s, "/server/hub-transport", action, result, |c| {
        (
            c.name.clone(),
            format!("Receive connector {} {word}.", c.name),
        )
    })
    .await
}

// ---- Recipient Configuration ----

const RECIPIENT_TABS: &[(&str, &str)] = &[
    ("mailboxes", "Mailboxes"),
    ("groups", "Distribution Groups"),
    ("contacts", "Mail Contacts"),
];

fn recipient_page(state: &AdminState, s: &Session, tab: &str, title: &str) -> Page {
    let mut page = Page::new(state, Some(s), "recipients", title);
    page.p.tabs = RECIPIENT_TABS
        .iter()
        .map(|(k, l)| super::Tab {
            label: l.to_string(),
            href: format!("/recipients/{k}"),
            active: *k == tab,
        })
        .collect();
    page
}

async fn mailboxes(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Query(n): Query<Notice>,
) -> Response {
    let dir = match fresh(&state).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let mut page = recipient_page(
        &state,
        &s,
        "mailboxes",
        "Recipient Configuration › Mailboxes",
    );
    page.p.notice = n.notice;
    page.p.actions.push(Action::link(
        "new-mailbox",
        "New Mailbox…",
        "/recipients/mailboxes/new",
    ));
    let mut t = Table::new(
        "mailboxes",
        &[
            "Display name",
            "Primary address",
            "Other addresses",
            "Quota",
            "Enabled",
        ],
        "No mailboxes yet.",
    );
    for m in dir.mailboxes() {
        let addr = m.primary_address.to_string();
        t.row(
            vec![
                link(
                    &m.display_name,
                    format!(
                        "/recipients/mailboxes/properties?address={}",
                        urlencode(&addr)
                    ),
                ),
                cell(&addr),
                cell(joined(&m.proxy_addresses)),
                cell(m.quota_mb.map_or("unlimited".into(), |q| format!("{q} MB"))),
                cell(yes_no(m.enabled)),
            ],
            vec![
                Action::post(
                    &format!("remove-mailbox-{}", m.id),
                    "Remove",
                    "/recipients/mailboxes/remove",
                    &[("address", &addr)],
                )
                .confirmed(),
            ],
        );
    }
    page.push(Block::Table(t));
    page.render()
}

fn mailbox_form(p: &Params) -> PageForm {
    let v = |k: &str| p.get(k).cloned().unwrap_or_default();
    PageForm::post(
        "new-mailbox",
        "/recipients/mailboxes/new",
        "Create",
        vec![
            Field::new("address", "E-mail address", "text", v("address")),
            Field::new("display_name", "Display name", "text", v("display_name")),
            Field::new("given_name", "Given name", "text", v("given_name")),
            Field::new("surname", "Surname", "text", v("surname")),
            Field::new("password", "Password", "password", "")
                .help("For SMTP AUTH; at least 12 characters. Empty: the mailbox cannot log in."),
            Field::new("quota_mb", "Quota (MB)", "number", v("quota_mb")).help("Empty: unlimited"),
        ],
    )
}

async fn mailbox_new_page(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
) -> Response {
    let mut page = recipient_page(&state, &s, "mailboxes", "New Mailbox");
    page.push(Block::Form(mailbox_form(&Params::new())));
    page.render()
}

fn parse_quota(p: &Params) -> Result<Option<i64>, Error> {
    match opt(p, "quota_mb") {
        None => Ok(None),
        Some(q) => q
            .parse::<i64>()
            .map(Some)
            .map_err(|_| directory::invalid("quota_mb", "the quota is a whole number of MB")),
    }
}

async fn mailbox_new(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let result = match parse_quota(&p) {
        Ok(quota_mb) => {
            let new = recipients::NewMailbox {
                address: opt(&p, "address").unwrap_or_default(),
                display_name: opt(&p, "display_name").unwrap_or_default(),
                given_name: opt(&p, "given_name"),
                surname: opt(&p, "surname"),
                password: opt(&p, "password"),
                quota_mb,
                ..Default::default()
            };
            recipients::create_mailbox(&state.store, new).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(m) => {
            audit(
                &state,
                &s,
                "mailbox.new",
                &m.primary_address.to_string(),
                None,
            )
            .await;
            done(
                "/recipients/mailboxes",
                &format!("Mailbox {} created.", m.primary_address),
            )
        }
        Err(e) => {
            let page = recipient_page(&state, &s, "mailboxes", "New Mailbox");
            invalid(page, mailbox_form(&p), &e)
        }
    }
}

fn props_form(m: &crate::store::organization::Mailbox) -> PageForm {
    let mut f = PageForm::post(
        "mailbox-properties",
        "/recipients/mailboxes/properties",
        "Save",
        vec![
            Field::new("display_name", "Display name", "text", &m.display_name),
            Field::new(
                "quota_mb",
                "Quota (MB)",
                "number",
                m.quota_mb.map(|q| q.to_string()).unwrap_or_default(),
            )
            .help("Empty: unlimited"),
            Field::new("add_address", "Add address", "text", ""),
            Field::new("remove_address", "Remove address", "text", ""),
            Field::new("password", "New password", "password", "").help("Empty: unchanged"),
            Field::new(
                "enabled",
                "Enabled",
                "checkbox",
                if m.enabled { "true" } else { "" },
            ),
        ],
    );
    f.hidden
        .push(("address".into(), m.primary_address.to_string()));
    f
}

async fn mailbox_props(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Query(q): Query<Params>,
) -> Response {
    let dir = match fresh(&state).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let address = q.get("address").cloned().unwrap_or_default();
    let mut page = recipient_page(&state, &s, "mailboxes", "Mailbox Properties");
    page.p.notice = q.get("notice").cloned();
    match recipients::find_mailbox(&dir, &address) {
        Ok(m) => {
            page.push(Block::Details(vec![
                ("Primary address".into(), m.primary_address.to_string()),
                ("Other addresses".into(), joined(&m.proxy_addresses)),
                ("Can authenticate".into(), yes_no(m.password_hash.is_some())),
                ("Mailbox folder".into(), m.folder.clone()),
            ]));
            page.push(Block::Form(props_form(m)));
            page.render()
        }
        Err(e) => {
            page.p.error = Some(e.to_string());
            let mut res = page.render();
            *res.status_mut() = StatusCode::NOT_FOUND;
            res
        }
    }
}

async fn mailbox_props_post(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let address = p.get("address").cloned().unwrap_or_default();
    let quota = match parse_quota(&p) {
        Ok(q) => q,
        Err(e) => return mailbox_props_error(&state, &s, &address, &p, &e).await,
    };
    let u = recipients::MailboxUpdate {
        display_name: opt(&p, "display_name"),
        quota_mb: Some(quota),
        enabled: Some(checked(&p, "enabled")),
        password: opt(&p, "password").map(Some),
        add_addresses: opt(&p, "add_address").into_iter().collect(),
        remove_addresses: opt(&p, "remove_address").into_iter().collect(),
        ..Default::default()
    };
    match recipients::update_mailbox(&state.store, &address, u).await {
        Ok(m) => {
            let detail = if opt(&p, "password").is_some() {
                Some("password changed")
            } else {
                None
            };
            audit(
                &state,
                &s,
                "mailbox.set",
                &m.primary_address.to_string(),
                detail,
            )
            .await;
            done(
                &format!(
                    "/recipients/mailboxes/properties?address={}",
                    urlencode(&m.primary_address.to_string())
                ),
                "Mailbox saved.",
            )
        }
        Err(e) => mailbox_props_error(&state, &s, &address, &p, &e).await,
    }
}

async fn mailbox_props_error(
    state: &AdminState,
    s: &Session,
    address: &str,
    p: &Params,
    e: &Error,
) -> Response {
    let dir = match fresh(state).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let page = recipient_page(state, s, "mailboxes", "Mailbox Properties");
    let Ok(m) = recipients::find_mailbox(&dir, address) else {
        return invalid(
            page,
            PageForm::post(
                "mailbox-properties",
                "/recipients/mailboxes/properties",
                "Save",
                vec![],
            ),
            e,
        );
    };
    let mut form = props_form(m);
    for f in &mut form.fields {
        if f.kind != "password"
            && f.kind != "checkbox"
            && let Some(v) = p.get(&f.name)
        {
            f.value = v.clone();
        }
    }
    invalid(page, form, e)
}

async fn mailbox_remove(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let result =
        recipients::remove_mailbox(&state.store, &opt(&p, "address").unwrap_or_default()).await;
    changed(
        &state,
        &s,
        "/recipients/mailboxes",
        "mailbox.remove",
        result,
        |m| {
            (
                m.primary_address.to_string(),
                format!("Mailbox {} removed.", m.primary_address),
            )
        },
    )
    .await
}

async fn groups(State(state): State<AdminState>, Extension(s): Extension<Session>) -> Response {
    let dir = match fresh(&state).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let mut page = recipient_page(
        &state,
        &s,
        "groups",
        "Recipient Configuration › Distribution Groups",
    );
    let mut t = Table::new(
        "groups",
        &[
            "Display name",
            "Address",
            "Members",
            "Only authenticated senders",
            "Accept from",
            "Reject from",
        ],
        "No distribution groups.",
    );
    for g in dir.groups() {
        let members: Vec<String> = g
            .members
            .iter()
            .filter_map(|m| dir.member_address(*m).map(ToString::to_string))
            .collect();
        t.row(
            vec![
                link(
                    &g.display_name,
                    format!(
                        "/recipients/groups/properties?address={}",
                        urlencode(&g.primary_address.to_string())
                    ),
                ),
                cell(g.primary_address.to_string()),
                cell(members.join(", ")),
                cell(yes_no(g.only_authenticated)),
                cell(joined(&g.accept_from)),
                cell(joined(&g.reject_from)),
            ],
            vec![
                Action::post(
                    &format!("remove-group-{}", g.id),
                    "Remove",
                    "/recipients/groups/remove",
                    &[("address", &g.primary_address.to_string())],
                )
                .confirmed(),
            ],
        );
    }
    page.push(Block::Table(t));
    page.push(Block::Form(group_form(&Params::new())));
    page.render()
}

async fn contacts(State(state): State<AdminState>, Extension(s): Extension<Session>) -> Response {
    let dir = match fresh(&state).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let mut page = recipient_page(
        &state,
        &s,
        "contacts",
        "Recipient Configuration › Mail Contacts",
    );
    let mut t = Table::new(
        "contacts",
        &[
            "Name",
            "Display name",
            "External address",
            "Internal address",
        ],
        "No mail contacts.",
    );
    for c in dir.contacts() {
        t.row(
            vec![
                cell(&c.name),
                cell(&c.display_name),
                cell(c.external_address.to_string()),
                cell(
                    c.address
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                ),
            ],
            vec![
                Action::post(
                    &format!("remove-contact-{}", c.id),
                    "Remove",
                    "/recipients/contacts/remove",
                    &[("name", &c.name)],
                )
                .confirmed(),
            ],
        );
    }
    page.push(Block::Table(t));
    page.push(Block::Form(contact_form(&Params::new())));
    page.render()
}

fn group_form(p: &Params) -> PageForm {
    let v = |k: &str| p.get(k).cloned().unwrap_or_default();
    PageForm::post(
        "new-group",
        "/recipients/groups",
        "New distribution group",
        vec![
            Field::new("address", "E-mail address", "text", v("address")),
            Field::new("display_name", "Display name", "text", v("display_name")),
            Field::new("members", "Members", "textarea", v("members")).help(
                "Comma-separated addresses of mailboxes, groups or contacts (or contact names)",
            ),
            Field::new(
                "only_authenticated",
                "Only accept from authenticated senders",
                "checkbox",
                v("only_authenticated"),
            ),
            Field::new("accept_from", "Accept only from", "text", v("accept_from"))
                .help("Comma-separated; empty: everyone"),
            Field::new("reject_from", "Reject from", "text", v("reject_from")),
        ],
    )
}

async fn group_new(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let new = recipients::NewGroup {
        address: opt(&p, "address").unwrap_or_default(),
        display_name: opt(&p, "display_name"),
        members: list_param(&p, "members"),
        only_authenticated: checked(&p, "only_authenticated"),
        accept_from: list_param(&p, "accept_from"),
        reject_from: list_param(&p, "reject_from"),
    };
    match recipients::create_group(&state.store, new).await {
        Ok(g) => {
            audit(
                &state,
                &s,
                "group.new",
                &g.primary_address.to_string(),
                None,
            )
            .await;
            done(
                "/recipients/groups",
                &format!("Group {} created.", g.primary_address),
            )
        }
        Err(e) => invalid(
            recipient_page(
                &state,
                &s,
                "groups",
                "Recipient Configuration › Distribution Groups",
            ),
            group_form(&p),
            &e,
        ),
    }
}

async fn group_remove(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let result =
        recipients::remove_group(&state.store, &opt(&p, "address").unwrap_or_default()).await;
    changed(
        &state,
        &s,
        "/recipients/groups",
        "group.remove",
        result,
        |g| {
            (
                g.primary_address.to_string(),
                format!("Group {} removed.", g.primary_address),
            )
        },
    )
    .await
}

fn contact_form(p: &Params) -> PageForm {
    let v = |k: &str| p.get(k).cloned().unwrap_or_default();
    PageForm::post(
        "new-contact",
        "/recipients/contacts",
        "New mail contact",
        vec![
            Field::new("name", "Name", "text", v("name")),
            Field::new("display_name", "Display name", "text", v("display_name")),
            Field::new(
                "external_address",
                "External e-mail address",
                "text",
                v("external_address"),
            ),
            Field::new(
                "address",
                "Address in the organization",
                "text",
                v("address"),
            )
            .help("Optional, e.g. partner@example.com"),
        ],
    )
}

async fn contact_new(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let new = recipients::NewContact {
        name: opt(&p, "name").unwrap_or_default(),
        display_name: opt(&p, "display_name"),
        external_address: opt(&p, "external_address").unwrap_or_default(),
        address: opt(&p, "address"),
    };
    match recipients::create_contact(&state.store, new).await {
        Ok(c) => {
            audit(&state, &s, "contact.new", &c.name, None).await;
            done(
                "/recipients/contacts",
                &format!("Contact {} created.", c.name),
            )
        }
        Err(e) => invalid(
            recipient_page(
                &state,
                &s,
                "contacts",
                "Recipient Configuration › Mail Contacts",
            ),
            contact_form(&p),
            &e,
        ),
    }
}

async fn contact_remove(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let result =
        recipients::remove_contact(&state.store, &opt(&p, "name").unwrap_or_default()).await;
    changed(
        &state,
        &s,
        "/recipients/contacts",
        "contact.remove",
        result,
        |c| (c.name.clone(), format!("Contact {} removed.", c.name)),
    )
    .await
}

// ---- New Receive Connector wizard ----

fn receive_wizard_fields(p: &Params) -> Vec<Field> {
    let v = |k: &str| p.get(k).cloned().unwrap_or_default();
    vec![
        Field::new("name", "Name", "text", v("name")),
        Field::select(
            "usage",
            "Intended use",
            &p.get("usage").cloned().unwrap_or_else(|| "custom".into()),
            &[
                ("custom", "Custom"),
                ("internet", "Internet"),
                ("internal", "Internal"),
                ("client", "Client"),
                ("partner", "Partner"),
            ],
        ),
        Field::new(
            "bindings",
            "Local IP addresses and ports",
            "text",
            v("bindings"),
        )
        .help("Comma-separated IP:PORT, e.g. 0.0.0.0:2525"),
        Field::new(
            "remote_ranges",
            "Remote IP addresses",
            "text",
            v("remote_ranges"),
        )
        .help("CIDR, a-b ranges or single IPs; empty: all"),
        Field::new("fqdn", "FQDN for HELO/EHLO and banner", "text", v("fqdn")),
    ]
}

fn receive_wizard_input(p: &Params) -> receive::ConnectorInput {
    receive::ConnectorInput {
        name: opt(p, "name"),
        usage: opt(p, "usage"),
        bindings: opt(p, "bindings").map(|v| vec![v]),
        remote_ranges: opt(p, "remote_ranges").map(|v| vec![v]),
        fqdn: opt(p, "fqdn").map(Some),
        enabled: Some(true),
        ..Default::default()
    }
}

fn receive_command(p: &Params) -> String {
    let mut cmd = vec![
        "bridgehead".to_string(),
        "receive-connector".into(),
        "new".into(),
    ];
    let mut arg = |flag: &str, v: &str| {
        cmd.push(flag.into());
        cmd.push(shell_word(v));
    };
    arg("--name", &opt(p, "name").unwrap_or_default());
    arg(
        "--usage",
        &opt(p, "usage").unwrap_or_else(|| "custom".into()),
    );
    for b in opt(p, "bindings")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
    {
        arg("--binding", b);
    }
    for r in opt(p, "remote_ranges")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        arg("--remote-ip", r);
    }
    if let Some(f) = opt(p, "fqdn") {
        arg("--fqdn", &f);
    }
    cmd.join(" ")
}

async fn receive_wizard(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Query(q): Query<Params>,
) -> Response {
    let mut page = Page::new(&state, Some(&s), "server", "New Receive Connector");
    page.push(Block::Text(
        "Choose the intended use (it pre-fills permission groups and authentication: Internet = anonymous with STARTTLS; Client = users with AUTH after TLS; Internal = users and servers; Partner = partners over TLS), where it listens, and whom it serves.".into(),
    ));
    page.push(Block::Form(PageForm::post(
        "receive-wizard",
        "/server/receive-connectors/new",
        "Next",
        receive_wizard_fields(&q),
    )));
    page.render()
}

async fn receive_wizard_post(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let confirmed = p.get("step").is_some_and(|v| v == "create");
    let input = receive_wizard_input(&p);
    let page = Page::new(&state, Some(&s), "server", "New Receive Connector");
    let form = PageForm::post(
        "receive-wizard",
        "/server/receive-connectors/new",
        "Next",
        receive_wizard_fields(&p),
    );
    let existing = match receive::list(&state.store).await {
        Ok(a) => a,
        Err(e) => return invalid(page, form, &e),
    };
    let probe = match receive::validate_new(&existing, input.clone()) {
        Ok(c) => c,
        Err(e) => return invalid(page, form, &e),
    };
    if !confirmed {
        let summary = vec![
            ("Name".into(), probe.name.clone()),
            ("Intended use".into(), probe.usage.as_str().into()),
            ("Bindings".into(), joined(&probe.bindings)),
            ("Remote IP ranges".into(), joined(&probe.remote_ranges)),
            (
                "Permission groups".into(),
                joined(
                    &probe
                        .permission_groups
                        .iter()
                        .map(|g| g.as_str())
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "Authentication".into(),
                joined(
                    &probe
                        .auth_mechanisms
                        .iter()
                        .map(|a| a.as_str())
                        .collect::<Vec<_>>(),
                ),
            ),
        ];
        return wizard_summary(page, form, &p, summary, receive_command(&p));
    }
    match receive::create(&state.store, input).await {
        Ok(c) => {
            audit(
                &state,
                &s,
                "receive-connector.new",
                &c.name,
                Some(&receive_command(&p)),
            )
            .await;
            done(
                "/server/hub-transport",
                &format!(
                    "Receive connector {} created; it listens within 2 seconds.",
                    c.name
                ),
            )
        }
        Err(e) => invalid(page, form, &e),
    }
}

// ---- Remote domains and address policies ----

fn remote_domain_form(p: &Params) -> PageForm {
    let v = |k: &str| p.get(k).cloned().unwrap_or_default();
    let on = |k: &str| {
        if p.is_empty() {
            "true".to_string()
        } else {
            v(k)
        }
    };
    PageForm::post(
        "new-remote-domain",
        "/org/remote-domains/new",
        "New remote domain",
        vec![
            Field::new("domain", "Domain", "text", v("domain"))
                .help("contoso.com or *.contoso.com"),
            Field::new("name", "Name", "text", v("name")),
            Field::new(
                "allow_out_of_office",
                "Allow out-of-office messages",
                "checkbox",
                on("allow_out_of_office"),
            ),
            Field::new(
                "allow_auto_reply",
                "Allow automatic replies",
                "checkbox",
                on("allow_auto_reply"),
            ),
            Field::new(
                "allow_auto_forward",
                "Allow automatic forwards",
                "checkbox",
                on("allow_auto_forward"),
            ),
            Field::new(
                "allow_delivery_reports",
                "Allow delivery reports",
                "checkbox",
                on("allow_delivery_reports"),
            ),
            Field::new(
                "allow_ndr",
                "Allow non-delivery reports",
                "checkbox",
                on("allow_ndr"),
            ),
        ],
    )
}

fn org_tab_page(state: &AdminState, s: &Session, tab: &str) -> Page {
    Page::new(
        state,
        Some(s),
        "org",
        "Organization Configuration › Hub Transport",
    )
    .tabs("/org/hub-transport", ORG_TABS, tab)
}

async fn remote_domain_new(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let domain = opt(&p, "domain").unwrap_or_default();
    let input = crate::directory::remote_domains::RemoteDomainInput {
        name: opt(&p, "name"),
        allow_out_of_office: Some(checked(&p, "allow_out_of_office")),
        allow_auto_reply: Some(checked(&p, "allow_auto_reply")),
        allow_auto_forward: Some(checked(&p, "allow_auto_forward")),
        allow_delivery_reports: Some(checked(&p, "allow_delivery_reports")),
        allow_ndr: Some(checked(&p, "allow_ndr")),
        ..Default::default()
    };
    match crate::directory::remote_domains::create(&state.store, &domain, input).await {
        Ok(r) => {
            audit(&state, &s, "remote-domain.new", &r.domain, None).await;
            done(
                "/org/hub-transport?tab=remote-domains",
                &format!("Remote domain {} created.", r.domain),
            )
        }
        Err(e) => invalid(
            org_tab_page(&state, &s, "remote-domains"),
            remote_domain_form(&p),
            &e,
        ),
    }
}

async fn remote_domain_remove(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let domain = opt(&p, "domain").unwrap_or_default();
    let result = crate::directory::remote_domains::remove(&state.store, &domain).await;
    changed(
        &state,
        &s,
        "/org/hub-transport?tab=remote-domains",
        "remote-domain.remove",
        result,
        |r| {
            (
                r.domain.clone(),
                format!("Remote domain {} removed.", r.domain),
            )
        },
    )
    .await
}

fn policy_form(p: &Params) -> PageForm {
    let v = |k: &str| p.get(k).cloned().unwrap_or_default();
    PageForm::post(
        "new-policy",
        "/org/address-policies/new",
        "New e-mail address policy",
        vec![
            Field::new("name", "Name", "text", v("name")),
            Field::new("templates", "Address templates", "text", v("templates")).help(
                "Comma-separated, the first is primary: %g.%s@example.com, %1g%s@example.com",
            ),
            Field::new("priority", "Priority", "number", v("priority"))
                .help("1 is the highest; empty: lowest"),
            Field::new(
                "filter_domain",
                "Only for recipients in domain",
                "text",
                v("filter_domain"),
            )
            .help("Empty: all recipients"),
            Field::new(
                "apply",
                "Apply to existing mailboxes now",
                "checkbox",
                v("apply"),
            ),
        ],
    )
}

async fn policy_new(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let priority = match opt(&p, "priority").map(|v| v.parse::<i64>()) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            let e = crate::directory::invalid("priority", "the priority is a whole number");
            return invalid(
                org_tab_page(&state, &s, "address-policies"),
                policy_form(&p),
                &e,
            );
        }
    };
    let input = policies::PolicyInput {
        name: opt(&p, "name").unwrap_or_default(),
        priority,
        filter_domain: opt(&p, "filter_domain"),
        templates: list_param(&p, "templates"),
    };
    match policies::create(&state.store, input).await {
        Ok(pol) => {
            audit(
                &state,
                &s,
                "address-policy.new",
                &pol.name,
                Some(&pol.templates.join(", ")),
            )
            .await;
            let mut note = format!("Policy {} created.", pol.name);
            if checked(&p, "apply") {
                match policies::apply(&state.store, &pol.name).await {
                    Ok(stamped) => {
                        note.push_str(&format!(" Applied to {} mailbox(es).", stamped.len()))
                    }
                    Err(e) => note.push_str(&format!(" Not applied: {e}")),
                }
            }
            done("/org/hub-transport?tab=address-policies", &note)
        }
        Err(e) => invalid(
            org_tab_page(&state, &s, "address-policies"),
            policy_form(&p),
            &e,
        ),
    }
}

async fn policy_remove(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let result = policies::remove(&state.store, &opt(&p, "name").unwrap_or_default()).await;
    changed(
        &state,
        &s,
        "/org/hub-transport?tab=address-policies",
        "address-policy.remove",
        result,
        |pol| (pol.name.clone(), format!("Policy {} removed.", pol.name)),
    )
    .await
}

fn group_props_form(address: &str, only_authenticated: bool) -> PageForm {
    let mut f = PageForm::post(
        "group-properties",
        "/recipients/groups/properties",
        "Save",
        vec![
            Field::new("add_members", "Add members", "text", "")
                .help("Comma-separated addresses or contact names"),
            Field::new("remove_members", "Remove members", "text", ""),
            Field::new(
                "only_authenticated",
                "Only accept from authenticated senders",
                "checkbox",
                if only_authenticated { "true" } else { "" },
            ),
            Field::new("add_accept_from", "Add to “accept only from”", "text", ""),
            Field::new(
                "remove_accept_from",
                "Remove from “accept only from”",
                "text",
                "",
            ),
            Field::new("add_reject_from", "Add to “reject from”", "text", ""),
            Field::new(
                "remove_reject_from",
                "Remove from “reject from”",
                "text",
                "",
            ),
        ],
    );
    f.hidden.push(("address".into(), address.into()));
    f
}

/// A group's Properties: its members and sender restrictions, then a form that
/// adds or removes them.
async fn group_page(
    state: &AdminState,
    s: &Session,
    address: &str,
    notice: Option<String>,
) -> (Page, Option<PageForm>) {
    let mut page = recipient_page(state, s, "groups", "Distribution Group Properties");
    page.p.notice = notice;
    let dir = match Directory::load(&state.store).await {
        Ok(d) => d,
        Err(e) => {
            page.p.error = Some(e.to_string());
            return (page, None);
        }
    };
    match recipients::find_group(&dir, address) {
        Ok(g) => {
            let members: Vec<String> = g
                .members
                .iter()
                .filter_map(|m| dir.member_address(*m).map(ToString::to_string))
                .collect();
            page.push(Block::Details(vec![
                ("Address".into(), g.primary_address.to_string()),
                ("Members".into(), members.join(", ")),
                (
                    "Only authenticated senders".into(),
                    yes_no(g.only_authenticated),
                ),
                ("Accept only from".into(), joined(&g.accept_from)),
                ("Reject from".into(), joined(&g.reject_from)),
            ]));
            let form = group_props_form(&g.primary_address.to_string(), g.only_authenticated);
            (page, Some(form))
        }
        Err(e) => {
            page.p.error = Some(e.to_string());
            (page, None)
        }
    }
}

async fn group_props(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Query(q): Query<Params>,
) -> Response {
    let address = q.get("address").cloned().unwrap_or_default();
    let (mut page, form) = group_page(&state, &s, &address, q.get("notice").cloned()).await;
    match form {
        Some(f) => {
            page.push(Block::Form(f));
            page.render()
        }
        None => {
            let mut res = page.render();
            *res.status_mut() = StatusCode::NOT_FOUND;
            res
        }
    }
}

async fn group_props_post(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(p): Form<Params>,
) -> Response {
    let address = p.get("address").cloned().unwrap_or_default();
    let u = recipients::GroupUpdate {
        add_members: list_param(&p, "add_members"),
        remove_members: list_param(&p, "remove_members"),
        only_authenticated: Some(checked(&p, "only_authenticated")),
        add_accept_from: list_param(&p, "add_accept_from"),
        remove_accept_from: list_param(&p, "remove_accept_from"),
        add_reject_from: list_param(&p, "add_reject_from"),
        remove_reject_from: list_param(&p, "remove_reject_from"),
        ..Default::default()
    };
    match recipients::update_group(&state.store, &address, u).await {
        Ok(g) => {
            audit(
                &state,
                &s,
                "group.set",
                &g.primary_address.to_string(),
                None,
            )
            .await;
            done(
                &format!(
                    "/recipients/groups/properties?address={}",
                    urlencode(&g.primary_address.to_string())
                ),
                "Group saved.",
            )
        }
        Err(e) => {
            let (page, form) = group_page(&state, &s, &address, None).await;
            let mut form = form.unwrap_or_else(|| group_props_form(&address, false));
            for f in &mut form.fields {
                if f.kind == "text"
                    && let Some(v) = p.get(&f.name)
                {
                    f.value = v.clone();
                }
            }
            invalid(page, form, &e)
        }
    }
}
