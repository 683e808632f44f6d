//! Keeps this server's in-memory access index and project directory in step with changes
//! made by other servers sharing the database. Every access change bumps a generation counter
//! in the same transaction; this loop polls it and rebuilds when someone else moved it.
//! Changes made through this server are applied at once and counted, so they cause no rebuild.

use crate::AppState;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// How often the generation is polled; another server's change is seen within about this long.
pub const INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Generation {
    /// The generation the in-memory state reflects.
    seen: AtomicI64,
    /// Access changes committed by this server since the last poll.
    own: AtomicU64,
}

impl Generation {
    pub fn new(seen: i64) -> Generation {
        Generation { seen: AtomicI64::new(seen), own: AtomicU64::new(0) }
    }

    /// Call after this server committed an access change and applied it in memory.
    pub fn note_own_write(&self) {
        self.own.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls until the task is aborted.
pub async fn run(state: AppState) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = poll(&state).await {
            tracing::warn!(error = %e, "refreshing the access index failed; retrying");
        }
    }
}

async fn poll(state: &AppState) -> Result<(), tf_store::Error> {
    // Registrations by anyone (ours included, harmlessly) empty the listing cache.
    let registry = state.store.registry_generation().await?;
    if registry > state.listings.generation() {
        state.listings.advance(registry);
    }
    let g = &state.generation;
    let current = state.store.access_generation().await?;
    let seen = g.seen.load(Ordering::SeqCst);
    if current == seen {
        return Ok(());
    }
    let own = g.own.swap(0, Ordering::SeqCst) as i64;
    if current - seen == own {
        g.seen.store(current, Ordering::SeqCst);
        return Ok(());
    }
    let policy = crate::authz::Authz::build(&state.store).await?;
    state.directory.reload(&state.store).await?;
    state.authz.replace(policy);
    g.seen.store(current, Ordering::SeqCst);
    tracing::info!(generation = current, "access index rebuilt after changes by another server");
    Ok(())
}
