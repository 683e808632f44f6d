//! `tenantflow audit list|export|verify` and `tenantflow usage`.

use super::CliError;
use crate::cli::{AuditCommand, AuditFilterArgs, Format, UsageArgs};
use crate::client::Client;
use crate::output::{print, Column};
use serde_json::Value;
use std::io::Write;

const COLUMNS: &[Column] = &[
    ("TIME", "/time_at"),
    ("TENANT", "/tenant"),
    ("ACTOR", "/actor"),
    ("ACTION", "/action"),
    ("RESOURCE", "/resource"),
    ("OUTCOME", "/outcome"),
    ("REQUEST", "/request_id"),
];
const USAGE_COLUMNS: &[Column] = &[
    ("WINDOW", "/start_at"),
    ("API CALLS", "/api_calls"),
    ("USERS", "/active_users"),
    ("EXECUTIONS", "/executions_text"),
    ("ATTEMPTS", "/attempts"),
    ("CPU S", "/cpu_seconds"),
    ("MEM GIB·S", "/memory_gib_seconds"),
    ("QUEUE WAIT S", "/queue_wait_seconds"),
];

/// The query string for `f` (pages are sized by the client).
fn query(f: &AuditFilterArgs) -> String {
    let mut q = Vec::new();
    for (k, v) in [
        ("tenant", &f.tenant),
        ("project", &f.project),
        ("actor", &f.actor),
        ("action", &f.action),
        ("outcome", &f.outcome),
        ("since", &f.since),
        ("until", &f.until),
    ] {
        if let Some(v) = v {
            q.push(format!("{k}={}", encode(v)));
        }
    }
    q.join("&")
}

/// Percent-encodes a query value.
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn run(client: &Client, c: AuditCommand, format: Format) -> Result<(), CliError> {
    match c {
        AuditCommand::List { filter, limit } => {
            let mut items = client.get_all(&format!("/api/v1/audit?{}", query(&filter)), Some(limit)).await?;
            for it in &mut items {
                if let Some(t) = it["time"].as_i64() {
                    it["time_at"] = Value::String(crate::output::format_ms(t));
                }
            }
            print(format, &Value::Array(items), COLUMNS);
            Ok(())
        }
        AuditCommand::Export { filter, file } => {
            let mut out: Box<dyn Write> = match &file {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p).map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout())),
            };
            let items = client.get_all(&format!("/api/v1/audit?{}", query(&filter)), None).await?;
            for it in &items {
                writeln!(out, "{it}").map_err(|e| CliError::Failed(e.to_string()))?;
            }
            out.flush().map_err(|e| CliError::Failed(e.to_string()))?;
            if file.is_some() {
                eprintln!("{} records exported", items.len());
            }
            Ok(())
        }
        AuditCommand::Verify { tenant } => {
            let path = match &tenant {
                Some(t) => format!("/api/v1/audit/verify?tenant={}", encode(t)),
                None => "/api/v1/audit/verify".into(),
            };
            let r = client.post_json(&path, &serde_json::json!({})).await?;
            let problems = r["problems"].as_array().cloned().unwrap_or_default();
            match format {
                Format::Table => {
                    println!("{} chains, {} records verified", r["chains"], r["records"]);
                    for p in &problems {
                        println!("tenant {} record {}: {}", p["tenant"], p["seq"], p["problem"].as_str().unwrap_or(""));
                    }
                }
                _ => print(format, &r, &[]),
            }
            if problems.is_empty() {
                Ok(())
            } else {
                Err(CliError::Failed(format!("the audit trail does not verify: {} problem(s)", problems.len())))
            }
        }
    }
}

pub async fn usage(client: &Client, a: &UsageArgs, format: Format) -> Result<(), CliError> {
    let mut q = vec![format!("window={}", encode(&a.window))];
    for (k, v) in [("tenant", &a.tenant), ("project", &a.project), ("since", &a.since), ("until", &a.until)] {
        if let Some(v) = v {
            q.push(format!("{k}={}", encode(v)));
        }
    }
    let mut r = client.get(&format!("/api/v1/usage?{}", q.join("&"))).await?;
    if format != Format::Table {
        print(format, &r, &[]);
        return Ok(());
    }
    let text = |w: &Value| -> String {
        w["executions"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(","))
            .unwrap_or_default()
    };
    let mut rows: Vec<Value> = r["windows"].as_array().cloned().unwrap_or_default();
    for w in &mut rows {
        w["start_at"] = Value::String(crate::output::format_ms(w["start"].as_i64().unwrap_or(0)));
        w["executions_text"] = Value::String(text(w));
    }
    let mut totals = r["totals"].take();
    totals["start_at"] = Value::String("TOTAL".into());
    totals["executions_text"] = Value::String(text(&totals));
    rows.push(totals);
    println!(
        "tenant {}{}, stored bytes {}",
        r["tenant"].as_str().unwrap_or(""),
        r["project"].as_str().map(|p| format!(" project {p}")).unwrap_or_default(),
        r["stored_bytes"]
    );
    print(format, &Value::Array(rows), USAGE_COLUMNS);
    Ok(())
}
