//! Compiling a bundle: every document checked, every reference resolved, every workflow turned
//! into a DAG with typed bindings — or a list of violations and nothing else.
//!
//! References to entities outside the bundle are answered by a [`Lookup`], so this stays pure:
//! the caller fetches what [`external_refs`] names and hands it in.

use crate::binding::{parse_string, Expr, Parsed, Part, Ref};
use crate::bundle::{Bundle, Document};
use crate::digest::digest;
use crate::names::{check_id, check_version};
use crate::resources::{parse_cpu, parse_memory};
use crate::spec::{EntityKind, InterfaceSpec, ItemSpec, LaunchPlanSpec, ParamSpec, Spec, TaskSpec, WorkflowSpec};
use crate::types::Type;
use crate::violation::{join, Violations};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

pub const MAX_RETRIES: u32 = 10;
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// One parameter of a checked interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    #[serde(rename = "type")]
    pub ty: Type,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    pub inputs: BTreeMap<String, Param>,
    pub outputs: BTreeMap<String, Param>,
}

/// Name and version of a registered entity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntityRef {
    pub name: String,
    pub version: String,
}

/// What a [`Lookup`] knows about a registered entity.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub version: String,
    pub interface: Interface,
}

/// Answers references to entities outside the bundle: `version: None` means the latest.
pub trait Lookup {
    fn find(&self, kind: EntityKind, name: &str, version: Option<&str>) -> Option<Resolved>;
}

/// A lookup that knows nothing: every reference must be satisfied inside the bundle.
pub struct NoLookup;
impl Lookup for NoLookup {
    fn find(&self, _: EntityKind, _: &str, _: Option<&str>) -> Option<Resolved> {
        None
    }
}

impl Lookup for HashMap<(EntityKind, String, Option<String>), Resolved> {
    fn find(&self, kind: EntityKind, name: &str, version: Option<&str>) -> Option<Resolved> {
        self.get(&(kind, name.to_string(), version.map(str::to_string))).cloned()
    }
}

