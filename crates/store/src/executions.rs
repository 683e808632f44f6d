//! Executions, node executions and attempts of one tenant. Every statement binds the tenant
//! first. An attempt is recorded when it starts and finished exactly once: finishing updates
//! only a row still `RUNNING`, in the same transaction as its node's new state.

use crate::db::ExecuteAudited;
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
    /// The execution this one relaunches, if any.
    pub relaunch_of: Option<String>,
    /// Most nodes running at once; `None` for the platform default.
    pub max_parallelism: Option<i64>,
    /// The effective settings (attributes, their sources, concurrency) it runs with.
    pub config: Option<Value>,
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
    pub relaunch_of: Option<String>,
    pub max_parallelism: Option<i64>,
    /// The effective settings it runs with: `attributes`, their `sources`, and `concurrency`
    /// or `scheduled_at` when they apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct NodeRecord {
    pub node: String,
    pub index: i64,
    pub phase: String,
    pub attempts: i64,
    pub outputs: Option<Value>,
    pub error: Option<String>,
    /// `DISABLED`, `MISS` (ran, result stored), `HIT` (outputs reused) or null before it ran.
    pub cache_status: Option<String>,
    /// While `WAITING_FOR_RESOURCES`: what it waits for, e.g. `quota: cpu 10/10 in use, 1 more
    /// needed (tenant team-alpha)` or `executor: 8/8 slots in use`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_reason: Option<String>,
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
    /// How long the task's process ran, in microseconds.
    pub process_us: Option<i64>,
    /// Bytes it stored in blob storage.
    pub stored_bytes: Option<i64>,
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
    pub process_us: Option<i64>,
    /// Bytes the attempt stored in blob storage (inputs and outputs records, files, log).
    pub stored_bytes: Option<i64>,
}

/// The node's state after an attempt ended.
#[derive(Debug, Clone, Default)]
pub struct NodeUpdate {
    pub phase: String,
    pub outputs: Option<Value>,
    pub error: Option<String>,
    pub finished: bool,
    pub cache_status: Option<String>,
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
        relaunch_of: r.try_get("relaunch_of")?,
        max_parallelism: r.try_get("max_parallelism")?,
        config: json_opt(r, "config")?,
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
        cache_status: r.try_get("cache_status")?,
        waiting_reason: r.try_get("waiting_reason")?,
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
        process_us: r.try_get("process_us")?,
        stored_bytes: r.try_get("stored_bytes")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

const KEY: &str = "tenant_id = $1 AND project = $2 AND domain = $3";

/// Filters of an execution listing; empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    pub phase: Option<String>,
    pub launch_plan: Option<String>,
    pub workflow: Option<String>,
    pub created_by: Option<String>,
    /// Created at or after (ms since the epoch).
    pub since: Option<i64>,
    /// Created before (ms since the epoch).
    pub until: Option<i64>,
}

/// One cached result in the data catalog.
#[derive(Debug, Clone)]
pub struct CatalogKey {
    pub project: String,
    pub domain: String,
    pub task_name: String,
    pub cache_version: String,
    pub interface_digest: String,
    pub inputs_hash: String,
}

/// A change to execution records, applied with others in one transaction by
/// [`crate::Store::apply_execution_ops`]. Every op is idempotent, so a batch never fails on
/// what another op of the batch did.
#[derive(Debug, Clone)]
pub enum ExecutionOp {
    /// An attempt starts: recorded `RUNNING`, its node `RUNNING` (a repeat changes nothing).
    StartAttempt { key: ExecutionKey, node: String, attempt: i64, log_path: String },
    /// An attempt ended, and its node's new state; nothing when the attempt is not running.
    FinishAttempt { key: ExecutionKey, node: String, attempt: i64, end: AttemptEnd, update: NodeUpdate },
    /// A node's new state without an attempt (a cache hit).
    Node { key: ExecutionKey, node: String, update: NodeUpdate },
    /// A node could run but waits for resources (its tenant's quota, the executor's slots).
    NodeWaiting { key: ExecutionKey, node: String, reason: String },
    /// The execution's phase; a terminal phase also closes every node still open.
    Phase { key: ExecutionKey, phase: String, outputs: Option<Value>, error: Option<String>, terminal: bool },
    /// Stores a task's outputs in the catalog (the first writer wins).
    CatalogPut { key: CatalogKey, outputs: Value, execution: String, node: String },
}

