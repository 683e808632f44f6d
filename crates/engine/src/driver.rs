//! The driver: one task that owns every running execution's state and is fed events —
//! submissions, terminations, loaded executions, finished attempts. It asks the pure state
//! machine (`tf_model::execution`) what to do, records each decision through the journal and
//! spawns attempts.
//!
//! Invariants: only this task touches execution state (no locks); records of one execution
//! are journalled in decision order; an execution is marked finished only after every attempt
//! it started has reported, so no attempt is left `RUNNING` under a finished execution; two
//! identical cacheable attempts in flight run once — the others wait for its outputs.

use crate::attempt::{self, Ctx, Job, Report};
use crate::plan::{self, Loaded, TaskRun, DEFAULT_MAX_PARALLELISM};
use crate::scheduler::{Demand, Quota, Scheduler};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tf_model::execution::{Action, AttemptOutcome, ExecutionPhase, ExecutionState, NodePhase, NodeState};
use tf_model::spec::ConcurrencyPolicy;
use tf_store::{
    AttemptEnd, AttemptRecord, CatalogKey, ExecutionKey, ExecutionOp, ExecutionRecord, NodeRecord, NodeUpdate,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

pub enum Event {
    Submit {
        tenant: String,
        key: ExecutionKey,
    },
    Terminate {
        tenant: String,
        key: ExecutionKey,
        reason: String,
    },
    Loaded {
        tenant: String,
        key: ExecutionKey,
        result: Result<Option<Box<Ready>>, String>,
    },
    Reported {
        run: u64,
        node: u32,
        attempt: u32,
        report: Report,
    },
    /// An attempt is ready to run and asks for admission; `grant` fires when it may start.
    Admit {
        run: u64,
        node: u32,
        attempt: u32,
        grant: oneshot::Sender<()>,
    },
    /// A tenant's quota or weight changed (or is learnt at start-up).
    Quota {
        tenant: String,
        quota: Quota,
    },
    /// Every tenant's running and waiting work, and the slots.
    Load {
        reply: oneshot::Sender<crate::EngineLoad>,
    },
    /// What a tenant uses now.
    Usage {
        tenant: String,
        reply: oneshot::Sender<crate::TenantUsage>,
    },
    Shutdown(oneshot::Sender<()>),
}

/// An attempt waiting for admission.
struct Ticket {
    run: u64,
    node: u32,
    attempt: u32,
    grant: oneshot::Sender<()>,
}

type AttemptId = (u64, u32, u32);

/// A loaded execution held back by its tenant's running-executions quota, with a termination
/// that arrived meanwhile.
type Parked = (ExecutionKey, Box<Ready>, Option<String>);

/// An execution read back from the store, ready to drive.
pub struct Ready {
    record: ExecutionRecord,
    loaded: Loaded,
    nodes: Vec<NodeRecord>,
    attempts: Vec<AttemptRecord>,
}

type Id = (String, ExecutionKey);

/// A launch plan's concurrency group: tenant, project, domain and plan name (any version).
type LaunchPlanKey = (String, String, String, String);

fn launch_plan_key(tenant: &str, key: &ExecutionKey, c: &plan::Concurrency) -> LaunchPlanKey {
    (tenant.to_string(), key.project.clone(), key.domain.clone(), c.launch_plan.clone())
}

struct Run {
    tenant: String,
    key: ExecutionKey,
    user: String,
    state: ExecutionState,
    tasks: Vec<Arc<TaskRun>>,
    kills: HashMap<u32, watch::Sender<bool>>,
    /// Catalog entry each cacheable running node is computing.
    cache_of: HashMap<u32, (String, CatalogKey)>,
    /// Spawned attempt jobs that have not reported.
    outstanding: u32,
    finish: Option<(ExecutionPhase, Option<Value>, Option<String>)>,
    /// The launch-plan concurrency place it holds until it closes.
    launch_plan: Option<LaunchPlanKey>,
    /// Admission priority of its attempts inside the tenant.
    priority: i64,
}

impl Run {
    /// The catalog entry an attempt of `node` with these inputs computes, if its task caches.
    fn catalog_key(&self, node: u32, inputs: &Value) -> Option<CatalogKey> {
        let task = &self.tasks[node as usize];
        Some(CatalogKey {
            project: self.key.project.clone(),
            domain: self.key.domain.clone(),
            task_name: task.task.name.clone(),
            cache_version: task.cache_version.clone()?,
            interface_digest: task.interface_digest.clone(),
            inputs_hash: tf_model::digest::digest(inputs),
        })
    }
}

pub struct Driver {
    ctx: Arc<Ctx>,
    rx: mpsc::UnboundedReceiver<Event>,
    tx: mpsc::UnboundedSender<Event>,
    runs: HashMap<u64, Run>,
    by_key: HashMap<Id, u64>,
    /// Executions being loaded, with a termination that arrived meanwhile.
    loading: HashMap<Id, Option<String>>,
    /// Cacheable attempts in flight, by catalog id: who waits for their outputs.
    inflight: HashMap<String, Vec<(u64, u32, u32)>>,
    next: u64,
    jobs: JoinSet<()>,
    /// Who runs next on the executor, within tenants' quotas, fairly across tenants.
    scheduler: Scheduler,
    tickets: HashMap<u64, Ticket>,
    ticket_of: HashMap<AttemptId, u64>,
    next_ticket: u64,
    /// Admitted attempts and what they hold until they report.
    granted: HashMap<AttemptId, (String, Demand)>,
    /// Executions running per tenant, and those held back by the running-executions quota.
    active: HashMap<String, u64>,
    parked: HashMap<String, VecDeque<Parked>>,
    /// Executions holding a place of their launch plan's concurrency, and those queued for one.
    lp_active: HashMap<LaunchPlanKey, u32>,
    lp_parked: HashMap<LaunchPlanKey, VecDeque<Parked>>,
}

fn node_phase(p: NodePhase) -> &'static str {
    match p {
        NodePhase::Waiting => "WAITING",
        NodePhase::Queued => "QUEUED",
        NodePhase::Running => "RUNNING",
        NodePhase::Succeeded => "SUCCEEDED",
        NodePhase::Failed => "FAILED",
        NodePhase::TimedOut => "TIMED_OUT",
        NodePhase::Skipped => "SKIPPED",
        NodePhase::Aborted => "ABORTED",
    }
}

