//! The audit trail and metering: exactly one record per mutating request (walking the route
//! table), denials and a platform administrator's reads recorded, execution phase changes
//! recorded with what they consumed, tampering found by verification, usage that matches what
//! a task burned, and `/metrics` that Prometheus accepts. On SQLite and PostgreSQL.

use crate::engine::{can_run, wait_done};
use crate::harness::{TestServer, ALPHA};
use crate::matrix::{body, concrete};
use crate::on_every_backend;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The records of one request.
async fn records_of(srv: &TestServer, request_id: &str) -> Vec<Value> {
    let (s, b) = srv.get(&format!("/api/v1/audit?request_id={request_id}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["items"].as_array().unwrap().clone()
}

on_every_backend!(every_mutating_route_leaves_exactly_one_record, |srv| {
    srv.project("ml-alpha", "team-alpha", &["development", "production"]).await;
    srv.project("data-beta", "team-beta", &["development"]).await;
    assert_eq!(srv.register("ml-alpha", "development", "v1", ALPHA).await.0, StatusCode::CREATED);
    srv.role("team-alpha", "victim", &["workflows:read"], &["ml-alpha"], &["development"]).await;
    let mut walked = 0;
    for (i, r) in tf_server::table::routes().iter().enumerate() {
        if matches!(r.method.as_str(), "GET" | "HEAD") {
            continue;
        }
        let (m, path) = (r.method.as_str(), concrete(r.path));
        let id = format!("walk-{i}");
        let (s, b) = srv.call_with_id(m, &path, Some(&srv.admin), body(m, r.path), Some(&id)).await;
        assert!(!s.is_server_error(), "{m} {path}: {s} {b}");
        let recs = records_of(&srv, &id).await;
        assert_eq!(recs.len(), 1, "{m} {path} ({s}) left {} records: {recs:?}", recs.len());
        let rec = &recs[0];
        assert_eq!(rec["action"], format!("{m} {}", r.path));
        assert_eq!(rec["resource"], path.split('?').next().unwrap());
        assert_eq!(rec["actor_kind"], "platform_admin");
        if !s.is_success() {
            assert_ne!(rec["outcome"], "ok", "{m} {path} failed ({s}) but is recorded as ok");
        }
        walked += 1;
    }
    assert!(walked >= 35, "only {walked} mutating routes");

    // A change and its record: the project created carries its tenant.
    let (s, _) = srv
        .call_with_id(
            "POST",
            "/api/v1/projects",
            Some(&srv.admin),
            Some(("application/json", json!({"id": "audited", "tenant": "team-alpha"}).to_string().into_bytes())),
            Some("create-audited"),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let rec = &records_of(&srv, "create-audited").await[0];
    assert_eq!((rec["tenant"].as_str(), rec["outcome"].as_str()), (Some("team-alpha"), Some("ok")), "{rec}");
    assert!(rec["source"].as_str().is_some_and(|s| s == "127.0.0.1"), "{rec}");

    // Denials: no credential, a credential that may not see, one that may see but not act.
    srv.role("team-alpha", "victim", &["workflows:read"], &["ml-alpha"], &["development"]).await;
    srv.bind("team-alpha", "victim", "service_account", "reader").await;
    let reader = srv
        .store()
        .platform()
        .create_token("service_account", "reader", Some("team-alpha"), "", None)
        .await
        .unwrap()
        .secret;
    let outsider = srv
        .store()
        .platform()
        .create_token("service_account", "nobody", Some("team-beta"), "", None)
        .await
        .unwrap()
        .secret;
    let cases = [
        ("deny-401", None, "/api/v1/workflows/ml-alpha/development", "unauthenticated", 401),
        ("deny-404", Some(outsider.as_str()), "/api/v1/workflows/ml-alpha/development", "hidden", 404),
        ("deny-403", Some(reader.as_str()), "/api/v1/executions/ml-alpha/development", "denied", 403),
    ];
    for (id, tok, path, outcome, status) in cases {
        let (s, _) = srv.call_with_id("GET", path, tok, None, Some(id)).await;
        assert_eq!(s.as_u16(), status);
        let recs = records_of(&srv, id).await;
        assert_eq!(recs.len(), 1, "{id}: {recs:?}");
        assert_eq!(recs[0]["outcome"], outcome);
        assert_eq!(recs[0]["tenant"], "team-alpha", "a denial is recorded in the target's tenant: {}", recs[0]);
    }
    // A platform administrator reading into a tenant is recorded; a member's read is not.
    srv.call_with_id("GET", "/api/v1/projects/ml-alpha", Some(&srv.admin), None, Some("admin-read")).await;
    let recs = records_of(&srv, "admin-read").await;
    assert_eq!(recs.len(), 1);
    assert_eq!(
        (recs[0]["tenant"].as_str(), recs[0]["action"].as_str()),
        (Some("team-alpha"), Some("GET /api/v1/projects/{project}"))
    );
    srv.call_with_id("GET", "/api/v1/workflows/ml-alpha/development", Some(&reader), None, Some("member-read")).await;
    assert!(records_of(&srv, "member-read").await.is_empty());

    // The trail verifies; filters work.
    let (s, v) = srv.post("/api/v1/audit/verify", &json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["problems"], json!([]), "{v}");
    assert!(v["records"].as_u64().unwrap() > 40, "{v}");
    let (_, denied) = srv.get("/api/v1/audit?tenant=team-alpha&outcome=denied").await;
    assert!(denied["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["outcome"] == "denied" && r["tenant"] == "team-alpha"));
    let (s, e) = srv.get("/api/v1/audit?since=yesterday-ish").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["details"]["field"], "since");
    srv.stop().await;
});

/// Runs `sql` against the test database directly, as an attacker with database access would.
async fn tamper(srv: &TestServer, sql: &str) {
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&srv.database_url()).await.unwrap();
    let r = sqlx::query(sql).execute(&mut conn).await.unwrap();
    assert!(r.rows_affected() > 0, "{sql} changed nothing");
}

async fn problems(srv: &TestServer, tenant: &str) -> Vec<Value> {
    let (s, v) = srv.post(&format!("/api/v1/audit/verify?tenant={tenant}"), &json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["problems"].as_array().unwrap().clone()
}

on_every_backend!(audit_verify_finds_edited_and_removed_records, |srv| {
    for t in ["t-edit", "t-gap", "t-tail", "t-clean"] {
        srv.project(&format!("{t}-p"), t, &["development"]).await;
        for n in 0..4 {
            srv.role(t, &format!("r{n}"), &["workflows:read"], &["*"], &["*"]).await;
        }
    }
    for t in ["t-edit", "t-gap", "t-tail", "t-clean"] {
        assert_eq!(problems(&srv, t).await, Vec::<Value>::new(), "{t} verifies before tampering");
    }
    tamper(&srv, "UPDATE audit_events SET actor = 'mallory' WHERE tenant_id = 't-edit' AND seq = 3").await;
    tamper(&srv, "DELETE FROM audit_events WHERE tenant_id = 't-gap' AND seq = 2").await;
    tamper(&srv, "DELETE FROM audit_events WHERE tenant_id = 't-tail' AND seq = (SELECT MAX(seq) FROM audit_events WHERE tenant_id = 't-tail')").await;
    let edit = problems(&srv, "t-edit").await;
    assert!(edit.iter().any(|p| p["seq"] == 3 && p["problem"].as_str().unwrap().contains("edited")), "{edit:?}");
    let gap = problems(&srv, "t-gap").await;
    assert!(gap.iter().any(|p| p["seq"] == 2 && p["problem"].as_str().unwrap().contains("missing")), "{gap:?}");
    let tail = problems(&srv, "t-tail").await;
    assert!(tail.iter().any(|p| p["problem"].as_str().unwrap().contains("missing at the end")), "{tail:?}");
    assert_eq!(problems(&srv, "t-clean").await, Vec::<Value>::new(), "other chains are unaffected");
    let (_, all) = srv.post("/api/v1/audit/verify", &json!({})).await;
    assert_eq!(all["problems"].as_array().unwrap().len(), edit.len() + gap.len() + tail.len(), "{all}");
    // Retention prunes from the old end and the rest still verifies.
    let removed = srv.store().platform().prune_audit("t-clean", tf_store::now_ms() + 1).await.unwrap();
    assert!(removed >= 5, "{removed}");
    srv.role("t-clean", "after-prune", &["workflows:read"], &["*"], &["*"]).await;
    assert_eq!(problems(&srv, "t-clean").await, Vec::<Value>::new());
    srv.stop().await;
});

const BURN: &str = "kind: Task\nname: burn\ninterface: {outputs: {cpu: {type: float}}}\nresources: {limits: {cpu: '2', memory: 256Mi}}\ncontainer:\n  command:\n    - python3\n    - -c\n    - |\n      import json, os, time\n      while time.process_time() < 1.0:\n          sum(i * i for i in range(10000))\n      json.dump({'cpu': time.process_time()}, open(os.environ['TENANTFLOW_OUTPUTS'], 'w'))\n---\nkind: Workflow\nname: burner\ninterface: {outputs: {cpu: {type: float}}}\nnodes: [{id: a, task: burn}]\noutputs: {cpu: '{{ a.outputs.cpu }}'}\n";

on_every_backend!(usage_matches_what_the_tasks_consumed, |srv| {
    if !can_run() {
        return;
    }
    srv.project("ml-alpha", "team-alpha", &["development"]).await;
    srv.project("data-beta", "team-beta", &["development"]).await;
    assert_eq!(srv.register("ml-alpha", "development", "v1", BURN).await.0, StatusCode::CREATED);
    let (s, e) =
        srv.post("/api/v1/executions/ml-alpha/development", &json!({"workflow": "burner", "name": "burn-1"})).await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    let done = wait_done(&srv, "ml-alpha", "development", "burn-1", 60).await;
    assert_eq!(done["phase"], "SUCCEEDED", "{done}");
    let (_, out) = srv.get("/api/v1/executions/ml-alpha/development/burn-1/outputs").await;
    let burned = out["outputs"]["cpu"].as_f64().unwrap_or_else(|| panic!("{out}"));
    assert!(burned >= 1.0);
    let close = |measured: f64| measured >= burned * 0.95 && measured <= burned + 0.5;

    // The execution's phase changes are in the audit; the last one carries what it consumed.
    let (_, recs) = srv.get("/api/v1/audit?tenant=team-alpha&action=execution.*").await;
    let recs = recs["items"].as_array().unwrap().clone();
    let phases: Vec<&str> = recs.iter().filter_map(|r| r["action"].as_str()).collect();
    assert!(phases.contains(&"execution.SUCCEEDED") && phases.contains(&"execution.RUNNING"), "{phases:?}");
    let fin = recs.iter().find(|r| r["action"] == "execution.SUCCEEDED").unwrap();
    assert_eq!(fin["resource"], "executions/ml-alpha/development/burn-1");
    let cpu = fin["details"]["cpu_seconds"].as_f64().unwrap();
    assert!(close(cpu), "audited cpu {cpu} s vs {burned} s burned");
    assert_eq!(fin["details"]["attempts"], 1);
    assert!(fin["details"]["memory_gib_seconds"].as_f64().unwrap() > 0.0, "{fin}");

    // Metering agrees, per tenant and per project; another tenant's usage is its own.
    let (s, u) = srv.get("/api/v1/usage?tenant=team-alpha").await;
    assert_eq!(s, StatusCode::OK, "{u}");
    let t = &u["totals"];
    assert!(close(t["cpu_seconds"].as_f64().unwrap()), "usage cpu {} vs {burned}", t["cpu_seconds"]);
    assert_eq!(t["executions"], json!({"SUCCEEDED": 1}));
    assert_eq!(t["attempts"], 1);
    assert!(t["api_calls"].as_i64().unwrap() >= 4, "{u}");
    assert!(t["active_users"].as_i64().unwrap() >= 1, "{u}");
    assert!(u["stored_bytes"].as_i64().unwrap() > 0, "{u}");
    let (_, p) = srv.get("/api/v1/usage?tenant=team-alpha&project=ml-alpha&window=day").await;
    assert_eq!(p["totals"]["attempts"], 1, "{p}");
    let (_, other) = srv.get("/api/v1/usage?tenant=team-beta").await;
    assert_eq!(other["totals"]["attempts"], 0, "{other}");
    let (s, e) = srv.get("/api/v1/usage?tenant=team-alpha&window=week").await;
    assert_eq!((s, e["details"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("window")));

    // /metrics: what happened shows, and Prometheus accepts the text.
    let res = srv.http.get(format!("{}/metrics", srv.base)).bearer_auth(&srv.admin).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = res.text().await.unwrap();
    for needle in [
        "tenantflow_http_requests_total{method=\"POST\",route=\"/api/v1/executions/{project}/{domain}\",status=\"201\"} 1",
        "tenantflow_execution_transitions_total{phase=\"SUCCEEDED\"} 1",
        "tenantflow_attempts_finished_total 1",
        "tenantflow_admission_wait_seconds_count 1",
        "tenantflow_store_up 1",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    promtool_check(&text);
    // A scraper's credential: a platform service account holding `tenants:read` only.
    let (_, sa) =
        srv.post("/api/v1/service_accounts", &json!({"name": "scraper", "permissions": ["tenants:read"]})).await;
    let scraper = sa["token"].as_str().unwrap();
    assert_eq!(srv.call("GET", "/metrics", Some(scraper), None).await.0, StatusCode::OK);
    assert_eq!(srv.call("GET", "/api/v1/audit", Some(scraper), None).await.0, StatusCode::BAD_REQUEST);
    let (s, _) = srv.call("GET", "/api/v1/workflows/ml-alpha/development", Some(scraper), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a scraper sees no tenant's resources");
    srv.stop().await;
});

/// Runs `promtool check metrics` over `text` (required in CI).
pub fn promtool_check(text: &str) {
    use std::io::Write;
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        if std::env::var("TENANTFLOW_REQUIRE_ALL").is_ok_and(|v| v == "1") {
            panic!("TENANTFLOW_REQUIRE_ALL=1 but promtool is not installed (apt-get install prometheus)");
        }
        eprintln!("note: promtool not installed; /metrics not checked by it");
        return;
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");
}
