//! The execution state machine: which nodes of a compiled workflow may start, with what
//! inputs, what a finished attempt means (retry, fail, continue), and when the execution ends.
//!
//! Invariant: no IO and no clock — the engine feeds events in and carries out the returned
//! [`Action`]s. Every event costs O(edges of the node), so a 10,000-node fan-out is linear.

use crate::binding::{Expr, Part, Ref};
use crate::compile::{CompiledWorkflow, Interface};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::VecDeque;

/// Retries granted for system errors (the platform's fault), per node, on top of `retries`.
pub const SYSTEM_RETRIES: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodePhase {
    /// Upstream nodes have not all succeeded yet.
    Waiting,
    /// Ready, waiting for a parallelism slot.
    Queued,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    /// Never ran: the execution ended first.
    Skipped,
    Aborted,
}

impl NodePhase {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            NodePhase::Succeeded | NodePhase::Failed | NodePhase::TimedOut | NodePhase::Skipped | NodePhase::Aborted
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionPhase {
    Queued,
    Running,
    Succeeded,
    Failed,
    Aborted,
    TimedOut,
}

impl ExecutionPhase {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ExecutionPhase::Succeeded | ExecutionPhase::Failed | ExecutionPhase::Aborted | ExecutionPhase::TimedOut
        )
    }
}

/// How one attempt ended, as the executor reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    Succeeded(Value),
    UserError(String),
    SystemError(String),
    TimedOut,
}

/// What the engine must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Run attempt `attempt` (from 1) of node `node` with these inputs.
    Start { node: u32, attempt: u32, inputs: Value },
    /// Kill the running attempt of `node`.
    Kill { node: u32 },
    /// The execution is over.
    Finish { phase: ExecutionPhase, outputs: Option<Value>, error: Option<String> },
}

#[derive(Debug, Clone)]
pub struct NodeState {
    pub phase: NodePhase,
    pub attempts: u32,
    pub user_failures: u32,
    pub system_failures: u32,
    pub outputs: Option<Value>,
    pub error: Option<String>,
    waiting_on: u32,
}

/// The state of one execution.
pub struct ExecutionState {
    wf: CompiledWorkflow,
    /// Resolved task interface and user retries of each node.
    tasks: Vec<(Interface, u32)>,
    inputs: Map<String, Value>,
    nodes: Vec<NodeState>,
    downstream: Vec<Vec<u32>>,
    queue: VecDeque<u32>,
    index: std::collections::HashMap<String, u32>,
    running: u32,
    max_parallelism: u32,
    phase: ExecutionPhase,
}

impl ExecutionState {
    /// `tasks[i]` is node i's task interface and `retries`; `max_parallelism` 0 means unbounded.
    pub fn new(
        wf: CompiledWorkflow,
        tasks: Vec<(Interface, u32)>,
        inputs: Map<String, Value>,
        max_parallelism: u32,
    ) -> Self {
        let n = wf.nodes.len();
        let mut downstream = vec![Vec::new(); n];
        let mut nodes = Vec::with_capacity(n);
        for (i, node) in wf.nodes.iter().enumerate() {
            for &u in &node.upstream {
                downstream[u as usize].push(i as u32);
            }
            nodes.push(NodeState {
                phase: NodePhase::Waiting,
                attempts: 0,
                user_failures: 0,
                system_failures: 0,
                outputs: None,
                error: None,
                waiting_on: node.upstream.len() as u32,
            });
        }
        ExecutionState {
            tasks,
            inputs,
            nodes,
            downstream,
            queue: VecDeque::new(),
            index: wf.nodes.iter().enumerate().map(|(i, n)| (n.id.clone(), i as u32)).collect(),
            running: 0,
            max_parallelism: if max_parallelism == 0 { u32::MAX } else { max_parallelism },
            phase: ExecutionPhase::Queued,
            wf,
        }
    }

    pub fn phase(&self) -> ExecutionPhase {
        self.phase
    }

    pub fn nodes(&self) -> &[NodeState] {
        &self.nodes
    }

    pub fn node_id(&self, i: u32) -> &str {
        &self.wf.nodes[i as usize].id
    }

