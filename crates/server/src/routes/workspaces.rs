//! Workspaces as a workspace service drives them: declare (create or update), replace the
//! members, read desired against actual, retire; the seed's `/workspace/{id}/…` paths as
//! aliases; a reconciliation pass on demand; and the platform service accounts such a service
//! signs in with (holding only the platform permissions they were given, e.g. `workspaces:*`).

use super::PageQuery;
use crate::access::Principal;
use crate::error::{ApiError, ApiResult, Code};
use crate::extract::{Body, JsonBody, PathParams, QueryParams};
use crate::workspaces::{self, canonical, converge_id, reconciler, retire, ConvergeError};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tf_authz::PermSet;
use tf_model::workspace::{Member, WorkspaceSpec};
use tf_store::{Page, TokenInfo, WorkspaceObservation, WorkspaceRecord};

/// A workspace: what was declared, what exists, and how far convergence got.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WorkspaceView {
    pub id: String,
    pub name: String,
    /// `provisioning`, `ready`, `failed` (retried by the reconciler; see `last_error`) or
    /// `deleting` (see `phase`).
    pub status: String,
    pub generation: i64,
    pub observed_generation: i64,
    pub last_error: Option<String>,
    /// While retiring: `revoked`, `aborted`, `exported`, `retained`.
    pub phase: Option<String>,
    pub deleted_at: Option<i64>,
    pub purge_after: Option<i64>,
    /// While retiring: where the export is kept until `purge_after`.
    pub export: Option<String>,
    pub desired: Value,
    pub actual: ActualView,
    /// The project's API resource and, when configured, its console page.
    pub links: Value,
    /// Events not yet delivered to the webhook.
    pub pending_events: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ActualView {
    pub tenant: Option<Value>,
    pub project: Option<Value>,
    /// Members as bound now, by e-mail.
    pub members: Vec<MemberView>,
    pub quota: Option<Value>,
    /// Whether what exists matches the declaration.
    pub in_sync: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct MemberView {
    pub email: String,
    pub role: String,
}

fn view(s: &AppState, obs: &WorkspaceObservation, pending_events: i64) -> WorkspaceView {
    let rec = &obs.record;
    let o = &obs.observed;
    let spec: Option<WorkspaceSpec> = serde_json::from_value(rec.spec.clone()).ok();
    let in_sync = rec.state == "active"
        && spec
            .clone()
            .and_then(|sp| canonical(sp).ok())
            .is_some_and(|sp| tf_model::workspace::plan(&rec.id, &sp, o, &workspaces::templates()).is_empty());
    let status = match (rec.state.as_str(), rec.observed_generation >= rec.generation, &rec.last_error) {
        ("active", true, _) => "ready",
        ("active", false, Some(_)) => "failed",
        ("active", false, None) => "provisioning",
        _ => "deleting",
    };
    let retiring = rec.state != "active";
    WorkspaceView {
        id: rec.id.clone(),
        name: spec.as_ref().map(|sp| sp.name.clone()).unwrap_or_default(),
        status: status.into(),
        generation: rec.generation,
        observed_generation: rec.observed_generation,
        last_error: rec.last_error.clone(),
        phase: rec.phase.clone(),
        deleted_at: rec.deleted_at,
        purge_after: rec.purge_after,
        export: retiring.then(|| s.engine.blobs().uri(&retire::export_prefix(rec))),
        desired: rec.spec.clone(),
        actual: ActualView {
            tenant: o.tenant.as_ref().map(|(name, tier)| json!({"name": name, "tier": tier})),
            project: o.project.as_ref().map(|(name, domains)| json!({"id": rec.id, "name": name, "domains": domains})),
            members: {
                let mut m: Vec<MemberView> = o
                    .bindings
                    .iter()
                    .map(|(role, email)| MemberView { email: email.clone(), role: role.clone() })
                    .collect();
                m.sort_by(|a, b| (&a.email, &a.role).cmp(&(&b.email, &b.role)));
                m
            },
            quota: o.quota.clone(),
            in_sync,
        },
        links: s.workspaces.links(&rec.id),
        pending_events,
        created_at: rec.created_at,
        updated_at: rec.updated_at,
    }
}

async fn current(s: &AppState, id: &str) -> ApiResult<WorkspaceView> {
    let obs = s
        .store
        .platform()
        .observe_workspace(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("workspace `{id}` not found")))?;
    let pending = s.store.platform().pending_workspace_events(id).await?;
    Ok(view(s, &obs, pending))
}

