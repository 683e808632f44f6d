//! Metering: what a tenant (or one of its projects) used over time windows — API calls and
//! active users (counted by the server and added here), executions by phase, attempts,
//! cpu-seconds and memory GiB-seconds (from the executor's accounting), queue wait — and the
//! bytes it stores now.
//!
//! Invariant: every query leads with the tenant (indexes `(tenant_id, …)`), so a report's cost
//! grows with that tenant's records, never with the number of tenants.

use crate::{PlatformStore, Result};
use schemars::JsonSchema;
use serde::Serialize;
use sqlx::Row;
use std::collections::BTreeMap;

/// One window of usage.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct UsageWindow {
    /// Epoch ms the window starts at.
    pub start: i64,
    pub api_calls: i64,
    pub active_users: i64,
    /// Executions created in the window, by their phase now.
    pub executions: BTreeMap<String, i64>,
    /// Attempts that finished in the window.
    pub attempts: i64,
    /// CPU time of those attempts (cgroup accounting).
    pub cpu_seconds: f64,
    /// Peak memory × wall time of those attempts.
    pub memory_gib_seconds: f64,
    /// Time executions created in the window waited from creation to their first start.
    pub queue_wait_seconds: f64,
}

/// What a report is over.
#[derive(Debug, Clone)]
pub struct UsageQuery {
    pub tenant: String,
    pub project: Option<String>,
    pub since: i64,
    pub until: i64,
    /// Window length in ms (an hour or a day).
    pub window: i64,
}

const GIB: f64 = (1u64 << 30) as f64;

impl PlatformStore<'_> {
    /// Adds counted API calls `(tenant, project, hour, calls)` and active users
    /// `(tenant, hour, actor)` in one transaction.
    pub async fn add_usage(&self, calls: &[(String, String, i64, i64)], users: &[(String, i64, String)]) -> Result<()> {
        let mut tx = self.store.write.begin().await?;
        for (tenant, project, window, n) in calls {
            sqlx::query(
                "INSERT INTO usage_api_calls (tenant_id, project, window_start, calls) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id, window_start, project) DO UPDATE SET calls = usage_api_calls.calls + $4",
            )
            .bind(tenant)
            .bind(project)
            .bind(window)
            .bind(n)
            .execute(&mut *tx)
            .await?;
        }
        for (tenant, window, actor) in users {
            sqlx::query(
                "INSERT INTO usage_active_users (tenant_id, window_start, actor) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(tenant)
            .bind(window)
            .bind(actor)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Distinct users active in `tenant` over the hours of `[since, until)`.
    pub async fn active_users(&self, tenant: &str, since: i64, until: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(DISTINCT actor) FROM usage_active_users WHERE tenant_id = $1 AND window_start >= $2 AND window_start < $3",
        )
        .bind(tenant)
        .bind(since - since.rem_euclid(3_600_000))
        .bind(until)
        .fetch_one(&self.store.read)
        .await?)
    }

    /// Usage per window over `[since, until)`.
    pub async fn usage(&self, q: &UsageQuery) -> Result<Vec<UsageWindow>> {
        let mut windows: BTreeMap<i64, UsageWindow> = BTreeMap::new();
        let project = q.project.clone().unwrap_or_default();
        let bucket = |t: i64| t.div_euclid(q.window) * q.window;
        fn at(windows: &mut BTreeMap<i64, UsageWindow>, b: i64) -> &mut UsageWindow {
            windows.entry(b).or_insert_with(|| UsageWindow { start: b, ..Default::default() })
        }
        let read = &self.store.read;
        // API calls are counted per hour; a window of a day sums its hours.
        for r in sqlx::query(
            "SELECT window_start, CAST(SUM(calls) AS BIGINT) AS calls FROM usage_api_calls WHERE tenant_id = $1 \
             AND ($2 = '' OR project = $2) AND window_start >= $3 AND window_start < $4 GROUP BY window_start",
        )
        .bind(&q.tenant)
        .bind(&project)
        .bind(q.since)
        .bind(q.until)
        .fetch_all(read)
        .await?
        {
            at(&mut windows, bucket(r.try_get("window_start")?)).api_calls += r.try_get::<i64, _>("calls")?;
        }
        let mut users: BTreeMap<i64, std::collections::BTreeSet<String>> = BTreeMap::new();
        for r in sqlx::query(
            "SELECT window_start, actor FROM usage_active_users WHERE tenant_id = $1 AND window_start >= $2 AND window_start < $3",
        )
        .bind(&q.tenant)
        .bind(q.since)
        .bind(q.until)
        .fetch_all(read)
        .await?
        {
            users.entry(bucket(r.try_get("window_start")?)).or_default().insert(r.try_get("actor")?);
        }
        for (b, set) in users {
            at(&mut windows, b).active_users = set.len() as i64;
        }
        // Executions and attempts are summed per window by the database, not row by row here.
        for r in sqlx::query(
            "SELECT (created_at / $5) * $5 AS bucket, phase, COUNT(*) AS n, \
             CAST(COALESCE(SUM(CASE WHEN started_at > created_at THEN started_at - created_at ELSE 0 END), 0) AS BIGINT) \
             AS wait_ms FROM executions WHERE tenant_id = $1 AND ($2 = '' OR project = $2) \
             AND created_at >= $3 AND created_at < $4 GROUP BY bucket, phase",
        )
        .bind(&q.tenant)
        .bind(&project)
        .bind(q.since)
        .bind(q.until)
        .bind(q.window)
        .fetch_all(read)
        .await?
        {
            let w = at(&mut windows, r.try_get("bucket")?);
            *w.executions.entry(r.try_get("phase")?).or_default() += r.try_get::<i64, _>("n")?;
            w.queue_wait_seconds += r.try_get::<i64, _>("wait_ms")? as f64 / 1000.0;
        }
        for r in sqlx::query(
            "SELECT (finished_at / $5) * $5 AS bucket, COUNT(*) AS n, CAST(COALESCE(SUM(cpu_ms), 0) AS BIGINT) AS cpu_ms, \
             COALESCE(SUM(CAST(peak_memory_bytes AS DOUBLE PRECISION) * (finished_at - started_at)), 0.0) AS mem_byte_ms \
             FROM attempts WHERE tenant_id = $1 AND ($2 = '' OR project = $2) \
             AND finished_at >= $3 AND finished_at < $4 GROUP BY bucket",
        )
        .bind(&q.tenant)
        .bind(&project)
        .bind(q.since)
        .bind(q.until)
        .bind(q.window)
        .fetch_all(read)
        .await?
        {
            let w = at(&mut windows, r.try_get("bucket")?);
            w.attempts += r.try_get::<i64, _>("n")?;
            w.cpu_seconds += r.try_get::<i64, _>("cpu_ms")? as f64 / 1000.0;
            w.memory_gib_seconds += r.try_get::<f64, _>("mem_byte_ms")? / GIB / 1000.0;
        }
        Ok(windows.into_values().collect())
    }
}
