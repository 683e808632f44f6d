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
        let path = p.to_string_lossy().into_owned();
        match std::fs::symlink_metadata(p) {
            // A top-level symlink (`/bin -> usr/bin` on merged-/usr systems) is recreated as
            // the same symlink, which is much cheaper than another bind mount.
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(p) {
                    a.extend(["--symlink".into(), target.to_string_lossy().into_owned(), path]);
                }
            }
            Ok(_) => a.extend(["--ro-bind".into(), path.clone(), path]),
            Err(_) => {}
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
    if let Some(uid) = spec.run_as.uid {
        a.extend(["--uid".into(), uid.to_string()]);
    }
    if let Some(gid) = spec.run_as.gid {
        a.extend(["--gid".into(), gid.to_string()]);
    }
    for (k, v) in env {
        a.extend(["--setenv".into(), k.clone(), v.clone()]);
    }
    a.push("--".into());
    a.extend(spec.command.iter().cloned());
    a
}
