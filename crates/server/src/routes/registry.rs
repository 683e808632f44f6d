//! Registration and read-back of versioned tasks, workflows and launch plans.
//!
//! A bundle registers atomically: it is parsed and compiled in full (pure, no store writes),
//! then written in one transaction in which every entity is new or identical.

use super::{domain_scope, PageQuery};
use crate::access::Principal;
use crate::error::{ApiError, ApiResult, Code};
use crate::extract::{Body, PathParams, QueryParams};
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use tf_model::compile::{external_refs, Interface, Resolved};
use tf_model::{compile_bundle, parse_bundle, EntityKind};
use tf_store::{EntityRecord, Page, ProjectState, RegisterOutcome};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RegisterQuery {
    pub version: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RegisterResponse {
    pub project: String,
    pub domain: String,
    pub version: String,
    pub entities: Vec<RegisterOutcome>,
}

const BUNDLE_TYPES: &[&str] =
    &["application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "application/json", "text/plain"];

pub async fn register(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams((project, domain)): PathParams<(String, String)>,
    QueryParams(q): QueryParams<RegisterQuery>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<(StatusCode, Json<RegisterResponse>)> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if !BUNDLE_TYPES.contains(&ct.as_str()) {
            return Err(ApiError::new(
                Code::UnsupportedMediaType,
                format!(
                    "expected a YAML or JSON bundle (Content-Type application/yaml or application/json), got `{ct}`"
                ),
            ));
        }
    }
    let (scope, p) = domain_scope(&s, &project, &domain)?;
    if p.state == ProjectState::Archived {
        return Err(ApiError::new(Code::ProjectArchived, format!("project `{project}` is archived and read-only")));
    }
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::invalid("body", "the bundle is not valid UTF-8"))?;
    let bundle = parse_bundle(text)?;
    // The route needs workflows:create; launch plans need their own permission too.
    if bundle.documents.iter().any(|d| d.spec.kind() == EntityKind::LaunchPlan) {
        let perm = tf_authz::Permission(tf_authz::Resource::Launchplans, tf_authz::Action::Create);
        if !s.authz.read().decide(&who.caller(), perm, &project, Some(&domain)).is_allowed() {
            return Err(ApiError::new(
                Code::PermissionDenied,
                format!("permission denied: {perm} (the bundle holds launch plans)"),
            ));
        }
    }
    let version = match (q.version, bundle.version.clone()) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::invalid("version", format!("the query says `{a}` but the bundle says `{b}`")))
        }
        (Some(v), _) | (None, Some(v)) => v,
        (None, None) => {
            return Err(ApiError::invalid("version", "required: pass `?version=V` or a `version` in the bundle"))
        }
    };
    let mut lookup: HashMap<(EntityKind, String, Option<String>), Resolved> = HashMap::new();
    for (kind, name, v) in external_refs(&bundle, &version) {
        if tf_model::names::check_id(&name).is_err()
            || v.as_deref().is_some_and(|v| tf_model::names::check_version(v).is_err())
        {
            continue; // compile names the bad reference
        }
        if let Some(rec) = scope.get_entity(&project, &domain, kind, &name, v.as_deref()).await? {
            let interface: Interface = serde_json::from_value(rec.interface).map_err(|e| {
                tracing::error!(error = %e, entity = %name, "stored interface unreadable");
                ApiError::internal()
            })?;
            lookup.insert((kind, name, v), Resolved { version: rec.version, interface });
        }
    }
    let compiled = compile_bundle(&bundle, &version, &lookup)?;
    let entities = scope.register(&project, &domain, &compiled, &who.subject).await?;
    if entities.iter().any(|e| e.status == "created") {
        s.listings.bump_local();
    }
    let status = if entities.iter().any(|e| e.status == "created") { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(RegisterResponse { project, domain, version, entities })))
}

/// `GET /api/v1/{kind}/{project}/{domain}`: names with their latest version.
pub async fn list(
    kind: EntityKind,
    s: AppState,
    (project, domain): (String, String),
    q: PageQuery,
) -> ApiResult<Json<Arc<serde_json::Value>>> {
    let (scope, p) = domain_scope(&s, &project, &domain)?;
    let page = q.page()?;
    let key =
        (p.tenant.clone(), project.clone(), domain.clone(), kind.storage_name(), page.limit(), page.token.clone());
    if let Some(hit) = s.listings.get(&key) {
        return Ok(Json(hit));
    }
    let at = s.listings.generation();
    let listing =
        Arc::new(serde_json::to_value(scope.list_entities(&project, &domain, kind, &page).await?).map_err(|e| {
            tracing::error!(error = %e, "listing does not serialise");
            ApiError::internal()
        })?);
    s.listings.put(key, at, listing.clone());
    Ok(Json(listing))
}

/// `GET /api/v1/{kind}/{project}/{domain}/{name}`: versions, newest first.
pub async fn versions(
    kind: EntityKind,
    s: AppState,
    (project, domain, name): (String, String, String),
    q: PageQuery,
) -> ApiResult<Json<Page<EntityRecord>>> {
    let (scope, _) = domain_scope(&s, &project, &domain)?;
    super::check_id("name", &name)?;
    let page = scope.list_versions(&project, &domain, kind, &name, &q.page()?).await?;
    if page.items.is_empty() && q.token.is_none() {
        return Err(ApiError::not_found(format!("{} `{name}` not found in {project}/{domain}", kind.as_str())));
    }
    Ok(Json(page))
}

/// `GET /api/v1/{kind}/{project}/{domain}/{name}/{version}`.
pub async fn get(
    kind: EntityKind,
    s: AppState,
    (project, domain, name, version): (String, String, String, String),
) -> ApiResult<Json<EntityRecord>> {
    let (scope, _) = domain_scope(&s, &project, &domain)?;
    super::check_id("name", &name)?;
    tf_model::names::check_version(&version).map_err(|e| ApiError::invalid("version", e))?;
    scope.get_entity(&project, &domain, kind, &name, Some(&version)).await?.map(Json).ok_or_else(|| {
        ApiError::not_found(format!("{} `{name}` version `{version}` not found in {project}/{domain}", kind.as_str()))
    })
}

/// Axum handlers for one kind, so the table can mount the same code under three paths.
pub mod for_kind {
    use super::*;

    pub fn list(kind: EntityKind) -> axum::routing::MethodRouter<AppState> {
        axum::routing::get(
            move |State(s): State<AppState>,
                  PathParams(p): PathParams<(String, String)>,
                  QueryParams(q): QueryParams<PageQuery>| { super::list(kind, s, p, q) },
        )
    }

    pub fn versions(kind: EntityKind) -> axum::routing::MethodRouter<AppState> {
        axum::routing::get(
            move |State(s): State<AppState>,
                  PathParams(p): PathParams<(String, String, String)>,
                  QueryParams(q): QueryParams<PageQuery>| { super::versions(kind, s, p, q) },
        )
    }

    pub fn get(kind: EntityKind) -> axum::routing::MethodRouter<AppState> {
        axum::routing::get(
            move |State(s): State<AppState>, PathParams(p): PathParams<(String, String, String, String)>| {
                super::get(kind, s, p)
            },
        )
    }
}
