//! `tenantflow bench workspaces`: the workspace service's load. A `tenantflow serve` process
//! on a scratch store; 16 clients declare N workspaces (5 members each) over HTTP
//! (`provision_10000`); full reconciliation passes over them (`reconcile_10000`, which must
//! write nothing); then, with them loaded, authorisation decisions (`authz_decision`, in this
//! process from the same store) and a member's workflow listings under 64 clients
//! (`list_workflows`).

use super::bench::{listing_load, median, percentile, spawn_serve};
use crate::cli::BenchArgs;
use crate::commands::CliError;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 16;
const LIST_CLIENTS: usize = 64;
/// Members whose listings are measured (one per workspace, the first ones).
const LISTING_MEMBERS: usize = 50;
const BUNDLE: &str =
    "kind: Task\nname: t\ncontainer: {command: [\"true\"]}\n---\nkind: Workflow\nname: wf\nnodes: [{id: a, task: t}]\n";

fn fail(e: impl std::fmt::Display) -> CliError {
    CliError::Failed(e.to_string())
}

fn ws_id(i: usize) -> String {
    format!("ws-bench-{i:05}")
}

fn member(i: usize, k: usize) -> String {
    format!("m{k}@{}.example", ws_id(i))
}

fn spec(i: usize) -> Value {
    let members: Vec<Value> = (0..5)
        .map(|k| json!({"user_id": format!("m{k}"), "email": member(i, k), "role": if k == 0 { "owner" } else { "contributor" }}))
        .collect();
    json!({"name": format!("Bench workspace {i}"), "members": members, "quota": {"cpu": 8, "memory": "16Gi"}})
}

async fn open_store(args: &BenchArgs, dir: &std::path::Path) -> Result<tf_store::Store, CliError> {
    let opts = match &args.database_url {
        Some(u) => tf_store::StoreOptions::url(u.clone()),
        None => tf_store::StoreOptions::sqlite_in(dir),
    };
    tf_store::Store::open(&opts).await.map_err(fail)
}