/// An op bound to its tenant: made only through a [`TenantStore`].
#[derive(Debug, Clone)]
pub struct TenantOp {
    tenant: String,
    op: ExecutionOp,
}

impl TenantOp {
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    pub fn kind(&self) -> &ExecutionOp {
        &self.op
    }
}

impl TenantStore<'_> {
    /// Binds an op to this tenant.
    pub fn op(&self, op: ExecutionOp) -> TenantOp {
        TenantOp { tenant: self.tenant.clone(), op }
    }

    /// Creates an execution in phase `QUEUED` with every node `WAITING`, in one transaction.
    pub async fn create_execution(&self, e: &NewExecution) -> Result<ExecutionRecord> {
        let now = now_ms();
        let mut tx = self.store.write.begin().await?;
        let res = sqlx::query(
            "INSERT INTO executions (tenant_id, project, domain, name, launch_plan, workflow_name, workflow_version, inputs, phase, created_by, created_at, relaunch_of, max_parallelism, config) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'QUEUED', $9, $10, $11, $12, $13)",
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
        .bind(e.relaunch_of.as_deref())
        .bind(e.max_parallelism)
        .bind(e.config.as_ref().map(Value::to_string))
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(err) if Error::is_unique_violation(&err) => {
                return Err(Error::Conflict(format!("execution `{}` already exists", e.key.name)))
            }
            Err(err) => return Err(err.into()),
        }
        // Many rows per statement: a 10,000-node workflow is 20 statements, not 10,000.
        const ROWS: usize = 500;
        for (c, chunk) in e.nodes.chunks(ROWS).enumerate() {
            let mut sql = String::from(
                "INSERT INTO node_executions (tenant_id, project, domain, execution, node, idx, phase, attempts) VALUES ",
            );
            for i in 0..chunk.len() {
                let b = 4 + i * 2;
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("($1, $2, $3, $4, ${}, ${}, 'WAITING', 0)", b + 1, b + 2));
            }
            let mut q = sqlx::query(&sql).bind(&self.tenant).bind(&e.key.project).bind(&e.key.domain).bind(&e.key.name);
            for (i, node) in chunk.iter().enumerate() {
                q = q.bind(node).bind((c * ROWS + i) as i64);
            }
            q.execute(&mut *tx).await?;
        }
        crate::db::commit(tx).await?;
        self.get_execution(&e.key).await?.ok_or_else(|| Error::Corrupt("execution vanished".into()))
    }

    /// Executions of a launch plan (any version) in a project and domain that have not finished.
    pub async fn unfinished_of_launch_plan(&self, project: &str, domain: &str, launch_plan: &str) -> Result<i64> {
        let pattern = format!("{}@%", launch_plan.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM executions WHERE tenant_id = $1 AND project = $2 AND domain = $3 \
             AND launch_plan LIKE $4 ESCAPE '\\' AND finished_at IS NULL",
        )
        .bind(&self.tenant)
        .bind(project)
        .bind(domain)
        .bind(pattern)
        .fetch_one(&self.store.read)
        .await?)
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

    /// Executions of a project and domain, newest first, filtered.
    pub async fn list_executions(
        &self,
        project: &str,
        domain: &str,
        f: &ExecutionFilter,
        page: &PageRequest,
    ) -> Result<Page<ExecutionRecord>> {
        let after: Option<(i64, String)> = page.after()?;
        let (at, an) = after.unwrap_or((i64::MAX, String::new()));
        let limit = page.limit();
        let rows = sqlx::query(&format!(
            "SELECT * FROM executions WHERE {KEY} AND ($4 = '' OR phase = $4) AND ($5 = '' OR launch_plan = $5) \
             AND ($6 = '' OR workflow_name = $6) AND ($7 = '' OR created_by = $7) AND created_at >= $8 AND created_at < $9 \
             AND (created_at < $10 OR (created_at = $10 AND name > $11)) \
             ORDER BY created_at DESC, name LIMIT $12"
        ))
        .bind(&self.tenant)
        .bind(project)
        .bind(domain)
        .bind(f.phase.as_deref().unwrap_or(""))
        .bind(f.launch_plan.as_deref().unwrap_or(""))
        .bind(f.workflow.as_deref().unwrap_or(""))
        .bind(f.created_by.as_deref().unwrap_or(""))
        .bind(f.since.unwrap_or(0))
        .bind(f.until.unwrap_or(i64::MAX))
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

    /// How many of an execution's nodes are in each phase.
    pub async fn node_phase_counts(&self, k: &ExecutionKey) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(&format!(
            "SELECT phase, COUNT(*) AS n FROM node_executions WHERE {KEY} AND execution = $4 GROUP BY phase"
        ))
        .bind(&self.tenant)
        .bind(&k.project)
        .bind(&k.domain)
        .bind(&k.name)
        .fetch_all(&self.store.read)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("phase")?, r.try_get("n")?))).collect()
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

    /// Every attempt of an execution, by node then attempt.
    pub async fn execution_attempts(&self, k: &ExecutionKey) -> Result<Vec<AttemptRecord>> {
        let rows =
            sqlx::query(&format!("SELECT * FROM attempts WHERE {KEY} AND execution = $4 ORDER BY node, attempt"))
                .bind(&self.tenant)
                .bind(&k.project)
                .bind(&k.domain)
                .bind(&k.name)
                .fetch_all(&self.store.read)
                .await?;
        rows.iter().map(attempt_from_row).collect()
    }

    /// Records that an attempt started; the node is `RUNNING`. Fails with a conflict if this
    /// attempt was already recorded.
    pub async fn start_attempt(&self, k: &ExecutionKey, node: &str, attempt: i64, log_path: &str) -> Result<()> {
        if self.attempts(k, node).await?.iter().any(|a| a.attempt == attempt) {
            return Err(Error::Conflict(format!("attempt {attempt} of node `{node}` is already recorded")));
        }
        let op = ExecutionOp::StartAttempt { key: k.clone(), node: node.into(), attempt, log_path: log_path.into() };
        self.store.apply_execution_ops(&[self.op(op)]).await
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
        let mut tx = self.store.write.begin().await?;
        let done = finish_attempt(&mut tx, &self.tenant, k, node, attempt, end, update).await?;
        if let Some(b) = end.stored_bytes.filter(|b| done && *b > 0) {
            add_stored(&mut tx, &self.tenant, b).await?;
        }
        crate::db::commit(tx).await?;
        Ok(done)
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
        let mut tx = self.store.write.begin().await?;
        let mut audit = Vec::new();
        let done = set_phase(&mut tx, &self.tenant, k, phase, outputs, error, terminal, &mut audit).await?;
        for e in &audit {
            crate::audit::append(&mut tx, e).await?;
        }
        crate::db::commit(tx).await?;
        Ok(done)
    }

    /// This tenant's executions not yet finished.
    pub async fn unfinished_keys(&self) -> Result<Vec<ExecutionKey>> {
        let rows =
            sqlx::query("SELECT project, domain, name FROM executions WHERE tenant_id = $1 AND finished_at IS NULL")
                .bind(&self.tenant)
                .fetch_all(&self.store.read)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(ExecutionKey {
                    project: r.try_get("project")?,
                    domain: r.try_get("domain")?,
                    name: r.try_get("name")?,
                })
            })
            .collect()
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
        .execute_audited(self.store)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Cached outputs for a catalog key, if any.
    pub async fn catalog_get(&self, k: &CatalogKey) -> Result<Option<Value>> {
        let row: Option<String> = sqlx::query_scalar(
            "SELECT outputs FROM catalog WHERE tenant_id = $1 AND project = $2 AND domain = $3 AND task_name = $4 \
             AND cache_version = $5 AND interface_digest = $6 AND inputs_hash = $7",
        )
        .bind(&self.tenant)
        .bind(&k.project)
        .bind(&k.domain)
        .bind(&k.task_name)
        .bind(&k.cache_version)
        .bind(&k.interface_digest)
        .bind(&k.inputs_hash)
        .fetch_optional(&self.store.read)
        .await?;
        row.map(|s| serde_json::from_str(&s).map_err(Error::from)).transpose()
    }
}

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// A statement about one node of an execution, with `$1`–`$5` bound to the tenant, project,
/// domain, execution and node: every node statement is scoped to its tenant the same way.
fn node_query<'q>(
    sql: &'q str,
    tenant: &'q str,
    k: &'q ExecutionKey,
    node: &'q str,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query(sql).bind(tenant).bind(&k.project).bind(&k.domain).bind(&k.name).bind(node)
}

