//! Per-attempt cgroups for memory, cpu and process limits, on cgroup v1 (one hierarchy per
//! controller) or v2 (one unified hierarchy). The child joins its cgroup between fork and exec,
//! so it and everything it starts are limited and accounted from their first instruction.

use crate::Limits;
use std::ffi::CString;
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
    procs: Vec<CString>,
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

impl Cgroup {
    pub fn create(v: &CgroupVersion, name: &str, limits: &Limits) -> std::io::Result<Cgroup> {
        let name: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        let dirs: Vec<PathBuf> = match v {
            CgroupVersion::V1(root) => ["memory", "cpu", "pids", "cpuacct"]
                .iter()
                .filter(|c| root.join(c).is_dir())
                .map(|c| root.join(c).join("tenantflow").join(&name))
                .collect(),
            CgroupVersion::V2(base) => vec![base.join(&name)],
        };
        for d in &dirs {
            std::fs::create_dir_all(d)?;
        }
        let g = Cgroup {
            procs: dirs
                .iter()
                .map(|d| CString::new(d.join("cgroup.procs").to_string_lossy().into_owned()).expect("no NUL"))
                .collect(),
            dirs,
            version: v.clone(),
        };
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

    /// Makes the spawned child join this cgroup before it executes anything.
    pub fn attach_on_spawn(&self, cmd: &mut tokio::process::Command) {
        let procs = self.procs.clone();
        // SAFETY: between fork and exec only async-signal-safe calls are made (open, write,
        // close) on paths prepared before the fork; nothing allocates.
        unsafe {
            cmd.pre_exec(move || {
                let mut buf = [0u8; 24];
                let pid = libc::getpid();
                let n = fmt_pid(pid, &mut buf);
                for p in &procs {
                    let fd = libc::open(p.as_ptr(), libc::O_WRONLY);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let w = libc::write(fd, buf.as_ptr() as *const libc::c_void, n);
                    libc::close(fd);
                    if w < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }

    fn members(&self) -> Vec<i32> {
        let Some(d) = self.dirs.first() else { return vec![] };
        std::fs::read_to_string(d.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// SIGKILLs every process in the cgroup, until it is empty.
    pub fn kill_all(&self) {
        if let CgroupVersion::V2(_) = self.version {
            let _ = std::fs::write(self.dirs[0].join("cgroup.kill"), "1");
        }
        for _ in 0..50 {
            let pids = self.members();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                // SAFETY: sending a signal; no memory is touched.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
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
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
}

/// Formats a pid into `buf` without allocating; returns the length.
fn fmt_pid(pid: i32, buf: &mut [u8; 24]) -> usize {
    let mut n = pid as u64;
    let mut tmp = [0u8; 24];
    let mut i = 0;
    loop {
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        i += 1;
        if n == 0 {
            break;
        }
    }
    for j in 0..i {
        buf[j] = tmp[i - 1 - j];
    }
    i
}
