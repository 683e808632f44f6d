//! `tenantflow bench fairness`: three tenants with weights 1:1:2 saturate a 4-slot executor
//! through a real server, store and sandboxed executor; a fourth tenant arrives late.
//!
//! `fair_share` reports each tenant's share of the attempts started while all three had work
//! waiting (expected 25/25/50 %), `max_share_error` (largest absolute difference, as a
//! fraction), `quota_violations` (instants at which a tenant ran more attempts than its quota
//! allows, from the recorded attempt start and end times), and for the late tenant the number
//! of starts before its first one and its share of the starts after it arrived (expected 1/5).

use crate::cli::BenchArgs;
use crate::client::Client;
use crate::commands::CliError;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

fn fail(e: impl std::fmt::Display) -> CliError {
    CliError::Failed(e.to_string())
}

const SLOTS: usize = 4;
const LEAVES: usize = 200;
/// (tenant, weight, running-tasks quota)
const TENANTS: [(&str, u32, u32); 3] = [("fair-a", 1, 3), ("fair-b", 1, 3), ("fair-c", 2, 3)];
const LATE: (&str, u32, u32) = ("fair-late", 1, 3);

fn wide(n: usize) -> String {
    let mut y = String::from(
        "kind: Task\nname: step\ncontainer: {command: [/bin/sleep, '0.02']}\n---\nkind: Workflow\nname: wide\nnodes:\n",
    );
    for i in 0..n {
        y.push_str(&format!("  - {{id: n{i}, task: step}}\n"));
    }
    y
}

/// Every attempt of an execution: (started_at, finished_at).
async fn attempts(c: &Client, project: &str) -> Result<Vec<(i64, i64)>, CliError> {
    let nodes = c.get(&format!("/api/v1/executions/{project}/development/run/nodes")).await?;
    let mut out = Vec::new();
    for n in nodes.as_array().into_iter().flatten() {
        for a in n["attempts"].as_array().into_iter().flatten() {
            out.push((a["started_at"].as_i64().unwrap_or(0), a["finished_at"].as_i64().unwrap_or(i64::MAX)));
        }
    }
    Ok(out)
}

/// Instants at which more than `max` of these attempts ran at once.
fn violations(mut spans: Vec<(i64, i64)>, max: u32) -> usize {
    let mut edges: Vec<(i64, i32)> = spans.drain(..).flat_map(|(s, e)| [(s, 1), (e, -1)]).collect();
    edges.sort();
    let mut now = 0;
    let mut over = 0;
    for (_, d) in edges {
        now += d;
        if now > max as i32 {
            over += 1;
        }
    }
    over
}

pub async fn run(args: &BenchArgs) -> Result<(), CliError> {
    let executor = tf_server::ExecutorSettings { slots: Some(SLOTS), ..Default::default() };
    let (server, c, dir) = super::bench_engine::start_server(args, "fairness", executor).await?;
    let tag = std::process::id();
    let mut all = TENANTS.to_vec();
    all.push(LATE);
    for (t, weight, tasks) in &all {
        let tenant = format!("{t}-{tag}");
        c.post_json("/api/v1/tenants", &json!({"id": tenant})).await?;
        c.send_json(
            reqwest::Method::PUT,
            &format!("/api/v1/tenants/{tenant}/quota"),
            &json!({"weight": weight, "running_tasks": tasks}),
        )
        .await?;
        c.post_json("/api/v1/projects", &json!({"id": tenant, "tenant": tenant, "domains": ["development"]})).await?;
        c.post_raw(
            &format!("/api/v1/register/{tenant}/development?version=v1"),
            "application/yaml",
            wide(LEAVES).into_bytes(),
        )
        .await?;
    }
    let launch = |t: String| {
        let c = &c;
        async move {
            c.post_json(
                &format!("/api/v1/executions/{t}/development"),
                &json!({"workflow": "wide", "name": "run", "max_parallelism": LEAVES}),
            )
            .await
        }
    };
    for (t, _, _) in TENANTS {
        launch(format!("{t}-{tag}")).await?;
    }
    // The late tenant arrives once the others have been running for a while.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    launch(format!("{}-{tag}", LATE.0)).await?;
    for (t, _, _) in &all {
        loop {
            let e = c.get(&format!("/api/v1/executions/{t}-{tag}/development/run?wait=60")).await?;
            match e["phase"].as_str() {
                Some("QUEUED" | "RUNNING") => continue,
                Some("SUCCEEDED") => break,
                _ => return Err(fail(format!("execution of {t} ended {}", e["phase"]))),
            }
        }
    }

    // Starts in order, labelled by tenant.
    let mut starts: Vec<(i64, usize)> = Vec::new();
    let mut quota_violations = 0;
    let mut late_arrival = i64::MAX;
    for (i, (t, _, max)) in all.iter().enumerate() {
        let spans = attempts(&c, &format!("{t}-{tag}")).await?;
        quota_violations += violations(spans.clone(), *max);
        starts.extend(spans.iter().map(|(s, _)| (*s, i)));
        if i == TENANTS.len() {
            let e = c.get(&format!("/api/v1/executions/{t}-{tag}/development/run")).await?;
            late_arrival = e["created_at"].as_i64().unwrap_or(i64::MAX);
        }
    }
    starts.sort();
    // The contended window: from the first start until the first of the three runs dry, and
    // before the late tenant arrives.
    let mut seen = [0usize; 3];
    let mut window = 0;
    for (at, who) in &starts {
        if *who >= 3 || *at >= late_arrival || seen.iter().any(|&n| n >= LEAVES) {
            break;
        }
        seen[*who] += 1;
        window += 1;
    }
    let total_weight: u32 = TENANTS.iter().map(|t| t.1).sum();
    let mut shares = serde_json::Map::new();
    let mut max_err: f64 = 0.0;
    for (i, (t, w, _)) in TENANTS.iter().enumerate() {
        let share = seen[i] as f64 / window.max(1) as f64;
        let expected = *w as f64 / total_weight as f64;
        max_err = max_err.max((share - expected).abs());
        shares.insert(t.to_string(), json!((share * 1000.0).round() / 1000.0));
    }
    // The late tenant: starts before its first, and its share of the next 100 starts.
    let after: Vec<usize> = starts.iter().filter(|(at, _)| *at >= late_arrival).map(|(_, w)| *w).collect();
    let first = after.iter().position(|&w| w == 3);
    let next: Vec<usize> = first.map(|f| after[f..].iter().take(100).copied().collect()).unwrap_or_default();
    let late_share = next.iter().filter(|&&w| w == 3).count() as f64 / next.len().max(1) as f64;
    let mut counts: HashMap<usize, usize> = HashMap::new();
    for (_, w) in &starts {
        *counts.entry(*w).or_default() += 1;
    }
    let line: Value = json!({
        "scenario": "fair_share",
        "store": if args.database_url.is_some() { "postgres" } else { "sqlite" },
        "slots": SLOTS,
        "weights": TENANTS.iter().map(|t| t.1).collect::<Vec<_>>(),
        "tasks": starts.len(),
        "contended_starts": window,
        "shares": shares,
        "max_share_error": (max_err * 1000.0).round() / 1000.0,
        "quota_violations": quota_violations,
        "late_starts_before_first": first,
        "late_share_next_100": (late_share * 1000.0).round() / 1000.0,
        "late_expected_share": LATE.1 as f64 / (total_weight + LATE.1) as f64,
    });
    println!("{line}");
    server.shutdown().await.map_err(fail)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
