//! Liveness and readiness: the only routes without a credential. They reveal nothing but up/down.

use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the store answers and tasks can run: the sandbox works, or the operator turned
/// isolation off (which is reported here too).
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let executor = state.engine.readiness();
    let store_ok = match state.store.ping().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "readiness: store unreachable");
            false
        }
    };
    let ready = store_ok && executor.ready();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "store": if store_ok { "ok" } else { "unreachable" },
        "executor": {"sandbox": executor.sandbox, "refused": executor.refused},
    });
    (if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body))
}
