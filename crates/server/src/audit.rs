//! Audit at the edge: what admission and handlers record. A mutating request's entry waits
//! for the transaction that makes its change (see `tf_store::audit`) and is written on its own
//! only when nothing committed (a refused or failed request); denials (401, 403, 404 from
//! admission) and a platform administrator's reads of tenant resources are written as they
//! happen.
//!
//! Invariant: every mutating request that reaches admission leaves exactly one record; so
//! does every refusal.

use crate::access::{Access, Principal};
use crate::AppState;
use axum::extract::{ConnectInfo, Request};
use axum::http::{Method, StatusCode};
use std::net::SocketAddr;
use tf_store::audit::AuditEntry;

/// Marks a response as an authorisation refusal a handler made (admission's own are recorded
/// where they happen).
#[derive(Clone)]
pub struct Refusal {
    /// The tenant refused, when the handler names it.
    pub tenant: Option<String>,
}

/// The request id the log layer chose, for admission and handlers.
#[derive(Clone)]
pub struct RequestId(pub String);

/// What is known of a request before it is admitted.
pub struct RequestFacts {
    pub method: Method,
    /// The route template, e.g. `/api/v1/projects/{project}`.
    pub route: String,
    pub path: String,
    pub request_id: Option<String>,
    pub source: Option<String>,
}

impl RequestFacts {
    pub fn of(req: &Request, route: &str) -> RequestFacts {
        RequestFacts {
            method: req.method().clone(),
            route: route.to_string(),
            path: req.uri().path().to_string(),
            request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
            source: req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()),
        }
    }

    pub fn mutating(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS)
    }
}

/// The tenant, project and domain a request is about, as far as its path says.
#[derive(Debug, Default, Clone)]
pub struct Scope {
    pub tenant: String,
    pub project: Option<String>,
    pub domain: Option<String>,
}

impl Scope {
    pub fn of(
        s: &AppState,
        project: Option<&str>,
        domain: Option<&str>,
        tenant: Option<&str>,
        workspace: Option<&str>,
    ) -> Scope {
        let owner = project.and_then(|p| s.directory.get(p)).map(|p| p.tenant.clone());
        Scope {
            tenant: owner.or(tenant.map(str::to_string)).or(workspace.map(str::to_string)).unwrap_or_default(),
            project: project.map(str::to_string),
            domain: domain.map(str::to_string),
        }
    }
}

/// An entry for this request; `outcome` is filled in by the caller.
pub fn entry(f: &RequestFacts, who: Option<&Principal>, scope: &Scope) -> AuditEntry {
    let (actor, kind, groups) = match who {
        Some(p) => (p.subject.clone(), p.kind.clone(), p.groups.clone()),
        None => ("anonymous".to_string(), "anonymous".to_string(), vec![]),
    };
    let mut tenant = scope.tenant.clone();
    if tenant.is_empty() {
        // A tenant's own credential acting on a platform-level route is still that tenant's.
        tenant = who.and_then(|p| p.tenant.clone()).unwrap_or_default();
    }
    AuditEntry {
        time: tf_store::now_ms(),
        request_id: f.request_id.clone(),
        actor,
        actor_kind: kind,
        groups,
        tenant,
        project: scope.project.clone(),
        domain: scope.domain.clone(),
        action: format!("{} {}", f.method, f.route),
        resource: f.path.clone(),
        outcome: "ok".into(),
        status: None,
        source: f.source.clone(),
        details: None,
    }
}

/// The outcome word for a response status.
pub fn outcome(status: StatusCode) -> String {
    match status.as_u16() {
        200..=299 => "ok",
        401 => "unauthenticated",
        403 => "denied",
        404 => "not_found",
        409 => "conflict",
        400 | 413 | 415 | 422 => "invalid",
        429 => "rate_limited",
        400..=499 => "refused",
        _ => "error",
    }
    .to_string()
}

/// Writes a record now (its own transaction); a failure is logged, never shown to the caller.
pub async fn write(s: &AppState, mut e: AuditEntry, status: StatusCode, outcome_word: Option<&str>) {
    e.status = Some(status.as_u16() as i64);
    e.outcome = outcome_word.map(str::to_string).unwrap_or_else(|| outcome(status));
    if let Err(err) = s.store.platform().append_audit(&e).await {
        tracing::error!(error = %err, action = %e.action, "cannot write an audit record");
    }
}

/// Writes `entry` with the outcome of the response: its status, and for a handler's
/// authorisation refusal (`Refusal`, taken from the response) `denied` or `hidden`, in the
/// tenant it names.
pub async fn finish(s: &AppState, mut entry: AuditEntry, status: StatusCode, refusal: Option<Refusal>) {
    let word = refusal.map(|r| {
        if let Some(t) = r.tenant {
            entry.tenant = t;
        }
        if status == StatusCode::NOT_FOUND {
            "hidden"
        } else {
            "denied"
        }
    });
    write(s, entry, status, word).await;
}

/// Whether a platform administrator reading through `access` reads into a tenant.
pub fn is_cross_tenant_read(who: &Principal, access: Access, f: &RequestFacts) -> bool {
    !f.mutating()
        && who.is_platform_admin()
        && matches!(access, Access::Project(_) | Access::ProjectVisible | Access::Tenant(_))
}

/// `audit:` in the configuration: how long records are kept, per tenant tier.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Default `30d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_basic: Option<String>,
    /// Default `90d`; also the platform's own records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_standard: Option<String>,
    /// Default `365d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_premium: Option<String>,
}

/// Checked retention periods.
#[derive(Debug, Clone)]
pub struct Retention {
    pub basic: std::time::Duration,
    pub standard: std::time::Duration,
    pub premium: std::time::Duration,
}

impl AuditSettings {
    pub fn check(&self) -> Result<Retention, String> {
        let d = |field: &str, v: &Option<String>, days: u64| match v {
            None => Ok(std::time::Duration::from_secs(days * 86_400)),
            Some(s) => humantime::parse_duration(s.trim())
                .map_err(|e| format!("audit.{field}: `{s}` is not a duration such as `90d` ({e})")),
        };
        Ok(Retention {
            basic: d("retention_basic", &self.retention_basic, 30)?,
            standard: d("retention_standard", &self.retention_standard, 90)?,
            premium: d("retention_premium", &self.retention_premium, 365)?,
        })
    }
}

impl Retention {
    pub fn of(&self, tier: &str) -> std::time::Duration {
        match tier {
            "basic" => self.basic,
            "premium" => self.premium,
            _ => self.standard,
        }
    }
}

/// How often retention runs.
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Prunes every chain to its tenant tier's retention, hourly (first a minute after start).
pub async fn retention(s: AppState) {
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    loop {
        if let Err(e) = prune(&s).await {
            tracing::warn!(error = %e, "audit retention failed; retrying in an hour");
        }
        tokio::time::sleep(RETENTION_EVERY).await;
    }
}

/// One retention pass; returns how many records were removed.
pub async fn prune(s: &AppState) -> Result<u64, tf_store::Error> {
    let now = tf_store::now_ms();
    let mut removed = 0;
    for (tenant, tier) in s.store.platform().audit_chains().await? {
        let keep = s.audit_retention.of(&tier).as_millis() as i64;
        removed += s.store.platform().prune_audit(&tenant, now - keep).await?;
    }
    if removed > 0 {
        tracing::info!(records = removed, "audit records past their retention removed");
    }
    Ok(removed)
}
