//! The local executor: runs one task attempt as one process, per the task I/O contract, inside
//! a bubblewrap sandbox (no network unless allowed, a private working directory, its tenant's
//! data area, read-only system files, nothing else of the host), with memory, cpu and process
//! limits from cgroups and a wall-clock limit; on timeout or terminate the whole process tree
//! is killed.
//!
//! Invariant: a task never runs unsandboxed unless the operator chose `Isolation::Off`; when
//! the sandbox cannot be set up the attempt fails as a system error instead of running.

mod cgroup;
mod sandbox;

pub use cgroup::CgroupVersion;

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;
use tokio::sync::watch;

/// How strongly attempts are isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// bubblewrap namespaces and cgroup limits (the default).
    Sandbox,
    /// Plain processes: only when the operator explicitly turns isolation off.
    Off,
}

/// Executor-wide settings.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    pub isolation: Isolation,
    pub bwrap: PathBuf,
    /// Where per-attempt cgroups are created; `None` disables resource limits.
    pub cgroups: Option<CgroupVersion>,
    /// Host paths made visible read-only inside the sandbox (system files).
    pub system_paths: Vec<PathBuf>,
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        ExecutorOptions {
            isolation: Isolation::Sandbox,
            bwrap: PathBuf::from("/usr/bin/bwrap"),
            cgroups: cgroup::detect(),
            system_paths: ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc"]
                .iter()
                .map(PathBuf::from)
                .collect(),
        }
    }
}

/// Limits of one attempt.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    /// cpu in millicores (1000 = one core).
    pub cpu_millis: Option<u64>,
    pub pids: Option<u64>,
    pub timeout: Option<Duration>,
}

/// Who and what an attempt is: becomes the `TENANTFLOW_*` environment.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub tenant: String,
    pub project: String,
    pub domain: String,
    pub execution: String,
    pub node: String,
    pub attempt: u32,
    pub user: String,
}

/// One attempt to run.
#[derive(Debug, Clone)]
pub struct AttemptSpec {
    pub id: Identity,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// The inputs object; file and directory inputs must already be paths the task can see
    /// (inside `work_dir` or `data_dir`, written as sandbox paths via [`AttemptSpec::sandbox_path`]).
    pub inputs: Value,
    /// Private working directory (created; must not exist yet or be empty).
    pub work_dir: PathBuf,
    /// The tenant's data area, mounted read-write.
    pub data_dir: PathBuf,
    pub network: bool,
    pub limits: Limits,
    /// User and group ids the task runs as inside the sandbox (default: the server's own).
    pub run_as: RunAs,
}

/// The ids a sandboxed task sees as its own (mapped through its user namespace).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunAs {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Where the working directory and the data area appear inside the sandbox.
pub const SANDBOX_WORK: &str = "/work";
pub const SANDBOX_DATA: &str = "/data";
const META_DIR: &str = ".tenantflow";

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Exit 0 and a JSON object of outputs.
    Succeeded {
        outputs: Value,
    },
    /// The task's fault: non-zero exit, bad or missing outputs, killed for exceeding memory.
    UserError {
        message: String,
    },
    /// The platform's fault: the sandbox or process could not be started.
    SystemError {
        message: String,
    },
    TimedOut,
    Terminated,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttemptResult {
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub wall: Duration,
    /// stdout and stderr, interleaved.
    pub log: PathBuf,
    /// Last lines of the log, for error messages.
    pub log_tail: String,
    pub cpu_seconds: Option<f64>,
    pub peak_memory_bytes: Option<u64>,
    pub oom_killed: bool,
}

impl AttemptSpec {
    /// A host path inside the work dir or data area, as the task sees it.
    pub fn sandbox_path(&self, host: &Path, isolation: Isolation) -> Option<String> {
        if isolation == Isolation::Off {
            return Some(host.to_string_lossy().into_owned());
        }
        let under = |base: &str, rel: &Path| {
            if rel.as_os_str().is_empty() {
                base.to_string()
            } else {
                Path::new(base).join(rel).to_string_lossy().into_owned()
            }
        };
        if let Ok(rel) = host.strip_prefix(&self.work_dir) {
            return Some(under(SANDBOX_WORK, rel));
        }
        host.strip_prefix(&self.data_dir).ok().map(|rel| under(SANDBOX_DATA, rel))
    }

