//! Executions: launch (from a launch plan or a workflow), list, get, terminate, relaunch; node
//! executions with their attempts, per-attempt logs, outputs.
//!
//! Launching checks the inputs against the workflow's interface before anything is written;
//! the execution and its nodes are created in one transaction, then handed to the engine.

use super::{check_id, domain_scope};
use crate::access::{admit, Access, Action, Principal, Resource, Target as AccessTarget};
use crate::error::{ApiError, ApiResult, Code};
use crate::extract::{parse_json, Body, JsonBody, PathParams, QueryParams};
use crate::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use tf_authz::{Decision, Permission};
use tf_engine::{Launch, LaunchError, Target};
use tf_store::{
    AttemptRecord, ExecutionFilter, ExecutionKey, ExecutionRecord, NewExecution, NodeRecord, Page, ProjectState,
    TenantStore,
};

/// Largest log returned at once; longer logs are cut from the front (`truncated` header).
const MAX_LOG_BYTES: u64 = 8 * 1024 * 1024;

/// What to launch, inside a project and domain given by the path.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LaunchBody {
    /// Execution name (default: generated).
    #[serde(default)]
    pub name: Option<String>,
    /// `name` or `name@version` (default: latest version).
    #[serde(default)]
    pub launch_plan: Option<String>,
    /// `name` or `name@version`: run a workflow directly, without a launch plan.
    #[serde(default)]
    pub workflow: Option<String>,
    #[serde(default)]
    pub inputs: Map<String, Value>,
    /// Most nodes running at once (default: the attributes' `max_parallelism`, else 25).
    #[serde(default)]
    pub max_parallelism: Option<u32>,
    /// Labels for the execution, over those set by attributes.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Admission priority inside the tenant, -100..=100 (default 0): when the tenant's quota
    /// or the executor is contended, higher goes first, then first come first served.
    #[serde(default)]
    pub priority: i64,
}

/// `POST /api/v1/executions`: the same, with the project and domain in the body. The fields are
/// spelled out rather than flattened from [`LaunchBody`]: serde cannot refuse unknown fields
/// through `flatten`, and a misspelt field must be a 400.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateExecution {
    pub project: String,
    pub domain: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub launch_plan: Option<String>,
    #[serde(default)]
    pub workflow: Option<String>,
    #[serde(default)]
    pub inputs: Map<String, Value>,
    #[serde(default)]
    pub max_parallelism: Option<u32>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub priority: i64,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RelaunchBody {
    /// Name of the new execution (default: generated).
    #[serde(default)]
    pub name: Option<String>,
}

