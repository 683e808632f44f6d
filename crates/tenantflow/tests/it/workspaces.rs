//! Workspaces end to end, as the workspace guide's service drives them: a service account
//! holding only `workspaces:*` provisions "Customer Churn Analysis" through the guide's own
//! paths, members sign in with OIDC and get exactly their role's rights, membership changes
//! take effect with the answer, and retirement revokes access at once, aborts executions,
//! exports the data and purges everything when retention ends — reported to a webhook as
//! CloudEvents, with a failed delivery retried. Plus the reconciler: a pass over converged
//! workspaces writes nothing, drift and half-done work are repaired. On SQLite and PostgreSQL.

use crate::engine::can_run;
use crate::harness::{backends, TestServer};
use crate::oidc::Idp;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BUNDLE: &str = "kind: Task\nname: hello\ncontainer: {command: [\"true\"]}\n---\nkind: Task\nname: nap\ncontainer: {command: [\"sleep\", \"60\"]}\n---\nkind: Workflow\nname: wf\nnodes: [{id: a, task: hello}]\n---\nkind: Workflow\nname: slow\nnodes: [{id: a, task: nap}]\n";

/// A loopback webhook: records every CloudEvent; answers 500 to the first delivery.
pub struct Webhook {
    pub url: String,
    pub received: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    pub async fn start() -> Webhook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let received: Arc<Mutex<Vec<Value>>> = Default::default();
        let r = received.clone();
        let app = axum::Router::new().route(
            "/events",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let r = r.clone();
                async move {
                    assert_eq!(headers["content-type"], "application/cloudevents+json");
                    let mut got = r.lock().unwrap();
                    got.push(serde_json::from_str::<Value>(&body).unwrap());
                    if got.len() == 1 {
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        axum::http::StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Webhook { url, received }
    }
}

async fn as_user(srv: &TestServer, m: &str, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
    srv.call(m, path, Some(token), body.map(|b| ("application/json", b.to_string().into_bytes()))).await
}

async fn register_as(srv: &TestServer, token: &str, domain: &str) -> StatusCode {
    let path = format!("/api/v1/register/ws-churn-001/{domain}?version=v1");
    srv.call("POST", &path, Some(token), Some(("application/yaml", BUNDLE.as_bytes().to_vec()))).await.0
}

async fn launch_as(srv: &TestServer, token: &str, domain: &str, workflow: &str) -> (StatusCode, Value) {
    let path = format!("/api/v1/executions/ws-churn-001/{domain}");
    as_user(srv, "POST", &path, token, Some(json!({"workflow": workflow}))).await
}

/// Polls `f` until it returns `Some`, at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A platform service account holding only `workspaces:*`.
pub async fn workspace_service(srv: &TestServer) -> String {
    let (s, b) = srv
        .post("/api/v1/service_accounts", &json!({"name": "workspace-service", "permissions": ["workspaces:*"]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["permissions"], json!(["workspaces:*"]));
    b["token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_workspace_flow() {
    if !can_run() {
        return;
    }
    for backend in backends() {
        let idp = Idp::start().await;
        let hook = Webhook::start().await;
        let settings = tf_server::WorkspaceSettings {
            retention: Some("3s".into()),
            reconcile_interval: Some("300ms".into()),
            events_url: Some(hook.url.clone()),
            console_url: Some("https://console.example.com/projects/{project}".into()),
            ..Default::default()
        };
        let srv = TestServer::start_full(backend, idp.auth(), Default::default(), Default::default(), settings).await;
        let svc = workspace_service(&srv).await;

        // The service account can manage workspaces and nothing else.
        assert_eq!(as_user(&srv, "GET", "/api/v1/tenants", &svc, None).await.0, StatusCode::FORBIDDEN);
        assert_eq!(
            as_user(&srv, "POST", "/api/v1/service_accounts", &svc, Some(json!({"name": "x", "permissions": ["*"]})))
                .await
                .0,
            StatusCode::FORBIDDEN
        );

        // The guide's call, as its service sends it.
        let config = json!({
            "workspace_id": "ws-churn-001",
            "workspace_name": "Customer Churn Analysis",
            "users": [
                {"user_id": "alice", "email": "alice@company.com", "role": "owner"},
                {"user_id": "bob", "email": "bob@company.com", "role": "contributor"}
            ],
            "data_bucket": "s3://ws-churn-001-data/",
            "service_config": {"quota": {"cpu": 4, "memory": "8Gi"}}
        });
        let (s, w) = as_user(&srv, "POST", "/workspace/ws-churn-001/services/flyte", &svc, Some(config)).await;
        assert_eq!(s, StatusCode::CREATED, "{w}");
        assert_eq!(w["status"], "ready", "{w}");
        assert_eq!(w["actual"]["in_sync"], true, "{w}");
        assert_eq!(w["actual"]["project"]["domains"], json!(["development", "staging", "production"]));
        assert_eq!(w["actual"]["quota"]["cpu_millis"], 4000);
        assert!(w["links"]["project"].as_str().unwrap().ends_with("/api/v1/projects/ws-churn-001"), "{w}");
        assert_eq!(w["links"]["console"], "https://console.example.com/projects/ws-churn-001");
        // Declaring the same state again changes nothing.
        let same = json!({
            "name": "Customer Churn Analysis",
            "members": [
                {"user_id": "alice", "email": "alice@company.com", "role": "owner"},
                {"user_id": "bob", "email": "bob@company.com", "role": "contributor"}
            ],
            "data_location": "s3://ws-churn-001-data/",
            "quota": {"cpu": 4, "memory": "8Gi"}
        });
        let (s, again) = as_user(&srv, "PUT", "/api/v1/workspaces/ws-churn-001", &svc, Some(same)).await;
        assert_eq!(s, StatusCode::OK, "{again}");
        assert_eq!(again["generation"], w["generation"], "an identical declaration is not a change");

        let alice = idp.token("alice@company.com", &[]);
        let bob = idp.token("bob@company.com", &[]);
        let carol = idp.token("carol@company.com", &[]);
        // bob (contributor) builds and runs in development; production is refused.
        assert_eq!(register_as(&srv, &bob, "development").await, StatusCode::CREATED);
        let (s, e) = launch_as(&srv, &bob, "development", "wf").await;
        assert_eq!(s, StatusCode::CREATED, "{e}");
        assert_eq!(register_as(&srv, &bob, "production").await, StatusCode::FORBIDDEN);
        // alice (owner) works in production.
        assert_eq!(register_as(&srv, &alice, "production").await, StatusCode::CREATED);
        assert_eq!(launch_as(&srv, &bob, "production", "wf").await.0, StatusCode::FORBIDDEN);
        let (s, prod) = launch_as(&srv, &alice, "production", "wf").await;
        assert_eq!(s, StatusCode::CREATED, "{prod}");
        let name = prod["name"].as_str().unwrap().to_string();
        let done = eventually(60, "alice's production run", || {
            let (srv, alice, name) = (&srv, &alice, &name);
            async move {
                let (_, e) =
                    as_user(srv, "GET", &format!("/api/v1/executions/ws-churn-001/production/{name}"), alice, None)
                        .await;
                (e["phase"] == "SUCCEEDED" || e["phase"] == "FAILED").then_some(e)
            }
        })
        .await;
        assert_eq!(done["phase"], "SUCCEEDED", "{done}");
        // A long run that retirement will have to abort.
        let (s, slow) = launch_as(&srv, &alice, "development", "slow").await;
        assert_eq!(s, StatusCode::CREATED, "{slow}");
        let slow = slow["name"].as_str().unwrap().to_string();

        // bob leaves, carol joins: both take effect with the answer.
        let wf_path = "/api/v1/workflows/ws-churn-001/development";
        assert_eq!(as_user(&srv, "GET", wf_path, &bob, None).await.0, StatusCode::OK);
        assert_eq!(as_user(&srv, "GET", wf_path, &carol, None).await.0, StatusCode::NOT_FOUND);
        let members = json!([
            {"user_id": "alice", "email": "alice@company.com", "role": "owner"},
            {"user_id": "carol", "email": "carol@company.com", "role": "contributor"}
        ]);
        let (s, w) = as_user(&srv, "PUT", "/workspace/ws-churn-001/users", &svc, Some(members)).await;
        assert_eq!(s, StatusCode::OK, "{w}");
        let (s, _) = as_user(&srv, "GET", wf_path, &bob, None).await;
        assert!(s == StatusCode::NOT_FOUND || s == StatusCode::FORBIDDEN, "bob removed: {s}");
        assert_eq!(launch_as(&srv, &bob, "development", "wf").await.0, StatusCode::NOT_FOUND);
        assert_eq!(as_user(&srv, "GET", wf_path, &carol, None).await.0, StatusCode::OK);
        let (_, m) = as_user(&srv, "GET", "/api/v1/workspaces/ws-churn-001/users", &svc, None).await;
        assert_eq!(m["in_sync"], true, "{m}");
        assert_eq!(
            m["actual"],
            json!([{"email": "alice@company.com", "role": "owner"}, {"email": "carol@company.com", "role": "contributor"}])
        );
        // A bad member list is a 400 naming the field, and changes nothing.
        let (s, e) = as_user(
            &srv,
            "PUT",
            "/api/v1/workspaces/ws-churn-001/users",
            &svc,
            Some(json!({"members": [{"user_id": "dan", "email": "dan", "role": "owner"}]})),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
        assert!(e["message"].as_str().unwrap().contains("members[0].email"), "{e}");
        assert_eq!(as_user(&srv, "GET", wf_path, &carol, None).await.0, StatusCode::OK);

        // Retirement: access is gone with the answer.
        let (s, d) = as_user(&srv, "DELETE", "/workspace/ws-churn-001/services/flyte", &svc, None).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{d}");
        assert_eq!(d["status"], "deleting");
        for who in [&alice, &carol] {
            assert_eq!(as_user(&srv, "GET", wf_path, who, None).await.0, StatusCode::NOT_FOUND);
            assert_eq!(launch_as(&srv, who, "development", "wf").await.0, StatusCode::NOT_FOUND);
        }
        let (s, e) =
            as_user(&srv, "PUT", "/api/v1/workspaces/ws-churn-001", &svc, Some(json!({"name": "again"}))).await;
        assert_eq!(s, StatusCode::CONFLICT, "re-declaring while retiring: {e}");
        // Then: executions aborted, data exported, live data purged, the export kept.
        let retained = eventually(60, "the workspace's export", || {
            let (srv, svc) = (&srv, &svc);
            async move {
                let (_, w) = as_user(srv, "GET", "/api/v1/workspaces/ws-churn-001", svc, None).await;
                (w["phase"] == "retained").then_some(w)
            }
        })
        .await;
        let export = retained["export"].as_str().unwrap().strip_prefix("file://").unwrap().to_string();
        let read =
            |p: &str| -> Value { serde_json::from_slice(&std::fs::read(format!("{export}/{p}")).unwrap()).unwrap() };
        let executions = read("records/executions.json");
        let aborted = executions.as_array().unwrap().iter().find(|e| e["name"] == slow.as_str()).expect("exported");
        assert_eq!(aborted["phase"], "ABORTED", "{aborted}");
        assert_eq!(read("manifest.json")["records"]["executions"], 3);
        assert!(read("records/entities.json").as_array().unwrap().len() >= 8);
        let blobs_root = export.split("/retained/").next().unwrap().to_string();
        assert!(!std::path::Path::new(&format!("{blobs_root}/tenants/ws-churn-001")).exists(), "live blobs purged");
        assert!(srv.store().tenant("ws-churn-001").get_project("ws-churn-001").await.unwrap().is_none());
        assert_eq!(srv.get("/api/v1/projects/ws-churn-001").await.0, StatusCode::NOT_FOUND);
        // When retention ends, everything goes.
        eventually(30, "the purge", || {
            let (srv, svc) = (&srv, &svc);
            async move {
                let (s, _) = as_user(srv, "GET", "/api/v1/workspaces/ws-churn-001", svc, None).await;
                (s == StatusCode::NOT_FOUND).then_some(())
            }
        })
        .await;
        assert!(!std::path::Path::new(&export).exists(), "export purged");
        // The retirement is in the workspace's audit trail: the request, then each phase.
        let (_, trail) = srv.get("/api/v1/audit?tenant=ws-churn-001&limit=1000").await;
        let actions: Vec<&str> =
            trail["items"].as_array().unwrap().iter().filter_map(|r| r["action"].as_str()).collect();
        assert!(actions.contains(&"DELETE /workspace/{workspace}/services/flyte"), "{actions:?}");
        for phase in ["revoked", "aborted", "exported", "retained"] {
            assert!(actions.contains(&format!("workspace.retire.{phase}").as_str()), "{phase}: {actions:?}");
        }
        assert_eq!(srv.get("/api/v1/tenants/ws-churn-001").await.0, StatusCode::NOT_FOUND);

        // The webhook heard every outcome, in order, the failed first delivery retried.
        let events = eventually(30, "events delivered", || {
            let hook = hook.received.clone();
            async move {
                let got = hook.lock().unwrap().clone();
                got.iter().any(|e| e["type"] == "io.tenantflow.workspace.purged").then_some(got)
            }
        })
        .await;
        assert_eq!(events[0]["id"], events[1]["id"], "the first delivery failed and was retried");
        let mut seen: Vec<String> = Vec::new();
        for e in &events[1..] {
            assert_eq!(e["specversion"], "1.0");
            assert_eq!(e["subject"], "ws-churn-001");
            let t = format!(
                "{}{}",
                e["type"].as_str().unwrap(),
                e["data"]["phase"].as_str().map(|p| format!(":{p}")).unwrap_or_default()
            );
            if !seen.contains(&t) {
                seen.push(t);
            }
        }
        assert_eq!(
            seen,
            [
                "io.tenantflow.workspace.ready",
                "io.tenantflow.workspace.deleting:revoked",
                "io.tenantflow.workspace.deleting:aborted",
                "io.tenantflow.workspace.deleting:exported",
                "io.tenantflow.workspace.deleting:retained",
                "io.tenantflow.workspace.purged",
            ]
        );
        srv.stop().await;
        eprintln!("the_guides_workspace_flow passed on {backend:?}");
    }
}

fn spec(i: usize) -> Value {
    json!({
        "name": format!("Workspace {i}"),
        "members": [
            {"user_id": "o", "email": format!("owner{i}@company.com"), "role": "owner"},
            {"user_id": "c1", "email": format!("c1-{i}@company.com"), "role": "contributor"},
            {"user_id": "c2", "email": format!("c2-{i}@company.com"), "role": "contributor"}
        ],
        "quota": {"cpu": 2}
    })
}

async fn pass(srv: &TestServer, svc: &str) -> Value {
    let (s, r) = srv.call("POST", "/api/v1/reconciler/workspaces", Some(svc), None).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    r
}

crate::on_every_backend!(reconciler_writes_nothing_when_converged_and_repairs_the_rest, |srv| {
    let svc = workspace_service(&srv).await;
    for i in 0..40 {
        let body = Some(("application/json", spec(i).to_string().into_bytes()));
        let (s, b) = srv.call("PUT", &format!("/api/v1/workspaces/ws-r-{i:02}"), Some(&svc), body).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (_, listed) = srv.call("GET", "/api/v1/workspaces?limit=1000", Some(&svc), None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 40);
    // Converged workspaces: a pass looks at every one and writes nothing.
    let before = srv.store().access_generation().await.unwrap();
    let r = pass(&srv, &svc).await;
    assert_eq!(
        (r["workspaces"].as_u64(), r["unchanged"].as_u64(), r["converged"].as_u64()),
        (Some(40), Some(40), Some(0))
    );
    assert_eq!(srv.store().access_generation().await.unwrap(), before, "no access change written");
    let (_, w) = srv.call("GET", "/api/v1/workspaces/ws-r-07", Some(&svc), None).await;
    let updated = w["updated_at"].clone();

    // Drift made behind the workspace's back is repaired by the next pass.
    let unbind = "/api/v1/tenants/ws-r-03/bindings?role=owner&subject_kind=user&subject=owner3@company.com";
    let (s, b) = srv.call("DELETE", unbind, Some(&srv.admin), None).await;
    assert!(s.is_success(), "{b}");
    srv.role("ws-r-04", "contributor", &["workflows:read"], &["*"], &["*"]).await;
    let (_, w3) = srv.call("GET", "/api/v1/workspaces/ws-r-03", Some(&svc), None).await;
    assert_eq!(w3["actual"]["in_sync"], false, "{w3}");
    let r = pass(&srv, &svc).await;
    assert_eq!(r["converged"], 2, "{r}");
    for id in ["ws-r-03", "ws-r-04"] {
        let (_, w) = srv.call("GET", &format!("/api/v1/workspaces/{id}"), Some(&svc), None).await;
        assert_eq!(w["actual"]["in_sync"], true, "{w}");
    }
    let (_, role) = srv.get("/api/v1/tenants/ws-r-04/roles/contributor").await;
    assert_eq!(role["domains"], json!(["development", "staging"]));
    let (_, w) = srv.call("GET", "/api/v1/workspaces/ws-r-07", Some(&svc), None).await;
    assert_eq!(w["updated_at"], updated, "an unchanged workspace is not touched");

    // A declaration whose convergence never ran (a crash between the two) is finished.
    srv.store().platform().declare_workspace("ws-r-half", &spec(99)).await.unwrap();
    let (_, w) = srv.call("GET", "/api/v1/workspaces/ws-r-half", Some(&svc), None).await;
    assert_eq!(w["status"], "provisioning", "{w}");
    assert_eq!(w["actual"]["tenant"], Value::Null);
    let r = pass(&srv, &svc).await;
    assert_eq!(r["converged"], 1, "{r}");
    let (_, w) = srv.call("GET", "/api/v1/workspaces/ws-r-half", Some(&svc), None).await;
    assert_eq!(w["status"], "ready", "{w}");
    assert_eq!(w["actual"]["members"].as_array().unwrap().len(), 3);

    // One that cannot converge says why, and is retried.
    srv.project("ws-r-taken", "someone-else", &["development"]).await;
    let (s, e) = srv
        .call(
            "PUT",
            "/api/v1/workspaces/ws-r-taken",
            Some(&svc),
            Some(("application/json", spec(5).to_string().into_bytes())),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "refused before anything is declared: {e}");
    srv.store().platform().declare_workspace("ws-r-taken", &spec(5)).await.unwrap();
    let r = pass(&srv, &svc).await;
    assert_eq!(r["failed"], 1, "{r}");
    let (_, w) = srv.call("GET", "/api/v1/workspaces/ws-r-taken", Some(&svc), None).await;
    assert_eq!(w["status"], "failed", "{w}");
    assert!(w["last_error"].as_str().unwrap().contains("already taken"), "{w}");

    // Bad declarations are 400s naming the field; nothing is declared.
    for (body, field) in [
        (json!({"name": "x", "members": [{"user_id": "a", "email": "a@b.c", "role": "admin"}]}), "members[0].role"),
        (json!({"name": "x", "quota": {"cpu": "lots"}}), "quota.cpu"),
        (json!({"name": "x", "tier": "gold"}), "tier"),
        (json!({"name": "x", "domains": ["Prod"]}), "domains[0]"),
        (json!({"name": "", "colour": "red"}), "colour"),
    ] {
        let (s, e) = srv
            .call(
                "PUT",
                "/api/v1/workspaces/ws-bad",
                Some(&svc),
                Some(("application/json", body.to_string().into_bytes())),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {e}");
        assert!(e.to_string().contains(field), "{field} not named: {e}");
    }
    assert_eq!(srv.call("GET", "/api/v1/workspaces/ws-bad", Some(&svc), None).await.0, StatusCode::NOT_FOUND);
    srv.stop().await;
});
