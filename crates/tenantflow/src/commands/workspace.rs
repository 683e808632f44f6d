//! `tenantflow workspace apply|get|delete|members`: workspaces through the API, as a workspace
//! service would drive them.

use super::apply::{get_opt, load};
use super::CliError;
use crate::cli::{Format, WorkspaceCommand};
use crate::client::Client;
use crate::output::{print, Column};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const COLUMNS: &[Column] = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("STATUS", "/status"),
    ("GENERATION", "/generation"),
    ("OBSERVED", "/observed_generation"),
    ("PHASE", "/phase"),
    ("LAST ERROR", "/last_error"),
];
const LIST_COLUMNS: &[Column] = &[
    ("ID", "/id"),
    ("NAME", "/spec/name"),
    ("STATE", "/state"),
    ("GENERATION", "/generation"),
    ("OBSERVED", "/observed_generation"),
    ("PHASE", "/phase"),
    ("UPDATED", "/updated_at"),
];
const MEMBER_COLUMNS: &[Column] = &[("EMAIL", "/email"), ("ROLE", "/role"), ("BOUND", "/bound")];

pub async fn run(client: &Client, c: WorkspaceCommand, format: Format) -> Result<(), CliError> {
    match c {
        WorkspaceCommand::Apply { files } => apply(client, &files).await,
        WorkspaceCommand::Get { id: None } => {
            let items = client.get_all("/api/v1/workspaces", None).await?;
            print(format, &Value::Array(items), LIST_COLUMNS);
            Ok(())
        }
        WorkspaceCommand::Get { id: Some(id) } => {
            let w = client.get(&format!("/api/v1/workspaces/{id}")).await?;
            print(format, &w, COLUMNS);
            if format == Format::Table {
                println!();
                print(format, &member_rows(&w), MEMBER_COLUMNS);
            }
            Ok(())
        }
        WorkspaceCommand::Delete { id, wait } => {
            let mut w = client.delete(&format!("/api/v1/workspaces/{id}")).await?;
            if wait {
                let deadline = Instant::now() + Duration::from_secs(600);
                while w["phase"] != "retained" {
                    if Instant::now() > deadline {
                        return Err(CliError::Failed(format!("workspace {id} is still in phase {}", w["phase"])));
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    match get_opt(client, &format!("/api/v1/workspaces/{id}")).await? {
                        Some(v) => w = v,
                        None => break,
                    }
                }
            }
            print(format, &w, COLUMNS);
            Ok(())
        }
        WorkspaceCommand::Members { id, add, remove, set } => {
            let path = format!("/api/v1/workspaces/{id}");
            if add.is_empty() && remove.is_empty() && set.is_none() {
                let w = client.get(&path).await?;
                print(format, &member_rows(&w), MEMBER_COLUMNS);
                return Ok(());
            }
            let members = match set {
                Some(file) => {
                    let docs = load(&[file])?;
                    match docs.as_slice() {
                        [Value::Array(list)] => Value::Array(list.clone()),
                        [Value::Object(o)] if o.contains_key("members") => o["members"].clone(),
                        _ => return Err(CliError::Usage("--set: expected a list of members".into())),
                    }
                }
                None => {
                    let w = client.get(&path).await?;
                    edit(&w["desired"]["members"], &add, &remove)?
                }
            };
            let w = client.send_json(Method::PUT, &format!("{path}/users"), &json!({"members": members})).await?;
            print(format, &member_rows(&w), MEMBER_COLUMNS);
            Ok(())
        }
    }
}

/// Declares every workspace document; prints `ID created|updated|unchanged STATUS`.
async fn apply(client: &Client, files: &[std::path::PathBuf]) -> Result<(), CliError> {
    let docs = load(files)?;
    if docs.is_empty() {
        return Err(CliError::Usage("no workspace documents in the given files".into()));
    }
    for (i, doc) in docs.iter().enumerate() {
        let Some(mut spec) = doc.as_object().cloned() else {
            return Err(CliError::Usage(format!("document[{i}]: expected a mapping")));
        };
        let Some(Value::String(id)) = spec.remove("id") else {
            return Err(CliError::Usage(format!("document[{i}]: `id` (the workspace id) is required")));
        };
        let path = format!("/api/v1/workspaces/{id}");
        let before = get_opt(client, &path).await?;
        let w = client.send_json(Method::PUT, &path, &Value::Object(spec)).await?;
        let outcome = match &before {
            None => "created",
            Some(b) if b["generation"] == w["generation"] => "unchanged",
            Some(_) => "updated",
        };
        let status = w["status"].as_str().unwrap_or("?");
        match w["last_error"].as_str() {
            Some(e) => println!("workspace {id} {outcome} ({status}: {e})"),
            None => println!("workspace {id} {outcome} ({status})"),
        }
    }
    Ok(())
}

/// Members declared and bound, one row each.
fn member_rows(w: &Value) -> Value {
    let bound: Vec<(String, String)> = w["actual"]["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| (m["email"].as_str().unwrap_or("").to_string(), m["role"].as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    let mut rows: Vec<Value> = Vec::new();
    for m in w["desired"]["members"].as_array().into_iter().flatten() {
        let (email, role) = (m["email"].as_str().unwrap_or(""), m["role"].as_str().unwrap_or(""));
        let is_bound = bound.iter().any(|(e, r)| e == email && r == role);
        rows.push(json!({"email": email, "role": role, "user_id": m["user_id"], "bound": if is_bound { "yes" } else { "not yet" }}));
    }
    for (email, role) in &bound {
        if !rows.iter().any(|r| r["email"] == email.as_str() && r["role"] == role.as_str()) {
            rows.push(json!({"email": email, "role": role, "bound": "yes (not declared)"}));
        }
    }
    Value::Array(rows)
}

/// The member list with `add` (`EMAIL=ROLE`) and `remove` (`EMAIL`) applied.
fn edit(current: &Value, add: &[String], remove: &[String]) -> Result<Value, CliError> {
    let mut members: Vec<Value> = current.as_array().cloned().unwrap_or_default();
    for r in remove {
        let before = members.len();
        members.retain(|m| !m["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(r)));
        if members.len() == before {
            return Err(CliError::Usage(format!("--remove {r}: not a member")));
        }
    }
    for a in add {
        let Some((email, role)) = a.split_once('=') else {
            return Err(CliError::Usage(format!("--add {a}: expected EMAIL=owner|contributor")));
        };
        members.retain(|m| !m["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(email)));
        let user_id = email.split('@').next().unwrap_or(email);
        members.push(json!({"user_id": user_id, "email": email, "role": role}));
    }
    Ok(Value::Array(members))
}
