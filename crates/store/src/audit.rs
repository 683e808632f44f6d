//! The audit trail: append-only records, one hash chain per tenant (`""` for platform-level
//! records), pruned from the old end by retention with an anchor that keeps the rest
//! verifiable.
//!
//! A change made while a request runs is recorded in the same transaction as the change: the
//! request's entry waits in a task-local slot ([`with_pending`]) and the first write
//! transaction that commits in that task appends it ([`crate::db::commit`]). Invariant: a
//! record's hash is SHA-256 over the previous record's hash, its sequence number and its
//! content; sequence numbers are contiguous from the chain's anchor; so an edited, inserted
//! or deleted record is found by [`crate::PlatformStore::verify_audit`].

use crate::{now_ms, Page, PageRequest, PlatformStore, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::sync::{Arc, Mutex};

/// What happened, by whom, where.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditEntry {
    /// Epoch milliseconds.
    pub time: i64,
    pub request_id: Option<String>,
    /// A user's e-mail (or subject), a service account, `platform-admin`, `engine`, `anonymous`.
    pub actor: String,
    /// `user`, `oidc`, `service_account`, `platform_service_account`, `platform_admin`, `engine`, `anonymous`.
    pub actor_kind: String,
    pub groups: Vec<String>,
    /// The tenant the record belongs to; empty for platform-level records.
    pub tenant: String,
    pub project: Option<String>,
    pub domain: Option<String>,
    /// The route (`PUT /api/v1/projects/{project}`) or event (`execution.SUCCEEDED`).
    pub action: String,
    /// The concrete target: the request path, or `executions/{project}/{domain}/{name}`.
    pub resource: String,
    /// `ok`, `denied`, `hidden`, `unauthenticated`, or the error code of a refused request.
    pub outcome: String,
    /// The HTTP status, when known when the record was written.
    pub status: Option<i64>,
    /// The client's address.
    pub source: Option<String>,
    /// Resource usage of a finished execution, and other particulars.
    pub details: Option<Value>,
}

/// A stored record.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AuditRecord {
    pub seq: i64,
    #[serde(flatten)]
    pub entry: AuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of a record: over the previous hash, the sequence number and the content.
pub fn record_hash(prev: &str, seq: i64, e: &AuditEntry) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(seq.to_string().as_bytes());
    h.update(b"\n");
    h.update(serde_json::to_vec(e).unwrap_or_default());
    hex::encode(h.finalize())
}

