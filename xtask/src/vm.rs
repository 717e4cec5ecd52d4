//! `cargo xtask vm-test`: boot Debian kernels under QEMU and run the kernel integration
//! tests inside each, for each architecture.
//!
//! No disk image and no network: the VM gets a kernel from Debian's package
//! (`apt-get download`) and an initramfs built here, holding a static busybox (Debian's
//! busybox-static, for `/bin/sh`), the static musl agent for the VM's architecture, the
//! integration-test executables and `/init` (xtask/vm/init.sh). `/init` mounts what the
//! agent needs, runs each test executable, prints one result line per executable on the
//! serial console and powers off. The host reads the serial log. QEMU runs with
//! `-nic none` (and `-nodefaults`): the VM has no network device at all.

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::Value;

use crate::{cross, status, target_dir, workspace_root};

const INIT: &str = include_str!("../vm/init.sh");
const DOC: &str = "docs/VM-TESTS.md";
const START: &str = "<!-- vm-test:start -->";
const END: &str = "<!-- vm-test:end -->";

/// A kernel to boot: a Debian meta package that names the current image package.
pub struct Kernel {
    pub name: &'static str,
    deb_arch: &'static str,
    meta_package: &'static str,
    triple: &'static str,
    /// Another Debian release to take the kernel from (its own private package index on
    /// the machine's Debian mirror); `None` for the machine's own release.
    suite: Option<&'static str>,
}

pub const KERNELS: &[Kernel] = &[
    Kernel {
        name: "amd64-6.1",
        deb_arch: "amd64",
        meta_package: "linux-image-amd64",
        triple: "x86_64-unknown-linux-musl",
        suite: None,
    },
    Kernel {
        name: "arm64-6.1",
        deb_arch: "arm64",
        meta_package: "linux-image-arm64",
        triple: "aarch64-unknown-linux-musl",
        suite: None,
    },
    Kernel {
        name: "amd64-6.12",
        deb_arch: "amd64",
        meta_package: "linux-image-6.12-amd64",
        triple: "x86_64-unknown-linux-musl",
        suite: None,
    },
    Kernel {
        name: "arm64-6.12",
        deb_arch: "arm64",
        meta_package: "linux-image-6.12-arm64",
        triple: "aarch64-unknown-linux-musl",
        suite: None,
    },
    // Bullseye's 5.10: below 5.15, where tracepoint links can be pinned, and the oldest
    // kernel Debian's mirror still serves; the closest booted check of the 5.8 floor.
    Kernel {
        name: "amd64-5.10",
        deb_arch: "amd64",
        meta_package: "linux-image-amd64",
        triple: "x86_64-unknown-linux-musl",
        suite: Some("bullseye"),
    },
    Kernel {
        name: "arm64-5.10",
        deb_arch: "arm64",
        meta_package: "linux-image-arm64",
        triple: "aarch64-unknown-linux-musl",
        suite: Some("bullseye"),
    },
];

/// Kernel options the agent's programs need; checked in the image's config before boot.
const REQUIRED_CONFIG: &[&str] = &[
    "CONFIG_BPF_SYSCALL",
    "CONFIG_CGROUPS",
    "CONFIG_CGROUP_BPF",
    "CONFIG_DEBUG_INFO_BTF",
    "CONFIG_BPF_EVENTS",
    "CONFIG_TRACEPOINTS",
    "CONFIG_BLK_DEV_INITRD",
    "CONFIG_DEVTMPFS",
];

pub struct Plan {
    pub kernels: Vec<String>,
    pub timeout: Duration,
    pub kvm: bool,
    pub record: bool,
}

