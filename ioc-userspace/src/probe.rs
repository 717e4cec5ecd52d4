//! `iocmon probe`: what this kernel and this process offer, and whether `iocmon run` can
//! work here. Every check reads or asks; none mounts, attaches or writes anything, so
//! the probe is safe to run on a device before installing the agent.
//!
//! The checks that need the `bpf()` system call live in `kernel::features`; this module
//! reads /proc and /sys itself, turns each finding into a [`Check`] and the checks into a
//! [`Verdict`]. Parsing is kept in pure functions of the texts read, for the unit tests.

use std::{
    io::ErrorKind,
    path::{Path, PathBuf},
    process::ExitCode,
};

use serde::Serialize;

use crate::kernel::{
    cgroup::{find_cgroup2_root, unescape_octal, FALLBACK_MOUNT},
    features::{self, Feature},
};

/// Where the agent pins its programs and maps in service mode.
pub const BPFFS_MOUNT: &str = "/sys/fs/bpf";
/// The oldest kernel with everything iocmon uses (docs/KERNELS.md).
pub const KERNEL_FLOOR: (u32, u32) = (5, 8);

/// Capability numbers (linux/capability.h) that matter to the agent.
mod cap {
    pub const NET_ADMIN: u32 = 12;
    pub const SYS_PTRACE: u32 = 19;
    pub const SYS_ADMIN: u32 = 21;
    pub const PERFMON: u32 = 38;
    pub const BPF: u32 = 39;
    pub const NAMES: [(u32, &str); 5] = [
        (BPF, "CAP_BPF"),
        (PERFMON, "CAP_PERFMON"),
        (NET_ADMIN, "CAP_NET_ADMIN"),
        (SYS_ADMIN, "CAP_SYS_ADMIN"),
        (SYS_PTRACE, "CAP_SYS_PTRACE"),
    ];
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Present and as the agent needs it.
    Ok,
    /// The agent runs, but something is reduced or left for the operator to do.
    Warn,
    /// The agent cannot run without it.
    Missing,
    /// Could not be checked (no privileges, or tracefs not mounted).
    Unchecked,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Missing => "missing",
            Status::Unchecked => "unchecked",
        }
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

impl Check {
    fn new(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status,
            detail: detail.into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every check passed (exit 0).
    CanRun,
    /// Nothing is missing, but something is reduced or could not be checked (exit 2).
    CanRunLimited,
    /// At least one check is missing (exit 1).
    CannotRun,
}

impl Verdict {
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::CanRun => 0,
            Verdict::CannotRun => 1,
            Verdict::CanRunLimited => 2,
        }
    }

    fn sentence(self) -> &'static str {
        match self {
            Verdict::CanRun => "iocmon can run here",
            Verdict::CanRunLimited => "iocmon can run here, with limits",
            Verdict::CannotRun => "iocmon cannot run here",
        }
    }
}

/// Everything the probe found.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    pub exit_code: u8,
    /// The kernel release, as `uname -r` prints it.
    pub kernel_release: String,
    /// The checks that decided the verdict (missing ones, else warnings), as
    /// "name: detail".
    pub reasons: Vec<String>,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn from_checks(kernel_release: String, checks: Vec<Check>) -> Self {
        let (verdict, reasons) = verdict(&checks);
        Self {
            verdict,
            exit_code: verdict.exit_code(),
            kernel_release,
            reasons,
            checks,
        }
    }

    /// A table for people: one line per check, then the verdict and its reasons.
    pub fn render_text(&self) -> String {
        let name_width = self
            .checks
            .iter()
            .map(|c| c.name.len())
            .chain(["CHECK".len()])
            .max()
            .unwrap_or(0);
        let mut out = format!("iocmon probe: Linux {}\n\n", self.kernel_release);
        out.push_str(&format!(
            "{:name_width$}  {:9}  DETAIL\n",
            "CHECK", "STATUS"
        ));
        for check in &self.checks {
            out.push_str(&format!(
                "{:name_width$}  {:9}  {}\n",
                check.name,
                check.status.label(),
                check.detail
            ));
        }
        out.push_str(&format!(
            "\nverdict: {} (exit {})\n",
            self.verdict.sentence(),
            self.exit_code
        ));
        for reason in &self.reasons {
            out.push_str(&format!("  - {reason}\n"));
        }
        out
    }
}

