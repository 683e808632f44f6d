//! The schedule loop: a component that fires the due ticks of active launch plans.
//!
//! Each tick starts an execution named after the tick (`plan-YYYYMMDDhhmmss`), then claims the
//! tick by compare-and-set on the plan's `next_fire_at`. So a tick fires once however many
//! servers run this loop and whenever one is killed: a second server (or this one after a
//! crash between the two steps) meets the existing execution — a conflict, recorded as already
//! started — and the claim lets only one of them advance the schedule.
//!
//! Catch-up: ticks missed while no server ran collapse into the most recent one, which fires
//! once; the outcome says how many were skipped.

use crate::plan::{Launch, LaunchError, Target};
use crate::Launcher;
use std::sync::Arc;
use std::time::Duration;
use tf_model::schedule::{tick_execution_name, Schedule};
use tf_model::spec::ScheduleSpec;
use tf_store::{now_ms, DueSchedule, ExecutionKey, Fired};
use tokio::sync::Notify;

/// Longest sleep between looks at the store: activations made by other servers are seen
/// within this time.
const POLL: Duration = Duration::from_secs(1);
/// Ticks fired per look.
const BATCH: i64 = 100;
/// Pause before retrying ticks the store could not take.
const RETRY: Duration = Duration::from_millis(200);

pub(crate) async fn run(launcher: Launcher, wake: Arc<Notify>) {
    loop {
        // One look at the earliest tick; the due ones are read only when there are some.
        let next = match launcher.store.next_schedule_tick().await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the schedules; retrying");
                None
            }
        };
        let now = now_ms();
        if next.is_some_and(|t| t <= now) {
            match launcher.store.due_schedules(now, BATCH).await {
                Ok(due) if !due.is_empty() => {
                    let mut progressed = false;
                    for d in due {
                        progressed |= fire(&launcher, d, now).await;
                    }
                    // Look again: more may be due, or the next tick is now known. When nothing
                    // moved (the store refused), wait a little before retrying.
                    if !progressed {
                        tokio::time::sleep(RETRY).await;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read due schedules; retrying"),
            }
        }
        let wait = match next.filter(|t| *t > now) {
            Some(t) => Duration::from_millis((t - now).min(POLL.as_millis() as i64) as u64),
            None => POLL,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => {}
        }
    }
}

/// Fires one due tick and claims it; false when it must be retried.
async fn fire(launcher: &Launcher, d: DueSchedule, now: i64) -> bool {
    let st = d.state;
    let (Some(version), Some(next), Some(schedule)) = (st.active_version.clone(), st.next_fire_at, st.schedule.clone())
    else {
        return false;
    };
    let store = launcher.store.tenant(&d.tenant);
    let anchor = st.anchor_at.unwrap_or(next);
    let parsed = serde_json::from_value::<ScheduleSpec>(schedule)
        .map_err(|e| e.to_string())
        .and_then(|s| Schedule::parse(&s).map_err(|(_, e)| e));
    let sched = match parsed {
        Ok(s) => s,
        Err(e) => {
            // Cannot happen for a registered plan; stop the schedule rather than spin on it.
            let f =
                Fired { tick: next, next_fire_at: None, outcome: format!("failed: schedule: {e}"), execution: None };
            return store.claim_tick(&st.project, &st.domain, &st.name, &version, next, &f).await.is_ok();
        }
    };
    let Some(due) = sched.due(next, now, anchor) else { return false };
    let name = tick_execution_name(&st.name, due.tick);
    let l = Launch {
        key: ExecutionKey { project: st.project.clone(), domain: st.domain.clone(), name: name.clone() },
        target: Target::LaunchPlan { name: st.name.clone(), version: Some(version.clone()) },
        inputs: Default::default(),
        created_by: st.updated_by.clone(),
        max_parallelism: None,
        labels: Default::default(),
        relaunch_of: None,
        scheduled_at: Some(due.tick),
        priority: 0,
    };
    let archived = match store.get_project(&st.project).await {
        Ok(p) => p.is_none_or(|p| p.state == tf_store::ProjectState::Archived),
        Err(e) => {
            tracing::warn!(tenant = %d.tenant, launch_plan = %st.name, error = %e, "cannot fire a schedule tick; retrying");
            return false;
        }
    };
    let launched = if archived {
        Err(LaunchError::Refused(format!("project `{}` is archived and read-only", st.project)))
    } else {
        launcher.launch(&store, &l).await
    };
    let (mut outcome, execution) = match launched {
        Ok(_) => ("started".to_string(), Some(name)),
        // Fired before: by another server, or by this one just before a crash.
        Err(LaunchError::Conflict(_)) => ("started".to_string(), Some(name)),
        Err(LaunchError::Refused(m)) => (format!("skipped: {m}"), None),
        Err(LaunchError::Invalid { field, message }) => (format!("failed: {field}: {message}"), None),
        Err(LaunchError::NotFound(m)) => (format!("failed: {m}"), None),
        Err(LaunchError::Store(e)) => {
            tracing::warn!(tenant = %d.tenant, launch_plan = %st.name, error = %e, "cannot fire a schedule tick; retrying");
            return false;
        }
    };
    if due.missed > 0 {
        outcome.push_str(&format!(" (catch-up: {} earlier missed ticks not run)", due.missed));
    }
    let f = Fired { tick: due.tick, next_fire_at: Some(due.next), outcome: outcome.clone(), execution };
    match store.claim_tick(&st.project, &st.domain, &st.name, &version, next, &f).await {
        Ok(true) => {
            tracing::info!(
                tenant = %d.tenant, project = %st.project, domain = %st.domain, launch_plan = %st.name,
                tick = due.tick, outcome = %outcome, "schedule fired"
            );
            true
        }
        Ok(false) => true, // another server claimed it
        Err(e) => {
            tracing::warn!(tenant = %d.tenant, launch_plan = %st.name, error = %e, "cannot record a schedule tick");
            false
        }
    }
}

/// The first tick of a schedule activated at `now`.
pub fn first_tick(s: &ScheduleSpec, now: i64) -> Result<i64, String> {
    let sched = Schedule::parse(s).map_err(|(_, e)| e)?;
    sched.next_after(now, now).ok_or_else(|| "the schedule never fires".to_string())
}
