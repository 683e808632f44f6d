//! The reconciler: the component that owns the loop converging every workspace. A full pass
//! reads workspaces a page at a time together with what exists for them (a few range queries
//! per page), plans each in memory, and writes only for those whose plan is not empty — so a
//! pass over unchanged workspaces writes nothing; it also carries retiring workspaces through
//! their phases. Full passes run at start (finishing whatever a crash interrupted) and every
//! `reconcile_interval`. Between them, quick passes visit only the workspaces that need it —
//! declarations not yet converged and retirements under way — when kicked, every second while
//! a retirement waits, and with back-off (1 s doubling to 60 s) while a convergence fails.
//!
//! Invariant: a pass never writes for a workspace whose plan is empty, and every write goes
//! through [`super::converge_id`] or [`super::retire::advance`], which re-read under the
//! workspace's lock.

use super::{canonical, converge_id, retire, templates, Outcome};
use crate::AppState;
use serde::Serialize;
use std::time::{Duration, Instant};
use tf_model::workspace::{plan, WorkspaceSpec};

/// Workspaces read per page.
const PAGE: i64 = 500;
/// How soon to pass again while a retirement is under way.
const RETIRING_RECHECK: Duration = Duration::from_secs(1);

/// What one pass did.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct PassReport {
    /// Epoch ms when the pass began.
    pub started_at: i64,
    pub wall_ms: f64,
    /// Workspaces looked at.
    pub workspaces: u64,
    /// Already converged: nothing written.
    pub unchanged: u64,
    /// Converged by this pass (steps written).
    pub converged: u64,
    /// Retirement phases completed by this pass.
    pub retirement_phases: u64,
    /// Workspaces whose convergence or retirement failed (retried next pass; see each
    /// workspace's `last_error`).
    pub failed: u64,
    /// Workspaces still being retired.
    pub retiring: u64,
    /// Of those, how many are not yet in retention (waiting for aborts, export or purge).
    pub retiring_in_progress: u64,
    /// Epoch ms of the earliest retention end among retiring workspaces.
    pub next_purge_at: Option<i64>,
}

/// Longest wait between quick passes while a convergence keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Passes until the task is aborted.
pub async fn run(s: AppState) {
    let interval = s.workspaces.settings.interval;
    let mut next_full = Instant::now();
    let mut backoff = RETIRING_RECHECK;
    loop {
        let report = if Instant::now() >= next_full {
            next_full = Instant::now() + interval;
            pass(&s).await
        } else {
            quick_pass(&s).await
        };
        let mut wait = next_full.saturating_duration_since(Instant::now());
        if report.retiring_in_progress > 0 {
            wait = wait.min(RETIRING_RECHECK);
        }
        if report.failed > 0 {
            wait = wait.min(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        } else {
            backoff = RETIRING_RECHECK;
        }
        if let Some(t) = report.next_purge_at {
            wait = wait.min(Duration::from_millis((t - tf_store::now_ms()).max(20) as u64));
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = s.workspaces.kick.notified() => {}
        }
    }
}

/// Visits only declarations not yet converged and workspaces being retired.
pub async fn quick_pass(s: &AppState) -> PassReport {
    let t0 = Instant::now();
    let mut r = PassReport { started_at: tf_store::now_ms(), ..Default::default() };
    let platform = s.store.platform();
    match platform.pending_workspaces(PAGE).await {
        Ok(pending) => {
            for rec in pending {
                r.workspaces += 1;
                converge_one(s, &rec.id, &mut r).await;
            }
        }
        Err(e) => {
            r.failed += 1;
            tracing::warn!(error = %e, "workspace reconciliation could not read the store; retrying");
        }
    }
    let mut after = String::new();
    loop {
        let page = match platform.retiring_workspaces(&after, PAGE).await {
            Ok(p) => p,
            Err(e) => {
                r.failed += 1;
                tracing::warn!(error = %e, "workspace reconciliation could not read the store; retrying");
                break;
            }
        };
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        for rec in &page {
            r.workspaces += 1;
            advance_one(s, rec, &mut r).await;
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    r.wall_ms = t0.elapsed().as_secs_f64() * 1000.0;
    r
}

async fn converge_one(s: &AppState, id: &str, r: &mut PassReport) {
    // What the reconciler changes is audited like a request (only if it changes anything).
    let entry =
        tf_store::audit::entry_now(id, "reconciler", "system", "workspace.converge", &format!("workspaces/{id}"));
    let (result, _) = tf_store::audit::with_pending(entry, converge_id(s, id)).await;
    match result {
        Ok(Some(Outcome::Unchanged)) | Ok(None) => r.unchanged += 1,
        Ok(Some(_)) => r.converged += 1,
        Err(e) => {
            r.failed += 1;
            tracing::warn!(workspace = %id, error = %e, "converging the workspace failed; retrying");
        }
    }
}

/// Moves a retiring workspace on and counts where it stands.
async fn advance_one(s: &AppState, rec: &tf_store::WorkspaceRecord, r: &mut PassReport) {
    r.retiring += 1;
    let now = match retire::advance(s, rec).await {
        Ok((outcome, now)) => {
            if let Outcome::Converged { steps } = outcome {
                r.retirement_phases += steps as u64;
            }
            now
        }
        Err(e) => {
            r.failed += 1;
            tracing::warn!(workspace = %rec.id, error = %e, "retiring the workspace failed; retrying");
            let _ = s.store.platform().retirement_failed(&rec.id, &e.to_string()).await;
            Some(rec.clone())
        }
    };
    match now {
        Some(now) if now.phase.as_deref() == Some("retained") => {
            r.next_purge_at = match (r.next_purge_at, now.purge_after) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        None => r.retiring -= 1,
        Some(_) => r.retiring_in_progress += 1,
    }
}

/// One pass over every workspace.
pub async fn pass(s: &AppState) -> PassReport {
    let t0 = Instant::now();
    let mut r = PassReport { started_at: tf_store::now_ms(), ..Default::default() };
    let mut after = String::new();
    let tpl = templates();
    loop {
        let page = match s.store.platform().observe_workspaces(&after, PAGE).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "workspace reconciliation could not read the store; retrying next pass");
                r.failed += 1;
                break;
            }
        };
        let Some(last) = page.last() else { break };
        after = last.record.id.clone();
        for obs in &page {
            r.workspaces += 1;
            let rec = &obs.record;
            if rec.state != "active" {
                advance_one(s, rec, &mut r).await;
                continue;
            }
            let needs_work = rec.observed_generation < rec.generation
                || match serde_json::from_value::<WorkspaceSpec>(rec.spec.clone()).map(canonical) {
                    Ok(Ok(spec)) => !plan(&rec.id, &spec, &obs.observed, &tpl).is_empty(),
                    _ => true,
                };
            if !needs_work {
                r.unchanged += 1;
                continue;
            }
            converge_one(s, &rec.id, &mut r).await;
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    r.wall_ms = t0.elapsed().as_secs_f64() * 1000.0;
    if r.converged + r.retirement_phases + r.failed > 0 {
        tracing::info!(
            workspaces = r.workspaces,
            converged = r.converged,
            retirement_phases = r.retirement_phases,
            failed = r.failed,
            wall_ms = r.wall_ms,
            "workspace reconciliation pass"
        );
    }
    *s.workspaces.last_pass.lock().unwrap_or_else(|e| e.into_inner()) = Some(r.clone());
    r
}