fn execution_phase(p: ExecutionPhase) -> &'static str {
    match p {
        ExecutionPhase::Queued => "QUEUED",
        ExecutionPhase::Running => "RUNNING",
        ExecutionPhase::Succeeded => "SUCCEEDED",
        ExecutionPhase::Failed => "FAILED",
        ExecutionPhase::Aborted => "ABORTED",
        ExecutionPhase::TimedOut => "TIMED_OUT",
    }
}

/// Delay before a retry: 100 ms doubling per failure, at most 5 s.
fn backoff(n: &NodeState) -> Duration {
    let failures = n.user_failures + n.system_failures;
    if failures == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(100u64.saturating_mul(1 << (failures - 1).min(6))).min(Duration::from_secs(5))
}

fn cache_id(tenant: &str, k: &CatalogKey) -> String {
    [tenant, &k.project, &k.domain, &k.task_name, &k.cache_version, &k.interface_digest, &k.inputs_hash].join("\u{0}")
}

impl Driver {
    pub fn new(
        ctx: Arc<Ctx>,
        tx: mpsc::UnboundedSender<Event>,
        rx: mpsc::UnboundedReceiver<Event>,
        slots: usize,
    ) -> Driver {
        Driver {
            ctx,
            rx,
            tx,
            runs: HashMap::new(),
            by_key: HashMap::new(),
            loading: HashMap::new(),
            inflight: HashMap::new(),
            next: 1,
            jobs: JoinSet::new(),
            scheduler: Scheduler::new(slots),
            tickets: HashMap::new(),
            ticket_of: HashMap::new(),
            next_ticket: 1,
            granted: HashMap::new(),
            active: HashMap::new(),
            parked: HashMap::new(),
            lp_active: HashMap::new(),
            lp_parked: HashMap::new(),
        }
    }