/// The verdict, and the checks behind it.
pub fn verdict(checks: &[Check]) -> (Verdict, Vec<String>) {
    let with = |wanted: &[Status]| -> Vec<String> {
        checks
            .iter()
            .filter(|c| wanted.contains(&c.status))
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect()
    };
    let missing = with(&[Status::Missing]);
    if !missing.is_empty() {
        return (Verdict::CannotRun, missing);
    }
    let limits = with(&[Status::Warn, Status::Unchecked]);
    if !limits.is_empty() {
        return (Verdict::CanRunLimited, limits);
    }
    (Verdict::CanRun, Vec::new())
}

/// `iocmon probe [--json]`: prints the report and returns its exit code.
pub fn run(json: bool) -> ExitCode {
    let report = probe();
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(err) => {
                eprintln!("iocmon: error: rendering the probe report: {err}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", report.render_text());
    }
    ExitCode::from(report.exit_code)
}

/// Runs every check against this machine.
pub fn probe() -> Report {
    let read = |path: &str| std::fs::read_to_string(path);
    let release = read("/proc/sys/kernel/osrelease")
        .map(|text| text.trim().to_string())
        .unwrap_or_default();
    let status_text = read("/proc/self/status").unwrap_or_default();
    let mountinfo = read("/proc/self/mountinfo").unwrap_or_default();
    let filesystems = read("/proc/filesystems").unwrap_or_default();

    let mut checks = vec![kernel_check(&release), service_mode_check(&release)];
    let (privileges, privileged) = privileges_check(&status_text, nix::unistd::geteuid().as_raw());
    checks.push(privileges);
    checks.push(lockdown_check(
        read("/sys/kernel/security/lockdown").ok().as_deref(),
    ));
    checks.push(cgroup_check(&mountinfo, &filesystems));
    checks.push(bpffs_check(&mountinfo, &filesystems));
    let (tracefs, tracefs_dir) = tracefs_check(&mountinfo, &filesystems);
    checks.push(tracefs);
    for (program, category, event) in features::attached_tracepoints() {
        let format = tracefs_dir.as_ref().map(|dir| {
            std::fs::read_to_string(dir.join("events").join(category).join(event).join("format"))
        });
        checks.push(tracepoint_check(program, category, event, format));
    }
    checks.push(btf_check());
    if privileged {
        checks.extend(bpf_checks());
    } else {
        for name in BPF_CHECK_NAMES {
            checks.push(Check::new(
                name,
                Status::Unchecked,
                "cannot check: not privileged (the probe loads throw-away BPF programs)",
            ));
        }
    }
    Report::from_checks(release, checks)
}

/// The checks that load BPF objects, in report order.
const BPF_CHECK_NAMES: [&str; 5] = [
    "ringbuf",
    "map-types",
    "program-types",
    "helpers",
    "verifier",
];

fn bpf_checks() -> Vec<Check> {
    let mut checks = vec![
        feature_check(
            BPF_CHECK_NAMES[0],
            &[features::ring_buffer()],
            "every event goes through one ring buffer",
        ),
        feature_check(
            BPF_CHECK_NAMES[1],
            &features::map_types(),
            "indicator and setting maps",
        ),
        feature_check(
            BPF_CHECK_NAMES[2],
            &features::program_types(),
            "connect/sendmsg hooks, DNS capture, process tracepoints",
        ),
        feature_check(
            BPF_CHECK_NAMES[3],
            &features::helpers(),
            "pid/comm/cgroup id in socket programs 5.7, ring buffer and boot clock 5.8, \
             kernel and user memory reads 5.5",
        ),
    ];
    checks.push(match features::load_programs() {
        Ok(count) => Check::new(
            BPF_CHECK_NAMES[4],
            Status::Ok,
            format!("the kernel accepted all {count} of iocmon's programs (loaded, not attached, unloaded)"),
        ),
        Err(err) => Check::new(BPF_CHECK_NAMES[4], Status::Missing, format!("{err:#}")),
    });
    checks
}

