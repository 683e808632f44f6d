//! `tenantflow bench SUITE`: benchmarks that print one JSON object per scenario, with units in
//! the field names, medians over repeated runs.

use crate::cli::BenchArgs;
use crate::commands::CliError;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub async fn run(args: &BenchArgs) -> Result<(), CliError> {
    match args.suite.as_str() {
        "startup" => startup(args).await,
        "authz" => authz(args).await,
        "engine" => super::bench_engine::run(args).await,
        "fairness" => super::bench_fairness::run(args).await,
        "workspaces" => super::bench_workspaces::run(args).await,
        other => Err(CliError::Usage(format!("unknown suite `{other}`"))),
    }
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// `idle_server`: spawn `tenantflow serve` on an empty data dir, time until `/readyz` answers
/// 200 (process start included), then read its resident memory after a second of idling.
async fn startup(args: &BenchArgs) -> Result<(), CliError> {
    let exe = std::env::current_exe().map_err(|e| CliError::Failed(e.to_string()))?;
    let http = reqwest::Client::new();
    let (mut ready, mut rss) = (Vec::new(), Vec::new());
    for i in 0..args.runs.max(1) {
        let dir = std::env::temp_dir().join(format!("tenantflow-bench-startup-{}-{i}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| CliError::Failed(e.to_string()))?
            .port();
        let mut cmd = Command::new(&exe);
        cmd.args(["serve", "--data-dir"]).arg(&dir).args(["--listen", &format!("127.0.0.1:{port}")]);
        if let Some(url) = &args.database_url {
            // A fresh schema each run would need a fresh database; reuse is fine for timing.
            cmd.args(["--database-url", url]);
        }
        let t0 = Instant::now();
        let mut child =
            cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| CliError::Failed(e.to_string()))?;
        let url = format!("http://127.0.0.1:{port}/readyz");
        let deadline = t0 + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(&url).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(CliError::Failed("server did not become ready in 30 s".into()));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        ready.push(t0.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(m) = rss_mb(child.id()) {
            rss.push(m);
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }
    let store = if args.database_url.is_some() { "postgres" } else { "sqlite" };
    println!(
        "{}",
        json!({
            "scenario": "idle_server",
            "store": store,
            "runs": ready.len(),
            "ready_ms_median": median(ready.clone()),
            "ready_ms_max": ready.iter().cloned().fold(0.0, f64::max),
            "rss_mb_median": if rss.is_empty() { serde_json::Value::Null } else { json!(median(rss)) },
        })
    );
    Ok(())
}

/// `authz_decision`: one decision against an index holding 10,000 projects (1,000 tenants ×
/// 10) and 100,000 bindings, all loaded from the store. `list_workflows`: `GET` of workflows by
/// a user bound to 50 of those projects, 64 concurrent clients over HTTP.
async fn authz(args: &BenchArgs) -> Result<(), CliError> {
    use tf_authz::{Action, Caller, Permission, Resource};
    const TENANTS: usize = 1_000;
    const PROJECTS_PER_TENANT: usize = 10;
    const USERS_PER_TENANT: usize = 100;
    let fail = |e: &dyn std::fmt::Display| CliError::Failed(e.to_string());
    let dir = std::env::temp_dir().join(format!("tenantflow-bench-authz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| fail(&e))?;
    let store_opts = match &args.database_url {
        Some(u) => tf_store::StoreOptions::url(u.clone()),
        None => tf_store::StoreOptions::sqlite_in(&dir),
    };
    let store = tf_store::Store::open(&store_opts).await.map_err(|e| fail(&e))?;
    let t0 = Instant::now();
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    for t in 0..TENANTS {
        let tenant = format!("bt{t:04}");
        let ts = store.tenant(&tenant);
        if ts.get_project(&format!("{tenant}-p0")).await.map_err(|e| fail(&e))?.is_some() {
            continue; // loaded by an earlier run against the same database
        }
        for p in 0..PROJECTS_PER_TENANT {
            let np = tf_store::NewProject {
                id: format!("{tenant}-p{p}"),
                name: format!("{tenant}-p{p}"),
                description: String::new(),
                labels: Default::default(),
                domains: vec![tf_store::Domain { id: "development".into(), name: "development".into() }],
            };
            ts.create_project(&np, true).await.map_err(|e| fail(&e))?;
        }
        let roles = ts.roles();
        for (name, perms) in [("reader", vec!["workflows:read"]), ("developer", vec!["workflows:*", "executions:*"])] {
            let r = tf_store::RoleRecord {
                tenant: Some(tenant.clone()),
                name: name.into(),
                description: String::new(),
                permissions: perms.into_iter().map(String::from).collect(),
                projects: vec!["*".into()],
                domains: vec!["*".into()],
                created_at: 0,
                updated_at: 0,
            };
            roles.put_role(&r).await.map_err(|e| fail(&e))?;
        }
        let items: Vec<(String, String, String)> = (0..USERS_PER_TENANT)
            .map(|u| {
                (
                    if u % 2 == 0 { "reader" } else { "developer" }.to_string(),
                    "user".to_string(),
                    format!("user{u}@{tenant}"),
                )
            })
            .collect();
        roles.bind_many(&items, "bench").await.map_err(|e| fail(&e))?;
        if progress && t % 50 == 0 {
            eprint!("\rloading: {t}/{TENANTS} tenants");
        }
    }
    if progress {
        eprintln!("\rloading: done                ");
    }
    let load_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let authz = tf_server::authz::Authz::load(&store).await.map_err(|e| fail(&e))?;
    let index_ms = t1.elapsed().as_secs_f64() * 1000.0;
    let (projects, bindings) = {
        let p = authz.read();
        (p.project_count(), p.binding_count())
    };
    // Decisions: callers and targets drawn from the loaded data, half allowed, half not.
    let perm = Permission(Resource::Workflows, Action::Create);
    let callers: Vec<(Caller, String)> = (0..4096)
        .map(|i| {
            let t = (i * 7919) % TENANTS;
            let other = (t + 1 + i % 3) % TENANTS;
            let target = if i % 2 == 0 { t } else { other };
            let c = Caller { user: Some(format!("user{}@bt{t:04}", (i / 2) % USERS_PER_TENANT)), ..Default::default() };
            (c, format!("bt{target:04}-p{}", i % PROJECTS_PER_TENANT))
        })
        .collect();
    let mut batch_us = Vec::new();
    let mut allowed = 0usize;
    {
        let policy = authz.read();
        for round in 0..200 {
            let t = Instant::now();
            for (c, p) in &callers {
                if policy.decide(c, perm, p, Some("development")).is_allowed() {
                    allowed += 1;
                }
            }
            if round >= 20 {
                batch_us.push(t.elapsed().as_secs_f64() * 1e6 / callers.len() as f64);
            }
        }
    }
    println!(
        "{}",
        json!({"scenario": "authz_decision", "projects": projects, "bindings": bindings, "decisions": batch_us.len() * callers.len(),
               "allowed_share": allowed as f64 / (200 * callers.len()) as f64, "median_us": median(batch_us.clone()),
               "p99_batch_us": percentile(batch_us, 0.99), "load_s": load_s, "index_build_ms": index_ms})
    );

    // list_workflows over HTTP: a user bound to 50 projects (in 50 tenants), 64 clients.
    let user = "bench-user@example.com";
    let bundle = "kind: Task\nname: t\ncontainer: {command: [\"true\"]}\n---\nkind: Workflow\nname: wf\nnodes: [{id: a, task: t}]\n";
    let compiled = tf_model::compile_bundle(
        &tf_model::parse_bundle(bundle).map_err(|e| fail(&e))?,
        "v1",
        &tf_model::compile::NoLookup,
    )
    .map_err(|e| fail(&e))?;
    let mut mine = Vec::new();
    for k in 0..50 {
        let tenant = format!("bt{:04}", k * (TENANTS / 50));
        let project = format!("{tenant}-p0");
        let ts = store.tenant(&tenant);
        ts.register(&project, "development", &compiled, "bench").await.map_err(|e| fail(&e))?;
        ts.roles().bind("reader", "user", user, "bench").await.map_err(|e| fail(&e))?;
        mine.push(project);
    }
    let token = store.platform().create_token("user", user, None, "bench", None).await.map_err(|e| fail(&e))?.secret;
    drop(authz);
    // The server runs as its own process, as in production; this process only drives load.
    store.close().await;
    let (mut child, base) = spawn_serve(args, &dir, &[]).await?;
    let auth = format!("Bearer {token}");
    let targets: Vec<(String, String)> =
        mine.iter().map(|p| (format!("/api/v1/workflows/{p}/development"), auth.clone())).collect();
    let (lat, errors, wall) = listing_load(&base, &targets, CLIENTS, args.requests_per_client).await?;
    let per_client = args.requests_per_client;
    println!(
        "{}",
        json!({"scenario": "list_workflows", "projects": projects, "bindings": bindings + 50, "clients": CLIENTS, "requests": lat.len(),
               "errors": errors, "p50_ms": percentile(lat.clone(), 0.5), "p99_ms": percentile(lat.clone(), 0.99),
               "max_ms": percentile(lat, 1.0), "requests_per_s": (CLIENTS * per_client) as f64 / wall})
    );
    let _ = child.kill();
    let _ = child.wait();
    if args.database_url.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// Clients of `listing_load` in the `authz` suite.
const CLIENTS: usize = 64;

/// A `tenantflow serve` process over `dir` (and `--database-url`, if given) with extra
/// environment `env`, once `/readyz` answers: the process and its base URL.
pub async fn spawn_serve(
    args: &BenchArgs,
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> Result<(std::process::Child, String), CliError> {
    let fail = |e: &dyn std::fmt::Display| CliError::Failed(e.to_string());
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| fail(&e))?.port();
    let exe = std::env::current_exe().map_err(|e| fail(&e))?;
    let mut cmd = Command::new(exe);
    cmd.args(["serve", "--data-dir"]).arg(dir).args(["--listen", &format!("127.0.0.1:{port}")]);
    cmd.envs(env.iter().copied());
    if let Some(u) = &args.database_url {
        cmd.args(["--database-url", u]);
    }
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| fail(&e))?;
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{base}/readyz")).await.map(|r| !r.status().is_success()).unwrap_or(true) {
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(CliError::Failed("the server did not become ready".into()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((child, base))
}

/// `clients` concurrent clients each GET `per_client` of `targets` (path, `Authorization`
/// value), spread round-robin, after one warm-up GET of each: latencies (ms), failures, wall
/// seconds. A plain hyper client: the load generator shares the machine, so it costs little.
pub async fn listing_load(
    base: &str,
    targets: &[(String, String)],
    clients: usize,
    per_client: usize,
) -> Result<(Vec<f64>, usize, f64), CliError> {
    let http: LoadClient = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(clients)
        .build_http();
    for (path, auth) in targets {
        if !get_ok(&http, &format!("{base}{path}"), auth).await {
            return Err(CliError::Failed(format!("GET {path} failed before the load started")));
        }
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, base, targets) = (http.clone(), base.to_string(), targets.to_vec());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut bad) = (Vec::with_capacity(per_client), 0);
            for i in 0..per_client {
                let (path, auth) = &targets[(c * 31 + i) % targets.len()];
                let t = Instant::now();
                if !get_ok(&http, &format!("{base}{path}"), auth).await {
                    bad += 1;
                }
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            (lat, bad)
        }));
    }
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, b) = t.await.map_err(|e| CliError::Failed(e.to_string()))?;
        lat.extend(l);
        errors += b;
    }
    Ok((lat, errors, started.elapsed().as_secs_f64()))
}

pub fn percentile(mut xs: Vec<f64>, q: f64) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    let i = ((xs.len() as f64 - 1.0) * q).round() as usize;
    xs[i.min(xs.len() - 1)]
}

pub type LoadClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<hyper::body::Bytes>,
>;

/// GETs `url` and reads the whole body; true on a 2xx.
pub async fn get_ok(http: &LoadClient, url: &str, auth: &str) -> bool {
    use http_body_util::BodyExt;
    let Ok(req) = hyper::Request::get(url).header("authorization", auth).body(http_body_util::Empty::new()) else {
        return false;
    };
    match http.request(req).await {
        Ok(res) => res.status().is_success() && res.into_body().collect().await.is_ok(),
        Err(_) => false,
    }
}