    pub async fn run(mut self) {
        loop {
            tokio::select! {
                ev = self.rx.recv() => match ev {
                    Some(Event::Shutdown(done)) => {
                        // Running attempts die with their jobs (their processes are killed);
                        // their records stay RUNNING and are retried after the restart.
                        self.jobs.shutdown().await;
                        self.ctx.journal.commit(Vec::new()).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(ev) => self.on_event(ev),
                    None => return,
                },
                Some(_) = self.jobs.join_next(), if !self.jobs.is_empty() => {}
            }
        }
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Submit { tenant, key } => self.submit(tenant, key, None),
            Event::Terminate { tenant, key, reason } => {
                let id = (tenant, key);
                let parked = self.parked.get_mut(&id.0).and_then(|q| {
                    let i = q.iter().position(|(k, _, _)| *k == id.1)?;
                    q.remove(i)
                });
                let lp_parked = if parked.is_some() {
                    None
                } else {
                    self.lp_parked.iter_mut().find_map(|(lp, q)| {
                        let i = q.iter().position(|(k, _, _)| *k == id.1)?;
                        Some((lp.clone(), q.remove(i)?))
                    })
                };
                if let Some((key, ready, _)) = parked {
                    // Held back by the quota: it ends at once, without running anything.
                    self.start_loaded(id.0, key, ready, Some(reason));
                } else if let Some((lp, (key, ready, _))) = lp_parked {
                    // Queued by its launch plan's concurrency: it ends at once too.
                    *self.lp_active.entry(lp).or_default() += 1;
                    self.start_loaded(id.0, key, ready, Some(reason));
                } else if let Some(&run) = self.by_key.get(&id) {
                    let actions = self.runs.get_mut(&run).map(|r| r.state.terminate(&reason)).unwrap_or_default();
                    self.act(run, actions);
                } else if let Some(pending) = self.loading.get_mut(&id) {
                    *pending = Some(reason);
                } else {
                    // Not running here: load it; the stored abort request finishes it.
                    self.submit(id.0, id.1, Some(reason));
                }
            }
            Event::Loaded { tenant, key, result } => self.loaded(tenant, key, result),
            Event::Reported { run, node, attempt, report } => {
                self.release((run, node, attempt));
                self.reported(run, node, attempt, report);
                self.dispatch();
            }
            Event::Admit { run, node, attempt, grant } => self.admit(run, node, attempt, grant),
            Event::Quota { tenant, quota } => {
                self.scheduler.set_quota(&tenant, quota);
                self.unpark(&tenant);
                self.dispatch();
            }
            Event::Load { reply } => {
                let (used, slots, busy) = self.scheduler.load();
                let tenants = busy
                    .into_iter()
                    .map(|(tenant, u, waiting, quota)| {
                        let executions = self.active.get(&tenant).copied().unwrap_or(0);
                        let usage = crate::TenantUsage {
                            cpu_millis: u.cpu_millis,
                            memory_bytes: u.memory_bytes,
                            tasks: u.tasks,
                            executions,
                            waiting,
                        };
                        (tenant, usage, quota)
                    })
                    .collect();
                let load = crate::EngineLoad {
                    slots: slots as usize,
                    slots_used: used as usize,
                    executions: self.runs.len(),
                    tenants,
                };
                let _ = reply.send(load);
            }
            Event::Usage { tenant, reply } => {
                let u = self.scheduler.usage(&tenant);
                let _ = reply.send(crate::TenantUsage {
                    cpu_millis: u.cpu_millis,
                    memory_bytes: u.memory_bytes,
                    tasks: u.tasks,
                    executions: self.active.get(&tenant).copied().unwrap_or(0),
                    waiting: self.scheduler.waiting_of(&tenant),
                });
            }
            Event::Shutdown(_) => unreachable!("handled by the loop"),
        }
    }