    /// The host path behind a path the task wrote (relative to its working directory, or
    /// absolute under `/work` or `/data`); `None` when it points anywhere else.
    pub fn host_path(&self, written: &str, isolation: Isolation) -> Option<PathBuf> {
        let p = Path::new(written);
        if p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return None;
        }
        let (work, data) = match isolation {
            Isolation::Sandbox => (PathBuf::from(SANDBOX_WORK), PathBuf::from(SANDBOX_DATA)),
            Isolation::Off => (self.work_dir.clone(), self.data_dir.clone()),
        };
        if p.is_relative() {
            return Some(self.work_dir.join(p));
        }
        if let Ok(rel) = p.strip_prefix(&work) {
            return Some(self.work_dir.join(rel));
        }
        p.strip_prefix(&data).ok().map(|rel| self.data_dir.join(rel))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the sandbox is unavailable: {0}")]
    Unavailable(String),
}

/// Checks that attempts can run with the configured isolation: bubblewrap starts a sandbox
/// without network. Run at start-up; a failure should stop tasks from running.
pub async fn probe(opts: &ExecutorOptions) -> Result<(), Error> {
    if opts.isolation == Isolation::Off {
        return Ok(());
    }
    let mut args = sandbox::base_args(opts, false);
    args.extend(["--".into(), "/bin/sh".into(), "-c".into(), "exit 0".into()]);
    let out = Command::new(&opts.bwrap)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| Error::Unavailable(format!("cannot start {}: {e}", opts.bwrap.display())))?;
    if !out.status.success() {
        return Err(Error::Unavailable(format!(
            "{} failed: {}",
            opts.bwrap.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Runs one attempt to its end. Sending `true` on `terminate` kills it.
pub async fn run(opts: &ExecutorOptions, spec: &AttemptSpec, mut terminate: watch::Receiver<bool>) -> AttemptResult {
    let started = Instant::now();
    let log = spec.work_dir.join(META_DIR).join("log");
    let fail = |message: String| AttemptResult {
        outcome: Outcome::SystemError { message },
        exit_code: None,
        signal: None,
        wall: started.elapsed(),
        log: log.clone(),
        log_tail: String::new(),
        cpu_seconds: None,
        peak_memory_bytes: None,
        oom_killed: false,
    };
    let meta = spec.work_dir.join(META_DIR);
    if let Err(e) = std::fs::create_dir_all(&meta).and_then(|_| std::fs::create_dir_all(&spec.data_dir)) {
        return fail(format!("cannot prepare the working directory: {e}"));
    }
    let inputs_host = meta.join("inputs.json");
    let outputs_host = meta.join("outputs.json");
    if let Err(e) = std::fs::write(&inputs_host, serde_json::to_vec(&spec.inputs).unwrap_or_default()) {
        return fail(format!("cannot write inputs: {e}"));
    }
    let _ = std::fs::remove_file(&outputs_host);
    let log_file = match std::fs::File::create(&log) {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot create the log: {e}")),
    };
    let log_err = match log_file.try_clone() {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot create the log: {e}")),
    };
    let in_sandbox = |host: &Path| spec.sandbox_path(host, opts.isolation).unwrap_or_default();
    let mut env: BTreeMap<String, String> = spec.env.clone();
    env.insert("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into());
    env.insert("HOME".into(), in_sandbox(&spec.work_dir));
    env.insert("TENANTFLOW_INPUTS".into(), in_sandbox(&inputs_host));
    env.insert("TENANTFLOW_OUTPUTS".into(), in_sandbox(&outputs_host));
    env.insert("TENANTFLOW_DATA_DIR".into(), in_sandbox(&spec.data_dir));
    env.insert("TENANTFLOW_TENANT".into(), spec.id.tenant.clone());
    env.insert("TENANTFLOW_PROJECT".into(), spec.id.project.clone());
    env.insert("TENANTFLOW_DOMAIN".into(), spec.id.domain.clone());
    env.insert("TENANTFLOW_EXECUTION".into(), spec.id.execution.clone());
    env.insert("TENANTFLOW_NODE".into(), spec.id.node.clone());
    env.insert("TENANTFLOW_ATTEMPT".into(), spec.id.attempt.to_string());
    env.insert("TENANTFLOW_USER".into(), spec.id.user.clone());

    let group = match &opts.cgroups {
        Some(v) if opts.isolation == Isolation::Sandbox => {
            let name = format!("{}-{}-{}-{}", spec.id.tenant, spec.id.execution, spec.id.node, spec.id.attempt);
            match cgroup::Cgroup::create(v, &name, &spec.limits) {
                Ok(g) => Some(g),
                Err(e) => return fail(format!("cannot set resource limits: {e}")),
            }
        }
        _ => None,
    };
    let argv: Vec<String> = match opts.isolation {
        Isolation::Sandbox => {
            let mut a = vec![opts.bwrap.to_string_lossy().into_owned()];
            a.extend(sandbox::args(opts, spec, &env));
            match &group {
                Some(g) => g.join_then_exec(a),
                None => a,
            }
        }
        Isolation::Off => spec.command.clone(),
    };
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    if opts.isolation == Isolation::Off {
        cmd.env_clear().envs(&env).current_dir(&spec.work_dir);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::from(log_file)).stderr(Stdio::from(log_err)).kill_on_drop(true);
    cmd.process_group(0);
    let group_used = group.is_some();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            if let Some(g) = group {
                g.remove();
            }
            return fail(format!("cannot start `{}`: {e}", spec.command.first().map(String::as_str).unwrap_or("")));
        }
    };
    let pid = child.id();
    let timeout = spec.limits.timeout.unwrap_or(Duration::from_secs(7 * 24 * 3600));
    enum End {
        Exited(std::io::Result<std::process::ExitStatus>),
        TimedOut,
        Terminated,
    }
    let end = tokio::select! {
        s = child.wait() => End::Exited(s),
        _ = tokio::time::sleep(timeout) => End::TimedOut,
        _ = async { while terminate.changed().await.is_ok() { if *terminate.borrow() { return; } } std::future::pending::<()>().await } => End::Terminated,
    };
    let status = match &end {
        End::Exited(s) => s.as_ref().ok().copied(),
        End::TimedOut | End::Terminated => {
            kill_tree(pid, group.as_ref());
            let _ = child.kill().await;
            child.wait().await.ok()
        }
    };
    // Whatever the task left running in the background dies with the attempt (and is
    // waited for when the cgroup is removed).
    if let Some(g) = &group {
        g.signal_all();
    }
    let wall = started.elapsed();
    let (cpu_seconds, peak_memory_bytes, oom_killed) = match &group {
        Some(g) => (g.cpu_seconds(), g.peak_memory(), g.oom_killed()),
        None => (None, None, false),
    };
    if let Some(g) = group {
        // The kernel releases an emptied cgroup a little after its last process is reaped;
        // removing it is nobody's critical path.
        tokio::task::spawn_blocking(move || g.remove());
    }
    let log_tail = tail(&log, 2048);
    use std::os::unix::process::ExitStatusExt;
    let exit_code = status.and_then(|s| s.code());
    let signal = status.and_then(|s| s.signal());
    let outcome = match end {
        End::TimedOut => Outcome::TimedOut,
        End::Terminated => Outcome::Terminated,
        End::Exited(_) if oom_killed => Outcome::UserError {
            message: format!("killed: exceeded its memory limit of {} bytes", spec.limits.memory_bytes.unwrap_or(0)),
        },
        End::Exited(_) => match exit_code {
            Some(0) => read_outputs(&outputs_host),
            Some(cgroup::JOIN_FAILED) if group_used && log_tail.starts_with(cgroup::JOIN_FAILED_MESSAGE) => {
                Outcome::SystemError { message: log_tail.trim().to_string() }
            }
            Some(c) => Outcome::UserError { message: format!("exited with code {c}") },
            None => Outcome::UserError { message: format!("killed by signal {}", signal.unwrap_or(0)) },
        },
    };
    AttemptResult { outcome, exit_code, signal, wall, log, log_tail, cpu_seconds, peak_memory_bytes, oom_killed }
}

fn read_outputs(path: &Path) -> Outcome {
    match std::fs::read(path) {
        // No outputs file: no outputs. Declared outputs it should have written are reported
        // missing when checked against the task's interface.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Outcome::Succeeded { outputs: Value::Object(Default::default()) }
        }
        Err(e) => Outcome::UserError { message: format!("cannot read the outputs file: {e}") },
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(v @ Value::Object(_)) => Outcome::Succeeded { outputs: v },
            Ok(_) => Outcome::UserError { message: "the outputs file must hold a JSON object".into() },
            Err(e) => Outcome::UserError { message: format!("the outputs file is not valid JSON: {e}") },
        },
    }
}

/// Kills the attempt's processes: the cgroup's members, and the process group.
fn kill_tree(pid: Option<u32>, group: Option<&cgroup::Cgroup>) {
    if let Some(g) = group {
        g.kill_all();
    }
    if let Some(pid) = pid {
        // SAFETY: signalling a process group we created; no memory is touched.
        unsafe {
            libc::kill(-(pid as i32), libc::SIGKILL);
        }
    }
}

/// The last `max` bytes of a file, starting at a line boundary when possible.
pub fn tail(path: &Path, max: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else { return String::new() };
    let start = bytes.len().saturating_sub(max);
    let mut s = String::from_utf8_lossy(&bytes[start..]).into_owned();
    if start > 0 {
        if let Some(i) = s.find('\n') {
            s = s[i + 1..].to_string();
        }
    }
    s
}
