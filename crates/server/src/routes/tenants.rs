//! Tenants: the unit of isolation, quota and lifecycle. Platform-level routes.

use super::{check_id, PageQuery};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use tf_store::{Page, Tenant};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Service tier; decides default quotas and weights later. Default `standard`.
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
    let tier = b.tier.unwrap_or_else(|| "standard".into());
    check_id("tier", &tier)?;
    super::projects::check_labels(&b.labels)?;
    let t = s.store.platform().create_tenant(&b.id, b.name.as_deref().unwrap_or(&b.id), &tier, &b.labels).await?;
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
