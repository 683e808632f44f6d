//! Declared workspaces and their convergence progress (platform-level: a workspace's id is
//! also its tenant's id).
//!
//! Invariant: `generation` moves only when the declared state changes (declaring the same
//! state again writes nothing), and `observed_generation` only to a generation that was
//! current when its convergence ended (compare-and-set), so a change made meanwhile is never
//! marked done.

use crate::{now_ms, Page, PageRequest, PlatformStore, Result};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

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
    pub created_at: i64,
    pub updated_at: i64,
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
            Some((s, state)) if state == "active" && serde_json::from_str::<Value>(&s)? == *spec => false,
            Some(_) => {
                sqlx::query(
                    "UPDATE workspaces SET spec = $2, state = 'active', generation = generation + 1, \
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
        tx.commit().await?;
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
        .execute(&self.store.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records why converging `generation` failed; the next pass retries it.
    pub async fn workspace_failed(&self, id: &str, generation: i64, error: &str) -> Result<()> {
        sqlx::query("UPDATE workspaces SET last_error = $3, updated_at = $4 WHERE id = $1 AND generation = $2")
            .bind(id)
            .bind(generation)
            .bind(error)
            .bind(now_ms())
            .execute(&self.store.write)
            .await?;
        Ok(())
    }

    /// Workspaces whose declared state is not converged yet, by id.
    pub async fn pending_workspaces(&self, limit: i64) -> Result<Vec<WorkspaceRecord>> {
        let rows = sqlx::query("SELECT * FROM workspaces WHERE observed_generation < generation ORDER BY id LIMIT $1")
            .bind(limit)
            .fetch_all(&self.store.read)
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn list_workspaces(&self, page: &PageRequest) -> Result<Page<WorkspaceRecord>> {
        let sql = "SELECT * FROM workspaces WHERE id > $1 ORDER BY id LIMIT $2";
        crate::page::by_id(&self.store.read, sql, &[], page, from_row, |w| w.id.clone()).await
    }
}
