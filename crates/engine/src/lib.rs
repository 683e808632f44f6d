//! The workflow engine: runs executions to their end, durably.
//!
//! `plan` turns a launch into a checked execution and loads what the engine runs; `driver` is
//! the component that owns every running execution and its loop; `attempt` runs one task
//! attempt through the local executor; `journal` is the one writer of execution records
//! (group commit); `blobs` is the per-tenant blob layout over `object_store`; `ticker` fires
//! the due ticks of scheduled launch plans.
//!
//! Invariant: every decision is journalled before anything it implies is started, so after a
//! crash the store holds a consistent prefix of the engine's history and [`Engine::start`]
//! resumes every unfinished execution from it — no finished attempt lost, none run twice.

mod attempt;
pub mod blobs;
mod driver;
mod journal;
pub mod metrics;
pub mod plan;
pub mod scheduler;
mod ticker;

pub use blobs::{BlobError, Blobs};
pub use plan::{Launch, LaunchError, Target};
pub use tf_executor::{ExecutorOptions, Isolation};

use attempt::Ctx;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tf_store::{Activation, ExecutionKey, ExecutionRecord, LaunchPlanState, NewExecution, Store, TenantStore};
use tokio::sync::{mpsc, oneshot, Notify};

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Working directories (`work/`) and tenants' data areas (`tenants/{tenant}/data`) live
    /// here; so do blobs unless `blob_url` says otherwise.
    pub data_dir: PathBuf,
    /// `file:///DIR` or `s3://BUCKET/PREFIX`; default `DATA_DIR/blobs`.
    pub blob_url: Option<String>,
    pub executor: ExecutorOptions,
    /// Attempts running at once on this host.
    pub slots: usize,
}

impl EngineOptions {
    pub fn new(data_dir: &Path) -> EngineOptions {
        EngineOptions {
            data_dir: data_dir.to_path_buf(),
            blob_url: None,
            executor: ExecutorOptions::default(),
            slots: default_slots(),
        }
    }
}

/// Four attempts per core, at least eight: tasks often wait on IO.
pub fn default_slots() -> usize {
    std::thread::available_parallelism().map(|n| n.get() * 4).unwrap_or(8).max(8)
}

/// Whether tasks can run here, for `/readyz`.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// `bubblewrap`, `off` (the operator turned isolation off) or `unavailable`.
    pub sandbox: String,
    /// Why tasks are refused, when they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.refused.is_none()
    }
}

/// What a tenant's work holds right now on this engine.
/// The executor's load: slots, and each tenant's running and waiting work.
#[derive(Debug, Clone, Default)]
pub struct EngineLoad {
    pub slots: usize,
    pub slots_used: usize,
    /// Executions held by the driver (running or queued).
    pub executions: usize,
    /// Per tenant with anything running or waiting: what it uses and its quota.
    pub tenants: Vec<(String, TenantUsage, scheduler::Quota)>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TenantUsage {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    /// Attempts running.
    pub tasks: u64,
    /// Executions running (not held back by the running-executions quota).
    pub executions: u64,
    /// Attempts waiting for admission.
    pub waiting: u64,
}

pub struct Engine {
    tx: mpsc::UnboundedSender<driver::Event>,
    ctx: Arc<Ctx>,
    readiness: Readiness,
    launcher: Launcher,
    /// Wakes the schedule loop when an activation changed.
    schedules: Arc<Notify>,
    tasks: Mutex<Option<Tasks>>,
}

/// The engine's own tasks: driver, journal writer, schedule loop.
struct Tasks {
    driver: tokio::task::JoinHandle<()>,
    journal: tokio::task::JoinHandle<()>,
    ticker: tokio::task::JoinHandle<()>,
}

/// One version of a launch plan.
#[derive(Debug, Clone, Copy)]
pub struct PlanVersion<'a> {
    pub project: &'a str,
    pub domain: &'a str,
    pub name: &'a str,
    pub version: &'a str,
}

/// Creates executions and hands them to the driver: shared by the API and the schedule loop.
#[derive(Clone)]
pub(crate) struct Launcher {
    store: Store,
    tx: mpsc::UnboundedSender<driver::Event>,
}

impl Launcher {
    async fn launch(&self, store: &TenantStore<'_>, l: &Launch) -> Result<ExecutionRecord, LaunchError> {
        let new = plan::prepare(store, l).await?;
        self.create(store, new).await
    }