/// One check over several features: missing when any is unsupported, unchecked when a
/// probe could not answer.
pub fn feature_check(name: &str, features: &[Feature], purpose: &str) -> Check {
    let unsupported: Vec<String> = features
        .iter()
        .filter(|f| f.supported == Ok(false))
        .map(|f| format!("{} (since {})", f.name, f.since))
        .collect();
    let unanswered: Vec<String> = features
        .iter()
        .filter_map(|f| match &f.supported {
            Err(err) => Some(format!("{}: {err}", f.name)),
            Ok(_) => None,
        })
        .collect();
    if !unsupported.is_empty() {
        return Check::new(
            name,
            Status::Missing,
            format!("not supported: {}", unsupported.join(", ")),
        );
    }
    if !unanswered.is_empty() {
        return Check::new(
            name,
            Status::Unchecked,
            format!("probe failed: {}", unanswered.join("; ")),
        );
    }
    // Long lists (the helpers) read better as a count.
    let what = if features.len() > 5 {
        format!("all {} supported", features.len())
    } else {
        features
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    Check::new(name, Status::Ok, format!("{what} ({purpose})"))
}

/// (major, minor) of a release string such as "6.1.0-18-amd64".
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

pub fn kernel_check(release: &str) -> Check {
    let (floor_major, floor_minor) = KERNEL_FLOOR;
    match parse_release(release) {
        Some(version) if version >= KERNEL_FLOOR => Check::new(
            "kernel",
            Status::Ok,
            format!(
                "{release} >= {floor_major}.{floor_minor} (the ring buffer and \
                 bpf_ktime_get_boot_ns need 5.8, pid/comm helpers in socket programs 5.7)"
            ),
        ),
        Some(_) => Check::new(
            "kernel",
            Status::Warn,
            format!(
                "{release} is below the {floor_major}.{floor_minor} floor (ring buffer, \
                 bpf_ktime_get_boot_ns): untested; vendor backports may have them, the \
                 BPF checks below decide"
            ),
        ),
        None => Check::new(
            "kernel",
            Status::Warn,
            format!("cannot read the version in release {release:?}"),
        ),
    }
}

/// The effective capability set from /proc/self/status text.
/// Service mode (`run --pin`) pins every link; tracepoints are attached through BPF
/// links only from 5.15, before which each agent attaches them again.
pub fn service_mode_check(release: &str) -> Check {
    match parse_release(release) {
        Some(version) if version >= (5, 15) => Check::new(
            "service-mode",
            Status::Ok,
            "links of every program can be pinned (run --pin keeps them across restarts)",
        ),
        _ => Check::new(
            "service-mode",
            Status::Warn,
            format!(
                "{release}: tracepoint links can be pinned from 5.15; with --pin the \
                 connect, send and DNS programs stay attached between agents, the process \
                 tracepoints only while an agent runs (process starts during a restart \
                 are missed)"
            ),
        ),
    }
}

pub fn parse_cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// The privileges check, and whether the BPF checks can run.
pub fn privileges_check(status: &str, euid: u32) -> (Check, bool) {
    let Some(effective) = parse_cap_eff(status) else {
        let check = Check::new(
            "privileges",
            Status::Missing,
            "no CapEff line in /proc/self/status",
        );
        return (check, false);
    };
    let has = |cap: u32| effective & (1u64 << cap) != 0;
    let held: Vec<&str> = cap::NAMES
        .iter()
        .filter(|(bit, _)| has(*bit))
        .map(|(_, name)| *name)
        .collect();
    let held = if held.is_empty() {
        "none of the capabilities iocmon uses".to_string()
    } else {
        held.join(" ")
    };
    let who = format!("euid {euid}, CapEff {effective:#x} ({held})");
    // Loading cgroup programs needs CAP_NET_ADMIN, tracepoint programs CAP_PERFMON, both
    // CAP_BPF (5.8+); CAP_SYS_ADMIN stands in for all three.
    let can_load =
        has(cap::SYS_ADMIN) || (has(cap::BPF) && has(cap::PERFMON) && has(cap::NET_ADMIN));
    if !can_load {
        let check = Check::new(
            "privileges",
            Status::Missing,
            format!(
                "{who}: needs root (CAP_SYS_ADMIN, or CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN) \
                 to load and attach BPF programs"
            ),
        );
        return (check, false);
    }
    let mut reduced = Vec::new();
    if !has(cap::SYS_ADMIN) {
        reduced.push("without CAP_SYS_ADMIN the agent cannot mount tracefs or a cgroup v2 hierarchy when absent");
    }
    if !has(cap::SYS_PTRACE) {
        reduced.push("without CAP_SYS_PTRACE /proc/PID/exe of other users' processes is unreadable (no folder path for processes running before start)");
    }
    let check = if reduced.is_empty() {
        Check::new("privileges", Status::Ok, who)
    } else {
        Check::new(
            "privileges",
            Status::Warn,
            format!("{who}; {}", reduced.join("; ")),
        )
    };
    (check, true)
}

/// `/sys/kernel/security/lockdown` reads like "none [integrity] confidentiality".
pub fn lockdown_check(text: Option<&str>) -> Check {
    let Some(text) = text else {
        return Check::new(
            "lockdown",
            Status::Ok,
            "not reported (no securityfs or no lockdown LSM): treated as none",
        );
    };
    let mode = text
        .split_whitespace()
        .find_map(|word| word.strip_prefix('[')?.strip_suffix(']'))
        .unwrap_or("unknown");
    match mode {
        "confidentiality" => Check::new(
            "lockdown",
            Status::Missing,
            "lockdown=confidentiality refuses bpf_probe_read_kernel, which the exec program \
             needs for command lines",
        ),
        "none" | "integrity" => Check::new("lockdown", Status::Ok, mode),
        other => Check::new(
            "lockdown",
            Status::Warn,
            format!("unrecognised lockdown state {other:?}"),
        ),
    }
}

/// Mount points of every `fstype` mount in mountinfo text.
pub fn mount_points(mountinfo: &str, fstype: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (mount, fs) = line.split_once(" - ")?;
            (fs.split_whitespace().next()? == fstype).then_some(())?;
            let mount_point = mount.split_whitespace().nth(4)?;
            Some(PathBuf::from(unescape_octal(mount_point)))
        })
        .collect()
}

