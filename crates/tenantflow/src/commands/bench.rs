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
        other => Err(CliError::Usage(format!("unknown suite `{other}`"))),
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
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