pub async fn run(args: &BenchArgs) -> Result<(), CliError> {
    let n = args.workspaces.max(LISTING_MEMBERS);
    let dir = std::env::temp_dir().join(format!("tenantflow-bench-workspaces-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(fail)?;
    // Members' credentials, minted before the server starts (they sign in as platform users).
    let store = open_store(args, &dir).await?;
    if store.platform().get_workspace(&ws_id(0)).await.map_err(fail)?.is_some() {
        return Err(CliError::Usage("the database already holds bench workspaces; use a fresh one".into()));
    }
    let mut member_tokens = Vec::new();
    for i in 0..LISTING_MEMBERS {
        let t = store.platform().create_token("user", &member(i, 1), None, "bench", None).await.map_err(fail)?;
        member_tokens.push((ws_id(i), t.secret));
    }
    store.close().await;

    // The server runs as its own process, as in production; this process only drives load.
    // A small executor, so that many tenants have work waiting when /metrics is scraped.
    let env = [("TENANTFLOW_WORKSPACES__RECONCILE_INTERVAL", "1h"), ("TENANTFLOW_EXECUTOR__SLOTS", "4")];
    let (mut child, base) = spawn_serve(args, &dir, &env).await?;
    let result = drive(args, n, &base, &dir, &member_tokens).await;
    let _ = child.kill();
    let _ = child.wait();
    let loaded = result?;

    // authz_decision: the index built from the store with every workspace loaded.
    let store = open_store(args, &dir).await?;
    authz_decisions(&store, loaded).await?;
    store.close().await;
    if args.database_url.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

async fn drive(
    args: &BenchArgs,
    n: usize,
    base: &str,
    dir: &std::path::Path,
    member_tokens: &[(String, String)],
) -> Result<usize, CliError> {
    let base = base.to_string();
    let http = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).build().map_err(fail)?;
    let admin = std::fs::read_to_string(dir.join(tf_server::ADMIN_TOKEN_FILE)).map_err(fail)?.trim().to_string();
    let sa = crate::client::Client::new(base.clone(), Some(admin.clone()))
        .post_json(
            "/api/v1/service_accounts",
            &json!({"name": "bench-workspace-service", "permissions": ["workspaces:*"]}),
        )
        .await?;
    let svc = sa["token"].as_str().ok_or_else(|| fail(format!("no service account: {sa}")))?.to_string();

    // provision_10000
    let next = Arc::new(AtomicUsize::new(0));
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (http, base, svc, next) = (http.clone(), base.clone(), svc.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut created, mut other) = (Vec::new(), 0usize, Vec::new());
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    break;
                }
                let t = Instant::now();
                let r = http
                    .put(format!("{base}/api/v1/workspaces/{}", ws_id(i)))
                    .bearer_auth(&svc)
                    .json(&spec(i))
                    .send()
                    .await;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                match r {
                    Ok(r) if r.status() == reqwest::StatusCode::CREATED => created += 1,
                    Ok(r) => other.push(format!("{} {}", r.status(), r.text().await.unwrap_or_default())),
                    Err(e) => other.push(e.to_string()),
                }
                if progress && i % 500 == 0 {
                    eprint!("\rprovisioning: {i}/{n}");
                }
            }
            (lat, created, other)
        }));
    }
    let (mut lat, mut created, mut other) = (Vec::new(), 0, Vec::new());
    for t in tasks {
        let (l, c, o) = t.await.map_err(fail)?;
        lat.extend(l);
        created += c;
        other.extend(o);
    }
    let wall = started.elapsed().as_secs_f64();
    if progress {
        eprintln!("\rprovisioning: done              ");
    }
    println!(
        "{}",
        json!({"scenario": "provision_10000", "workspaces": n, "members_each": 5, "clients": CLIENTS, "wall_s": wall,
               "workspaces_per_s": n as f64 / wall, "created": created, "not_created": other.len(),
               "first_problem": other.first(), "p50_ms": percentile(lat.clone(), 0.5), "p99_ms": percentile(lat, 0.99)})
    );
    if created != n {
        return Err(fail(format!("{} of {n} workspaces were not created: {:?}", n - created, other.first())));
    }

    // reconcile_10000: full passes over converged workspaces write nothing.
    let mut walls = Vec::new();
    let mut last = Value::Null;
    let service = crate::client::Client::new(base.clone(), Some(svc.clone()));
    for _ in 0..args.runs.clamp(1, 5) {
        let t = Instant::now();
        let r = service.post_json("/api/v1/reconciler/workspaces", &json!({})).await?;
        walls.push(t.elapsed().as_secs_f64());
        last = r;
    }
    println!(
        "{}",
        json!({"scenario": "reconcile_10000", "workspaces": last["workspaces"], "wall_s": median(walls.clone()),
               "passes": walls.len(), "unchanged": last["unchanged"], "converged": last["converged"],
               "failed": last["failed"], "server_wall_ms": last["wall_ms"]})
    );
    if last["converged"] != 0 || last["workspaces"] != n {
        return Err(fail(format!("a pass over converged workspaces did work: {last}")));
    }

    // list_workflows: members listing their workspace's workflows, 64 clients.
    for (ws, _) in member_tokens {
        let r = http
            .post(format!("{base}/api/v1/register/{ws}/development?version=v1"))
            .bearer_auth(&admin)
            .header("content-type", "application/yaml")
            .body(BUNDLE)
            .send()
            .await
            .map_err(fail)?;
        if !r.status().is_success() {
            return Err(fail(format!("registering in {ws}: {}", r.status())));
        }
    }
    let targets: Vec<(String, String)> = member_tokens
        .iter()
        .map(|(ws, tok)| (format!("/api/v1/workflows/{ws}/development"), format!("Bearer {tok}")))
        .collect();
    let per_client = args.requests_per_client;
    let (lat, errors, wall) = listing_load(&base, &targets, LIST_CLIENTS, per_client).await?;
    println!(
        "{}",
        json!({"scenario": "list_workflows", "workspaces": n, "clients": LIST_CLIENTS, "requests": lat.len(), "errors": errors,
               "p50_ms": percentile(lat.clone(), 0.5), "p99_ms": percentile(lat, 0.99),
               "requests_per_s": (LIST_CLIENTS * per_client) as f64 / wall})
    );
    metrics_scrapes(&http, &base, &admin, n).await?;
    Ok(n)
}