    fn submit(&mut self, tenant: String, key: ExecutionKey, abort: Option<String>) {
        let id = (tenant.clone(), key.clone());
        if self.by_key.contains_key(&id) || self.loading.contains_key(&id) {
            return;
        }
        self.loading.insert(id, abort);
        let (ctx, tx) = (self.ctx.clone(), self.tx.clone());
        self.jobs.spawn(async move {
            let result = load(&ctx, &tenant, &key).await;
            let _ = tx.send(Event::Loaded { tenant, key, result });
        });
    }

    fn loaded(&mut self, tenant: String, key: ExecutionKey, result: Result<Option<Box<Ready>>, String>) {
        let id = (tenant.clone(), key.clone());
        let pending_abort = self.loading.remove(&id).flatten();
        let ready = match result {
            Ok(Some(r)) => r,
            Ok(None) => return, // already finished, or gone
            Err(e) => {
                tracing::error!(tenant = %tenant, execution = %key.name, error = %e, "cannot load execution");
                let op = ExecutionOp::Phase {
                    key,
                    phase: "FAILED".into(),
                    outputs: None,
                    error: Some(format!("the execution cannot be run: {e}")),
                    terminal: true,
                };
                self.ctx.journal.send(vec![self.ctx.store.tenant(&tenant).op(op)]);
                return;
            }
        };
        let mut pending_abort = pending_abort;
        if let Some(c) = ready.loaded.config.concurrency.clone() {
            let lp = launch_plan_key(&tenant, &key, &c);
            let running = self.lp_active.get(&lp).copied().unwrap_or(0);
            let aborting = pending_abort.is_some() || ready.record.abort_requested.is_some();
            // A resumed execution (RUNNING before a restart) keeps its place.
            if !aborting && ready.record.phase == "QUEUED" && running >= c.max {
                match c.policy {
                    ConcurrencyPolicy::Queue => {
                        tracing::info!(tenant = %tenant, execution = %key.name, launch_plan = %c.launch_plan, "execution waits: launch plan concurrency reached");
                        self.lp_parked.entry(lp).or_default().push_back((key, ready, None));
                        return;
                    }
                    ConcurrencyPolicy::Skip => {
                        pending_abort = Some(format!(
                            "the concurrency policy: launch plan `{}` already has {running} of at most {} executions running (policy skip)",
                            c.launch_plan, c.max
                        ));
                    }
                }
            }
            *self.lp_active.entry(lp).or_default() += 1;
        }
        self.admit_execution(tenant, key, ready, pending_abort);
    }

    /// Starts an execution that holds its launch-plan place, unless its tenant is at its
    /// running-executions quota.
    fn admit_execution(&mut self, tenant: String, key: ExecutionKey, ready: Box<Ready>, pending_abort: Option<String>) {
        let quota = self.scheduler.quota(&tenant).running_executions;
        let active = self.active.get(&tenant).copied().unwrap_or(0);
        if pending_abort.is_none() && ready.record.abort_requested.is_none() && quota.is_some_and(|max| active >= max) {
            // Over the tenant's running-executions quota: it stays QUEUED until one ends.
            tracing::info!(tenant = %tenant, execution = %key.name, "execution waits: running-executions quota reached");
            self.parked.entry(tenant).or_default().push_back((key, ready, pending_abort));
            return;
        }
        self.start_loaded(tenant, key, ready, pending_abort);
    }