pub fn run(plan: &Plan) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("vm-test installs QEMU and downloads kernels with apt: run it as root");
    }
    let kernels: Vec<&Kernel> = if plan.kernels.is_empty() {
        KERNELS.iter().collect()
    } else {
        plan.kernels
            .iter()
            .map(|name| {
                KERNELS.iter().find(|k| k.name == name).ok_or_else(|| {
                    anyhow!(
                        "unknown kernel {name}; known: {}",
                        KERNELS
                            .iter()
                            .map(|k| k.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
            })
            .collect::<Result<_>>()?
    };
    let mut packages = vec!["qemu-system-x86"];
    if kernels.iter().any(|k| k.deb_arch != "amd64") {
        packages.push("qemu-system-arm");
    }
    let work = target_dir().join("vm");
    std::fs::create_dir_all(&work)?;
    ensure_qemu(&packages, &work)?;
    let mut results = Vec::new();
    for kernel in kernels {
        let result = run_kernel(kernel, &work, plan).unwrap_or_else(|err| VmResult {
            kernel: kernel.name,
            release: String::new(),
            accel: "-",
            tests: Vec::new(),
            secs: 0.0,
            error: Some(format!("{err:#}")),
        });
        eprintln!("{}", table(std::slice::from_ref(&result)));
        results.push(result);
    }
    let rendered = table(&results);
    println!("\n{rendered}");
    if plan.record {
        record(&rendered, plan)?;
    }
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.kernel)
        .collect();
    // One closing line over every VM: tests passed and failed (a VM that failed without
    // a failing test, by timeout or panic, counts as one failure).
    let tests_passed: u32 = results
        .iter()
        .flat_map(|r| &r.tests)
        .map(|t| t.passed)
        .sum();
    let tests_failed: u32 = results
        .iter()
        .map(|r| {
            let failed: u32 = r.tests.iter().map(|t| t.failed).sum();
            if failed == 0 && !r.passed() {
                1
            } else {
                failed
            }
        })
        .sum();
    println!("vm-test: {tests_passed} passed, {tests_failed} failed");
    if !failed.is_empty() {
        bail!("vm-test failed on {}", failed.join(", "));
    }
    Ok(())
}

struct TestResult {
    name: String,
    rc: i32,
    passed: u32,
    failed: u32,
    secs: u32,
}

struct VmResult {
    kernel: &'static str,
    release: String,
    accel: &'static str,
    tests: Vec<TestResult>,
    secs: f64,
    error: Option<String>,
}

impl VmResult {
    fn passed(&self) -> bool {
        self.error.is_none()
            && !self.tests.is_empty()
            && self
                .tests
                .iter()
                .all(|t| t.rc == 0 && t.failed == 0 && t.passed > 0)
    }
}

fn run_kernel(kernel: &Kernel, work: &Path, plan: &Plan) -> Result<VmResult> {
    let dir = work.join(kernel.name);
    std::fs::create_dir_all(&dir)?;
    let vmlinuz = fetch_kernel(kernel, &dir)?;
    let (busybox, shell) = fetch_tools(kernel.deb_arch, work)?;
    let payload = build_payload(kernel.triple)?;
    let initramfs = dir.join("initramfs.cpio");
    write_initramfs(&initramfs, &busybox, &shell, &payload)?;

    let log = dir.join("serial.log");
    let _ = std::fs::remove_file(&log);
    let kvm = plan.kvm && kernel.deb_arch == host_deb_arch() && kvm_usable();
    let accel = if kvm { "kvm" } else { "tcg" };
    let mut qemu = qemu_command(kernel, &vmlinuz, &initramfs, &log, kvm);
    eprintln!(
        "xtask: booting {} ({accel}, timeout {:?}); serial log {}",
        kernel.name,
        plan.timeout,
        log.display()
    );
    let started = Instant::now();
    let mut child = qemu
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {qemu:?}"))?;
    let timed_out = loop {
        if child.try_wait()?.is_some() {
            break false;
        }
        if started.elapsed() > plan.timeout {
            let _ = child.kill();
            let _ = child.wait();
            break true;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let secs = started.elapsed().as_secs_f64();
    let serial = std::fs::read(&log).unwrap_or_default();
    let serial = String::from_utf8_lossy(&serial);
    let mut result = parse_serial(kernel.name, &serial);
    result.accel = accel;
    result.secs = secs;
    if timed_out {
        result.error = Some(format!("timed out after {:?}", plan.timeout));
    } else if result.error.is_none() && !serial.contains("IOCMON-VM-DONE") {
        result.error = Some("the VM stopped before /init finished".into());
    }
    if !result.passed() {
        let tail: Vec<&str> = serial.lines().rev().take(60).collect();
        eprintln!(
            "xtask: {} failed; last serial lines ({}):",
            kernel.name,
            log.display()
        );
        for line in tail.iter().rev() {
            eprintln!("  | {line}");
        }
    }
    Ok(result)
}

fn parse_serial(kernel: &'static str, serial: &str) -> VmResult {
    let mut result = VmResult {
        kernel,
        release: String::new(),
        accel: "",
        tests: Vec::new(),
        secs: 0.0,
        error: None,
    };
    let field = |line: &str, key: &str| -> Option<String> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key).map(str::to_owned))
    };
    let (mut passed, mut failed) = (0, 0);
    for line in serial.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.find("IOCMON-VM-KERNEL ").map(|i| &line[i..]) {
            result.release = field(rest, "release=").unwrap_or_default();
        } else if line.contains("IOCMON-VM-BEGIN ") {
            (passed, failed) = (0, 0);
        } else if let Some(summary) = line.trim().strip_prefix("test result: ") {
            // "ok. 5 passed; 0 failed; 0 ignored; ..."
            for part in summary.split(['.', ';']) {
                let mut words = part.split_whitespace();
                if let (Some(n), Some(what)) = (words.next(), words.next()) {
                    match (n.parse::<u32>(), what) {
                        (Ok(n), "passed") => passed += n,
                        (Ok(n), "failed") => failed += n,
                        _ => {}
                    }
                }
            }
        } else if let Some(rest) = line.find("IOCMON-VM-RESULT ").map(|i| &line[i..]) {
            result.tests.push(TestResult {
                name: field(rest, "test=").unwrap_or_default(),
                rc: field(rest, "rc=")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(-1),
                passed,
                failed,
                secs: field(rest, "secs=")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            });
        } else if line.contains("Kernel panic") {
            result.error = Some(line.trim().to_owned());
        }
    }
    result
}

