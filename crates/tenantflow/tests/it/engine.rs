//! Executions over HTTP, run for real by the engine and the sandboxed executor: the Alpha
//! example end to end, retries then failure with the log tail, timeouts and termination that
//! leave nothing running, the data catalog (once across executions, never across projects),
//! input checks, and isolation of tenants' data through the engine.

use crate::harness::TestServer;
use crate::on_every_backend;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub const ALPHA_EXAMPLE: &str = include_str!("../../../../examples/alpha-ml-workflow.yaml");

/// Whether tasks can run here (bubblewrap present); in CI a missing sandbox is a failure.
pub fn can_run() -> bool {
    if std::path::Path::new("/usr/bin/bwrap").exists() {
        return true;
    }
    if std::env::var("TENANTFLOW_REQUIRE_ALL").is_ok_and(|v| v == "1") {
        panic!("TENANTFLOW_REQUIRE_ALL=1 but bubblewrap is not installed (apt-get install bubblewrap)");
    }
    eprintln!("note: engine tests skipped: bubblewrap not installed");
    false
}

/// Polls an execution until it reaches a terminal phase (at most `secs`).
pub async fn wait_done(srv: &TestServer, project: &str, domain: &str, name: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (s, e) = srv.get(&format!("/api/v1/executions/{project}/{domain}/{name}")).await;
        assert_eq!(s, StatusCode::OK, "{e}");
        if ["SUCCEEDED", "FAILED", "ABORTED", "TIMED_OUT"].contains(&e["phase"].as_str().unwrap_or("")) {
            return e;
        }
        assert!(Instant::now() < deadline, "execution {name} did not finish in {secs}s: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn launch(srv: &TestServer, project: &str, domain: &str, body: Value) -> Value {
    let (s, e) = srv.post(&format!("/api/v1/executions/{project}/{domain}"), &body).await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    e
}

/// Largest number of attempts of these executions that ran at the same time.
pub async fn max_concurrency(srv: &TestServer, project: &str, domain: &str, names: &[&str]) -> usize {
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for name in names {
        for n in nodes(srv, project, domain, name).await {
            for a in n["attempts"].as_array().unwrap() {
                edges.push((a["started_at"].as_i64().unwrap(), 1));
                edges.push((a["finished_at"].as_i64().unwrap(), -1));
            }
        }
    }
    // Ends before starts at the same instant: an attempt starts only after another released.
    edges.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        max = max.max(now);
    }
    max as usize
}

async fn nodes(srv: &TestServer, project: &str, domain: &str, name: &str) -> Vec<Value> {
    let (s, n) = srv.get(&format!("/api/v1/executions/{project}/{domain}/{name}/nodes")).await;
    assert_eq!(s, StatusCode::OK, "{n}");
    n.as_array().unwrap().clone()
}

fn task(name: &str, script: &str, extra: &str) -> String {
    let script = script.replace('\n', "\n      ");
    format!(
        "kind: Task\nname: {name}\n{extra}\ncontainer:\n  command:\n    - python3\n    - -c\n    - |\n      {script}\n"
    )
}

fn processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker)))
        .count()
}

