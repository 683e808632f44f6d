//! Authentication and admission: the layer every request passes through. It finds the route's
//! declared access, authenticates the bearer credential, asks [`crate::access::decide`], and
//! only then lets the request reach its handler.

use crate::access::{decide, Access, Decision, Principal};
use crate::error::{ApiError, Code};
use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().cloned();
    // Unknown paths and methods still need a credential: their 404/405 is information too.
    let access = matched
        .as_ref()
        .and_then(|m| state.access.get(&(req.method().clone(), m.as_str())).copied())
        .unwrap_or(Access::Authenticated);
    if access == Access::Public {
        return next.run(req).await;
    }
    let header = req.headers().get(header::AUTHORIZATION).cloned();
    let principal = match principal(&state, header).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match decide(&principal, access) {
        Decision::Allow => {}
        Decision::Deny => return ApiError::new(Code::PermissionDenied, "permission denied").into_response(),
        Decision::Hide => return ApiError::not_found("not found").into_response(),
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

async fn principal(state: &AppState, value: Option<axum::http::HeaderValue>) -> Result<Principal, ApiError> {
    let Some(value) = value else {
        return Err(ApiError::unauthenticated("missing credential: send `Authorization: Bearer <token>`"));
    };
    let value = value.to_str().map_err(|_| ApiError::unauthenticated("malformed Authorization header"))?;
    let Some(secret) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) else {
        return Err(ApiError::unauthenticated("unsupported Authorization scheme; expected `Bearer <token>`"));
    };
    let secret = secret.trim();
    if secret.is_empty() || secret.len() > 8192 {
        return Err(ApiError::unauthenticated("invalid credential"));
    }
    match state.store.platform().authenticate(secret).await {
        Ok(Some(t)) => Ok(Principal { subject: t.subject, kind: t.kind, tenant: t.tenant, credential: t.id }),
        Ok(None) => Err(ApiError::unauthenticated("invalid, expired or revoked credential")),
        Err(e) => {
            tracing::error!(error = %e, "credential lookup failed");
            Err(ApiError::new(Code::Unavailable, "cannot check credentials right now; retry"))
        }
    }
}
