//! `run`, `get execution(s)`, `logs`, `terminate`, `relaunch`: executions from the command line.

use crate::cli::{ExecutionArgs, Format, LogsArgs, RelaunchArgs, RunArgs};
use crate::client::Client;
use crate::commands::CliError;
use crate::output::{print, Column};
use serde_json::{json, Map, Value};
use std::io::Write;

pub const EXECUTION_COLUMNS: &[Column] = &[
    ("NAME", "/name"),
    ("PHASE", "/phase"),
    ("LAUNCH PLAN", "/launch_plan"),
    ("WORKFLOW", "/workflow_name"),
    ("BY", "/created_by"),
    ("CREATED", "/created_at"),
    ("DURATION MS", "/duration_ms"),
];
const NODE_COLUMNS: &[Column] = &[
    ("NODE", "/node"),
    ("PHASE", "/phase"),
    ("ATTEMPTS", "/attempts_made"),
    ("CACHE", "/cache_status"),
    ("DURATION MS", "/duration_ms"),
    ("ERROR", "/error_line"),
];

fn base(p: &str, d: &str) -> String {
    format!("/api/v1/executions/{p}/{d}")
}

/// `key=value` with the value read as YAML, so numbers, booleans and lists keep their type.
fn parse_inputs(a: &RunArgs) -> Result<Map<String, Value>, CliError> {
    let mut m = Map::new();
    if let Some(f) = &a.inputs_file {
        let text = std::fs::read_to_string(f).map_err(|e| CliError::Usage(format!("--inputs {}: {e}", f.display())))?;
        let v: Value = serde_yaml::from_str(&text)
            .map_err(|e| CliError::Usage(format!("--inputs {}: not YAML or JSON: {e}", f.display())))?;
        match v {
            Value::Object(o) => m.extend(o),
            _ => return Err(CliError::Usage(format!("--inputs {}: expected a mapping of inputs", f.display()))),
        }
    }
    for kv in &a.inputs {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(CliError::Usage(format!("--input `{kv}`: expected key=value")));
        };
        let v: Value = serde_yaml::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        m.insert(k.to_string(), if v.is_null() { Value::String(String::new()) } else { v });
    }
    Ok(m)
}

pub async fn run(c: &Client, a: &RunArgs, format: Format) -> Result<(), CliError> {
    let mut body = json!({"inputs": parse_inputs(a)?});
    body[if a.workflow { "workflow" } else { "launch_plan" }] = json!(a.target);
    if let Some(n) = &a.name {
        body["name"] = json!(n);
    }
    if let Some(p) = a.priority {
        body["priority"] = json!(p);
    }
    if let Some(p) = a.max_parallelism {
        body["max_parallelism"] = json!(p);
    }
    let e = c.post_json(&base(&a.project, &a.domain), &body).await?;
    finish(c, &a.project, &a.domain, e, a.wait, format).await
}

pub async fn relaunch(c: &Client, a: &RelaunchArgs, format: Format) -> Result<(), CliError> {
    let x = &a.execution;
    let body = match &a.name {
        Some(n) => json!({"name": n}),
        None => json!({}),
    };
    let e = c.post_json(&format!("{}/{}/relaunch", base(&x.project, &x.domain), x.execution), &body).await?;
    finish(c, &x.project, &x.domain, e, a.wait, format).await
}

async fn finish(c: &Client, p: &str, d: &str, e: Value, wait: bool, format: Format) -> Result<(), CliError> {
    let name = e["name"].as_str().unwrap_or_default().to_string();
    if !wait {
        print(format, &e, EXECUTION_COLUMNS);
        return Ok(());
    }
    eprintln!("execution {name} launched in {p}/{d}; waiting (Ctrl-C stops waiting, not the execution)");
    let e = watch(c, p, d, &name).await?;
    show(c, p, d, &name, format).await?;
    match e["phase"].as_str() {
        Some("SUCCEEDED") => Ok(()),
        _ => Err(CliError::Failed(format!(
            "execution {name} ended {}: {}",
            e["phase"].as_str().unwrap_or("?"),
            e["error"].as_str().unwrap_or("")
        ))),
    }
}