    /// Starts driving a loaded execution.
    fn start_loaded(&mut self, tenant: String, key: ExecutionKey, ready: Box<Ready>, pending_abort: Option<String>) {
        let id = (tenant.clone(), key.clone());
        *self.active.entry(tenant.clone()).or_default() += 1;
        let Ready { record, loaded, nodes, attempts } = *ready;
        let priority = loaded.config.priority;
        let launch_plan = loaded.config.concurrency.as_ref().map(|c| launch_plan_key(&tenant, &key, c));
        let ts = self.ctx.store.tenant(&tenant);
        let interfaces = loaded.tasks.iter().map(|t| (t.interface.clone(), t.spec.retries)).collect();
        let inputs = record.inputs.as_object().cloned().unwrap_or_default();
        let parallelism = record.max_parallelism.map(|p| p as u32).unwrap_or(DEFAULT_MAX_PARALLELISM);
        let mut state = ExecutionState::new(loaded.workflow, interfaces, inputs, parallelism);

        // Restore what an earlier run of this server did.
        let mut by_node: HashMap<&str, Vec<&AttemptRecord>> = HashMap::new();
        for a in &attempts {
            by_node.entry(a.node.as_str()).or_default().push(a);
        }
        let mut ops = Vec::new();
        let mut failed: Option<String> = None;
        for n in &nodes {
            let i = n.index as u32;
            let list = by_node.get(n.node.as_str()).map(Vec::as_slice).unwrap_or(&[]);
            let count = |kind: &str| list.iter().filter(|a| a.error_kind.as_deref() == Some(kind)).count() as u32;
            let (user, system) = (count("user"), count("system"));
            let attempts_made = list.iter().map(|a| a.attempt as u32).max().unwrap_or(0);
            let interrupted = list.iter().find(|a| a.phase == "RUNNING");
            match n.phase.as_str() {
                "SUCCEEDED" => state.restore(i, NodePhase::Succeeded, attempts_made, (user, system), n.outputs.clone()),
                "FAILED" | "TIMED_OUT" => {
                    failed.get_or_insert_with(|| {
                        format!("node `{}` failed: {}", n.node, n.error.clone().unwrap_or_default())
                    });
                }
                _ => {
                    if let Some(a) = interrupted {
                        let message = "interrupted: the server stopped while this attempt ran".to_string();
                        ops.push(ts.op(ExecutionOp::FinishAttempt {
                            key: key.clone(),
                            node: n.node.clone(),
                            attempt: a.attempt,
                            end: AttemptEnd {
                                phase: "FAILED".into(),
                                error_kind: Some("system".into()),
                                message: Some(message.clone()),
                                ..Default::default()
                            },
                            update: NodeUpdate { phase: "QUEUED".into(), error: Some(message), ..Default::default() },
                        }));
                        state.restore(i, NodePhase::Running, attempts_made, (user, system), None);
                    } else {
                        state.restore(i, NodePhase::Waiting, attempts_made, (user, system), None);
                    }
                }
            }
        }
        if record.phase == "QUEUED" {
            ops.push(ts.op(ExecutionOp::Phase {
                key: key.clone(),
                phase: "RUNNING".into(),
                outputs: None,
                error: None,
                terminal: false,
            }));
        }
        self.ctx.journal.send(ops);
        let run = self.next;
        self.next += 1;
        self.runs.insert(
            run,
            Run {
                tenant: tenant.clone(),
                key: key.clone(),
                user: record.created_by.clone(),
                state,
                tasks: loaded.tasks,
                kills: HashMap::new(),
                cache_of: HashMap::new(),
                outstanding: 0,
                finish: None,
                launch_plan,
                priority,
            },
        );
        self.by_key.insert(id, run);
        let r = self.runs.get_mut(&run).expect("just inserted");
        let actions = if let Some(e) = failed {
            r.state.fail(&e)
        } else if let Some(reason) = record.abort_requested.clone().or(pending_abort) {
            r.state.terminate(&format!("terminated by {reason}"))
        } else {
            r.state.start()
        };
        self.act(run, actions);
    }

