//! Execution attributes: settings an execution inherits from its project, project-domain,
//! workflow and launch plan — max parallelism, queue tags, cluster label, security context,
//! default and maximum task resources, environment and labels.
//!
//! Invariant: merging is field by field — every leaf (`security_context.run_as_user`,
//! `env.MODE`, `queue_tags` as a whole) comes from the most specific layer that sets it, and
//! every effective value names that layer. No IO: layers are plain data given by the caller.

use crate::resources::{parse_cpu, parse_memory};
use crate::spec::ResourceListSpec;
use crate::violation::Violations;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Nodes of one execution running at once when no layer says otherwise.
pub const DEFAULT_MAX_PARALLELISM: u32 = 25;
/// Bounds on what a layer may set.
pub const MAX_PARALLELISM_LIMIT: u32 = 10_000;
const MAX_TAGS: usize = 32;
const MAX_ENTRIES: usize = 100;
const MAX_VALUE_LEN: usize = 1024;

/// Settings at one level; every field optional (unset: inherited from a less specific level).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Attributes {
    /// Most nodes of one execution running at once (1–10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallelism: Option<u32>,
    /// Queue tags recorded on the execution (routing hints for executors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_tags: Option<Vec<String>>,
    /// The execution cluster label recorded on the execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_label: Option<String>,
    /// The user and group ids tasks run as inside their sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// Requests and limits for tasks that state none for a resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_resources: Option<ResourceListSpec>,
    /// The most a task may request or be limited to; a larger task is refused at launch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_resources: Option<ResourceListSpec>,
    /// Environment variables for every task (a task's own `container.env` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// Labels recorded on the execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<u32>,
}

/// Where attributes are set, least specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Project,
    ProjectDomain,
    Workflow,
    LaunchPlan,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Project, Level::ProjectDomain, Level::Workflow, Level::LaunchPlan];

    /// Stable name used in storage and in sources (`project_domain`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Project => "project",
            Level::ProjectDomain => "project_domain",
            Level::Workflow => "workflow",
            Level::LaunchPlan => "launch_plan",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// How an effective value names this level: `project_domain_attributes ml-alpha/development`.
    pub fn source(self, project: &str, domain: &str, name: &str) -> String {
        match self {
            Level::Project => format!("project_attributes {project}"),
            Level::ProjectDomain => format!("project_domain_attributes {project}/{domain}"),
            Level::Workflow => format!("workflow_attributes {project}/{domain}/{name}"),
            Level::LaunchPlan => format!("launch_plan_attributes {project}/{domain}/{name}"),
        }
    }
}

/// The merged settings and, for every leaf set, the layer it came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Effective {
    pub attributes: Attributes,
    /// Leaf path (`max_parallelism`, `security_context.run_as_user`, `env.MODE`) → source.
    pub sources: BTreeMap<String, String>,
}

impl Effective {
    pub fn max_parallelism(&self) -> u32 {
        self.attributes.max_parallelism.unwrap_or(DEFAULT_MAX_PARALLELISM)
    }
}

/// Leaves of a JSON object: objects are descended into, anything else (lists too) is a leaf.
fn leaves(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                leaves(&p, v, out);
            }
        }
        Value::Null => {}
        other => out.push((prefix.to_string(), other.clone())),
    }
}

