//! The OpenAPI 3 document, generated from the route table and the request/response types.

use crate::access::Access;
use crate::table::routes;
use schemars::gen::SchemaSettings;
use serde_json::{json, Map, Value};

/// The document, built once: it depends only on the code.
pub fn document() -> &'static Value {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DOC.get_or_init(build)
}

fn build() -> Value {
    let mut gen = SchemaSettings::openapi3().into_generator();
    let mut paths: Map<String, Value> = Map::new();
    for d in routes() {
        let mut params: Vec<Value> = d
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        params.extend(d.query.iter().map(|(name, desc)| json!({"name": name, "in": "query", "required": false, "description": desc, "schema": {"type": "string"}})));
        let ok = if d.method == axum::http::Method::POST { "201" } else { "200" };
        let mut responses = Map::new();
        let mut ok_resp = json!({"description": "success"});
        if let Some(f) = d.response {
            ok_resp["content"] =
                json!({"application/json": {"schema": serde_json::to_value(f(&mut gen)).unwrap_or_default()}});
        }
        responses.insert(ok.into(), ok_resp);
        let err = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
        let codes: &[&str] = match d.access {
            Access::Public => &[],
            Access::Authenticated => &["401"],
            Access::Platform(_) | Access::Collection(_) => &["400", "401", "403", "409"],
            Access::Project(_) | Access::Tenant(_) => &["400", "401", "403", "404", "409"],
            Access::ProjectVisible => &["400", "401", "404"],
        };
        for c in codes {
            responses.insert((*c).into(), err.clone());
        }
        let mut op = json!({
            "operationId": operation_id(d.method.as_str(), d.path),
            "summary": d.summary,
            "tags": [d.tag],
            "parameters": params,
            "responses": responses,
        });
        if let Access::Public = d.access {
            op["security"] = json!([]);
        }
        if let Some(p) = d.access.permission() {
            op["x-permission"] = json!(p);
        }
        if let Some((types, f)) = d.body {
            let schema = serde_json::to_value(f(&mut gen)).unwrap_or_default();
            let content: Map<String, Value> =
                types.iter().map(|t| (t.to_string(), json!({"schema": schema.clone()}))).collect();
            op["requestBody"] = json!({"required": true, "content": content});
        }
        let entry = paths.entry(d.path.to_string()).or_insert_with(|| json!({}));
        entry[d.method.as_str().to_ascii_lowercase()] = op;
    }
    let mut schemas: Map<String, Value> =
        gen.take_definitions().into_iter().map(|(k, v)| (k, serde_json::to_value(v).unwrap_or_default())).collect();
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string", "description": "stable snake_case code"},
            "message": {"type": "string"},
            "details": {"description": "structured context, e.g. the offending field or validation violations"}}}),
    );
    json!({
        "openapi": "3.0.3",
        "info": {"title": "tenantflow API", "version": env!("CARGO_PKG_VERSION")},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
    })
}

fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    for seg in path.split('/').filter(|s| !s.is_empty() && *s != "api" && *s != "v1") {
        let seg = seg.trim_start_matches('{').trim_end_matches('}').replace(['.', '-'], "_");
        id.push('_');
        id.push_str(&seg);
    }
    id
}