/// An execution with how many of its nodes are in each phase.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ExecutionView {
    #[serde(flatten)]
    pub execution: ExecutionRecord,
    pub duration_ms: Option<i64>,
    pub node_phases: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct NodeView {
    #[serde(flatten)]
    pub node: NodeRecord,
    pub duration_ms: Option<i64>,
    pub attempts: Vec<AttemptView>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AttemptView {
    #[serde(flatten)]
    pub attempt: AttemptRecord,
    pub duration_ms: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct OutputsView {
    pub phase: String,
    pub outputs: Option<Value>,
    pub error: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub phase: Option<String>,
    pub launch_plan: Option<String>,
    pub workflow: Option<String>,
    pub user: Option<String>,
    /// Created at or after: RFC 3339 or milliseconds since the epoch.
    pub since: Option<String>,
    /// Created before.
    pub until: Option<String>,
    pub limit: Option<u32>,
    pub token: Option<String>,
}

const PHASES: &[&str] = &["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "ABORTED", "TIMED_OUT"];

fn generated_name() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let tail: String = (0..19).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    format!("f{tail}")
}

/// `name` or `name@version`, checked; errors name `field`.
pub(crate) fn split_ref(field: &str, s: &str) -> ApiResult<(String, Option<String>)> {
    let (name, version) = tf_model::compile::split_ref(s);
    check_id(field, name)?;
    if let Some(v) = version {
        if v.is_empty() {
            return Err(ApiError::invalid(field, "expected `name` or `name@version`"));
        }
    }
    Ok((name.to_string(), version.map(str::to_string)))
}

fn target(launch_plan: &Option<String>, workflow: &Option<String>) -> ApiResult<Target> {
    let split = split_ref;
    match (launch_plan, workflow) {
        (Some(lp), None) => {
            let (name, version) = split("launch_plan", lp)?;
            Ok(Target::LaunchPlan { name, version })
        }
        (None, Some(wf)) => {
            let (name, version) = split("workflow", wf)?;
            Ok(Target::Workflow { name, version })
        }
        (Some(_), Some(_)) => {
            Err(ApiError::invalid("launch_plan", "give either `launch_plan` or `workflow`, not both"))
        }
        (None, None) => Err(ApiError::invalid("launch_plan", "required: the launch plan (or `workflow`) to run")),
    }
}

pub(crate) fn launch_error(e: LaunchError) -> ApiError {
    match e {
        LaunchError::Invalid { field, message } => ApiError::invalid(&field, message),
        LaunchError::NotFound(m) => ApiError::not_found(m),
        LaunchError::Conflict(m) => ApiError::new(Code::AlreadyExists, m),
        LaunchError::Refused(m) => ApiError::new(Code::Conflict, m),
        LaunchError::Store(m) => {
            tracing::error!(error = %m, "launch failed");
            ApiError::internal()
        }
    }
}

fn duration(start: Option<i64>, end: Option<i64>) -> Option<i64> {
    Some(end? - start?)
}

async fn view(scope: &TenantStore<'_>, e: ExecutionRecord) -> ApiResult<ExecutionView> {
    let key = ExecutionKey { project: e.project.clone(), domain: e.domain.clone(), name: e.name.clone() };
    let node_phases = scope.node_phase_counts(&key).await?.into_iter().collect();
    Ok(ExecutionView { duration_ms: duration(e.started_at, e.finished_at), execution: e, node_phases })
}

async fn launch(
    s: &AppState,
    who: &Principal,
    project: &str,
    domain: &str,
    b: LaunchBody,
) -> ApiResult<(StatusCode, Json<ExecutionView>)> {
    let (scope, p) = domain_scope(s, project, domain)?;
    if p.state == ProjectState::Archived {
        return Err(ApiError::new(Code::ProjectArchived, format!("project `{project}` is archived and read-only")));
    }
    let name = match b.name {
        Some(n) => {
            check_id("name", &n)?;
            n
        }
        None => generated_name(),
    };
    let l = Launch {
        key: ExecutionKey { project: project.into(), domain: domain.into(), name },
        target: target(&b.launch_plan, &b.workflow)?,
        inputs: b.inputs,
        created_by: who.subject.clone(),
        max_parallelism: b.max_parallelism,
        labels: b.labels,
        relaunch_of: None,
        scheduled_at: None,
        priority: b.priority,
    };
    let e = s.engine.launch(&scope, &l).await.map_err(launch_error)?;
    created(&scope, e).await
}

async fn created(scope: &TenantStore<'_>, e: ExecutionRecord) -> ApiResult<(StatusCode, Json<ExecutionView>)> {
    let v = view(scope, e).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// `POST /api/v1/executions/{project}/{domain}`.
pub async fn create_in(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams((project, domain)): PathParams<(String, String)>,
    JsonBody(b): JsonBody<LaunchBody>,
) -> ApiResult<(StatusCode, Json<ExecutionView>)> {
    launch(&s, &who, &project, &domain, b).await
}

/// `POST /api/v1/executions`: admission happens here, once the body names the project.
pub async fn create_flat(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(b): JsonBody<CreateExecution>,
) -> ApiResult<(StatusCode, Json<ExecutionView>)> {
    check_id("project", &b.project)?;
    check_id("domain", &b.domain)?;
    let owner = s.directory.get(&b.project).map(|p| p.tenant.clone());
    tf_store::audit::note(|e| {
        e.tenant = owner.unwrap_or_default();
        e.project = Some(b.project.clone());
        e.domain = Some(b.domain.clone());
    });
    let perm = Permission(Resource::Executions, Action::Execute);
    let t = AccessTarget { project: Some(&b.project), domain: Some(&b.domain), tenant: None };
    match admit(&s.authz.read(), &who, Access::Project(perm), &t) {
        Decision::Allow(_) => {}
        Decision::Deny => {
            return Err(ApiError::new(Code::PermissionDenied, format!("permission denied: {perm}"))
                .with_details(serde_json::json!({"admission": true, "permission": perm})))
        }
        Decision::Hide => {
            return Err(ApiError::not_found("not found").with_details(serde_json::json!({"admission": true})))
        }
    }
    let body = LaunchBody {
        name: b.name,
        launch_plan: b.launch_plan,
        workflow: b.workflow,
        inputs: b.inputs,
        max_parallelism: b.max_parallelism,
        labels: b.labels,
        priority: b.priority,
    };
    launch(&s, &who, &b.project, &b.domain, body).await
}

pub(crate) fn time_param(field: &str, v: &Option<String>) -> ApiResult<Option<i64>> {
    let Some(v) = v else { return Ok(None) };
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(Some(ms));
    }
    humantime::parse_rfc3339_weak(v)
        .map(|t| t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0))
        .map(Some)
        .map_err(|_| ApiError::invalid(field, format!("expected RFC 3339 time or epoch milliseconds, got `{v}`")))
}

pub async fn list(
    State(s): State<AppState>,
    PathParams((project, domain)): PathParams<(String, String)>,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<Page<ExecutionRecord>>> {
    let (scope, _) = domain_scope(&s, &project, &domain)?;
    if let Some(p) = &q.phase {
        if !PHASES.contains(&p.as_str()) {
            return Err(ApiError::invalid("phase", format!("expected one of {}", PHASES.join(", "))));
        }
    }
    let page = super::PageQuery { limit: q.limit, token: q.token.clone(), tenant: None }.page()?;
    let f = ExecutionFilter {
        phase: q.phase.clone(),
        launch_plan: q.launch_plan.clone(),
        workflow: q.workflow.clone(),
        created_by: q.user.clone(),
        since: time_param("since", &q.since)?,
        until: time_param("until", &q.until)?,
    };
    Ok(Json(scope.list_executions(&project, &domain, &f, &page).await?))
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("execution `{name}` not found"))
}

async fn execution<'a>(
    s: &'a AppState,
    project: &str,
    domain: &str,
    name: &str,
) -> ApiResult<(TenantStore<'a>, ExecutionKey, ExecutionRecord)> {
    let (scope, _) = domain_scope(s, project, domain)?;
    check_id("name", name)?;
    let key = ExecutionKey { project: project.into(), domain: domain.into(), name: name.into() };
    let e = scope.get_execution(&key).await?.ok_or_else(|| not_found(name))?;
    Ok((scope, key, e))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    /// Wait up to this many seconds (at most 60) for the execution to finish.
    pub wait: Option<u64>,
}