/// Whether /proc/filesystems lists `fstype` (built in or from a loaded module).
pub fn kernel_has_filesystem(filesystems: &str, fstype: &str) -> bool {
    filesystems
        .lines()
        .any(|line| line.split_whitespace().last() == Some(fstype))
}

pub fn cgroup_check(mountinfo: &str, filesystems: &str) -> Check {
    if let Some(root) = find_cgroup2_root(mountinfo) {
        return Check::new(
            "cgroup-v2",
            Status::Ok,
            format!("root mounted at {}", root.display()),
        );
    }
    if kernel_has_filesystem(filesystems, "cgroup2") {
        let v1 = !mount_points(mountinfo, "cgroup").is_empty();
        return Check::new(
            "cgroup-v2",
            Status::Ok,
            format!(
                "{}no cgroup v2 root is mounted; the agent mounts one at {FALLBACK_MOUNT} at \
                 start (every process sits in its root)",
                if v1 {
                    "only cgroup v1 is mounted: "
                } else {
                    ""
                }
            ),
        );
    }
    Check::new(
        "cgroup-v2",
        Status::Missing,
        "the kernel has no cgroup2 file system: the socket and DNS programs attach to the \
         cgroup v2 root",
    )
}

pub fn bpffs_check(mountinfo: &str, filesystems: &str) -> Check {
    let mounts = mount_points(mountinfo, "bpf");
    if mounts.iter().any(|m| m == Path::new(BPFFS_MOUNT)) {
        return Check::new(
            "bpffs",
            Status::Ok,
            format!("mounted at {BPFFS_MOUNT} (service mode pins under {BPFFS_MOUNT}/iocmon)"),
        );
    }
    let elsewhere = if mounts.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = mounts.iter().map(|m| m.display().to_string()).collect();
        format!(" (mounted at {} instead)", list.join(", "))
    };
    let fix = if kernel_has_filesystem(filesystems, "bpf") {
        format!("mount it on the host first: mount -t bpf bpf {BPFFS_MOUNT}")
    } else {
        "and the kernel lists no bpf file system, so service mode cannot pin".to_string()
    };
    Check::new(
        "bpffs",
        Status::Warn,
        format!(
            "not mounted at {BPFFS_MOUNT}{elsewhere}: service mode (run --pin) mounts it \
             itself, but under systemd that mount stays inside the unit's namespace and the \
             pins, and with them gapless restarts, die with the agent; {fix}"
        ),
    )
}