/// Waits for the end, printing a progress line on stderr whenever the node counts change.
async fn watch(c: &Client, p: &str, d: &str, name: &str) -> Result<Value, CliError> {
    let mut last = String::new();
    loop {
        let e = c.get(&format!("{}/{name}?wait=2", base(p, d))).await?;
        let phase = e["phase"].as_str().unwrap_or("?").to_string();
        let counts: Vec<String> = e["node_phases"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{} {}", v, k.to_lowercase())).collect())
            .unwrap_or_default();
        let line = format!("{phase}: nodes {}", counts.join(", "));
        if line != last {
            eprintln!("  {line}");
            let _ = std::io::stderr().flush();
            last = line;
        }
        if !matches!(phase.as_str(), "QUEUED" | "RUNNING") {
            return Ok(e);
        }
    }
}

/// `get execution NAME`: the execution, then its node table.
pub async fn show(c: &Client, p: &str, d: &str, name: &str, format: Format) -> Result<(), CliError> {
    let e = c.get(&format!("{}/{name}", base(p, d))).await?;
    let nodes = c.get(&format!("{}/{name}/nodes", base(p, d))).await?;
    if format != Format::Table {
        let mut all = e;
        all["nodes"] = nodes;
        print(format, &all, &[]);
        return Ok(());
    }
    print(format, &e, EXECUTION_COLUMNS);
    if let Some(err) = e["error"].as_str() {
        println!("\nerror: {err}");
    }
    if let Some(o) = e["outputs"].as_object() {
        println!("\noutputs:");
        for (k, v) in o {
            println!("  {k}: {}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
        }
    }
    println!();
    let rows: Vec<Value> = nodes
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let mut n = n.clone();
            n["attempts_made"] = json!(n["attempts"].as_array().map(Vec::len).unwrap_or(0));
            n["error_line"] = json!(n["error"].as_str().and_then(|s| s.lines().next()).unwrap_or(""));
            n
        })
        .collect();
    print(format, &Value::Array(rows), NODE_COLUMNS);
    Ok(())
}

pub async fn logs(c: &Client, a: &LogsArgs) -> Result<(), CliError> {
    let x = &a.execution;
    let attempt =
        match a.attempt {
            Some(n) => n as u64,
            None => {
                let nodes = c.get(&format!("{}/{}/nodes", base(&x.project, &x.domain), x.execution)).await?;
                let node =
                    nodes.as_array().into_iter().flatten().find(|n| n["node"] == a.node.as_str()).ok_or_else(|| {
                        CliError::Failed(format!("execution {} has no node `{}`", x.execution, a.node))
                    })?;
                node["attempts"]
                    .as_array()
                    .and_then(|v| v.last())
                    .and_then(|l| l["attempt"].as_u64())
                    .ok_or_else(|| CliError::Failed(format!("node `{}` has not run (yet)", a.node)))?
            }
        };
    let text = c
        .get_text(&format!("{}/{}/nodes/{}/attempts/{attempt}/logs", base(&x.project, &x.domain), x.execution, a.node))
        .await?;
    print!("{text}");
    Ok(())
}

pub async fn terminate(c: &Client, a: &ExecutionArgs, format: Format) -> Result<(), CliError> {
    let e = c.delete(&format!("{}/{}", base(&a.project, &a.domain), a.execution)).await?;
    eprintln!("termination of {} requested", a.execution);
    let e = c
        .get(&format!("{}/{}?wait=5", base(&a.project, &a.domain), e["name"].as_str().unwrap_or(&a.execution)))
        .await?;
    print(format, &e, EXECUTION_COLUMNS);
    Ok(())
}
