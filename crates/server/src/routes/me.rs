//! Who am I, and the API description.

use crate::access::Principal;
use axum::{Extension, Json};
use serde_json::{json, Value};

pub async fn me(Extension(who): Extension<Principal>) -> Json<Value> {
    Json(json!({
        "subject": who.subject,
        "kind": who.kind,
        "tenant": who.tenant,
        "credential": who.credential,
        "platform_admin": who.is_platform_admin(),
    }))
}

pub async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}
