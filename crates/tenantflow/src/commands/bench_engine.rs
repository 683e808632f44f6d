//! `tenantflow bench engine`: workflows run end to end through a real server (HTTP API,
//! store, engine, sandboxed executor) started in this process on a scratch data dir.
//!
//! `wall_s` is from the launch request until a waiting `GET …?wait=60` returns it finished; `overhead_ms_per_task` is that wall time minus the task processes' own run time (as
//! the executor measured it, sandbox start included), per task.

use super::bench::median;
use crate::cli::BenchArgs;
use crate::client::Client;
use crate::commands::CliError;
use serde_json::json;
use std::time::Instant;

fn fail(e: impl std::fmt::Display) -> CliError {
    CliError::Failed(e.to_string())
}

const FIB: &str = "kind: Task\nname: fib\ninterface: {inputs: {x: {type: integer}}, outputs: {x: {type: integer}}}\ncontainer:\n  command:\n    - python3\n    - -c\n    - |\n      import json, os\n      def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)\n      x = json.load(open(os.environ['TENANTFLOW_INPUTS']))['x']\n      json.dump({'x': x + fib(10)}, open(os.environ['TENANTFLOW_OUTPUTS'], 'w'))\n";
const NOOP: &str = "kind: Task\nname: noop\ncontainer: {command: [/bin/true]}\n";

fn seq40() -> String {
    let mut y =
        format!("{FIB}---\nkind: Workflow\nname: seq40\ninterface: {{outputs: {{x: {{type: integer}}}}}}\nnodes:\n");
    y.push_str("  - {id: n0, task: fib, inputs: {x: 0}}\n");
    for i in 1..40 {
        y.push_str(&format!("  - {{id: n{i}, task: fib, inputs: {{x: \"{{{{ n{}.outputs.x }}}}\"}}}}\n", i - 1));
    }
    y.push_str("outputs: {x: \"{{ n39.outputs.x }}\"}\n");
    y
}

fn chain(n: usize) -> String {
    let mut y = format!("{NOOP}---\nkind: Workflow\nname: chain{n}\nnodes:\n  - {{id: n0, task: noop}}\n");
    for i in 1..n {
        y.push_str(&format!("  - {{id: n{i}, task: noop, after: [n{}]}}\n", i - 1));
    }
    y
}

