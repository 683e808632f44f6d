//! From registered entities to something runnable: launching (resolving a launch plan or
//! workflow and checking the inputs against its interface) and loading an execution's
//! workflow and tasks for the engine.
//!
//! Invariant: an execution is created only with a complete, type-checked set of inputs —
//! launch-plan defaults applied, fixed inputs unchangeable — so the engine never meets a
//! missing or mistyped workflow input.

use crate::scheduler::{Demand, Quota};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tf_executor::Limits;
use tf_model::compile::{CompiledLaunchPlan, CompiledWorkflow, EntityRef, Interface};
use tf_model::spec::{ConcurrencyPolicy, ResourceListSpec};
use tf_model::{Attributes, Effective, EntityKind, LaunchPlanSpec, TaskSpec};
use tf_store::{ExecutionKey, ExecutionRecord, NewExecution, TenantStore};

pub use tf_model::attributes::DEFAULT_MAX_PARALLELISM;
/// Processes per attempt, unless the task's limits say otherwise.
const DEFAULT_PIDS: u64 = 1024;
/// What an attempt holds of its tenant's quota when its task states neither requests nor
/// limits: a quarter of a core and 256 MiB.
pub const DEFAULT_CPU_MILLIS: u64 = 250;
pub const DEFAULT_MEMORY_BYTES: u64 = 256 << 20;

/// What an attempt of this task holds of its tenant's quota while it runs: its requests, else
/// its limits, else the defaults.
pub fn demand_of(spec: &TaskSpec) -> Result<Demand, String> {
    let r = &spec.resources;
    let cpu = r.requests.cpu.as_ref().or(r.limits.cpu.as_ref());
    let mem = r.requests.memory.as_ref().or(r.limits.memory.as_ref());
    Ok(Demand {
        cpu_millis: cpu.map(tf_model::resources::parse_cpu).transpose()?.unwrap_or(DEFAULT_CPU_MILLIS),
        memory_bytes: mem.map(tf_model::resources::parse_memory).transpose()?.unwrap_or(DEFAULT_MEMORY_BYTES),
    })
}

/// A task's resources with the execution's defaults filled in: a resource the task states
/// neither a request nor a limit for gets the default as both.
pub fn with_default_resources(mut spec: TaskSpec, defaults: Option<&ResourceListSpec>) -> TaskSpec {
    let Some(d) = defaults else { return spec };
    let r = &mut spec.resources;
    if r.requests.cpu.is_none() && r.limits.cpu.is_none() && d.cpu.is_some() {
        r.requests.cpu = d.cpu.clone();
        r.limits.cpu = d.cpu.clone();
    }
    if r.requests.memory.is_none() && r.limits.memory.is_none() && d.memory.is_some() {
        r.requests.memory = d.memory.clone();
        r.limits.memory = d.memory.clone();
    }
    spec
}

/// Why a task exceeds the maximum resources, if it does.
fn exceeds_max(spec: &TaskSpec, max: &ResourceListSpec) -> Result<Option<String>, String> {
    use tf_model::resources::{parse_cpu, parse_memory};
    let r = &spec.resources;
    if let Some(m) = max.cpu.as_ref().map(parse_cpu).transpose()? {
        for (what, v) in [("requests", &r.requests.cpu), ("limits", &r.limits.cpu)] {
            if let Some(c) = v.as_ref().map(parse_cpu).transpose()? {
                if c > m {
                    return Ok(Some(format!("{what} cpu {}m, more than the maximum {m}m", c)));
                }
            }
        }
    }
    if let Some(m) = max.memory.as_ref().map(parse_memory).transpose()? {
        for (what, v) in [("requests", &r.requests.memory), ("limits", &r.limits.memory)] {
            if let Some(b) = v.as_ref().map(parse_memory).transpose()? {
                if b > m {
                    return Ok(Some(format!("{what} memory {b} bytes, more than the maximum {m} bytes")));
                }
            }
        }
    }
    Ok(None)
}

