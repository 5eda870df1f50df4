//! The web console (PRODUCT §7): server-rendered pages that mirror the Exchange
//! 2007 console — a tree on the left, a result pane with tabs, an action pane.
//!
//! Every page is one askama template (`web/templates/page.html`, escaping on)
//! filled with [`Block`]s: tables with row actions, property forms whose errors
//! sit beside their field, details. Handlers call the same functions as the CLI
//! and the API, so validation lives once.

mod auth;
mod connectors;
mod objects;
mod toolbox;

use askama::Template;
use axum::Router;
use axum::extract::{Extension, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::AdminState;
use super::session::Session;
use crate::directory::Error;

pub use auth::login_routes;

/// The frame around every page.
pub struct PageCtx {
    pub title: String,
    pub hostname: String,
    pub user: Option<String>,
    pub csrf: String,
    /// The tree node to highlight.
    pub section: &'static str,
    pub tabs: Vec<Tab>,
    /// The action pane.
    pub actions: Vec<Action>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

pub struct Tab {
    pub label: String,
    pub href: String,
    pub active: bool,
}

/// A link, or a button that POSTs `fields` (with the CSRF token) to `href`.
pub struct Action {
    pub id: String,
    pub label: String,
    pub href: String,
    pub post: bool,
    pub confirm: bool,
    pub fields: Vec<(String, String)>,
}

impl Action {
    pub fn link(id: &str, label: &str, href: impl Into<String>) -> Action {
        Action {
            id: id.into(),
            label: label.into(),
            href: href.into(),
            post: false,
            confirm: false,
            fields: Vec::new(),
        }
    }

    pub fn post(id: &str, label: &str, href: impl Into<String>, fields: &[(&str, &str)]) -> Action {
        Action {
            id: id.into(),
            label: label.into(),
            href: href.into(),
            post: true,
            confirm: false,
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// Asks before doing it (removals).
    pub fn confirmed(mut self) -> Action {
        self.confirm = true;
        self
    }
}

pub struct Cell {
    pub text: String,
    pub href: Option<String>,
}

pub struct Row {
    pub cells: Vec<Cell>,
    pub actions: Vec<Action>,
}

pub struct Table {
    pub id: String,
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
    pub has_actions: bool,
    pub empty: String,
}

impl Table {
    pub fn new(id: &str, columns: &[&str], empty: &str) -> Table {
        Table {
            id: id.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
            has_actions: false,
            empty: empty.into(),
        }
    }

    pub fn row(&mut self, cells: Vec<Cell>, actions: Vec<Action>) {
        self.has_actions |= !actions.is_empty();
        self.rows.push(Row { cells, actions });
    }
}

pub fn cell(text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        href: None,
    }
}

pub fn link(text: impl Into<String>, href: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        href: Some(href.into()),
    }
}

pub struct Field {
    pub name: String,
    pub label: String,
    /// text, password, number, checkbox, select, textarea
    pub kind: &'static str,
    pub value: String,
    pub help: Option<String>,
    pub error: Option<String>,
    pub options: Vec<(String, String)>,
}

impl Field {
    pub fn new(name: &str, label: &str, kind: &'static str, value: impl Into<String>) -> Field {
        Field {
            name: name.into(),
            label: label.into(),
            kind,
            value: value.into(),
            help: None,
            error: None,
            options: Vec::new(),
        }
    }

    pub fn help(mut self, h: &str) -> Field {
        self.help = Some(h.into());
        self
    }

    pub fn select(name: &str, label: &str, value: &str, options: &[(&str, &str)]) -> Field {
        let mut f = Field::new(name, label, "select", value);
        f.options = options
            .iter()
            .map(|(v, l)| (v.to_string(), l.to_string()))
            .collect();
        f
    }
}

pub struct Form {
    pub id: String,
    pub method: &'static str,
    pub action: String,
    pub submit: String,
    pub hidden: Vec<(String, String)>,
    pub fields: Vec<Field>,
}

impl Form {
    pub fn post(id: &str, action: impl Into<String>, submit: &str, fields: Vec<Field>) -> Form {
        Form {
            id: id.into(),
            method: "post",
            action: action.into(),
            submit: submit.into(),
            hidden: Vec::new(),
            fields,
        }
    }

    pub fn get(id: &str, action: impl Into<String>, submit: &str, fields: Vec<Field>) -> Form {
        Form {
            method: "get",
            ..Form::post(id, action, submit, fields)
        }
    }

    /// Puts a validation error beside the field the shared validation names
    /// (form fields are named like the input structs' fields), or returns it
    /// for the page-level error line when no such field is on the form.
    pub fn set_error(&mut self, e: &Error) -> Option<String> {
        if let Error::Invalid { field, message } = e
            && let Some(f) = self.fields.iter_mut().find(|f| f.name == *field)
        {
            f.error = Some(message.clone());
            return None;
        }
        Some(e.to_string())
    }
}

pub enum Block {
    Text(String),
    Heading(String),
    Pre(String),
    Details(Vec<(String, String)>),
    Table(Table),
    Form(Form),
}

#[derive(Template)]
#[template(path = "page.html")]
pub struct Page {
    pub p: PageCtx,
    pub blocks: Vec<Block>,
}

impl Page {
    pub fn new(
        state: &AdminState,
        session: Option<&Session>,
        section: &'static str,
        title: &str,
    ) -> Page {
        Page {
            p: PageCtx {
                title: title.into(),
                hostname: state.hostname.clone(),
                user: session.map(|s| s.user.clone()),
                csrf: session.map(|s| s.csrf.clone()).unwrap_or_default(),
                section,
                tabs: Vec::new(),
                actions: Vec::new(),
                notice: None,
                error: None,
            },
            blocks: Vec::new(),
        }
    }

    pub fn tabs(mut self, base: &str, tabs: &[(&str, &str)], active: &str) -> Page {
        self.p.tabs = tabs
            .iter()
            .map(|(key, label)| Tab {
                label: label.to_string(),
                href: format!("{base}?tab={key}"),
                active: *key == active,
            })
            .collect();
        self
    }

    pub fn push(&mut self, b: Block) {
        self.blocks.push(b);
    }

    pub fn render(self) -> Response {
        match Template::render(&self) {
            Ok(html) => Html(html).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "cannot render a console page");
                (StatusCode::INTERNAL_SERVER_ERROR, "cannot render the page").into_response()
            }
        }
    }
}