fn table(results: &[VmResult]) -> String {
    let names: BTreeSet<&str> = results
        .iter()
        .flat_map(|r| r.tests.iter().map(|t| t.name.as_str()))
        .collect();
    let mut out = String::from("| VM | kernel | accel |");
    for name in &names {
        let _ = write!(out, " {name} |");
    }
    out.push_str(" result | VM run |\n|---|---|---|");
    for _ in &names {
        out.push_str("---|");
    }
    out.push_str("---|---|\n");
    for r in results {
        let _ = write!(
            out,
            "| {} | {} | {} |",
            r.kernel,
            if r.release.is_empty() {
                "?"
            } else {
                &r.release
            },
            r.accel
        );
        for name in &names {
            match r.tests.iter().find(|t| t.name == *name) {
                Some(t) => {
                    let _ = write!(
                        out,
                        " {}/{} passed ({} s) |",
                        t.passed,
                        t.passed + t.failed,
                        t.secs
                    );
                }
                None => out.push_str(" - |"),
            }
        }
        let verdict = match (&r.error, r.passed()) {
            (Some(err), _) => format!("FAIL: {err}"),
            (None, true) => "pass".to_owned(),
            (None, false) => "FAIL".to_owned(),
        };
        let _ = writeln!(out, " {verdict} | {:.0} s |", r.secs);
    }
    out
}

fn record(rendered: &str, plan: &Plan) -> Result<()> {
    let path = workspace_root().join(DOC);
    let doc = std::fs::read_to_string(&path).with_context(|| format!("reading {DOC}"))?;
    let (Some(start), Some(end)) = (doc.find(START), doc.find(END)) else {
        bail!("{DOC} lacks the {START} / {END} markers");
    };
    let mut command = String::from("cargo xtask vm-test");
    for kernel in &plan.kernels {
        let _ = write!(command, " --kernel {kernel}");
    }
    if plan.kvm {
        command.push_str(" --kvm");
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let section =
        format!(
        "{START}\nMeasured {date} with `{command} --record` on this machine ({cpus} CPUs, host \
         kernel {kernel}, /dev/kvm {kvm}). Each VM: 2 vCPUs, 1 GiB, no network device. \
         \"VM run\" is QEMU start to power-off, build time excluded; per-binary times are \
         measured inside the VM.\n\n{rendered}\n{END}",
        date = output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).trim(),
        cpus = std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel = kernel.trim(),
        kvm = if plan.kvm { "used where it opens" } else { "not used" },
    );
    let updated = format!("{}{section}{}", &doc[..start], &doc[end + END.len()..]);
    std::fs::write(&path, updated)?;
    eprintln!("xtask: recorded the table in {DOC}");
    Ok(())
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn host_deb_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "armhf",
        _ => "unknown",
    }
}

fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

fn qemu_command(
    kernel: &Kernel,
    vmlinuz: &Path,
    initramfs: &Path,
    log: &Path,
    kvm: bool,
) -> Command {
    let (program, machine, cpu, console) = match kernel.deb_arch {
        "arm64" => ("qemu-system-aarch64", "virt", "cortex-a57", "ttyAMA0"),
        _ => ("qemu-system-x86_64", "pc", "max", "ttyS0"),
    };
    let mut qemu = Command::new(program);
    qemu.args([
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
        "-monitor",
        "none",
    ])
    .args(["-nic", "none"])
    .args(["-machine", machine])
    .args(["-accel", if kvm { "kvm" } else { "tcg" }])
    .args(["-cpu", if kvm { "host" } else { cpu }])
    .args(["-smp", "2", "-m", "1024"])
    .arg("-kernel")
    .arg(vmlinuz)
    .arg("-initrd")
    .arg(initramfs)
    .arg("-append")
    .arg(format!("console={console} panic=-1 rdinit=/init"))
    .arg("-serial")
    .arg(format!("file:{}", log.display()));
    qemu
}

/// Which Debian packages to look up: an architecture, and optionally another release
/// than the machine's own.
#[derive(Clone, Copy)]
pub struct Index<'a> {
    pub deb_arch: &'a str,
    pub suite: Option<&'a str>,
}

impl<'a> Index<'a> {
    /// The machine's own release for `deb_arch`.
    pub fn native(deb_arch: &'a str) -> Self {
        Index {
            deb_arch,
            suite: None,
        }
    }

    fn private_state(&self, work: &Path) -> Option<PathBuf> {
        match self.suite {
            Some(suite) => Some(work.join(format!("apt-{suite}-{}", self.deb_arch))),
            None if self.deb_arch != host_deb_arch() => {
                Some(work.join(format!("apt-{}", self.deb_arch)))
            }
            None => None,
        }
    }
}

/// apt options for `index`: the system's own state for the host architecture and
/// release; otherwise a private package index under `work` (the system's sources, or for
/// another release the system's Debian mirror with that suite), so the machine's own apt
/// and dpkg configuration is left alone.
fn apt_options(index: Index, work: &Path) -> Vec<String> {
    let Some(state) = index.private_state(work) else {
        return Vec::new();
    };
    let deb_arch = index.deb_arch;
    let mut options = vec![
        "-o".into(),
        format!("Dir::State::Lists={}", state.join("lists").display()),
        "-o".into(),
        format!("Dir::Cache={}", state.join("cache").display()),
        "-o".into(),
        format!("APT::Architecture={deb_arch}"),
        "-o".into(),
        format!("APT::Architectures::={deb_arch}"),
    ];
    if index.suite.is_some() {
        options.extend([
            "-o".into(),
            format!(
                "Dir::Etc::SourceList={}",
                state.join("sources.list").display()
            ),
            "-o".into(),
            format!(
                "Dir::Etc::SourceParts={}",
                state.join("sources.list.d").display()
            ),
        ]);
    }
    options
}

/// The URI of the machine's main Debian archive (the one serving its own release), as
/// apt knows it; another release's index is read from the same mirror.
fn debian_mirror() -> Result<String> {
    let out = Command::new("apt-get")
        .args([
            "indextargets",
            "--format",
            "$(REPO_URI) $(RELEASE) $(IDENTIFIER)",
        ])
        .output()
        .context("running apt-get indextargets")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| {
            let mut fields = line.split_whitespace();
            let (uri, release, what) = (fields.next()?, fields.next()?, fields.next()?);
            (what == "Packages" && !release.contains('-') && uri.ends_with("/debian/"))
                .then(|| uri.to_owned())
        })
        .context("apt knows no Debian archive to read another release from (apt-get update first)")
}

