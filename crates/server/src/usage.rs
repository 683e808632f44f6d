//! API-call and active-user metering: counted in memory per tenant, project and hour as
//! requests are admitted, and added to the store every few seconds (and at shutdown), so
//! metering costs a request a hash-map update, never a write.
//!
//! Invariant: memory holds only what arrived since the last flush (bounded by the traffic of
//! one interval); a flush adds to the stored counts, so counts are never lost by a flush and
//! at most one interval's worth is lost by a crash.

use crate::access::Principal;
use crate::audit::Scope;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use tf_store::Store;

/// How often counts are added to the store.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// Counting window.
pub const HOUR_MS: i64 = 3_600_000;

/// Counts by tenant, then hour, then project (lookups by `&str`: no allocation for a tenant,
/// hour and project already counted).
#[derive(Default)]
struct Counts {
    calls: HashMap<String, HashMap<i64, HashMap<String, i64>>>,
    users: HashMap<String, HashMap<i64, HashSet<String>>>,
}

#[derive(Default)]
pub struct Usage {
    counts: Mutex<Counts>,
}

impl Usage {
    /// Counts one admitted call against its tenant (and project), and its caller as active.
    pub fn count(&self, scope: &Scope, who: &Principal) {
        let tenant = if scope.tenant.is_empty() { who.tenant.as_deref().unwrap_or("") } else { &scope.tenant };
        if tenant.is_empty() {
            return; // platform-level calls belong to no tenant
        }
        let hour = tf_store::now_ms() / HOUR_MS * HOUR_MS;
        let project = scope.project.as_deref().unwrap_or("");
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let by_project = match c.calls.get_mut(tenant) {
            Some(h) => h.entry(hour).or_default(),
            None => c.calls.entry(tenant.to_string()).or_default().entry(hour).or_default(),
        };
        match by_project.get_mut(project) {
            Some(n) => *n += 1,
            None => drop(by_project.insert(project.to_string(), 1)),
        }
        let users = match c.users.get_mut(tenant) {
            Some(h) => h.entry(hour).or_default(),
            None => c.users.entry(tenant.to_string()).or_default().entry(hour).or_default(),
        };
        if !users.contains(who.subject.as_str()) {
            users.insert(who.subject.clone());
        }
    }

    /// Adds what was counted to the store; on failure the counts are kept for the next flush.
    pub async fn flush(&self, store: &Store) {
        let taken = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|e| e.into_inner()));
        if taken.calls.is_empty() && taken.users.is_empty() {
            return;
        }
        let mut calls: Vec<(String, String, i64, i64)> = Vec::new();
        for (t, hours) in &taken.calls {
            for (h, projects) in hours {
                calls.extend(projects.iter().map(|(p, n)| (t.clone(), p.clone(), *h, *n)));
            }
        }
        let mut users: Vec<(String, i64, String)> = Vec::new();
        for (t, hours) in &taken.users {
            for (h, actors) in hours {
                users.extend(actors.iter().map(|a| (t.clone(), *h, a.clone())));
            }
        }
        if let Err(e) = store.platform().add_usage(&calls, &users).await {
            tracing::warn!(error = %e, "cannot store API-call counts; keeping them for the next flush");
            let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            for (t, hours) in taken.calls {
                for (h, projects) in hours {
                    for (p, n) in projects {
                        *c.calls.entry(t.clone()).or_default().entry(h).or_default().entry(p).or_default() += n;
                    }
                }
            }
            for (t, hours) in taken.users {
                for (h, actors) in hours {
                    c.users.entry(t.clone()).or_default().entry(h).or_default().extend(actors);
                }
            }
        }
    }
}

/// Flushes until the task is aborted.
pub async fn run(s: crate::AppState) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        s.usage.flush(&s.store).await;
    }
}