    async fn create(&self, store: &TenantStore<'_>, new: NewExecution) -> Result<ExecutionRecord, LaunchError> {
        let config = new.config.as_ref().and_then(|c| serde_json::from_value::<plan::RunConfig>(c.clone()).ok());
        if let Some(c) = config.and_then(|c| c.concurrency) {
            if c.policy == tf_model::spec::ConcurrencyPolicy::Skip {
                // Unfinished runs are running or about to: recorded, so none is missed. Two
                // launches racing past this check meet the driver's gate, which skips one.
                let running =
                    store.unfinished_of_launch_plan(&new.key.project, &new.key.domain, &c.launch_plan).await?;
                if running >= i64::from(c.max) {
                    return Err(LaunchError::Refused(format!(
                        "launch plan `{}` already has {running} of at most {} executions running (concurrency policy skip)",
                        c.launch_plan, c.max
                    )));
                }
            }
        }
        let e = store.create_execution(&new).await.map_err(|e| match e {
            tf_store::Error::Conflict(m) => LaunchError::Conflict(m),
            e => e.into(),
        })?;
        let _ = self.tx.send(driver::Event::Submit { tenant: store.tenant_id().into(), key: new.key.clone() });
        Ok(e)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EngineError(pub String);

impl Engine {
    /// Probes the sandbox, opens blob storage, starts the driver and resumes every unfinished
    /// execution in the store.
    pub async fn start(store: Store, opts: EngineOptions) -> Result<Engine, EngineError> {
        let blobs = match &opts.blob_url {
            Some(url) => Blobs::from_url(url),
            None => Blobs::local(&opts.data_dir.join("blobs")),
        }
        .map_err(|e| EngineError(e.to_string()))?;
        let refused = match tf_executor::probe(&opts.executor).await {
            Ok(()) => None,
            Err(e) => Some(format!("{e}; tasks are refused (set `executor.isolation: off` to run them unsandboxed)")),
        };
        let sandbox = match (&refused, opts.executor.isolation) {
            (Some(_), _) => "unavailable",
            (None, Isolation::Off) => "off",
            (None, Isolation::Sandbox) => "bubblewrap",
        };
        match (&refused, opts.executor.isolation) {
            (Some(why), _) => tracing::error!(reason = %why, "the task sandbox is unavailable"),
            (None, Isolation::Off) => {
                tracing::warn!("task isolation is OFF: tasks run as plain processes with this server's rights")
            }
            _ => {}
        }
        let readiness = Readiness { sandbox: sandbox.into(), refused: refused.clone() };
        let metrics = Arc::new(metrics::Metrics::default());
        let (journal, journal_task) = journal::Journal::start(store.clone(), metrics.clone());
        let ctx = Arc::new(Ctx {
            store: store.clone(),
            journal,
            blobs,
            executor: opts.executor.clone(),
            work_root: opts.data_dir.join("work"),
            data_root: opts.data_dir.join("tenants"),
            refused,
            finished: tokio::sync::broadcast::channel(1024).0,
            metrics,
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let driver = tokio::spawn(driver::Driver::new(ctx.clone(), tx.clone(), rx, opts.slots).run());
        // Quotas first, so resumed executions are admitted under them.
        let quotas = store.platform().all_quotas().await.map_err(|e| EngineError(e.to_string()))?;
        for (tenant, tier, q) in quotas {
            let _ = tx.send(driver::Event::Quota { tenant, quota: scheduler::Quota::from_record(&q, &tier) });
        }
        let unfinished = store.platform().unfinished_executions().await.map_err(|e| EngineError(e.to_string()))?;
        if !unfinished.is_empty() {
            tracing::info!(executions = unfinished.len(), "resuming unfinished executions");
        }
        for (tenant, key) in unfinished {
            let _ = tx.send(driver::Event::Submit { tenant, key });
        }
        let launcher = Launcher { store: store.clone(), tx: tx.clone() };
        let schedules = Arc::new(Notify::new());
        let ticker = tokio::spawn(ticker::run(launcher.clone(), schedules.clone()));
        Ok(Engine {
            tx,
            ctx,
            readiness,
            launcher,
            schedules,
            tasks: Mutex::new(Some(Tasks { driver, journal: journal_task, ticker })),
        })
    }

    /// Checks a launch, creates the execution and runs it.
    pub async fn launch(&self, store: &TenantStore<'_>, l: &Launch) -> Result<ExecutionRecord, LaunchError> {
        self.launcher.launch(store, l).await
    }

    /// Creates an already prepared execution (a relaunch) and runs it.
    pub async fn create(&self, store: &TenantStore<'_>, new: NewExecution) -> Result<ExecutionRecord, LaunchError> {
        self.launcher.create(store, new).await
    }

    /// Makes `version` the active version of a launch plan (its schedule starts ticking from
    /// now), or deactivates it (its schedule stops at once).
    pub async fn set_launch_plan_active(
        &self,
        store: &TenantStore<'_>,
        plan: PlanVersion<'_>,
        active: bool,
        by: &str,
    ) -> Result<LaunchPlanState, LaunchError> {
        let PlanVersion { project, domain, name, version } = plan;
        let e = store
            .get_entity(project, domain, tf_model::EntityKind::LaunchPlan, name, Some(version))
            .await?
            .ok_or_else(|| {
                LaunchError::NotFound(format!("launch plan `{name}@{version}` not found in {project}/{domain}"))
            })?;
        let state = if active {
            let spec: tf_model::LaunchPlanSpec = plan::spec_of(&e.spec).map_err(LaunchError::Store)?;
            let now = tf_store::now_ms();
            let next =
                spec.schedule.as_ref().map(|s| ticker::first_tick(s, now)).transpose().map_err(LaunchError::Store)?;
            let a = Activation {
                version: version.into(),
                schedule: spec.schedule.as_ref().map(|s| serde_json::to_value(s).expect("schedule serialises")),
                anchor_at: next.map(|_| now),
                next_fire_at: next,
            };
            store.activate_launch_plan(project, domain, name, &a, by).await?
        } else {
            match store.deactivate_launch_plan(project, domain, name, version, by).await? {
                Some(s) => s,
                None => LaunchPlanState::inactive(project, domain, name),
            }
        };
        self.schedules.notify_one();
        Ok(state)
    }

    /// Runs a created execution.
    pub fn submit(&self, tenant: &str, key: &ExecutionKey) {
        let _ = self.tx.send(driver::Event::Submit { tenant: tenant.into(), key: key.clone() });
    }

    /// Applies a tenant's new quota (and fair-share weight) to admission from now on.
    pub fn set_quota(&self, tenant: &str, tier: &str, quota: &tf_store::QuotaRecord) {
        let quota = scheduler::Quota::from_record(quota, tier);
        let _ = self.tx.send(driver::Event::Quota { tenant: tenant.into(), quota });
    }

    /// What `tenant` uses now (zero when the engine has stopped).
    pub async fn usage(&self, tenant: &str) -> TenantUsage {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(driver::Event::Usage { tenant: tenant.into(), reply }).is_err() {
            return TenantUsage::default();
        }
        rx.await.unwrap_or_default()
    }

    /// Stops an execution: running attempts are killed, the rest never starts. The caller
    /// has recorded the request in the store first.
    pub fn terminate(&self, tenant: &str, key: &ExecutionKey, by: &str) {
        let _ = self.tx.send(driver::Event::Terminate { tenant: tenant.into(), key: key.clone(), reason: by.into() });
    }

    /// Waits until the execution is over or `timeout` passes. `finished` reads the store; it
    /// is asked first and whenever ends were missed.
    pub async fn wait_until<F, Fut>(
        &self,
        tenant: &str,
        key: &ExecutionKey,
        timeout: std::time::Duration,
        mut finished: F,
    ) where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let mut rx = self.ctx.finished.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        if finished().await {
            return;
        }
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => return,
                Ok(Ok((t, k))) if t == tenant && &k == key => return,
                Ok(Ok(_)) => {}
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                    if finished().await {
                        return;
                    }
                }
                Ok(Err(_)) => return,
            }
        }
    }

