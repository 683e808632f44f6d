//! Launch-plan activation: which version of a plan is active, and its schedule's progress.
//! Activating a version with a schedule starts its ticks; deactivating stops them at once.

use super::domain_scope;
use crate::access::Principal;
use crate::error::{ApiError, ApiResult, Code};
use crate::extract::{JsonBody, PathParams};
use crate::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::Deserialize;
use tf_store::{LaunchPlanState, ProjectState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PlanState {
    Active,
    Inactive,
}

/// `PUT` body: `{"state": "ACTIVE"}` or `{"state": "INACTIVE"}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetState {
    pub state: PlanState,
}

/// `PUT /api/v1/launch_plans/{project}/{domain}/{name}/{version}`.
pub async fn set_state(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    PathParams((project, domain, name, version)): PathParams<(String, String, String, String)>,
    JsonBody(b): JsonBody<SetState>,
) -> ApiResult<Json<LaunchPlanState>> {
    let (store, p) = domain_scope(&s, &project, &domain)?;
    super::check_id("name", &name)?;
    tf_model::names::check_version(&version).map_err(|e| ApiError::invalid("version", e))?;
    if p.state == ProjectState::Archived && b.state == PlanState::Active {
        return Err(ApiError::new(Code::ProjectArchived, format!("project `{project}` is archived and read-only")));
    }
    let st = s
        .engine
        .set_launch_plan_active(
            &store,
            tf_engine::PlanVersion { project: &project, domain: &domain, name: &name, version: &version },
            b.state == PlanState::Active,
            &who.subject,
        )
        .await
        .map_err(super::executions::launch_error)?;
    Ok(Json(st))
}

/// `GET /api/v1/active_launch_plans/{project}/{domain}`.
pub async fn active(
    State(s): State<AppState>,
    PathParams((project, domain)): PathParams<(String, String)>,
) -> ApiResult<Json<Vec<LaunchPlanState>>> {
    let (store, _) = domain_scope(&s, &project, &domain)?;
    Ok(Json(store.active_launch_plans(&project, &domain).await?))
}
