//! Execution attributes over HTTP, applied by the engine: the guide's project-domain block
//! bounds ml-alpha's parallelism (10 in development, 5 in production) and runs its tasks as
//! uid/gid 1000; the most specific level wins field by field and every effective value names
//! its source; default and maximum resources are enforced at launch; launch-plan concurrency
//! queues or skips; bad input is a 400 naming the field. On SQLite and on PostgreSQL.

use crate::engine::{can_run, launch, max_concurrency, wait_done};
use crate::harness::{backends, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// 24 independent nodes that each take a moment and report who they ran as.
fn wide_bundle() -> String {
    let mut s = String::from(
        "kind: Task\nname: who\ninterface: {outputs: {uid: {type: integer}, gid: {type: integer}, mode: {type: string}}}\n\
         container:\n  command:\n    - python3\n    - -c\n    - |\n      import json, os, time\n      time.sleep(0.4)\n      \
         json.dump({'uid': os.getuid(), 'gid': os.getgid(), 'mode': os.environ.get('MODE', '')}, open(os.environ['TENANTFLOW_OUTPUTS'], 'w'))\n\
         ---\nkind: Task\nname: greedy\nresources: {requests: {cpu: '2'}}\ncontainer: {command: [/bin/true]}\n\
         ---\nkind: Task\nname: plain\ncontainer: {command: [/bin/true]}\n\
         ---\nkind: Task\nname: nap\ncontainer: {command: [/bin/sleep, '30']}\n\
         ---\nkind: Workflow\nname: nap\nnodes: [{id: z, task: nap}]\n\
         ---\nkind: Workflow\nname: greedy\nnodes: [{id: g, task: greedy}]\n\
         ---\nkind: Workflow\nname: plain\nnodes: [{id: p, task: plain}]\n\
         ---\nkind: Workflow\nname: wide\ninterface: {outputs: {uid: {type: integer}, gid: {type: integer}, mode: {type: string}}}\nnodes:\n",
    );
    for i in 0..24 {
        s.push_str(&format!("  - {{id: n{i}, task: who}}\n"));
    }
    s.push_str("outputs: {uid: '{{ n0.outputs.uid }}', gid: '{{ n0.outputs.gid }}', mode: '{{ n0.outputs.mode }}'}\n");
    s.push_str("---\nkind: LaunchPlan\nname: one-at-a-time\nworkflow: wide\nconcurrency: {max: 1}\n");
    s.push_str("---\nkind: LaunchPlan\nname: only-one\nworkflow: nap\nconcurrency: {max: 1, policy: skip}\n");
    s.push_str("---\nkind: LaunchPlan\nname: tuned\nworkflow: wide\nattributes: {max_parallelism: 3, labels: {origin: plan}}\n");
    s
}

/// The guide's block for ml-alpha, as the API shows it.
fn seed_attributes(domain: &str, parallelism: u32) -> Value {
    json!({"attributes": {
        "cluster_label": "team-alpha-cluster",
        "queue_tags": ["team-alpha", domain],
        "max_parallelism": parallelism,
        "security_context": {"run_as_user": 1000, "run_as_group": 1000}
    }})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_bound_parallelism_and_name_their_sources() {
    if !can_run() {
        return;
    }
    for backend in backends() {
        // More slots than the development bound, so the bound is what limits it.
        let srv = TestServer::start_with_slots(backend, 16).await;
        run(&srv).await;
        eprintln!("attributes passed on {backend:?}");
    }
}

async fn run(srv: &TestServer) {
    // The guide's file, applied as written: projects, roles, quotas and the `admin:` block.
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/seed-access.yaml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenantflow"))
        .args(["apply", "-f", seed])
        .env("TENANTFLOW_URL", &srv.base)
        .env("TENANTFLOW_TOKEN", &srv.admin)
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("attributes/ml-alpha/production set"), "{text}");
    assert_eq!(srv.register("ml-alpha", "development", "v1", &wide_bundle()).await.0, StatusCode::CREATED);
    assert_eq!(srv.register("ml-alpha", "production", "v1", &wide_bundle()).await.0, StatusCode::CREATED);
    let path = "/api/v1/project_domain_attributes/ml-alpha/development";
    let (s, a) = srv.get(path).await;
    assert_eq!((s, &a["attributes"]), (StatusCode::OK, &seed_attributes("development", 10)["attributes"]), "{a}");
    let (_, a) = srv.put(path, &seed_attributes("development", 10)).await;
    assert_eq!(a["result"], "unchanged", "the same attributes through the API: {a}");

    // Bad input names the field; nothing is stored.
    for (body, field) in [
        (json!({"attributes": {"max_parallelism": 0}}), "attributes.max_parallelism"),
        (json!({"attributes": {"queue_tags": ["a b"]}}), "attributes.queue_tags[0]"),
        (json!({"attributes": {"env": {"TENANTFLOW_USER": "x"}}}), "attributes.env.TENANTFLOW_USER"),
        (json!({"attributes": {"max_resources": {"cpu": "lots"}}}), "attributes.max_resources.cpu"),
        (json!({"attributes": {"maxParallelism": 3}}), "maxParallelism"),
    ] {
        let (s, e) = srv.put(path, &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {e}");
        assert!(e.to_string().contains(field), "{body}: {e}");
    }
    let (_, after) = srv.get(path).await;
    assert_eq!(after["attributes"], a["attributes"], "nothing stored by bad input");
    let (s, e) = srv.put("/api/v1/workflow_attributes/ml-alpha/development/nope", &json!({"attributes": {}})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    let (s, e) = srv.get("/api/v1/project_domain_attributes/ml-alpha/qa").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    let (s, e) = srv.get("/api/v1/project_domain_attributes/ml-alpha/staging").await;
    assert_eq!((s, &e["attributes"]), (StatusCode::OK, &json!({})), "a level without attributes is empty: {e}");

    // A project-wide environment under the guide's settings.
    let (s, a) = srv
        .put(
            "/api/v1/project_attributes/ml-alpha",
            &json!({"attributes": {"env": {"MODE": "project"}, "max_parallelism": 2, "labels": {"team": "alpha"}}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");

    // Effective values and where each came from.
    let (s, eff) = srv.get("/api/v1/effective_attributes/ml-alpha/development?workflow=wide").await;
    assert_eq!(s, StatusCode::OK, "{eff}");
    assert_eq!(eff["attributes"]["max_parallelism"], 10, "{eff}");
    assert_eq!(eff["sources"]["max_parallelism"], "project_domain_attributes ml-alpha/development");
    assert_eq!(eff["attributes"]["env"]["MODE"], "project");
    assert_eq!(eff["sources"]["env.MODE"], "project_attributes ml-alpha");
    assert_eq!(eff["sources"]["security_context.run_as_user"], "project_domain_attributes ml-alpha/development");
    assert_eq!(eff["attributes"]["queue_tags"], json!(["team-alpha", "development"]));
    assert_eq!(eff["attributes"]["cluster_label"], "team-alpha-cluster");

    // Development runs at most 10 nodes at once, production 5; both as uid/gid 1000.
    for (domain, bound) in [("development", 10usize), ("production", 5)] {
        let e = launch(srv, "ml-alpha", domain, json!({"workflow": "wide", "name": "w"})).await;
        assert_eq!(e["max_parallelism"], bound as u64, "{e}");
        assert_eq!(e["config"]["sources"]["max_parallelism"], format!("project_domain_attributes ml-alpha/{domain}"));
        let done = wait_done(srv, "ml-alpha", domain, "w", 120).await;
        assert_eq!(done["phase"], "SUCCEEDED", "{done}");
        assert_eq!(done["outputs"], json!({"uid": 1000, "gid": 1000, "mode": "project"}), "{done}");
        let seen = max_concurrency(srv, "ml-alpha", domain, &["w"]).await;
        assert!(seen <= bound && seen >= bound - 2, "{domain}: {seen} nodes at once, bound {bound}");
    }

    // More specific levels win: the workflow's attributes, then the launch plan's, then the request.
    let (s, a) = srv
        .put(
            "/api/v1/workflow_attributes/ml-alpha/development/wide",
            &json!({"attributes": {"max_parallelism": 4, "env": {"MODE": "workflow"}}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let (_, eff) = srv.get("/api/v1/effective_attributes/ml-alpha/development?launch_plan=tuned").await;
    assert_eq!(eff["attributes"]["max_parallelism"], 3, "{eff}");
    assert_eq!(eff["sources"]["max_parallelism"], "launch_plan tuned@v1");
    assert_eq!(eff["sources"]["env.MODE"], "workflow_attributes ml-alpha/development/wide");
    assert_eq!(eff["attributes"]["labels"], json!({"team": "alpha", "origin": "plan"}));
    let e = launch(
        srv,
        "ml-alpha",
        "development",
        json!({"launch_plan": "tuned", "name": "t", "max_parallelism": 7, "labels": {"run": "x"}}),
    )
    .await;
    assert_eq!(e["max_parallelism"], 7);
    assert_eq!(e["config"]["sources"]["max_parallelism"], "request");
    assert_eq!(e["config"]["attributes"]["labels"], json!({"team": "alpha", "origin": "plan", "run": "x"}));
    let done = wait_done(srv, "ml-alpha", "development", "t", 120).await;
    assert_eq!(done["outputs"]["mode"], "workflow", "{done}");
    let (s, d) =
        srv.call("DELETE", "/api/v1/workflow_attributes/ml-alpha/development/wide", Some(&srv.admin), None).await;
    assert_eq!((s, d["result"].as_str()), (StatusCode::OK, Some("deleted")), "{d}");

    // Maximum resources refuse a larger task at launch; default resources count against it.
    let (s, _) = srv
        .put(
            "/api/v1/project_attributes/ml-alpha",
            &json!({"attributes": {"max_resources": {"cpu": "1"}, "default_resources": {"cpu": "2"}}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    for wf in ["greedy", "plain"] {
        let (s, e) = srv
            .post("/api/v1/executions/ml-alpha/development", &json!({"workflow": wf, "name": format!("r-{wf}")}))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{wf}: {e}");
        assert!(e.to_string().contains("resources") && e.to_string().contains("project_attributes ml-alpha"), "{e}");
    }
    let (s, _) = srv.put("/api/v1/project_attributes/ml-alpha", &json!({"attributes": {}})).await;
    assert_eq!(s, StatusCode::OK);

    // Concurrency `queue`: three runs of a plan limited to one never overlap.
    for n in ["q1", "q2", "q3"] {
        launch(srv, "ml-alpha", "production", json!({"launch_plan": "one-at-a-time", "name": n})).await;
    }
    let mut spans = Vec::new();
    for n in ["q1", "q2", "q3"] {
        let e = wait_done(srv, "ml-alpha", "production", n, 120).await;
        assert_eq!(e["phase"], "SUCCEEDED", "{e}");
        spans.push((e["started_at"].as_i64().unwrap(), e["finished_at"].as_i64().unwrap()));
    }
    spans.sort();
    assert!(spans.windows(2).all(|w| w[1].0 >= w[0].1), "runs overlapped: {spans:?}");

    // Concurrency `skip`: a second run while one is running is refused; once it ends, allowed.
    launch(srv, "ml-alpha", "production", json!({"launch_plan": "only-one", "name": "s1"})).await;
    let (s, e) =
        srv.post("/api/v1/executions/ml-alpha/production", &json!({"launch_plan": "only-one", "name": "s2"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert!(e["message"].as_str().unwrap().contains("concurrency policy skip"), "{e}");
    assert_eq!(srv.get("/api/v1/executions/ml-alpha/production/s2").await.0, StatusCode::NOT_FOUND);
    let (s, _) = srv.call("DELETE", "/api/v1/executions/ml-alpha/production/s1", Some(&srv.admin), None).await;
    assert!(s.is_success(), "{s}");
    assert_eq!(wait_done(srv, "ml-alpha", "production", "s1", 60).await["phase"], "ABORTED");
    launch(srv, "ml-alpha", "production", json!({"launch_plan": "only-one", "name": "s3"})).await;
    srv.call("DELETE", "/api/v1/executions/ml-alpha/production/s3", Some(&srv.admin), None).await;
    wait_done(srv, "ml-alpha", "production", "s3", 60).await;
}
