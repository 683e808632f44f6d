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

#[derive(Default)]
struct Counts {
    calls: HashMap<(String, String, i64), i64>,
    users: HashSet<(String, i64, String)>,
}

#[derive(Default)]
pub struct Usage {
    counts: Mutex<Counts>,
}

impl Usage {
    /// Counts one admitted call against its tenant (and project), and its caller as active.
    pub fn count(&self, scope: &Scope, who: &Principal) {
        let tenant =
            if scope.tenant.is_empty() { who.tenant.clone().unwrap_or_default() } else { scope.tenant.clone() };
        if tenant.is_empty() {
            return; // platform-level calls belong to no tenant
        }
        let hour = tf_store::now_ms() / HOUR_MS * HOUR_MS;
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *c.calls.entry((tenant.clone(), scope.project.clone().unwrap_or_default(), hour)).or_default() += 1;
        if !c.users.contains(&(tenant.clone(), hour, who.subject.clone())) {
            c.users.insert((tenant, hour, who.subject.clone()));
        }
    }

    /// Adds what was counted to the store; on failure the counts are kept for the next flush.
    pub async fn flush(&self, store: &Store) {
        let taken = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|e| e.into_inner()));
        if taken.calls.is_empty() && taken.users.is_empty() {
            return;
        }
        let calls: Vec<(String, String, i64, i64)> =
            taken.calls.iter().map(|((t, p, w), n)| (t.clone(), p.clone(), *w, *n)).collect();
        let users: Vec<(String, i64, String)> = taken.users.iter().cloned().collect();
        if let Err(e) = store.platform().add_usage(&calls, &users).await {
            tracing::warn!(error = %e, "cannot store API-call counts; keeping them for the next flush");
            let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            for (k, n) in taken.calls {
                *c.calls.entry(k).or_default() += n;
            }
            c.users.extend(taken.users);
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
