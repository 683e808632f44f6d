//! The route × permission matrix: every route declares the permission it needs; a credential
//! holding any other single permission is refused at admission, a credential of another
//! tenant holding everything sees nothing. Runs on SQLite and PostgreSQL.

use crate::harness::{TestServer, ALPHA};
use crate::on_every_backend;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tf_authz::{PermSet, Permission};
use tf_server::access::Access;

/// A concrete path for a route template, addressing real objects.
pub fn concrete(path: &str) -> String {
    if path == "/api/v1/authz/explain" {
        return format!("{path}?permission=workflows:read&project=ml-alpha&domain=development");
    }
    path.replace("{project}", "ml-alpha")
        .replace("{domain}", "development")
        .replace("{tenant}", "team-alpha")
        .replace(
            "{name}",
            if path.contains("launch_plans") {
                "alpha-nightly"
            } else if path.contains("workflows") {
                "alpha-ml-workflow"
            } else {
                "load-data"
            },
        )
        .replace("{workflow}", "alpha-ml-workflow")
        .replace("{launch_plan}", "alpha-nightly")
        .replace("{version}", "v1")
        .replace("{node}", "load")
        .replace("{attempt}", "1")
        .replace("{role}", "victim")
        .replace("{id}", "0000000000000000")
        .replace("{workspace}", "ws-matrix")
}

/// A plausible body for a route, so that refusals are about access, not shape.
pub fn body(method: &str, path: &str) -> Option<(&'static str, Vec<u8>)> {
    let j = |v: Value| Some(("application/json", v.to_string().into_bytes()));
    match (method, path) {
        ("POST", p) if p.starts_with("/api/v1/register") => Some(("application/yaml", ALPHA.as_bytes().to_vec())),
        // A plan that does not exist: the handler's 404 comes after admission.
        ("POST", "/api/v1/executions") => {
            j(json!({"project": "ml-alpha", "domain": "development", "launch_plan": "no-such-plan"}))
        }
        ("POST", p) if p.starts_with("/api/v1/executions/") && p.ends_with("/relaunch") => j(json!({})),
        ("POST", p) if p.starts_with("/api/v1/executions/") => j(json!({"launch_plan": "no-such-plan"})),
        ("POST", "/api/v1/projects") => j(json!({"id": "newproj", "tenant": "team-alpha"})),
        ("POST", "/api/v1/tenants") => j(json!({"id": "newtenant"})),
        ("PUT", p) if p.contains("/roles/") => {
            j(json!({"permissions": ["workflows:read"], "projects": ["ml-alpha"], "domains": ["development"]}))
        }
        ("POST", p) if p.ends_with("/roles") => j(
            json!({"name": "made", "permissions": ["workflows:read"], "projects": ["ml-alpha"], "domains": ["development"]}),
        ),
        ("POST", p) if p.ends_with("/bindings") => {
            j(json!({"role": "victim", "subject_kind": "user", "subject": "someone"}))
        }
        ("POST", p) if p.ends_with("/tokens") => j(json!({"service_account": "made"})),
        ("PUT", p) if p.ends_with("/quota") => j(json!({"cpu": 4, "memory": "8Gi"})),
        ("PUT", p) if p.contains("_attributes/") => j(json!({"attributes": {"max_parallelism": 4}})),
        ("PUT", p) if p.starts_with("/api/v1/launch_plans/") => j(json!({"state": "INACTIVE"})),
        ("PUT", _) => j(json!({"description": "changed"})),
        _ => None,
    }
}

pub fn admission(b: &Value) -> bool {
    b["details"]["admission"] == json!(true)
}

/// A credential of `tenant` holding exactly `perms` on all its projects and domains.
async fn credential(srv: &TestServer, tenant: &str, name: &str, perms: &[&str]) -> String {
    srv.role(tenant, name, perms, &["*"], &["*"]).await;
    srv.service_account(tenant, name, name).await
}

