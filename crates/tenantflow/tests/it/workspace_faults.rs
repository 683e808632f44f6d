//! kill -9 of a `tenantflow serve` process while it provisions workspaces (16 clients) and
//! retires others (with executions running): after a restart the reconciler finishes both —
//! every declared workspace converged exactly as declared, every retired one exported and
//! purged — with no duplicate or orphaned tenant, project, role, binding, record, blob or task
//! process. On SQLite and on PostgreSQL.

use crate::crash::{processes_marked, ready};
use crate::engine::can_run;
use crate::harness::{backends, TestDb};
use crate::workspaces::eventually;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const BIN: &str = env!("CARGO_BIN_EXE_tenantflow");
const NAP: &str = "kind: Task\nname: nap\ncontainer: {command: [\"sh\", \"-c\", \"sleep 60 # tf-ws-fault-marker\"]}\n---\nkind: Workflow\nname: slow\nnodes: [{id: a, task: nap}]\n";

fn start(db: &TestDb, port: u16) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--data-dir"])
        .arg(db.dir.path())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("TENANTFLOW_WORKSPACES__RETENTION", "2s")
        .env("TENANTFLOW_WORKSPACES__RECONCILE_INTERVAL", "500ms")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(u) = &db.url {
        cmd.args(["--database-url", u]);
    }
    cmd.spawn().expect("tenantflow serve starts")
}

fn marked_processes() -> usize {
    processes_marked("tf-ws-fault-marker")
}

fn spec(id: &str) -> Value {
    json!({
        "name": format!("Workspace {id}"),
        "members": [
            {"user_id": "o", "email": format!("owner@{id}.example"), "role": "owner"},
            {"user_id": "a", "email": format!("a@{id}.example"), "role": "contributor"},
            {"user_id": "b", "email": format!("b@{id}.example"), "role": "contributor"}
        ],
        "quota": {"running_tasks": 4}
    })
}

