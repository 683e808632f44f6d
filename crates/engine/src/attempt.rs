//! One attempt, start to end: back-off, catalog lookup, an executor slot, the durable start
//! record, inputs materialised from blob storage, the sandboxed process, outputs and log
//! uploaded under the tenant's prefix.
//!
//! Invariant: the start record is journalled before the process starts and before its
//! finish, so no attempt is recorded twice or finished without having started; file inputs
//! resolve only inside the attempt's own tenant.

use crate::blobs::Blobs;
use crate::journal::Journal;
use crate::plan::TaskRun;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tf_executor::{AttemptSpec, ExecutorOptions, Identity, Outcome};
use tf_model::execution::AttemptOutcome;
use tf_model::Type;
use tf_store::{AttemptEnd, CatalogKey, ExecutionKey, ExecutionOp, Store};
use tokio::sync::{mpsc, oneshot, watch};

/// Most bytes of the log quoted in a failed attempt's error.
const ERROR_TAIL: usize = 1024;

/// What every attempt shares.
pub struct Ctx {
    pub store: Store,
    pub journal: Journal,
    pub blobs: Blobs,
    pub executor: ExecutorOptions,
    /// Per-attempt working directories live under here.
    pub work_root: PathBuf,
    /// Tenants' data areas: `{data_root}/{tenant}`.
    pub data_root: PathBuf,
    /// Why tasks cannot run on this host, if they cannot.
    pub refused: Option<String>,
    /// Executions whose end has been recorded.
    pub finished: tokio::sync::broadcast::Sender<(String, ExecutionKey)>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Ctx {
    pub fn work_dir(&self, tenant: &str, key: &ExecutionKey, node: &str, attempt: u32) -> PathBuf {
        self.work_root
            .join(tenant)
            .join(&key.project)
            .join(&key.domain)
            .join(&key.name)
            .join(node)
            .join(attempt.to_string())
    }

    pub fn data_dir(&self, tenant: &str) -> PathBuf {
        self.data_root.join(tenant)
    }
}

pub struct Job {
    pub run: u64,
    pub node_index: u32,
    /// Where the attempt asks the driver for admission.
    pub admission: mpsc::UnboundedSender<crate::driver::Event>,
    pub tenant: String,
    pub key: ExecutionKey,
    pub node: String,
    pub attempt: u32,
    pub user: String,
    pub task: Arc<TaskRun>,
    pub inputs: Value,
    pub cache: Option<CatalogKey>,
    pub backoff: Duration,
    pub kill: watch::Receiver<bool>,
}

/// How a job ended.
pub enum Report {
    /// The catalog had the outputs; nothing ran.
    CacheHit(Value),
    /// Stopped before it started: nothing was recorded.
    NotStarted,
    /// It ran (and was recorded as started).
    Ran { outcome: Option<AttemptOutcome>, end: AttemptEnd },
}

async fn killed(kill: &mut watch::Receiver<bool>) {
    loop {
        if *kill.borrow() {
            return;
        }
        if kill.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

pub async fn run(ctx: Arc<Ctx>, mut job: Job) -> Report {
    if !job.backoff.is_zero() {
        tokio::select! {
            _ = tokio::time::sleep(job.backoff) => {}
            _ = killed(&mut job.kill) => return Report::NotStarted,
        }
    }
    if let Some(k) = &job.cache {
        match ctx.store.tenant(&job.tenant).catalog_get(k).await {
            Ok(Some(outputs)) => return Report::CacheHit(outputs),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "catalog lookup failed; running the task"),
        }
    }
    // Admission: the driver grants the start when the tenant's quota and the executor allow.
    let (grant, granted) = oneshot::channel();
    let ask = crate::driver::Event::Admit { run: job.run, node: job.node_index, attempt: job.attempt, grant };
    if job.admission.send(ask).is_err() {
        return Report::NotStarted;
    }
    let asked = std::time::Instant::now();
    tokio::select! {
        g = granted => if g.is_err() { return Report::NotStarted },
        _ = killed(&mut job.kill) => return Report::NotStarted,
    }
    ctx.metrics.admitted_after(asked.elapsed().as_secs_f64());
    let prefix = Blobs::attempt_prefix(&job.tenant, &job.key, &job.node, job.attempt);
    let log_key = format!("{prefix}/log");
    let start = ExecutionOp::StartAttempt {
        key: job.key.clone(),
        node: job.node.clone(),
        attempt: job.attempt as i64,
        log_path: log_key.clone(),
    };
    // Recorded in order before anything the attempt reports: the journal is FIFO and its
    // batches commit whole, so the finish can never be durable without the start. The process
    // need not wait for the commit: after a crash an unrecorded attempt simply runs again
    // under the same number, never twice recorded.
    ctx.journal.send(vec![ctx.store.tenant(&job.tenant).op(start)]);
    let (outcome, end) = execute(&ctx, &job, &prefix, &log_key).await;
    Report::Ran { outcome, end }
}

fn system(message: String) -> (Option<AttemptOutcome>, AttemptEnd) {
    let end = AttemptEnd {
        phase: "FAILED".into(),
        error_kind: Some("system".into()),
        message: Some(message.clone()),
        ..Default::default()
    };
    (Some(AttemptOutcome::SystemError(message)), end)
}

async fn execute(ctx: &Ctx, job: &Job, prefix: &str, log_key: &str) -> (Option<AttemptOutcome>, AttemptEnd) {
    if let Some(why) = &ctx.refused {
        return system(format!("tasks are refused on this host: {why}"));
    }
    let work_dir = ctx.work_dir(&job.tenant, &job.key, &job.node, job.attempt);
    // A directory left by an interrupted run of this attempt is stale.
    let _ = tokio::fs::remove_dir_all(&work_dir).await;
    if let Err(e) = tokio::fs::create_dir_all(&work_dir).await {
        return system(format!("cannot create the working directory: {e}"));
    }
    let mut spec = AttemptSpec {
        id: Identity {
            tenant: job.tenant.clone(),
            project: job.key.project.clone(),
            domain: job.key.domain.clone(),
            execution: job.key.name.clone(),
            node: job.node.clone(),
            attempt: job.attempt,
            user: job.user.clone(),
        },
        command: job.task.spec.container.command.clone(),
        env: job.task.env.clone(),
        inputs: Value::Null,
        work_dir: work_dir.clone(),
        data_dir: ctx.data_dir(&job.tenant),
        network: job.task.network,
        limits: job.task.limits.clone(),
        run_as: tf_executor::RunAs { uid: job.task.run_as_user, gid: job.task.run_as_group },
    };
    let r = match materialise_inputs(ctx, job, &spec).await {
        Ok(inputs) => {
            spec.inputs = inputs;
            // The inputs record is stored while the task runs.
            let inputs_key = format!("{prefix}/inputs.json");
            let (r, stored) = tokio::join!(
                tf_executor::run(&ctx.executor, &spec, job.kill.clone()),
                ctx.blobs.put_bytes(&inputs_key, spec.inputs.to_string().into_bytes())
            );
            (r, stored.unwrap_or(0))
        }
        Err(message) => {
            let _ = tokio::fs::create_dir_all(work_dir.join(".tenantflow")).await;
            let _ = tokio::fs::write(work_dir.join(".tenantflow/log"), format!("{message}\n")).await;
            let end = AttemptEnd {
                phase: "FAILED".into(),
                error_kind: Some("user".into()),
                message: Some(message.clone()),
                ..Default::default()
            };
            let stored = ctx.blobs.put_file(log_key, &work_dir.join(".tenantflow/log")).await.unwrap_or(0);
            let _ = tokio::fs::remove_dir_all(&work_dir).await;
            return (Some(AttemptOutcome::UserError(message)), AttemptEnd { stored_bytes: Some(stored as i64), ..end });
        }
    };
    let (r, mut stored) = r;
    match ctx.blobs.put_file(log_key, &r.log).await {
        Ok(n) => stored += n,
        Err(e) => tracing::warn!(error = %e, "cannot store the attempt's log"),
    }
    let mut end = AttemptEnd {
        phase: String::new(),
        error_kind: None,
        message: None,
        exit_code: r.exit_code.map(i64::from),
        cpu_ms: r.cpu_seconds.map(|s| (s * 1000.0).round() as i64),
        peak_memory_bytes: r.peak_memory_bytes.map(|b| b as i64),
        process_us: Some(r.wall.as_micros() as i64),
        stored_bytes: None,
    };
    let with_tail = |m: &str| {
        let tail = r.log_tail.trim_end();
        let tail = &tail[tail.len().saturating_sub(ERROR_TAIL)..];
        let tail = tail.trim_start_matches(|c: char| !c.is_ascii() && !c.is_alphanumeric());
        if tail.is_empty() {
            m.to_string()
        } else {
            format!("{m}; log tail:\n{tail}")
        }
    };
    let outcome = match r.outcome {
        Outcome::Succeeded { outputs } => match store_outputs(ctx, job, &spec, prefix, outputs, &mut stored).await {
            Ok(v) => {
                stored += ctx
                    .blobs
                    .put_bytes(&format!("{prefix}/outputs.json"), v.to_string().into_bytes())
                    .await
                    .unwrap_or(0);
                end.phase = "SUCCEEDED".into();
                Some(AttemptOutcome::Succeeded(v))
            }
            Err(m) => {
                end.phase = "FAILED".into();
                end.error_kind = Some("user".into());
                end.message = Some(m.clone());
                Some(AttemptOutcome::UserError(m))
            }
        },
        Outcome::UserError { message } => {
            let m = with_tail(&message);
            end.phase = "FAILED".into();
            end.error_kind = Some("user".into());
            end.message = Some(m.clone());
            Some(AttemptOutcome::UserError(m))
        }
        Outcome::SystemError { message } => {
            end.phase = "FAILED".into();
            end.error_kind = Some("system".into());
            end.message = Some(message.clone());
            Some(AttemptOutcome::SystemError(message))
        }
        Outcome::TimedOut => {
            let m =
                format!("timed out after {}", humantime::format_duration(job.task.limits.timeout.unwrap_or_default()));
            end.phase = "TIMED_OUT".into();
            end.error_kind = Some("user".into());
            end.message = Some(m);
            Some(AttemptOutcome::TimedOut)
        }
        Outcome::Terminated => {
            end.phase = "ABORTED".into();
            end.message = Some("terminated".into());
            None
        }
    };
    end.stored_bytes = Some(stored as i64);
    // Everything worth keeping is in blob storage now; the working directory goes in the
    // background (a stale one is also removed when the same attempt starts again).
    tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&work_dir));
    (outcome, end)
}