    /// Begins the execution: starts every node without upstream, up to the parallelism.
    pub fn start(&mut self) -> Vec<Action> {
        if self.phase != ExecutionPhase::Queued {
            return vec![];
        }
        self.phase = ExecutionPhase::Running;
        for i in 0..self.nodes.len() {
            if self.nodes[i].waiting_on == 0 && self.nodes[i].phase == NodePhase::Waiting {
                self.nodes[i].phase = NodePhase::Queued;
                self.queue.push_back(i as u32);
            }
        }
        let mut actions = self.dispatch();
        self.maybe_finish(&mut actions);
        actions
    }

    /// Restores a node's progress after a restart (before `start`): a finished node keeps its
    /// result; failed attempts count against their budgets; a node whose attempt was
    /// interrupted counts that attempt as a system failure.
    pub fn restore(
        &mut self,
        node: u32,
        phase: NodePhase,
        attempts: u32,
        failures: (u32, u32),
        outputs: Option<Value>,
    ) {
        let i = node as usize;
        self.nodes[i].attempts = attempts;
        self.nodes[i].user_failures = failures.0;
        self.nodes[i].system_failures = failures.1;
        if phase == NodePhase::Succeeded {
            self.nodes[i].phase = NodePhase::Succeeded;
            self.nodes[i].outputs = outputs;
            for d in self.downstream[i].clone() {
                self.nodes[d as usize].waiting_on -= 1;
            }
        } else if phase == NodePhase::Running && attempts > 0 {
            self.nodes[i].system_failures += 1;
        }
    }

    /// An attempt of `node` ended.
    pub fn on_attempt(&mut self, node: u32, outcome: AttemptOutcome) -> Vec<Action> {
        let i = node as usize;
        let mut actions = Vec::new();
        if self.nodes[i].phase != NodePhase::Running || self.phase.is_terminal() {
            return actions; // late report after a kill, or a duplicate: ignored
        }
        self.running -= 1;
        let outcome = match outcome {
            AttemptOutcome::Succeeded(v) => match self.check_outputs(i, v) {
                Ok(v) => AttemptOutcome::Succeeded(v),
                Err(e) => AttemptOutcome::UserError(e),
            },
            o => o,
        };
        let retries = self.tasks[i].1;
        match outcome {
            AttemptOutcome::Succeeded(v) => {
                let n = &mut self.nodes[i];
                n.phase = NodePhase::Succeeded;
                n.outputs = Some(v);
                for d in self.downstream[i].clone() {
                    let dn = &mut self.nodes[d as usize];
                    dn.waiting_on -= 1;
                    if dn.waiting_on == 0 && dn.phase == NodePhase::Waiting {
                        dn.phase = NodePhase::Queued;
                        self.queue.push_back(d);
                    }
                }
            }
            AttemptOutcome::UserError(msg) => {
                let n = &mut self.nodes[i];
                n.user_failures += 1;
                n.error = Some(msg.clone());
                if n.user_failures <= retries {
                    n.phase = NodePhase::Queued;
                    self.queue.push_front(node);
                } else {
                    n.phase = NodePhase::Failed;
                    let err = format!("node `{}` failed after {} attempt(s): {msg}", self.wf.nodes[i].id, n.attempts);
                    return self.end(ExecutionPhase::Failed, Some(err));
                }
            }
            AttemptOutcome::TimedOut => {
                let n = &mut self.nodes[i];
                n.user_failures += 1;
                n.error = Some("timed out".into());
                if n.user_failures <= retries {
                    n.phase = NodePhase::Queued;
                    self.queue.push_front(node);
                } else {
                    n.phase = NodePhase::TimedOut;
                    let err = format!("node `{}` timed out ({} attempt(s))", self.wf.nodes[i].id, n.attempts);
                    return self.end(ExecutionPhase::TimedOut, Some(err));
                }
            }
            AttemptOutcome::SystemError(msg) => {
                let n = &mut self.nodes[i];
                n.system_failures += 1;
                n.error = Some(msg.clone());
                if n.system_failures <= SYSTEM_RETRIES {
                    n.phase = NodePhase::Queued;
                    self.queue.push_front(node);
                } else {
                    n.phase = NodePhase::Failed;
                    let err = format!("node `{}` could not be run: {msg}", self.wf.nodes[i].id);
                    return self.end(ExecutionPhase::Failed, Some(err));
                }
            }
        }
        actions.extend(self.dispatch());
        self.maybe_finish(&mut actions);
        actions
    }

