//! Spec documents as users write them (YAML or JSON), one `kind` per document.
//!
//! These are the raw shapes; `compile` turns them into checked, typed entities. Unknown fields
//! are rejected so that a typo is an error rather than a silently ignored setting.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The three registrable kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum EntityKind {
    Task,
    Workflow,
    LaunchPlan,
}

impl EntityKind {
    pub const ALL: [EntityKind; 3] = [EntityKind::Task, EntityKind::Workflow, EntityKind::LaunchPlan];

    /// The kind as written in documents (`kind: LaunchPlan`).
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Task => "Task",
            EntityKind::Workflow => "Workflow",
            EntityKind::LaunchPlan => "LaunchPlan",
        }
    }

    /// The stable lower-case name used in storage and URLs (`launch_plan`).
    pub fn storage_name(self) -> &'static str {
        match self {
            EntityKind::Task => "task",
            EntityKind::Workflow => "workflow",
            EntityKind::LaunchPlan => "launch_plan",
        }
    }

    pub fn from_storage_name(s: &str) -> Option<EntityKind> {
        EntityKind::ALL.into_iter().find(|k| k.storage_name() == s)
    }

    pub fn from_kind(s: &str) -> Option<EntityKind> {
        EntityKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One parameter of an interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// `boolean`, `integer`, `float`, `string`, `datetime`, `duration`, `file`, `directory`,
    /// `json`, `list` (with `items`) or `list<T>`.
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Box<ItemSpec>>,
    /// Makes an input optional; its type must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The item type of a list parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemSpec {
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Box<ItemSpec>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InterfaceSpec {
    #[serde(default)]
    pub inputs: BTreeMap<String, ParamSpec>,
    #[serde(default)]
    pub outputs: BTreeMap<String, ParamSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    /// Image used where tasks run in containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// argv of the task process.
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// `cpu` as cores or millicores (`"500m"`, `2`), `memory` with unit (`"512Mi"`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceListSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourcesSpec {
    #[serde(default)]
    pub requests: ResourceListSpec,
    #[serde(default)]
    pub limits: ResourceListSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheSpec {
    #[serde(default)]
    pub enabled: bool,
    /// Bump to invalidate cached results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `kind: Task` — one unit of work, run as a process or container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub interface: InterfaceSpec,
    pub container: ContainerSpec,
    #[serde(default)]
    pub resources: ResourcesSpec,
    /// Retries on user error (0–10).
    #[serde(default)]
    pub retries: u32,
    /// Wall-clock limit per attempt, e.g. `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSpec>,
    /// What the task may do beyond its sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<TaskPolicy>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A task's sandbox policy: by default no network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskPolicy {
    /// Allow outbound network connections.
    #[serde(default)]
    pub network: bool,
}

/// One node of a workflow: a task invocation with bound inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub id: String,
    /// `name` (this bundle's task, else the latest registered version) or `name@version`.
    pub task: String,
    /// Literal values or bindings `{{ inputs.x }}` / `{{ node.outputs.y }}`.
    #[serde(default)]
    pub inputs: BTreeMap<String, Value>,
    /// Extra ordering: nodes that must succeed first even without a data dependency.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
}

/// `kind: Workflow` — a DAG of task nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub interface: InterfaceSpec,
    pub nodes: Vec<NodeSpec>,
    #[serde(default)]
    pub outputs: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Five-field cron expression, evaluated in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// Fixed rate such as `15m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
}

/// `kind: LaunchPlan` — a workflow with default/fixed inputs and an optional schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LaunchPlanSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `name` (this bundle's workflow, else the latest registered version) or `name@version`.
    pub workflow: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub default_inputs: BTreeMap<String, Value>,
    /// Inputs that a launch cannot override.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fixed_inputs: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Execution settings for runs of this plan: above every attributes level, below the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<crate::attributes::Attributes>,
    /// How many runs of this plan may be running at once, and what happens to one more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<ConcurrencySpec>,
}

/// At most `max` executions of a launch plan (any version) run at once in its project and
/// domain; one more is queued until one ends, or skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencySpec {
    pub max: u32,
    #[serde(default)]
    pub policy: ConcurrencyPolicy,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConcurrencyPolicy {
    /// Wait in `QUEUED` until a running one ends.
    #[default]
    Queue,
    /// Do not run: a manual launch is refused (409), a scheduled tick is skipped.
    Skip,
}

/// Any spec document.
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    Task(TaskSpec),
    Workflow(WorkflowSpec),
    LaunchPlan(LaunchPlanSpec),
}

impl Spec {
    pub fn kind(&self) -> EntityKind {
        match self {
            Spec::Task(_) => EntityKind::Task,
            Spec::Workflow(_) => EntityKind::Workflow,
            Spec::LaunchPlan(_) => EntityKind::LaunchPlan,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Spec::Task(t) => &t.name,
            Spec::Workflow(w) => &w.name,
            Spec::LaunchPlan(l) => &l.name,
        }
    }

    /// The document as JSON, with the `kind` tag, every field in canonical form.
    pub fn to_value(&self) -> Value {
        let mut v = match self {
            Spec::Task(t) => serde_json::to_value(t),
            Spec::Workflow(w) => serde_json::to_value(w),
            Spec::LaunchPlan(l) => serde_json::to_value(l),
        }
        .expect("spec types serialise");
        if let Value::Object(m) = &mut v {
            m.insert("kind".into(), Value::String(self.kind().as_str().into()));
        }
        v
    }
}
