//! Retiring a workspace, phase by phase: access revoked (with the request, in one
//! transaction) → running executions aborted → records, blobs and the data area exported to
//! the retention area → live records and blobs purged → after the retention period, the
//! export and the tenant itself purged.
//!
//! Invariant: each phase is idempotent and recorded by compare-and-set when done, so a crash
//! anywhere repeats at most the phase it interrupted and never skips one.

use super::Outcome;
use crate::AppState;
use serde_json::json;
use tf_store::{now_ms, WorkspaceRecord};

/// Where a retired workspace's export lives in blob storage.
pub fn export_prefix(rec: &WorkspaceRecord) -> String {
    format!("retained/{}/{}", rec.id, rec.deleted_at.unwrap_or_default())
}

/// Starts retiring workspace `id`: from this commit on nobody in it can do anything. Returns
/// the record (already retiring: unchanged), or `None` when there is no such workspace.
pub async fn start(s: &AppState, id: &str) -> Result<Option<WorkspaceRecord>, tf_store::Error> {
    let _g = s.workspaces.lock(id).await;
    let before = s.store.platform().get_workspace(id).await?;
    let Some(before) = before else { return Ok(None) };
    if before.state != "active" {
        return Ok(Some(before));
    }
    let event = s.workspaces.event("workspace.deleting", json!({"phase": "revoked"}));
    let rec = s.store.platform().retire_workspace(id, event.as_ref()).await?;
    // Committed: drop every grant of the tenant here at once; other servers follow the
    // access generation.
    s.authz.update(|p| {
        p.remove_tenant_roles(id);
    });
    s.tokens.evict_tenant(id);
    if let Some(p) = s.store.tenant(id).get_project(id).await? {
        s.directory.put(p);
    }
    s.generation.note_own_write();
    s.workspaces.kick.notify_one();
    s.workspaces.events_ready.notify_one();
    Ok(rec)
}

/// Carries a retiring workspace through as many phases as can finish now; returns what it
/// did and where the workspace stands (`None`: forgotten).
pub async fn advance(
    s: &AppState,
    rec: &WorkspaceRecord,
) -> Result<(Outcome, Option<WorkspaceRecord>), tf_store::Error> {
    let _g = s.workspaces.lock(&rec.id).await;
    let mut moved = 0;
    let Some(mut rec) = s.store.platform().get_workspace(&rec.id).await? else { return Ok((Outcome::Unchanged, None)) };
    loop {
        let phase = rec.phase.clone().unwrap_or_default();
        // Each phase's change is audited in the transaction that records it.
        let entry = tf_store::audit::entry_now(
            &rec.id,
            "reconciler",
            "system",
            &format!("workspace.retire.{phase}"),
            &format!("workspaces/{}", rec.id),
        );
        let step = async {
            match phase.as_str() {
                "revoked" => abort(s, &rec).await,
                "aborted" => export(s, &rec).await,
                "exported" => purge_live(s, &rec).await,
                "retained" => purge_retained(s, &rec).await,
                _ => Ok(false),
            }
        };
        let done = tf_store::audit::with_pending(entry, step).await.0?;
        if !done {
            break;
        }
        moved += 1;
        s.workspaces.events_ready.notify_one();
        match s.store.platform().get_workspace(&rec.id).await? {
            Some(r) => rec = r,
            None => return Ok((Outcome::Converged { steps: moved }, None)),
        }
    }
    let outcome = if moved == 0 { Outcome::Unchanged } else { Outcome::Converged { steps: moved } };
    Ok((outcome, Some(rec)))
}

/// Asks every unfinished execution to stop; done when none is left running.
async fn abort(s: &AppState, rec: &WorkspaceRecord) -> Result<bool, tf_store::Error> {
    let scope = s.store.tenant(&rec.id);
    let running = scope.unfinished_keys().await?;
    for key in &running {
        if scope.request_abort(key, "workspace-retired").await? {
            s.engine.terminate(&rec.id, key, "workspace-retired");
        }
    }
    if !running.is_empty() {
        return Ok(false);
    }
    let event = s.workspaces.event("workspace.deleting", json!({"phase": "aborted"}));
    s.store.platform().advance_retirement(&rec.id, "revoked", "aborted", event.as_ref()).await
}