on_every_backend!(alpha_example_runs_end_to_end, |srv| {
    if !can_run() {
        return;
    }
    srv.project("ml-alpha", "team-alpha", &["development", "production"]).await;
    assert_eq!(srv.register("ml-alpha", "development", "v1", ALPHA_EXAMPLE).await.0, StatusCode::CREATED);
    let data = srv.data_dir("team-alpha").join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("in.csv"), "category,value,weight\na,1,10\na,3,20\nb,10,5\n").unwrap();

    let e = launch(&srv, "ml-alpha", "development", json!({"launch_plan": "alpha-nightly", "name": "run-1"})).await;
    assert_eq!(e["launch_plan"], "alpha-nightly@v1");
    assert_eq!(e["inputs"], json!({"input_path": "data/in.csv"}), "launch-plan defaults applied");
    let done = wait_done(&srv, "ml-alpha", "development", "run-1", 60).await;
    assert_eq!(done["phase"], "SUCCEEDED", "{done}");
    assert_eq!(done["created_by"], "platform-admin");
    // The result is a blob under the tenant's prefix holding the averages per category.
    let uri = done["outputs"]["result"].as_str().unwrap().to_string();
    assert!(uri.contains("/tenants/team-alpha/ml-alpha/development/executions/run-1/process/1/"), "{uri}");
    let path = uri.strip_prefix("file://").unwrap();
    let result: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(result["a"]["value"], json!(2.0));
    assert_eq!(result["b"]["weight"], json!(5.0));

    let ns = nodes(&srv, "ml-alpha", "development", "run-1").await;
    assert_eq!(ns.len(), 2);
    assert_eq!((ns[0]["node"].as_str(), ns[0]["phase"].as_str()), (Some("load"), Some("SUCCEEDED")));
    assert_eq!(ns[0]["outputs"]["rows"], 3);
    assert_eq!(ns[0]["cache_status"], "MISS");
    assert_eq!(ns[1]["cache_status"], "DISABLED");
    let a = &ns[1]["attempts"][0];
    assert_eq!((a["phase"].as_str(), a["exit_code"].as_i64()), (Some("SUCCEEDED"), Some(0)));
    assert!(a["duration_ms"].as_i64().is_some());
    // Logs and outputs routes.
    let (s, o) = srv.get("/api/v1/executions/ml-alpha/development/run-1/outputs").await;
    assert_eq!((s, o["phase"].as_str()), (StatusCode::OK, Some("SUCCEEDED")));
    let r = srv
        .http
        .get(format!("{}/api/v1/executions/ml-alpha/development/run-1/nodes/load/attempts/1/logs", srv.base))
        .bearer_auth(&srv.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Relaunch: same inputs, same workflow version; the cached `load` is reused.
    let (s, r2) = srv.post("/api/v1/executions/ml-alpha/development/run-1/relaunch", &json!({"name": "run-2"})).await;
    assert_eq!(s, StatusCode::CREATED, "{r2}");
    assert_eq!(r2["relaunch_of"], "run-1");
    let done = wait_done(&srv, "ml-alpha", "development", "run-2", 60).await;
    assert_eq!(done["phase"], "SUCCEEDED", "{done}");
    let ns = nodes(&srv, "ml-alpha", "development", "run-2").await;
    assert_eq!(ns[0]["cache_status"], "HIT");
    assert!(ns[0]["attempts"].as_array().unwrap().is_empty(), "a cache hit runs nothing");
    // Listing with filters.
    let (_, l) = srv.get("/api/v1/executions/ml-alpha/development?phase=SUCCEEDED&launch_plan=alpha-nightly@v1").await;
    assert_eq!(l["items"].as_array().unwrap().len(), 2, "{l}");
    let (_, l) = srv.get("/api/v1/executions/ml-alpha/development?user=nobody").await;
    assert!(l["items"].as_array().unwrap().is_empty());
    srv.stop().await;
});

