//! Execution attributes: get, replace and remove them at project, project-domain, workflow and
//! launch-plan level, and show the effective settings of a run with where each value came from.
//!
//! Invariant: what is stored was checked first — a bad field is a 400 naming it, and nothing is
//! written; a project, domain, workflow or launch plan that does not exist is a 404.

use super::{check_id, domain_scope, project_scope};
use crate::access::Principal;
use crate::error::{ApiError, ApiResult, Code};
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tf_model::{Attributes, Effective, EntityKind, LaunchPlanSpec, Level};
use tf_store::{AttributesRecord, AttributesScope, ProjectState, TenantStore};

/// `PUT` body: the whole set of attributes at this level (fields left out are inherited).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PutAttributes {
    pub attributes: Attributes,
}

/// The attributes at one level; empty when none are set.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AttributesView {
    pub level: String,
    pub project: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub attributes: Attributes,
    pub updated_at: Option<i64>,
    pub updated_by: Option<String>,
    /// `updated` or `unchanged` after a `PUT`; `deleted` or `none` after a `DELETE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<&'static str>,
}

fn view(scope: &AttributesScope, rec: Option<AttributesRecord>, result: Option<&'static str>) -> AttributesView {
    AttributesView {
        level: scope.level.as_str().into(),
        project: scope.project.clone(),
        domain: (!scope.domain.is_empty()).then(|| scope.domain.clone()),
        name: (!scope.name.is_empty()).then(|| scope.name.clone()),
        updated_at: rec.as_ref().map(|r| r.updated_at),
        updated_by: rec.as_ref().map(|r| r.updated_by.clone()),
        attributes: rec.map(|r| r.attributes).unwrap_or_default(),
        result,
    }
}

/// The store handle and scope for a path, after checking that what it names exists.
async fn resolve<'a>(
    s: &'a AppState,
    level: Level,
    project: &str,
    domain: &str,
    name: &str,
) -> ApiResult<(TenantStore<'a>, tf_store::Project, AttributesScope)> {
    let (store, p) =
        if level == Level::Project { project_scope(s, project)? } else { domain_scope(s, project, domain)? };
    let kind = match level {
        Level::Workflow => Some(EntityKind::Workflow),
        Level::LaunchPlan => Some(EntityKind::LaunchPlan),
        _ => None,
    };
    if let Some(kind) = kind {
        let field = if kind == EntityKind::Workflow { "workflow" } else { "launch_plan" };
        check_id(field, name)?;
        if store.get_entity(project, domain, kind, name, None).await?.is_none() {
            return Err(ApiError::not_found(format!(
                "{} `{name}` not found in {project}/{domain}",
                field.replace('_', " ")
            )));
        }
    }
    let scope = AttributesScope { project: project.into(), level, domain: domain.into(), name: name.into() };
    Ok((store, p, scope))
}

async fn get_at(
    s: &AppState,
    level: Level,
    project: &str,
    domain: &str,
    name: &str,
) -> ApiResult<Json<AttributesView>> {
    let (store, _, scope) = resolve(s, level, project, domain, name).await?;
    let rec = store.get_attributes(&scope).await?;
    Ok(Json(view(&scope, rec, None)))
}

async fn put_at(
    s: &AppState,
    who: &Principal,
    level: Level,
    path: (&str, &str, &str),
    body: PutAttributes,
) -> ApiResult<Json<AttributesView>> {
    let (project, domain, name) = path;
    let (store, p, scope) = resolve(s, level, project, domain, name).await?;
    writable(&p)?;
    let errs = body.attributes.check("");
    if let Some(v) = errs.0.first() {
        return Err(ApiError::invalid(&format!("attributes.{}", v.field), &v.message));
    }
    let changed = store.put_attributes(&scope, &body.attributes, &who.subject).await?;
    let rec = store.get_attributes(&scope).await?;
    Ok(Json(view(&scope, rec, Some(if changed { "updated" } else { "unchanged" }))))
}

async fn delete_at(
    s: &AppState,
    level: Level,
    project: &str,
    domain: &str,
    name: &str,
) -> ApiResult<Json<AttributesView>> {
    let (store, p, scope) = resolve(s, level, project, domain, name).await?;
    writable(&p)?;
    let deleted = store.delete_attributes(&scope).await?;
    Ok(Json(view(&scope, None, Some(if deleted { "deleted" } else { "none" }))))
}

fn writable(p: &tf_store::Project) -> ApiResult<()> {
    if p.state == ProjectState::Archived {
        return Err(ApiError::new(Code::ProjectArchived, format!("project `{}` is archived and read-only", p.id)));
    }
    Ok(())
}

