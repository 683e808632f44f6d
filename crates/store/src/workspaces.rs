//! Declared workspaces and their convergence progress (platform-level: a workspace's id is
//! also its tenant's id).
//!
//! Invariant: `generation` moves only when the declared state changes (declaring the same
//! state again writes nothing), and `observed_generation` only to a generation that was
//! current when its convergence ended (compare-and-set), so a change made meanwhile is never
//! marked done. A convergence's steps, its progress mark and its event commit in one
//! transaction; so do each retirement phase and its event. Observation reads whole id ranges
//! (a few queries per page of workspaces, never one per workspace).

use crate::db::ExecuteAudited;
use crate::{now_ms, Error, Page, PageRequest, PlatformStore, QuotaRecord, Result};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::HashMap;
use tf_model::workspace::{Observed, RoleShape, Step};

/// The workspace's own roles; other roles an administrator adds to its tenant are left alone.
const MANAGED_ROLES: [&str; 2] = ["owner", "contributor"];

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WorkspaceRecord {
    pub id: String,
    /// The declared state.
    pub spec: Value,
    /// `active`, or `deleting` once retired.
    pub state: String,
    pub generation: i64,
    pub observed_generation: i64,
    pub last_error: Option<String>,
    /// Retirement progress: `revoked`, `aborted`, `exported`, `retained`.
    pub phase: Option<String>,
    pub deleted_at: Option<i64>,
    /// When the retained export is purged and the workspace forgotten.
    pub purge_after: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A workspace and what exists for it.
#[derive(Debug, Clone)]
pub struct WorkspaceObservation {
    pub record: WorkspaceRecord,
    pub observed: Observed,
}

/// An outcome to report to the workspace service.
#[derive(Debug, Clone)]
pub struct NewWorkspaceEvent {
    /// e.g. `workspace.ready`.
    pub kind: String,
    pub data: Value,
}

/// An event waiting for delivery.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WorkspaceEvent {
    pub id: String,
    pub workspace_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: Value,
    pub created_at: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

/// Inserts `event` for `workspace` inside `tx`.
async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    workspace: &str,
    event: Option<&NewWorkspaceEvent>,
) -> Result<()> {
    let Some(e) = event else { return Ok(()) };
    let mut id = [0u8; 10];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut id);
    let now = now_ms();
    // Ids sort by creation time first, so delivery order is insertion order.
    sqlx::query(
        "INSERT INTO workspace_events (id, workspace_id, type, data, created_at, attempts, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, 0, $5)",
    )
    .bind(format!("{now:013}-{}", hex::encode(id)))
    .bind(workspace)
    .bind(&e.kind)
    .bind(e.data.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn from_row(r: &AnyRow) -> Result<WorkspaceRecord> {
    let spec: String = r.try_get("spec")?;
    Ok(WorkspaceRecord {
        id: r.try_get("id")?,
        spec: serde_json::from_str(&spec)?,
        state: r.try_get("state")?,
        generation: r.try_get("generation")?,
        observed_generation: r.try_get("observed_generation")?,
        last_error: r.try_get("last_error")?,
        phase: r.try_get("phase")?,
        deleted_at: r.try_get("deleted_at")?,
        purge_after: r.try_get("purge_after")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl PlatformStore<'_> {
    /// Declares a workspace's state; returns the record and whether anything changed.
    pub async fn declare_workspace(&self, id: &str, spec: &Value) -> Result<(WorkspaceRecord, bool)> {
        let text = spec.to_string();
        let now = now_ms();
        let mut tx = self.store.write.begin().await?;
        let current: Option<(String, String)> = sqlx::query("SELECT spec, state FROM workspaces WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("spec")?, r.try_get("state")?)))
            .transpose()?;
        let changed = match current {
            Some((_, state)) if state != "active" => {
                return Err(Error::Conflict(format!(
                    "workspace `{id}` is being retired; it can be declared again once it is purged"
                )))
            }
            Some((s, _)) if serde_json::from_str::<Value>(&s)? == *spec => false,
            Some(_) => {
                sqlx::query(
                    "UPDATE workspaces SET spec = $2, generation = generation + 1, \
                     last_error = NULL, updated_at = $3 WHERE id = $1",
                )
                .bind(id)
                .bind(&text)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                true
            }
            None => {
                sqlx::query(
                    "INSERT INTO workspaces (id, spec, state, generation, observed_generation, created_at, updated_at) \
                     VALUES ($1, $2, 'active', 1, 0, $3, $3)",
                )
                .bind(id)
                .bind(&text)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                true
            }
        };
        crate::db::commit(tx).await?;
        let rec = self.get_workspace(id).await?.ok_or_else(|| crate::Error::Corrupt("workspace vanished".into()))?;
        Ok((rec, changed))
    }

    pub async fn get_workspace(&self, id: &str) -> Result<Option<WorkspaceRecord>> {
        let row =
            sqlx::query("SELECT * FROM workspaces WHERE id = $1").bind(id).fetch_optional(&self.store.read).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Records that `generation` is converged; false when the declaration moved on meanwhile.
    pub async fn workspace_converged(&self, id: &str, generation: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE workspaces SET observed_generation = $2, last_error = NULL, updated_at = $3 \
             WHERE id = $1 AND generation = $2 AND observed_generation < $2",
        )
        .bind(id)
        .bind(generation)
        .bind(now_ms())
        .execute_audited(self.store)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records why converging `generation` failed; the next pass retries it. `event` is
    /// recorded only when the error is new (not on every retry of the same failure). Returns
    /// whether the error was new.
    pub async fn workspace_failed(
        &self,
        id: &str,
        generation: i64,
        error: &str,
        event: Option<&NewWorkspaceEvent>,
    ) -> Result<bool> {
        let cas = sqlx::query(
            "UPDATE workspaces SET last_error = $3, updated_at = $4 WHERE id = $1 AND generation = $2 \
             AND (last_error IS NULL OR last_error <> $3)",
        )
        .bind(id)
        .bind(generation)
        .bind(error)
        .bind(now_ms());
        self.transition(cas, id, &[], false, event).await
    }

    /// Active workspaces whose declared state is not converged yet, by id.
    pub async fn pending_workspaces(&self, limit: i64) -> Result<Vec<WorkspaceRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM workspaces WHERE observed_generation < generation AND state = 'active' ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.store.read)
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn list_workspaces(&self, page: &PageRequest) -> Result<Page<WorkspaceRecord>> {
        let sql = "SELECT * FROM workspaces WHERE id > $1 ORDER BY id LIMIT $2";
        crate::page::by_id(&self.store.read, sql, &[], page, from_row, |w| w.id.clone()).await
    }

    /// Up to `limit` workspaces with ids after `after`, in id order, each with what exists for
    /// it now — five range queries however many workspaces the page holds.
    pub async fn observe_workspaces(&self, after: &str, limit: i64) -> Result<Vec<WorkspaceObservation>> {
        let rows = sqlx::query("SELECT * FROM workspaces WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(&self.store.read)
            .await?;
        let records = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        self.observe(records).await
    }

    /// One workspace and what exists for it.
    pub async fn observe_workspace(&self, id: &str) -> Result<Option<WorkspaceObservation>> {
        let Some(record) = self.get_workspace(id).await? else { return Ok(None) };
        Ok(self.observe(vec![record]).await?.pop())
    }

    /// What exists for `records` (sorted by id), read by id range.
    async fn observe(&self, records: Vec<WorkspaceRecord>) -> Result<Vec<WorkspaceObservation>> {
        let (Some(first), Some(last)) = (records.first(), records.last()) else { return Ok(vec![]) };
        let (lo, hi) = (first.id.clone(), last.id.clone());
        let range = |sql: &'static str| sqlx::query(sql).bind(lo.clone()).bind(hi.clone());
        let mut seen: HashMap<String, Observed> = records.iter().map(|r| (r.id.clone(), Observed::default())).collect();
        for r in
            range("SELECT id, name, tier FROM tenants WHERE id >= $1 AND id <= $2").fetch_all(&self.store.read).await?
        {
            let id: String = r.try_get("id")?;
            if let Some(o) = seen.get_mut(&id) {
                o.tenant = Some((r.try_get("name")?, r.try_get("tier")?));
            }
        }
        for r in range("SELECT tenant_id, id, name, domains FROM projects WHERE tenant_id >= $1 AND tenant_id <= $2")
            .fetch_all(&self.store.read)
            .await?
        {
            let (tenant, id): (String, String) = (r.try_get("tenant_id")?, r.try_get("id")?);
            if let Some(o) = seen.get_mut(&tenant).filter(|_| tenant == id) {
                let domains: Vec<crate::Domain> = serde_json::from_str(&r.try_get::<String, _>("domains")?)?;
                o.project = Some((r.try_get("name")?, domains.into_iter().map(|d| d.id).collect()));
            }
        }
        for r in range(
            "SELECT tenant_id, name, permissions, projects, domains FROM roles WHERE tenant_id >= $1 AND tenant_id <= $2",
        )
        .fetch_all(&self.store.read)
        .await?
        {
            let (tenant, name): (String, String) = (r.try_get("tenant_id")?, r.try_get("name")?);
            if let Some(o) = seen.get_mut(&tenant).filter(|_| MANAGED_ROLES.contains(&name.as_str())) {
                let list = |c: &str| -> Result<Vec<String>> { Ok(serde_json::from_str(&r.try_get::<String, _>(c)?)?) };
                let shape =
                    RoleShape { permissions: list("permissions")?, projects: list("projects")?, domains: list("domains")? };
                o.roles.insert(name, shape);
            }
        }
        for r in range(
            "SELECT tenant_id, role, subject FROM role_bindings WHERE tenant_id >= $1 AND tenant_id <= $2 \
             AND subject_kind = 'user'",
        )
        .fetch_all(&self.store.read)
        .await?
        {
            let (tenant, role): (String, String) = (r.try_get("tenant_id")?, r.try_get("role")?);
            if let Some(o) = seen.get_mut(&tenant).filter(|_| MANAGED_ROLES.contains(&role.as_str())) {
                o.bindings.insert((role, r.try_get("subject")?));
            }
        }
        for r in range("SELECT * FROM tenant_quotas WHERE tenant_id >= $1 AND tenant_id <= $2")
            .fetch_all(&self.store.read)
            .await?
        {
            let (tenant, q) = crate::platform::quota_from_row(&r)?;
            if let Some(o) = seen.get_mut(&tenant) {
                o.quota = Some(serde_json::to_value(q)?);
            }
        }
        Ok(records
            .into_iter()
            .map(|record| {
                let observed = seen.remove(&record.id).unwrap_or_default();
                WorkspaceObservation { record, observed }
            })
            .collect())
    }

    /// Carries out `steps` for workspace `id` and, when `generation` is still the declared one,
    /// marks it converged — all in one transaction, with `event`. Returns whether it was marked.
    pub async fn converge_workspace(
        &self,
        id: &str,
        generation: i64,
        steps: &[Step],
        event: Option<&NewWorkspaceEvent>,
    ) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.store.write.begin().await?;
        for step in steps {
            apply_step(&mut tx, id, step, now).await?;
        }
        if steps.iter().any(Step::changes_access) {
            crate::db::bump_access(&mut tx).await?;
        }
        let marked = sqlx::query(
            "UPDATE workspaces SET observed_generation = $2, last_error = NULL, updated_at = $3 \
             WHERE id = $1 AND generation = $2 AND observed_generation < $2 AND state = 'active'",
        )
        .bind(id)
        .bind(generation)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if marked {
            insert_event(&mut tx, id, event).await?;
        }
        crate::db::commit(tx).await?;
        Ok(marked)
    }

    /// Starts retiring workspace `id`: in one transaction its state becomes `deleting`, every
    /// binding, role and credential of its tenant is removed, its projects are archived and
    /// its tenant marked `deleting`. Returns the record, or `None` when there is no such
    /// workspace; retiring one already being retired changes nothing.
    pub async fn retire_workspace(
        &self,
        id: &str,
        event: Option<&NewWorkspaceEvent>,
    ) -> Result<Option<WorkspaceRecord>> {
        let cas = sqlx::query(
            "UPDATE workspaces SET state = 'deleting', phase = 'revoked', deleted_at = $2, generation = generation + 1, \
             last_error = NULL, updated_at = $2 WHERE id = $1 AND state = 'active'",
        )
        .bind(id)
        .bind(now_ms());
        let revoke = [
            "DELETE FROM role_bindings WHERE tenant_id = $1",
            "DELETE FROM roles WHERE tenant_id = $1",
            "UPDATE tokens SET revoked_at = $2 WHERE tenant_id = $1 AND revoked_at IS NULL",
            "UPDATE projects SET state = 'archived', updated_at = $2 WHERE tenant_id = $1",
            "UPDATE tenants SET state = 'deleting', updated_at = $2 WHERE id = $1",
        ];
        self.transition(cas, id, &revoke, true, event).await?;
        self.get_workspace(id).await
    }

    /// Moves a retiring workspace from phase `from` to `to` (compare-and-set); false when it
    /// was not in `from`.
    pub async fn advance_retirement(
        &self,
        id: &str,
        from: &str,
        to: &str,
        event: Option<&NewWorkspaceEvent>,
    ) -> Result<bool> {
        let cas = sqlx::query(
            "UPDATE workspaces SET phase = $3, last_error = NULL, updated_at = $4 \
             WHERE id = $1 AND state = 'deleting' AND phase = $2",
        )
        .bind(id)
        .bind(from)
        .bind(to)
        .bind(now_ms());
        self.transition(cas, id, &[], false, event).await
    }

    /// Deletes every record of the retiring workspace's tenant but the tenant itself (which
    /// keeps the id reserved) and moves the workspace from `exported` to `retained` until
    /// `purge_after` — one transaction.
    pub async fn purge_workspace_records(
        &self,
        id: &str,
        purge_after: i64,
        event: Option<&NewWorkspaceEvent>,
    ) -> Result<bool> {
        let cas = sqlx::query(
            "UPDATE workspaces SET phase = 'retained', purge_after = $2, updated_at = $3 \
             WHERE id = $1 AND state = 'deleting' AND phase = 'exported'",
        )
        .bind(id)
        .bind(purge_after)
        .bind(now_ms());
        let purge = TENANT_TABLES.map(|t| format!("DELETE FROM {t} WHERE tenant_id = $1"));
        let purge: Vec<&str> = purge.iter().map(String::as_str).collect();
        self.transition(cas, id, &purge, true, event).await
    }

    /// Forgets a retained workspace whose retention has ended: its tenant and its record.
    pub async fn forget_workspace(&self, id: &str, event: Option<&NewWorkspaceEvent>) -> Result<bool> {
        let cas =
            sqlx::query("DELETE FROM workspaces WHERE id = $1 AND state = 'deleting' AND phase = 'retained'").bind(id);
        let forget = ["DELETE FROM tokens WHERE tenant_id = $1", "DELETE FROM tenants WHERE id = $1"];
        self.transition(cas, id, &forget, false, event).await
    }

    /// Runs `cas` (a compare-and-set on workspace `id`'s row) in a new transaction; when it
    /// matched, also `then` (statements over the tenant: `$1` its id, `$2` now), the access
    /// generation bump if asked, and `event`. Returns whether it matched.
    async fn transition<'q>(
        &self,
        cas: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        id: &str,
        then: &[&str],
        access_changed: bool,
        event: Option<&NewWorkspaceEvent>,
    ) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.store.write.begin().await?;
        let matched = cas.execute(&mut *tx).await?.rows_affected() == 1;
        if matched {
            for sql in then {
                let q = sqlx::query(sql).bind(id);
                // Only statements that mention `$2` take the time.
                let q = if sql.contains("$2") { q.bind(now) } else { q };
                q.execute(&mut *tx).await?;
            }
            if access_changed {
                crate::db::bump_access(&mut tx).await?;
            }
            insert_event(&mut tx, id, event).await?;
        }
        crate::db::commit(tx).await?;
        Ok(matched)
    }

    /// Workspaces being retired, by id.
    pub async fn retiring_workspaces(&self, after: &str, limit: i64) -> Result<Vec<WorkspaceRecord>> {
        let rows = sqlx::query("SELECT * FROM workspaces WHERE state = 'deleting' AND id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(&self.store.read)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Records why a retirement phase failed; the next pass retries it.
    pub async fn retirement_failed(&self, id: &str, error: &str) -> Result<()> {
        sqlx::query("UPDATE workspaces SET last_error = $2, updated_at = $3 WHERE id = $1 AND state = 'deleting'")
            .bind(id)
            .bind(error)
            .bind(now_ms())
            .execute_audited(self.store)
            .await?;
        Ok(())
    }

    /// The oldest undelivered event of each workspace, when its next attempt is due, oldest
    /// first: a workspace's later events wait behind an earlier one.
    pub async fn due_workspace_events(&self, now: i64, limit: i64) -> Result<Vec<WorkspaceEvent>> {
        let rows = sqlx::query(
            "SELECT * FROM workspace_events e WHERE next_attempt_at <= $1 AND NOT EXISTS \
             (SELECT 1 FROM workspace_events f WHERE f.workspace_id = e.workspace_id AND f.id < e.id) \
             ORDER BY id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.store.read)
        .await?;
        rows.iter()
            .map(|r| {
                let data: String = r.try_get("data")?;
                Ok(WorkspaceEvent {
                    id: r.try_get("id")?,
                    workspace_id: r.try_get("workspace_id")?,
                    kind: r.try_get("type")?,
                    data: serde_json::from_str(&data)?,
                    created_at: r.try_get("created_at")?,
                    attempts: r.try_get("attempts")?,
                    next_attempt_at: r.try_get("next_attempt_at")?,
                    last_error: r.try_get("last_error")?,
                })
            })
            .collect()
    }

    pub async fn event_delivered(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM workspace_events WHERE id = $1").bind(id).execute_audited(self.store).await?;
        Ok(())
    }

    pub async fn event_failed(&self, id: &str, next_attempt_at: i64, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE workspace_events SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(next_attempt_at)
        .bind(error)
        .execute_audited(self.store)
        .await?;
        Ok(())
    }

    /// Undelivered events of one workspace, oldest first (for its status).
    pub async fn pending_workspace_events(&self, workspace: &str) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM workspace_events WHERE workspace_id = $1")
            .bind(workspace)
            .fetch_one(&self.store.read)
            .await?)
    }
}

/// Tables of tenant records a retired workspace's purge empties (the tenant row stays until
/// its retention ends).
const TENANT_TABLES: [&str; 13] = [
    "attempts",
    "node_executions",
    "executions",
    "catalog",
    "launch_plan_states",
    "attributes",
    "entities",
    "role_bindings",
    "roles",
    "projects",
    "tenant_quotas",
    "tenant_storage",
    "tokens",
];

async fn apply_step(tx: &mut sqlx::Transaction<'_, sqlx::Any>, id: &str, step: &Step, now: i64) -> Result<()> {
    let t = &mut **tx;
    match step {
        Step::CreateTenant { name, tier } => {
            sqlx::query(
                "INSERT INTO tenants (id, name, tier, state, labels, created_at, updated_at) \
                 VALUES ($1, $2, $3, 'active', '{\"workspace\":\"true\"}', $4, $4) ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(name)
            .bind(tier)
            .bind(now)
            .execute(t)
            .await?;
        }
        Step::UpdateTenant { name, tier } => {
            sqlx::query("UPDATE tenants SET name = $2, tier = $3, updated_at = $4 WHERE id = $1")
                .bind(id)
                .bind(name)
                .bind(tier)
                .bind(now)
                .execute(t)
                .await?;
        }
        Step::CreateProject { name, domains } => {
            let res = sqlx::query(
                "INSERT INTO projects (tenant_id, id, name, description, labels, domains, state, created_at, updated_at) \
                 VALUES ($1, $1, $2, $3, '{}', $4, 'active', $5, $5)",
            )
            .bind(id)
            .bind(name)
            .bind(format!("Workspace {name}"))
            .bind(domains_json(domains)?)
            .bind(now)
            .execute(t)
            .await;
            match res {
                Ok(_) => {}
                Err(e) if Error::is_unique_violation(&e) => {
                    return Err(Error::Conflict(format!("project id `{id}` is already taken by another tenant")))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Step::UpdateProject { name, domains } => {
            sqlx::query(
                "UPDATE projects SET name = $2, domains = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $1",
            )
            .bind(id)
            .bind(name)
            .bind(domains_json(domains)?)
            .bind(now)
            .execute(t)
            .await?;
        }
        Step::PutRole { name, role } => {
            let description = role_description(name);
            sqlx::query(
                "INSERT INTO roles (tenant_id, name, description, permissions, projects, domains, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (tenant_id, name) DO UPDATE SET \
                 description = $3, permissions = $4, projects = $5, domains = $6, updated_at = $7",
            )
            .bind(id)
            .bind(name)
            .bind(description)
            .bind(serde_json::to_string(&role.permissions)?)
            .bind(serde_json::to_string(&role.projects)?)
            .bind(serde_json::to_string(&role.domains)?)
            .bind(now)
            .execute(t)
            .await?;
        }
        Step::Bind { role, user } => {
            sqlx::query(
                "INSERT INTO role_bindings (tenant_id, role, subject_kind, subject, created_at, created_by) \
                 VALUES ($1, $2, 'user', $3, $4, 'workspace') ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(role)
            .bind(user)
            .bind(now)
            .execute(t)
            .await?;
        }
        Step::Unbind { role, user } => {
            sqlx::query(
                "DELETE FROM role_bindings WHERE tenant_id = $1 AND role = $2 AND subject_kind = 'user' AND subject = $3",
            )
            .bind(id)
            .bind(role)
            .bind(user)
            .execute(t)
            .await?;
        }
        Step::SetQuota(q) => {
            let q: QuotaRecord = serde_json::from_value(q.clone())?;
            crate::platform::upsert_quota(t, id, &q, now).await?;
        }
    }
    Ok(())
}

fn domains_json(domains: &[String]) -> Result<String> {
    let ds: Vec<crate::Domain> = domains.iter().map(|d| crate::Domain { id: d.clone(), name: d.clone() }).collect();
    Ok(serde_json::to_string(&ds)?)
}

fn role_description(role: &str) -> &'static str {
    match role {
        "owner" => "Workspace owner: everything in every domain, production included (managed by the workspace)",
        _ => "Workspace contributor: build and run in development and staging (managed by the workspace)",
    }
}
