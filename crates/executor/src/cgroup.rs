//! Per-attempt cgroups for memory, cpu and process limits, on cgroup v1 (one hierarchy per
//! controller) or v2 (one unified hierarchy). The attempt's first process joins its cgroup
//! before it executes the sandbox (see [`Cgroup::join_then_exec`]), so the sandbox and
//! everything it starts are limited and accounted from their first instruction.

use crate::Limits;
use std::path::{Path, PathBuf};

const CPU_PERIOD_US: u64 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Controller hierarchies under this root (`/sys/fs/cgroup`).
    V1(PathBuf),
    /// The unified hierarchy at this path.
    V2(PathBuf),
}

/// Finds a writable cgroup hierarchy, if the host has one.
pub fn detect() -> Option<CgroupVersion> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        let base = root.join("tenantflow");
        return std::fs::create_dir_all(&base).ok().map(|_| CgroupVersion::V2(base));
    }
    if root.join("memory").is_dir() {
        let ok =
            ["memory", "cpu", "pids"].iter().all(|c| std::fs::create_dir_all(root.join(c).join("tenantflow")).is_ok());
        return ok.then(|| CgroupVersion::V1(root.to_path_buf()));
    }
    None
}

pub struct Cgroup {
    /// One directory per controller (v1) or one (v2).
    dirs: Vec<PathBuf>,
    version: CgroupVersion,
}

/// Exit status of the join trampoline when the attempt could not join its cgroup.
pub const JOIN_FAILED: i32 = 125;
/// What the join trampoline prints before exiting with [`JOIN_FAILED`].
pub const JOIN_FAILED_MESSAGE: &str = "tenantflow: cannot join the attempt's cgroup";

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

impl Cgroup {
    pub fn create(v: &CgroupVersion, name: &str, limits: &Limits) -> std::io::Result<Cgroup> {
        let name: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        let dirs: Vec<PathBuf> = match v {
            // The cpu controller only when there is a cpu limit: joining a v1 hierarchy has a
            // cost on every attempt.
            CgroupVersion::V1(root) => ["memory", "cpu", "pids", "cpuacct"]
                .iter()
                .filter(|c| **c != "cpu" || limits.cpu_millis.is_some())
                .filter(|c| root.join(c).is_dir())
                .map(|c| root.join(c).join("tenantflow").join(&name))
                .collect(),
            CgroupVersion::V2(base) => vec![base.join(&name)],
        };
        for d in &dirs {
            std::fs::create_dir_all(d)?;
        }
        let g = Cgroup { dirs, version: v.clone() };
        g.limit(limits)?;
        Ok(g)
    }

    fn dir(&self, controller: &str) -> Option<&PathBuf> {
        match self.version {
            CgroupVersion::V2(_) => self.dirs.first(),
            CgroupVersion::V1(_) => {
                self.dirs.iter().find(|d| d.parent().and_then(|p| p.parent()).is_some_and(|p| p.ends_with(controller)))
            }
        }
    }