    /// Counters since start: phase transitions, attempts, admission waits.
    pub fn counters(&self) -> metrics::Counters {
        self.ctx.metrics.snapshot()
    }

    /// Every tenant's use of the executor now, with the executor's slots (total, in use);
    /// one round trip to the driver.
    pub async fn load(&self) -> EngineLoad {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(driver::Event::Load { reply }).is_err() {
            return EngineLoad::default();
        }
        rx.await.unwrap_or_default()
    }

    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    pub fn blobs(&self) -> &Blobs {
        &self.ctx.blobs
    }

    /// The log file of an attempt while it runs.
    pub fn live_log(&self, tenant: &str, key: &ExecutionKey, node: &str, attempt: u32) -> PathBuf {
        self.ctx.work_dir(tenant, key, node, attempt).join(".tenantflow").join("log")
    }

    /// A tenant's data area on this host.
    pub fn data_dir(&self, tenant: &str) -> PathBuf {
        self.ctx.data_dir(tenant)
    }

    /// Kills running attempts (they are retried after a restart), flushes the journal and
    /// stops the driver.
    pub async fn shutdown(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(driver::Event::Shutdown(done)).is_ok() {
            let _ = wait.await;
        }
        let tasks = self.tasks.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = tasks {
            t.ticker.abort();
            let _ = t.driver.await;
            t.journal.abort();
        }
    }
}
