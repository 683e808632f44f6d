//! Who am I and what may I do; why is something allowed or denied; the API description.

use crate::access::Principal;
use crate::error::{ApiError, ApiResult, Code};
use crate::extract::QueryParams;
use crate::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use tf_authz::{Action, Caller, Decision, Permission, Resource};

/// At most this many projects are expanded into per-domain permissions in `/me`.
const ME_PROJECTS: usize = 500;

pub async fn me(State(s): State<AppState>, Extension(who): Extension<Principal>) -> ApiResult<Json<Value>> {
    let caller = who.caller();
    let (roles, visible) = {
        let policy = s.authz.read();
        let roles: Vec<Value> = policy
            .roles_of(&caller)
            .into_iter()
            .map(|(via, r)| {
                json!({
                    "role": r.name, "tenant": r.tenant, "via": via,
                    "permissions": r.permissions.names(), "projects": r.projects.patterns(), "domains": r.domains.patterns(),
                })
            })
            .collect();
        (roles, policy.visible_projects(&caller))
    };
    let truncated = visible.len() > ME_PROJECTS;
    let shown = &visible[..visible.len().min(ME_PROJECTS)];
    let projects = s.store.platform().projects_by_ids(shown).await?;
    let policy = s.authz.read();
    let mut effective = Vec::with_capacity(projects.len());
    for p in &projects {
        let domains: BTreeMap<&str, Vec<String>> =
            p.domains.iter().map(|d| (d.id.as_str(), policy.effective(&caller, &p.id, &d.id).names())).collect();
        effective.push(json!({"project": p.id, "tenant": p.tenant, "domains": domains}));
    }
    Ok(Json(json!({
        "subject": who.subject,
        "kind": who.kind,
        "tenant": who.tenant,
        "groups": who.groups,
        "credential": who.credential,
        "platform_admin": who.is_platform_admin(),
        "roles": roles,
        "projects": effective,
        "projects_truncated": truncated,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainQuery {
    pub permission: String,
    pub project: String,
    pub domain: Option<String>,
    /// Explain for another identity (platform admins, or administrators of the project's tenant).
    pub user: Option<String>,
    /// Comma-separated groups of that identity.
    pub groups: Option<String>,
    /// `tenant:name` of a service account.
    pub service_account: Option<String>,
}

pub async fn explain(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    QueryParams(q): QueryParams<ExplainQuery>,
) -> ApiResult<Json<Value>> {
    let perm = Permission::parse(&q.permission).map_err(|e| ApiError::invalid("permission", e))?;
    super::check_id("project", &q.project)?;
    if let Some(d) = &q.domain {
        super::check_id("domain", d)?;
    }
    let policy = s.authz.read();
    let about_other = q.user.is_some() || q.groups.is_some() || q.service_account.is_some();
    let subject = if about_other {
        // Asking about someone else needs the right to read the project's tenant's roles.
        let tenant = policy.project_tenant(&q.project).map(str::to_string);
        let may = who.is_platform_admin()
            || tenant.as_deref().is_some_and(|t| {
                policy.decide_tenant(&who.caller(), Permission(Resource::Roles, Action::Read), t).is_allowed()
            });
        if !may {
            return Err(
                match tenant
                    .as_deref()
                    .map(|t| policy.decide_tenant(&who.caller(), Permission(Resource::Roles, Action::Read), t))
                {
                    Some(Decision::Deny) => ApiError::new(Code::PermissionDenied, "permission denied: roles:read"),
                    _ => ApiError::not_found(format!("project `{}` not found", q.project)),
                },
            );
        }
        Caller {
            user: q.user.clone(),
            groups: q
                .groups
                .as_deref()
                .map(|g| g.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect())
                .unwrap_or_default(),
            service_account: q.service_account.clone(),
            platform_admin: false,
        }
    } else {
        who.caller()
    };
    let e = policy.explain(&subject, perm, &q.project, q.domain.as_deref());
    Ok(Json(json!({
        "subject": {"user": subject.user, "groups": subject.groups, "service_account": subject.service_account, "platform_admin": subject.platform_admin},
        "permission": perm,
        "project": q.project,
        "domain": q.domain,
        "explanation": e,
    })))
}

pub async fn openapi() -> Json<&'static Value> {
    Json(crate::openapi::document())
}
