//! The API over HTTP against a real server: the seed's projects, registration, read-back,
//! idempotency and conflicts, pagination, and the OpenAPI document.

use crate::harness::{ALPHA, BETA};
use crate::on_every_backend;
use reqwest::StatusCode;
use serde_json::json;

on_every_backend!(seed_projects_register_and_read_back, |srv| {
    // The seed's teams and projects.
    for (id, tenant, domains) in [
        ("ml-alpha", "team-alpha", &["development", "staging", "production"][..]),
        ("web-alpha", "team-alpha", &["development", "production"][..]),
        ("data-beta", "team-beta", &["development", "production"][..]),
        ("api-beta", "team-beta", &["development", "production"][..]),
        ("analytics-gamma", "team-gamma", &["development", "production"][..]),
    ] {
        srv.project(id, tenant, domains).await;
    }
    let (s, p) = srv.get("/api/v1/projects/ml-alpha").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["tenant"], "team-alpha");
    let doms: Vec<&str> = p["domains"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(doms, ["development", "staging", "production"]);
    let (_, p) = srv.get("/api/v1/projects/data-beta").await;
    assert_eq!(p["domains"].as_array().unwrap().len(), 2);

    // Register the Alpha workflow into ml-alpha/development.
    let (s, r) = srv.register("ml-alpha", "development", "v1", ALPHA).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let statuses: Vec<&str> = r["entities"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["created"; 4]);

    // Read back by name and version.
    let (s, w) = srv.get("/api/v1/workflows/ml-alpha/development/alpha-ml-workflow/v1").await;
    assert_eq!(s, StatusCode::OK, "{w}");
    assert_eq!(w["name"], "alpha-ml-workflow");
    assert_eq!(w["version"], "v1");
    assert_eq!(w["spec"]["nodes"][1]["inputs"]["table"], "{{ load.outputs.table }}");
    assert_eq!(w["compiled"]["nodes"][1]["upstream"], json!([0]));
    assert_eq!(w["compiled"]["nodes"][0]["task"], json!({"name": "load-data", "version": "v1"}));
    let (s, t) = srv.get("/api/v1/tasks/ml-alpha/development/load-data/v1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(t["interface"]["inputs"]["limit"], json!({"type": "integer", "default": 100}));
    let (s, lp) = srv.get("/api/v1/launch_plans/ml-alpha/development/alpha-nightly/v1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(lp["compiled"]["workflow"], json!({"name": "alpha-ml-workflow", "version": "v1"}));

    // Re-register unchanged: success, nothing new.
    let (s, r) = srv.register("ml-alpha", "development", "v1", ALPHA).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert!(r["entities"].as_array().unwrap().iter().all(|e| e["status"] == "unchanged"));
    // Same content written differently (JSON, keys reordered) is the same content.
    let docs: Vec<serde_json::Value> =
        serde_yaml::Deserializer::from_str(ALPHA).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect();
    let (s, r) = srv
        .call(
            "POST",
            "/api/v1/register/ml-alpha/development",
            Some(&srv.admin),
            Some(("application/json", json!({"version": "v1", "documents": docs}).to_string().into_bytes())),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");

    // Changed content under the same version: 409, and nothing changes.
    let changed = ALPHA.replace("retries: 2", "retries: 3");
    let (s, e) = srv.register("ml-alpha", "development", "v1", &changed).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["code"], "conflict");
    assert!(e["message"].as_str().unwrap().contains("Task/load-data"), "{e}");
    let (_, t) = srv.get("/api/v1/tasks/ml-alpha/development/load-data/v1").await;
    assert_eq!(t["spec"]["retries"], 2);

    // The changed content under a new version is fine; listings show both versions, newest first
    // (a listing read before the registration is not served stale after it).
    let (_, before) = srv.get("/api/v1/tasks/ml-alpha/development").await;
    assert_eq!(before["items"][0]["latest_version"], "v1");
    let (s, _) = srv.register("ml-alpha", "development", "v2", &changed).await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, l) = srv.get("/api/v1/tasks/ml-alpha/development").await;
    let names: Vec<&str> = l["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["load-data", "process-data"]);
    assert_eq!(l["items"][0]["latest_version"], "v2");
    assert_eq!(l["items"][0]["versions"], 2);
    let (_, v) = srv.get("/api/v1/tasks/ml-alpha/development/load-data").await;
    let versions: Vec<&str> = v["items"].as_array().unwrap().iter().map(|i| i["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["v2", "v1"]);

    // Registration is per project and domain: nothing leaked into staging or data-beta.
    let (_, l) = srv.get("/api/v1/workflows/ml-alpha/staging").await;
    assert_eq!(l["items"], json!([]));
    let (s, _) = srv.get("/api/v1/workflows/data-beta/development/alpha-ml-workflow/v1").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A domain the project does not have.
    let (s, e) = srv.register("data-beta", "staging", "v1", BETA).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    let (s, r) = srv.register("data-beta", "development", "v1", BETA).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    srv.stop().await;
});

on_every_backend!(workflows_may_use_tasks_registered_earlier, |srv| {
    srv.project("ml-alpha", "team-alpha", &["development"]).await;
    let task = "kind: Task\nname: step\ninterface: {inputs: {n: {type: integer}}, outputs: {n: {type: integer}}}\ncontainer: {command: [true]}\n";
    let task = task.replace("[true]", "[\"true\"]");
    assert_eq!(srv.register("ml-alpha", "development", "t1", &task).await.0, StatusCode::CREATED);
    let wf = "kind: Workflow\nname: twice\ninterface: {inputs: {n: {type: integer}}, outputs: {n: {type: integer}}}\nnodes:\n  - {id: a, task: step, inputs: {n: \"{{ inputs.n }}\"}}\n  - {id: b, task: step@t1, inputs: {n: \"{{ a.outputs.n }}\"}}\noutputs: {n: \"{{ b.outputs.n }}\"}\n";
    let (s, r) = srv.register("ml-alpha", "development", "w1", wf).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let (_, w) = srv.get("/api/v1/workflows/ml-alpha/development/twice/w1").await;
    assert_eq!(w["compiled"]["nodes"][0]["task"]["version"], "t1");
    let (s, e) = srv.register("ml-alpha", "development", "w2", &wf.replace("step@t1", "step@t9")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e["message"].as_str().unwrap().contains("unknown Task `step` version `t9`"), "{e}");
    srv.stop().await;
});

on_every_backend!(projects_update_archive_and_paginate, |srv| {
    for i in 0..25 {
        srv.project(&format!("p{i:02}"), "t1", &["development"]).await;
    }
    // Pages of 10 visit every project once, in order.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => format!("/api/v1/projects?limit=10&token={t}"),
            None => "/api/v1/projects?limit=10".into(),
        };
        let (s, page) = srv.get(&path).await;
        assert_eq!(s, StatusCode::OK);
        seen.extend(page["items"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_string()));
        match page["next_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    let want: Vec<String> = (0..25).map(|i| format!("p{i:02}")).collect();
    assert_eq!(seen, want);
    let (s, e) = srv.get("/api/v1/projects?limit=0").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, _) = srv.get("/api/v1/projects?token=garbage").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Update labels and description; add a domain; removing one is refused.
    let (s, p) = srv
        .put(
            "/api/v1/projects/p00",
            &json!({"description": "d", "labels": {"team": "alpha"}, "domains": ["development", "production"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["labels"]["team"], "alpha");
    assert_eq!(p["domains"].as_array().unwrap().len(), 2);
    let (s, e) = srv.put("/api/v1/projects/p00", &json!({"domains": ["production"]})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    let (s, e) = srv.put("/api/v1/projects/p00", &json!({"labels": {"bad key": "x"}})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e["message"].as_str().unwrap().starts_with("labels.bad key"), "{e}");
    let (s, e) = srv.put("/api/v1/projects/p00", &json!({"state": "gone"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e["message"].as_str().unwrap().starts_with("state"), "{e}");

    // Archive: read-only from then on.
    let (s, p) = srv.call("DELETE", "/api/v1/projects/p00", Some(&srv.admin), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["state"], "archived");
    let (s, e) = srv.register("p00", "development", "v1", crate::harness::ALPHA).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(e["code"], "project_archived");
    // Duplicate project ids are refused, also across tenants.
    let (s, e) = srv.post("/api/v1/projects", &json!({"id": "p01", "tenant": "t1"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["code"], "already_exists");
    let (s, _) = srv.post("/api/v1/projects", &json!({"id": "p01"})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    // A project without a tenant gets a tenant of its own name.
    let (s, p) = srv.post("/api/v1/projects", &json!({"id": "solo"})).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(p["tenant"], "solo");
    assert_eq!(p["domains"].as_array().unwrap().len(), 3);
    let (s, _) = srv.get("/api/v1/tenants/solo").await;
    assert_eq!(s, StatusCode::OK);
    // A failed project creation leaves no tenant behind.
    let (s, _) = srv.post("/api/v1/projects", &json!({"id": "p02"})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = srv.get("/api/v1/tenants/p02").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    srv.stop().await;
});

on_every_backend!(openapi_covers_every_route, |srv| {
    let (s, doc) = srv.get("/api/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.0.3");
    let routes = tf_server::table::routes();
    assert!(routes.len() >= 20);
    for r in routes {
        let op = &doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
        assert!(op.is_object(), "{} {} missing from the OpenAPI document", r.method, r.path);
        assert!(op["operationId"].is_string());
    }
    assert!(doc["components"]["schemas"]["CreateProject"].is_object(), "request schemas are included");
    srv.stop().await;
});

on_every_backend!(health_and_identity, |srv| {
    let (s, b) = srv.call("GET", "/healthz", None, None).await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, b) = srv.call("GET", "/readyz", None, None).await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("ready")));
    let (s, me) = srv.get("/api/v1/me").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["kind"], "platform_admin");
    assert_eq!(me["platform_admin"], true);
    srv.stop().await;
});
