//! Organization objects: accepted domains, mailboxes, groups, contacts, e-mail
//! address policies, remote domains.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, ApiPath, ApiResult, ErrorBody, created, record, segment};
use crate::admin::{AdminState, Principal};
use crate::directory::{
    AcceptedDomain, AddressPolicy, Directory, MailContact, Mailbox, RemoteDomain, domains,
    policies::{self, PolicyInput, Stamped},
    recipients::{
        self, ContactUpdate, GroupUpdate, GroupView, MailboxUpdate, NewContact, NewGroup,
        NewMailbox,
    },
    remote_domains::{self, RemoteDomainInput},
};

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route(
            "/accepted-domains",
            get(list_accepted_domains).post(create_accepted_domain),
        )
        .route(
            "/accepted-domains/{name}",
            get(get_accepted_domain)
                .patch(update_accepted_domain)
                .delete(delete_accepted_domain),
        )
        .route("/mailboxes", get(list_mailboxes).post(create_mailbox))
        .route(
            "/mailboxes/{address}",
            get(get_mailbox)
                .patch(update_mailbox)
                .delete(delete_mailbox),
        )
        .route("/groups", get(list_groups).post(create_group))
        .route(
            "/groups/{address}",
            get(get_group).patch(update_group).delete(delete_group),
        )
        .route("/contacts", get(list_contacts).post(create_contact))
        .route(
            "/contacts/{name}",
            get(get_contact)
                .patch(update_contact)
                .delete(delete_contact),
        )
        .route("/address-policies", get(list_policies).post(create_policy))
        .route(
            "/address-policies/{name}",
            get(get_policy).patch(update_policy).delete(delete_policy),
        )
        .route("/address-policies/{name}/apply", post(apply_policy))
        .route(
            "/remote-domains",
            get(list_remote_domains).post(create_remote_domain),
        )
        .route(
            "/remote-domains/{name}",
            get(get_remote_domain)
                .patch(update_remote_domain)
                .delete(delete_remote_domain),
        )
}

/// A fresh snapshot: an API client that just made a change must see it.
async fn load(st: &AdminState) -> ApiResult<Directory> {
    Ok(Directory::load(&st.store).await?)
}

// ------------------------------------------------------------ accepted domains

/// A new accepted domain.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NewAcceptedDomain {
    /// `example.com`, or `*.example.com` for it and its subdomains.
    pub name: String,
    /// authoritative (default), internal-relay or external-relay.
    pub domain_type: Option<String>,
    pub is_default: bool,
}

/// Changes to an accepted domain.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AcceptedDomainUpdate {
    pub domain_type: Option<String>,
    pub is_default: Option<bool>,
}

/// The API names the fields as the objects do (`domain_type`, `is_default`).
fn domain_field(e: crate::directory::Error) -> ApiError {
    match e {
        crate::directory::Error::Invalid { field, message } => {
            let field = match field {
                "type" => "domain_type",
                "default" => "is_default",
                f => f,
            };
            ApiError::invalid(field, message)
        }
        e => e.into(),
    }
}

#[utoipa::path(get, path = "/api/v1/accepted-domains", tag = "organization",
    responses((status = 200, body = Vec<AcceptedDomain>)))]
pub async fn list_accepted_domains(
    State(st): State<AdminState>,
) -> ApiResult<Json<Vec<AcceptedDomain>>> {
    Ok(Json(load(&st).await?.accepted_domains().to_vec()))
}

#[utoipa::path(post, path = "/api/v1/accepted-domains", tag = "organization",
    request_body = NewAcceptedDomain,
    responses((status = 201, body = AcceptedDomain), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_accepted_domain(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    body: ApiJson<NewAcceptedDomain>,
) -> ApiResult<Response> {
    let detail = body.detail();
    let input = body.value;
    let t = domains::parse_type(input.domain_type.as_deref().unwrap_or("authoritative"))
        .map_err(domain_field)?;
    let d = domains::create(&st.store, &input.name, t, input.is_default)
        .await
        .map_err(domain_field)?;
    record(&st, &who, "accepted-domain.new", &d.name, detail).await;
    Ok(created(
        format!("/api/v1/accepted-domains/{}", segment(&d.name)),
        d,
    ))
}

#[utoipa::path(get, path = "/api/v1/accepted-domains/{name}", tag = "organization",
    params(("name" = String, Path, description = "e.g. example.com or *.example.com")),
    responses((status = 200, body = AcceptedDomain), (status = 404, body = ErrorBody)))]