async fn start_attempt(
    tx: &mut Tx<'_>,
    tenant: &str,
    k: &ExecutionKey,
    node: &str,
    attempt: i64,
    log_path: &str,
) -> Result<()> {
    let now = now_ms();
    let r = node_query(
        "INSERT INTO attempts (tenant_id, project, domain, execution, node, attempt, phase, log_path, started_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'RUNNING', $7, $8) ON CONFLICT DO NOTHING",
        tenant,
        k,
        node,
    )
    .bind(attempt)
    .bind(log_path)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if r.rows_affected() == 0 {
        return Ok(());
    }
    node_query(&format!(
        "UPDATE node_executions SET phase = 'RUNNING', attempts = $6, started_at = COALESCE(started_at, $7), waiting_reason = NULL WHERE {KEY} AND execution = $4 AND node = $5"
    ), tenant, k, node)
    .bind(attempt)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn node_waiting(tx: &mut Tx<'_>, tenant: &str, k: &ExecutionKey, node: &str, reason: &str) -> Result<()> {
    node_query(
        &format!(
            "UPDATE node_executions SET phase = 'WAITING_FOR_RESOURCES', waiting_reason = $6 \
         WHERE {KEY} AND execution = $4 AND node = $5 AND finished_at IS NULL AND phase <> 'RUNNING'"
        ),
        tenant,
        k,
        node,
    )
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn update_node(tx: &mut Tx<'_>, tenant: &str, k: &ExecutionKey, node: &str, u: &NodeUpdate) -> Result<()> {
    let now = now_ms();
    node_query(
        &format!(
            "UPDATE node_executions SET phase = $6, outputs = COALESCE($7, outputs), error = $8, finished_at = $9, \
         cache_status = COALESCE($10, cache_status), started_at = COALESCE(started_at, $11), waiting_reason = NULL \
         WHERE {KEY} AND execution = $4 AND node = $5"
        ),
        tenant,
        k,
        node,
    )
    .bind(&u.phase)
    .bind(u.outputs.as_ref().map(|v| v.to_string()))
    .bind(u.error.as_deref())
    .bind(u.finished.then_some(now))
    .bind(u.cache_status.as_deref())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn finish_attempt(
    tx: &mut Tx<'_>,
    tenant: &str,
    k: &ExecutionKey,
    node: &str,
    attempt: i64,
    end: &AttemptEnd,
    update: &NodeUpdate,
) -> Result<bool> {
    let r = node_query(&format!(
        "UPDATE attempts SET phase = $7, error_kind = $8, message = $9, exit_code = $10, cpu_ms = $11, peak_memory_bytes = $12, finished_at = $13, process_us = $14, stored_bytes = $15 \
         WHERE {KEY} AND execution = $4 AND node = $5 AND attempt = $6 AND phase = 'RUNNING'"
    ), tenant, k, node)
    .bind(attempt)
    .bind(&end.phase)
    .bind(end.error_kind.as_deref())
    .bind(end.message.as_deref())
    .bind(end.exit_code)
    .bind(end.cpu_ms)
    .bind(end.peak_memory_bytes)
    .bind(now_ms())
    .bind(end.process_us)
    .bind(end.stored_bytes)
    .execute(&mut **tx)
    .await?;
    if r.rows_affected() == 0 {
        return Ok(false);
    }
    update_node(tx, tenant, k, node, update).await?;
    Ok(true)
}

/// Adds to a tenant's stored bytes.
async fn add_stored(tx: &mut Tx<'_>, tenant: &str, bytes: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO tenant_storage (tenant_id, stored_bytes) VALUES ($1, $2) \
         ON CONFLICT (tenant_id) DO UPDATE SET stored_bytes = tenant_storage.stored_bytes + $2",
    )
    .bind(tenant)
    .bind(bytes)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

// The fields of `ExecutionOp::Phase`, its transaction, and where its audit record goes.
#[allow(clippy::too_many_arguments)]
async fn set_phase(
    tx: &mut Tx<'_>,
    tenant: &str,
    k: &ExecutionKey,
    phase: &str,
    outputs: Option<&Value>,
    error: Option<&str>,
    terminal: bool,
    audit: &mut Vec<crate::audit::AuditEntry>,
) -> Result<bool> {
    let now = now_ms();
    let r = sqlx::query(&format!(
        "UPDATE executions SET phase = $5, outputs = $6, error = $7, started_at = COALESCE(started_at, $8), finished_at = $9 \
         WHERE {KEY} AND name = $4 AND finished_at IS NULL"
    ))
    .bind(tenant)
    .bind(&k.project)
    .bind(&k.domain)
    .bind(&k.name)
    .bind(phase)
    .bind(outputs.map(|v| v.to_string()))
    .bind(error)
    .bind(now)
    .bind(terminal.then_some(now))
    .execute(&mut **tx)
    .await?;
    if r.rows_affected() == 0 {
        return Ok(false);
    }
    if terminal {
        // Nothing stays open under a finished execution.
        for (from, to) in [("'WAITING', 'QUEUED'", "SKIPPED"), ("'RUNNING'", "ABORTED")] {
            sqlx::query(&format!(
                "UPDATE node_executions SET phase = '{to}', finished_at = $5 WHERE {KEY} AND execution = $4 AND phase IN ({from})"
            ))
            .bind(tenant)
            .bind(&k.project)
            .bind(&k.domain)
            .bind(&k.name)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        sqlx::query(&format!(
            "UPDATE attempts SET phase = 'ABORTED', finished_at = $5 WHERE {KEY} AND execution = $4 AND phase = 'RUNNING'"
        ))
        .bind(tenant)
        .bind(&k.project)
        .bind(&k.domain)
        .bind(&k.name)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    // The phase change is audited in the same transaction; a finished execution's record
    // carries what it consumed.
    let mut e = crate::audit::entry_now(
        tenant,
        "engine",
        "engine",
        &format!("execution.{phase}"),
        &format!("executions/{}/{}/{}", k.project, k.domain, k.name),
    );
    e.project = Some(k.project.clone());
    e.domain = Some(k.domain.clone());
    e.outcome = if phase == "SUCCEEDED" || !terminal { "ok".into() } else { phase.to_lowercase() };
    e.details = Some(execution_usage(tx, tenant, k).await?);
    audit.push(e);
    Ok(true)
}

/// What an execution's attempts consumed so far, and who launched it: cpu-seconds (cgroup
/// accounting), memory GiB-seconds (each attempt's peak memory × its wall time), attempts,
/// and queue wait (creation to first start).
async fn execution_usage(tx: &mut Tx<'_>, tenant: &str, k: &ExecutionKey) -> Result<Value> {
    let a = sqlx::query(&format!(
        "SELECT COUNT(*) AS attempts, CAST(COALESCE(SUM(cpu_ms), 0) AS BIGINT) AS cpu_ms, \
         CAST(COALESCE(SUM(peak_memory_bytes * (COALESCE(finished_at, started_at) - started_at)), 0) AS BIGINT) AS mem_byte_ms \
         FROM attempts WHERE {KEY} AND execution = $4"
    ))
    .bind(tenant)
    .bind(&k.project)
    .bind(&k.domain)
    .bind(&k.name)
    .fetch_one(&mut **tx)
    .await?;
    let x =
        sqlx::query(&format!("SELECT created_by, created_at, started_at FROM executions WHERE {KEY} AND name = $4"))
            .bind(tenant)
            .bind(&k.project)
            .bind(&k.domain)
            .bind(&k.name)
            .fetch_one(&mut **tx)
            .await?;
    let (created, started): (i64, Option<i64>) = (x.try_get("created_at")?, x.try_get("started_at")?);
    let mem_byte_ms: i64 = a.try_get("mem_byte_ms")?;
    Ok(serde_json::json!({
        "launched_by": x.try_get::<String, _>("created_by")?,
        "attempts": a.try_get::<i64, _>("attempts")?,
        "cpu_seconds": a.try_get::<i64, _>("cpu_ms")? as f64 / 1000.0,
        "memory_gib_seconds": mem_byte_ms as f64 / 1000.0 / (1u64 << 30) as f64,
        "queue_wait_seconds": started.map(|s| (s - created).max(0) as f64 / 1000.0),
    }))
}

async fn catalog_put(
    tx: &mut Tx<'_>,
    tenant: &str,
    k: &CatalogKey,
    outputs: &Value,
    execution: &str,
    node: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO catalog (tenant_id, project, domain, task_name, cache_version, interface_digest, inputs_hash, outputs, source_execution, source_node, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(&k.project)
    .bind(&k.domain)
    .bind(&k.task_name)
    .bind(&k.cache_version)
    .bind(&k.interface_digest)
    .bind(&k.inputs_hash)
    .bind(outputs.to_string())
    .bind(execution)
    .bind(node)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl crate::Store {
    /// Applies ops in order in one transaction: all of them or none.
    pub async fn apply_execution_ops(&self, ops: &[TenantOp]) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let mut stored: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
        let mut audit = Vec::new();
        for t in ops {
            let tenant = t.tenant.as_str();
            match &t.op {
                ExecutionOp::StartAttempt { key, node, attempt, log_path } => {
                    start_attempt(&mut tx, tenant, key, node, *attempt, log_path).await?
                }
                ExecutionOp::FinishAttempt { key, node, attempt, end, update } => {
                    // Stored bytes count once, with the attempt's one finish.
                    if finish_attempt(&mut tx, tenant, key, node, *attempt, end, update).await? {
                        if let Some(b) = end.stored_bytes.filter(|b| *b > 0) {
                            *stored.entry(tenant).or_default() += b;
                        }
                    }
                }
                ExecutionOp::Node { key, node, update } => update_node(&mut tx, tenant, key, node, update).await?,
                ExecutionOp::NodeWaiting { key, node, reason } => {
                    node_waiting(&mut tx, tenant, key, node, reason).await?
                }
                ExecutionOp::Phase { key, phase, outputs, error, terminal } => {
                    set_phase(&mut tx, tenant, key, phase, outputs.as_ref(), error.as_deref(), *terminal, &mut audit)
                        .await?;
                }
                ExecutionOp::CatalogPut { key, outputs, execution, node } => {
                    catalog_put(&mut tx, tenant, key, outputs, execution, node).await?
                }
            }
        }
        // One update per tenant per batch, in the batch's transaction.
        for (tenant, b) in stored {
            add_stored(&mut tx, tenant, b).await?;
        }
        // Audit records last, chains in tenant order (each chain's head is locked only at the
        // end of the transaction, in one order: no lock cycle with other writers).
        audit.sort_by(|a: &crate::audit::AuditEntry, b| a.tenant.cmp(&b.tenant));
        for e in &audit {
            crate::audit::append(&mut tx, e).await?;
        }
        crate::db::commit(tx).await?;
        Ok(())
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