/// Copies the tenant's records, blobs and data area to the retention area.
async fn export(s: &AppState, rec: &WorkspaceRecord) -> Result<bool, tf_store::Error> {
    let blobs = s.engine.blobs();
    let prefix = export_prefix(rec);
    let fail = |e: tf_engine::BlobError| tf_store::Error::Corrupt(format!("export of workspace `{}`: {e}", rec.id));
    let scope = s.store.tenant(&rec.id);
    let mut counts = serde_json::Map::new();
    for table in tf_store::EXPORTED_TABLES {
        let rows = scope.export_table(table).await?;
        counts.insert(table.to_string(), json!(rows.len()));
        let body = serde_json::to_vec(&rows)?;
        blobs.put_bytes(&format!("{prefix}/records/{table}.json"), body).await.map_err(fail)?;
    }
    let copied = blobs.copy_prefix(&format!("tenants/{}", rec.id), &format!("{prefix}/blobs")).await.map_err(fail)?;
    let data = s.engine.data_dir(&rec.id);
    let data_bytes =
        if data.is_dir() { blobs.put_dir(&format!("{prefix}/data"), &data).await.map_err(fail)? } else { 0 };
    let manifest = json!({
        "workspace": rec.id, "spec": rec.spec, "deleted_at": rec.deleted_at, "records": counts,
        "blobs": copied, "data_bytes": data_bytes,
    });
    blobs.put_bytes(&format!("{prefix}/manifest.json"), serde_json::to_vec_pretty(&manifest)?).await.map_err(fail)?;
    let event = s.workspaces.event("workspace.deleting", json!({"phase": "exported", "export": blobs.uri(&prefix)}));
    s.store.platform().advance_retirement(&rec.id, "aborted", "exported", event.as_ref()).await
}

/// Deletes the tenant's live blobs, data area and records; the export stays until retention ends.
async fn purge_live(s: &AppState, rec: &WorkspaceRecord) -> Result<bool, tf_store::Error> {
    let fail = |e: String| tf_store::Error::Corrupt(format!("purge of workspace `{}`: {e}", rec.id));
    s.engine.blobs().delete_prefix(&format!("tenants/{}", rec.id)).await.map_err(|e| fail(e.to_string()))?;
    let data = s.engine.data_dir(&rec.id);
    if data.exists() {
        std::fs::remove_dir_all(&data).map_err(|e| fail(format!("{}: {e}", data.display())))?;
    }
    let purge_after = rec.deleted_at.unwrap_or_else(now_ms) + s.workspaces.settings.retention.as_millis() as i64;
    let event = s.workspaces.event("workspace.deleting", json!({"phase": "retained", "purge_after": purge_after}));
    let moved = s.store.platform().purge_workspace_records(&rec.id, purge_after, event.as_ref()).await?;
    if moved {
        s.authz.update(|p| p.remove_project(&rec.id));
        s.directory.remove(&rec.id);
        s.generation.note_own_write();
    }
    Ok(moved)
}

/// Once the retention period is over: deletes the export and forgets the workspace.
async fn purge_retained(s: &AppState, rec: &WorkspaceRecord) -> Result<bool, tf_store::Error> {
    if rec.purge_after.is_some_and(|t| now_ms() < t) {
        return Ok(false);
    }
    s.engine
        .blobs()
        .delete_prefix(&format!("retained/{}", rec.id))
        .await
        .map_err(|e| tf_store::Error::Corrupt(format!("purge of workspace `{}`'s export: {e}", rec.id)))?;
    let event = s.workspaces.event("workspace.purged", json!({}));
    s.store.platform().forget_workspace(&rec.id, event.as_ref()).await
}