    fn act(&mut self, run: u64, actions: Vec<Action>) {
        for a in actions {
            let Some(r) = self.runs.get_mut(&run) else { return };
            match a {
                Action::Start { node, attempt, inputs } => self.start(run, node, attempt, inputs),
                Action::Kill { node } => {
                    if let Some(k) = r.kills.get(&node) {
                        let _ = k.send(true);
                    }
                }
                Action::Finish { phase, outputs, error } => {
                    r.finish = Some((phase, outputs, error));
                }
            }
        }
        self.maybe_close(run);
    }

    fn start(&mut self, run: u64, node: u32, attempt: u32, inputs: Value) {
        let Some(r) = self.runs.get_mut(&run) else { return };
        let mut cache = None;
        if let Some(key) = r.catalog_key(node, &inputs) {
            let id = cache_id(&r.tenant, &key);
            if let Some(waiters) = self.inflight.get_mut(&id) {
                // An identical attempt is running: wait for its outputs instead of running again.
                waiters.push((run, node, attempt));
                return;
            }
            self.inflight.insert(id.clone(), Vec::new());
            r.cache_of.insert(node, (id, key.clone()));
            cache = Some(key);
        }
        self.spawn(run, node, attempt, inputs, cache);
    }

    /// Starts executions held back by the running-executions quota, while it allows.
    fn unpark(&mut self, tenant: &str) {
        loop {
            let max = self.scheduler.quota(tenant).running_executions;
            let active = self.active.get(tenant).copied().unwrap_or(0);
            if max.is_some_and(|m| active >= m) {
                return;
            }
            let Some((key, ready, abort)) = self.parked.get_mut(tenant).and_then(VecDeque::pop_front) else { return };
            self.start_loaded(tenant.to_string(), key, ready, abort);
        }
    }

    /// An attempt asks to run: it waits in the admission queue, and says why while it waits.
    fn admit(&mut self, run: u64, node: u32, attempt: u32, grant: oneshot::Sender<()>) {
        let Some(r) = self.runs.get(&run) else { return };
        let (tenant, demand, priority) = (r.tenant.clone(), r.tasks[node as usize].demand, r.priority);
        let (key, node_id) = (r.key.clone(), r.state.node_id(node).to_string());
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.tickets.insert(ticket, Ticket { run, node, attempt, grant });
        self.ticket_of.insert((run, node, attempt), ticket);
        self.scheduler.enqueue(&tenant, ticket, demand, priority);
        self.dispatch();
        if self.tickets.contains_key(&ticket) {
            let reason = self.scheduler.why_waiting(&tenant, demand);
            let op = ExecutionOp::NodeWaiting { key, node: node_id, reason };
            self.ctx.journal.send(vec![self.ctx.store.tenant(&tenant).op(op)]);
        }
    }

    /// Starts every attempt the scheduler admits now.
    fn dispatch(&mut self) {
        while let Some(g) = self.scheduler.next_grant() {
            let admitted = self.tickets.remove(&g.ticket).and_then(|t| {
                self.ticket_of.remove(&(t.run, t.node, t.attempt));
                t.grant.send(()).is_ok().then_some((t.run, t.node, t.attempt))
            });
            match admitted {
                Some(id) => drop(self.granted.insert(id, (g.tenant, g.demand))),
                // It stopped waiting (terminated) just before: the capacity is free again.
                None => self.scheduler.release(&g.tenant, g.demand),
            }
        }
    }

    /// An attempt reported: what it held is free, or it leaves the admission queue.
    fn release(&mut self, id: AttemptId) {
        if let Some((tenant, demand)) = self.granted.remove(&id) {
            self.scheduler.release(&tenant, demand);
        } else if let Some(ticket) = self.ticket_of.remove(&id) {
            self.tickets.remove(&ticket);
            self.scheduler.cancel(ticket);
        }
    }