/// Refuses a declaration that can never converge: the id is another tenant's project or a
/// tenant that is not a workspace.
async fn check_free(s: &AppState, id: &str) -> ApiResult<()> {
    if let Some(p) = s.directory.get(id) {
        if p.tenant != id {
            return Err(ApiError::new(Code::Conflict, format!("project id `{id}` is already taken by another tenant")));
        }
    }
    if s.store.platform().get_workspace(id).await?.is_none() && s.store.platform().get_tenant(id).await?.is_some() {
        return Err(ApiError::new(Code::Conflict, format!("tenant `{id}` exists and is not a workspace")));
    }
    Ok(())
}

/// Declares `spec` for workspace `id` and converges it now; the reconciler retries on failure.
async fn declare(s: &AppState, id: &str, spec: WorkspaceSpec) -> ApiResult<(StatusCode, Json<WorkspaceView>)> {
    super::check_id("workspace", id)?;
    tf_store::audit::note(|e| {
        e.tenant = id.to_string();
        e.project = Some(id.to_string());
    });
    let v = spec.check(id);
    if !v.is_empty() {
        return Err(v.into());
    }
    canonical(spec.clone())?;
    check_free(s, id).await?;
    let value = serde_json::to_value(&spec).map_err(|_| ApiError::internal())?;
    let (rec, changed) = s.store.platform().declare_workspace(id, &value).await?;
    let code = match converge_id(s, id).await {
        Ok(_) if changed && rec.generation == 1 => StatusCode::CREATED,
        Ok(_) => StatusCode::OK,
        Err(ConvergeError::Store(e)) => {
            // Declared durably; the reconciler finishes the job and the status says why not yet.
            tracing::warn!(workspace = id, error = %e, "workspace convergence failed; the reconciler retries");
            s.workspaces.kick.notify_one();
            StatusCode::ACCEPTED
        }
        Err(ConvergeError::Invalid(m)) => return Err(ApiError::invalid("spec", m)),
    };
    Ok((code, Json(current(s, id).await?)))
}

pub async fn put(
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(spec): JsonBody<WorkspaceSpec>,
) -> ApiResult<(StatusCode, Json<WorkspaceView>)> {
    declare(&s, &id, spec).await
}

pub async fn get(State(s): State<AppState>, PathParams(id): PathParams<String>) -> ApiResult<Json<WorkspaceView>> {
    super::check_id("workspace", &id)?;
    Ok(Json(current(&s, &id).await?))
}

pub async fn list(
    State(s): State<AppState>,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<Json<Page<WorkspaceRecord>>> {
    Ok(Json(s.store.platform().list_workspaces(&q.page()?).await?))
}

/// The member set: `{"members": [...]}` or, as the seed sends it, a bare list. (Documents the
/// body; [`parse_members`] reads it, naming the offending field.)
#[derive(Debug, JsonSchema)]
#[allow(dead_code)]
#[serde(untagged)]
pub enum MembersBody {
    Wrapped { members: Vec<Member> },
    List(Vec<Member>),
}

fn parse_members(body: &[u8]) -> ApiResult<Vec<Member>> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ApiError::invalid("body", format!("not JSON: {e}")))?;
    let list = match v {
        Value::Array(_) => v,
        Value::Object(mut o) if o.len() == 1 && o.contains_key("members") => o.remove("members").unwrap_or_default(),
        _ => return Err(ApiError::invalid("members", "expected `{\"members\": [...]}` or a list of members")),
    };
    let members: Vec<Member> = serde_path_to_error::deserialize(list).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid(&if path == "." { "members".to_string() } else { format!("members{path}") }, e.inner())
    })?;
    Ok(members)
}

/// Replaces the member set; a removed member loses access with this response.
pub async fn put_members(
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    Body(body): Body,
) -> ApiResult<(StatusCode, Json<WorkspaceView>)> {
    super::check_id("workspace", &id)?;
    let members = parse_members(&body)?;
    let rec = s
        .store
        .platform()
        .get_workspace(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("workspace `{id}` not found")))?;
    let mut spec: WorkspaceSpec = serde_json::from_value(rec.spec).map_err(|_| ApiError::internal())?;
    spec.members = members;
    let (code, view) = declare(&s, &id, spec).await?;
    Ok((if code == StatusCode::CREATED { StatusCode::OK } else { code }, view))
}

pub async fn get_members(State(s): State<AppState>, PathParams(id): PathParams<String>) -> ApiResult<Json<Value>> {
    super::check_id("workspace", &id)?;
    let v = current(&s, &id).await?;
    Ok(Json(json!({"desired": v.desired["members"], "actual": v.actual.members, "in_sync": v.actual.in_sync})))
}