pub async fn get_accepted_domain(
    State(st): State<AdminState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<AcceptedDomain>> {
    let dir = load(&st).await?;
    Ok(Json(domains::find(&dir, &name)?.clone()))
}

#[utoipa::path(patch, path = "/api/v1/accepted-domains/{name}", tag = "organization",
    params(("name" = String, Path)),
    request_body = AcceptedDomainUpdate,
    responses((status = 200, body = AcceptedDomain), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_accepted_domain(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
    body: ApiJson<AcceptedDomainUpdate>,
) -> ApiResult<Json<AcceptedDomain>> {
    let detail = body.detail();
    let t = body
        .value
        .domain_type
        .as_deref()
        .map(domains::parse_type)
        .transpose()
        .map_err(domain_field)?;
    let d = domains::update(&st.store, &name, t, body.value.is_default)
        .await
        .map_err(domain_field)?;
    record(&st, &who, "accepted-domain.set", &d.name, detail).await;
    Ok(Json(d))
}

#[utoipa::path(delete, path = "/api/v1/accepted-domains/{name}", tag = "organization",
    params(("name" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_accepted_domain(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let d = domains::remove(&st.store, &name).await?;
    record(&st, &who, "accepted-domain.remove", &d.name, None).await;
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------ mailboxes

/// A mailbox as the API shows it: never the password, but whether one is set.
#[derive(Debug, Serialize, ToSchema)]
pub struct MailboxView {
    #[serde(flatten)]
    pub mailbox: Mailbox,
    /// The mailbox has a password (it can use SMTP AUTH).
    pub password_set: bool,
}

impl From<Mailbox> for MailboxView {
    fn from(m: Mailbox) -> MailboxView {
        MailboxView {
            password_set: m.has_password(),
            mailbox: m,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/mailboxes", tag = "organization",
    responses((status = 200, body = Vec<MailboxView>)))]
pub async fn list_mailboxes(State(st): State<AdminState>) -> ApiResult<Json<Vec<MailboxView>>> {
    Ok(Json(
        load(&st)
            .await?
            .mailboxes()
            .iter()
            .cloned()
            .map(MailboxView::from)
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/mailboxes", tag = "organization",
    request_body = NewMailbox,
    responses((status = 201, body = MailboxView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_mailbox(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    body: ApiJson<NewMailbox>,
) -> ApiResult<Response> {
    let detail = body.detail();
    let m = recipients::create_mailbox(&st.store, body.value).await?;
    let address = m.primary_address.to_string();
    record(&st, &who, "mailbox.new", &address, detail).await;
    Ok(created(
        format!("/api/v1/mailboxes/{}", segment(&address)),
        MailboxView::from(m),
    ))
}

#[utoipa::path(get, path = "/api/v1/mailboxes/{address}", tag = "organization",
    params(("address" = String, Path, description = "Any address of the mailbox")),
    responses((status = 200, body = MailboxView), (status = 404, body = ErrorBody)))]
pub async fn get_mailbox(
    State(st): State<AdminState>,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<Json<MailboxView>> {
    let dir = load(&st).await?;
    Ok(Json(
        recipients::find_mailbox(&dir, &address)?.clone().into(),
    ))
}

#[utoipa::path(patch, path = "/api/v1/mailboxes/{address}", tag = "organization",
    params(("address" = String, Path)),
    request_body = MailboxUpdate,
    responses((status = 200, body = MailboxView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_mailbox(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(address): ApiPath<String>,
    body: ApiJson<MailboxUpdate>,
) -> ApiResult<Json<MailboxView>> {
    let detail = body.detail();
    let m = recipients::update_mailbox(&st.store, &address, body.value).await?;
    record(
        &st,
        &who,
        "mailbox.set",
        &m.primary_address.to_string(),
        detail,
    )
    .await;
    Ok(Json(m.into()))
}

#[utoipa::path(delete, path = "/api/v1/mailboxes/{address}", tag = "organization",
    params(("address" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)))]
pub async fn delete_mailbox(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let m = recipients::remove_mailbox(&st.store, &address).await?;
    record(
        &st,
        &who,
        "mailbox.remove",
        &m.primary_address.to_string(),
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------ groups

fn group_json(dir: &Directory, g: &crate::directory::DistributionGroup) -> serde_json::Value {
    serde_json::to_value(recipients::group_view(dir, g)).unwrap_or_default()
}

#[utoipa::path(get, path = "/api/v1/groups", tag = "organization",
    responses((status = 200, body = Vec<GroupView>)))]
pub async fn list_groups(State(st): State<AdminState>) -> ApiResult<Json<serde_json::Value>> {
    let dir = load(&st).await?;
    let views: Vec<GroupView> = dir
        .groups()
        .iter()
        .map(|g| recipients::group_view(&dir, g))
        .collect();
    Ok(Json(serde_json::to_value(views).unwrap_or_default()))
}

#[utoipa::path(post, path = "/api/v1/groups", tag = "organization",
    request_body = NewGroup,
    responses((status = 201, body = GroupView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_group(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    body: ApiJson<NewGroup>,
) -> ApiResult<Response> {
    let detail = body.detail();
    let g = recipients::create_group(&st.store, body.value).await?;
    let address = g.primary_address.to_string();
    record(&st, &who, "group.new", &address, detail).await;
    let dir = load(&st).await?;
    Ok(created(
        format!("/api/v1/groups/{}", segment(&address)),
        group_json(&dir, &g),
    ))
}

#[utoipa::path(get, path = "/api/v1/groups/{address}", tag = "organization",
    params(("address" = String, Path)),
    responses((status = 200, body = GroupView), (status = 404, body = ErrorBody)))]
pub async fn get_group(
    State(st): State<AdminState>,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let dir = load(&st).await?;
    let g = recipients::find_group(&dir, &address)?;
    Ok(Json(group_json(&dir, g)))
}

#[utoipa::path(patch, path = "/api/v1/groups/{address}", tag = "organization",
    params(("address" = String, Path)),
    request_body = GroupUpdate,
    responses((status = 200, body = GroupView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_group(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(address): ApiPath<String>,
    body: ApiJson<GroupUpdate>,
) -> ApiResult<Json<serde_json::Value>> {
    let detail = body.detail();
    let g = recipients::update_group(&st.store, &address, body.value).await?;
    record(
        &st,
        &who,
        "group.set",
        &g.primary_address.to_string(),
        detail,
    )
    .await;
    let dir = load(&st).await?;
    Ok(Json(group_json(&dir, &g)))
}

#[utoipa::path(delete, path = "/api/v1/groups/{address}", tag = "organization",
    params(("address" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)))]
pub async fn delete_group(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let g = recipients::remove_group(&st.store, &address).await?;
    record(
        &st,
        &who,
        "group.remove",
        &g.primary_address.to_string(),
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------ contacts

#[utoipa::path(get, path = "/api/v1/contacts", tag = "organization",
    responses((status = 200, body = Vec<MailContact>)))]
pub async fn list_contacts(State(st): State<AdminState>) -> ApiResult<Json<Vec<MailContact>>> {
    Ok(Json(load(&st).await?.contacts().to_vec()))
}

#[utoipa::path(post, path = "/api/v1/contacts", tag = "organization",
    request_body = NewContact,
    responses((status = 201, body = MailContact), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_contact(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    body: ApiJson<NewContact>,
) -> ApiResult<Response> {
    let detail = body.detail();
    let c = recipients::create_contact(&st.store, body.value).await?;
    record(&st, &who, "contact.new", &c.name, detail).await;
    Ok(created(format!("/api/v1/contacts/{}", segment(&c.name)), c))
}

#[utoipa::path(get, path = "/api/v1/contacts/{name}", tag = "organization",
    params(("name" = String, Path, description = "The contact's name or one of its addresses")),
    responses((status = 200, body = MailContact), (status = 404, body = ErrorBody)))]
pub async fn get_contact(
    State(st): State<AdminState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<MailContact>> {
    let dir = load(&st).await?;
    Ok(Json(recipients::find_contact(&dir, &name)?.clone()))
}

#[utoipa::path(patch, path = "/api/v1/contacts/{name}", tag = "organization",
    params(("name" = String, Path)),
    request_body = ContactUpdate,
    responses((status = 200, body = MailContact), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_contact(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
    body: ApiJson<ContactUpdate>,
) -> ApiResult<Json<MailContact>> {
    let detail = body.detail();
    let c = recipients::update_contact(&st.store, &name, body.value).await?;
    record(&st, &who, "contact.set", &c.name, detail).await;
    Ok(Json(c))
}

#[utoipa::path(delete, path = "/api/v1/contacts/{name}", tag = "organization",
    params(("name" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)))]
pub async fn delete_contact(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let c = recipients::remove_contact(&st.store, &name).await?;
    record(&st, &who, "contact.remove", &c.name, None).await;
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------ address policies

#[utoipa::path(get, path = "/api/v1/address-policies", tag = "organization",
    responses((status = 200, body = Vec<AddressPolicy>)))]
pub async fn list_policies(State(st): State<AdminState>) -> ApiResult<Json<Vec<AddressPolicy>>> {
    Ok(Json(load(&st).await?.policies().to_vec()))
}

#[utoipa::path(post, path = "/api/v1/address-policies", tag = "organization",
    request_body = PolicyInput,
    responses((status = 201, body = AddressPolicy), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_policy(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    body: ApiJson<PolicyInput>,
) -> ApiResult<Response> {
    let detail = body.detail();
    let p = policies::create(&st.store, body.value).await?;
    record(&st, &who, "address-policy.new", &p.name, detail).await;
    Ok(created(
        format!("/api/v1/address-policies/{}", segment(&p.name)),
        p,
    ))
}

#[utoipa::path(get, path = "/api/v1/address-policies/{name}", tag = "organization",
    params(("name" = String, Path)),
    responses((status = 200, body = AddressPolicy), (status = 404, body = ErrorBody)))]
pub async fn get_policy(
    State(st): State<AdminState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<AddressPolicy>> {
    let dir = load(&st).await?;
    Ok(Json(policies::find(&dir, &name)?.clone()))
}

#[utoipa::path(patch, path = "/api/v1/address-policies/{name}", tag = "organization",
    params(("name" = String, Path)),
    request_body = PolicyInput,
    responses((status = 200, body = AddressPolicy), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_policy(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
    body: ApiJson<PolicyInput>,
) -> ApiResult<Json<AddressPolicy>> {
    let detail = body.detail();
    let mut input = body.value;
    if !input.name.is_empty() && !input.name.trim().eq_ignore_ascii_case(name.trim()) {
        return Err(ApiError::invalid("name", "a policy cannot be renamed"));
    }
    input.name = name.clone();
    let p = policies::update(&st.store, &name, input).await?;
    record(&st, &who, "address-policy.set", &p.name, detail).await;
    Ok(Json(p))
}

#[utoipa::path(delete, path = "/api/v1/address-policies/{name}", tag = "organization",
    params(("name" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)))]
pub async fn delete_policy(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let p = policies::remove(&st.store, &name).await?;
    record(&st, &who, "address-policy.remove", &p.name, None).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Stamps the policy's addresses onto existing mailboxes.
#[utoipa::path(post, path = "/api/v1/address-policies/{name}/apply", tag = "organization",
    params(("name" = String, Path)),
    responses((status = 200, body = Vec<Stamped>, description = "The addresses added, per mailbox"), (status = 404, body = ErrorBody)))]
pub async fn apply_policy(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Vec<Stamped>>> {
    let report = policies::apply(&st.store, &name).await?;
    record(
        &st,
        &who,
        "address-policy.apply",
        name.trim(),
        Some(format!("{} mailbox(es) got new addresses", report.len())),
    )
    .await;
    Ok(Json(report))
}

// ------------------------------------------------------------ remote domains

#[utoipa::path(get, path = "/api/v1/remote-domains", tag = "organization",
    responses((status = 200, body = Vec<RemoteDomain>)))]
pub async fn list_remote_domains(
    State(st): State<AdminState>,
) -> ApiResult<Json<Vec<RemoteDomain>>> {
    Ok(Json(load(&st).await?.remote_domains().to_vec()))
}

#[utoipa::path(post, path = "/api/v1/remote-domains", tag = "organization",
    request_body(content = RemoteDomainInput, description = "`domain` is required"),
    responses((status = 201, body = RemoteDomain), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_remote_domain(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    body: ApiJson<RemoteDomainInput>,
) -> ApiResult<Response> {
    let detail = body.detail();
    let mut input = body.value;
    let domain = input
        .domain
        .take()
        .ok_or_else(|| ApiError::invalid("domain", "a remote domain needs a domain"))?;
    let d = remote_domains::create(&st.store, &domain, input).await?;
    record(&st, &who, "remote-domain.new", &d.name, detail).await;
    Ok(created(
        format!("/api/v1/remote-domains/{}", segment(&d.name)),
        d,
    ))
}

#[utoipa::path(get, path = "/api/v1/remote-domains/{name}", tag = "organization",
    params(("name" = String, Path, description = "The name or the domain pattern")),
    responses((status = 200, body = RemoteDomain), (status = 404, body = ErrorBody)))]
pub async fn get_remote_domain(
    State(st): State<AdminState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<RemoteDomain>> {
    let dir = load(&st).await?;
    Ok(Json(remote_domains::find(&dir, &name)?.clone()))
}

#[utoipa::path(patch, path = "/api/v1/remote-domains/{name}", tag = "organization",
    params(("name" = String, Path)),
    request_body = RemoteDomainInput,
    responses((status = 200, body = RemoteDomain), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_remote_domain(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
    body: ApiJson<RemoteDomainInput>,
) -> ApiResult<Json<RemoteDomain>> {
    let detail = body.detail();
    let d = remote_domains::update(&st.store, &name, body.value).await?;
    record(&st, &who, "remote-domain.set", &d.name, detail).await;
    Ok(Json(d))
}

#[utoipa::path(delete, path = "/api/v1/remote-domains/{name}", tag = "organization",
    params(("name" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)))]
pub async fn delete_remote_domain(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let d = remote_domains::remove(&st.store, &name).await?;
    record(&st, &who, "remote-domain.remove", &d.name, None).await;
    Ok(StatusCode::NO_CONTENT)
}