/// A compiled workflow node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompiledNode {
    pub id: String,
    pub task: EntityRef,
    pub inputs: BTreeMap<String, Expr>,
    /// Indices of the nodes that must finish first (data or `after`), sorted, unique.
    pub upstream: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompiledWorkflow {
    pub nodes: Vec<CompiledNode>,
    pub outputs: BTreeMap<String, Expr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompiledLaunchPlan {
    pub workflow: EntityRef,
}

/// A checked entity ready to store.
#[derive(Debug, Clone)]
pub struct CompiledEntity {
    pub kind: EntityKind,
    pub name: String,
    pub version: String,
    /// The document in canonical form, with `kind`.
    pub spec: Value,
    /// Digest of `spec`: same digest = same content.
    pub digest: String,
    pub interface: Interface,
    /// Workflow DAG or launch-plan resolution; `None` for tasks.
    pub compiled: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct CompiledBundle {
    pub version: String,
    pub entities: Vec<CompiledEntity>,
}

/// `name` or `name@version`.
pub fn split_ref(s: &str) -> (&str, Option<&str>) {
    match s.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (s, None),
    }
}

/// References that the bundle itself does not satisfy, for the caller to look up.
pub fn external_refs(bundle: &Bundle, version: &str) -> Vec<(EntityKind, String, Option<String>)> {
    let local: HashSet<(EntityKind, &str)> = bundle.documents.iter().map(|d| (d.spec.kind(), d.spec.name())).collect();
    let has = |kind: EntityKind, name: &str| local.contains(&(kind, name));
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut want = |kind: EntityKind, r: &str| {
        let (name, v) = split_ref(r);
        let internal = has(kind, name) && v.is_none_or(|v| v == version);
        if !internal && seen.insert((kind, r.to_string())) {
            out.push((kind, name.to_string(), v.map(str::to_string)));
        }
    };
    for d in &bundle.documents {
        match &d.spec {
            Spec::Workflow(w) => w.nodes.iter().for_each(|n| want(EntityKind::Task, &n.task)),
            Spec::LaunchPlan(l) => want(EntityKind::Workflow, &l.workflow),
            Spec::Task(_) => {}
        }
    }
    out
}

/// Checks and compiles every document of `bundle` as version `version`.
pub fn compile_bundle(bundle: &Bundle, version: &str, lookup: &dyn Lookup) -> Result<CompiledBundle, Violations> {
    let mut errs = Violations::default();
    if let Err(e) = check_version(version) {
        errs.push("", "version", e);
        return Err(errs);
    }
    // Names: valid and unique per kind.
    let mut seen: HashMap<(EntityKind, &str), usize> = HashMap::new();
    for d in &bundle.documents {
        let label = d.label();
        if let Err(e) = check_id(d.spec.name()) {
            errs.push(&label, "name", e);
        }
        if let Some(first) = seen.insert((d.spec.kind(), d.spec.name()), d.index) {
            errs.push(&label, "name", format!("duplicate: document[{first}] has the same kind and name"));
        }
    }
    // Interfaces of the bundle's own tasks and workflows, for references between documents.
    let mut local: HashMap<(EntityKind, &str), Interface> = HashMap::new();
    for d in &bundle.documents {
        let label = d.label();
        let iface = match &d.spec {
            Spec::Task(t) => check_interface(&t.interface, &label, &mut errs),
            Spec::Workflow(w) => check_interface(&w.interface, &label, &mut errs),
            Spec::LaunchPlan(_) => Interface::default(),
        };
        local.insert((d.spec.kind(), d.spec.name()), iface);
    }
    let resolver = Resolver { local: &local, lookup, version };
    let mut entities = Vec::with_capacity(bundle.documents.len());
    for d in &bundle.documents {
        let label = d.label();
        let before = errs.0.len();
        let (interface, compiled) = match &d.spec {
            Spec::Task(t) => {
                check_task(t, &label, &mut errs);
                (local[&(EntityKind::Task, t.name.as_str())].clone(), None)
            }
            Spec::Workflow(w) => {
                let iface = local[&(EntityKind::Workflow, w.name.as_str())].clone();
                let c = compile_workflow(w, &iface, &resolver, &label, &mut errs);
                (iface, c.map(|c| serde_json::to_value(c).expect("serialises")))
            }
            Spec::LaunchPlan(l) => {
                let c = compile_launch_plan(l, &resolver, &label, &mut errs);
                match c {
                    Some((iface, c)) => (iface, Some(serde_json::to_value(c).expect("serialises"))),
                    None => (Interface::default(), None),
                }
            }
        };
        if errs.0.len() == before {
            entities.push(entity(d, version, interface, compiled));
        }
    }
    errs.into_result(CompiledBundle { version: version.to_string(), entities })
}

fn entity(d: &Document, version: &str, interface: Interface, compiled: Option<Value>) -> CompiledEntity {
    let spec = d.spec.to_value();
    CompiledEntity {
        kind: d.spec.kind(),
        name: d.spec.name().to_string(),
        version: version.to_string(),
        digest: digest(&spec),
        spec,
        interface,
        compiled,
    }
}

struct Resolver<'a> {
    local: &'a HashMap<(EntityKind, &'a str), Interface>,
    lookup: &'a dyn Lookup,
    version: &'a str,
}

impl Resolver<'_> {
    fn resolve(&self, kind: EntityKind, r: &str) -> Result<(EntityRef, Interface), String> {
        let (name, v) = split_ref(r);
        if let Err(e) = check_id(name) {
            return Err(format!("bad {} name: {e}", kind.as_str().to_lowercase()));
        }
        if let Some(v) = v {
            check_version(v).map_err(|e| format!("bad version: {e}"))?;
        }
        if v.is_none_or(|v| v == self.version) {
            if let Some(i) = self.local.get(&(kind, name)) {
                return Ok((EntityRef { name: name.into(), version: self.version.into() }, i.clone()));
            }
        }
        match self.lookup.find(kind, name, v) {
            Some(res) => Ok((EntityRef { name: name.into(), version: res.version }, res.interface)),
            None => Err(match v {
                Some(v) => format!("unknown {} `{name}` version `{v}`", kind.as_str()),
                None => format!(
                    "unknown {} `{name}`: not in this bundle and not registered in this project and domain",
                    kind.as_str()
                ),
            }),
        }
    }
}

