//! Workspaces: a workspace service declares each workspace's desired state; this module turns
//! it into a tenant, a project, the owner and contributor roles, one binding per member and a
//! quota ([`converge`]), retires it ([`retire`]), keeps every workspace converged
//! ([`reconciler`]) and reports outcomes to the workspace service ([`events`]).
//!
//! Invariant: the store is changed first, in one transaction per convergence or retirement
//! phase (with its event), and only then this server's in-memory access index, directory and
//! admission queue — so a crash at any point leaves a state the next pass finishes, and what
//! this server answers never runs ahead of what is durable. Convergences of one workspace on
//! this server run one at a time.

pub mod events;
pub mod reconciler;
pub mod retire;

use crate::authz::{role_def, subject_of};
use crate::AppState;
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tf_authz::SubjectKind;
use tf_model::workspace::{plan, Step, Templates, WorkspaceSpec};
use tf_store::{BindingRecord, NewWorkspaceEvent, QuotaRecord, RoleRecord, WorkspaceObservation};
use tokio::sync::Mutex;

/// `workspaces:` in the configuration.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSettings {
    /// How long a retired workspace's exported data is kept before it is purged (default `30d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
    /// How often the reconciler passes over every workspace (default `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile_interval: Option<String>,
    /// Webhook that receives workspace events as CloudEvents JSON; none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_url: Option<String>,
    /// Sent as `Authorization: Bearer …` with every event, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_token: Option<String>,
    /// The URL clients reach this API at, for workspace links (default `http://LISTEN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// A console link per workspace, `{project}` replaced by its project id; none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_url: Option<String>,
}

/// Checked settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub retention: Duration,
    pub interval: Duration,
    pub events_url: Option<String>,
    pub events_token: Option<String>,
    pub public_url: String,
    pub console_url: Option<String>,
}

impl WorkspaceSettings {
    pub fn check(&self, listen: std::net::SocketAddr) -> Result<Settings, String> {
        let duration = |field: &str, v: &Option<String>, default: Duration| match v {
            None => Ok(default),
            Some(s) => humantime::parse_duration(s.trim())
                .map_err(|e| format!("workspaces.{field}: `{s}` is not a duration such as `30d` or `90s` ({e})")),
        };
        let retention = duration("retention", &self.retention, Duration::from_secs(30 * 86_400))?;
        let interval = duration("reconcile_interval", &self.reconcile_interval, Duration::from_secs(60))?;
        if interval < Duration::from_millis(100) {
            return Err("workspaces.reconcile_interval must be at least 100ms".into());
        }
        let url = |field: &str, v: &Option<String>| match v {
            Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                Err(format!("workspaces.{field}: `{u}` is not an http(s) URL"))
            }
            _ => Ok(v.as_ref().map(|u| u.trim_end_matches('/').to_string())),
        };
        Ok(Settings {
            retention,
            interval,
            events_url: url("events_url", &self.events_url)?,
            events_token: self.events_token.clone(),
            public_url: url("public_url", &self.public_url)?.unwrap_or_else(|| format!("http://{listen}")),
            console_url: self.console_url.clone(),
        })
    }
}

/// The workspace machinery's shared state.
pub struct Workspaces {
    pub settings: Settings,
    /// One lock per stripe of workspace ids: convergences of one workspace never interleave.
    stripes: Vec<Mutex<()>>,
    /// Wakes the reconciler early (a convergence failed, a retirement was asked for).
    pub(crate) kick: tokio::sync::Notify,
    /// Wakes the event sender (events were written).
    pub(crate) events_ready: tokio::sync::Notify,
    pub(crate) last_pass: std::sync::Mutex<Option<reconciler::PassReport>>,
}

impl Workspaces {
    pub fn new(settings: Settings) -> Workspaces {
        Workspaces {
            settings,
            stripes: (0..64).map(|_| Mutex::new(())).collect(),
            kick: Default::default(),
            events_ready: Default::default(),
            last_pass: Default::default(),
        }
    }

    pub(crate) async fn lock(&self, id: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let h = id.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
        self.stripes[h as usize % self.stripes.len()].lock().await
    }

    /// An event to record with a change, when a webhook will deliver it.
    pub(crate) fn event(&self, kind: &str, data: Value) -> Option<NewWorkspaceEvent> {
        self.settings.events_url.as_ref().map(|_| NewWorkspaceEvent { kind: kind.into(), data })
    }

    /// The project's links: its API resource and, when configured, its console page.
    pub fn links(&self, id: &str) -> Value {
        json!({
            "project": format!("{}/api/v1/projects/{id}", self.settings.public_url),
            "executions": format!("{}/api/v1/executions/{id}/{{domain}}", self.settings.public_url),
            "console": self.settings.console_url.as_ref().map(|c| c.replace("{project}", id)),
        })
    }
}

/// The two roles' permissions, from the built-in templates.
pub fn templates() -> Templates<'static> {
    let perms = |n| tf_authz::templates::template(n).map(|t| t.permissions).unwrap_or_default();
    Templates { owner: perms("owner"), contributor: perms("contributor") }
}

/// The declaration with its quota in the store's form, so it compares with what is set; a bad
/// quota is a 400 naming its field (`quota.cpu`).
pub fn canonical(mut spec: WorkspaceSpec) -> Result<WorkspaceSpec, crate::error::ApiError> {
    use crate::error::ApiError;
    if let Some(q) = &spec.quota {
        let body: crate::routes::tenants::QuotaBody =
            serde_json::from_value(q.clone()).map_err(|e| ApiError::invalid("quota", e))?;
        let record = body.to_record().map_err(|e| {
            let field = e.details.as_ref().and_then(|d| d["field"].as_str()).unwrap_or("").to_string();
            let message = e.message.split_once(": ").map(|(_, m)| m.to_string()).unwrap_or(e.message.clone());
            ApiError::invalid(&format!("quota.{field}"), message)
        })?;
        spec.quota = Some(serde_json::to_value(record).map_err(|e| ApiError::invalid("quota", e))?);
    }
    Ok(spec)
}