on_every_backend!(route_permission_matrix, |srv| {
    // Invariant: a route admits exactly the callers holding its declared permission on its
    // target; another tenant's callers get 404 with no data, whatever they hold.
    srv.project("ml-alpha", "team-alpha", &["development", "production"]).await;
    srv.project("data-beta", "team-beta", &["development"]).await;
    assert_eq!(srv.register("ml-alpha", "development", "v1", ALPHA).await.0, StatusCode::CREATED);
    srv.role("team-alpha", "victim", &["workflows:read"], &["ml-alpha"], &["development"]).await;
    let routes = tf_server::table::routes();
    let perms: Vec<Permission> = Permission::all().collect();
    let mut creds = Vec::new();
    for (i, p) in perms.iter().enumerate() {
        creds.push((*p, credential(&srv, "team-alpha", &format!("only-{i}"), &[&p.to_string()]).await));
    }
    let outsider = credential(&srv, "team-beta", "everything", &["*"]).await;
    // A workspace service's account: platform-wide, but `workspaces:*` only.
    let (st, sa) =
        srv.post("/api/v1/service_accounts", &json!({"name": "ws-service", "permissions": ["workspaces:*"]})).await;
    assert_eq!(st, StatusCode::CREATED, "{sa}");
    let workspace_service = sa["token"].as_str().unwrap().to_string();
    let mut checked = 0;
    // Every admission refusal must be in the audit: (request id, outcome).
    let mut refused: Vec<(String, &str)> = Vec::new();
    for r in &routes {
        let (m, path) = (r.method.as_str(), concrete(r.path));
        match r.access {
            Access::Public | Access::Authenticated => continue,
            Access::Platform(p) => {
                for (p, tok) in &creds {
                    let id = format!("m{checked}");
                    let (s, b) = srv.call_with_id(m, &path, Some(tok), body(m, r.path), Some(&id)).await;
                    assert_eq!(s, StatusCode::FORBIDDEN, "{m} {path} with {p}: {b}");
                    refused.push((id, "denied"));
                    checked += 1;
                }
                let (s, b) = srv.call(m, &path, Some(&workspace_service), body(m, r.path)).await;
                if p.0 == tf_authz::Resource::Workspaces {
                    assert!(!admission(&b), "{m} {path} refused the workspace service: {b}");
                } else {
                    assert_eq!(s, StatusCode::FORBIDDEN, "{m} {path} admitted the workspace service: {b}");
                }
            }
            Access::Collection(_) => {
                let (s, b) = srv.call(m, &path, Some(&outsider), body(m, r.path)).await;
                assert!(!b.to_string().contains("ml-alpha"), "{m} {path} leaks to another tenant: {b}");
                assert!(s.is_client_error() || s.is_success(), "{m} {path}: {s}");
            }
            Access::ProjectVisible | Access::Project(_) | Access::Tenant(_) => {
                let declared = r.access.permission();
                for (p, tok) in &creds {
                    let id = format!("m{checked}");
                    let (s, b) = srv.call_with_id(m, &path, Some(tok), body(m, r.path), Some(&id)).await;
                    assert!(!s.is_server_error(), "{m} {path} with {p}: {s} {b}");
                    let admitted = !admission(&b);
                    if !admitted {
                        refused.push((id, if s == StatusCode::NOT_FOUND { "hidden" } else { "denied" }));
                    }
                    match declared {
                        Some(d) if PermSet::parse_one(&p.to_string()).unwrap().contains(d) => {
                            assert!(admitted, "{m} {path} refused its declared permission {p}: {b}")
                        }
                        Some(d) => {
                            assert_eq!(s, StatusCode::FORBIDDEN, "{m} {path} (needs {d}) with {p}: {b}");
                            assert!(!admitted, "{m} {path} with {p}: {b}");
                        }
                        None => assert!(admitted, "{m} {path} hides a visible project from {p}: {b}"),
                    }
                    checked += 1;
                }
                let (s, b) = srv.call(m, &path, Some(&workspace_service), body(m, r.path)).await;
                assert_eq!(s, StatusCode::NOT_FOUND, "{m} {path} with the workspace service: {b}");
                let (s, b) = srv.call(m, &path, Some(&outsider), body(m, r.path)).await;
                assert_eq!(s, StatusCode::NOT_FOUND, "{m} {path} from another tenant: {b}");
                let text = b.to_string();
                for secret in ["ml-alpha", "alpha-ml-workflow", "load-data", "victim", "team-alpha"] {
                    assert!(!text.contains(secret), "{m} {path} leaks `{secret}` to another tenant: {text}");
                }
            }
        }
    }
    assert!(checked > 1000, "the matrix checked only {checked} cases");
    // Every refusal above is in team-alpha's audit, with its outcome.
    let mut audited = std::collections::HashMap::new();
    for outcome in ["denied", "hidden"] {
        let mut token = String::new();
        loop {
            let next = if token.is_empty() { String::new() } else { format!("&token={token}") };
            let (_, page) = srv.get(&format!("/api/v1/audit?outcome={outcome}&limit=1000{next}")).await;
            for rec in page["items"].as_array().unwrap() {
                audited.insert(
                    rec["request_id"].as_str().unwrap_or("").to_string(),
                    rec["outcome"].as_str().unwrap().to_string(),
                );
            }
            match page["next_token"].as_str() {
                Some(t) => token = t.to_string(),
                None => break,
            }
        }
    }
    for (id, outcome) in &refused {
        assert_eq!(
            audited.get(id).map(String::as_str),
            Some(*outcome),
            "refusal {id} is not in the audit as {outcome}"
        );
    }
    assert!(refused.len() > 900, "{}", refused.len());
    // A tenant's administrator reads its own audit and usage, never another tenant's.
    let own = credential(&srv, "team-alpha", "admin-alpha", &["*"]).await;
    for path in ["/api/v1/audit?tenant=team-alpha", "/api/v1/usage?tenant=team-alpha", "/api/v1/audit"] {
        let (s, b) = srv.call("GET", path, Some(&own), None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {b}");
    }
    let (_, mine) = srv.call("GET", "/api/v1/audit?limit=1000", Some(&own), None).await;
    assert!(mine["items"].as_array().unwrap().iter().all(|r| r["tenant"] == "team-alpha"), "{mine}");
    for (i, (m, path)) in [
        ("GET", "/api/v1/audit?tenant=team-alpha"),
        ("GET", "/api/v1/usage?tenant=team-alpha"),
        ("POST", "/api/v1/audit/verify?tenant=team-alpha"),
        ("GET", "/api/v1/audit?tenant="),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("peek-{i}");
        let (s, b) = srv.call_with_id(m, path, Some(&outsider), None, Some(&id)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{m} {path} from another tenant: {b}");
        assert!(!b.to_string().contains("ml-alpha"), "{b}");
        let (_, rec) = srv.get(&format!("/api/v1/audit?request_id={id}")).await;
        assert_eq!(rec["items"][0]["outcome"], "hidden", "{m} {path}: the attempt is audited: {rec}");
    }
    let (_, theirs) = srv.call("GET", "/api/v1/audit?limit=1000", Some(&outsider), None).await;
    assert!(theirs["items"].as_array().unwrap().iter().all(|r| r["tenant"] == "team-beta"), "{theirs}");
    // Holding a grant in the tenant is not enough: reading its audit needs `audit:read`.
    let (s, _) = srv.call("GET", "/api/v1/audit?tenant=team-alpha", Some(&creds[0].1), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The outsider's listings hold nothing of team-alpha.
    let (_, l) = srv.call("GET", "/api/v1/projects", Some(&outsider), None).await;
    let ids: Vec<&str> = l["items"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["data-beta"]);
    srv.stop().await;
});
