//! Tenant quotas over HTTP, enforced by the engine's admission queue: a tenant never runs more
//! than its quota allows, waiting work says what it waits for, a task larger than the whole
//! quota is refused at launch, the running-executions quota holds executions in QUEUED, and bad
//! quota input is a 400 naming the field.

use crate::engine::{can_run, launch, max_concurrency, wait_done};
use crate::on_every_backend;
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};

/// Six parallel nodes, each holding half a core for a moment.
const WIDE: &str = "kind: Task\nname: work\nresources: {requests: {cpu: 500m, memory: 64Mi}}\ncontainer: {command: [/bin/sleep, '0.3']}\n---\nkind: Task\nname: huge\nresources: {requests: {cpu: '2'}}\ncontainer: {command: [/bin/true]}\n---\nkind: Workflow\nname: wide\nnodes: [{id: a, task: work}, {id: b, task: work}, {id: c, task: work}, {id: d, task: work}, {id: e, task: work}, {id: f, task: work}]\n---\nkind: Workflow\nname: too-big\nnodes: [{id: small, task: work}, {id: big, task: huge}]\n";

on_every_backend!(quotas_are_never_exceeded_and_waiting_work_says_why, |srv| {
    if !can_run() {
        return;
    }
    srv.project("ml-alpha", "team-alpha", &["development"]).await;
    // Bad input names the field.
    for (body, field) in [
        (json!({"cpu": "lots"}), "cpu"),
        (json!({"memory": "2Zi"}), "memory"),
        (json!({"running_tasks": -1}), "running_tasks"),
        (json!({"weight": 0}), "weight"),
        (json!({"cpus": 4}), "cpus"),
    ] {
        let (s, e) = srv.put("/api/v1/tenants/team-alpha/quota", &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {e}");
        assert!(e.to_string().contains(field), "{body}: {e}");
    }
    let (s, q) = srv.put("/api/v1/tenants/nobody/quota", &json!({"cpu": 1})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{q}");

    let (s, q) =
        srv.put("/api/v1/tenants/team-alpha/quota", &json!({"cpu": 1, "memory": "1Gi", "running_tasks": 3})).await;
    assert_eq!(s, StatusCode::OK, "{q}");
    assert_eq!((q["cpu"].as_str(), q["memory"].as_str(), q["weight"].as_u64()), (Some("1"), Some("1Gi"), Some(2)));
    assert_eq!(srv.register("ml-alpha", "development", "v1", WIDE).await.0, StatusCode::CREATED);

    // A task larger than the whole quota can never run: refused at launch, nothing created.
    let (s, e) =
        srv.post("/api/v1/executions/ml-alpha/development", &json!({"workflow": "too-big", "name": "big"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert!(e.to_string().contains("nodes.big.resources") && e.to_string().contains("quota"), "{e}");
    assert_eq!(srv.get("/api/v1/executions/ml-alpha/development/big").await.0, StatusCode::NOT_FOUND);

    // Twelve half-core attempts under a one-core quota: two at a time, the rest wait and say why.
    launch(&srv, "ml-alpha", "development", json!({"workflow": "wide", "name": "w1"})).await;
    launch(&srv, "ml-alpha", "development", json!({"workflow": "wide", "name": "w2"})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut reason = None;
    while reason.is_none() && Instant::now() < deadline {
        let (_, u) = srv.get("/api/v1/tenants/team-alpha/quota").await;
        assert!(u["usage"]["running_tasks"].as_u64().expect("usage") <= 2, "over quota: {u}");
        let (_, ns) = srv.get("/api/v1/executions/ml-alpha/development/w2/nodes").await;
        reason = ns
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["phase"] == "WAITING_FOR_RESOURCES")
            .and_then(|n| n["waiting_reason"].as_str().map(str::to_string));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reason = reason.expect("some node waited for resources");
    assert!(reason.starts_with("quota: cpu 1/1 in use") && reason.ends_with("(tenant team-alpha)"), "{reason}");
    for name in ["w1", "w2"] {
        let d = wait_done(&srv, "ml-alpha", "development", name, 60).await;
        assert_eq!(d["phase"], "SUCCEEDED", "{d}");
    }
    assert_eq!(
        max_concurrency(&srv, "ml-alpha", "development", &["w1", "w2"]).await,
        2,
        "cpu 1 / 500m each: exactly two at a time"
    );
    let (_, u) = srv.get("/api/v1/tenants/team-alpha/quota").await;
    let stored = u["usage"]["stored_bytes"].clone();
    assert!(stored.as_str().is_some_and(|b| b != "0"), "logs and records were counted: {u}");
    assert_eq!(
        u["usage"],
        json!({"cpu": "0", "memory": "0", "running_tasks": 0, "running_executions": 0, "waiting_tasks": 0, "stored_bytes": stored})
    );
    // Stored bytes at their quota: launches are refused until it is raised.
    let (s, q) = srv.put("/api/v1/tenants/team-alpha/quota", &json!({"stored_bytes": 10})).await;
    assert_eq!(s, StatusCode::OK, "{q}");
    let (s, e) =
        srv.post("/api/v1/executions/ml-alpha/development", &json!({"workflow": "wide", "name": "full"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert!(e["message"].as_str().unwrap().contains("quota: stored bytes"), "{e}");
    assert_eq!(srv.get("/api/v1/executions/ml-alpha/development/full").await.0, StatusCode::NOT_FOUND);

    // One running execution at a time: the second stays QUEUED until the first ends.
    let (s, q) = srv.put("/api/v1/tenants/team-alpha/quota", &json!({"running_executions": 1})).await;
    assert_eq!(s, StatusCode::OK, "{q}");
    launch(&srv, "ml-alpha", "development", json!({"workflow": "wide", "name": "e1"})).await;
    launch(&srv, "ml-alpha", "development", json!({"workflow": "wide", "name": "e2"})).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (_, e2) = srv.get("/api/v1/executions/ml-alpha/development/e2").await;
    let (_, e1) = srv.get("/api/v1/executions/ml-alpha/development/e1").await;
    if e1["phase"] == "RUNNING" {
        assert_eq!(e2["phase"], "QUEUED", "{e2}");
    }
    let d1 = wait_done(&srv, "ml-alpha", "development", "e1", 60).await;
    let d2 = wait_done(&srv, "ml-alpha", "development", "e2", 60).await;
    assert_eq!((d1["phase"].as_str(), d2["phase"].as_str()), (Some("SUCCEEDED"), Some("SUCCEEDED")));
    let (_, n1) = srv.get("/api/v1/executions/ml-alpha/development/e1/nodes").await;
    let e1_end = n1.as_array().unwrap().iter().filter_map(|n| n["finished_at"].as_i64()).max().unwrap();
    let (_, n2) = srv.get("/api/v1/executions/ml-alpha/development/e2/nodes").await;
    let e2_start = n2.as_array().unwrap().iter().filter_map(|n| n["started_at"].as_i64()).min().unwrap();
    assert!(e2_start >= e1_end, "e2 ran only after e1 ended ({e2_start} < {e1_end})");

    // Priority inside the tenant: one task at a time; a later, higher-priority execution's
    // attempts go before the earlier one's waiting attempts.
    let (s, q) = srv.put("/api/v1/tenants/team-alpha/quota", &json!({"running_tasks": 1})).await;
    assert_eq!(s, StatusCode::OK, "{q}");
    let (s, e) =
        srv.post("/api/v1/executions/ml-alpha/development", &json!({"workflow": "wide", "priority": 101})).await;
    assert!(s == StatusCode::BAD_REQUEST && e.to_string().contains("priority"), "{e}");
    launch(&srv, "ml-alpha", "development", json!({"workflow": "wide", "name": "lo"})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    launch(&srv, "ml-alpha", "development", json!({"workflow": "wide", "name": "hi", "priority": 10})).await;
    wait_done(&srv, "ml-alpha", "development", "lo", 60).await;
    wait_done(&srv, "ml-alpha", "development", "hi", 60).await;
    let starts = |name: &'static str| {
        let srv = &srv;
        async move {
            let (_, ns) = srv.get(&format!("/api/v1/executions/ml-alpha/development/{name}/nodes")).await;
            let mut v: Vec<i64> = ns.as_array().unwrap().iter().filter_map(|n| n["started_at"].as_i64()).collect();
            v.sort();
            v
        }
    };
    let (lo, hi) = (starts("lo").await, starts("hi").await);
    let lo_after_hi = lo.iter().filter(|t| **t > *hi.last().unwrap()).count();
    assert!(lo_after_hi >= 4, "high priority went first: lo {lo:?}, hi {hi:?}");
    srv.stop().await;
});