    fn spawn(&mut self, run: u64, node: u32, attempt: u32, inputs: Value, cache: Option<CatalogKey>) {
        let Some(r) = self.runs.get_mut(&run) else { return };
        let (kill, rx) = watch::channel(false);
        r.kills.insert(node, kill);
        r.outstanding += 1;
        let job = Job {
            run,
            node_index: node,
            admission: self.tx.clone(),
            tenant: r.tenant.clone(),
            key: r.key.clone(),
            node: r.state.node_id(node).to_string(),
            attempt,
            user: r.user.clone(),
            task: r.tasks[node as usize].clone(),
            inputs,
            cache,
            backoff: backoff(&r.state.nodes()[node as usize]),
            kill: rx,
        };
        let (ctx, tx) = (self.ctx.clone(), self.tx.clone());
        self.jobs.spawn(async move {
            let report = attempt::run(ctx, job).await;
            let _ = tx.send(Event::Reported { run, node, attempt, report });
        });
    }

    fn reported(&mut self, run: u64, node: u32, attempt: u32, report: Report) {
        let Some(r) = self.runs.get_mut(&run) else { return };
        r.outstanding -= 1;
        r.kills.remove(&node);
        let cache = r.cache_of.remove(&node);
        let node_id = r.state.node_id(node).to_string();
        let ts = self.ctx.store.tenant(&r.tenant);
        let mut ops = Vec::new();
        let mut actions = Vec::new();
        let mut succeeded: Option<Value> = None;
        match report {
            Report::CacheHit(outputs) => {
                actions = r.state.on_attempt(node, AttemptOutcome::Succeeded(outputs));
                let n = &r.state.nodes()[node as usize];
                succeeded = n.outputs.clone().filter(|_| n.phase == NodePhase::Succeeded);
                ops.push(ts.op(ExecutionOp::Node {
                    key: r.key.clone(),
                    node: node_id,
                    update: node_update(n, Some("HIT")),
                }));
            }
            Report::NotStarted => {
                if !r.state.phase().is_terminal() {
                    actions =
                        r.state.on_attempt(node, AttemptOutcome::SystemError("the attempt could not start".into()));
                }
            }
            Report::Ran { outcome, mut end } => {
                if let Some(o) = outcome.filter(|_| !r.state.phase().is_terminal()) {
                    actions = r.state.on_attempt(node, o);
                }
                let n = &r.state.nodes()[node as usize];
                if n.phase == NodePhase::Succeeded {
                    succeeded = n.outputs.clone();
                } else if end.phase == "SUCCEEDED" {
                    // The process succeeded but its outputs do not match the interface.
                    end.phase = "FAILED".into();
                    end.error_kind = Some("user".into());
                    end.message = n.error.clone();
                }
                let status = match (&r.tasks[node as usize].cache_version, &succeeded) {
                    (None, _) => Some("DISABLED"),
                    (Some(_), Some(_)) => Some("MISS"),
                    (Some(_), None) => None,
                };
                ops.push(ts.op(ExecutionOp::FinishAttempt {
                    key: r.key.clone(),
                    node: node_id.clone(),
                    attempt: attempt as i64,
                    end,
                    update: node_update(n, status),
                }));
                if let (Some((_, ck)), Some(out)) = (&cache, &succeeded) {
                    ops.push(ts.op(ExecutionOp::CatalogPut {
                        key: ck.clone(),
                        outputs: out.clone(),
                        execution: r.key.name.clone(),
                        node: node_id,
                    }));
                }
            }
        }
        self.ctx.journal.send(ops);
        if let Some((id, _)) = cache {
            self.resolve_waiters(id, succeeded);
        }
        self.act(run, actions);
    }

