//! Launch-plan activation and schedule progress. One row per launch plan name: which version is
//! active and, when it has a schedule, the earliest tick not yet fired.
//!
//! Invariant: a tick is claimed by compare-and-set on `next_fire_at`, so of any number of
//! servers looking at the same due tick exactly one advances it; the execution a tick starts
//! has a name derived from the tick, so creating it twice is a conflict, never a second run.

use crate::db::ExecuteAudited;
use crate::{now_ms, Result, Store, TenantStore};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

/// A launch plan's activation and schedule state.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LaunchPlanState {
    pub project: String,
    pub domain: String,
    pub name: String,
    /// The active version; none when the plan is inactive.
    pub active_version: Option<String>,
    /// The active version's schedule (`cron` or `rate`).
    pub schedule: Option<Value>,
    /// When the schedule was activated: a rate schedule ticks at `anchor + k·rate`.
    pub anchor_at: Option<i64>,
    /// The earliest tick not yet fired (ms since the epoch).
    pub next_fire_at: Option<i64>,
    pub last_fire_at: Option<i64>,
    /// `started`, `skipped: …` or `failed: …`, with the ticks collapsed by catch-up.
    pub last_outcome: Option<String>,
    pub last_execution: Option<String>,
    /// Ticks fired since activation.
    pub fired: i64,
    pub updated_at: i64,
    pub updated_by: String,
}

impl LaunchPlanState {
    /// A plan that was never activated.
    pub fn inactive(project: &str, domain: &str, name: &str) -> LaunchPlanState {
        LaunchPlanState {
            project: project.into(),
            domain: domain.into(),
            name: name.into(),
            active_version: None,
            schedule: None,
            anchor_at: None,
            next_fire_at: None,
            last_fire_at: None,
            last_outcome: None,
            last_execution: None,
            fired: 0,
            updated_at: 0,
            updated_by: String::new(),
        }
    }
}

/// A scheduled tick that is due, with whose tenant it is.
#[derive(Debug, Clone)]
pub struct DueSchedule {
    pub tenant: String,
    pub state: LaunchPlanState,
}

fn state_from_row(r: &AnyRow) -> Result<LaunchPlanState> {
    let schedule: Option<String> = r.try_get("schedule")?;
    Ok(LaunchPlanState {
        project: r.try_get("project")?,
        domain: r.try_get("domain")?,
        name: r.try_get("name")?,
        active_version: r.try_get("active_version")?,
        schedule: schedule.map(|s| serde_json::from_str(&s)).transpose()?,
        anchor_at: r.try_get("anchor_at")?,
        next_fire_at: r.try_get("next_fire_at")?,
        last_fire_at: r.try_get("last_fire_at")?,
        last_outcome: r.try_get("last_outcome")?,
        last_execution: r.try_get("last_execution")?,
        fired: r.try_get("fired")?,
        updated_at: r.try_get("updated_at")?,
        updated_by: r.try_get("updated_by")?,
    })
}

/// What activating a version sets.
#[derive(Debug, Clone)]
pub struct Activation {
    pub version: String,
    pub schedule: Option<Value>,
    pub anchor_at: Option<i64>,
    pub next_fire_at: Option<i64>,
}

/// The outcome of firing one tick, recorded when the tick is claimed.
#[derive(Debug, Clone)]
pub struct Fired {
    pub tick: i64,
    pub next_fire_at: Option<i64>,
    pub outcome: String,
    pub execution: Option<String>,
}

const KEY: &str = "tenant_id = $1 AND project = $2 AND domain = $3 AND name = $4";