/// Sets `path` (dotted; the first two segments at most are structure) in an object.
fn set_leaf(root: &mut Map<String, Value>, path: &str, v: Value) {
    match path.split_once('.') {
        None => drop(root.insert(path.to_string(), v)),
        Some((head, rest)) => {
            let child = root.entry(head.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = child {
                // Map keys (`env.A.B`) may contain dots: only the first segment is structure.
                m.insert(rest.to_string(), v);
            }
        }
    }
}

/// Merges layers given least specific first; the platform default fills `max_parallelism`.
pub fn merge<'a>(layers: impl IntoIterator<Item = (String, &'a Attributes)>) -> Effective {
    let mut merged: BTreeMap<String, (Value, String)> = BTreeMap::new();
    merged.insert("max_parallelism".into(), (Value::from(DEFAULT_MAX_PARALLELISM), "default".into()));
    for (source, a) in layers {
        let mut ls = Vec::new();
        leaves("", &serde_json::to_value(a).expect("attributes serialise"), &mut ls);
        for (path, v) in ls {
            merged.insert(path, (v, source.clone()));
        }
    }
    let mut root = Map::new();
    let mut sources = BTreeMap::new();
    for (path, (v, source)) in merged {
        set_leaf(&mut root, &path, v);
        sources.insert(path, source);
    }
    let attributes = serde_json::from_value(Value::Object(root)).expect("merged leaves of valid attributes");
    Effective { attributes, sources }
}

fn check_name(errs: &mut Violations, doc: &str, field: String, t: &str) {
    if t.is_empty() || t.len() > 63 || !t.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        errs.push(doc, field, format!("expected 1–63 letters, digits, `-`, `_` or `.`, got `{t}`"));
    }
}

fn check_name_list(errs: &mut Violations, doc: &str, field: &str, items: &[String]) {
    if items.len() > MAX_TAGS {
        errs.push(doc, field, format!("at most {MAX_TAGS} entries, got {}", items.len()));
    }
    for (i, t) in items.iter().enumerate() {
        check_name(errs, doc, format!("{field}[{i}]"), t);
    }
}

fn check_map(errs: &mut Violations, doc: &str, field: &str, m: &BTreeMap<String, String>, env: bool) {
    if m.len() > MAX_ENTRIES {
        errs.push(doc, field, format!("at most {MAX_ENTRIES} entries, got {}", m.len()));
    }
    for (k, v) in m {
        let key_ok = if env {
            k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        } else {
            !k.is_empty() && k.len() <= 63 && k.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        };
        if !key_ok {
            let want = if env {
                "a variable name ([A-Za-z_][A-Za-z0-9_]*)"
            } else {
                "1–63 letters, digits, `-`, `_`, `.` or `/`"
            };
            errs.push(doc, format!("{field}.{k}"), format!("expected {want}"));
        } else if env && k.starts_with("TENANTFLOW_") {
            errs.push(doc, format!("{field}.{k}"), "TENANTFLOW_* variables are set by the platform");
        }
        if v.len() > MAX_VALUE_LEN {
            errs.push(doc, format!("{field}.{k}"), format!("at most {MAX_VALUE_LEN} bytes"));
        }
    }
}

fn check_resources(errs: &mut Violations, doc: &str, field: &str, r: &ResourceListSpec) {
    if let Some(c) = &r.cpu {
        if let Err(e) = parse_cpu(c) {
            errs.push(doc, format!("{field}.cpu"), e);
        }
    }
    if let Some(m) = &r.memory {
        if let Err(e) = parse_memory(m) {
            errs.push(doc, format!("{field}.memory"), e);
        }
    }
}

impl Attributes {
    pub fn is_empty(&self) -> bool {
        self == &Attributes::default()
    }

    /// Everything wrong with these settings; fields are named under `doc`.
    pub fn check(&self, doc: &str) -> Violations {
        let mut errs = Violations::default();
        if let Some(p) = self.max_parallelism {
            if p == 0 || p > MAX_PARALLELISM_LIMIT {
                errs.push(doc, "max_parallelism", format!("expected 1..={MAX_PARALLELISM_LIMIT}, got {p}"));
            }
        }
        if let Some(t) = &self.queue_tags {
            check_name_list(&mut errs, doc, "queue_tags", t);
        }
        if let Some(c) = &self.cluster_label {
            check_name(&mut errs, doc, "cluster_label".into(), c);
        }
        if let Some(r) = &self.default_resources {
            check_resources(&mut errs, doc, "default_resources", r);
        }
        if let Some(r) = &self.max_resources {
            check_resources(&mut errs, doc, "max_resources", r);
        }
        if let Some(e) = &self.env {
            check_map(&mut errs, doc, "env", e, true);
        }
        if let Some(l) = &self.labels {
            check_map(&mut errs, doc, "labels", l, false);
        }
        errs
    }
}

