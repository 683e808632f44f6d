//! A tenant's access rules: roles, bindings and service-account credentials, managed by the
//! tenant's administrators (who can never grant more than they hold) or the platform admin.
//! Every change is committed to the store first, then applied to the in-memory index.

use super::{check_id, PageQuery};
use crate::access::Principal;
use crate::authz::{role_def, subject_of, BadRole};
use crate::error::{ApiError, ApiResult, Code};
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tf_authz::SubjectKind;
use tf_store::{BindingRecord, Page, RoleRecord, TokenInfo};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// Required on create; must match the path on update.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: String,
    /// A built-in template (`owner`, `contributor`) supplying permissions and domains.
    #[serde(default)]
    pub template: Option<String>,
    /// `resource:action` patterns, e.g. `workflows:create`, `executions:*`.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Project names or patterns (`*`, `ml-*`) of this tenant.
    pub projects: Vec<String>,
    /// Domain names or patterns.
    #[serde(default)]
    pub domains: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BindingBody {
    pub role: String,
    /// `user`, `group` or `service_account`.
    pub subject_kind: String,
    pub subject: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BindingQuery {
    pub role: Option<String>,
    pub subject_kind: Option<String>,
    pub subject: Option<String>,
    pub limit: Option<u32>,
    pub token: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// Service-account name (unique within the tenant).
    pub service_account: String,
    #[serde(default)]
    pub description: String,
    /// Lifetime such as `90d` or `12h`; default: no expiry.
    #[serde(default)]
    pub expires_in: Option<String>,
}

/// A freshly minted credential; `token` is shown only in this response.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CreatedToken {
    pub token: String,
    #[serde(flatten)]
    pub info: TokenInfo,
}

fn bad_role(e: BadRole) -> ApiError {
    ApiError::invalid(&e.0, e.1)
}

fn subject_kind(field: &str, s: &str) -> ApiResult<SubjectKind> {
    SubjectKind::parse(s)
        .ok_or_else(|| ApiError::invalid(field, format!("`{s}`: expected user, group or service_account")))
}

fn check_subject(s: &str) -> ApiResult<()> {
    if s.is_empty() || s.len() > 256 || s.chars().any(char::is_control) {
        return Err(ApiError::invalid("subject", "1–256 printable characters"));
    }
    Ok(())
}

/// The tenant must exist (admission already checked the caller may act on it).
async fn tenant_exists(s: &AppState, tenant: &str) -> ApiResult<()> {
    check_id("tenant", tenant)?;
    match s.store.platform().get_tenant(tenant).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(format!("tenant `{tenant}` not found"))),
    }
}

fn record(tenant: &str, name: &str, mut b: RoleBody) -> ApiResult<RoleRecord> {
    if let Some(t) = &b.template {
        let Some(tpl) = tf_authz::templates::template(t) else {
            return Err(ApiError::invalid(
                "template",
                format!("unknown template `{t}`; expected owner or contributor"),
            ));
        };
        if !b.permissions.is_empty() {
            return Err(ApiError::invalid("permissions", "give a template or permissions, not both"));
        }
        b.permissions = tpl.permissions.iter().map(|s| s.to_string()).collect();
        if b.domains.is_empty() {
            b.domains = tpl.domains.iter().map(|s| s.to_string()).collect();
        }
        if b.description.is_empty() {
            b.description = tpl.description.to_string();
        }
    }
    Ok(RoleRecord {
        tenant: Some(tenant.to_string()),
        name: name.to_string(),
        description: b.description,
        permissions: b.permissions,
        projects: b.projects,
        domains: b.domains,
        created_at: 0,
        updated_at: 0,
    })
}

/// Stores a role after checking it and that the caller holds everything it grants.
async fn put(s: &AppState, who: &Principal, r: RoleRecord, create_only: bool) -> ApiResult<(StatusCode, Json<Value>)> {
    check_id("name", &r.name)?;
    if r.description.len() > 1024 {
        return Err(ApiError::invalid("description", "at most 1024 characters"));
    }
    let def = role_def(&r).map_err(bad_role)?;
    s.authz.read().holds(&who.caller(), &def).map_err(|e| ApiError::new(Code::PermissionDenied, e))?;
    let roles = s.store.tenant(r.tenant.as_deref().unwrap_or_default());
    let roles = roles.roles();
    if create_only && roles.get_role(&r.name).await?.is_some() {
        return Err(ApiError::new(Code::AlreadyExists, format!("role `{}` already exists", r.name)));
    }
    let status = roles.put_role(&r).await?;
    s.authz.update(|p| p.upsert_role(def));
    if status != "unchanged" {
        s.generation.note_own_write();
    }
    let code = if status == "created" { StatusCode::CREATED } else { StatusCode::OK };
    let stored = roles.get_role(&r.name).await?;
    Ok((code, Json(json!({"status": status, "role": stored}))))
}