/// After a successful POST: back to a page, with a notice (Post/Redirect/Get).
pub fn done(to: &str, notice: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{sep}notice={}", urlencode(notice))).into_response()
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Records a console change in the audit log (failures are logged, not fatal:
/// the change itself is done).
pub async fn audit(
    state: &AdminState,
    session: &Session,
    action: &str,
    object: &str,
    detail: Option<&str>,
) {
    if let Err(e) =
        super::audit::record(state.store.pool(), &session.user, action, object, detail).await
    {
        tracing::warn!(error = %e, "cannot write the audit log");
    }
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../../web/static/console.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../../web/static/console.js"),
    )
        .into_response()
}

/// Open routes: assets.
pub fn static_routes() -> Router<AdminState> {
    Router::new()
        .route("/static/console.css", get(stylesheet))
        .route("/static/console.js", get(script))
}

/// Pages that need a session (the caller adds `session::require`).
pub fn page_routes() -> Router<AdminState> {
    Router::new()
        .route("/", get(toolbox::dashboard))
        .route("/logout", post(auth::logout))
        .route("/account", get(auth::account).post(auth::change_password))
        .route("/account/tokens", post(auth::token_new))
        .route("/account/tokens/remove", post(auth::token_remove))
        .route("/account/users", post(auth::user_new))
        .route("/account/users/remove", post(auth::user_remove))
        .route("/audit", get(toolbox::audit_log))
        .merge(objects::routes())
        .merge(connectors::routes())
        .merge(toolbox::routes())
}

/// A submitted form or query string.
pub type Params = std::collections::HashMap<String, String>;

/// A trimmed, non-empty parameter.
pub fn opt(p: &Params, k: &str) -> Option<String> {
    p.get(k)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A checkbox (`true`, or `on` from a browser without a value attribute).
pub fn checked(p: &Params, k: &str) -> bool {
    p.get(k).is_some_and(|v| v == "true" || v == "on")
}

/// A whole-number parameter; a clear error naming the field otherwise.
pub fn num<T: std::str::FromStr>(p: &Params, k: &'static str) -> Result<Option<T>, Error> {
    match opt(p, k) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| crate::directory::invalid(k, format!("{k} must be a whole number"))),
    }
}

/// A comma-separated list parameter.
pub fn list_param(p: &Params, k: &str) -> Vec<String> {
    p.get(k)
        .map(|v| {
            v.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

pub fn yes_no(b: bool) -> String {
    if b { "Yes" } else { "No" }.into()
}

/// Items as one comma-separated cell.
pub fn joined<T: ToString>(v: &[T]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A page whose form failed validation: the error beside its field, and the
/// status the error calls for.
pub fn invalid(mut page: Page, mut form: Form, e: &Error) -> Response {
    page.p.error = form.set_error(e);
    page.push(Block::Form(form));
    let mut res = page.render();
    *res.status_mut() = match e {
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::Invalid { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    res
}

/// After a one-click change (remove, enable, apply…): on success, audit it and
/// go back to `back` with a notice; on failure go back with the error.
/// `describe` names the object changed and words the notice.
pub async fn changed<T>(
    state: &AdminState,
    session: &Session,
    back: &str,
    action: &str,
    result: Result<T, Error>,
    describe: impl FnOnce(&T) -> (String, String),
) -> Response {
    match result {
        Ok(v) => {
            let (object, notice) = describe(&v);
            audit(state, session, action, &object, None).await;
            done(back, &notice)
        }
        Err(e) => done(back, &e.to_string()),
    }
}

/// A wizard's last page: the summary, the equivalent command, and a Create
/// button that posts the same answers again with `step=create`.
pub fn wizard_summary(
    mut page: Page,
    mut form: Form,
    p: &Params,
    summary: Vec<(String, String)>,
    command: String,
) -> Response {
    page.push(Block::Heading("Summary".into()));
    page.push(Block::Details(summary));
    page.push(Block::Heading("The same with the command line".into()));
    page.push(Block::Pre(command));
    form.id = format!("{}-create", form.id);
    form.submit = "Create".into();
    form.hidden = p
        .iter()
        .filter(|(k, _)| k.as_str() != "_csrf" && k.as_str() != "step")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    form.hidden.push(("step".into(), "create".into()));
    form.fields.clear();
    page.push(Block::Form(form));
    page.render()
}

/// The notice passed along by [`done`].
#[derive(serde::Deserialize, Default)]
pub struct Notice {
    pub notice: Option<String>,
}

/// Shorthand for handlers: the state and the session.
pub type Ctx = (State<AdminState>, Extension<Session>);