pub fn ensure_index(index: Index, work: &Path, probe: &str) -> Result<()> {
    let options = apt_options(index, work);
    if let Some(state) = index.private_state(work) {
        for sub in ["lists/partial", "cache/archives/partial", "sources.list.d"] {
            std::fs::create_dir_all(state.join(sub))?;
        }
        if let Some(suite) = index.suite {
            let sources = format!(
                "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {} {suite} main\n",
                debian_mirror()?
            );
            std::fs::write(state.join("sources.list"), sources)?;
        }
    }
    // The machine's dpkg status is left out of the check: a package installed for the
    // host architecture (musl-dev, say) would pass for one the index offers.
    let known = Command::new("apt-cache")
        .args(&options)
        .args(["-o", "Dir::State::status=/dev/null", "show", probe])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if known {
        return Ok(());
    }
    let release = index.suite.unwrap_or("the machine's release");
    eprintln!(
        "xtask: fetching Debian's {} package index for {release} (apt-get update)",
        index.deb_arch
    );
    status(
        Command::new("apt-get")
            .args(&options)
            .args(["update", "-q"]),
    )
}

/// Installs QEMU's system emulators. Where the machine's `qemu-utils` came from Debian's
/// backports (some of these machines ship 10.0 from bookworm-backports), the emulators
/// must come from there too: that `qemu-utils` breaks the release's own
/// `qemu-system-common`. They are then installed through a private package index (the
/// machine's sources plus `<codename>-backports` on its Debian mirror), so the machine's
/// apt configuration and lists are left alone.
fn ensure_qemu(packages: &[&str], work: &Path) -> Result<()> {
    let missing = cross::missing_packages(packages);
    if missing.is_empty() {
        return Ok(());
    }
    let utils = cross::installed_version("qemu-utils").unwrap_or_default();
    if !utils.contains("~bpo") {
        return cross::ensure_packages(&missing);
    }
    let codename = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("VERSION_CODENAME=").map(str::to_owned))
        })
        .context("/etc/os-release names no VERSION_CODENAME to find backports by")?;
    let backports = format!("{codename}-backports");
    let state = work.join("apt-backports");
    for sub in ["lists/partial", "cache/archives/partial"] {
        std::fs::create_dir_all(state.join(sub))?;
    }
    // The machine's one-line sources (if any) plus backports; its sources.list.d is
    // still read, so deb822 sources stay in.
    let mut sources = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    writeln!(
        sources,
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {} {backports} main",
        debian_mirror()?
    )?;
    std::fs::write(state.join("sources.list"), sources)?;
    let options = [
        format!("Dir::State::Lists={}", state.join("lists").display()),
        format!("Dir::Cache={}", state.join("cache").display()),
        format!(
            "Dir::Etc::SourceList={}",
            state.join("sources.list").display()
        ),
    ];
    let apt = |args: &[&str]| cross::apt_get(&options, args);
    eprintln!(
        "xtask: qemu-utils {utils} is a backport; installing {} from {backports} (apt, private index)",
        missing.join(" ")
    );
    apt(&["update", "-q"])?;
    let mut install = vec![
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "-t",
        &backports,
    ];
    install.extend(&missing);
    apt(&install)
}

/// The concrete package a meta package depends on (linux-image-amd64 ->
/// linux-image-6.1.0-NN-amd64).
fn resolve(meta: &str, index: Index, work: &Path) -> Result<String> {
    let options = apt_options(index, work);
    let out = Command::new("apt-cache")
        .args(&options)
        .args(["depends", meta])
        .output()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .map(str::to_owned)
        .with_context(|| format!("apt-cache depends {meta} names no linux-image package"))
}

/// `apt-get download package:arch` into `dir` unless a .deb of it is already there.
pub fn download(package: &str, index: Index, dir: &Path, work: &Path) -> Result<PathBuf> {
    let deb_arch = index.deb_arch;
    std::fs::create_dir_all(dir)?;
    let find = || -> Option<PathBuf> {
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .find_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name.starts_with(&format!("{package}_"))
                    && name.ends_with(&format!("_{deb_arch}.deb")))
                .then(|| e.path())
            })
    };
    if let Some(deb) = find() {
        return Ok(deb);
    }
    eprintln!("xtask: apt-get download {package}:{deb_arch}");
    status(
        Command::new("apt-get")
            .args(apt_options(index, work))
            .args(["download", "-q", &format!("{package}:{deb_arch}")])
            .current_dir(dir),
    )?;
    find().with_context(|| format!("apt-get download left no {package} .deb"))
}

