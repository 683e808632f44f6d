//! Projects: created in a tenant, addressed by a globally unique id, archived rather than deleted.

use super::{check_id, project_scope, PageQuery};
use crate::access::{Action, Principal, Resource};
use crate::error::{ApiError, ApiResult, Code};
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use tf_authz::{Decision, Permission};
use tf_store::{Domain, NewProject, Page, Project, ProjectState, ProjectUpdate};

pub const DEFAULT_DOMAINS: [&str; 3] = ["development", "staging", "production"];
const MAX_LABELS: usize = 64;
const MAX_TEXT: usize = 4096;

/// A domain given as its id, or as `{id, name}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum DomainInput {
    Id(String),
    Full {
        id: String,
        #[serde(default)]
        name: Option<String>,
    },
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Default: development, staging, production.
    #[serde(default)]
    pub domains: Option<Vec<DomainInput>>,
    /// Owning tenant; default: a tenant with the project's id, created if needed.
    #[serde(default)]
    pub tenant: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// The full new list; domains can be added, not removed.
    #[serde(default)]
    pub domains: Option<Vec<DomainInput>>,
    /// `active` or `archived`.
    #[serde(default)]
    pub state: Option<ProjectState>,
}

pub fn check_labels(labels: &BTreeMap<String, String>) -> ApiResult<()> {
    if labels.len() > MAX_LABELS {
        return Err(ApiError::invalid("labels", format!("at most {MAX_LABELS} labels")));
    }
    for (k, v) in labels {
        let ok = !k.is_empty()
            && k.len() <= 63
            && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
        if !ok {
            return Err(ApiError::invalid(
                &format!("labels.{k}"),
                "label keys are 1–63 letters, digits, `-`, `_`, `.` or `/`",
            ));
        }
        if v.len() > 256 {
            return Err(ApiError::invalid(&format!("labels.{k}"), "label values are at most 256 characters"));
        }
    }
    Ok(())
}

fn check_text(field: &str, s: &Option<String>) -> ApiResult<()> {
    match s {
        Some(s) if s.len() > MAX_TEXT => Err(ApiError::invalid(field, format!("at most {MAX_TEXT} characters"))),
        _ => Ok(()),
    }
}

fn domains(input: &[DomainInput]) -> ApiResult<Vec<Domain>> {
    if input.is_empty() {
        return Err(ApiError::invalid("domains", "a project needs at least one domain"));
    }
    let mut out: Vec<Domain> = Vec::with_capacity(input.len());
    for (i, d) in input.iter().enumerate() {
        let (id, name) = match d {
            DomainInput::Id(id) => (id.clone(), None),
            DomainInput::Full { id, name } => (id.clone(), name.clone()),
        };
        check_id(&format!("domains[{i}].id"), &id)?;
        if out.iter().any(|x| x.id == id) {
            return Err(ApiError::invalid(&format!("domains[{i}].id"), format!("duplicate domain `{id}`")));
        }
        out.push(Domain { name: name.unwrap_or_else(|| id.clone()), id });
    }
    Ok(out)
}

