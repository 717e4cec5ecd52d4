//! Who made a connection. A cache of processes, seeded from `/proc` at start and kept
//! current by the kernel's exec and exit events, so a process that connects and exits
//! within a millisecond still has its command line, parent and user in the record.
//!
//! Bounded by entry count and by the bytes of argument text it holds; the oldest entries
//! go first.

use std::{
    collections::{HashMap, VecDeque},
    path::{Path, PathBuf},
};

use nix::unistd::{Uid, User};

use crate::event::ExecRecord;

/// What the cache knows about one process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    pub tgid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub euid: u32,
    pub comm: String,
    /// The program as executed (path given to execve, or /proc/PID/exe when seeded).
    pub exe: Option<String>,
    pub args: Vec<String>,
    pub args_truncated: bool,
    /// Creation time, nanoseconds since boot.
    pub start_boot_ns: Option<u64>,
}

impl ProcessInfo {
    /// The executable's file name, else the comm.
    pub fn file_name(&self) -> &str {
        self.exe
            .as_deref()
            .and_then(|path| path.rsplit('/').next())
            .filter(|name| !name.is_empty())
            .unwrap_or(&self.comm)
    }

    fn cost(&self) -> usize {
        128 + self.comm.len()
            + self.exe.as_ref().map_or(0, String::len)
            + self.args.iter().map(|a| a.len() + 24).sum::<usize>()
    }
}

/// Limits of the cache.
#[derive(Clone, Copy, Debug)]
pub struct CacheLimits {
    pub max_processes: usize,
    pub max_bytes: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self {
            max_processes: 16_384,
            max_bytes: 8 << 20,
        }
    }
}

#[derive(Debug)]
pub struct ProcessCache {
    entries: HashMap<u32, ProcessInfo>,
    /// Insertion order, for eviction; may name tgids already gone.
    order: VecDeque<u32>,
    bytes: usize,
    limits: CacheLimits,
    users: HashMap<u32, Option<String>>,
    proc_root: PathBuf,
    clock_ticks: u64,
}

impl ProcessCache {
    pub fn new(limits: CacheLimits) -> Self {
        Self::with_proc_root(limits, PathBuf::from("/proc"))
    }

    pub fn with_proc_root(limits: CacheLimits, proc_root: PathBuf) -> Self {
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            limits,
            users: HashMap::new(),
            proc_root,
            clock_ticks: u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes accounted to the cached entries (an estimate of their heap use).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Reads every process in /proc. Returns how many were added.
    pub fn seed_from_proc(&mut self) -> usize {
        let Ok(dir) = std::fs::read_dir(&self.proc_root) else {
            return 0;
        };
        let tgids: Vec<u32> = dir
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        let mut added = 0;
        for tgid in tgids {
            if let Some(info) = self.read_proc(tgid) {
                self.insert(info);
                added += 1;
            }
        }
        added
    }

    /// What /proc says about `tgid`, while it runs.
    pub fn read_proc(&self, tgid: u32) -> Option<ProcessInfo> {
        let dir = self.proc_root.join(tgid.to_string());
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        let (comm, ppid, start_ticks) = parse_stat(&stat)?;
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let (uid, euid) = parse_uids(&status).unwrap_or((u32::MAX, u32::MAX));
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let exe = std::fs::read_link(dir.join("exe")).ok().map(|p| {
            let p = p.to_string_lossy();
            p.strip_suffix(" (deleted)").unwrap_or(&p).to_string()
        });
        Some(ProcessInfo {
            tgid,
            ppid,
            uid,
            euid,
            comm,
            exe,
            args: split_nul(&cmdline),
            args_truncated: false,
            start_boot_ns: Some(start_ticks.saturating_mul(1_000_000_000 / self.clock_ticks)),
        })
    }

    pub fn on_exec(&mut self, exec: &ExecRecord) {
        let exe = if exec.filename.starts_with('/') || exec.filename.is_empty() {
            (!exec.filename.is_empty()).then(|| exec.filename.clone())
        } else {
            // Relative path: /proc knows the absolute one while the process runs.
            std::fs::read_link(self.proc_root.join(exec.tgid.to_string()).join("exe"))
                .ok()
                .map(|p| p.to_string_lossy().into_owned())
                .or_else(|| Some(exec.filename.clone()))
        };
        self.insert(ProcessInfo {
            tgid: exec.tgid,
            ppid: exec.ppid,
            uid: exec.uid,
            euid: exec.euid,
            comm: exec.comm.clone(),
            exe,
            args: exec.args.clone(),
            args_truncated: exec.args_truncated,
            start_boot_ns: (exec.start_boot_ns != 0).then_some(exec.start_boot_ns),
        });
    }

    pub fn on_exit(&mut self, tgid: u32) {
        if let Some(old) = self.entries.remove(&tgid) {
            self.bytes = self.bytes.saturating_sub(old.cost());
        }
    }

    /// The process `tgid`: from the cache, else from /proc when it still runs under
    /// `comm` (then cached). `None` for a process gone before we heard of it.
    pub fn lookup(&mut self, tgid: u32, comm: &str) -> Option<&ProcessInfo> {
        let known = self.entries.get(&tgid).is_some_and(|p| p.comm == comm);
        if !known {
            let info = self.read_proc(tgid).filter(|p| p.comm == comm)?;
            self.insert(info);
        }
        self.entries.get(&tgid)
    }

    pub fn get(&self, tgid: u32) -> Option<&ProcessInfo> {
        self.entries.get(&tgid)
    }

    /// Parent, grandparent, ... as far as the cache knows (at most `max`).
    pub fn ancestors(&self, tgid: u32, max: usize) -> Vec<&ProcessInfo> {
        let mut chain = Vec::new();
        let mut current = self.entries.get(&tgid).map(|p| p.ppid);
        while let Some(ppid) = current {
            if chain.len() >= max || ppid == 0 || ppid == tgid {
                break;
            }
            let Some(parent) = self.entries.get(&ppid) else {
                break;
            };
            chain.push(parent);
            current = (parent.ppid != parent.tgid).then_some(parent.ppid);
        }
        chain
    }

    pub fn user_name(&mut self, uid: u32) -> Option<String> {
        self.users
            .entry(uid)
            .or_insert_with(|| {
                User::from_uid(Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|user| user.name)
            })
            .clone()
    }

    fn insert(&mut self, info: ProcessInfo) {
        let tgid = info.tgid;
        self.bytes += info.cost();
        if let Some(old) = self.entries.insert(tgid, info) {
            self.bytes = self.bytes.saturating_sub(old.cost());
        }
        self.order.push_back(tgid);
        while self.entries.len() > self.limits.max_processes || self.bytes > self.limits.max_bytes {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            // A tgid re-inserted later is still queued further back; skip this stale slot.
            if self.order.contains(&oldest) && oldest != tgid {
                continue;
            }
            if oldest == tgid && self.entries.len() == 1 {
                break;
            }
            self.on_exit(oldest);
        }
        if self.order.len() > self.limits.max_processes * 2 {
            let entries = &self.entries;
            self.order.retain(|t| entries.contains_key(t));
        }
    }
}

fn split_nul(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// (comm, ppid, starttime in clock ticks) from /proc/PID/stat. The comm may contain
/// spaces and parentheses, so it is everything between the first '(' and the last ')'.
fn parse_stat(stat: &str) -> Option<(String, u32, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // After the comm: state(0) ppid(1) ... starttime is field 22 overall, index 19 here.
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((comm, ppid, start))
}

/// (real uid, effective uid) from /proc/PID/status.
fn parse_uids(status: &str) -> Option<(u32, u32)> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    let mut ids = line.split_whitespace().skip(1);
    Some((ids.next()?.parse().ok()?, ids.next()?.parse().ok()?))
}

/// The proc root used when nothing else is configured.
pub fn default_proc_root() -> &'static Path {
    Path::new("/proc")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(tgid: u32, ppid: u32, comm: &str, args: &[&str]) -> ExecRecord {
        ExecRecord {
            boot_ns: 1,
            start_boot_ns: 5,
            cgroup_id: 1,
            tgid,
            ppid,
            uid: 0,
            euid: 0,
            gid: 0,
            comm: comm.into(),
            filename: format!("/usr/bin/{comm}"),
            args: args.iter().map(|s| s.to_string()).collect(),
            args_truncated: false,
        }
    }

