//! One log line per request — method, route, status, latency, caller and a request id — and the
//! request id echoed in `X-Request-Id`, so a client's report can be found in the log.

use crate::access::Principal;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

static NEXT: AtomicU64 = AtomicU64::new(1);
const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The caller's identity, recorded by admission for the log line.
#[derive(Clone)]
pub struct Caller(pub String);

fn request_id(req: &Request) -> String {
    req.headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:x}-{:x}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)))
}

pub async fn log(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id = request_id(&req);
    req.extensions_mut().insert(crate::audit::RequestId(id.clone()));
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "-".into());
    let mut res = next.run(req).await;
    let who = res.extensions().get::<Caller>().map(|c| c.0.clone()).unwrap_or_else(|| "-".into());
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HEADER, v);
    }
    let latency = started.elapsed().as_secs_f64();
    state.http_metrics.observe(method.as_str(), &route, res.status().as_u16(), latency);
    tracing::info!(
        request_id = %id,
        method = %method,
        route = %route,
        status = res.status().as_u16(),
        latency_ms = latency * 1000.0,
        caller = %who,
        "request"
    );
    res
}

impl From<&Principal> for Caller {
    fn from(p: &Principal) -> Self {
        Caller(format!("{}:{}", p.kind, p.subject))
    }
}