on_every_backend!(launch_checks_inputs, |srv| {
    srv.project("ml-alpha", "team-alpha", &["development"]).await;
    let y = "kind: Task\nname: t\ninterface: {inputs: {n: {type: integer}, s: {type: string}}}\ncontainer: {command: [/bin/true]}\n---\nkind: Workflow\nname: wf\ninterface: {inputs: {n: {type: integer}, s: {type: string, default: x}}}\nnodes: [{id: a, task: t, inputs: {n: '{{ inputs.n }}', s: '{{ inputs.s }}'}}]\n---\nkind: LaunchPlan\nname: lp\nworkflow: wf\nfixed_inputs: {s: fixed}\n";
    assert_eq!(srv.register("ml-alpha", "development", "v1", y).await.0, StatusCode::CREATED);
    let cases = [
        (json!({"workflow": "wf"}), "inputs.n", "required"),
        (json!({"workflow": "wf", "inputs": {"n": "seven"}}), "inputs.n", "integer"),
        (json!({"workflow": "wf", "inputs": {"n": 1, "zz": 2}}), "inputs.zz", "not an input"),
        (json!({"launch_plan": "lp", "inputs": {"n": 1, "s": "mine"}}), "inputs.s", "cannot be overridden"),
        (json!({"inputs": {"n": 1}}), "launch_plan", "required"),
        (json!({"workflow": "wf", "launch_plan": "lp"}), "launch_plan", "not both"),
        (json!({"workflow": "wf", "inputs": {"n": 1}, "max_parallelism": 0}), "max_parallelism", "1..="),
        (json!({"workflow": "wf", "inputs": {"n": 1}, "name": "Bad Name"}), "name", ""),
    ];
    for (body, field, says) in cases {
        let (s, e) = srv.post("/api/v1/executions/ml-alpha/development", &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {e}");
        assert_eq!(e["details"]["field"], field, "{body}: {e}");
        assert!(e["message"].as_str().unwrap().contains(says), "{body}: {e}");
    }
    let (s, e) = srv.post("/api/v1/executions/ml-alpha/development", &json!({"workflow": "nope"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    let (_, l) = srv.get("/api/v1/executions/ml-alpha/development").await;
    assert!(l["items"].as_array().unwrap().is_empty(), "refused launches write nothing: {l}");
    // The flat route checks access like the path form.
    let (s, e) = srv
        .post("/api/v1/executions", &json!({"project": "ml-alpha", "domain": "development", "launch_plan": "lp", "inputs": {"n": 3}, "name": "flat"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    assert_eq!(e["inputs"], json!({"n": 3, "s": "fixed"}));
    srv.role("team-alpha", "reader", &["executions:read"], &["*"], &["*"]).await;
    let reader = srv.service_account("team-alpha", "reader", "reader").await;
    let body = json!({"project": "ml-alpha", "domain": "development", "launch_plan": "lp", "inputs": {"n": 3}});
    let (s, _) = srv
        .call("POST", "/api/v1/executions", Some(&reader), Some(("application/json", body.to_string().into_bytes())))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    srv.project("data-beta", "team-beta", &["development"]).await;
    srv.role("team-beta", "all", &["*"], &["*"], &["*"]).await;
    let outsider = srv.service_account("team-beta", "all", "all").await;
    let (s, b) = srv
        .call("POST", "/api/v1/executions", Some(&outsider), Some(("application/json", body.to_string().into_bytes())))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert!(!b.to_string().contains("ml-alpha"));
    srv.stop().await;
});

on_every_backend!(failures_retry_then_fail_with_the_log_tail, |srv| {
    if !can_run() {
        return;
    }
    srv.project("ml-alpha", "team-alpha", &["development"]).await;
    let y = task(
        "flaky",
        "import os, sys\nsys.stderr.write('boom: bad row 7 in attempt ' + os.environ['TENANTFLOW_ATTEMPT'] + '\\n')\nsys.exit(3)",
        "retries: 2",
    ) + "---\nkind: Workflow\nname: wf\nnodes: [{id: a, task: flaky}, {id: b, task: flaky, after: [a]}]\n";
    assert_eq!(srv.register("ml-alpha", "development", "v1", &y).await.0, StatusCode::CREATED);
    launch(&srv, "ml-alpha", "development", json!({"workflow": "wf", "name": "f1"})).await;
    let done = wait_done(&srv, "ml-alpha", "development", "f1", 60).await;
    assert_eq!(done["phase"], "FAILED", "{done}");
    let err = done["error"].as_str().unwrap();
    assert!(err.contains("exited with code 3") && err.contains("boom: bad row 7 in attempt 3"), "{err}");
    let ns = nodes(&srv, "ml-alpha", "development", "f1").await;
    let attempts = ns[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "1 + 2 retries: {attempts:?}");
    assert!(attempts.iter().all(|a| a["phase"] == "FAILED" && a["error_kind"] == "user"));
    assert_eq!(ns[0]["phase"], "FAILED");
    assert_eq!(ns[1]["phase"], "SKIPPED");
    srv.stop().await;
});

on_every_backend!(timeouts_and_terminate_leave_nothing_running, |srv| {
    if !can_run() {
        return;
    }
    srv.project("ml-alpha", "team-alpha", &["development"]).await;
    let marker = format!("tf-sleeper-{}", std::process::id());
    let sleeper = format!(
        "import subprocess, time\nsubprocess.Popen(['/bin/sh', '-c', 'sleep 300 # {marker}'])\ntime.sleep(300)"
    );
    let y = task("slow", &sleeper, "timeout: 1s")
        + "---\n"
        + &task("hang", &sleeper, "")
        + "---\nkind: Workflow\nname: slow-wf\nnodes: [{id: a, task: slow}]\n---\nkind: Workflow\nname: hang-wf\nnodes: [{id: a, task: hang}, {id: b, task: hang}]\n";
    assert_eq!(srv.register("ml-alpha", "development", "v1", &y).await.0, StatusCode::CREATED);

    launch(&srv, "ml-alpha", "development", json!({"workflow": "slow-wf", "name": "t1"})).await;
    let done = wait_done(&srv, "ml-alpha", "development", "t1", 30).await;
    assert_eq!(done["phase"], "TIMED_OUT", "{done}");
    assert_eq!(processes_with(&marker), 0, "a timed-out attempt leaves nothing running");

    launch(&srv, "ml-alpha", "development", json!({"workflow": "hang-wf", "name": "t2"})).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_with(&marker) < 2 {
        assert!(Instant::now() < deadline, "tasks did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = Instant::now();
    let (s, e) = srv.call("DELETE", "/api/v1/executions/ml-alpha/development/t2", Some(&srv.admin), None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{e}");
    let done = wait_done(&srv, "ml-alpha", "development", "t2", 5).await;
    let took = asked.elapsed();
    assert_eq!(done["phase"], "ABORTED", "{done}");
    assert!(took < Duration::from_secs(1), "terminate took {took:?}");
    assert!(done["error"].as_str().unwrap().contains("platform-admin"), "{done}");
    assert_eq!(processes_with(&marker), 0, "terminate kills the whole tree");
    let ns = nodes(&srv, "ml-alpha", "development", "t2").await;
    assert!(ns.iter().all(|n| n["phase"] == "ABORTED"), "{ns:?}");
    assert!(ns.iter().all(|n| n["attempts"][0]["phase"] == "ABORTED"), "{ns:?}");
    let (s, _) = srv.call("DELETE", "/api/v1/executions/ml-alpha/development/t2", Some(&srv.admin), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "already finished");
    srv.stop().await;
});

on_every_backend!(catalog_runs_once_and_never_crosses_projects, |srv| {
    if !can_run() {
        return;
    }
    srv.project("ml-alpha", "team-alpha", &["development", "production"]).await;
    srv.project("ml-alpha-2", "team-alpha", &["development"]).await;
    let counter = "import json, os\nd = os.environ['TENANTFLOW_DATA_DIR']\nopen(os.path.join(d, 'runs.log'), 'a').write('ran\\n')\ninputs = json.load(open(os.environ['TENANTFLOW_INPUTS']))\njson.dump({'y': inputs['x'] * 2}, open(os.environ['TENANTFLOW_OUTPUTS'], 'w'))";
    let y = task(
        "double",
        counter,
        "interface: {inputs: {x: {type: integer}}, outputs: {y: {type: integer}}}\ncache: {enabled: true, version: \"1\"}",
    ) + "---\nkind: Workflow\nname: wf\ninterface: {inputs: {x: {type: integer}}, outputs: {y: {type: integer}}}\nnodes: [{id: a, task: double, inputs: {x: '{{ inputs.x }}'}}, {id: b, task: double, inputs: {x: '{{ inputs.x }}'}}]\noutputs: {y: '{{ b.outputs.y }}'}\n";
    for (p, d) in [("ml-alpha", "development"), ("ml-alpha", "production"), ("ml-alpha-2", "development")] {
        assert_eq!(srv.register(p, d, "v1", &y).await.0, StatusCode::CREATED);
    }
    let runs = srv.data_dir("team-alpha").join("runs.log");
    let count = || std::fs::read_to_string(&runs).map(|s| s.lines().count()).unwrap_or(0);
    // Two identical nodes in one execution, then a second execution: the task runs once.
    launch(&srv, "ml-alpha", "development", json!({"workflow": "wf", "name": "c1", "inputs": {"x": 21}})).await;
    let d = wait_done(&srv, "ml-alpha", "development", "c1", 60).await;
    assert_eq!((d["phase"].as_str(), d["outputs"]["y"].as_i64()), (Some("SUCCEEDED"), Some(42)), "{d}");
    launch(&srv, "ml-alpha", "development", json!({"workflow": "wf", "name": "c2", "inputs": {"x": 21}})).await;
    wait_done(&srv, "ml-alpha", "development", "c2", 60).await;
    assert_eq!(count(), 1, "concurrent identical attempts and a later execution reuse one run");
    let ns = nodes(&srv, "ml-alpha", "development", "c2").await;
    assert!(ns.iter().all(|n| n["cache_status"] == "HIT"), "{ns:?}");
    // Other inputs miss; another domain and another project never see this project's cache.
    launch(&srv, "ml-alpha", "development", json!({"workflow": "wf", "name": "c3", "inputs": {"x": 1}})).await;
    wait_done(&srv, "ml-alpha", "development", "c3", 60).await;
    assert_eq!(count(), 2);
    launch(&srv, "ml-alpha", "production", json!({"workflow": "wf", "name": "c4", "inputs": {"x": 21}})).await;
    wait_done(&srv, "ml-alpha", "production", "c4", 60).await;
    assert_eq!(count(), 3, "no sharing across domains");
    launch(&srv, "ml-alpha-2", "development", json!({"workflow": "wf", "name": "c5", "inputs": {"x": 21}})).await;
    let d = wait_done(&srv, "ml-alpha-2", "development", "c5", 60).await;
    assert_eq!(d["outputs"]["y"], 42);
    assert_eq!(count(), 4, "no sharing across projects");
    srv.stop().await;
});

on_every_backend!(tasks_see_only_their_tenants_data, |srv| {
    if !can_run() {
        return;
    }
    srv.project("ml-alpha", "team-alpha", &["development"]).await;
    srv.project("data-beta", "team-beta", &["development"]).await;
    let engine = srv.server.as_ref().unwrap().engine();
    let beta = engine.data_dir("team-beta");
    std::fs::create_dir_all(&beta).unwrap();
    std::fs::write(beta.join("secret.txt"), "beta's secret").unwrap();
    let beta_path = beta.join("secret.txt").display().to_string();
    let work = engine.data_dir("team-alpha").parent().unwrap().parent().unwrap().join("work");
    let probe = format!(
        "import json, os, socket\nres = {{}}\nfor p in ['{beta_path}', '{work}']:\n    res[p] = os.path.exists(p)\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n    res['net'] = 'connected'\nexcept OSError as e:\n    res['net'] = 'refused' if isinstance(e, ConnectionRefusedError) else 'unreachable'\nopen('probe.json', 'w').write(json.dumps(res))\njson.dump({{'report': 'probe.json'}}, open(os.environ['TENANTFLOW_OUTPUTS'], 'w'))",
        work = work.display(),
        port = srv.base.rsplit(':').next().unwrap()
    );
    let y = task("probe", &probe, "interface: {outputs: {report: {type: file}}}")
        + "---\nkind: Workflow\nname: wf\ninterface: {outputs: {report: {type: file}}}\nnodes: [{id: a, task: probe}]\noutputs: {report: '{{ a.outputs.report }}'}\n"
        + "---\n"
        + &task("hog", "x = bytearray(400 * 1024 * 1024)\nprint(len(x))", "resources: {limits: {memory: 64Mi}}")
        + "---\nkind: Workflow\nname: hog-wf\nnodes: [{id: a, task: hog}]\n";
    assert_eq!(srv.register("ml-alpha", "development", "v1", &y).await.0, StatusCode::CREATED);
    launch(&srv, "ml-alpha", "development", json!({"workflow": "wf", "name": "iso"})).await;
    let d = wait_done(&srv, "ml-alpha", "development", "iso", 60).await;
    assert_eq!(d["phase"], "SUCCEEDED", "{d}");
    let path = d["outputs"]["report"].as_str().unwrap().strip_prefix("file://").unwrap().to_string();
    let report: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(report[&beta_path], false, "another tenant's data area is invisible: {report}");
    assert_eq!(report[&work.display().to_string()], false, "other working directories are invisible: {report}");
    // The server listens on the host's loopback; the sandbox has only its own.
    assert_ne!(report["net"], "connected", "no network: {report}");
    // A file input naming another tenant's blob is refused.
    let y2 = task("cat", "print(1)", "interface: {inputs: {f: {type: file}}}")
        + "---\nkind: Workflow\nname: cat-wf\ninterface: {inputs: {f: {type: file}}}\nnodes: [{id: a, task: cat, inputs: {f: '{{ inputs.f }}'}}]\n";
    assert_eq!(srv.register("data-beta", "development", "v1", &y2).await.0, StatusCode::CREATED);
    let alpha_blob = d["outputs"]["report"].as_str().unwrap();
    let (s, e) = srv
        .post(
            "/api/v1/executions/data-beta/development",
            &json!({"workflow": "cat-wf", "name": "steal", "inputs": {"f": alpha_blob}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    let d = wait_done(&srv, "data-beta", "development", "steal", 60).await;
    assert_eq!(d["phase"], "FAILED", "{d}");
    assert!(d["error"].as_str().unwrap().contains("not in this tenant's storage"), "{d}");
    // Exceeding the memory limit gets the task killed.
    launch(&srv, "ml-alpha", "development", json!({"workflow": "hog-wf", "name": "hog"})).await;
    let d = wait_done(&srv, "ml-alpha", "development", "hog", 60).await;
    assert_eq!(d["phase"], "FAILED", "{d}");
    let err = d["error"].as_str().unwrap();
    assert!(err.contains("memory") || err.contains("MemoryError") || err.contains("signal 9"), "{err}");
    srv.stop().await;
});