/// Extracts `members` (tar wildcards) of a .deb's file system into `into`.
pub fn extract(deb: &Path, into: &Path, members: &[&str]) -> Result<()> {
    std::fs::create_dir_all(into)?;
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()?;
    let tar_in = dpkg.stdout.take().context("dpkg-deb stdout")?;
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(into)
        .arg("--wildcards")
        .args(members)
        .stdin(tar_in)
        .status()?;
    let dpkg = dpkg.wait()?;
    if !tar.success() || !dpkg.success() {
        bail!("extracting {members:?} from {} failed", deb.display());
    }
    Ok(())
}

fn fetch_kernel(kernel: &Kernel, dir: &Path) -> Result<PathBuf> {
    let work = dir.parent().unwrap_or(dir);
    let index = Index {
        deb_arch: kernel.deb_arch,
        suite: kernel.suite,
    };
    ensure_index(index, work, kernel.meta_package)?;
    let package = resolve(kernel.meta_package, index, work)?;
    let deb = download(&package, index, &work.join("debs"), work)?;
    let root = dir.join(&package);
    let boot = root.join("boot");
    if !boot.is_dir() {
        extract(&deb, &root, &["./boot/vmlinuz-*", "./boot/config-*"])?;
    }
    let find = |prefix: &str| -> Result<PathBuf> {
        std::fs::read_dir(&boot)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            })
            .with_context(|| format!("{package} has no /boot/{prefix}*"))
    };
    let config = std::fs::read_to_string(find("config-")?)?;
    let missing: Vec<&str> = REQUIRED_CONFIG
        .iter()
        .copied()
        .filter(|option| !config.lines().any(|l| l == format!("{option}=y")))
        .collect();
    if !missing.is_empty() {
        bail!("{package} lacks built-in {}", missing.join(", "));
    }
    find("vmlinuz-")
}

/// Static tools for the VM's userland, from Debian packages of its architecture:
/// busybox (mount, ip, poweroff...) and mksh built against musl as `/bin/sh`. Busybox
/// itself cannot be `/bin/sh` here: the tests run the shell through symlinks named
/// `cron` or `nmap`, and busybox picks its applet by that name.
fn fetch_tools(deb_arch: &str, work: &Path) -> Result<(PathBuf, PathBuf)> {
    let root = work.join(format!("tools-{deb_arch}"));
    let busybox = root.join("bin/busybox");
    if !busybox.is_file() {
        ensure_index(Index::native(deb_arch), work, "busybox-static")?;
        let deb = download(
            "busybox-static",
            Index::native(deb_arch),
            &work.join("debs"),
            work,
        )?;
        extract(&deb, &root, &["./bin/busybox"])?;
    }
    let find_mksh = || -> Option<PathBuf> {
        std::fs::read_dir(root.join("usr/lib"))
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin/mksh"))
            .find(|p| p.is_file())
    };
    if find_mksh().is_none() {
        ensure_index(Index::native(deb_arch), work, "mksh")?;
        let deb = download("mksh", Index::native(deb_arch), &work.join("debs"), work)?;
        extract(&deb, &root, &["./usr/lib/*-linux-musl*/bin/mksh"])?;
    }
    let mksh = find_mksh().context("the mksh package has no musl build")?;
    Ok((busybox, mksh))
}

/// Integration tests that check packaging on the build machine (the systemd unit, the
/// installer) rather than the kernel; `cargo xtask test` runs them on the host.
const HOST_ONLY_TESTS: [&str; 1] = ["service"];

/// What goes into the VM besides busybox and /init.
struct Payload {
    agent: PathBuf,
    /// Integration-test executables, by test name.
    tests: Vec<(String, PathBuf)>,
    /// Binaries the tests run by their absolute build path (CARGO_BIN_EXE_*).
    bins: Vec<PathBuf>,
}

