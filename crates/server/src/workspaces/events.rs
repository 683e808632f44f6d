//! Delivers workspace events to the configured webhook as CloudEvents (structured JSON mode,
//! `application/cloudevents+json`), oldest first, retrying with exponential back-off (1 s
//! doubling up to 5 min) until the receiver answers 2xx.
//!
//! Invariant: an event is deleted only after a 2xx, so every event is delivered at least once
//! (receivers deduplicate by `id`); while an event of a workspace waits for a retry, later
//! events of that workspace wait behind it, so each workspace's events arrive in order.

use crate::AppState;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;
use tf_store::{now_ms, WorkspaceEvent};

const BATCH: i64 = 200;
const MAX_BACKOFF_MS: i64 = 300_000;
/// How often due retries are looked for when nothing new was written.
const IDLE: Duration = Duration::from_secs(1);

/// The CloudEvents envelope of an event.
pub fn envelope(e: &WorkspaceEvent, source: &str) -> Value {
    let time =
        humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(e.created_at.max(0) as u64));
    json!({
        "specversion": "1.0",
        "id": e.id,
        "source": source,
        "type": format!("io.tenantflow.{}", e.kind),
        "subject": e.workspace_id,
        "time": time.to_string(),
        "datacontenttype": "application/json",
        "data": e.data,
    })
}

/// Delivers until the task is aborted.
pub async fn run(s: AppState) {
    let Some(url) = s.workspaces.settings.events_url.clone() else { return };
    let source = format!("{}/api/v1/workspaces", s.workspaces.settings.public_url);
    let http = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook client; workspace events are not delivered");
            return;
        }
    };
    loop {
        let due = match s.store.platform().due_workspace_events(now_ms(), BATCH).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read workspace events; retrying");
                vec![]
            }
        };
        let mut held: HashSet<String> = HashSet::new();
        for e in &due {
            if held.contains(&e.workspace_id) {
                continue;
            }
            let mut req = http
                .post(&url)
                .header("content-type", "application/cloudevents+json")
                .body(envelope(e, &source).to_string());
            if let Some(t) = &s.workspaces.settings.events_token {
                req = req.bearer_auth(t);
            }
            let outcome = match req.send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("webhook answered {}", r.status())),
                Err(e) => Err(format!("webhook unreachable: {e}")),
            };
            let stored = match outcome {
                Ok(()) => s.store.platform().event_delivered(&e.id).await,
                Err(why) => {
                    held.insert(e.workspace_id.clone());
                    let backoff = (1000i64 << e.attempts.clamp(0, 20)).min(MAX_BACKOFF_MS);
                    tracing::debug!(event = %e.id, attempts = e.attempts + 1, error = %why, "workspace event not delivered; will retry");
                    s.store.platform().event_failed(&e.id, now_ms() + backoff, &why).await
                }
            };
            if let Err(e) = stored {
                tracing::warn!(error = %e, "cannot record a workspace event's delivery; it may be sent again");
            }
        }
        if due.len() as i64 == BATCH && held.len() < due.len() {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(IDLE) => {}
            _ = s.workspaces.events_ready.notified() => {}
        }
    }
}