/// File and directory inputs become paths the task can open: blobs of this tenant are
/// downloaded into the working directory; relative paths name files in the tenant's data area.
async fn materialise_inputs(ctx: &Ctx, job: &Job, spec: &AttemptSpec) -> Result<Value, String> {
    let Value::Object(given) = &job.inputs else { return Ok(job.inputs.clone()) };
    let mut out = Map::new();
    for (k, v) in given {
        let v = match job.task.interface.inputs.get(k) {
            Some(p) if has_files(&p.ty) => {
                let dest = spec.work_dir.join("inputs").join(k);
                materialise(ctx, job, spec, &p.ty, v, &dest).await.map_err(|e| format!("input `{k}`: {e}"))?
            }
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    Ok(Value::Object(out))
}

fn has_files(t: &Type) -> bool {
    match t {
        Type::File | Type::Directory => true,
        Type::List(i) => has_files(i),
        _ => false,
    }
}

fn materialise<'a>(
    ctx: &'a Ctx,
    job: &'a Job,
    spec: &'a AttemptSpec,
    ty: &'a Type,
    v: &'a Value,
    dest: &'a Path,
) -> futures::future::BoxFuture<'a, Result<Value, String>> {
    Box::pin(async move {
        match (ty, v) {
            (Type::List(item), Value::Array(xs)) => {
                let mut out = Vec::with_capacity(xs.len());
                for (i, x) in xs.iter().enumerate() {
                    out.push(materialise(ctx, job, spec, item, x, &dest.join(i.to_string())).await?);
                }
                Ok(Value::Array(out))
            }
            (Type::File | Type::Directory, Value::String(s)) => {
                let isolation = ctx.executor.isolation;
                if s.contains("://") {
                    let key = ctx
                        .blobs
                        .resolve(&job.tenant, s)
                        .ok_or_else(|| format!("`{s}` is not in this tenant's storage"))?;
                    let local = if *ty == Type::Directory {
                        ctx.blobs.get_dir(&key, dest).await.map_err(|e| e.to_string())?;
                        dest.to_path_buf()
                    } else {
                        let name = key.rsplit('/').next().unwrap_or("file");
                        let p = dest.join(name);
                        ctx.blobs.get_file(&key, &p).await.map_err(|e| e.to_string())?;
                        p
                    };
                    Ok(Value::String(spec.sandbox_path(&local, isolation).unwrap_or_default()))
                } else {
                    let rel = Path::new(s);
                    if rel.is_absolute() || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
                        return Err(format!("`{s}` must be a blob URI or a path relative to the tenant's data area"));
                    }
                    let host = spec.data_dir.join(rel);
                    Ok(Value::String(spec.sandbox_path(&host, isolation).unwrap_or_default()))
                }
            }
            _ => Ok(v.clone()),
        }
    })
}

