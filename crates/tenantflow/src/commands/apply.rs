//! `tenantflow apply -f FILE… [--dry-run]`: converge tenants, projects, roles and bindings to
//! what the files declare, through the HTTP API only. Idempotent: a second run changes nothing.
//! Nothing is deleted: what the files do not mention is left alone.

use crate::cli::ApplyArgs;
use crate::client::Client;
use crate::commands::CliError;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use tf_model::declarative::{parse_desired, Desired, DesiredTenant};

pub fn load(files: &[std::path::PathBuf]) -> Result<Vec<Value>, CliError> {
    parse_docs(&super::register::bundle_text(files)?)
}

struct Opts {
    dry_run: bool,
}

/// GET that maps 404 to `None`.
pub async fn get_opt(c: &Client, path: &str) -> Result<Option<Value>, CliError> {
    match c.get(path).await {
        Ok(v) => Ok(Some(v)),
        Err(CliError::Api { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

struct Report {
    dry_run: bool,
    changed: usize,
}

impl Report {
    fn say(&mut self, what: &str, outcome: &str) {
        if outcome != "unchanged" {
            self.changed += 1;
        }
        let suffix = if self.dry_run && outcome != "unchanged" { " (dry run)" } else { "" };
        println!("{what} {outcome}{suffix}");
    }
}

pub async fn run(client: &Client, a: &ApplyArgs) -> Result<(), CliError> {
    let docs = load(&a.files)?;
    apply_docs(client, &docs, a.dry_run).await
}

/// Parses YAML text into documents.
pub fn parse_docs(text: &str) -> Result<Vec<Value>, CliError> {
    let mut docs = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        match Value::deserialize(de) {
            Ok(Value::Null) => {}
            Ok(v) => docs.push(v),
            Err(e) => return Err(CliError::Usage(format!("document[{i}]: not valid YAML: {e}"))),
        }
    }
    Ok(docs)
}

/// Converges the server to `docs`; prints one line per object.
pub async fn apply_docs(client: &Client, docs: &[Value], dry_run: bool) -> Result<(), CliError> {
    let a = Opts { dry_run };
    let desired: Desired = parse_desired(docs)
        .map_err(|v| CliError::Usage(v.0.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n")))?;
    for s in &desired.skipped {
        eprintln!("skipped: {s}");
    }
    let mut r = Report { dry_run: a.dry_run, changed: 0 };
    for t in &desired.tenants {
        let what = format!("tenant/{}", t.id);
        let exists = get_opt(client, &format!("/api/v1/tenants/{}", t.id)).await?.is_some();
        if exists {
            r.say(&what, "unchanged");
        } else {
            if !a.dry_run {
                let mut body = json!({"id": t.id});
                if let Some(n) = &t.name {
                    body["name"] = json!(n);
                }
                if let Some(x) = &t.tier {
                    body["tier"] = json!(x);
                }
                client.post_json("/api/v1/tenants", &body).await?;
            }
            r.say(&what, "created");
        }
        converge_quota(client, &mut r, t, exists).await?;
    }
    for p in &desired.projects {
        let what = format!("project/{}", p.id);
        let domains: Vec<Value> = p.domains.iter().map(|(id, name)| json!({"id": id, "name": name})).collect();
        match get_opt(client, &format!("/api/v1/projects/{}", p.id)).await? {
            None => {
                if !a.dry_run {
                    let mut body = json!({"id": p.id, "tenant": p.tenant, "domains": domains});
                    if let Some(n) = &p.name {
                        body["name"] = json!(n);
                    }
                    if let Some(d) = &p.description {
                        body["description"] = json!(d);
                    }
                    client.post_json("/api/v1/projects", &body).await?;
                }
                r.say(&what, "created");
            }
            Some(cur) => {
                if cur["tenant"] != json!(p.tenant) {
                    return Err(CliError::Failed(format!(
                        "{what} belongs to tenant `{}`, not `{}`; projects do not move between tenants",
                        cur["tenant"].as_str().unwrap_or("?"),
                        p.tenant
                    )));
                }
                let have: Vec<Value> = cur["domains"].as_array().cloned().unwrap_or_default();
                let have_ids: BTreeSet<&str> = have.iter().filter_map(|d| d["id"].as_str()).collect();
                let mut merged = have.clone();
                merged.extend(domains.iter().filter(|d| !have_ids.contains(d["id"].as_str().unwrap_or(""))).cloned());
                let mut body = json!({});
                if merged.len() != have.len() {
                    body["domains"] = json!(merged);
                }
                if p.name.as_ref().is_some_and(|n| cur["name"] != json!(n)) {
                    body["name"] = json!(p.name);
                }
                if p.description.as_ref().is_some_and(|d| cur["description"] != json!(d)) {
                    body["description"] = json!(p.description);
                }
                if body.as_object().is_some_and(|o| o.is_empty()) {
                    r.say(&what, "unchanged");
                } else {
                    if !a.dry_run {
                        client.send_json(reqwest::Method::PUT, &format!("/api/v1/projects/{}", p.id), &body).await?;
                    }
                    r.say(&what, "configured");
                }
            }
        }
    }
    for at in &desired.attributes {
        let what = format!("attributes/{}/{}", at.project, at.domain);
        let path = format!("/api/v1/project_domain_attributes/{}/{}", at.project, at.domain);
        let want = serde_json::to_value(&at.attributes).expect("attributes serialise");
        let have = get_opt(client, &path).await?;
        let outcome = match &have {
            Some(h) if h["attributes"] == want => "unchanged",
            Some(h) if h["updated_at"].is_null() => "set",
            Some(_) => "configured",
            None => "set",
        };
        if outcome != "unchanged" && !a.dry_run {
            client.send_json(reqwest::Method::PUT, &path, &json!({"attributes": want})).await?;
        }
        r.say(&what, outcome);
    }
    for role in &desired.roles {
        let what = format!("role/{}/{}", role.tenant, role.name);
        let path = format!("/api/v1/tenants/{}/roles/{}", role.tenant, role.name);
        let body = json!({"description": role.description, "permissions": role.permissions, "projects": role.projects, "domains": role.domains});
        let outcome = match get_opt(client, &path).await? {
            None => "created",
            Some(cur)
                if cur["permissions"] == body["permissions"]
                    && cur["projects"] == body["projects"]
                    && cur["domains"] == body["domains"]
                    && cur["description"] == body["description"] =>
            {
                "unchanged"
            }
            Some(_) => "configured",
        };
        if outcome != "unchanged" && !a.dry_run {
            client.send_json(reqwest::Method::PUT, &path, &body).await?;
        }
        r.say(&what, outcome);
    }
    let tenants: BTreeSet<&str> = desired.bindings.iter().map(|b| b.tenant.as_str()).collect();
    for t in tenants {
        let existing: BTreeSet<(String, String, String)> =
            match client.get_all(&format!("/api/v1/tenants/{t}/bindings"), None).await {
                Ok(items) => items
                    .iter()
                    .map(|b| {
                        let s = |k: &str| b[k].as_str().unwrap_or("").to_string();
                        (s("role"), s("subject_kind"), s("subject"))
                    })
                    .collect(),
                Err(CliError::Api { status: 404, .. }) if a.dry_run => BTreeSet::new(),
                Err(e) => return Err(e),
            };
        for b in desired.bindings.iter().filter(|b| b.tenant == t) {
            let what = format!("binding/{t}/{}/{}:{}", b.role, b.kind, b.subject);
            if existing.contains(&(b.role.clone(), b.kind.clone(), b.subject.clone())) {
                r.say(&what, "unchanged");
                continue;
            }
            if !a.dry_run {
                let body = json!({"role": b.role, "subject_kind": b.kind, "subject": b.subject});
                client.post_json(&format!("/api/v1/tenants/{t}/bindings"), &body).await?;
            }
            r.say(&what, "created");
        }
    }
    eprintln!("{} change(s){}", r.changed, if a.dry_run { " planned; nothing was written" } else { " applied" });
    Ok(())
}

/// Whether a quota as written and one as the server shows it say the same.
fn same_quota(want: &Value, have: &Value) -> bool {
    use tf_model::resources::{parse_cpu, parse_memory};
    let qty = |k: &str, parse: fn(&Value) -> Result<u64, String>| {
        let w = want.get(k).map(|v| parse(v).ok());
        let h = have.get(k).filter(|v| !v.is_null()).map(|v| parse(v).ok());
        w == h
    };
    let count = |k: &str| want.get(k).and_then(Value::as_i64) == have.get(k).and_then(Value::as_i64);
    qty("cpu", parse_cpu)
        && qty("memory", parse_memory)
        && qty("stored_bytes", parse_memory)
        && count("running_tasks")
        && count("running_executions")
        && want.get("weight").is_none_or(|w| w.as_i64() == have.get("weight").and_then(Value::as_i64))
}

/// Sets a tenant's quota when the file gives one and it differs from the server's.
async fn converge_quota(client: &Client, r: &mut Report, t: &DesiredTenant, exists: bool) -> Result<(), CliError> {
    let Some(want) = &t.quota else { return Ok(()) };
    let what = format!("quota/{}", t.id);
    let path = format!("/api/v1/tenants/{}/quota", t.id);
    if exists && same_quota(want, &client.get(&path).await?) {
        r.say(&what, "unchanged");
        return Ok(());
    }
    if !r.dry_run {
        client.send_json(reqwest::Method::PUT, &path, want).await?;
    }
    r.say(&what, if exists { "updated" } else { "set" });
    Ok(())
}