/// One entry of the guide's `admin: projectDomainAttributes:` block, as Flyte writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FlyteDomainAttributes {
    #[serde(default)]
    execution_cluster_label: Option<FlyteValue>,
    #[serde(default)]
    execution_queue_attributes: Option<FlyteTags>,
    #[serde(default)]
    workflow_execution_config: Option<FlyteExecutionConfig>,
    #[serde(default)]
    task_resource_attributes: Option<FlyteTaskResources>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlyteValue {
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlyteTags {
    tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FlyteExecutionConfig {
    #[serde(default)]
    max_parallelism: Option<u32>,
    #[serde(default)]
    security_context: Option<FlyteSecurityContext>,
    #[serde(default)]
    envs: Option<FlyteKeyValues>,
    #[serde(default)]
    labels: Option<FlyteKeyValues>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FlyteSecurityContext {
    #[serde(default)]
    run_as_user: Option<u32>,
    #[serde(default)]
    run_as_group: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlyteKeyValues {
    values: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlyteTaskResources {
    #[serde(default)]
    defaults: Option<ResourceListSpec>,
    #[serde(default)]
    limits: Option<ResourceListSpec>,
}

/// Reads one project-domain entry of the guide's block (`executionClusterLabel`,
/// `executionQueueAttributes`, `workflowExecutionConfig`, `taskResourceAttributes`).
/// Errors are (field path inside the entry, message).
pub fn from_flyte(v: &Value) -> Result<Attributes, (String, String)> {
    let f: FlyteDomainAttributes =
        serde_path_to_error::deserialize(v.clone()).map_err(|e| (e.path().to_string(), e.into_inner().to_string()))?;
    let mut a = Attributes {
        cluster_label: f.execution_cluster_label.map(|c| c.value),
        queue_tags: f.execution_queue_attributes.map(|q| q.tags),
        ..Attributes::default()
    };
    if let Some(w) = f.workflow_execution_config {
        a.max_parallelism = w.max_parallelism;
        a.security_context =
            w.security_context.map(|s| SecurityContext { run_as_user: s.run_as_user, run_as_group: s.run_as_group });
        a.env = w.envs.map(|e| e.values);
        a.labels = w.labels.map(|l| l.values);
    }
    if let Some(r) = f.task_resource_attributes {
        a.default_resources = r.defaults;
        a.max_resources = r.limits;
    }
    Ok(a)
}

/// Where a field of [`Attributes`] is written in the guide's block: `max_parallelism` →
/// `workflowExecutionConfig.maxParallelism`, `queue_tags[0]` → `executionQueueAttributes.tags[0]`.
pub fn flyte_field(field: &str) -> String {
    const MAP: &[(&str, &str)] = &[
        ("max_parallelism", "workflowExecutionConfig.maxParallelism"),
        ("queue_tags", "executionQueueAttributes.tags"),
        ("cluster_label", "executionClusterLabel.value"),
        ("security_context.run_as_user", "workflowExecutionConfig.securityContext.runAsUser"),
        ("security_context.run_as_group", "workflowExecutionConfig.securityContext.runAsGroup"),
        ("env", "workflowExecutionConfig.envs.values"),
        ("labels", "workflowExecutionConfig.labels.values"),
        ("default_resources", "taskResourceAttributes.defaults"),
        ("max_resources", "taskResourceAttributes.limits"),
    ];
    for (ours, theirs) in MAP {
        if let Some(rest) = field.strip_prefix(ours) {
            if rest.is_empty() || rest.starts_with(['.', '[']) {
                return format!("{theirs}{rest}");
            }
        }
    }
    field.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(v: Value) -> Attributes {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn most_specific_layer_wins_field_by_field() {
        let project = attrs(json!({"max_parallelism": 10, "env": {"A": "p", "B": "p"}, "queue_tags": ["x", "y"],
                                     "security_context": {"run_as_user": 1000, "run_as_group": 1000}}));
        let pd = attrs(json!({"max_parallelism": 5, "env": {"B": "pd"}, "security_context": {"run_as_user": 2000}}));
        let wf = attrs(json!({"queue_tags": ["z"], "labels": {"team": "alpha"}}));
        let e = merge([("P".to_string(), &project), ("PD".to_string(), &pd), ("WF".to_string(), &wf)]);
        assert_eq!(e.attributes.max_parallelism, Some(5));
        assert_eq!(e.sources["max_parallelism"], "PD");
        assert_eq!(e.attributes.env.as_ref().unwrap()["A"], "p");
        assert_eq!(e.attributes.env.as_ref().unwrap()["B"], "pd");
        assert_eq!(e.sources["env.A"], "P");
        assert_eq!(e.sources["env.B"], "PD");
        assert_eq!(e.attributes.queue_tags, Some(vec!["z".to_string()]), "lists are replaced, not merged");
        let sc = e.attributes.security_context.unwrap();
        assert_eq!((sc.run_as_user, sc.run_as_group), (Some(2000), Some(1000)));
        assert_eq!(e.sources["security_context.run_as_group"], "P");
        assert_eq!(e.sources["labels.team"], "WF");
    }

    #[test]
    fn defaults_fill_what_no_layer_sets() {
        let e = merge(std::iter::empty());
        assert_eq!(e.max_parallelism(), DEFAULT_MAX_PARALLELISM);
        assert_eq!(e.sources["max_parallelism"], "default");
        assert_eq!(e.sources.len(), 1);
    }

    #[test]
    fn map_keys_with_dots_survive_the_merge() {
        let a = attrs(json!({"labels": {"app.kubernetes.io/name": "x"}}));
        let e = merge([("L".to_string(), &a)]);
        assert_eq!(e.attributes.labels.unwrap()["app.kubernetes.io/name"], "x");
    }

    #[test]
    fn check_names_each_bad_field() {
        let a = attrs(
            json!({"max_parallelism": 0, "queue_tags": ["ok", "no spaces"], "env": {"TENANTFLOW_X": "1", "1A": "b"},
                             "default_resources": {"cpu": "lots"}, "labels": {"": "x"}}),
        );
        let fields: Vec<String> = a.check("attributes").0.into_iter().map(|v| v.field).collect();
        for f in ["max_parallelism", "queue_tags[1]", "env.TENANTFLOW_X", "env.1A", "default_resources.cpu", "labels."]
        {
            assert!(fields.iter().any(|x| x == f), "{f} not in {fields:?}");
        }
        assert!(Attributes::default().check("a").is_empty());
    }

    #[test]
    fn reads_the_guides_block_as_written() {
        let v = json!({
            "executionClusterLabel": {"value": "team-alpha-cluster"},
            "executionQueueAttributes": {"tags": ["team-alpha", "development"]},
            "workflowExecutionConfig": {"maxParallelism": 10, "securityContext": {"runAsUser": 1000, "runAsGroup": 1000}}
        });
        let a = from_flyte(&v).unwrap();
        assert_eq!(a.max_parallelism, Some(10));
        assert_eq!(a.cluster_label.as_deref(), Some("team-alpha-cluster"));
        assert_eq!(a.queue_tags.as_ref().unwrap().len(), 2);
        assert_eq!(a.security_context.unwrap().run_as_group, Some(1000));
        let err = from_flyte(&json!({"workflowExecutionConfig": {"maxParalelism": 3}})).unwrap_err();
        assert_eq!(err.0, "workflowExecutionConfig.maxParalelism");
        assert!(err.1.contains("maxParalelism"), "{}", err.1);
    }
}
