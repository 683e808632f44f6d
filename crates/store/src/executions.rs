//! Executions, node executions and attempts of one tenant. Every statement binds the tenant
//! first. An attempt is recorded when it starts and finished exactly once: finishing updates
//! only a row still `RUNNING`, in the same transaction as its node's new state.

use crate::{now_ms, Error, Page, PageRequest, Result, TenantStore};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

/// Addresses one execution inside a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct ExecutionKey {
    pub project: String,
    pub domain: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct NewExecution {
    pub key: ExecutionKey,
    pub launch_plan: Option<String>,
    pub workflow_name: String,
    pub workflow_version: String,
    /// The inputs after defaults and fixed inputs were applied.
    pub inputs: Value,
    /// Node ids in workflow order.
    pub nodes: Vec<String>,
    pub created_by: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ExecutionRecord {
    pub project: String,
    pub domain: String,
    pub name: String,
    pub launch_plan: Option<String>,
    pub workflow_name: String,
    pub workflow_version: String,
    pub inputs: Value,
    pub phase: String,
    pub outputs: Option<Value>,
    pub error: Option<String>,
    pub abort_requested: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct NodeRecord {
    pub node: String,
    pub index: i64,
    pub phase: String,
    pub attempts: i64,
    pub outputs: Option<Value>,
    pub error: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AttemptRecord {
    pub node: String,
    pub attempt: i64,
    pub phase: String,
    /// `user` or `system` for failed attempts.
    pub error_kind: Option<String>,
    pub message: Option<String>,
    pub exit_code: Option<i64>,
    pub log_path: String,
    pub cpu_ms: Option<i64>,
    pub peak_memory_bytes: Option<i64>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

/// How an attempt ended, to record.
#[derive(Debug, Clone, Default)]
pub struct AttemptEnd {
    pub phase: String,
    pub error_kind: Option<String>,
    pub message: Option<String>,
    pub exit_code: Option<i64>,
    pub cpu_ms: Option<i64>,
    pub peak_memory_bytes: Option<i64>,
}

/// The node's state after an attempt ended.
#[derive(Debug, Clone, Default)]
pub struct NodeUpdate {
    pub phase: String,
    pub outputs: Option<Value>,
    pub error: Option<String>,
    pub finished: bool,
}

fn json_opt(r: &AnyRow, col: &str) -> Result<Option<Value>> {
    let s: Option<String> = r.try_get(col)?;
    s.map(|s| serde_json::from_str(&s).map_err(Error::from)).transpose()
}

fn execution_from_row(r: &AnyRow) -> Result<ExecutionRecord> {
    let inputs: String = r.try_get("inputs")?;
    Ok(ExecutionRecord {
        project: r.try_get("project")?,
        domain: r.try_get("domain")?,
        name: r.try_get("name")?,
        launch_plan: r.try_get("launch_plan")?,
        workflow_name: r.try_get("workflow_name")?,
        workflow_version: r.try_get("workflow_version")?,
        inputs: serde_json::from_str(&inputs)?,
        phase: r.try_get("phase")?,
        outputs: json_opt(r, "outputs")?,
        error: r.try_get("error")?,
        abort_requested: r.try_get("abort_requested")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

fn node_from_row(r: &AnyRow) -> Result<NodeRecord> {
    Ok(NodeRecord {
        node: r.try_get("node")?,
        index: r.try_get("idx")?,
        phase: r.try_get("phase")?,
        attempts: r.try_get("attempts")?,
        outputs: json_opt(r, "outputs")?,
        error: r.try_get("error")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

fn attempt_from_row(r: &AnyRow) -> Result<AttemptRecord> {
    Ok(AttemptRecord {
        node: r.try_get("node")?,
        attempt: r.try_get("attempt")?,
        phase: r.try_get("phase")?,
        error_kind: r.try_get("error_kind")?,
        message: r.try_get("message")?,
        exit_code: r.try_get("exit_code")?,
        log_path: r.try_get("log_path")?,
        cpu_ms: r.try_get("cpu_ms")?,
        peak_memory_bytes: r.try_get("peak_memory_bytes")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

const KEY: &str = "tenant_id = $1 AND project = $2 AND domain = $3";

impl TenantStore<'_> {
    /// Creates an execution in phase `QUEUED` with every node `WAITING`, in one transaction.
    pub async fn create_execution(&self, e: &NewExecution) -> Result<ExecutionRecord> {
        let now = now_ms();
        let mut tx = self.store.write.begin().await?;
        let res = sqlx::query(
            "INSERT INTO executions (tenant_id, project, domain, name, launch_plan, workflow_name, workflow_version, inputs, phase, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'QUEUED', $9, $10)",
        )
        .bind(&self.tenant)
        .bind(&e.key.project)
        .bind(&e.key.domain)
        .bind(&e.key.name)
        .bind(e.launch_plan.as_deref())
        .bind(&e.workflow_name)
        .bind(&e.workflow_version)
        .bind(e.inputs.to_string())
        .bind(&e.created_by)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(err) if Error::is_unique_violation(&err) => {
                return Err(Error::Conflict(format!("execution `{}` already exists", e.key.name)))
            }
            Err(err) => return Err(err.into()),
        }
        for (i, node) in e.nodes.iter().enumerate() {
            sqlx::query(
                "INSERT INTO node_executions (tenant_id, project, domain, execution, node, idx, phase, attempts) VALUES ($1, $2, $3, $4, $5, $6, 'WAITING', 0)",
            )
            .bind(&self.tenant)
            .bind(&e.key.project)
            .bind(&e.key.domain)
            .bind(&e.key.name)
            .bind(node)
            .bind(i as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.get_execution(&e.key).await?.ok_or_else(|| Error::Corrupt("execution vanished".into()))
    }

    pub async fn get_execution(&self, k: &ExecutionKey) -> Result<Option<ExecutionRecord>> {
        let row = sqlx::query(&format!("SELECT * FROM executions WHERE {KEY} AND name = $4"))
            .bind(&self.tenant)
            .bind(&k.project)
            .bind(&k.domain)
            .bind(&k.name)
            .fetch_optional(&self.store.read)
            .await?;
        row.as_ref().map(execution_from_row).transpose()
    }

    /// Executions of a project and domain, newest first; optionally of one phase.
    pub async fn list_executions(
        &self,
        project: &str,
        domain: &str,
        phase: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<ExecutionRecord>> {
        let after: Option<(i64, String)> = page.after()?;
        let (at, an) = after.unwrap_or((i64::MAX, String::new()));
        let limit = page.limit();
        let rows = sqlx::query(&format!(
            "SELECT * FROM executions WHERE {KEY} AND ($4 = '' OR phase = $4) AND (created_at < $5 OR (created_at = $5 AND name > $6)) \
             ORDER BY created_at DESC, name LIMIT $7"
        ))
        .bind(&self.tenant)
        .bind(project)
        .bind(domain)
        .bind(phase.unwrap_or(""))
        .bind(at)
        .bind(an)
        .bind(limit as i64 + 1)
        .fetch_all(&self.store.read)
        .await?;
        let items = rows.iter().map(execution_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, limit, |e| (e.created_at, e.name.clone())))
    }

    /// Node executions in workflow order.
    pub async fn node_executions(&self, k: &ExecutionKey) -> Result<Vec<NodeRecord>> {
        let rows = sqlx::query(&format!("SELECT * FROM node_executions WHERE {KEY} AND execution = $4 ORDER BY idx"))
            .bind(&self.tenant)
            .bind(&k.project)
            .bind(&k.domain)
            .bind(&k.name)
            .fetch_all(&self.store.read)
            .await?;
        rows.iter().map(node_from_row).collect()
    }

    /// Attempts of one node, oldest first.
    pub async fn attempts(&self, k: &ExecutionKey, node: &str) -> Result<Vec<AttemptRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT * FROM attempts WHERE {KEY} AND execution = $4 AND node = $5 ORDER BY attempt"
        ))
        .bind(&self.tenant)
        .bind(&k.project)
        .bind(&k.domain)
        .bind(&k.name)
        .bind(node)
        .fetch_all(&self.store.read)
        .await?;
        rows.iter().map(attempt_from_row).collect()
    }

    /// Records that an attempt started; the node is `RUNNING`. Fails with a conflict if this
    /// attempt was already recorded.
    pub async fn start_attempt(&self, k: &ExecutionKey, node: &str, attempt: i64, log_path: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = self.store.write.begin().await?;
        let res = sqlx::query(
            "INSERT INTO attempts (tenant_id, project, domain, execution, node, attempt, phase, log_path, started_at) VALUES ($1, $2, $3, $4, $5, $6, 'RUNNING', $7, $8)",
        )
        .bind(&self.tenant)
        .bind(&k.project)
        .bind(&k.domain)
        .bind(&k.name)
        .bind(node)
        .bind(attempt)
        .bind(log_path)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(e) if Error::is_unique_violation(&e) => {
                return Err(Error::Conflict(format!("attempt {attempt} of node `{node}` is already recorded")))
            }
            Err(e) => return Err(e.into()),
        }
        sqlx::query(&format!(
            "UPDATE node_executions SET phase = 'RUNNING', attempts = $6, started_at = COALESCE(started_at, $7) WHERE {KEY} AND execution = $4 AND node = $5"
        ))
        .bind(&self.tenant)
        .bind(&k.project)
        .bind(&k.domain)
        .bind(&k.name)
        .bind(node)
        .bind(attempt)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records how a running attempt ended and its node's new state, together. Returns false
    /// (and writes nothing) when the attempt is not running: it was already finished.
    pub async fn finish_attempt(
        &self,
        k: &ExecutionKey,
        node: &str,
        attempt: i64,
        end: &AttemptEnd,
        update: &NodeUpdate,
    ) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.store.write.begin().await?;
        let r = sqlx::query(&format!(
            "UPDATE attempts SET phase = $7, error_kind = $8, message = $9, exit_code = $10, cpu_ms = $11, peak_memory_bytes = $12, finished_at = $13 \
             WHERE {KEY} AND execution = $4 AND node = $5 AND attempt = $6 AND phase = 'RUNNING'"
        ))
        .bind(&self.tenant)
        .bind(&k.project)
        .bind(&k.domain)
        .bind(&k.name)
        .bind(node)
        .bind(attempt)
        .bind(&end.phase)
        .bind(end.error_kind.as_deref())
        .bind(end.message.as_deref())
        .bind(end.exit_code)
        .bind(end.cpu_ms)
        .bind(end.peak_memory_bytes)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(&format!(
            "UPDATE node_executions SET phase = $6, outputs = $7, error = $8, finished_at = $9 WHERE {KEY} AND execution = $4 AND node = $5"
        ))
        .bind(&self.tenant)
        .bind(&k.project)
        .bind(&k.domain)
        .bind(&k.name)
        .bind(node)
        .bind(&update.phase)
        .bind(update.outputs.as_ref().map(|v| v.to_string()))
        .bind(update.error.as_deref())
        .bind(update.finished.then_some(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Moves the execution to `phase`; terminal phases set `finished_at` and are final.
    /// Returns false when the execution had already finished.
    pub async fn set_execution_phase(
        &self,
        k: &ExecutionKey,
        phase: &str,
        outputs: Option<&Value>,
        error: Option<&str>,
        terminal: bool,
    ) -> Result<bool> {
        let now = now_ms();
        let r = sqlx::query(&format!(
            "UPDATE executions SET phase = $5, outputs = $6, error = $7, started_at = COALESCE(started_at, $8), finished_at = $9 \
             WHERE {KEY} AND name = $4 AND finished_at IS NULL"
        ))
        .bind(&self.tenant)
        .bind(&k.project)
        .bind(&k.domain)
        .bind(&k.name)
        .bind(phase)
        .bind(outputs.map(|v| v.to_string()))
        .bind(error)
        .bind(now)
        .bind(terminal.then_some(now))
        .execute(&self.store.write)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Records a request to terminate (durable, so a restart still honours it). False when
    /// the execution has already finished.
    pub async fn request_abort(&self, k: &ExecutionKey, by: &str) -> Result<bool> {
        let r = sqlx::query(&format!(
            "UPDATE executions SET abort_requested = COALESCE(abort_requested, $5) WHERE {KEY} AND name = $4 AND finished_at IS NULL"
        ))
        .bind(&self.tenant)
        .bind(&k.project)
        .bind(&k.domain)
        .bind(&k.name)
        .bind(by)
        .execute(&self.store.write)
        .await?;
        Ok(r.rows_affected() > 0)
    }
}

impl crate::PlatformStore<'_> {
    /// Every execution not yet finished, across tenants, oldest first: what an engine resumes.
    pub async fn unfinished_executions(&self) -> Result<Vec<(String, ExecutionKey)>> {
        let rows = sqlx::query(
            "SELECT tenant_id, project, domain, name FROM executions WHERE finished_at IS NULL ORDER BY created_at",
        )
        .fetch_all(&self.store.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("tenant_id")?,
                    ExecutionKey {
                        project: r.try_get("project")?,
                        domain: r.try_get("domain")?,
                        name: r.try_get("name")?,
                    },
                ))
            })
            .collect()
    }
}