/// `metrics_10000`: with N tenants loaded and the executor saturated by a waiting task in each
/// of `BUSY` of them, the size and latency of `/metrics` (and promtool's verdict, when present).
async fn metrics_scrapes(http: &reqwest::Client, base: &str, admin: &str, n: usize) -> Result<(), CliError> {
    const BUSY: usize = 200;
    const NAP: &str = "kind: Task\nname: nap\ncontainer: {command: [\"sleep\", \"60\"]}\n---\nkind: Workflow\nname: nap\nnodes: [{id: a, task: nap}]\n";
    let c = crate::client::Client::new(base.to_string(), Some(admin.to_string()));
    for i in 0..BUSY.min(n) {
        let ws = ws_id(n - 1 - i);
        c.post_raw(
            &format!("/api/v1/register/{ws}/development?version=v1"),
            "application/yaml",
            NAP.as_bytes().to_vec(),
        )
        .await?;
        c.post_json(&format!("/api/v1/executions/{ws}/development"), &json!({"workflow": "nap"})).await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (mut lat, mut bytes, mut text) = (Vec::new(), 0, String::new());
    for _ in 0..21 {
        let t = Instant::now();
        let r = http.get(format!("{base}/metrics")).bearer_auth(admin).send().await.map_err(fail)?;
        text = r.text().await.map_err(fail)?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        bytes = text.len();
    }
    let series = text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count();
    let busy = text
        .lines()
        .find_map(|l| l.strip_prefix("tenantflow_tenants_busy "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    let promtool = promtool_ok(&text);
    println!(
        "{}",
        json!({"scenario": "metrics_10000", "tenants": n, "busy_tenants": busy, "bytes": bytes, "series": series,
               "median_ms": median(lat.clone()), "p99_ms": percentile(lat, 0.99), "promtool_ok": promtool})
    );
    Ok(())
}

/// `promtool check metrics` over `text`: `None` when promtool is not installed.
fn promtool_ok(text: &str) -> Option<bool> {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(text.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    Some(out.status.success() && out.stdout.is_empty() && out.stderr.is_empty())
}

/// Decisions for members of the loaded workspaces: half on their own workspace (allowed in
/// development), half on another's (hidden).
async fn authz_decisions(store: &tf_store::Store, n: usize) -> Result<(), CliError> {
    use tf_authz::{Action, Caller, Permission, Resource};
    let t = Instant::now();
    let authz = tf_server::authz::Authz::load(store).await.map_err(fail)?;
    let index_ms = t.elapsed().as_secs_f64() * 1000.0;
    let perm = Permission(Resource::Executions, Action::Execute);
    let cases: Vec<(Caller, String)> = (0..4096)
        .map(|i| {
            let w = (i * 7919) % n;
            let target = if i % 2 == 0 { w } else { (w + 1 + i % 97) % n };
            (Caller { user: Some(member(w, 1 + i % 4)), ..Default::default() }, ws_id(target))
        })
        .collect();
    let policy = authz.read();
    let (mut batch_us, mut allowed) = (Vec::new(), 0usize);
    for round in 0..200 {
        let t = Instant::now();
        for (c, p) in &cases {
            if policy.decide(c, perm, p, Some("development")).is_allowed() {
                allowed += 1;
            }
        }
        if round >= 20 {
            batch_us.push(t.elapsed().as_secs_f64() * 1e6 / cases.len() as f64);
        }
    }
    println!(
        "{}",
        json!({"scenario": "authz_decision", "workspaces": n, "projects": policy.project_count(),
               "bindings": policy.binding_count(), "decisions": batch_us.len() * cases.len(),
               "allowed_share": allowed as f64 / (200 * cases.len()) as f64, "median_us": median(batch_us.clone()),
               "p99_batch_us": percentile(batch_us, 0.99), "index_build_ms": index_ms})
    );
    Ok(())
}