/// Refuses a launch when its tenant's stored bytes have reached their quota, or a workflow with
/// a task above the maximum resources or that could never run within its tenant's whole quota
/// (both after default resources are applied).
async fn check_tasks(
    store: &TenantStore<'_>,
    key: &ExecutionKey,
    wf: &CompiledWorkflow,
    config: &RunConfig,
) -> Result<(), LaunchError> {
    let record = store.quota().await?;
    if let Some(max) = record.stored_bytes {
        let used = store.stored_bytes().await?;
        if used >= max {
            return Err(LaunchError::Refused(format!(
                "quota: stored bytes {used}/{max} in use (tenant {}); nothing more can be stored until the quota is raised",
                store.tenant_id()
            )));
        }
    }
    let quota = Quota::from_record(&record, "");
    let limited = quota.cpu_millis.is_some() || quota.memory_bytes.is_some() || quota.running_tasks.is_some();
    let attrs = &config.effective.attributes;
    if !limited && attrs.max_resources.is_none() {
        return Ok(());
    }
    let mut seen = std::collections::HashSet::new();
    for n in &wf.nodes {
        if !seen.insert(&n.task) {
            continue;
        }
        let t = store
            .get_entity(&key.project, &key.domain, EntityKind::Task, &n.task.name, Some(&n.task.version))
            .await?
            .ok_or_else(|| LaunchError::Store(format!("task {}@{} is missing", n.task.name, n.task.version)))?;
        let spec =
            with_default_resources(spec_of(&t.spec).map_err(LaunchError::Store)?, attrs.default_resources.as_ref());
        if let Some(max) = &attrs.max_resources {
            if let Some(why) = exceeds_max(&spec, max).map_err(LaunchError::Store)? {
                let source = config.source_of("max_resources");
                return Err(invalid(
                    format!("nodes.{}.resources", n.id),
                    format!("task `{}` {why} ({source})", n.task.name),
                ));
            }
        }
        let demand = demand_of(&spec).map_err(LaunchError::Store)?;
        if let Some(why) = quota.oversize(store.tenant_id(), demand) {
            return Err(invalid(
                format!("nodes.{}.resources", n.id),
                format!("task `{}` {why}: it could never run", n.task.name),
            ));
        }
    }
    Ok(())
}

/// How many runs of a launch plan may run at once, recorded on each of its executions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Concurrency {
    pub launch_plan: String,
    pub max: u32,
    pub policy: ConcurrencyPolicy,
}

/// What an execution runs with, stored on it as `config`: the effective attributes and their
/// sources, the launch plan's concurrency, and the tick that started it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunConfig {
    #[serde(flatten)]
    pub effective: Effective,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<i64>,
    /// Inside its tenant, attempts of higher-priority executions are admitted first.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// The priorities a request may ask for.
pub const PRIORITIES: std::ops::RangeInclusive<i64> = -100..=100;

impl RunConfig {
    /// The config an execution was created with (the defaults for one created before them).
    pub fn of(record: &ExecutionRecord) -> RunConfig {
        record.config.as_ref().and_then(|c| serde_json::from_value(c.clone()).ok()).unwrap_or_default()
    }

    fn source_of(&self, prefix: &str) -> String {
        let p = format!("{prefix}.");
        self.effective
            .sources
            .iter()
            .find(|(k, _)| *k == prefix || k.starts_with(&p))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| "default".into())
    }
}

/// The settings a run of `workflow` (through `launch_plan`, if any) in a project and domain
/// gets: every attributes level, then the launch plan's own, then the request's.
pub async fn effective_attributes(
    store: &TenantStore<'_>,
    project: &str,
    domain: &str,
    workflow: &str,
    launch_plan: Option<(&LaunchPlanSpec, &str)>,
    request: Option<&Attributes>,
) -> Result<Effective, LaunchError> {
    let levels = store.attributes_for(project, domain, workflow, launch_plan.map(|(s, _)| s.name.as_str())).await?;
    let mut layers: Vec<(String, &Attributes)> = levels.iter().map(|(scope, a)| (scope.source(), a)).collect();
    if let Some((spec, version)) = launch_plan {
        if let Some(a) = &spec.attributes {
            layers.push((format!("launch_plan {}@{version}", spec.name), a));
        }
    }
    if let Some(r) = request {
        layers.push(("request".to_string(), r));
    }
    Ok(tf_model::attributes::merge(layers))
}