fn item_type(i: &ItemSpec) -> Result<Type, String> {
    let inner = i.items.as_deref().map(item_type).transpose()?;
    Type::parse(&i.ty, inner)
}

/// Checks an interface; returns what it could make of it even when there are errors.
pub fn check_interface(spec: &InterfaceSpec, label: &str, errs: &mut Violations) -> Interface {
    let mut out = Interface::default();
    for (side, params, target) in
        [("inputs", &spec.inputs, &mut out.inputs), ("outputs", &spec.outputs, &mut out.outputs)]
    {
        for (name, p) in params {
            let path = format!("interface.{side}.{name}");
            if let Err(e) = check_param_name(name) {
                errs.push(label, &path, e);
                continue;
            }
            match param_type(p) {
                Ok(ty) => {
                    if let Some(d) = &p.default {
                        if side == "outputs" {
                            errs.push(label, join(&path, "default"), "outputs cannot have defaults");
                        } else if let Err(e) = ty.check_value(d) {
                            errs.push(label, join(&path, "default"), e);
                        }
                    }
                    target.insert(name.clone(), Param { ty, default: p.default.clone() });
                }
                Err(e) => errs.push(label, join(&path, "type"), e),
            }
        }
    }
    out
}

/// Interface of a stored entity, whose spec was checked when it was registered.
pub fn interface_of(spec: &Spec) -> Interface {
    let mut scratch = Violations::default();
    match spec {
        Spec::Task(t) => check_interface(&t.interface, "", &mut scratch),
        Spec::Workflow(w) => check_interface(&w.interface, "", &mut scratch),
        Spec::LaunchPlan(_) => Interface::default(),
    }
}

fn param_type(p: &ParamSpec) -> Result<Type, String> {
    let items = p.items.as_deref().map(item_type).transpose()?;
    Type::parse(&p.ty, items)
}

