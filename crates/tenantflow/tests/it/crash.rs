//! kill -9 of a `tenantflow serve` process with 20 executions in flight: after a restart every
//! execution reaches a terminal phase with correct outputs, no attempt is recorded twice, no
//! task process outlives its server. On SQLite and on PostgreSQL.

use crate::engine::can_run;
use crate::harness::{backends, Backend, TestDb};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tenantflow");

const WORKFLOW: &str = "kind: Task\nname: step\ninterface: {inputs: {x: {type: integer}}, outputs: {x: {type: integer}}}\ncontainer:\n  command:\n    - python3\n    - -c\n    - |\n      import json, os, time\n      time.sleep(0.3)  # tf-crash-marker\n      x = json.load(open(os.environ['TENANTFLOW_INPUTS']))['x']\n      json.dump({'x': x * 2 + 1}, open(os.environ['TENANTFLOW_OUTPUTS'], 'w'))\n---\nkind: Workflow\nname: steps\ninterface: {inputs: {x: {type: integer}}, outputs: {x: {type: integer}}}\nnodes:\n  - {id: a, task: step, inputs: {x: '{{ inputs.x }}'}}\n  - {id: b, task: step, inputs: {x: '{{ a.outputs.x }}'}}\n  - {id: c, task: step, inputs: {x: '{{ b.outputs.x }}'}}\noutputs: {x: '{{ c.outputs.x }}'}\n";

pub fn start(db: &TestDb, port: u16) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--data-dir"])
        .arg(db.dir.path())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(u) = &db.url {
        cmd.args(["--database-url", u]);
    }
    cmd.spawn().expect("tenantflow serve starts")
}

/// A `tenantflow serve` process over `db` on a free port, ready: (process, port, base URL,
/// admin credential).
pub async fn serve(db: &TestDb, http: &reqwest::Client) -> (Child, u16, String, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let child = start(db, port);
    ready(http, &base).await;
    let token = std::fs::read_to_string(db.dir.path().join("admin-token")).unwrap().trim().to_string();
    (child, port, base, token)
}

pub async fn ready(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server at {base} not ready");
}

/// How many processes have `marker` in their command line.
pub fn processes_marked(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker)))
        .count()
}

fn marked_processes() -> usize {
    processes_marked("tf-crash-marker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_execution_loses_nothing() {
    if !can_run() {
        return;
    }
    for backend in backends() {
        run(backend).await;
    }
}

async fn run(backend: Backend) {
    let db = TestDb::new(backend).await;
    let http = reqwest::Client::new();
    let (mut child, port, base, token) = serve(&db, &http).await;
    let post = |path: String, body: Value| {
        let (http, token) = (http.clone(), token.clone());
        let base = base.clone();
        async move {
            let r = http.post(format!("{base}{path}")).bearer_auth(&token).json(&body).send().await.unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.text().await.unwrap());
        }
    };
    post("/api/v1/projects".into(), json!({"id": "crashp", "domains": ["development"]})).await;
    let r = http
        .post(format!("{base}/api/v1/register/crashp/development?version=v1"))
        .bearer_auth(&token)
        .header("content-type", "application/yaml")
        .body(WORKFLOW)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    for i in 0..20 {
        post(
            "/api/v1/executions/crashp/development".into(),
            json!({"workflow": "steps", "name": format!("e{i}"), "inputs": {"x": i}}),
        )
        .await;
    }
    // Let some attempts finish and others be mid-run, then kill -9.
    tokio::time::sleep(Duration::from_millis(900)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while marked_processes() > 0 {
        assert!(Instant::now() < deadline, "task processes outlived their server");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut child = start(&db, port);
    ready(&http, &base).await;
    let get = |path: String| {
        let (http, token, base) = (http.clone(), token.clone(), base.clone());
        async move {
            let r = http.get(format!("{base}{path}")).bearer_auth(&token).send().await.unwrap();
            r.json::<Value>().await.unwrap()
        }
    };
    let mut interrupted = 0;
    for i in 0..20 {
        let e = get(format!("/api/v1/executions/crashp/development/e{i}?wait=60")).await;
        assert_eq!(e["phase"], "SUCCEEDED", "{backend:?} e{i}: {e}");
        let expect = ((i * 2 + 1) * 2 + 1) * 2 + 1;
        assert_eq!(e["outputs"]["x"], expect, "{backend:?} e{i}: {e}");
        let nodes = get(format!("/api/v1/executions/crashp/development/e{i}/nodes")).await;
        for n in nodes.as_array().unwrap() {
            let attempts = n["attempts"].as_array().unwrap();
            let numbers: Vec<i64> = attempts.iter().map(|a| a["attempt"].as_i64().unwrap()).collect();
            let expected: Vec<i64> = (1..=attempts.len() as i64).collect();
            assert_eq!(numbers, expected, "{backend:?} e{i}/{}: attempts numbered once each", n["node"]);
            let succeeded = attempts.iter().filter(|a| a["phase"] == "SUCCEEDED").count();
            assert_eq!(succeeded, 1, "{backend:?} e{i}/{}: exactly one successful attempt: {attempts:?}", n["node"]);
            assert!(attempts.iter().all(|a| a["phase"] != "RUNNING"), "{attempts:?}");
            interrupted += attempts.iter().filter(|a| a["error_kind"] == "system").count();
        }
    }
    assert!(interrupted > 0, "{backend:?}: the kill interrupted no attempt; the test proves nothing");
    child.kill().unwrap();
    child.wait().unwrap();
}
