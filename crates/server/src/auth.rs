//! Authentication and admission: the layer every request passes through. It finds the route's
//! declared access, authenticates the bearer credential (a platform token or an OIDC JWT),
//! asks [`crate::access::admit`], and only then lets the request reach its handler.

use crate::access::{admit, Access, Principal, Target};
use crate::audit;
use crate::error::{ApiError, Code};
use crate::AppState;
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::RequestExt;
use tf_authz::Decision;

/// Users and groups that are platform administrators (`auth.platform_admins`).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformAdmins {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

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
    let facts = audit::RequestFacts::of(&req, matched.as_ref().map(|m| m.as_str()).unwrap_or("-"));
    let params = req.extract_parts::<RawPathParams>().await.ok();
    let param =
        |name: &str| params.as_ref().and_then(|ps| ps.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()));
    let (project, domain, tenant) = (param("project"), param("domain"), param("tenant"));
    let scope = audit::Scope::of(
        &state,
        project.as_deref(),
        domain.as_deref(),
        tenant.as_deref(),
        param("workspace").as_deref(),
    );
    let header = req.headers().get(header::AUTHORIZATION).cloned();
    let principal = match principal(&state, header).await {
        Ok(p) => p,
        Err(e) => {
            let status = e.code.status();
            audit::write(&state, audit::entry(&facts, None, &scope), status, None).await;
            return e.into_response();
        }
    };
    let target = Target { project: project.as_deref(), domain: domain.as_deref(), tenant: tenant.as_deref() };
    let decision = admit(&state.authz.read(), &principal, access, &target);
    match decision {
        Decision::Allow(_) => {}
        // Refusals here carry `details.admission`: the same for a target that does not exist
        // and one the caller may not see, so they say nothing about existence.
        Decision::Deny => {
            let what = access.permission().map(|p| format!(": {p}")).unwrap_or_default();
            let details = serde_json::json!({"admission": true, "permission": access.permission()});
            let e = audit::entry(&facts, Some(&principal), &scope);
            audit::write(&state, e, axum::http::StatusCode::FORBIDDEN, Some("denied")).await;
            return ApiError::new(Code::PermissionDenied, format!("permission denied{what}"))
                .with_details(details)
                .into_response();
        }
        Decision::Hide => {
            let e = audit::entry(&facts, Some(&principal), &scope);
            audit::write(&state, e, axum::http::StatusCode::NOT_FOUND, Some("hidden")).await;
            return ApiError::not_found("not found")
                .with_details(serde_json::json!({"admission": true}))
                .into_response();
        }
    }
    let caller = crate::request_log::Caller::from(&principal);
    state.usage.count(&scope, &principal);
    let cross_tenant_read = audit::is_cross_tenant_read(&principal, access, &facts);
    // A read's entry is made only if it is to be written (after the response).
    // (Handlers refuse on their own only on collection routes.)
    let who = (!facts.mutating() && (cross_tenant_read || matches!(access, Access::Collection(_))))
        .then(|| principal.clone());
    let entry = facts.mutating().then(|| audit::entry(&facts, Some(&principal), &scope));
    req.extensions_mut().insert(principal);
    let mut res = if let Some(entry) = entry {
        // The entry commits with the request's change; written alone only if nothing did.
        let (res, slot) = tf_store::audit::with_pending(entry, next.run(req)).await;
        if let Some(left) = slot.left() {
            let refusal = res.extensions().get::<audit::Refusal>().cloned();
            audit::finish(&state, left, res.status(), refusal).await;
        }
        res
    } else {
        let res = next.run(req).await;
        let refusal = res.extensions().get::<audit::Refusal>().cloned();
        if refusal.is_some() || (cross_tenant_read && !scope.tenant.is_empty()) {
            let entry = audit::entry(&facts, who.as_ref(), &scope);
            audit::finish(&state, entry, res.status(), refusal).await;
        }
        res
    };
    res.extensions_mut().insert(caller);
    res
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
    if secret.is_empty() || secret.len() > 16 * 1024 {
        return Err(ApiError::unauthenticated("invalid credential"));
    }
    if secret.starts_with("tf_") {
        let hash = tf_store::hash_secret(secret);
        let cached = state.tokens.get(&hash, tf_store::now_ms());
        let found = match cached {
            Some(t) => Ok(Some(t)),
            None => state.store.platform().authenticate(secret).await.inspect(|t| {
                if let Some(t) = t {
                    state.tokens.put(hash, t.clone());
                }
            }),
        };
        return match found {
            Ok(Some(t)) => {
                let admin = t.kind == "platform_admin" || (t.kind == "user" && state.admins.users.contains(&t.subject));
                let platform_permissions = if t.kind == tf_store::PLATFORM_SERVICE_ACCOUNT {
                    // Stored lists were checked when minted; an unreadable one grants nothing.
                    tf_authz::PermSet::parse_all(&t.permissions).unwrap_or_default()
                } else {
                    tf_authz::PermSet::EMPTY
                };
                Ok(Principal {
                    subject: t.subject,
                    kind: t.kind,
                    tenant: t.tenant,
                    groups: vec![],
                    credential: Some(t.id),
                    platform_admin: admin,
                    platform_permissions,
                })
            }
            Ok(None) => Err(ApiError::unauthenticated("invalid, expired or revoked credential")),
            Err(e) => {
                tracing::error!(error = %e, "credential lookup failed");
                Err(ApiError::new(Code::Unavailable, "cannot check credentials right now; retry"))
            }
        };
    }
    let Some(oidc) = &state.oidc else {
        return Err(ApiError::unauthenticated("invalid credential"));
    };
    match oidc.verify(secret).await {
        Ok(id) => {
            let admin =
                state.admins.users.contains(&id.user) || id.groups.iter().any(|g| state.admins.groups.contains(g));
            Ok(Principal {
                subject: id.user,
                kind: "oidc".into(),
                tenant: None,
                groups: id.groups,
                credential: None,
                platform_admin: admin,
                platform_permissions: tf_authz::PermSet::EMPTY,
            })
        }
        Err(crate::oidc::Error::Unavailable(e)) => {
            tracing::warn!(error = %e, "OIDC keys unavailable");
            Err(ApiError::unauthenticated("cannot verify the token: the identity provider's keys are unavailable"))
        }
        Err(e) => {
            tracing::debug!(error = %e, "OIDC token rejected");
            Err(ApiError::unauthenticated("invalid token"))
        }
    }
}