pub async fn get(
    State(s): State<AppState>,
    PathParams((project, domain, name)): PathParams<(String, String, String)>,
    QueryParams(q): QueryParams<GetQuery>,
) -> ApiResult<Json<ExecutionView>> {
    let (scope, key, mut e) = execution(&s, &project, &domain, &name).await?;
    if let Some(secs) = q.wait {
        if secs > 60 {
            return Err(ApiError::invalid("wait", format!("at most 60 seconds, got {secs}")));
        }
        if e.finished_at.is_none() {
            let done = || async { matches!(scope.get_execution(&key).await, Ok(Some(x)) if x.finished_at.is_some()) };
            s.engine.wait_until(scope.tenant_id(), &key, std::time::Duration::from_secs(secs), done).await;
            e = scope.get_execution(&key).await?.ok_or_else(|| not_found(&name))?;
        }
    }
    Ok(Json(view(&scope, e).await?))
}

/// Terminates: recorded first (a restart still honours it), then running attempts are killed.
pub async fn terminate(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams((project, domain, name)): PathParams<(String, String, String)>,
) -> ApiResult<(StatusCode, Json<ExecutionView>)> {
    let (scope, key, e) = execution(&s, &project, &domain, &name).await?;
    if !scope.request_abort(&key, &who.subject).await? {
        return Err(ApiError::new(Code::Conflict, format!("execution `{name}` has already finished ({})", e.phase)));
    }
    s.engine.terminate(scope.tenant_id(), &key, &who.subject);
    let e = scope.get_execution(&key).await?.ok_or_else(|| not_found(&name))?;
    Ok((StatusCode::ACCEPTED, Json(view(&scope, e).await?)))
}

