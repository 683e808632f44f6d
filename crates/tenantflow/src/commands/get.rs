//! `tenantflow get RESOURCE [NAME [VERSION]]`.

use crate::cli::{Format, GetArgs, LaunchPlanStateArgs};
use crate::client::Client;
use crate::commands::CliError;
use crate::output::{print, Column};
use serde_json::Value;

pub const PROJECT_COLUMNS: &[Column] = &[
    ("ID", "/id"),
    ("TENANT", "/tenant"),
    ("NAME", "/name"),
    ("DOMAINS", "/domains"),
    ("STATE", "/state"),
    ("CREATED", "/created_at"),
];
pub const TENANT_COLUMNS: &[Column] =
    &[("ID", "/id"), ("NAME", "/name"), ("TIER", "/tier"), ("STATE", "/state"), ("CREATED", "/created_at")];
const ROLE_COLUMNS: &[Column] = &[
    ("NAME", "/name"),
    ("TENANT", "/tenant"),
    ("PERMISSIONS", "/permissions"),
    ("PROJECTS", "/projects"),
    ("DOMAINS", "/domains"),
];
const BINDING_COLUMNS: &[Column] = &[
    ("ROLE", "/role"),
    ("KIND", "/subject_kind"),
    ("SUBJECT", "/subject"),
    ("CREATED", "/created_at"),
    ("BY", "/created_by"),
];
pub const TOKEN_COLUMNS: &[Column] = &[
    ("ID", "/id"),
    ("KIND", "/kind"),
    ("SUBJECT", "/subject"),
    ("TENANT", "/tenant"),
    ("EXPIRES", "/expires_at"),
    ("LAST USED", "/last_used_at"),
];
const SUMMARY_COLUMNS: &[Column] =
    &[("NAME", "/name"), ("LATEST", "/latest_version"), ("VERSIONS", "/versions"), ("UPDATED", "/updated_at")];
const VERSION_COLUMNS: &[Column] = &[
    ("NAME", "/name"),
    ("VERSION", "/version"),
    ("DIGEST", "/digest"),
    ("CREATED", "/created_at"),
    ("BY", "/created_by"),
];

const ATTRIBUTE_COLUMNS: &[Column] = &[("FIELD", "/field"), ("VALUE", "/value"), ("SOURCE", "/source")];
const SCHEDULE_COLUMNS: &[Column] = &[
    ("NAME", "/name"),
    ("ACTIVE", "/active_version"),
    ("SCHEDULE", "/schedule"),
    ("NEXT", "/next_fire_at"),
    ("LAST", "/last_fire_at"),
    ("OUTCOME", "/last_outcome"),
    ("FIRED", "/fired"),
];

/// The effective attributes as rows: one per leaf, with its source.
fn attribute_rows(eff: &Value) -> Value {
    fn walk(prefix: &str, v: &Value, sources: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&p, v, sources, out);
                }
            }
            other => {
                let value = match other {
                    Value::String(s) => s.clone(),
                    o => o.to_string(),
                };
                out.push(serde_json::json!({"field": prefix, "value": value, "source": sources[prefix]}));
            }
        }
    }
    let mut rows = Vec::new();
    walk("", &eff["attributes"], &eff["sources"], &mut rows);
    Value::Array(rows)
}

/// `activate` / `deactivate`: the named version, or the latest.
pub async fn set_launch_plan_state(
    client: &Client,
    a: &LaunchPlanStateArgs,
    active: bool,
    format: Format,
) -> Result<(), CliError> {
    let (p, d) = (&a.project, &a.domain);
    let (name, version) = match a.launch_plan.split_once('@') {
        Some((n, v)) => (n.to_string(), v.to_string()),
        None => {
            let versions = client.get(&format!("/api/v1/launch_plans/{p}/{d}/{}?limit=1", a.launch_plan)).await?;
            let v = versions["items"][0]["version"].as_str().ok_or_else(|| {
                CliError::Failed(format!("launch plan `{}` has no versions in {p}/{d}", a.launch_plan))
            })?;
            (a.launch_plan.clone(), v.to_string())
        }
    };
    let state = if active { "ACTIVE" } else { "INACTIVE" };
    let st = client
        .send_json(
            reqwest::Method::PUT,
            &format!("/api/v1/launch_plans/{p}/{d}/{name}/{version}"),
            &serde_json::json!({"state": state}),
        )
        .await?;
    print(format, &st, SCHEDULE_COLUMNS);
    Ok(())
}

/// The API path segment for an entity resource name, accepting kubectl-ish aliases.
fn entity_path(resource: &str) -> Option<&'static str> {
    Some(match resource {
        "task" | "tasks" => "tasks",
        "workflow" | "workflows" | "wf" => "workflows",
        "launchplan" | "launchplans" | "launch_plan" | "launch_plans" | "lp" => "launch_plans",
        _ => return None,
    })
}