    #[test]
    fn stat_parsing_survives_hostile_comm() {
        let stat = "42 (a) b (c)) S 7 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10";
        assert_eq!(parse_stat(stat), Some(("a) b (c)".into(), 7, 12345)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(
            parse_uids("Name:\tx\nUid:\t1000\t0\t0\t0\n"),
            Some((1000, 0))
        );
    }

    #[test]
    fn exec_then_exit_and_ancestry() {
        let mut cache = ProcessCache::new(CacheLimits::default());
        cache.on_exec(&exec(10, 1, "cron", &["cron"]));
        cache.on_exec(&exec(11, 10, "sh", &["sh", "-c", "nc -z h 22"]));
        cache.on_exec(&exec(12, 11, "nc", &["nc", "-z", "h", "22"]));
        let names: Vec<_> = cache
            .ancestors(12, 8)
            .iter()
            .map(|p| p.file_name())
            .collect();
        assert_eq!(names, vec!["sh", "cron"]);
        assert_eq!(cache.get(12).unwrap().args, vec!["nc", "-z", "h", "22"]);
        cache.on_exit(12);
        assert!(cache.get(12).is_none());
    }

    #[test]
    fn ancestry_stops_on_cycles_and_depth() {
        let mut cache = ProcessCache::new(CacheLimits::default());
        cache.on_exec(&exec(20, 21, "a", &[]));
        cache.on_exec(&exec(21, 20, "b", &[]));
        assert!(cache.ancestors(20, 5).len() <= 5);
    }

    #[test]
    fn bounded_by_count_and_bytes() {
        let mut cache = ProcessCache::new(CacheLimits {
            max_processes: 3,
            max_bytes: usize::MAX,
        });
        for tgid in 100..110 {
            cache.on_exec(&exec(tgid, 1, "x", &["x"]));
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get(109).is_some() && cache.get(100).is_none());

        let big = "y".repeat(1000);
        let mut small = ProcessCache::new(CacheLimits {
            max_processes: 1000,
            max_bytes: 5000,
        });
        for tgid in 0..50 {
            small.on_exec(&exec(tgid, 1, "x", &[&big]));
        }
        assert!(small.bytes() <= 5000, "{}", small.bytes());
        assert!(small.get(49).is_some());
    }

    #[test]
    fn seeds_from_proc_including_ourselves() {
        let mut cache = ProcessCache::new(CacheLimits::default());
        assert!(cache.seed_from_proc() > 1);
        let me = cache.get(std::process::id()).expect("own process seeded");
        assert_eq!(me.exe.as_deref(), std::env::current_exe().unwrap().to_str());
        assert!(me.start_boot_ns.is_some());
        assert_eq!(cache.user_name(0).as_deref(), Some("root"));
    }
}