fn check_param_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` is not a valid parameter name; expected letters, digits and `_`, starting with a letter"))
    }
}

fn check_task(t: &TaskSpec, label: &str, errs: &mut Violations) {
    if t.container.command.is_empty() {
        errs.push(label, "container.command", "must hold at least the program to run");
    } else if t.container.command[0].trim().is_empty() {
        errs.push(label, "container.command[0]", "the program must not be empty");
    }
    for k in t.container.env.keys() {
        let ok = !k.is_empty() && !k.contains('=') && !k.starts_with("TENANTFLOW_");
        if !ok {
            errs.push(
                label,
                format!("container.env.{k}"),
                "not a valid variable name (no `=`, and TENANTFLOW_* is reserved)",
            );
        }
    }
    let mut q = BTreeMap::new();
    for (side, list) in [("requests", &t.resources.requests), ("limits", &t.resources.limits)] {
        if let Some(v) = &list.cpu {
            match parse_cpu(v) {
                Ok(x) => drop(q.insert((side, "cpu"), x)),
                Err(e) => errs.push(label, format!("resources.{side}.cpu"), e),
            }
        }
        if let Some(v) = &list.memory {
            match parse_memory(v) {
                Ok(x) => drop(q.insert((side, "memory"), x)),
                Err(e) => errs.push(label, format!("resources.{side}.memory"), e),
            }
        }
    }
    for res in ["cpu", "memory"] {
        if let (Some(r), Some(l)) = (q.get(&("requests", res)), q.get(&("limits", res))) {
            if r > l {
                errs.push(
                    label,
                    format!("resources.requests.{res}"),
                    format!("request exceeds the limit ({res} request > limit)"),
                );
            }
        }
    }
    if t.retries > MAX_RETRIES {
        errs.push(label, "retries", format!("at most {MAX_RETRIES}, got {}", t.retries));
    }
    if let Some(s) = &t.timeout {
        match humantime::parse_duration(s) {
            Ok(d) if d.is_zero() => errs.push(label, "timeout", "must be longer than zero"),
            Ok(d) if d > MAX_TIMEOUT => errs.push(label, "timeout", "at most 7 days"),
            Ok(_) => {}
            Err(_) => errs.push(label, "timeout", format!("expected a duration such as `30s` or `10m`, got `{s}`")),
        }
    }
    if let Some(c) = &t.cache {
        if c.enabled && c.version.as_deref().is_none_or(|v| v.trim().is_empty()) {
            errs.push(label, "cache.version", "required when the cache is enabled (bump it to invalidate)");
        }
    }
}

/// What a binding may read: the workflow's inputs and the other nodes' outputs.
/// Node id → (index, resolved task name and interface).
type NodeIndex<'a> = HashMap<&'a str, (u32, Option<(String, Interface)>)>;

struct Scope<'a> {
    inputs: &'a BTreeMap<String, Param>,
    nodes: &'a NodeIndex<'a>,
    node_names: &'a str,
}

impl Scope<'_> {
    /// Type of a reference, and the node it reads from (if any).
    fn type_of(&self, r: &Ref) -> Result<(Type, Option<u32>), String> {
        match r {
            Ref::Input(name) => match self.inputs.get(name) {
                Some(p) => Ok((p.ty.clone(), None)),
                None => Err(format!("{r}: the workflow has no input `{name}` (inputs: {})", keys(self.inputs))),
            },
            Ref::NodeOutput { node, output } => match self.nodes.get(node.as_str()) {
                None => Err(format!("{r}: unknown node `{node}` (nodes: {})", self.node_names)),
                Some((_, None)) => Err(format!("{r}: node `{node}` has an unresolved task")),
                Some((idx, Some((task, iface)))) => match iface.outputs.get(output) {
                    Some(p) => Ok((p.ty.clone(), Some(*idx))),
                    None => Err(format!(
                        "{r}: task `{task}` of node `{node}` has no output `{output}` (outputs: {})",
                        keys(&iface.outputs)
                    )),
                },
            },
        }
    }

    /// Compiles `v` as a binding for a parameter of type `target`, collecting upstream nodes.
    fn bind(&self, v: &Value, target: &Type, deps: &mut Vec<u32>) -> Result<Expr, (String, String)> {
        let here = |m: String| (String::new(), m);
        if let Value::String(s) = v {
            match parse_string(s).map_err(here)? {
                Parsed::Text => {}
                Parsed::Ref(r) => {
                    let (ty, node) = self.type_of(&r).map_err(here)?;
                    if !target.accepts(&ty) {
                        return Err(here(format!("type mismatch: {r} is {ty}, expected {target}")));
                    }
                    deps.extend(node);
                    return Ok(Expr::Ref(r));
                }
                Parsed::Template(parts) => {
                    if !target.accepts(&Type::String) {
                        return Err(here(format!("a string with placeholders is a string, expected {target}")));
                    }
                    for p in &parts {
                        if let Part::Ref(r) = p {
                            let (ty, node) = self.type_of(r).map_err(here)?;
                            if !ty.is_scalar() {
                                return Err(here(format!(
                                    "{r} is {ty}; only scalar values can be placed inside a string"
                                )));
                            }
                            deps.extend(node);
                        }
                    }
                    return Ok(Expr::Template(parts));
                }
            }
        }
        if let (Type::List(item), Value::Array(items)) = (target, v) {
            let mut out = Vec::with_capacity(items.len());
            for (i, x) in items.iter().enumerate() {
                out.push(self.bind(x, item, deps).map_err(|(p, m)| (join(&format!("[{i}]"), &p), m))?);
            }
            return Ok(if out.iter().all(|e| matches!(e, Expr::Literal(_))) {
                Expr::Literal(v.clone())
            } else {
                Expr::List(out)
            });
        }
        target.check_value(v).map_err(here)?;
        Ok(Expr::Literal(v.clone()))
    }
}

fn keys<V>(m: &BTreeMap<String, V>) -> String {
    if m.is_empty() {
        "none".into()
    } else {
        m.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
    }
}

fn compile_workflow(
    w: &WorkflowSpec,
    iface: &Interface,
    resolver: &Resolver,
    label: &str,
    errs: &mut Violations,
) -> Option<CompiledWorkflow> {
    let before = errs.0.len();
    if w.nodes.is_empty() {
        errs.push(label, "nodes", "a workflow needs at least one node");
        return None;
    }
    // Pass 1: ids and tasks.
    let mut nodes: NodeIndex = HashMap::with_capacity(w.nodes.len());
    let mut refs: Vec<Option<EntityRef>> = Vec::with_capacity(w.nodes.len());
    for (i, n) in w.nodes.iter().enumerate() {
        let path = format!("nodes[{i}]");
        if let Err(e) = check_id(&n.id) {
            errs.push(label, join(&path, "id"), e);
        }
        if n.id == "inputs" {
            errs.push(label, join(&path, "id"), "`inputs` is reserved for the workflow's inputs");
        }
        let resolved = match resolver.resolve(EntityKind::Task, &n.task) {
            Ok((r, i)) => {
                refs.push(Some(r.clone()));
                Some((r.name, i))
            }
            Err(e) => {
                errs.push(label, join(&path, "task"), e);
                refs.push(None);
                None
            }
        };
        if nodes.insert(n.id.as_str(), (i as u32, resolved)).is_some() {
            errs.push(label, join(&path, "id"), format!("duplicate node id `{}`", n.id));
        }
    }
    let node_names = if w.nodes.len() <= 20 {
        w.nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>().join(", ")
    } else {
        format!("{} nodes", w.nodes.len())
    };
    let scope = Scope { inputs: &iface.inputs, nodes: &nodes, node_names: &node_names };
    // Pass 2: bindings.
    let mut compiled = Vec::with_capacity(w.nodes.len());
    for (i, n) in w.nodes.iter().enumerate() {
        let path = format!("nodes[{i}]");
        let mut deps = Vec::new();
        let mut inputs = BTreeMap::new();
        if let Some((task, ti)) = &nodes.get(n.id.as_str()).and_then(|x| x.1.clone()) {
            for (k, v) in &n.inputs {
                let p = join(&join(&path, "inputs"), k);
                match ti.inputs.get(k) {
                    None => {
                        errs.push(label, &p, format!("task `{task}` has no input `{k}` (inputs: {})", keys(&ti.inputs)))
                    }
                    Some(param) => match scope.bind(v, &param.ty, &mut deps) {
                        Ok(e) => drop(inputs.insert(k.clone(), e)),
                        Err((sub, m)) => errs.push(label, join(&p, &sub), m),
                    },
                }
            }
            for (k, param) in &ti.inputs {
                if param.default.is_none() && !n.inputs.contains_key(k) {
                    errs.push(
                        label,
                        join(&path, "inputs"),
                        format!("required input `{k}` of task `{task}` is not bound"),
                    );
                }
            }
        }
        for (j, a) in n.after.iter().enumerate() {
            match nodes.get(a.as_str()) {
                Some((idx, _)) => deps.push(*idx),
                None => {
                    errs.push(label, format!("{path}.after[{j}]"), format!("unknown node `{a}` (nodes: {node_names})"))
                }
            }
        }
        deps.sort_unstable();
        deps.dedup();
        if deps.contains(&(i as u32)) {
            errs.push(label, &path, format!("node `{}` depends on itself", n.id));
        }
        if let Some(task) = refs[i].clone() {
            compiled.push(CompiledNode { id: n.id.clone(), task, inputs, upstream: deps });
        }
    }
    // Workflow outputs.
    let mut outputs = BTreeMap::new();
    for (k, v) in &w.outputs {
        let p = join("outputs", k);
        match iface.outputs.get(k) {
            None => {
                errs.push(label, &p, format!("the interface has no output `{k}` (outputs: {})", keys(&iface.outputs)))
            }
            Some(param) => match scope.bind(v, &param.ty, &mut Vec::new()) {
                Ok(e) => drop(outputs.insert(k.clone(), e)),
                Err((sub, m)) => errs.push(label, join(&p, &sub), m),
            },
        }
    }
    for k in iface.outputs.keys() {
        if !w.outputs.contains_key(k) {
            errs.push(label, "outputs", format!("interface output `{k}` is not bound"));
        }
    }
    if errs.0.len() != before {
        return None;
    }
    if let Some(cycle) = find_cycle(&compiled) {
        errs.push(label, "nodes", format!("cycle: {}", cycle.join(" → ")));
        return None;
    }
    Some(CompiledWorkflow { nodes: compiled, outputs })
}

/// Kahn's algorithm; on failure, walks upstream edges from a stuck node to name one cycle.
fn find_cycle(nodes: &[CompiledNode]) -> Option<Vec<String>> {
    let n = nodes.len();
    let mut indeg: Vec<usize> = nodes.iter().map(|x| x.upstream.len()).collect();
    let mut down: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (i, x) in nodes.iter().enumerate() {
        for &u in &x.upstream {
            down[u as usize].push(i as u32);
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut done = 0;
    while let Some(i) = ready.pop() {
        done += 1;
        for &d in &down[i] {
            indeg[d as usize] -= 1;
            if indeg[d as usize] == 0 {
                ready.push(d as usize);
            }
        }
    }
    if done == n {
        return None;
    }
    let start = (0..n).find(|&i| indeg[i] > 0)?;
    let mut pos: HashMap<usize, usize> = HashMap::new();
    let mut path = Vec::new();
    let mut cur = start;
    loop {
        if let Some(&p) = pos.get(&cur) {
            let mut cyc: Vec<String> = path[p..].iter().map(|&i: &usize| nodes[i].id.clone()).collect();
            cyc.reverse();
            cyc.push(cyc[0].clone());
            return Some(cyc);
        }
        pos.insert(cur, path.len());
        path.push(cur);
        cur = nodes[cur].upstream.iter().map(|&u| u as usize).find(|&u| indeg[u] > 0)?;
    }
}

fn compile_launch_plan(
    l: &LaunchPlanSpec,
    resolver: &Resolver,
    label: &str,
    errs: &mut Violations,
) -> Option<(Interface, CompiledLaunchPlan)> {
    let (wref, wi) = match resolver.resolve(EntityKind::Workflow, &l.workflow) {
        Ok(x) => x,
        Err(e) => {
            errs.push(label, "workflow", e);
            return None;
        }
    };
    let before = errs.0.len();
    for (field, map) in [("default_inputs", &l.default_inputs), ("fixed_inputs", &l.fixed_inputs)] {
        for (k, v) in map {
            let p = join(field, k);
            match wi.inputs.get(k) {
                None => errs.push(
                    label,
                    &p,
                    format!("workflow `{}` has no input `{k}` (inputs: {})", wref.name, keys(&wi.inputs)),
                ),
                Some(param) => {
                    if let Err(e) = param.ty.check_value(v) {
                        errs.push(label, &p, e);
                    }
                }
            }
        }
    }
    for k in l.fixed_inputs.keys() {
        if l.default_inputs.contains_key(k) {
            errs.push(label, join("default_inputs", k), "an input is either default or fixed, not both");
        }
    }
    if let Some(s) = &l.schedule {
        if let Err((field, e)) = crate::schedule::Schedule::parse(s) {
            errs.push(label, field, e);
        }
        for (k, p) in &wi.inputs {
            if p.default.is_none() && !l.default_inputs.contains_key(k) && !l.fixed_inputs.contains_key(k) {
                errs.push(
                    label,
                    "schedule",
                    format!("a scheduled launch plan must supply required input `{k}` (as a default or fixed input)"),
                );
            }
        }
    }
    if let Some(a) = &l.attributes {
        for v in a.check(label).0 {
            errs.push(label, join("attributes", &v.field), v.message);
        }
    }
    if let Some(c) = &l.concurrency {
        if c.max == 0 || c.max > 10_000 {
            errs.push(label, "concurrency.max", format!("expected 1..=10000, got {}", c.max));
        }
    }
    if errs.0.len() != before {
        return None;
    }
    // The launch plan's own interface: the workflow's, with its defaults applied and fixed inputs removed.
    let mut iface = wi.clone();
    for (k, v) in &l.default_inputs {
        if let Some(p) = iface.inputs.get_mut(k) {
            p.default = Some(v.clone());
        }
    }
    for k in l.fixed_inputs.keys() {
        iface.inputs.remove(k);
    }
    Some((iface, CompiledLaunchPlan { workflow: wref }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::parse_bundle;

    const NOOP: &str = "kind: Task\nname: noop\ninterface: {inputs: {x: {type: integer, default: 0}}, outputs: {x: {type: integer}}}\ncontainer: {command: [\"true\"]}\n";

    fn check(yaml: &str) -> Result<CompiledBundle, Violations> {
        compile_bundle(&parse_bundle(yaml).unwrap(), "v1", &NoLookup)
    }

    fn workflow(b: &CompiledBundle, i: usize) -> CompiledWorkflow {
        serde_json::from_value(b.entities[i].compiled.clone().unwrap()).unwrap()
    }

    #[test]
    fn wide_fan_out_compiles_in_linear_time() {
        let n = 10_000;
        let mut y =
            format!("{NOOP}---\nkind: Workflow\nname: fan\ninterface: {{outputs: {{n: {{type: integer}}}}}}\nnodes:\n");
        for i in 0..n {
            y.push_str(&format!("  - {{id: leaf{i}, task: noop}}\n"));
        }
        y.push_str("  - id: join\n    task: noop\n    after: [");
        y.push_str(&(0..n).map(|i| format!("leaf{i}")).collect::<Vec<_>>().join(", "));
        y.push_str("]\noutputs: {n: \"{{ join.outputs.x }}\"}\n");
        let started = std::time::Instant::now();
        let b = check(&y).unwrap();
        let wf = workflow(&b, 1);
        assert_eq!(wf.nodes.len(), n + 1);
        assert_eq!(wf.nodes[n].upstream.len(), n);
        // Generous bound: quadratic behaviour would take minutes here.
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn cycles_are_named() {
        let y = format!(
            "{NOOP}---\nkind: Workflow\nname: w\nnodes:\n  - {{id: a, task: noop, after: [c]}}\n  - {{id: b, task: noop, after: [a]}}\n  - {{id: c, task: noop, after: [b]}}\n"
        );
        let e = check(&y).unwrap_err();
        assert_eq!(e.0[0].field, "nodes");
        assert!(e.0[0].message.starts_with("cycle: "), "{e}");
        for n in ["a", "b", "c"] {
            assert!(e.0[0].message.contains(n), "{e}");
        }
    }

    #[test]
    fn lists_of_bindings_and_templates() {
        let y = format!(
            "{NOOP}---\nkind: Task\nname: sum\ninterface: {{inputs: {{xs: {{type: list<integer>}}, title: {{type: string}}}}}}\ncontainer: {{command: [sum]}}\n---\nkind: Workflow\nname: w\ninterface: {{inputs: {{d: {{type: datetime}}}}}}\nnodes:\n  - {{id: a, task: noop}}\n  - {{id: b, task: noop}}\n  - {{id: s, task: sum, inputs: {{xs: [\"{{{{ a.outputs.x }}}}\", 5, \"{{{{ b.outputs.x }}}}\"], title: \"day {{{{ inputs.d }}}}\"}}}}\n"
        );
        let b = check(&y).unwrap();
        let wf = workflow(&b, 2);
        assert_eq!(wf.nodes[2].upstream, vec![0, 1]);
        assert!(matches!(wf.nodes[2].inputs["xs"], Expr::List(_)));
        assert!(matches!(wf.nodes[2].inputs["title"], Expr::Template(_)));
    }

    #[test]
    fn same_content_same_digest() {
        let a = check(NOOP).unwrap();
        let reordered = "container: {command: [\"true\"]}\nname: noop\nkind: Task\ninterface: {outputs: {x: {type: integer}}, inputs: {x: {default: 0, type: integer}}}\nretries: 0\n";
        let b = check(reordered).unwrap();
        assert_eq!(a.entities[0].digest, b.entities[0].digest);
    }
}