/// Why a launch was refused: the offending field and what was expected.
#[derive(Debug, Clone, PartialEq)]
pub enum LaunchError {
    Invalid {
        field: String,
        message: String,
    },
    NotFound(String),
    /// The execution name is taken.
    Conflict(String),
    /// Refused by a policy: the launch plan's concurrency (`skip`), or the tenant's stored-bytes quota.
    Refused(String),
    Store(String),
}

impl From<tf_store::Error> for LaunchError {
    fn from(e: tf_store::Error) -> Self {
        LaunchError::Store(e.to_string())
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> LaunchError {
    LaunchError::Invalid { field: field.into(), message: message.into() }
}

/// What to run.
#[derive(Debug, Clone)]
pub enum Target {
    LaunchPlan { name: String, version: Option<String> },
    Workflow { name: String, version: Option<String> },
}

/// A request to launch, already authorised.
#[derive(Debug, Clone)]
pub struct Launch {
    pub key: ExecutionKey,
    pub target: Target,
    pub inputs: Map<String, Value>,
    pub created_by: String,
    pub max_parallelism: Option<u32>,
    /// Labels for the execution, over those of every attributes level.
    pub labels: BTreeMap<String, String>,
    pub relaunch_of: Option<String>,
    /// The schedule tick that launched it.
    pub scheduled_at: Option<i64>,
    /// Admission priority inside the tenant (-100..=100, default 0).
    pub priority: i64,
}

/// Parses a registered document's canonical JSON (which carries `kind`) into its spec type.
pub fn spec_of<T: serde::de::DeserializeOwned>(spec: &Value) -> Result<T, String> {
    let mut v = spec.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("kind");
    }
    serde_json::from_value(v).map_err(|e| format!("stored document does not parse: {e}"))
}

/// A launch plan version as registered, with the workflow version it runs.
pub struct ResolvedPlan {
    pub spec: LaunchPlanSpec,
    pub version: String,
    pub workflow: EntityRef,
}

/// Finds a launch plan (the latest version unless one is given).
pub async fn resolve_launch_plan(
    store: &TenantStore<'_>,
    project: &str,
    domain: &str,
    name: &str,
    version: Option<&str>,
) -> Result<ResolvedPlan, LaunchError> {
    let e = store
        .get_entity(project, domain, EntityKind::LaunchPlan, name, version)
        .await?
        .ok_or_else(|| LaunchError::NotFound(format!("launch plan `{name}` not found in {project}/{domain}")))?;
    let spec: LaunchPlanSpec = spec_of(&e.spec).map_err(LaunchError::Store)?;
    let compiled: CompiledLaunchPlan = serde_json::from_value(e.compiled.clone().unwrap_or_default())
        .map_err(|e| LaunchError::Store(e.to_string()))?;
    Ok(ResolvedPlan { spec, version: e.version, workflow: compiled.workflow })
}

/// Resolves the target, merges and checks the inputs, and returns the execution to create.
pub async fn prepare(store: &TenantStore<'_>, l: &Launch) -> Result<NewExecution, LaunchError> {
    let (p, d) = (&l.key.project, &l.key.domain);
    let (lp, wf_ref) = match &l.target {
        Target::LaunchPlan { name, version } => {
            let r = resolve_launch_plan(store, p, d, name, version.as_deref()).await?;
            (Some((r.spec, r.version)), r.workflow)
        }
        Target::Workflow { name, version } => {
            let e = store
                .get_entity(p, d, EntityKind::Workflow, name, version.as_deref())
                .await?
                .ok_or_else(|| LaunchError::NotFound(format!("workflow `{name}` not found in {p}/{d}")))?;
            (None, EntityRef { name: e.name, version: e.version })
        }
    };
    let wf = store
        .get_entity(p, d, EntityKind::Workflow, &wf_ref.name, Some(&wf_ref.version))
        .await?
        .ok_or_else(|| LaunchError::Store(format!("workflow {}@{} is missing", wf_ref.name, wf_ref.version)))?;
    let interface: Interface =
        serde_json::from_value(wf.interface.clone()).map_err(|e| LaunchError::Store(e.to_string()))?;
    let compiled: CompiledWorkflow = serde_json::from_value(wf.compiled.clone().unwrap_or_default())
        .map_err(|e| LaunchError::Store(e.to_string()))?;

    let inputs = merge_inputs(&interface, lp.as_ref().map(|(s, _)| s), &l.inputs)?;
    let request = Attributes {
        max_parallelism: l.max_parallelism,
        labels: (!l.labels.is_empty()).then(|| l.labels.clone()),
        ..Attributes::default()
    };
    if let Some(v) = request.check("").0.into_iter().next() {
        return Err(invalid(v.field, v.message));
    }
    if !PRIORITIES.contains(&l.priority) {
        return Err(invalid("priority", format!("expected -100..=100, got {}", l.priority)));
    }
    let effective =
        effective_attributes(store, p, d, &wf_ref.name, lp.as_ref().map(|(s, v)| (s, v.as_str())), Some(&request))
            .await?;
    let config = RunConfig {
        effective,
        concurrency: lp.as_ref().and_then(|(s, _)| {
            s.concurrency.map(|c| Concurrency { launch_plan: s.name.clone(), max: c.max, policy: c.policy })
        }),
        scheduled_at: l.scheduled_at,
        priority: l.priority,
    };
    check_tasks(store, &l.key, &compiled, &config).await?;
    Ok(NewExecution {
        key: l.key.clone(),
        launch_plan: lp.map(|(s, v)| format!("{}@{v}", s.name)),
        workflow_name: wf_ref.name,
        workflow_version: wf_ref.version,
        inputs: Value::Object(inputs),
        nodes: compiled.nodes.iter().map(|n| n.id.clone()).collect(),
        created_by: l.created_by.clone(),
        relaunch_of: l.relaunch_of.clone(),
        max_parallelism: Some(i64::from(config.effective.max_parallelism())),
        config: Some(serde_json::to_value(&config).map_err(|e| LaunchError::Store(e.to_string()))?),
    })
}

/// Workflow defaults < launch-plan defaults < the request < launch-plan fixed inputs; every
/// value checked against the workflow's interface, every required input present.
pub fn merge_inputs(
    interface: &Interface,
    lp: Option<&LaunchPlanSpec>,
    given: &Map<String, Value>,
) -> Result<Map<String, Value>, LaunchError> {
    let mut out = Map::new();
    for (k, p) in &interface.inputs {
        if let Some(d) = &p.default {
            out.insert(k.clone(), d.clone());
        }
    }
    if let Some(lp) = lp {
        for (k, v) in &lp.default_inputs {
            out.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in given {
        if !interface.inputs.contains_key(k) {
            let known: Vec<&str> = interface.inputs.keys().map(String::as_str).collect();
            return Err(invalid(
                format!("inputs.{k}"),
                format!(
                    "not an input of the workflow (inputs: {})",
                    if known.is_empty() { "none".into() } else { known.join(", ") }
                ),
            ));
        }
        if let Some(lp) = lp {
            if lp.fixed_inputs.contains_key(k) {
                return Err(invalid(
                    format!("inputs.{k}"),
                    format!("fixed by launch plan `{}`; it cannot be overridden", lp.name),
                ));
            }
        }
        out.insert(k.clone(), v.clone());
    }
    if let Some(lp) = lp {
        for (k, v) in &lp.fixed_inputs {
            out.insert(k.clone(), v.clone());
        }
    }
    for (k, p) in &interface.inputs {
        match out.get(k) {
            None => return Err(invalid(format!("inputs.{k}"), format!("required ({})", p.ty))),
            Some(v) => p.ty.check_value(v).map_err(|e| invalid(format!("inputs.{k}"), e))?,
        }
    }
    Ok(out)
}

/// A task as the engine runs it.
#[derive(Debug)]
pub struct TaskRun {
    pub task: EntityRef,
    pub spec: TaskSpec,
    pub interface: Interface,
    /// Digest of the interface: part of the catalog key.
    pub interface_digest: String,
    pub limits: Limits,
    /// What an attempt holds of the tenant's quota.
    pub demand: Demand,
    pub network: bool,
    /// The cache version when caching is on.
    pub cache_version: Option<String>,
    /// The execution's attributes `env` under the task's own `container.env`.
    pub env: BTreeMap<String, String>,
    /// User and group ids inside the sandbox (the execution's security context).
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
}

impl TaskRun {
    fn new(task: EntityRef, spec: TaskSpec, interface: Interface, attrs: &Attributes) -> Result<TaskRun, String> {
        let spec = with_default_resources(spec, attrs.default_resources.as_ref());
        let mut env = attrs.env.clone().unwrap_or_default();
        env.extend(spec.container.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let sc = attrs.security_context.clone().unwrap_or_default();
        let r = &spec.resources;
        let mem = r.limits.memory.as_ref().or(r.requests.memory.as_ref());
        let cpu = r.limits.cpu.as_ref().or(r.requests.cpu.as_ref());
        let limits = Limits {
            memory_bytes: mem.map(tf_model::resources::parse_memory).transpose()?,
            cpu_millis: cpu.map(tf_model::resources::parse_cpu).transpose()?,
            pids: Some(DEFAULT_PIDS),
            timeout: spec
                .timeout
                .as_deref()
                .map(humantime::parse_duration)
                .transpose()
                .map_err(|e| e.to_string())?
                .or(Some(Duration::from_secs(7 * 24 * 3600))),
        };
        let interface_digest = tf_model::digest::digest(&serde_json::to_value(&interface).map_err(|e| e.to_string())?);
        Ok(TaskRun {
            demand: demand_of(&spec)?,
            network: spec.policy.as_ref().is_some_and(|p| p.network),
            cache_version: spec.cache.as_ref().filter(|c| c.enabled).map(|c| c.version.clone().unwrap_or_default()),
            env,
            run_as_user: sc.run_as_user,
            run_as_group: sc.run_as_group,
            task,
            spec,
            interface,
            interface_digest,
            limits,
        })
    }
}

/// An execution ready to drive: its DAG and each node's task (shared between nodes).
pub struct Loaded {
    pub workflow: CompiledWorkflow,
    pub tasks: Vec<Arc<TaskRun>>,
    pub config: RunConfig,
}

/// Loads the workflow and tasks of an execution.
pub async fn load(store: &TenantStore<'_>, e: &ExecutionRecord) -> Result<Loaded, String> {
    let (p, d) = (&e.project, &e.domain);
    let config = RunConfig::of(e);
    let wf = store
        .get_entity(p, d, EntityKind::Workflow, &e.workflow_name, Some(&e.workflow_version))
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("workflow {}@{} is missing", e.workflow_name, e.workflow_version))?;
    let workflow: CompiledWorkflow =
        serde_json::from_value(wf.compiled.unwrap_or_default()).map_err(|e| format!("compiled workflow: {e}"))?;
    let mut by_ref: HashMap<EntityRef, Arc<TaskRun>> = HashMap::new();
    let mut tasks = Vec::with_capacity(workflow.nodes.len());
    for n in &workflow.nodes {
        if let Some(t) = by_ref.get(&n.task) {
            tasks.push(t.clone());
            continue;
        }
        let t = store
            .get_entity(p, d, EntityKind::Task, &n.task.name, Some(&n.task.version))
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("task {}@{} is missing", n.task.name, n.task.version))?;
        let spec: TaskSpec = spec_of(&t.spec)?;
        let interface: Interface = serde_json::from_value(t.interface).map_err(|e| e.to_string())?;
        let run = Arc::new(TaskRun::new(n.task.clone(), spec, interface, &config.effective.attributes)?);
        by_ref.insert(n.task.clone(), run.clone());
        tasks.push(run);
    }
    Ok(Loaded { workflow, tasks, config })
}