    fn limit(&self, l: &Limits) -> std::io::Result<()> {
        match self.version {
            CgroupVersion::V1(_) => {
                if let (Some(m), Some(d)) = (l.memory_bytes, self.dir("memory")) {
                    write(&d.join("memory.limit_in_bytes"), &m.to_string())?;
                    // No swapping around the limit, where the kernel allows setting it.
                    let _ = write(&d.join("memory.memsw.limit_in_bytes"), &m.to_string());
                    let _ = write(&d.join("memory.swappiness"), "0");
                }
                if let (Some(c), Some(d)) = (l.cpu_millis, self.dir("cpu")) {
                    write(&d.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                    write(&d.join("cpu.cfs_quota_us"), &(c * CPU_PERIOD_US / 1000).max(1000).to_string())?;
                }
                if let (Some(p), Some(d)) = (l.pids, self.dir("pids")) {
                    write(&d.join("pids.max"), &p.to_string())?;
                }
            }
            CgroupVersion::V2(_) => {
                let d = &self.dirs[0];
                if let Some(m) = l.memory_bytes {
                    write(&d.join("memory.max"), &m.to_string())?;
                    let _ = write(&d.join("memory.swap.max"), "0");
                }
                if let Some(c) = l.cpu_millis {
                    write(&d.join("cpu.max"), &format!("{} {CPU_PERIOD_US}", (c * CPU_PERIOD_US / 1000).max(1000)))?;
                }
                if let Some(p) = l.pids {
                    write(&d.join("pids.max"), &p.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// A command line that joins this cgroup and then executes `argv`: a tiny `/bin/sh`
    /// trampoline writes its own pid to each controller's `cgroup.procs`, then `exec`s.
    ///
    /// This lets the server start attempts with `posix_spawn` (no copy of its own address
    /// space, unlike a fork with a join between fork and exec), which matters when thousands of
    /// attempts start per second on a busy server. If a join fails the sandbox never starts and
    /// the process exits with [`JOIN_FAILED`] after printing [`JOIN_FAILED_MESSAGE`].
    pub fn join_then_exec(&self, argv: Vec<String>) -> Vec<String> {
        let mut a = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            format!(
                "n=$1; shift; while [ \"$n\" -gt 0 ]; do echo 0 2>/dev/null > \"$1\" || {{ echo \"{JOIN_FAILED_MESSAGE} $1\" >&2; exit {JOIN_FAILED}; }}; shift; n=$((n - 1)); done; exec \"$@\""
            ),
            "tenantflow-join".to_string(),
            self.dirs.len().to_string(),
        ];
        a.extend(self.dirs.iter().map(|d| d.join("cgroup.procs").to_string_lossy().into_owned()));
        a.extend(argv);
        a
    }

    fn members(&self) -> Vec<i32> {
        let Some(d) = self.dirs.first() else { return vec![] };
        std::fs::read_to_string(d.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// SIGKILLs every process in the cgroup once; returns whether there were any.
    pub fn signal_all(&self) -> bool {
        if let CgroupVersion::V2(_) = self.version {
            let _ = std::fs::write(self.dirs[0].join("cgroup.kill"), "1");
        }
        let pids = self.members();
        for &pid in &pids {
            // SAFETY: sending a signal; no memory is touched.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        !pids.is_empty()
    }

    /// SIGKILLs every process in the cgroup, until it is empty (for up to about a second).
    pub fn kill_all(&self) {
        let mut pause = std::time::Duration::from_micros(100);
        for _ in 0..60 {
            if !self.signal_all() {
                return;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(20));
        }
    }

    pub fn cpu_seconds(&self) -> Option<f64> {
        match self.version {
            CgroupVersion::V1(_) => {
                let d = self.dir("cpuacct")?;
                let ns: f64 = std::fs::read_to_string(d.join("cpuacct.usage")).ok()?.trim().parse().ok()?;
                Some(ns / 1e9)
            }
            CgroupVersion::V2(_) => {
                let stat = std::fs::read_to_string(self.dirs[0].join("cpu.stat")).ok()?;
                let us: f64 = stat.lines().find_map(|l| l.strip_prefix("usage_usec "))?.trim().parse().ok()?;
                Some(us / 1e6)
            }
        }
    }

    pub fn peak_memory(&self) -> Option<u64> {
        let (d, file) = match self.version {
            CgroupVersion::V1(_) => (self.dir("memory")?, "memory.max_usage_in_bytes"),
            CgroupVersion::V2(_) => (&self.dirs[0], "memory.peak"),
        };
        std::fs::read_to_string(d.join(file)).ok()?.trim().parse().ok()
    }

    pub fn oom_killed(&self) -> bool {
        let (d, file, key) = match self.version {
            CgroupVersion::V1(_) => match self.dir("memory") {
                Some(d) => (d, "memory.oom_control", "oom_kill "),
                None => return false,
            },
            CgroupVersion::V2(_) => (&self.dirs[0], "memory.events", "oom_kill "),
        };
        std::fs::read_to_string(d.join(file))
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix(key)).and_then(|n| n.trim().parse::<u64>().ok()))
            .is_some_and(|n| n > 0)
    }

    /// Kills what is left and removes the cgroup.
    pub fn remove(self) {
        self.kill_all();
        for d in &self.dirs {
            let mut pause = std::time::Duration::from_micros(100);
            for _ in 0..60 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(20));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trampoline(dirs: Vec<PathBuf>) -> std::process::Output {
        let g = Cgroup { dirs, version: CgroupVersion::V2(PathBuf::from("/nonexistent")) };
        let argv =
            g.join_then_exec(vec!["/bin/sh".into(), "-c".into(), "echo ran \"$@\"".into(), "x".into(), "a b".into()]);
        std::process::Command::new(&argv[0]).args(&argv[1..]).output().unwrap()
    }

    #[test]
    fn join_writes_every_controller_then_execs_the_command_with_its_arguments() {
        let tmp = std::env::temp_dir().join(format!("tf-join-{}", std::process::id()));
        let dirs: Vec<PathBuf> = ["memory", "pids"].iter().map(|c| tmp.join(c)).collect();
        for d in &dirs {
            std::fs::create_dir_all(d).unwrap();
        }
        let out = trampoline(dirs.clone());
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ran a b\n");
        for d in &dirs {
            assert_eq!(std::fs::read_to_string(d.join("cgroup.procs")).unwrap(), "0\n");
        }
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn a_failed_join_never_runs_the_command() {
        let out = trampoline(vec![PathBuf::from("/nonexistent/tf-cgroup")]);
        assert_eq!(out.status.code(), Some(JOIN_FAILED));
        assert!(out.stdout.is_empty(), "the command must not run: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with(JOIN_FAILED_MESSAGE), "{out:?}");
    }
}