/// The tracefs check, and the directory holding `events/` when tracefs is mounted.
pub fn tracefs_check(mountinfo: &str, filesystems: &str) -> (Check, Option<PathBuf>) {
    let mounted = mount_points(mountinfo, "tracefs");
    // debugfs automounts tracefs under /sys/kernel/debug/tracing on first access, so a
    // directory with events/ counts even without a mountinfo line.
    let found = features::TRACEFS_MOUNTS
        .iter()
        .map(PathBuf::from)
        .find(|dir| mounted.contains(dir) || dir.join("events").is_dir());
    if let Some(dir) = found {
        let check = Check::new(
            "tracefs",
            Status::Ok,
            format!("mounted at {}", dir.display()),
        );
        return (check, Some(dir));
    }
    if kernel_has_filesystem(filesystems, "tracefs") {
        let check = Check::new(
            "tracefs",
            Status::Ok,
            format!(
                "not mounted; the agent mounts it at {} at start (mount it and probe again \
                 to check the tracepoints)",
                features::TRACEFS_MOUNTS[0]
            ),
        );
        return (check, None);
    }
    let check = Check::new(
        "tracefs",
        Status::Missing,
        "the kernel has no tracefs (CONFIG_TRACING): the process tracepoints cannot attach",
    );
    (check, None)
}

/// One attached tracepoint, from its `format` file (`None`: tracefs is not mounted).
pub fn tracepoint_check(
    program: &str,
    category: &str,
    event: &str,
    format: Option<std::io::Result<String>>,
) -> Check {
    let name = format!("tracepoint:{category}/{event}");
    let format = match format {
        None => {
            return Check::new(
                name,
                Status::Unchecked,
                "cannot check: tracefs is not mounted",
            );
        }
        Some(Err(err)) if err.kind() == ErrorKind::NotFound => {
            return Check::new(
                name,
                Status::Missing,
                format!(
                    "no such event: the agent attaches {program} to it and stops when it cannot"
                ),
            );
        }
        Some(Err(err)) if err.kind() == ErrorKind::PermissionDenied => {
            return Check::new(
                name,
                Status::Unchecked,
                "cannot check: not privileged (tracefs is readable by root only)",
            );
        }
        Some(Err(err)) => {
            return Check::new(
                name,
                Status::Unchecked,
                format!("cannot read its format: {err}"),
            );
        }
        Some(Ok(format)) => format,
    };
    match event {
        "sched_process_exec" => match features::tracepoint_field_offset(&format, "filename") {
            Some(offset) => Check::new(
                name,
                Status::Ok,
                format!("{program}; filename at offset {offset}"),
            ),
            None => Check::new(
                name,
                Status::Missing,
                "the record has no filename field, which the exec program reads",
            ),
        },
        "inet_sock_set_state" => match features::sock_state_offsets(&format) {
            Some(_) => Check::new(
                name,
                Status::Ok,
                format!("{program}; skaddr, newstate, sport, saddr_v6 present"),
            ),
            None => Check::new(
                name,
                Status::Warn,
                "the record lacks skaddr, newstate, sport or saddr_v6: no connection \
                 outcomes (--connection-outcomes reports nothing)",
            ),
        },
        _ => Check::new(name, Status::Ok, program.to_string()),
    }
}

