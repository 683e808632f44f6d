//! The bubblewrap command line: new namespaces (user, pid, ipc, uts, cgroup, and network
//! unless allowed), read-only system paths, a private `/tmp`, the attempt's working directory
//! at `/work` and its tenant's data area at `/data` — and nothing else of the host.

use crate::{AttemptSpec, ExecutorOptions, SANDBOX_DATA, SANDBOX_WORK};
use std::collections::BTreeMap;

/// Namespaces and system mounts common to every sandbox.
pub fn base_args(opts: &ExecutorOptions, network: bool) -> Vec<String> {
    let mut a: Vec<String> = vec!["--die-with-parent".into(), "--new-session".into(), "--unshare-all".into()];
    if network {
        a.push("--share-net".into());
    }
    for p in &opts.system_paths {
        if p.exists() {
            let p = p.to_string_lossy().into_owned();
            a.extend(["--ro-bind".into(), p.clone(), p]);
        }
    }
    a.extend(["--proc".into(), "/proc".into(), "--dev".into(), "/dev".into(), "--tmpfs".into(), "/tmp".into()]);
    a
}

pub fn args(opts: &ExecutorOptions, spec: &AttemptSpec, env: &BTreeMap<String, String>) -> Vec<String> {
    let mut a = base_args(opts, spec.network);
    a.extend([
        "--bind".into(),
        spec.work_dir.to_string_lossy().into_owned(),
        SANDBOX_WORK.into(),
        "--bind".into(),
        spec.data_dir.to_string_lossy().into_owned(),
        SANDBOX_DATA.into(),
        "--chdir".into(),
        SANDBOX_WORK.into(),
        "--clearenv".into(),
    ]);
    for (k, v) in env {
        a.extend(["--setenv".into(), k.clone(), v.clone()]);
    }
    a.push("--".into());
    a.extend(spec.command.iter().cloned());
    a
}