pub async fn list_roles(
    State(s): State<AppState>,
    PathParams(tenant): PathParams<String>,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<Json<Page<RoleRecord>>> {
    tenant_exists(&s, &tenant).await?;
    Ok(Json(s.store.tenant(&tenant).roles().list_roles(&q.page()?).await?))
}

pub async fn create_role(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams(tenant): PathParams<String>,
    JsonBody(b): JsonBody<RoleBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    tenant_exists(&s, &tenant).await?;
    let name = b.name.clone().ok_or_else(|| ApiError::invalid("name", "required"))?;
    put(&s, &who, record(&tenant, &name, b)?, true).await
}

pub async fn get_role(
    State(s): State<AppState>,
    PathParams((tenant, role)): PathParams<(String, String)>,
) -> ApiResult<Json<RoleRecord>> {
    tenant_exists(&s, &tenant).await?;
    check_id("role", &role)?;
    s.store
        .tenant(&tenant)
        .roles()
        .get_role(&role)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("role `{role}` not found")))
}

pub async fn put_role(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams((tenant, role)): PathParams<(String, String)>,
    JsonBody(b): JsonBody<RoleBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    tenant_exists(&s, &tenant).await?;
    if b.name.as_deref().is_some_and(|n| n != role) {
        return Err(ApiError::invalid("name", "must match the role in the path"));
    }
    put(&s, &who, record(&tenant, &role, b)?, false).await
}

pub async fn delete_role(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams((tenant, role)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    tenant_exists(&s, &tenant).await?;
    check_id("role", &role)?;
    let roles = s.store.tenant(&tenant);
    let roles = roles.roles();
    let Some(existing) = roles.get_role(&role).await? else {
        return Err(ApiError::not_found(format!("role `{role}` not found")));
    };
    // Removing a role is managing what it grants: the same no-escalation rule applies.
    if let Ok(def) = role_def(&existing) {
        s.authz.read().holds(&who.caller(), &def).map_err(|e| ApiError::new(Code::PermissionDenied, e))?;
    }
    roles.delete_role(&role).await?;
    s.authz.update(|p| p.remove_role(Some(&tenant), &role));
    s.generation.note_own_write();
    Ok(Json(json!({"status": "deleted", "role": role})))
}

pub async fn list_bindings(
    State(s): State<AppState>,
    PathParams(tenant): PathParams<String>,
    QueryParams(q): QueryParams<BindingQuery>,
) -> ApiResult<Json<Page<BindingRecord>>> {
    tenant_exists(&s, &tenant).await?;
    let page = PageQuery { limit: q.limit, token: q.token, tenant: None }.page()?;
    Ok(Json(s.store.tenant(&tenant).roles().list_bindings(q.role.as_deref(), &page).await?))
}

/// Checks that the caller may hand out (or take back) `role`: it exists and they hold it.
async fn bindable(s: &AppState, who: &Principal, tenant: &str, role: &str) -> ApiResult<()> {
    check_id("role", role)?;
    let Some(r) = s.store.tenant(tenant).roles().get_role(role).await? else {
        return Err(ApiError::invalid("role", format!("role `{role}` does not exist in tenant `{tenant}`")));
    };
    let def = role_def(&r).map_err(bad_role)?;
    s.authz.read().holds(&who.caller(), &def).map_err(|e| ApiError::new(Code::PermissionDenied, e))
}

pub async fn create_binding(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams(tenant): PathParams<String>,
    JsonBody(b): JsonBody<BindingBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    tenant_exists(&s, &tenant).await?;
    subject_kind("subject_kind", &b.subject_kind)?;
    check_subject(&b.subject)?;
    bindable(&s, &who, &tenant, &b.role).await?;
    let created = s.store.tenant(&tenant).roles().bind(&b.role, &b.subject_kind, &b.subject, &who.subject).await?;
    let rec = BindingRecord {
        tenant: Some(tenant.clone()),
        role: b.role,
        subject_kind: b.subject_kind,
        subject: b.subject,
        created_at: tf_store::now_ms(),
        created_by: who.subject.clone(),
    };
    s.authz.bind(&rec);
    if created {
        s.generation.note_own_write();
    }
    let code = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((code, Json(json!({"status": if created { "created" } else { "unchanged" }, "binding": rec}))))
}

pub async fn delete_binding(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams(tenant): PathParams<String>,
    QueryParams(q): QueryParams<BindingQuery>,
) -> ApiResult<Json<Value>> {
    tenant_exists(&s, &tenant).await?;
    let role = q.role.ok_or_else(|| ApiError::invalid("role", "required"))?;
    let kind_s = q.subject_kind.ok_or_else(|| ApiError::invalid("subject_kind", "required"))?;
    let kind = subject_kind("subject_kind", &kind_s)?;
    let subject = q.subject.ok_or_else(|| ApiError::invalid("subject", "required"))?;
    bindable(&s, &who, &tenant, &role).await?;
    if !s.store.tenant(&tenant).roles().unbind(&role, &kind_s, &subject).await? {
        return Err(ApiError::not_found("no such binding"));
    }
    s.authz.update(|p| p.unbind(&subject_of(kind, Some(&tenant), &subject), Some(&tenant), &role));
    s.generation.note_own_write();
    Ok(Json(json!({"status": "deleted"})))
}

pub async fn list_tokens(State(s): State<AppState>, PathParams(tenant): PathParams<String>) -> ApiResult<Json<Value>> {
    tenant_exists(&s, &tenant).await?;
    Ok(Json(json!({"items": s.store.platform().list_tokens(&tenant).await?})))
}

pub async fn create_token(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams(tenant): PathParams<String>,
    JsonBody(b): JsonBody<TokenBody>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    tenant_exists(&s, &tenant).await?;
    check_id("service_account", &b.service_account)?;
    let expires_at = match &b.expires_in {
        None => None,
        Some(d) => {
            let d = super::parse_duration(d).map_err(|e| ApiError::invalid("expires_in", e))?;
            Some(tf_store::now_ms() + d.as_millis() as i64)
        }
    };
    let desc = if b.description.is_empty() { format!("created by {}", who.subject) } else { b.description };
    let t = s
        .store
        .platform()
        .create_token("service_account", &b.service_account, Some(&tenant), &desc, expires_at)
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token: t.secret, info: t.info })))
}