    /// Stops the execution: running attempts are killed, the rest never starts.
    pub fn terminate(&mut self, reason: &str) -> Vec<Action> {
        if self.phase.is_terminal() {
            return vec![];
        }
        self.end(ExecutionPhase::Aborted, Some(reason.to_string()))
    }

    /// Ends the execution as failed (a node already failed before a restart): nothing more runs.
    pub fn fail(&mut self, error: &str) -> Vec<Action> {
        if self.phase.is_terminal() {
            return vec![];
        }
        self.end(ExecutionPhase::Failed, Some(error.to_string()))
    }

    fn end(&mut self, phase: ExecutionPhase, error: Option<String>) -> Vec<Action> {
        let mut actions = Vec::new();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            match n.phase {
                NodePhase::Running => {
                    n.phase = NodePhase::Aborted;
                    actions.push(Action::Kill { node: i as u32 });
                }
                NodePhase::Waiting | NodePhase::Queued => n.phase = NodePhase::Skipped,
                _ => {}
            }
        }
        self.queue.clear();
        self.running = 0;
        self.phase = phase;
        actions.push(Action::Finish { phase, outputs: None, error });
        actions
    }

    fn dispatch(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        while self.running < self.max_parallelism {
            let Some(node) = self.queue.pop_front() else { break };
            let i = node as usize;
            let inputs = self.node_inputs(node);
            let n = &mut self.nodes[i];
            n.phase = NodePhase::Running;
            n.attempts += 1;
            self.running += 1;
            out.push(Action::Start { node, attempt: n.attempts, inputs });
        }
        out
    }

    fn maybe_finish(&mut self, actions: &mut Vec<Action>) {
        if self.phase != ExecutionPhase::Running || self.running > 0 || !self.queue.is_empty() {
            return;
        }
        if self.nodes.iter().all(|n| n.phase == NodePhase::Succeeded) {
            let mut outputs = Map::new();
            for (k, e) in &self.wf.outputs {
                outputs.insert(k.clone(), self.eval(e));
            }
            self.phase = ExecutionPhase::Succeeded;
            actions.push(Action::Finish {
                phase: ExecutionPhase::Succeeded,
                outputs: Some(Value::Object(outputs)),
                error: None,
            });
        }
    }

    /// A node's task inputs: bound values, then interface defaults for what is unbound.
    pub fn node_inputs(&self, node: u32) -> Value {
        let i = node as usize;
        let mut m = Map::new();
        for (k, p) in &self.tasks[i].0.inputs {
            if let Some(d) = &p.default {
                m.insert(k.clone(), d.clone());
            }
        }
        for (k, e) in &self.wf.nodes[i].inputs {
            m.insert(k.clone(), self.eval(e));
        }
        Value::Object(m)
    }

    fn lookup(&self, r: &Ref) -> Value {
        match r {
            Ref::Input(name) => self.inputs.get(name).cloned().unwrap_or(Value::Null),
            Ref::NodeOutput { node, output } => self
                .index
                .get(node)
                .and_then(|&i| self.nodes[i as usize].outputs.as_ref())
                .and_then(|o| o.get(output))
                .cloned()
                .unwrap_or(Value::Null),
        }
    }

    /// Evaluates a binding against the workflow inputs and the outputs produced so far.
    pub fn eval(&self, e: &Expr) -> Value {
        match e {
            Expr::Literal(v) => v.clone(),
            Expr::Ref(r) => self.lookup(r),
            Expr::List(items) => Value::Array(items.iter().map(|x| self.eval(x)).collect()),
            Expr::Template(parts) => Value::String(
                parts
                    .iter()
                    .map(|p| match p {
                        Part::Text(t) => t.clone(),
                        Part::Ref(r) => match self.lookup(r) {
                            Value::String(s) => s,
                            other => other.to_string(),
                        },
                    })
                    .collect(),
            ),
        }
    }

    /// Outputs must be an object holding every declared output with the declared type.
    fn check_outputs(&self, i: usize, v: Value) -> Result<Value, String> {
        let Value::Object(m) = &v else { return Err("outputs must be a JSON object".into()) };
        for (k, p) in &self.tasks[i].0.outputs {
            match m.get(k) {
                None => return Err(format!("output `{k}` is missing from $TENANTFLOW_OUTPUTS")),
                Some(x) => p.ty.check_value(x).map_err(|e| format!("output `{k}`: {e}"))?,
            }
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{compile_bundle, interface_of, NoLookup};
    use crate::parse_bundle;
    use serde_json::json;

    fn state(yaml: &str, inputs: Value, parallelism: u32) -> ExecutionState {
        let bundle = parse_bundle(yaml).unwrap();
        let c = compile_bundle(&bundle, "v1", &NoLookup).unwrap();
        let wf_entity = c.entities.iter().find(|e| e.kind == crate::EntityKind::Workflow).unwrap();
        let wf: CompiledWorkflow = serde_json::from_value(wf_entity.compiled.clone().unwrap()).unwrap();
        let tasks = wf
            .nodes
            .iter()
            .map(|n| {
                let d = bundle.documents.iter().find(|d| d.spec.name() == n.task.name).unwrap();
                let retries = match &d.spec {
                    crate::Spec::Task(t) => t.retries,
                    _ => 0,
                };
                (interface_of(&d.spec), retries)
            })
            .collect();
        ExecutionState::new(wf, tasks, inputs.as_object().cloned().unwrap_or_default(), parallelism)
    }

    const ALPHA: &str = "kind: Task\nname: load\ninterface: {inputs: {path: {type: string}, limit: {type: integer, default: 100}}, outputs: {table: {type: file}, rows: {type: integer}}}\ncontainer: {command: [x]}\nretries: 1\n---\nkind: Task\nname: proc\ninterface: {inputs: {table: {type: file}, title: {type: string}}, outputs: {result: {type: file}}}\ncontainer: {command: [x]}\n---\nkind: Workflow\nname: wf\ninterface: {inputs: {p: {type: string}}, outputs: {result: {type: file}, rows: {type: integer}}}\nnodes:\n  - {id: load, task: load, inputs: {path: \"{{ inputs.p }}\"}}\n  - {id: proc, task: proc, inputs: {table: \"{{ load.outputs.table }}\", title: \"rows of {{ inputs.p }}\"}}\noutputs: {result: \"{{ proc.outputs.result }}\", rows: \"{{ load.outputs.rows }}\"}\n";

    #[test]
    fn runs_a_chain_with_inputs_defaults_and_outputs() {
        let mut s = state(ALPHA, json!({"p": "in.csv"}), 0);
        let a = s.start();
        assert_eq!(a, vec![Action::Start { node: 0, attempt: 1, inputs: json!({"path": "in.csv", "limit": 100}) }]);
        let a = s.on_attempt(0, AttemptOutcome::Succeeded(json!({"table": "t.json", "rows": 7})));
        assert_eq!(
            a,
            vec![Action::Start { node: 1, attempt: 1, inputs: json!({"table": "t.json", "title": "rows of in.csv"}) }]
        );
        let a = s.on_attempt(1, AttemptOutcome::Succeeded(json!({"result": "r.json"})));
        assert_eq!(
            a,
            vec![Action::Finish {
                phase: ExecutionPhase::Succeeded,
                outputs: Some(json!({"result": "r.json", "rows": 7})),
                error: None
            }]
        );
    }

    #[test]
    fn user_errors_retry_then_fail_with_the_message() {
        let mut s = state(ALPHA, json!({"p": "x"}), 0);
        s.start();
        let a = s.on_attempt(0, AttemptOutcome::UserError("exited with code 2: bad row".into()));
        assert_eq!(a, vec![Action::Start { node: 0, attempt: 2, inputs: json!({"path": "x", "limit": 100}) }]);
        // Missing outputs count as a user error too.
        let a = s.on_attempt(0, AttemptOutcome::Succeeded(json!({"table": "t"})));
        let Action::Finish { phase, error, .. } = &a[0] else { panic!("{a:?}") };
        assert_eq!(*phase, ExecutionPhase::Failed);
        assert!(error.as_deref().unwrap().contains("output `rows` is missing"), "{error:?}");
        assert_eq!(s.nodes()[1].phase, NodePhase::Skipped);
    }

    #[test]
    fn system_errors_have_their_own_budget_and_timeouts_end_timed_out() {
        let mut s = state(ALPHA, json!({"p": "x"}), 0);
        s.start();
        for attempt in 2..=4 {
            let a = s.on_attempt(0, AttemptOutcome::SystemError("sandbox failed".into()));
            assert!(matches!(a[0], Action::Start { attempt: at, .. } if at == attempt), "{a:?}");
        }
        let a = s.on_attempt(0, AttemptOutcome::TimedOut);
        assert!(matches!(a[0], Action::Start { attempt: 5, .. }), "user retry still available: {a:?}");
        let a = s.on_attempt(0, AttemptOutcome::TimedOut);
        assert!(matches!(&a[0], Action::Finish { phase: ExecutionPhase::TimedOut, .. }), "{a:?}");
    }

    #[test]
    fn parallelism_fan_out_and_terminate() {
        let n = 10_000;
        let mut y = String::from("kind: Task\nname: noop\ninterface: {outputs: {x: {type: integer}}}\ncontainer: {command: [x]}\n---\nkind: Task\nname: sum\ninterface: {inputs: {xs: {type: list<integer>}}, outputs: {x: {type: integer}}}\ncontainer: {command: [x]}\n---\nkind: Workflow\nname: fan\nnodes:\n");
        for i in 0..n {
            y.push_str(&format!("  - {{id: l{i}, task: noop}}\n"));
        }
        y.push_str("  - id: join\n    task: sum\n    inputs:\n      xs: [");
        y.push_str(&(0..n).map(|i| format!("\"{{{{ l{i}.outputs.x }}}}\"")).collect::<Vec<_>>().join(", "));
        y.push_str("]\n");
        let mut s = state(&y, json!({}), 10);
        let started = std::time::Instant::now();
        let mut pending: VecDeque<u32> = s
            .start()
            .into_iter()
            .map(|a| match a {
                Action::Start { node, .. } => node,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(pending.len(), 10, "at most max_parallelism at once");
        let mut finished = None;
        while let Some(node) = pending.pop_front() {
            for a in s.on_attempt(node, AttemptOutcome::Succeeded(json!({"x": 1}))) {
                match a {
                    Action::Start { node, inputs, .. } => {
                        if node == n as u32 {
                            assert_eq!(inputs["xs"].as_array().unwrap().len(), n);
                        }
                        pending.push_back(node);
                    }
                    Action::Finish { phase, .. } => finished = Some(phase),
                    Action::Kill { .. } => unreachable!(),
                }
            }
            assert!(s.running <= 10);
        }
        assert_eq!(finished, Some(ExecutionPhase::Succeeded));
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "linear, not quadratic");

        let mut s = state(ALPHA, json!({"p": "x"}), 0);
        s.start();
        let a = s.terminate("terminated by bob");
        assert_eq!(a[0], Action::Kill { node: 0 });
        assert!(matches!(&a[1], Action::Finish { phase: ExecutionPhase::Aborted, .. }));
        assert!(
            s.on_attempt(0, AttemptOutcome::Succeeded(json!({"table": "t", "rows": 1}))).is_empty(),
            "late reports are ignored"
        );
    }

    #[test]
    fn restore_resumes_after_a_crash() {
        let mut s = state(ALPHA, json!({"p": "x"}), 0);
        s.restore(0, NodePhase::Succeeded, 1, (0, 0), Some(json!({"table": "t", "rows": 3})));
        let a = s.start();
        assert_eq!(a, vec![Action::Start { node: 1, attempt: 1, inputs: json!({"table": "t", "title": "rows of x"}) }]);
        // An attempt that was running when the server died is retried as a new attempt.
        let mut s = state(ALPHA, json!({"p": "x"}), 0);
        s.restore(0, NodePhase::Running, 1, (0, 0), None);
        let a = s.start();
        assert!(matches!(a[0], Action::Start { node: 0, attempt: 2, .. }), "{a:?}");
        assert_eq!(s.nodes()[0].system_failures, 1);
        // Everything already done: the execution finishes at once.
        let mut s = state(ALPHA, json!({"p": "x"}), 0);
        s.restore(0, NodePhase::Succeeded, 1, (0, 0), Some(json!({"table": "t", "rows": 3})));
        s.restore(1, NodePhase::Succeeded, 1, (0, 0), Some(json!({"result": "r"})));
        assert!(matches!(&s.start()[..], [Action::Finish { phase: ExecutionPhase::Succeeded, .. }]));
    }
}