pub async fn list(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<Json<Page<Project>>> {
    let page = q.page()?;
    if !who.is_platform_admin() {
        // The visible ids come from the access index; only that page is read from the store.
        let mut ids = s.authz.read().visible_projects(&who.caller());
        if let Some(t) = &q.tenant {
            check_id("tenant", t)?;
            let policy = s.authz.read();
            ids.retain(|p| policy.project_tenant(p) == Some(t.as_str()));
        }
        let after: Option<String> = page.after()?;
        let start = after.map(|a| ids.partition_point(|id| id.as_str() <= a.as_str())).unwrap_or(0);
        let limit = page.limit() as usize;
        let slice: Vec<String> = ids.iter().skip(start).take(limit + 1).cloned().collect();
        let more = slice.len() > limit;
        let items = s.store.platform().projects_by_ids(&slice[..slice.len().min(limit)]).await?;
        let next = if more { items.last().map(|p| p.id.clone()) } else { None };
        return Ok(Json(Page::from_rows_with_key(items, next)));
    }
    let res = match &q.tenant {
        Some(t) => {
            check_id("tenant", t)?;
            s.store.tenant(t).list_projects(&page).await?
        }
        None => s.store.platform().list_all_projects(&page).await?,
    };
    Ok(Json(res))
}

pub async fn create(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(b): JsonBody<CreateProject>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    check_id("id", &b.id)?;
    let tenant = b.tenant.clone().unwrap_or_else(|| b.id.clone());
    tf_store::audit::note(|e| {
        e.tenant = tenant;
        e.project = Some(b.id.clone());
    });
    if !who.is_platform_admin() {
        // A tenant administrator creates projects in their own tenant only.
        let Some(t) = &b.tenant else {
            return Err(ApiError::new(
                Code::PermissionDenied,
                "permission denied: projects:create; tenant administrators name their `tenant`",
            ));
        };
        check_id("tenant", t)?;
        let perm = Permission(Resource::Projects, Action::Create);
        match s.authz.read().decide_tenant(&who.caller(), perm, t) {
            Decision::Allow(_) => {}
            Decision::Deny => return Err(ApiError::new(Code::PermissionDenied, "permission denied: projects:create")),
            Decision::Hide => return Err(ApiError::invalid("tenant", format!("tenant `{t}` does not exist"))),
        }
    }
    check_labels(&b.labels)?;
    check_text("name", &b.name)?;
    check_text("description", &b.description)?;
    let doms = match &b.domains {
        Some(d) => domains(d)?,
        None => DEFAULT_DOMAINS.iter().map(|d| Domain { id: d.to_string(), name: d.to_string() }).collect(),
    };
    let (tenant, auto) = match &b.tenant {
        Some(t) => {
            check_id("tenant", t)?;
            (t.clone(), false)
        }
        None => (b.id.clone(), true),
    };
    let new = NewProject {
        id: b.id.clone(),
        name: b.name.unwrap_or_else(|| b.id.clone()),
        description: b.description.unwrap_or_default(),
        labels: b.labels,
        domains: doms,
    };
    let p = s.store.tenant(&tenant).create_project(&new, auto).await.map_err(|e| match e {
        tf_store::Error::NotFound(_) => ApiError::invalid("tenant", format!("tenant `{tenant}` does not exist")),
        e => e.into(),
    })?;
    super::project_changed(&s, &p);
    Ok((StatusCode::CREATED, Json(p)))
}

pub async fn get(State(s): State<AppState>, PathParams(project): PathParams<String>) -> ApiResult<Json<Project>> {
    Ok(Json(project_scope(&s, &project)?.1))
}

pub async fn update(
    State(s): State<AppState>,
    PathParams(project): PathParams<String>,
    JsonBody(b): JsonBody<UpdateProject>,
) -> ApiResult<Json<Project>> {
    let (scope, _) = project_scope(&s, &project)?;
    if let Some(l) = &b.labels {
        check_labels(l)?;
    }
    check_text("name", &b.name)?;
    check_text("description", &b.description)?;
    let u = ProjectUpdate {
        name: b.name,
        description: b.description,
        labels: b.labels,
        domains: b.domains.as_deref().map(domains).transpose()?,
        state: b.state,
    };
    let p = scope.update_project(&project, &u).await?;
    super::project_changed(&s, &p);
    Ok(Json(p))
}

/// Archives: the project becomes read-only and keeps everything registered in it.
pub async fn archive(State(s): State<AppState>, PathParams(project): PathParams<String>) -> ApiResult<Json<Project>> {
    let (scope, _) = project_scope(&s, &project)?;
    let u = ProjectUpdate { state: Some(ProjectState::Archived), ..Default::default() };
    let p = scope.update_project(&project, &u).await?;
    super::project_changed(&s, &p);
    Ok(Json(p))
}