    /// The attempt computing a catalog entry ended: its waiters reuse the outputs, or (if it
    /// failed) the first of them runs the task itself.
    fn resolve_waiters(&mut self, id: String, outputs: Option<Value>) {
        let Some(waiters) = self.inflight.remove(&id) else { return };
        let live: Vec<(u64, u32, u32)> = waiters
            .into_iter()
            .filter(|(run, node, _)| {
                self.runs.get(run).is_some_and(|r| r.state.nodes()[*node as usize].phase == NodePhase::Running)
            })
            .collect();
        match outputs {
            Some(out) => {
                for (run, node, attempt) in live {
                    if let Some(r) = self.runs.get_mut(&run) {
                        // Delivered as if the waiter's own job reported a cache hit.
                        r.outstanding += 1;
                        self.reported(run, node, attempt, Report::CacheHit(out.clone()));
                    }
                }
            }
            None => {
                let mut rest = live.into_iter();
                if let Some((run, node, attempt)) = rest.next() {
                    self.inflight.insert(id.clone(), rest.collect());
                    if let Some(r) = self.runs.get_mut(&run) {
                        let inputs = r.state.node_inputs(node);
                        let key = r.catalog_key(node, &inputs);
                        if let Some(k) = &key {
                            r.cache_of.insert(node, (id, k.clone()));
                        }
                        self.spawn(run, node, attempt, inputs, key);
                    }
                }
            }
        }
    }

    /// Records the end of an execution once nothing of it is still running.
    fn maybe_close(&mut self, run: u64) {
        let Some(r) = self.runs.get(&run) else { return };
        if r.outstanding > 0 || r.finish.is_none() {
            return;
        }
        let r = self.runs.remove(&run).expect("present");
        self.by_key.remove(&(r.tenant.clone(), r.key.clone()));
        if let Some(n) = self.active.get_mut(&r.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.active.remove(&r.tenant);
            }
        }
        // The end is queued first, so what it frees is recorded as starting after it.
        let (phase, outputs, error) = r.finish.expect("checked");
        let op = ExecutionOp::Phase {
            key: r.key.clone(),
            phase: execution_phase(phase).into(),
            outputs,
            error,
            terminal: true,
        };
        let durable = self.ctx.journal.queue(vec![self.ctx.store.tenant(&r.tenant).op(op)]);
        let (finished, id) = (self.ctx.finished.clone(), (r.tenant.clone(), r.key.clone()));
        self.jobs.spawn(async move {
            // Waiters learn of the end once it is durable.
            if durable.await {
                let _ = finished.send(id);
            }
        });
        if let Some(lp) = &r.launch_plan {
            match self.lp_parked.get_mut(lp).and_then(VecDeque::pop_front) {
                // The next queued run of the plan takes over the place.
                Some((key, ready, abort)) => self.admit_execution(r.tenant.clone(), key, ready, abort),
                None => {
                    if let Some(n) = self.lp_active.get_mut(lp) {
                        *n = n.saturating_sub(1);
                        if *n == 0 {
                            self.lp_active.remove(lp);
                        }
                    }
                    self.lp_parked.remove(lp);
                }
            }
        }
        self.unpark(&r.tenant.clone());
        tracing::info!(tenant = %r.tenant, project = %r.key.project, domain = %r.key.domain, execution = %r.key.name, phase = execution_phase(phase), "execution finished");
    }
}

fn node_update(n: &NodeState, cache_status: Option<&str>) -> NodeUpdate {
    NodeUpdate {
        phase: node_phase(n.phase).into(),
        outputs: if n.phase == NodePhase::Succeeded { n.outputs.clone() } else { None },
        error: if n.phase == NodePhase::Succeeded { None } else { n.error.clone() },
        finished: n.phase.is_terminal(),
        cache_status: cache_status.map(str::to_string),
    }
}

async fn load(ctx: &Ctx, tenant: &str, key: &ExecutionKey) -> Result<Option<Box<Ready>>, String> {
    let ts = ctx.store.tenant(tenant);
    let Some(record) = ts.get_execution(key).await.map_err(|e| e.to_string())? else { return Ok(None) };
    if record.finished_at.is_some() {
        return Ok(None);
    }
    let loaded = plan::load(&ts, &record).await?;
    let nodes = ts.node_executions(key).await.map_err(|e| e.to_string())?;
    let attempts = ts.execution_attempts(key).await.map_err(|e| e.to_string())?;
    Ok(Some(Box::new(Ready { record, loaded, nodes, attempts })))
}