/// Appends `e` to its tenant's chain on `conn` (inside the caller's transaction).
pub(crate) async fn append(conn: &mut sqlx::AnyConnection, e: &AuditEntry) -> Result<i64> {
    let head = sqlx::query(
        "INSERT INTO audit_heads (tenant_id, seq, hash) VALUES ($1, 1, '') \
         ON CONFLICT (tenant_id) DO UPDATE SET seq = audit_heads.seq + 1 RETURNING seq, hash",
    )
    .bind(&e.tenant)
    .fetch_one(&mut *conn)
    .await?;
    let (seq, prev): (i64, String) = (head.try_get("seq")?, head.try_get("hash")?);
    let hash = record_hash(&prev, seq, e);
    sqlx::query(
        "INSERT INTO audit_events (tenant_id, seq, time, request_id, actor, actor_kind, groups, project, domain, \
         action, resource, outcome, status, source, details, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(&e.tenant)
    .bind(seq)
    .bind(e.time)
    .bind(&e.request_id)
    .bind(&e.actor)
    .bind(&e.actor_kind)
    .bind(serde_json::to_string(&e.groups)?)
    .bind(&e.project)
    .bind(&e.domain)
    .bind(&e.action)
    .bind(&e.resource)
    .bind(&e.outcome)
    .bind(e.status)
    .bind(&e.source)
    .bind(e.details.as_ref().map(Value::to_string))
    .bind(&prev)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE audit_heads SET hash = $2 WHERE tenant_id = $1")
        .bind(&e.tenant)
        .bind(&hash)
        .execute(&mut *conn)
        .await?;
    Ok(seq)
}

fn from_row(r: &AnyRow) -> Result<AuditRecord> {
    let groups: String = r.try_get("groups")?;
    let details: Option<String> = r.try_get("details")?;
    Ok(AuditRecord {
        seq: r.try_get("seq")?,
        entry: AuditEntry {
            time: r.try_get("time")?,
            request_id: r.try_get("request_id")?,
            actor: r.try_get("actor")?,
            actor_kind: r.try_get("actor_kind")?,
            groups: serde_json::from_str(&groups)?,
            tenant: r.try_get("tenant_id")?,
            project: r.try_get("project")?,
            domain: r.try_get("domain")?,
            action: r.try_get("action")?,
            resource: r.try_get("resource")?,
            outcome: r.try_get("outcome")?,
            status: r.try_get("status")?,
            source: r.try_get("source")?,
            details: details.map(|d| serde_json::from_str(&d)).transpose()?,
        },
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

/// The request's entry waiting for the transaction that makes its change.
#[derive(Clone, Default)]
pub struct PendingAudit(Arc<Mutex<Option<AuditEntry>>>);

tokio::task_local! {
    static PENDING: PendingAudit;
}

impl PendingAudit {
    /// The entry if no transaction took it.
    pub fn left(&self) -> Option<AuditEntry> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Runs `f` with `entry` waiting for the first write transaction that commits in it; returns
/// `f`'s output and the slot (whose [`PendingAudit::left`] says whether a commit took it).
pub async fn with_pending<F: std::future::Future>(entry: AuditEntry, f: F) -> (F::Output, PendingAudit) {
    let slot = PendingAudit(Arc::new(Mutex::new(Some(entry))));
    let out = PENDING.scope(slot.clone(), f).await;
    (out, slot)
}

/// Refines the waiting entry (a handler naming the tenant or project it acted on); no effect
/// outside a request or once the entry was written.
pub fn note(f: impl FnOnce(&mut AuditEntry)) {
    let _ = PENDING.try_with(|slot| {
        if let Some(e) = slot.0.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            f(e)
        }
    });
}

/// Takes the waiting entry for a commit.
pub(crate) fn take_pending() -> Option<AuditEntry> {
    PENDING.try_with(|slot| slot.0.lock().unwrap_or_else(|e| e.into_inner()).take()).ok().flatten()
}

/// Puts an entry back when its commit failed.
pub(crate) fn restore_pending(e: AuditEntry) {
    let _ = PENDING.try_with(|slot| *slot.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(e));
}

/// Which records to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this tenant's chain (`""` for platform records); all when `None`.
    pub tenant: Option<String>,
    pub project: Option<String>,
    pub actor: Option<String>,
    /// Exact action, or a prefix ending in `*` (`execution.*`).
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub request_id: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// A chain that does not verify, and where.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ChainProblem {
    pub tenant: String,
    pub seq: i64,
    pub problem: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VerifyReport {
    pub chains: u64,
    pub records: u64,
    pub problems: Vec<ChainProblem>,
}

impl PlatformStore<'_> {
    /// Appends one record in its own transaction (a request that changed nothing, a denial).
    pub async fn append_audit(&self, e: &AuditEntry) -> Result<i64> {
        let mut tx = self.store.write.begin().await?;
        let seq = append(&mut tx, e).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Records matching `f`, newest first, a page at a time.
    pub async fn list_audit(&self, f: &AuditFilter, page: &PageRequest) -> Result<Page<AuditRecord>> {
        let after: Option<(i64, String, i64)> = page.after()?;
        let (at, atenant, aseq) = after.unwrap_or((i64::MAX, String::new(), i64::MAX));
        let limit = page.limit();
        let (action, prefix) = match f.action.as_deref() {
            Some(a) if a.ends_with('*') => (a.trim_end_matches('*').to_string(), true),
            Some(a) => (a.to_string(), false),
            None => (String::new(), false),
        };
        let tenant_clause = if f.tenant.is_some() { "tenant_id = $1" } else { "$1 = $1" };
        let sql = format!(
            "SELECT * FROM audit_events WHERE {tenant_clause} \
             AND ($2 = '' OR project = $2) AND ($3 = '' OR actor = $3) \
             AND ($4 = '' OR (CASE WHEN $5 = 1 THEN substr(action, 1, length($4)) = $4 ELSE action = $4 END)) \
             AND ($6 = '' OR outcome = $6) AND time >= $7 AND time < $8 \
             AND (time < $9 OR (time = $9 AND (tenant_id > $10 OR (tenant_id = $10 AND seq < $11)))) \
             AND ($13 = '' OR request_id = $13) \
             ORDER BY time DESC, tenant_id, seq DESC LIMIT $12"
        );
        let rows = sqlx::query(&sql)
            .bind(f.tenant.clone().unwrap_or_default())
            .bind(f.project.clone().unwrap_or_default())
            .bind(f.actor.clone().unwrap_or_default())
            .bind(&action)
            .bind(i64::from(prefix))
            .bind(f.outcome.clone().unwrap_or_default())
            .bind(f.since.unwrap_or(0))
            .bind(f.until.unwrap_or(i64::MAX))
            .bind(at)
            .bind(&atenant)
            .bind(aseq)
            .bind(limit as i64 + 1)
            .bind(f.request_id.clone().unwrap_or_default())
            .fetch_all(&self.store.read)
            .await?;
        let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, limit, |r| (r.entry.time, r.entry.tenant.clone(), r.seq)))
    }

    /// Walks every chain (or one tenant's) and reports each break: a record whose hash does
    /// not match its content, one whose link does not match its predecessor, a missing
    /// sequence number, or a chain whose head runs past its last record.
    pub async fn verify_audit(&self, tenant: Option<&str>) -> Result<VerifyReport> {
        let heads = sqlx::query("SELECT * FROM audit_heads WHERE ($1 = '*' OR tenant_id = $1) ORDER BY tenant_id")
            .bind(tenant.unwrap_or("*"))
            .fetch_all(&self.store.read)
            .await?;
        let mut report = VerifyReport { chains: 0, records: 0, problems: vec![] };
        for h in heads {
            let t: String = h.try_get("tenant_id")?;
            let head_seq: i64 = h.try_get("seq")?;
            let head_hash: String = h.try_get("hash")?;
            let mut expect_seq: i64 = h.try_get::<i64, _>("pruned_seq")? + 1;
            let mut prev: String = h.try_get("pruned_hash")?;
            report.chains += 1;
            let mut problem =
                |seq: i64, p: String| report.problems.push(ChainProblem { tenant: t.clone(), seq, problem: p });
            let mut after = expect_seq - 1;
            loop {
                let rows =
                    sqlx::query("SELECT * FROM audit_events WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT 1000")
                        .bind(&t)
                        .bind(after)
                        .fetch_all(&self.store.read)
                        .await?;
                if rows.is_empty() {
                    break;
                }
                for r in &rows {
                    let rec = from_row(r)?;
                    report.records += 1;
                    if rec.seq != expect_seq {
                        problem(expect_seq, format!("records {expect_seq}..{} are missing", rec.seq - 1));
                    } else if rec.prev_hash != prev {
                        problem(rec.seq, "its link does not match the record before it".into());
                    }
                    if record_hash(&rec.prev_hash, rec.seq, &rec.entry) != rec.hash {
                        problem(rec.seq, "its content does not match its hash (edited)".into());
                    }
                    prev = rec.hash.clone();
                    expect_seq = rec.seq + 1;
                    after = rec.seq;
                }
            }
            if expect_seq - 1 != head_seq {
                problem(expect_seq, format!("records {expect_seq}..{head_seq} are missing at the end of the chain"));
            } else if prev != head_hash {
                problem(head_seq, "the last record does not match the chain's head".into());
            }
        }
        Ok(report)
    }

    /// Deletes `tenant`'s records older than `before`, moving the chain's anchor to the last
    /// one deleted; returns how many were deleted.
    pub async fn prune_audit(&self, tenant: &str, before: i64) -> Result<u64> {
        let mut tx = self.store.write.begin().await?;
        let last = sqlx::query(
            "SELECT seq, hash FROM audit_events WHERE tenant_id = $1 AND time < $2 ORDER BY seq DESC LIMIT 1",
        )
        .bind(tenant)
        .bind(before)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(last) = last else { return Ok(0) };
        let (seq, hash): (i64, String) = (last.try_get("seq")?, last.try_get("hash")?);
        let n = sqlx::query("DELETE FROM audit_events WHERE tenant_id = $1 AND seq <= $2")
            .bind(tenant)
            .bind(seq)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("UPDATE audit_heads SET pruned_seq = $2, pruned_hash = $3 WHERE tenant_id = $1")
            .bind(tenant)
            .bind(seq)
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Every chain's tenant with that tenant's tier (`""`/platform: `standard`), for retention.
    pub async fn audit_chains(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT h.tenant_id, COALESCE(t.tier, 'standard') AS tier FROM audit_heads h \
             LEFT JOIN tenants t ON t.id = h.tenant_id ORDER BY h.tenant_id",
        )
        .fetch_all(&self.store.read)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("tenant_id")?, r.try_get("tier")?))).collect()
    }
}

/// `now` for records made outside a request.
pub fn entry_now(tenant: &str, actor: &str, actor_kind: &str, action: &str, resource: &str) -> AuditEntry {
    AuditEntry {
        time: now_ms(),
        actor: actor.into(),
        actor_kind: actor_kind.into(),
        tenant: tenant.into(),
        action: action.into(),
        resource: resource.into(),
        outcome: "ok".into(),
        ..Default::default()
    }
}
