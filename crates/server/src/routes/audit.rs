//! The audit trail and metering, read per tenant: a tenant's administrators (a role of the
//! tenant granting `audit:read`, or `tenants:read` for usage, on every project and domain) see
//! their tenant only; platform administrators see every tenant and the platform's own chain.
//! Another tenant's records are a 404, as if they did not exist.

use crate::access::Principal;
use crate::error::{ApiError, ApiResult, Code};
use crate::extract::QueryParams;
use crate::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tf_authz::{Action, Decision, Permission, Resource};
use tf_store::audit::{AuditFilter, AuditRecord, VerifyReport};
use tf_store::usage::{UsageQuery, UsageWindow};
use tf_store::{Page, PageRequest};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub tenant: Option<String>,
    pub project: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub request_id: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: Option<u32>,
    pub token: Option<String>,
}

/// Which tenant the caller asks about and may read: `None` for "every tenant" (platform
/// administrators only).
fn readable_tenant(s: &AppState, who: &Principal, asked: Option<&str>, perm: Permission) -> ApiResult<Option<String>> {
    let tenant = match asked {
        Some(t) => t.to_string(),
        None if who.is_platform_admin() => return Ok(None),
        None => match &who.tenant {
            Some(t) => t.clone(),
            None => return Err(ApiError::invalid("tenant", "required: the tenant whose records to read")),
        },
    };
    if !who.is_platform_admin() {
        // Marked as an authorisation refusal (recorded in the audit of the tenant asked about).
        let refused = serde_json::json!({"admission": true, "tenant": tenant});
        match s.authz.read().decide_tenant(&who.caller(), perm, &tenant) {
            Decision::Allow(_) => {}
            Decision::Deny => {
                return Err(
                    ApiError::new(Code::PermissionDenied, format!("permission denied: {perm}")).with_details(refused)
                )
            }
            Decision::Hide => {
                return Err(ApiError::not_found(format!("tenant `{tenant}` not found")).with_details(refused))
            }
        }
    }
    Ok(Some(tenant))
}

fn time(field: &str, v: &Option<String>) -> ApiResult<Option<i64>> {
    super::executions::time_param(field, v)
}

pub async fn list(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    QueryParams(q): QueryParams<AuditQuery>,
) -> ApiResult<Json<Page<AuditRecord>>> {
    let tenant = readable_tenant(&s, &who, q.tenant.as_deref(), Permission(Resource::Audit, Action::Read))?;
    let f = AuditFilter {
        tenant,
        project: q.project,
        actor: q.actor,
        action: q.action,
        outcome: q.outcome,
        request_id: q.request_id,
        since: time("since", &q.since)?,
        until: time("until", &q.until)?,
    };
    let page = PageRequest { limit: q.limit, token: q.token };
    Ok(Json(s.store.platform().list_audit(&f, &page).await?))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    pub tenant: Option<String>,
}

/// Walks the hash chains (the caller's tenant, or every chain for a platform administrator).
pub async fn verify(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    QueryParams(q): QueryParams<VerifyQuery>,
) -> ApiResult<Json<VerifyReport>> {
    let tenant = readable_tenant(&s, &who, q.tenant.as_deref(), Permission(Resource::Audit, Action::Read))?;
    Ok(Json(s.store.platform().verify_audit(tenant.as_deref()).await?))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    pub tenant: Option<String>,
    pub project: Option<String>,
    /// Default: 24 hours before `until`.
    pub since: Option<String>,
    /// Default: now.
    pub until: Option<String>,
    /// `hour` (default) or `day`.
    pub window: Option<String>,
}

/// A tenant's (or project's) usage per window, with totals.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UsageReport {
    pub tenant: String,
    pub project: Option<String>,
    pub since: i64,
    pub until: i64,
    pub window: String,
    /// Bytes the tenant stores now (records, files, logs of its attempts).
    pub stored_bytes: i64,
    pub totals: UsageWindow,
    pub windows: Vec<UsageWindow>,
}

pub async fn usage(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    QueryParams(q): QueryParams<UsageParams>,
) -> ApiResult<Json<UsageReport>> {
    let Some(tenant) = readable_tenant(&s, &who, q.tenant.as_deref(), Permission(Resource::Tenants, Action::Read))?
    else {
        return Err(ApiError::invalid("tenant", "required: the tenant whose usage to report"));
    };
    let window = q.window.clone().unwrap_or_else(|| "hour".into());
    let window_ms = match window.as_str() {
        "hour" => 3_600_000,
        "day" => 86_400_000,
        other => return Err(ApiError::invalid("window", format!("expected hour or day, got `{other}`"))),
    };
    let until = time("until", &q.until)?.unwrap_or_else(|| tf_store::now_ms() + 1);
    let since = time("since", &q.since)?.unwrap_or(until - 86_400_000);
    if since >= until {
        return Err(ApiError::invalid("since", "must be before until"));
    }
    if (until - since) / window_ms > 24 * 400 {
        return Err(ApiError::invalid("window", "too many windows; use `day` or a shorter range"));
    }
    // Counts still in memory belong in the report.
    s.usage.flush(&s.store).await;
    let uq = UsageQuery { tenant: tenant.clone(), project: q.project.clone(), since, until, window: window_ms };
    let windows = s.store.platform().usage(&uq).await?;
    let mut totals = UsageWindow { start: since, ..Default::default() };
    for w in &windows {
        totals.api_calls += w.api_calls;
        for (p, n) in &w.executions {
            *totals.executions.entry(p.clone()).or_default() += n;
        }
        totals.attempts += w.attempts;
        totals.cpu_seconds += w.cpu_seconds;
        totals.memory_gib_seconds += w.memory_gib_seconds;
        totals.queue_wait_seconds += w.queue_wait_seconds;
    }
    // Distinct users over the whole range, not the sum of windows.
    totals.active_users = s.store.platform().active_users(&tenant, since, until).await?;
    let stored_bytes = s.store.tenant(&tenant).stored_bytes().await?;
    Ok(Json(UsageReport { tenant, project: q.project, since, until, window, stored_bytes, totals, windows }))
}