fn build_payload(triple: &str) -> Result<Payload> {
    let target = cross::target(triple)?;
    let agent = cross::build_agent(triple, true)?;
    let toolchain = cross::ensure_toolchain(target)?;
    let mut build = cross::cargo_for("test", &toolchain);
    build
        .args([
            "--no-run",
            "--package",
            "iocmon-tests",
            "--target",
            triple,
            "--message-format=json-render-diagnostics",
        ])
        // Smaller executables for the initramfs, and optimised: under emulation the
        // unoptimised test client is too slow for the tests' timing (the reload test
        // wants 100 connect rounds in 3 s).
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .env("CARGO_PROFILE_DEV_OPT_LEVEL", "2")
        .stdout(Stdio::piped());
    cross::configure(&mut build, target, &toolchain);
    let out = build.output()?;
    if !out.status.success() {
        bail!("building the integration tests for {triple} failed");
    }
    let mut tests = Vec::new();
    let mut bins = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(exe) = msg["executable"].as_str() else {
            continue;
        };
        let kinds = &msg["target"]["kind"];
        let is = |kind: &str| {
            kinds
                .as_array()
                .is_some_and(|k| k.iter().any(|v| v == kind))
        };
        if is("test") {
            let name = msg["target"]["name"].as_str().unwrap_or("test").to_owned();
            if HOST_ONLY_TESTS.contains(&name.as_str()) {
                eprintln!("vm-test: not running the {name} tests in the VM (host-only: they need cargo and systemd-analyze, not a kernel)");
                continue;
            }
            tests.push((name, PathBuf::from(exe)));
        } else if is("bin") && msg["profile"]["test"] == false {
            bins.push(PathBuf::from(exe));
        }
    }
    if tests.is_empty() {
        bail!("cargo built no integration-test executables for {triple}");
    }
    tests.sort();
    Ok(Payload { agent, tests, bins })
}

/// A cpio archive in the kernel's "newc" format.
struct Cpio {
    out: Vec<u8>,
    inode: u32,
    dirs: BTreeSet<String>,
}

impl Cpio {
    fn new() -> Self {
        Cpio {
            out: Vec::new(),
            inode: 1,
            dirs: BTreeSet::new(),
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        let name = name.trim_start_matches('/');
        let fields = [
            self.inode,
            mode,
            0,
            0,
            if mode & 0o170000 == 0o040000 { 2 } else { 1 },
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.inode += 1;
        self.out.extend_from_slice(b"070701");
        for field in fields {
            self.out
                .extend_from_slice(format!("{field:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn dir(&mut self, path: &str) {
        let path = path.trim_matches('/');
        if path.is_empty() || self.dirs.contains(path) {
            return;
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.dirs.insert(path.to_owned());
        self.entry(path, 0o040755, (0, 0), &[]);
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        if let Some((parent, _)) = path.trim_start_matches('/').rsplit_once('/') {
            self.dir(parent);
        }
        self.entry(path, 0o100000 | mode, (0, 0), data);
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.out
    }
}

fn write_initramfs(path: &Path, busybox: &Path, shell: &Path, payload: &Payload) -> Result<()> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let mut cpio = Cpio::new();
    for dir in [
        "bin",
        "dev",
        "etc",
        "proc",
        "sys",
        "tmp",
        "run",
        "root",
        "iocmon/tests",
    ] {
        cpio.dir(dir);
    }
    cpio.entry("dev/console", 0o020600, (5, 1), &[]);
    cpio.file("init", 0o755, INIT.as_bytes());
    cpio.file("bin/busybox", 0o755, &read(busybox)?);
    cpio.file("bin/sh", 0o755, &read(shell)?);
    cpio.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n");
    cpio.file("etc/group", 0o644, b"root:x:0:\n");
    cpio.file("etc/hostname", 0o644, b"iocmon-vm\n");
    cpio.file(
        "iocmon/iocmon",
        0o755,
        &read(&cross::strip(&payload.agent)?)?,
    );
    for (name, exe) in &payload.tests {
        cpio.file(&format!("iocmon/tests/{name}"), 0o755, &read(exe)?);
    }
    for bin in &payload.bins {
        cpio.file(&bin.to_string_lossy(), 0o755, &read(bin)?);
    }
    let bytes = cpio.finish();
    std::fs::File::create(path)?.write_all(&bytes)?;
    eprintln!(
        "xtask: initramfs {} ({:.1} MiB)",
        path.display(),
        bytes.len() as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}