pub async fn run(client: &Client, a: &GetArgs, format: Format) -> Result<(), CliError> {
    match a.resource.as_str() {
        "project" | "projects" | "proj" => match &a.name {
            Some(n) => print(format, &client.get(&format!("/api/v1/projects/{n}")).await?, PROJECT_COLUMNS),
            None => print(format, &Value::Array(client.get_all("/api/v1/projects", a.limit).await?), PROJECT_COLUMNS),
        },
        "tenant" | "tenants" => match &a.name {
            Some(n) => print(format, &client.get(&format!("/api/v1/tenants/{n}")).await?, TENANT_COLUMNS),
            None => print(format, &Value::Array(client.get_all("/api/v1/tenants", a.limit).await?), TENANT_COLUMNS),
        },
        "role" | "roles" | "binding" | "bindings" | "token" | "tokens" => {
            let Some(t) = &a.tenant else {
                return Err(CliError::Usage(format!("`get {}` needs --tenant/-t", a.resource)));
            };
            match (a.resource.trim_end_matches('s'), &a.name) {
                ("role", Some(n)) => {
                    print(format, &client.get(&format!("/api/v1/tenants/{t}/roles/{n}")).await?, ROLE_COLUMNS)
                }
                ("role", None) => print(
                    format,
                    &Value::Array(client.get_all(&format!("/api/v1/tenants/{t}/roles"), a.limit).await?),
                    ROLE_COLUMNS,
                ),
                ("binding", _) => {
                    let path = match &a.name {
                        Some(role) => format!("/api/v1/tenants/{t}/bindings?role={role}"),
                        None => format!("/api/v1/tenants/{t}/bindings"),
                    };
                    print(format, &Value::Array(client.get_all(&path, a.limit).await?), BINDING_COLUMNS)
                }
                _ => {
                    let v = client.get(&format!("/api/v1/tenants/{t}/tokens")).await?;
                    print(format, &v["items"], TOKEN_COLUMNS)
                }
            }
        }
        "execution" | "executions" | "exec" | "execs" => {
            let (Some(p), Some(d)) = (&a.project, &a.domain) else {
                return Err(CliError::Usage(format!("`get {}` needs --project/-p and --domain/-d", a.resource)));
            };
            match &a.name {
                Some(n) => super::executions::show(client, p, d, n, format).await?,
                None => {
                    let path = match &a.phase {
                        Some(ph) => format!("/api/v1/executions/{p}/{d}?phase={ph}"),
                        None => format!("/api/v1/executions/{p}/{d}"),
                    };
                    print(
                        format,
                        &Value::Array(client.get_all(&path, a.limit).await?),
                        super::executions::EXECUTION_COLUMNS,
                    )
                }
            }
        }
        "attributes" | "attribute" | "attrs" => {
            let (Some(p), Some(d)) = (&a.project, &a.domain) else {
                return Err(CliError::Usage("`get attributes` needs --project/-p and --domain/-d".into()));
            };
            let mut q = Vec::new();
            if let Some(w) = &a.workflow {
                q.push(format!("workflow={w}"));
            }
            if let Some(l) = &a.launch_plan {
                q.push(format!("launch_plan={l}"));
            }
            let path = format!("/api/v1/effective_attributes/{p}/{d}?{}", q.join("&"));
            let eff = client.get(&path).await?;
            match format {
                Format::Table => print(format, &attribute_rows(&eff), ATTRIBUTE_COLUMNS),
                _ => print(format, &eff, &[]),
            }
        }
        "schedules" | "schedule" | "active" => {
            let (Some(p), Some(d)) = (&a.project, &a.domain) else {
                return Err(CliError::Usage(format!("`get {}` needs --project/-p and --domain/-d", a.resource)));
            };
            print(format, &client.get(&format!("/api/v1/active_launch_plans/{p}/{d}")).await?, SCHEDULE_COLUMNS)
        }
        r => {
            let Some(seg) = entity_path(r) else {
                return Err(CliError::Usage(format!(
                    "unknown resource `{r}`; expected projects, tenants, tasks, workflows, launchplans, executions, attributes or schedules"
                )));
            };
            let (Some(p), Some(d)) = (&a.project, &a.domain) else {
                return Err(CliError::Usage(format!("`get {r}` needs --project/-p and --domain/-d")));
            };
            let base = format!("/api/v1/{seg}/{p}/{d}");
            match (&a.name, &a.version) {
                (None, _) => print(format, &Value::Array(client.get_all(&base, a.limit).await?), SUMMARY_COLUMNS),
                (Some(n), None) => print(
                    format,
                    &Value::Array(client.get_all(&format!("{base}/{n}"), a.limit).await?),
                    VERSION_COLUMNS,
                ),
                (Some(n), Some(v)) => {
                    let e = client.get(&format!("{base}/{n}/{v}")).await?;
                    match format {
                        // A single entity in a table shows its identity; the spec is in -o yaml/json.
                        Format::Table => print(format, &e, VERSION_COLUMNS),
                        _ => print(format, &e, &[]),
                    }
                }
            }
        }
    }
    Ok(())
}