fn btf_check() -> Check {
    match features::btf_offsets() {
        Ok(offsets) => Check::new(
            "btf",
            Status::Ok,
            format!(
                "/sys/kernel/btf/vmlinux: task_struct.mm +{}, .real_parent +{}, .tgid +{}, \
                 .cred +{}, cred.euid +{}, mm_struct.arg_start +{}",
                offsets.task_mm,
                offsets.task_real_parent,
                offsets.task_tgid,
                offsets.task_cred,
                offsets.cred_euid,
                offsets.mm_arg_start
            ),
        ),
        Err(err) => Check::new(
            "btf",
            Status::Missing,
            format!(
                "{err:#}: the exec program's structure offsets come from BTF \
                 (CONFIG_DEBUG_INFO_BTF), and the agent stops at start without them"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn service_mode_needs_5_15() {
        assert_eq!(
            super::service_mode_check("6.1.0-40-amd64").status,
            super::Status::Ok
        );
        let old = super::service_mode_check("5.10.0-35-arm64");
        assert_eq!(old.status, super::Status::Warn);
        assert!(
            old.detail.contains("only while an agent runs"),
            "{}",
            old.detail
        );
    }

    use super::*;

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
45 23 0:40 / /sys/fs/bpf rw,relatime - bpf bpf rw
46 23 0:13 / /sys/kernel/tracing rw,relatime - tracefs tracefs rw
";
    const FILESYSTEMS: &str =
        "nodev\tsysfs\nnodev\tcgroup\nnodev\tcgroup2\nnodev\ttracefs\nnodev\tbpf\n\text4\n";

    fn check(name: &str, status: Status) -> Check {
        Check::new(name, status, "detail")
    }

    #[test]
    fn verdict_follows_the_worst_status() {
        let ok = [check("a", Status::Ok), check("b", Status::Ok)];
        assert_eq!(verdict(&ok), (Verdict::CanRun, vec![]));
        let limited = [check("a", Status::Ok), check("b", Status::Unchecked)];
        assert_eq!(verdict(&limited).0, Verdict::CanRunLimited);
        assert_eq!(verdict(&limited).1, vec!["b: detail".to_string()]);
        let warned = [check("a", Status::Warn), check("b", Status::Ok)];
        assert_eq!(verdict(&warned).0, Verdict::CanRunLimited);
        let missing = [check("a", Status::Warn), check("b", Status::Missing)];
        assert_eq!(
            verdict(&missing),
            (Verdict::CannotRun, vec!["b: detail".to_string()])
        );
        assert_eq!(Verdict::CanRun.exit_code(), 0);
        assert_eq!(Verdict::CannotRun.exit_code(), 1);
        assert_eq!(Verdict::CanRunLimited.exit_code(), 2);
    }

    #[test]
    fn kernel_floor_is_5_8() {
        assert_eq!(parse_release("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(parse_release("5.10.0"), Some((5, 10)));
        assert_eq!(parse_release("garbage"), None);
        assert_eq!(kernel_check("5.8.0").status, Status::Ok);
        assert_eq!(kernel_check("5.15.0-91-generic").status, Status::Ok);
        assert_eq!(kernel_check("5.7.19").status, Status::Warn);
        assert_eq!(kernel_check("4.19.0-rt").status, Status::Warn);
        assert_eq!(kernel_check("").status, Status::Warn);
    }

    #[test]
    fn privileges_come_from_cap_eff() {
        let root = "Name:\tiocmon\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n";
        let (check, privileged) = privileges_check(root, 0);
        assert!(privileged);
        assert_eq!(check.status, Status::Ok, "{check:?}");

        let nobody = "CapEff:\t0000000000000000\n";
        let (check, privileged) = privileges_check(nobody, 65534);
        assert!(!privileged);
        assert_eq!(check.status, Status::Missing);
        assert!(check.detail.contains("needs root"), "{}", check.detail);

        // root in a container that dropped CAP_SYS_ADMIN and CAP_NET_ADMIN: not enough.
        let dropped = (1u64 << cap::BPF) | (1u64 << cap::PERFMON);
        let (check, privileged) = privileges_check(&format!("CapEff:\t{dropped:016x}\n"), 0);
        assert!(!privileged);
        assert_eq!(check.status, Status::Missing);

        // The split capabilities load and attach, with reduced extras.
        let split = (1u64 << cap::BPF) | (1u64 << cap::PERFMON) | (1u64 << cap::NET_ADMIN);
        let (check, privileged) = privileges_check(&format!("CapEff:\t{split:016x}\n"), 0);
        assert!(privileged);
        assert_eq!(check.status, Status::Warn);
        assert!(check.detail.contains("CAP_SYS_PTRACE"), "{}", check.detail);

        assert!(!privileges_check("Name: x\n", 0).1);
    }

    #[test]
    fn lockdown_confidentiality_blocks() {
        assert_eq!(lockdown_check(None).status, Status::Ok);
        assert_eq!(
            lockdown_check(Some("[none] integrity confidentiality\n")).status,
            Status::Ok
        );
        assert_eq!(
            lockdown_check(Some("none [integrity] confidentiality\n")).status,
            Status::Ok
        );
        assert_eq!(
            lockdown_check(Some("none integrity [confidentiality]\n")).status,
            Status::Missing
        );
    }

    #[test]
    fn finds_mounts_by_type() {
        assert_eq!(
            mount_points(MOUNTINFO, "bpf"),
            vec![PathBuf::from("/sys/fs/bpf")]
        );
        assert_eq!(mount_points(MOUNTINFO, "cgroup").len(), 1);
        assert!(kernel_has_filesystem(FILESYSTEMS, "cgroup2"));
        assert!(kernel_has_filesystem(FILESYSTEMS, "ext4"));
        assert!(!kernel_has_filesystem(FILESYSTEMS, "xfs"));
    }

    #[test]
    fn cgroup_v1_only_is_fine_when_v2_can_be_mounted() {
        let hybrid = cgroup_check(MOUNTINFO, FILESYSTEMS);
        assert_eq!(hybrid.status, Status::Ok);
        assert!(hybrid.detail.contains("/sys/fs/cgroup/unified"));
        let v1_only = "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        let check = cgroup_check(v1_only, FILESYSTEMS);
        assert_eq!(check.status, Status::Ok);
        assert!(check.detail.contains("only cgroup v1"), "{}", check.detail);
        assert!(check.detail.contains(FALLBACK_MOUNT));
        assert_eq!(
            cgroup_check(v1_only, "nodev\tcgroup\n").status,
            Status::Missing
        );
    }

    #[test]
    fn bpffs_elsewhere_or_absent_is_a_warning() {
        assert_eq!(bpffs_check(MOUNTINFO, FILESYSTEMS).status, Status::Ok);
        let elsewhere = "45 23 0:40 / /run/bpf rw - bpf bpf rw\n";
        let check = bpffs_check(elsewhere, FILESYSTEMS);
        assert_eq!(check.status, Status::Warn);
        assert!(check.detail.contains("/run/bpf"), "{}", check.detail);
        let absent = bpffs_check("", FILESYSTEMS);
        assert_eq!(absent.status, Status::Warn);
        assert!(absent.detail.contains("mount -t bpf bpf /sys/fs/bpf"));
    }

    #[test]
    fn tracefs_absent_leaves_tracepoints_unchecked() {
        let (check, dir) = tracefs_check(MOUNTINFO, FILESYSTEMS);
        assert_eq!(check.status, Status::Ok);
        assert_eq!(dir, Some(PathBuf::from("/sys/kernel/tracing")));
        let no_tracefs = tracepoint_check("ioc_exec", "sched", "sched_process_exec", None);
        assert_eq!(no_tracefs.status, Status::Unchecked);
    }

    #[test]
    fn tracepoint_formats_decide() {
        let exec = "format:\n\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n";
        let check = tracepoint_check(
            "ioc_exec",
            "sched",
            "sched_process_exec",
            Some(Ok(exec.into())),
        );
        assert_eq!(check.status, Status::Ok);
        assert!(check.detail.contains("offset 8"));
        let check = tracepoint_check(
            "ioc_exec",
            "sched",
            "sched_process_exec",
            Some(Ok("format:\n".into())),
        );
        assert_eq!(check.status, Status::Missing);

        let absent = std::io::Error::from(ErrorKind::NotFound);
        let check = tracepoint_check(
            "ioc_sock_state",
            "sock",
            "inet_sock_set_state",
            Some(Err(absent)),
        );
        assert_eq!(check.status, Status::Missing);
        let denied = std::io::Error::from(ErrorKind::PermissionDenied);
        let check = tracepoint_check("ioc_exit", "sched", "sched_process_exit", Some(Err(denied)));
        assert_eq!(check.status, Status::Unchecked);

        let old_layout = "format:\n\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;\n";
        let check = tracepoint_check(
            "ioc_sock_state",
            "sock",
            "inet_sock_set_state",
            Some(Ok(old_layout.into())),
        );
        assert_eq!(check.status, Status::Warn);
        assert!(check.detail.contains("connection outcomes"));
    }

    #[test]
    fn feature_checks_name_what_is_missing() {
        let feature = |name: &str, supported| Feature {
            name: name.into(),
            since: "5.8",
            supported,
        };
        let all = [feature("ringbuf", Ok(true))];
        assert_eq!(feature_check("ringbuf", &all, "events").status, Status::Ok);
        let one_missing = [feature("hash", Ok(true)), feature("ringbuf", Ok(false))];
        let check = feature_check("maps", &one_missing, "events");
        assert_eq!(check.status, Status::Missing);
        assert_eq!(check.detail, "not supported: ringbuf (since 5.8)");
        let failed = [feature("ringbuf", Err("EPERM".into()))];
        assert_eq!(
            feature_check("ringbuf", &failed, "events").status,
            Status::Unchecked
        );
    }

    #[test]
    fn report_renders_table_and_json() {
        let report = Report::from_checks(
            "6.1.0".into(),
            vec![
                check("kernel", Status::Ok),
                check("privileges", Status::Missing),
            ],
        );
        let text = report.render_text();
        assert!(text.contains("kernel      ok         detail"), "{text}");
        assert!(
            text.contains("verdict: iocmon cannot run here (exit 1)"),
            "{text}"
        );
        assert!(text.contains("  - privileges: detail"), "{text}");
        let json: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
        assert_eq!(json["verdict"], "cannot-run");
        assert_eq!(json["exit_code"], 1);
        assert_eq!(json["checks"][1]["status"], "missing");
    }
}