impl TenantStore<'_> {
    pub async fn launch_plan_state(&self, project: &str, domain: &str, name: &str) -> Result<Option<LaunchPlanState>> {
        let row = sqlx::query(&format!("SELECT * FROM launch_plan_states WHERE {KEY}"))
            .bind(&self.tenant)
            .bind(project)
            .bind(domain)
            .bind(name)
            .fetch_optional(&self.store.read)
            .await?;
        row.as_ref().map(state_from_row).transpose()
    }

    /// Makes `a.version` the active version (any other version becomes inactive) with its
    /// schedule; activating the version already active changes nothing, so its ticks go on.
    pub async fn activate_launch_plan(
        &self,
        project: &str,
        domain: &str,
        name: &str,
        a: &Activation,
        by: &str,
    ) -> Result<LaunchPlanState> {
        let mut tx = self.store.write.begin().await?;
        let current: Option<Option<String>> =
            sqlx::query_scalar(&format!("SELECT active_version FROM launch_plan_states WHERE {KEY}"))
                .bind(&self.tenant)
                .bind(project)
                .bind(domain)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        if current.as_ref().and_then(Option::as_deref) != Some(a.version.as_str()) {
            sqlx::query(
                "INSERT INTO launch_plan_states (tenant_id, project, domain, name, active_version, schedule, anchor_at, \
                 next_fire_at, fired, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10) \
                 ON CONFLICT (tenant_id, project, domain, name) DO UPDATE SET active_version = $5, schedule = $6, \
                 anchor_at = $7, next_fire_at = $8, fired = 0, updated_at = $9, updated_by = $10",
            )
            .bind(&self.tenant)
            .bind(project)
            .bind(domain)
            .bind(name)
            .bind(&a.version)
            .bind(a.schedule.as_ref().map(Value::to_string))
            .bind(a.anchor_at)
            .bind(a.next_fire_at)
            .bind(now_ms())
            .bind(by)
            .execute(&mut *tx)
            .await?;
        }
        crate::db::commit(tx).await?;
        self.launch_plan_state(project, domain, name)
            .await?
            .ok_or_else(|| crate::Error::Corrupt("state vanished".into()))
    }

    /// Deactivates `version` if it is the active one; its schedule stops at once.
    pub async fn deactivate_launch_plan(
        &self,
        project: &str,
        domain: &str,
        name: &str,
        version: &str,
        by: &str,
    ) -> Result<Option<LaunchPlanState>> {
        sqlx::query(&format!(
            "UPDATE launch_plan_states SET active_version = NULL, next_fire_at = NULL, updated_at = $6, updated_by = $7 \
             WHERE {KEY} AND active_version = $5"
        ))
        .bind(&self.tenant)
        .bind(project)
        .bind(domain)
        .bind(name)
        .bind(version)
        .bind(now_ms())
        .bind(by)
        .execute_audited(self.store)
        .await?;
        self.launch_plan_state(project, domain, name).await
    }

    /// The active launch plans of a project and domain, by name.
    pub async fn active_launch_plans(&self, project: &str, domain: &str) -> Result<Vec<LaunchPlanState>> {
        let rows = sqlx::query(
            "SELECT * FROM launch_plan_states WHERE tenant_id = $1 AND project = $2 AND domain = $3 \
             AND active_version IS NOT NULL ORDER BY name",
        )
        .bind(&self.tenant)
        .bind(project)
        .bind(domain)
        .fetch_all(&self.store.read)
        .await?;
        rows.iter().map(state_from_row).collect()
    }

    /// Claims the tick `expected_next` of the active `version`: advances it and records the
    /// outcome. `false` when another server claimed it first, or the plan changed meanwhile.
    pub async fn claim_tick(
        &self,
        project: &str,
        domain: &str,
        name: &str,
        version: &str,
        expected_next: i64,
        f: &Fired,
    ) -> Result<bool> {
        let done = sqlx::query(&format!(
            "UPDATE launch_plan_states SET next_fire_at = $7, last_fire_at = $8, last_outcome = $9, \
             last_execution = COALESCE($10, last_execution), fired = fired + 1 \
             WHERE {KEY} AND active_version = $5 AND next_fire_at = $6"
        ))
        .bind(&self.tenant)
        .bind(project)
        .bind(domain)
        .bind(name)
        .bind(version)
        .bind(expected_next)
        .bind(f.next_fire_at)
        .bind(f.tick)
        .bind(&f.outcome)
        .bind(f.execution.as_deref())
        .execute_audited(self.store)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Store {
    /// Scheduled launch plans with a tick due at `now`, earliest first, across tenants.
    pub async fn due_schedules(&self, now: i64, limit: i64) -> Result<Vec<DueSchedule>> {
        let rows = sqlx::query(
            "SELECT * FROM launch_plan_states WHERE next_fire_at IS NOT NULL AND next_fire_at <= $1 \
             ORDER BY next_fire_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| Ok(DueSchedule { tenant: r.try_get("tenant_id")?, state: state_from_row(r)? })).collect()
    }

    /// The earliest tick not yet fired of any schedule, to know how long to sleep.
    pub async fn next_schedule_tick(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MIN(next_fire_at) FROM launch_plan_states WHERE next_fire_at IS NOT NULL")
            .fetch_one(&self.read)
            .await?)
    }
}