async fn call(http: &reqwest::Client, m: &str, url: &str, token: &str, body: Option<&Value>) -> (StatusCode, Value) {
    let mut req = http.request(m.parse().unwrap(), url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    let res = req.send().await.expect("request sent");
    let s = res.status();
    (s, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_provisioning_and_retirement_loses_nothing() {
    if !can_run() {
        return;
    }
    for backend in backends() {
        let db = TestDb::new(backend).await;
        let http = reqwest::Client::new();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = start(&db, port);
        ready(&http, &base).await;
        let admin = std::fs::read_to_string(db.dir.path().join("admin-token")).unwrap().trim().to_string();
        let (s, sa) = call(
            &http,
            "POST",
            &format!("{base}/api/v1/service_accounts"),
            &admin,
            Some(&json!({"name": "ws", "permissions": ["workspaces:*"]})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{sa}");
        let svc = sa["token"].as_str().unwrap().to_string();

        // Six workspaces with a run in flight each, then retired.
        let old: Vec<String> = (0..6).map(|i| format!("ws-old-{i}")).collect();
        for id in &old {
            let (s, b) = call(&http, "PUT", &format!("{base}/api/v1/workspaces/{id}"), &svc, Some(&spec(id))).await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
            let res = http
                .post(format!("{base}/api/v1/register/{id}/development?version=v1"))
                .bearer_auth(&admin)
                .header("content-type", "application/yaml")
                .body(NAP)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::CREATED);
            let url = format!("{base}/api/v1/executions/{id}/development");
            let (s, b) = call(&http, "POST", &url, &admin, Some(&json!({"workflow": "slow"}))).await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
        }
        eventually(30, "the naps to start", || async { (marked_processes() >= 6).then_some(()) }).await;
        for id in &old {
            let (s, b) = call(&http, "DELETE", &format!("{base}/api/v1/workspaces/{id}"), &svc, None).await;
            assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        }

        // 16 clients provisioning; kill -9 once 40 have been answered.
        let answered = Arc::new(AtomicUsize::new(0));
        let mut clients = Vec::new();
        for c in 0..16 {
            let (http, base, svc, answered) = (http.clone(), base.clone(), svc.clone(), answered.clone());
            clients.push(tokio::spawn(async move {
                for k in 0..20 {
                    let id = format!("ws-new-{c:02}-{k:02}");
                    let sent = http
                        .put(format!("{base}/api/v1/workspaces/{id}"))
                        .bearer_auth(&svc)
                        .json(&spec(&id))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().is_success() => drop(answered.fetch_add(1, Ordering::SeqCst)),
                        _ => return,
                    }
                }
            }));
        }
        eventually(60, "40 provisioned", || {
            let a = answered.clone();
            async move { (a.load(Ordering::SeqCst) >= 40).then_some(()) }
        })
        .await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for c in clients {
            let _ = c.await;
        }

        // What the kill left: declarations not converged (a crash between the declaration and its
        // convergence; made here if the kill happened to fall elsewhere) and retirements part-way.
        let store = db.store().await;
        let pending = store.platform().pending_workspaces(1000).await.unwrap();
        if pending.is_empty() {
            store.platform().declare_workspace("ws-new-late", &spec("ws-new-late")).await.unwrap();
        }
        let mut interrupted = 0;
        for id in &old {
            let w = store.platform().get_workspace(id).await.unwrap().expect("still retiring");
            assert_eq!(w.state, "deleting");
            interrupted += usize::from(w.phase.as_deref() != Some("retained"));
        }
        eprintln!("{backend:?}: {} pending provisionings, {interrupted} interrupted retirements", pending.len());
        store.close().await;

        // Restart: the reconciler finishes everything.
        let mut child = start(&db, port);
        ready(&http, &base).await;
        let declared: Vec<Value> = eventually(90, "every workspace converged and every retired one purged", || {
            let (http, base, svc) = (&http, &base, &svc);
            async move {
                let (_, l) = call(http, "GET", &format!("{base}/api/v1/workspaces?limit=1000"), svc, None).await;
                let items = l["items"].as_array()?.clone();
                let done = items.iter().all(|w| w["state"] == "active" && w["observed_generation"] == w["generation"]);
                done.then_some(items)
            }
        })
        .await;
        assert!(declared.len() >= 40, "{}", declared.len());

        let store = db.store().await;
        let ids: BTreeSet<String> = declared.iter().map(|w| w["id"].as_str().unwrap().to_string()).collect();
        for w in &declared {
            let id = w["id"].as_str().unwrap();
            let (s, v) = call(&http, "GET", &format!("{base}/api/v1/workspaces/{id}"), &svc, None).await;
            assert_eq!(s, StatusCode::OK);
            assert_eq!(v["actual"]["in_sync"], true, "{v}");
            let scope = store.tenant(id);
            let roles = scope.roles().list_roles(&Default::default()).await.unwrap();
            let names: Vec<&str> = roles.items.iter().map(|r| r.name.as_str()).collect();
            assert_eq!(names, ["contributor", "owner"], "{id}");
            let bindings = scope.roles().list_bindings(None, &Default::default()).await.unwrap();
            assert_eq!(bindings.items.len(), 3, "{id}: {:?}", bindings.items);
        }
        // No orphans: every tenant and project belongs to a declared workspace.
        let tenants =
            store.platform().list_tenants(&tf_store::PageRequest { limit: Some(1000), token: None }).await.unwrap();
        let tenant_ids: BTreeSet<String> = tenants.items.iter().map(|t| t.id.clone()).collect();
        assert_eq!(tenant_ids, ids, "tenants are exactly the workspaces");
        let projects = store.platform().all_projects().await.unwrap();
        assert_eq!(projects.iter().map(|p| p.id.clone()).collect::<BTreeSet<_>>(), ids);
        assert!(projects.iter().all(|p| p.tenant == p.id));
        // Retired workspaces left nothing behind.
        for id in &old {
            assert!(store.platform().get_workspace(id).await.unwrap().is_none());
            assert!(store.tenant(id).export_table("executions").await.unwrap().is_empty(), "{id}");
            assert!(store.tenant(id).export_table("entities").await.unwrap().is_empty(), "{id}");
            for area in ["tenants", "retained"] {
                let p = db.dir.path().join("blobs").join(area).join(id);
                assert!(!p.exists(), "{} left behind", p.display());
            }
        }
        assert_eq!(marked_processes(), 0, "a task process outlived its workspace");
        store.close().await;
        child.kill().unwrap();
        child.wait().unwrap();
        eprintln!("kill_9_during_provisioning_and_retirement_loses_nothing passed on {backend:?}");
    }
}