fn fanout(n: usize) -> String {
    let mut y = format!("{NOOP}---\nkind: Workflow\nname: fanout{n}\nnodes:\n");
    for i in 0..n {
        y.push_str(&format!("  - {{id: l{i}, task: noop}}\n"));
    }
    y.push_str("  - id: join\n    task: noop\n    after: [");
    y.push_str(&(0..n).map(|i| format!("l{i}")).collect::<Vec<_>>().join(", "));
    y.push_str("]\n");
    y
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

struct Outcome {
    wall: f64,
    process_s: f64,
    tasks: usize,
}

/// Launches `workflow`, waits for it, and sums its attempts' process time.
async fn run_once(c: &Client, workflow: &str, parallelism: u32, name: &str) -> Result<Outcome, CliError> {
    let t0 = Instant::now();
    c.post_json(
        "/api/v1/executions/bench/development",
        &json!({"workflow": workflow, "name": name, "max_parallelism": parallelism}),
    )
    .await?;
    let path = format!("/api/v1/executions/bench/development/{name}");
    let e = loop {
        let e = c.get(&format!("{path}?wait=60")).await?;
        let phase = e["phase"].as_str().unwrap_or("").to_string();
        if !matches!(phase.as_str(), "QUEUED" | "RUNNING") {
            break e;
        }
    };
    let wall = t0.elapsed().as_secs_f64();
    if e["phase"] != "SUCCEEDED" {
        return Err(fail(format!("{workflow} ended {}: {}", e["phase"], e["error"])));
    }
    let nodes = c.get(&format!("{path}/nodes")).await?;
    let mut process_s = 0.0;
    let mut tasks = 0;
    for n in nodes.as_array().into_iter().flatten() {
        for a in n["attempts"].as_array().into_iter().flatten() {
            process_s += a["process_us"].as_f64().unwrap_or(0.0) / 1e6;
            tasks += 1;
        }
    }
    Ok(Outcome { wall, process_s, tasks })
}

/// A server on a scratch data dir in this process, with tasks able to run, and an admin client.
pub async fn start_server(
    args: &BenchArgs,
    suite: &str,
    executor: tf_server::ExecutorSettings,
) -> Result<(tf_server::RunningServer, Client, std::path::PathBuf), CliError> {
    let dir = std::env::temp_dir().join(format!("tenantflow-bench-{suite}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = tf_server::ServerOptions {
        listen: "127.0.0.1:0".parse().expect("address"),
        data_dir: dir.clone(),
        database_url: args.database_url.clone(),
        max_body_bytes: 64 << 20,
        auth: Default::default(),
        executor,
        storage: Default::default(),
        workspaces: Default::default(),
        audit: Default::default(),
    };
    let server = tf_server::start(&opts).await.map_err(fail)?;
    if let Some(why) = &server.engine().readiness().refused {
        return Err(fail(format!("tasks cannot run here: {why}")));
    }
    let token = std::fs::read_to_string(dir.join(tf_server::ADMIN_TOKEN_FILE)).map_err(fail)?;
    let c = Client::new(format!("http://{}", server.addr), Some(token.trim().to_string()));
    Ok((server, c, dir))
}

pub async fn run(args: &BenchArgs) -> Result<(), CliError> {
    let wanted: Option<Vec<String>> =
        args.scenarios.as_ref().map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
    let want = |s: &str| wanted.as_ref().is_none_or(|w| w.iter().any(|x| x == s));
    let (server, c, dir) = start_server(args, "engine", Default::default()).await?;
    let tag = format!("{}", std::process::id());
    let project = c.get("/api/v1/projects/bench").await;
    if project.is_err() {
        c.post_json("/api/v1/projects", &json!({"id": "bench", "domains": ["development"]})).await?;
    }
    let store = if args.database_url.is_some() { "postgres" } else { "sqlite" };
    let runs = args.runs.clamp(1, 7);
    // (scenario, workflow name, bundle, max parallelism, repetitions)
    let scenarios: [(&str, &str, String, u32, usize); 4] = [
        ("seq40_python", "seq40", seq40(), 1, runs),
        ("chain100", "chain100", chain(100), 1, runs),
        ("fanout1000", "fanout1000", fanout(1000), 1000, runs.min(3)),
        ("fanout10000", "fanout10000", fanout(10_000), 10_000, 1),
    ];
    for (scenario, workflow, bundle, parallelism, reps) in scenarios {
        if !want(scenario) {
            continue;
        }
        let version = format!("{scenario}-{tag}");
        let t = Instant::now();
        c.post_raw(
            &format!("/api/v1/register/bench/development?version={version}"),
            "application/yaml",
            bundle.into_bytes(),
        )
        .await?;
        let register_s = t.elapsed().as_secs_f64();
        let workflow = format!("{workflow}@{version}");
        let mut walls = Vec::new();
        let mut overheads = Vec::new();
        let mut tasks = 0;
        for i in 0..reps {
            let o = run_once(&c, &workflow, parallelism, &format!("{}-{tag}-{i}", scenario.replace('_', "-"))).await?;
            walls.push(o.wall);
            overheads.push((o.wall - o.process_s) / o.tasks.max(1) as f64 * 1000.0);
            tasks = o.tasks;
            eprintln!("{scenario} run {}: {:.3} s", i + 1, o.wall);
        }
        let mut line = json!({
            "scenario": scenario,
            "store": store,
            "runs": walls.len(),
            "tasks": tasks,
            "wall_s": median(walls.clone()),
            "wall_s_max": walls.iter().cloned().fold(0.0, f64::max),
            "per_task_ms": median(walls) / tasks.max(1) as f64 * 1000.0,
            "overhead_ms_per_task": median(overheads),
            "register_s": register_s,
        });
        if scenario == "fanout10000" {
            line["rss_mb"] = json!(peak_rss_mb());
        }
        println!("{line}");
    }
    server.shutdown().await.map_err(fail)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
