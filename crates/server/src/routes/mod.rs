//! Request handlers, one module per resource. Handlers assume admission already happened
//! (see `auth`); they obtain tenant-scoped store handles through [`project_scope`].

pub mod attributes;
pub mod audit;
pub mod executions;
pub mod health;
pub mod launch_plans;
pub mod me;
pub mod projects;
pub mod rbac;
pub mod registry;
pub mod tenants;
pub mod workspaces;

use crate::error::{ApiError, ApiResult, Code};
use crate::AppState;
use serde::Deserialize;
use tf_store::{PageRequest, Project, TenantStore};

pub async fn fallback() -> ApiError {
    ApiError::not_found("no such route; see /api/openapi.json")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(Code::MethodNotAllowed, "method not allowed on this route; see /api/openapi.json")
}

/// `?limit=&token=` on list routes.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<u32>,
    pub token: Option<String>,
    /// Platform administrators may narrow a project listing to one tenant.
    pub tenant: Option<String>,
}

impl PageQuery {
    pub fn page(&self) -> ApiResult<PageRequest> {
        if let Some(l) = self.limit {
            if l == 0 || l > tf_store::PAGE_MAX_LIMIT {
                return Err(ApiError::invalid("limit", format!("expected 1..={}, got {l}", tf_store::PAGE_MAX_LIMIT)));
            }
        }
        Ok(PageRequest { limit: self.limit, token: self.token.clone() })
    }
}

/// Checks an identifier taken from a path or body, naming the field on failure.
pub fn check_id(field: &str, value: &str) -> ApiResult<()> {
    tf_model::names::check_id(value).map_err(|e| ApiError::invalid(field, e))
}

/// The owning tenant's store handle and the project, or 404 when it does not exist.
pub fn project_scope<'a>(state: &'a AppState, project: &str) -> ApiResult<(TenantStore<'a>, Project)> {
    check_id("project", project)?;
    let p =
        state.directory.get(project).ok_or_else(|| ApiError::not_found(format!("project `{project}` not found")))?;
    Ok((state.store.tenant(&p.tenant), (*p).clone()))
}

/// Records a committed project change in the directory and the access index.
pub fn project_changed(state: &AppState, p: &Project) {
    state.authz.update(|policy| policy.set_project(&p.id, &p.tenant));
    state.directory.put(p.clone());
    state.generation.note_own_write();
}

/// Like [`project_scope`], and the domain must be one of the project's.
pub fn domain_scope<'a>(state: &'a AppState, project: &str, domain: &str) -> ApiResult<(TenantStore<'a>, Project)> {
    let (scope, p) = project_scope(state, project)?;
    check_id("domain", domain)?;
    if !p.has_domain(domain) {
        return Err(ApiError::not_found(format!("domain `{domain}` not found in project `{project}`")));
    }
    Ok((scope, p))
}

/// Parses a duration such as `90d`, `12h` or `30m` (at least one second, at most ten years).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = parse_human(s).ok_or_else(|| format!("`{s}` is not a duration such as `90d`, `12h` or `30m`"))?;
    if d < std::time::Duration::from_secs(1) || d > std::time::Duration::from_secs(10 * 366 * 86400) {
        return Err(format!("`{s}` must be between 1s and 10 years"));
    }
    Ok(d)
}

fn parse_human(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(n.checked_mul(secs)?))
}
