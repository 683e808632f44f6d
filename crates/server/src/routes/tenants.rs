//! Tenants: the unit of isolation, quota and lifecycle. Platform-level routes.

use super::{check_id, PageQuery};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tf_store::{Page, QuotaRecord, Tenant};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Service tier; decides the default fair-share weight (basic 1, standard 2, premium 4).
    /// Default `standard`.
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

pub async fn list(State(s): State<AppState>, QueryParams(q): QueryParams<PageQuery>) -> ApiResult<Json<Page<Tenant>>> {
    Ok(Json(s.store.platform().list_tenants(&q.page()?).await?))
}

pub async fn create(
    State(s): State<AppState>,
    JsonBody(b): JsonBody<CreateTenant>,
) -> ApiResult<(StatusCode, Json<Tenant>)> {
    check_id("id", &b.id)?;
    tf_store::audit::note(|e| e.tenant = b.id.clone());
    let tier = b.tier.unwrap_or_else(|| "standard".into());
    check_id("tier", &tier)?;
    super::projects::check_labels(&b.labels)?;
    let t = s.store.platform().create_tenant(&b.id, b.name.as_deref().unwrap_or(&b.id), &tier, &b.labels).await?;
    // Its tier decides its fair-share weight until a quota says otherwise.
    s.engine.set_quota(&t.id, &t.tier, &QuotaRecord::default());
    Ok((StatusCode::CREATED, Json(t)))
}

pub async fn get(State(s): State<AppState>, PathParams(id): PathParams<String>) -> ApiResult<Json<Tenant>> {
    check_id("tenant", &id)?;
    s.store
        .platform()
        .get_tenant(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("tenant `{id}` not found")))
}

/// A tenant's quota as set: limits on concurrent use, stored bytes and the fair-share weight.
/// A field left out is unlimited (the weight defaults by tier: basic 1, standard 2, premium 4).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaBody {
    /// Cores, e.g. `10` or `"2500m"`.
    #[serde(default)]
    pub cpu: Option<serde_json::Value>,
    /// Bytes, e.g. `"20Gi"`.
    #[serde(default)]
    pub memory: Option<serde_json::Value>,
    #[serde(default)]
    pub running_tasks: Option<i64>,
    #[serde(default)]
    pub running_executions: Option<i64>,
    /// Bytes, e.g. `"500Gi"`.
    #[serde(default)]
    pub stored_bytes: Option<serde_json::Value>,
    #[serde(default)]
    pub weight: Option<i64>,
}

/// A quota, and what the tenant uses of it right now.
#[derive(Debug, Serialize, JsonSchema)]
pub struct QuotaView {
    pub tenant: String,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub running_tasks: Option<i64>,
    pub running_executions: Option<i64>,
    pub stored_bytes: Option<String>,
    /// The weight in effect (set, or the tier's default).
    pub weight: u32,
    pub usage: UsageView,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct UsageView {
    pub cpu: String,
    pub memory: String,
    pub running_tasks: u64,
    pub running_executions: u64,
    /// Attempts of this tenant waiting for admission.
    pub waiting_tasks: u64,
    /// Bytes its attempts have stored (inputs and outputs records, files, logs).
    pub stored_bytes: String,
}

impl QuotaBody {
    /// Checks every field; an error names it.
    pub fn to_record(&self) -> Result<QuotaRecord, ApiError> {
        use tf_model::resources::{parse_cpu, parse_memory};
        let count = |field: &str, v: Option<i64>| match v {
            Some(n) if n < 0 => Err(ApiError::invalid(field, "must be 0 or more")),
            _ => Ok(v),
        };
        let weight = match self.weight {
            Some(w) if !(1..=1000).contains(&w) => return Err(ApiError::invalid("weight", "must be in 1..=1000")),
            w => w,
        };
        let qty = |field: &str, v: &Option<serde_json::Value>, parse: fn(&serde_json::Value) -> Result<u64, String>| {
            v.as_ref().map(|v| parse(v).map(|n| n as i64).map_err(|e| ApiError::invalid(field, e))).transpose()
        };
        Ok(QuotaRecord {
            cpu_millis: qty("cpu", &self.cpu, parse_cpu)?,
            memory_bytes: qty("memory", &self.memory, parse_memory)?,
            running_tasks: count("running_tasks", self.running_tasks)?,
            running_executions: count("running_executions", self.running_executions)?,
            stored_bytes: qty("stored_bytes", &self.stored_bytes, parse_memory)?,
            weight,
        })
    }
}

async fn quota_view(s: &AppState, tenant: &Tenant, q: QuotaRecord) -> ApiResult<QuotaView> {
    use tf_engine::scheduler::{cpu, memory, Quota};
    let effective = Quota::from_record(&q, &tenant.tier);
    let u = s.engine.usage(&tenant.id).await;
    let stored = s.store.tenant(&tenant.id).stored_bytes().await?;
    Ok(QuotaView {
        tenant: tenant.id.clone(),
        cpu: q.cpu_millis.map(|m| cpu(m as u64)),
        memory: q.memory_bytes.map(|b| memory(b as u64)),
        running_tasks: q.running_tasks,
        running_executions: q.running_executions,
        stored_bytes: q.stored_bytes.map(|b| memory(b as u64)),
        weight: effective.weight,
        usage: UsageView {
            cpu: cpu(u.cpu_millis),
            memory: memory(u.memory_bytes),
            running_tasks: u.tasks,
            running_executions: u.executions,
            waiting_tasks: u.waiting,
            stored_bytes: memory(stored.max(0) as u64),
        },
    })
}

async fn existing(s: &AppState, id: &str) -> ApiResult<Tenant> {
    check_id("tenant", id)?;
    s.store.platform().get_tenant(id).await?.ok_or_else(|| ApiError::not_found(format!("tenant `{id}` not found")))
}

pub async fn get_quota(State(s): State<AppState>, PathParams(id): PathParams<String>) -> ApiResult<Json<QuotaView>> {
    let t = existing(&s, &id).await?;
    let q = s.store.platform().get_quota(&id).await?;
    Ok(Json(quota_view(&s, &t, q).await?))
}

pub async fn put_quota(
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(b): JsonBody<QuotaBody>,
) -> ApiResult<Json<QuotaView>> {
    let t = existing(&s, &id).await?;
    let q = b.to_record()?;
    s.store.platform().set_quota(&id, &q).await?;
    s.engine.set_quota(&id, &t.tier, &q);
    Ok(Json(quota_view(&s, &t, q).await?))
}