/// Retires the workspace: access is gone when this answers; the rest follows in the background.
pub async fn delete(
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<(StatusCode, Json<WorkspaceView>)> {
    super::check_id("workspace", &id)?;
    if retire::start(&s, &id).await?.is_none() {
        return Err(ApiError::not_found(format!("workspace `{id}` not found")));
    }
    Ok((StatusCode::ACCEPTED, Json(current(&s, &id).await?)))
}

/// The seed's `WorkspaceConfig`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeedWorkspaceConfig {
    /// Must match the path when given.
    #[serde(default)]
    pub workspace_id: Option<String>,
    pub workspace_name: String,
    #[serde(default)]
    pub users: Vec<Member>,
    #[serde(default)]
    pub data_bucket: Option<String>,
    /// `quota`, `tier` and `domains` are honoured; other keys are kept with the declaration.
    #[serde(default)]
    pub service_config: serde_json::Map<String, Value>,
}

/// `POST /workspace/{id}/services/flyte`: the seed's provisioning call.
pub async fn seed_provision(
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(c): JsonBody<SeedWorkspaceConfig>,
) -> ApiResult<(StatusCode, Json<WorkspaceView>)> {
    if c.workspace_id.as_deref().is_some_and(|w| w != id) {
        return Err(ApiError::invalid("workspace_id", "must match the workspace in the path"));
    }
    let field = |k: &str| c.service_config.get(k).cloned();
    let spec = WorkspaceSpec {
        name: c.workspace_name,
        members: c.users,
        data_location: c.data_bucket,
        tier: match field("tier") {
            Some(Value::String(t)) => Some(t),
            Some(_) => return Err(ApiError::invalid("service_config.tier", "expected a string")),
            None => None,
        },
        quota: field("quota"),
        domains: match field("domains") {
            Some(v) => Some(
                serde_json::from_value(v)
                    .map_err(|_| ApiError::invalid("service_config.domains", "expected a list of domain names"))?,
            ),
            None => None,
        },
    };
    declare(&s, &id, spec).await
}

/// `PUT /workspace/{id}/users`: the seed's membership call (a bare list of users).
pub async fn seed_users(
    state: State<AppState>,
    id: PathParams<String>,
    body: Body,
) -> ApiResult<(StatusCode, Json<WorkspaceView>)> {
    put_members(state, id, body).await
}

/// Runs a reconciliation pass now and reports it.
pub async fn reconcile(State(s): State<AppState>) -> ApiResult<Json<reconciler::PassReport>> {
    Ok(Json(reconciler::pass(&s).await))
}

/// The last pass's report.
pub async fn last_pass(State(s): State<AppState>) -> ApiResult<Json<Option<reconciler::PassReport>>> {
    Ok(Json(s.workspaces.last_pass.lock().unwrap_or_else(|e| e.into_inner()).clone()))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountBody {
    /// A name for the account, e.g. `workspace-service`.
    pub name: String,
    /// Platform permissions it holds, e.g. `["workspaces:*"]`; nothing else is allowed to it.
    pub permissions: Vec<String>,
    #[serde(default)]
    pub description: String,
    /// Lifetime such as `90d`; default: no expiry.
    #[serde(default)]
    pub expires_in: Option<String>,
}

/// Mints a platform service account's credential; the caller must hold what it grants.
pub async fn create_service_account(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(b): JsonBody<ServiceAccountBody>,
) -> ApiResult<(StatusCode, Json<super::rbac::CreatedToken>)> {
    super::check_id("name", &b.name)?;
    if b.permissions.is_empty() {
        return Err(ApiError::invalid("permissions", "list at least one, e.g. `workspaces:*`"));
    }
    let set =
        PermSet::parse_all(&b.permissions).map_err(|(i, e)| ApiError::invalid(&format!("permissions[{i}]"), e))?;
    if !who.is_platform_admin() && !set.is_subset(who.platform_permissions) {
        return Err(ApiError::new(
            Code::PermissionDenied,
            "cannot grant platform permissions the caller does not hold",
        ));
    }
    if b.description.len() > 1024 {
        return Err(ApiError::invalid("description", "at most 1024 characters"));
    }
    let expires_at = match &b.expires_in {
        Some(d) => Some(
            tf_store::now_ms()
                + super::parse_duration(d).map_err(|e| ApiError::invalid("expires_in", e))?.as_millis() as i64,
        ),
        None => None,
    };
    let t =
        s.store.platform().create_platform_service_account(&b.name, &b.permissions, &b.description, expires_at).await?;
    Ok((StatusCode::CREATED, Json(super::rbac::CreatedToken { token: t.secret, info: t.info })))
}

pub async fn list_service_accounts(State(s): State<AppState>) -> ApiResult<Json<Vec<TokenInfo>>> {
    Ok(Json(s.store.platform().list_platform_service_accounts().await?))
}

pub async fn revoke_service_account(
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<StatusCode> {
    if !s.store.platform().revoke_platform_service_account(&id).await? {
        return Err(ApiError::not_found(format!("service account credential `{id}` not found")));
    }
    s.tokens.evict_id(&id);
    Ok(StatusCode::NO_CONTENT)
}