/// File and directory outputs (paths the task wrote) are uploaded; their values become URIs.
async fn store_outputs(
    ctx: &Ctx,
    job: &Job,
    spec: &AttemptSpec,
    prefix: &str,
    outputs: Value,
    stored: &mut u64,
) -> Result<Value, String> {
    let Value::Object(mut m) = outputs else { return Ok(outputs) };
    for (k, p) in &job.task.interface.outputs {
        if !has_files(&p.ty) {
            continue;
        }
        if let Some(v) = m.remove(k) {
            let (uri, bytes) = upload(ctx, job, spec, &p.ty, &v, &format!("{prefix}/outputs/{k}"))
                .await
                .map_err(|e| format!("output `{k}`: {e}"))?;
            *stored += bytes;
            m.insert(k.clone(), uri);
        }
    }
    Ok(Value::Object(m))
}

fn upload<'a>(
    ctx: &'a Ctx,
    job: &'a Job,
    spec: &'a AttemptSpec,
    ty: &'a Type,
    v: &'a Value,
    key: &'a str,
) -> futures::future::BoxFuture<'a, Result<(Value, u64), String>> {
    Box::pin(async move {
        match (ty, v) {
            (Type::List(item), Value::Array(xs)) => {
                let mut out = Vec::with_capacity(xs.len());
                let mut bytes = 0;
                for (i, x) in xs.iter().enumerate() {
                    let (v, n) = upload(ctx, job, spec, item, x, &format!("{key}/{i}")).await?;
                    out.push(v);
                    bytes += n;
                }
                Ok((Value::Array(out), bytes))
            }
            (Type::File | Type::Directory, Value::String(s)) => {
                if s.contains("://") {
                    // Passing on a blob it was given: fine if it is this tenant's.
                    return match ctx.blobs.resolve(&job.tenant, s) {
                        Some(_) => Ok((v.clone(), 0)),
                        None => Err(format!("`{s}` is not in this tenant's storage")),
                    };
                }
                let host = spec
                    .host_path(s, ctx.executor.isolation)
                    .ok_or_else(|| format!("`{s}` is outside the working directory and the data area"))?;
                let meta = tokio::fs::metadata(&host).await.map_err(|_| format!("`{s}` does not exist"))?;
                if *ty == Type::Directory {
                    if !meta.is_dir() {
                        return Err(format!("`{s}` is not a directory"));
                    }
                    let n = ctx.blobs.put_dir(key, &host).await.map_err(|e| e.to_string())?;
                    Ok((Value::String(format!("{}/", ctx.blobs.uri(key))), n))
                } else {
                    if !meta.is_file() {
                        return Err(format!("`{s}` is not a file"));
                    }
                    let name =
                        host.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
                    let k = format!("{key}/{name}");
                    let n = ctx.blobs.put_file(&k, &host).await.map_err(|e| e.to_string())?;
                    Ok((Value::String(ctx.blobs.uri(&k)), n))
                }
            }
            _ => Ok((v.clone(), 0)),
        }
    })
}
