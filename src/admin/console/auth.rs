//! Login, logout and the account page (password change).
//!
//! The login form has no session to carry a CSRF token, so it uses a
//! double-submit token instead: a random value in a short-lived cookie and the
//! same value in the form.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Extension, Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use super::{Block, Field, Form as PageForm, Page, done};
use crate::admin::AdminState;
use crate::admin::session::{self, Session};
use crate::store::console_users;

const LOGIN_COOKIE: &str = "bh_login";

pub fn login_routes() -> Router<AdminState> {
    Router::new().route("/login", get(login_page).post(login))
}

fn login_form(user: &str, error: Option<String>, token: &str) -> PageForm {
    let mut f = PageForm::post(
        "login",
        "/login",
        "Log in",
        vec![
            Field::new("username", "User name", "text", user),
            Field::new("password", "Password", "password", ""),
        ],
    );
    f.hidden.push(("login_token".into(), token.into()));
    if let Some(e) = error {
        f.fields[1].error = Some(e);
    }
    f
}

fn random_token() -> String {
    crate::password::generate(32)
}

fn login_response(
    state: &AdminState,
    user: &str,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let token = random_token();
    let mut page = Page::new(state, None, "login", "Log in to Bridgehead");
    page.push(Block::Form(login_form(user, error, &token)));
    let secure = if state.tls { "; Secure" } else { "" };
    let cookie = format!(
        "{LOGIN_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600{secure}"
    );
    let mut res = page.render();
    *res.status_mut() = status;
    if let Ok(v) = cookie.parse() {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

async fn login_page(State(state): State<AdminState>) -> Response {
    login_response(&state, "", None, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    login_token: String,
}

fn login_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == LOGIN_COOKIE)
        .map(|(_, v)| v.to_string())
}

async fn login(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let user = form.username.trim().chars().take(100).collect::<String>();
    let token_ok = !form.login_token.is_empty()
        && login_cookie(&headers).as_deref() == Some(form.login_token.as_str());
    if !token_ok {
        return login_response(
            &state,
            &user,
            Some("The login form expired; please try again.".into()),
            StatusCode::FORBIDDEN,
        );
    }
    let ip = peer.ip();
    if let Err(wait) = state.sessions.attempt(ip, &user) {
        tracing::warn!(user = %user, client = %ip, "console login throttled");
        return login_response(
            &state,
            &user,
            Some(wait_message(wait)),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let found = console_users::find(state.store.pool(), &user)
        .await
        .ok()
        .flatten();
    // Verify against a dummy hash when the user does not exist, so the answer
    // takes as long either way.
    let hash = found
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| crate::password::DUMMY_HASH.to_string());
    let password = form.password.chars().take(1024).collect::<String>();
    let Ok(verified) = crate::password::verify(hash, password).await else {
        return login_response(
            &state,
            &user,
            Some("The server is busy checking passwords; try again in a moment.".into()),
            StatusCode::SERVICE_UNAVAILABLE,
        );
    };
    let ok = verified && found.is_some();
    if !ok {
        tracing::warn!(user = %user, client = %ip, "console login failed");
        return login_response(
            &state,
            &user,
            Some("Wrong user name or password.".into()),
            StatusCode::UNAUTHORIZED,
        );
    }
    state.sessions.succeeded(ip, &user);
    let id = state.sessions.create(&user);
    tracing::info!(user = %user, client = %ip, "console login");
    let mut res = Redirect::to("/").into_response();
    if let Ok(v) = session::set_cookie(Some(&id), state.tls).parse() {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

pub async fn logout(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
) -> Response {
    if let Some(id) = session::cookie_value(&headers) {
        state.sessions.remove(&id);
    }
    tracing::info!(user = %s.user, "console logout");
    let mut res = Redirect::to("/login").into_response();
    if let Ok(v) = session::set_cookie(None, state.tls).parse() {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

fn password_form() -> PageForm {
    PageForm::post(
        "password",
        "/account",
        "Change password",
        vec![
            Field::new("current", "Current password", "password", ""),
            Field::new("new_password", "New password", "password", "")
                .help("At least 12 characters."),
            Field::new("confirm", "New password again", "password", ""),
        ],
    )
}

pub async fn account(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    axum::extract::Query(n): axum::extract::Query<super::Notice>,
) -> Response {
    let mut page = Page::new(&state, Some(&s), "account", "Account");
    page.p.notice = n.notice;
    page.push(Block::Details(vec![("User".into(), s.user.clone())]));
    page.push(Block::Form(password_form()));
    push_tokens(&state, &mut page).await;
    push_users(&state, &s, &mut page).await;
    page.render()
}

fn user_form() -> PageForm {
    PageForm::post(
        "new-user",
        "/account/users",
        "Add console user",
        vec![
            Field::new("username", "User name", "text", ""),
            Field::new("password", "Password", "password", "")
                .help("At least 12 characters; the user changes it after logging in."),
        ],
    )
}

/// The console users section: everyone may add users and remove others.
async fn push_users(state: &AdminState, s: &Session, page: &mut Page) {
    page.push(Block::Heading("Console users".into()));
    let mut t = super::Table::new("console-users", &["User"], "");
    for u in console_users::list(state.store.pool())
        .await
        .unwrap_or_default()
    {
        let actions = if u == s.user {
            vec![]
        } else {
            let id = format!(
                "remove-user-{}",
                u.chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect::<String>()
            );
            vec![
                super::Action::post(&id, "Remove", "/account/users/remove", &[("username", &u)])
                    .confirmed(),
            ]
        };
        t.row(vec![super::cell(&u)], actions);
    }
    page.push(Block::Table(t));
    page.push(Block::Form(user_form()));
}

#[derive(Deserialize)]
pub struct UserForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

fn check_username(name: &str) -> Result<String, String> {
    let n = name.trim();
    if n.is_empty()
        || n.len() > 64
        || !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
    {
        return Err("1 to 64 letters, digits or . _ - @".into());
    }
    Ok(n.to_string())
}

pub async fn user_new(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(f): Form<UserForm>,
) -> Response {
    let mut form = user_form();
    let name = match check_username(&f.username) {
        Ok(n) => n,
        Err(e) => {
            form.fields[0].error = Some(e);
            return user_error(&state, &s, form).await;
        }
    };
    form.fields[0].value = name.clone();
    if let Err(e) = crate::password::check_strength(&f.password) {
        form.fields[1].error = Some(e.to_string());
        return user_error(&state, &s, form).await;
    }
    let inserted = match crate::password::hash(f.password).await {
        Ok(hash) => console_users::insert_if_absent(state.store.pool(), &name, &hash).await,
        Err(_) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot hash the password",
            )
                .into_response();
        }
    };
    match inserted {
        Ok(true) => {
            super::audit(&state, &s, "console-user.new", &name, None).await;
            done("/account", &format!("Console user {name} added."))
        }
        Ok(false) => {
            form.fields[0].error = Some(format!("a console user named {name} already exists"));
            user_error(&state, &s, form).await
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot save the user").into_response(),
    }
}

async fn user_error(state: &AdminState, s: &Session, form: PageForm) -> Response {
    let mut page = Page::new(state, Some(s), "account", "Account");
    page.push(Block::Form(form));
    let mut res = page.render();
    *res.status_mut() = StatusCode::BAD_REQUEST;
    res
}

pub async fn user_remove(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(f): Form<UserForm>,
) -> Response {
    let name = f.username.trim().to_string();
    if name == s.user {
        return done("/account", "You cannot remove yourself.");
    }
    match console_users::delete(state.store.pool(), &name).await {
        Ok(true) => {
            state.sessions.remove_user(&name, None);
            super::audit(&state, &s, "console-user.remove", &name, None).await;
            done("/account", &format!("Console user {name} removed."))
        }
        _ => done("/account", &format!("No console user named {name}.")),
    }
}

/// The API tokens section: list with Revoke, and a form to make one.
async fn push_tokens(state: &AdminState, page: &mut Page) {
    page.push(Block::Heading("API tokens".into()));
    page.push(Block::Text(
        "Tokens authenticate scripts against /api/v1 (Authorization: Bearer …). A new token is shown once."
            .into(),
    ));
    let mut t = super::Table::new(
        "api-tokens",
        &["Name", "Made by", "Made", "Last used"],
        "No API tokens.",
    );
    for tok in crate::admin::tokens::list(&state.store)
        .await
        .unwrap_or_default()
    {
        let id = format!(
            "revoke-token-{}",
            tok.name
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
        );
        t.row(
            vec![
                super::cell(&tok.name),
                super::cell(&tok.created_by),
                super::cell(&tok.created_at),
                super::cell(tok.last_used_at.clone().unwrap_or_default()),
            ],
            vec![
                super::Action::post(
                    &id,
                    "Revoke",
                    "/account/tokens/remove",
                    &[("name", &tok.name)],
                )
                .confirmed(),
            ],
        );
    }
    page.push(Block::Table(t));
    page.push(Block::Form(token_form()));
}

fn token_form() -> PageForm {
    PageForm::post(
        "new-token",
        "/account/tokens",
        "Make token",
        vec![Field::new("name", "Token name", "text", "").help("e.g. monitoring")],
    )
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    name: String,
}

pub async fn token_new(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(f): Form<TokenForm>,
) -> Response {
    let mut page = Page::new(&state, Some(&s), "account", "Account");
    match crate::admin::tokens::create(&state.store, &f.name, &s.user).await {
        Ok(t) => {
            super::audit(&state, &s, "api-token.new", &t.info.name, None).await;
            page.p.notice = Some(format!(
                "API token {} made. Copy it now: it is not shown again.",
                t.info.name
            ));
            page.push(Block::Heading("The new token".into()));
            page.push(Block::Pre(t.token));
            push_tokens(&state, &mut page).await;
            page.render()
        }
        Err(e) => {
            let mut form = token_form();
            form.fields[0].value = f.name.chars().take(200).collect();
            page.p.error = form.set_error(&e);
            page.push(Block::Form(form));
            let mut res = page.render();
            *res.status_mut() = StatusCode::BAD_REQUEST;
            res
        }
    }
}

pub async fn token_remove(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    Form(f): Form<TokenForm>,
) -> Response {
    let result = crate::admin::tokens::remove(&state.store, &f.name).await;
    super::changed(&state, &s, "/account", "api-token.remove", result, |t| {
        (t.name.clone(), format!("API token {} revoked.", t.name))
    })
    .await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current: String,
    new_password: String,
    confirm: String,
}

pub async fn change_password(
    State(state): State<AdminState>,
    Extension(s): Extension<Session>,
    headers: HeaderMap,
    Form(f): Form<PasswordForm>,
) -> Response {
    let mut form = password_form();
    let user = console_users::find(state.store.pool(), &s.user)
        .await
        .ok()
        .flatten();
    let current_ok = match &user {
        Some(u) => crate::password::verify(u.password_hash.clone(), f.current.clone())
            .await
            .unwrap_or(false),
        None => false,
    };
    let error = if !current_ok {
        Some((0, "The current password is wrong.".to_string()))
    } else if let Err(e) = crate::password::check_strength(&f.new_password) {
        Some((1, e.to_string()))
    } else if f.new_password != f.confirm {
        Some((2, "The two new passwords differ.".to_string()))
    } else {
        None
    };
    if let Some((i, e)) = error {
        form.fields[i].error = Some(e);
        let mut page = Page::new(&state, Some(&s), "account", "Account");
        page.push(Block::Form(form));
        let mut res = page.render();
        *res.status_mut() = StatusCode::BAD_REQUEST;
        return res;
    }
    let saved = match crate::password::hash(f.new_password).await {
        Ok(hash) => console_users::set_password(state.store.pool(), &s.user, &hash)
            .await
            .is_ok(),
        Err(_) => false,
    };
    if !saved {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot save the password",
        )
            .into_response();
    }
    // Other sessions of this user end; this one stays.
    state
        .sessions
        .remove_user(&s.user, session::cookie_value(&headers).as_deref());
    super::audit(&state, &s, "console-user.password", &s.user, None).await;
    done("/account", "Password changed.")
}

/// "wait 1 second" / "wait 12 seconds" / "wait 15 minutes", rounded up.
fn wait_message(wait: std::time::Duration) -> String {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let (n, unit) = if secs >= 120 {
        (secs.div_ceil(60), "minute")
    } else {
        (secs.max(1), "second")
    };
    let s = if n == 1 { "" } else { "s" };
    format!("Too many failed logins; wait {n} {unit}{s} and try again.")
}

#[cfg(test)]
mod wait_tests {
    use super::wait_message;
    use std::time::Duration;

    #[test]
    fn waits_read_well() {
        let m = |ms| wait_message(Duration::from_millis(ms));
        assert_eq!(
            m(300),
            "Too many failed logins; wait 1 second and try again."
        );
        assert_eq!(
            m(1_200),
            "Too many failed logins; wait 2 seconds and try again."
        );
        assert_eq!(
            m(900_000),
            "Too many failed logins; wait 15 minutes and try again."
        );
    }
}