/// What converging one workspace did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Nothing to do: no write.
    Unchanged,
    /// Steps carried out (or only the progress mark moved).
    Converged { steps: usize },
    /// The declaration changed meanwhile; the next convergence takes it.
    Superseded,
}

/// Converges one active workspace to its declaration. Writes nothing when it already matches.
pub async fn converge(s: &AppState, obs: &WorkspaceObservation) -> Result<Outcome, ConvergeError> {
    let rec = &obs.record;
    let spec: WorkspaceSpec =
        serde_json::from_value(rec.spec.clone()).map_err(|e| ConvergeError::Invalid(format!("stored spec: {e}")))?;
    let spec = canonical(spec).map_err(|e| ConvergeError::Invalid(e.message))?;
    let steps = plan(&rec.id, &spec, &obs.observed, &templates());
    if steps.is_empty() && rec.observed_generation >= rec.generation {
        return Ok(Outcome::Unchanged);
    }
    let event = s.workspaces.event(
        "workspace.ready",
        json!({"generation": rec.generation, "members": spec.members.len(), "links": s.workspaces.links(&rec.id)}),
    );
    let marked = s.store.platform().converge_workspace(&rec.id, rec.generation, &steps, event.as_ref()).await?;
    apply_in_memory(s, &rec.id, &spec, &steps).await?;
    if event.is_some() && marked {
        s.workspaces.events_ready.notify_one();
    }
    Ok(if marked { Outcome::Converged { steps: steps.len() } } else { Outcome::Superseded })
}

/// Observes and converges workspace `id` (one at a time per workspace on this server).
pub async fn converge_id(s: &AppState, id: &str) -> Result<Option<Outcome>, ConvergeError> {
    let _g = s.workspaces.lock(id).await;
    let Some(obs) = s.store.platform().observe_workspace(id).await? else { return Ok(None) };
    if obs.record.state != "active" {
        return Ok(None);
    }
    match converge(s, &obs).await {
        Ok(o) => Ok(Some(o)),
        Err(e) => {
            let error = e.to_string();
            let event =
                s.workspaces.event("workspace.failed", json!({"generation": obs.record.generation, "error": error}));
            if let Ok(true) =
                s.store.platform().workspace_failed(id, obs.record.generation, &error, event.as_ref()).await
            {
                s.workspaces.events_ready.notify_one();
            }
            Err(e)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConvergeError {
    #[error("{0}")]
    Store(#[from] tf_store::Error),
    #[error("{0}")]
    Invalid(String),
}

/// Applies committed steps to this server's access index, directory and admission queue.
async fn apply_in_memory(s: &AppState, id: &str, spec: &WorkspaceSpec, steps: &[Step]) -> Result<(), tf_store::Error> {
    let mut quota_changed = false;
    for step in steps {
        match step {
            Step::CreateTenant { .. } => {
                quota_changed = true;
                // Its data area (mounted at /data in its tasks); attempts also create it on demand.
                if let Err(e) = std::fs::create_dir_all(s.engine.data_dir(id)) {
                    tracing::warn!(workspace = id, error = %e, "cannot create the workspace's data area yet");
                }
            }
            Step::UpdateTenant { .. } | Step::SetQuota(_) => quota_changed = true,
            Step::CreateProject { .. } | Step::UpdateProject { .. } => {
                if let Some(p) = s.store.tenant(id).get_project(id).await? {
                    s.authz.update(|policy| policy.set_project(&p.id, &p.tenant));
                    s.directory.put(p);
                }
            }
            Step::PutRole { name, role } => {
                let record = RoleRecord {
                    tenant: Some(id.to_string()),
                    name: name.clone(),
                    description: String::new(),
                    permissions: role.permissions.clone(),
                    projects: role.projects.clone(),
                    domains: role.domains.clone(),
                    created_at: 0,
                    updated_at: 0,
                };
                match role_def(&record) {
                    Ok(def) => s.authz.update(|p| p.upsert_role(def)),
                    Err(e) => tracing::error!(workspace = id, role = %name, error = %e.1, "workspace role is invalid"),
                }
            }
            Step::Bind { role, user } => s.authz.bind(&BindingRecord {
                tenant: Some(id.to_string()),
                role: role.clone(),
                subject_kind: "user".into(),
                subject: user.clone(),
                created_at: 0,
                created_by: String::new(),
            }),
            Step::Unbind { role, user } => {
                s.authz.update(|p| p.unbind(&subject_of(SubjectKind::User, Some(id), user), Some(id), role))
            }
        }
    }
    if steps.iter().any(Step::changes_access) {
        s.generation.note_own_write();
    }
    if quota_changed {
        // The admission queue takes the tier and quota just written: from the declaration
        // (canonical, so its quota is the store's form) unless the workspace leaves the quota
        // to the platform, in which case what is set is read.
        let tier = spec.tier();
        let q: QuotaRecord = match &spec.quota {
            Some(v) => serde_json::from_value(v.clone()).map_err(tf_store::Error::from)?,
            None => s.store.platform().get_quota(id).await?,
        };
        s.engine.set_quota(id, &tier, &q);
    }
    Ok(())
}

/// Keeps the workspace machinery running: the reconciler and the event sender.
pub fn spawn(s: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(reconciler::run(s.clone()))];
    if s.workspaces.settings.events_url.is_some() {
        tasks.push(tokio::spawn(events::run(s.clone())));
    }
    tasks
}

pub type Shared = Arc<Workspaces>;