pub async fn get_project(
    State(s): State<AppState>,
    PathParams(p): PathParams<String>,
) -> ApiResult<Json<AttributesView>> {
    get_at(&s, Level::Project, &p, "", "").await
}

pub async fn put_project(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams(p): PathParams<String>,
    JsonBody(b): JsonBody<PutAttributes>,
) -> ApiResult<Json<AttributesView>> {
    put_at(&s, &who, Level::Project, (&p, "", ""), b).await
}

pub async fn delete_project(
    State(s): State<AppState>,
    PathParams(p): PathParams<String>,
) -> ApiResult<Json<AttributesView>> {
    delete_at(&s, Level::Project, &p, "", "").await
}

pub async fn get_project_domain(
    State(s): State<AppState>,
    PathParams((p, d)): PathParams<(String, String)>,
) -> ApiResult<Json<AttributesView>> {
    get_at(&s, Level::ProjectDomain, &p, &d, "").await
}

pub async fn put_project_domain(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams((p, d)): PathParams<(String, String)>,
    JsonBody(b): JsonBody<PutAttributes>,
) -> ApiResult<Json<AttributesView>> {
    put_at(&s, &who, Level::ProjectDomain, (&p, &d, ""), b).await
}

pub async fn delete_project_domain(
    State(s): State<AppState>,
    PathParams((p, d)): PathParams<(String, String)>,
) -> ApiResult<Json<AttributesView>> {
    delete_at(&s, Level::ProjectDomain, &p, &d, "").await
}

/// The handlers of a level addressed by project, domain and name.
macro_rules! named_level {
    ($level:expr, $get:ident, $put:ident, $delete:ident) => {
        pub async fn $get(
            State(s): State<AppState>,
            PathParams((p, d, n)): PathParams<(String, String, String)>,
        ) -> ApiResult<Json<AttributesView>> {
            get_at(&s, $level, &p, &d, &n).await
        }

        pub async fn $put(
            State(s): State<AppState>,
            Extension(who): Extension<Principal>,
            PathParams((p, d, n)): PathParams<(String, String, String)>,
            JsonBody(b): JsonBody<PutAttributes>,
        ) -> ApiResult<Json<AttributesView>> {
            put_at(&s, &who, $level, (&p, &d, &n), b).await
        }

        pub async fn $delete(
            State(s): State<AppState>,
            PathParams((p, d, n)): PathParams<(String, String, String)>,
        ) -> ApiResult<Json<AttributesView>> {
            delete_at(&s, $level, &p, &d, &n).await
        }
    };
}

named_level!(Level::Workflow, get_workflow, put_workflow, delete_workflow);
named_level!(Level::LaunchPlan, get_launch_plan, put_launch_plan, delete_launch_plan);

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EffectiveQuery {
    pub workflow: Option<String>,
    /// `name` or `name@version` (default: the latest version); its workflow is used.
    pub launch_plan: Option<String>,
}

/// What a run would get: every level merged, with the source of each value.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EffectiveView {
    pub project: String,
    pub domain: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_plan: Option<String>,
    #[serde(flatten)]
    pub effective: Effective,
}

/// `GET /api/v1/effective_attributes/{project}/{domain}?workflow=&launch_plan=`.
pub async fn effective(
    State(s): State<AppState>,
    PathParams((project, domain)): PathParams<(String, String)>,
    QueryParams(q): QueryParams<EffectiveQuery>,
) -> ApiResult<Json<EffectiveView>> {
    let (store, _) = domain_scope(&s, &project, &domain)?;
    let mut lp: Option<(LaunchPlanSpec, String)> = None;
    let mut workflow = q.workflow.clone();
    if let Some(l) = &q.launch_plan {
        let (name, version) = super::executions::split_ref("launch_plan", l)?;
        let r = tf_engine::plan::resolve_launch_plan(&store, &project, &domain, &name, version.as_deref())
            .await
            .map_err(super::executions::launch_error)?;
        if workflow.as_ref().is_some_and(|w| *w != r.workflow.name) {
            return Err(ApiError::invalid(
                "workflow",
                format!("launch plan `{name}` runs workflow `{}`", r.workflow.name),
            ));
        }
        workflow = Some(r.workflow.name);
        lp = Some((r.spec, r.version));
    }
    if let Some(w) = &workflow {
        check_id("workflow", w)?;
    }
    let eff = tf_engine::plan::effective_attributes(
        &store,
        &project,
        &domain,
        workflow.as_deref().unwrap_or(""),
        lp.as_ref().map(|(s, v)| (s, v.as_str())),
        None,
    )
    .await
    .map_err(super::executions::launch_error)?;
    Ok(Json(EffectiveView {
        project,
        domain,
        workflow,
        launch_plan: lp.map(|(s, v)| format!("{}@{v}", s.name)),
        effective: eff,
    }))
}