/// Runs the same workflow version with the same inputs again.
pub async fn relaunch(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams((project, domain, name)): PathParams<(String, String, String)>,
    Body(body): Body,
) -> ApiResult<(StatusCode, Json<ExecutionView>)> {
    let b: RelaunchBody =
        if body.iter().all(u8::is_ascii_whitespace) { RelaunchBody::default() } else { parse_json(&body)? };
    let (scope, key, e) = execution(&s, &project, &domain, &name).await?;
    let new_name = match b.name {
        Some(n) => {
            check_id("name", &n)?;
            n
        }
        None => generated_name(),
    };
    let nodes = scope.node_executions(&key).await?.into_iter().map(|n| n.node).collect();
    let new = NewExecution {
        key: ExecutionKey { name: new_name, ..key },
        launch_plan: e.launch_plan,
        workflow_name: e.workflow_name,
        workflow_version: e.workflow_version,
        inputs: e.inputs,
        nodes,
        created_by: who.subject.clone(),
        relaunch_of: Some(e.name),
        max_parallelism: e.max_parallelism,
        config: e.config,
    };
    let e = s.engine.create(&scope, new).await.map_err(launch_error)?;
    created(&scope, e).await
}

pub async fn nodes(
    State(s): State<AppState>,
    PathParams((project, domain, name)): PathParams<(String, String, String)>,
) -> ApiResult<Json<Vec<NodeView>>> {
    let (scope, key, _) = execution(&s, &project, &domain, &name).await?;
    let nodes = scope.node_executions(&key).await?;
    let mut attempts: std::collections::HashMap<String, Vec<AttemptView>> = std::collections::HashMap::new();
    for a in scope.execution_attempts(&key).await? {
        let d = duration(Some(a.started_at), a.finished_at);
        attempts.entry(a.node.clone()).or_default().push(AttemptView { attempt: a, duration_ms: d });
    }
    Ok(Json(
        nodes
            .into_iter()
            .map(|n| NodeView {
                duration_ms: duration(n.started_at, n.finished_at),
                attempts: attempts.remove(&n.node).unwrap_or_default(),
                node: n,
            })
            .collect(),
    ))
}

pub async fn outputs(
    State(s): State<AppState>,
    PathParams((project, domain, name)): PathParams<(String, String, String)>,
) -> ApiResult<Json<OutputsView>> {
    let (_, _, e) = execution(&s, &project, &domain, &name).await?;
    Ok(Json(OutputsView { phase: e.phase, outputs: e.outputs, error: e.error }))
}

/// An attempt's log as text: live while it runs, from blob storage once it has ended.
pub async fn logs(
    State(s): State<AppState>,
    PathParams((project, domain, name, node, attempt)): PathParams<(String, String, String, String, String)>,
) -> ApiResult<Response> {
    let (scope, key, _) = execution(&s, &project, &domain, &name).await?;
    let n: u32 = attempt.parse().map_err(|_| ApiError::invalid("attempt", "expected an attempt number (1, 2, …)"))?;
    let a = scope
        .attempts(&key, &node)
        .await?
        .into_iter()
        .find(|a| a.attempt == n as i64)
        .ok_or_else(|| ApiError::not_found(format!("attempt {n} of node `{node}` not found")))?;
    let bytes = if a.phase == "RUNNING" {
        let path = s.engine.live_log(scope.tenant_id(), &key, &node, n);
        tokio::fs::read(&path).await.unwrap_or_default()
    } else {
        match s.engine.blobs().get_bytes(&a.log_path).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, log = %a.log_path, "attempt log unavailable");
                return Err(ApiError::not_found(format!("the log of attempt {n} of node `{node}` is not available")));
            }
        }
    };
    let start = (bytes.len() as u64).saturating_sub(MAX_LOG_BYTES) as usize;
    let mut res = bytes[start..].to_vec().into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    if start > 0 {
        res.headers_mut().insert("x-tenantflow-truncated", header::HeaderValue::from_static("true"));
    }
    Ok(res)
}