pub async fn revoke_token(
    State(s): State<AppState>,
    PathParams((tenant, id)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    tenant_exists(&s, &tenant).await?;
    if !s.store.platform().revoke_tenant_token(&tenant, &id).await? {
        return Err(ApiError::not_found(format!("credential `{id}` not found")));
    }
    s.tokens.evict_id(&id);
    Ok(Json(json!({"status": "revoked", "id": id})))
}

pub async fn templates() -> Json<Value> {
    let items: Vec<Value> = tf_authz::templates::TEMPLATES
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "permissions": t.permissions, "domains": t.domains}))
        .collect();
    Json(json!({"items": items}))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserTokenBody {
    #[serde(default)]
    pub description: String,
    /// Lifetime such as `30d`; default 90 days.
    #[serde(default)]
    pub expires_in: Option<String>,
}

/// Users (signed in through OIDC, or with a user credential) mint credentials for themselves.
/// Such a credential acts with the user's own bindings; group memberships come only with OIDC.
fn user_subject(who: &Principal) -> ApiResult<&str> {
    match who.kind.as_str() {
        "oidc" | "user" => Ok(&who.subject),
        _ => Err(ApiError::new(
            Code::PermissionDenied,
            "only users mint personal credentials; service accounts get theirs from a tenant administrator",
        )),
    }
}

pub async fn my_tokens(State(s): State<AppState>, Extension(who): Extension<Principal>) -> ApiResult<Json<Value>> {
    let subject = user_subject(&who)?;
    Ok(Json(json!({"items": s.store.platform().list_user_tokens(subject).await?})))
}

pub async fn create_my_token(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(b): JsonBody<UserTokenBody>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let subject = user_subject(&who)?.to_string();
    let d = super::parse_duration(b.expires_in.as_deref().unwrap_or("90d"))
        .map_err(|e| ApiError::invalid("expires_in", e))?;
    let expires_at = Some(tf_store::now_ms() + d.as_millis() as i64);
    let desc = if b.description.is_empty() { "personal credential".to_string() } else { b.description };
    let t = s.store.platform().create_token("user", &subject, None, &desc, expires_at).await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token: t.secret, info: t.info })))
}

pub async fn revoke_my_token(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Value>> {
    let subject = user_subject(&who)?;
    if !s.store.platform().revoke_user_token(subject, &id).await? {
        return Err(ApiError::not_found(format!("credential `{id}` not found")));
    }
    s.tokens.evict_id(&id);
    Ok(Json(json!({"status": "revoked", "id": id})))
}
