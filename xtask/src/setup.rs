//! Idempotent machine set-up for building and running the eBPF programs.
//!
//! Each step checks first and acts only when something is missing, so a warm machine
//! passes through in well under a second.

use std::{path::Path, process::Command};

use anyhow::{bail, Context as _, Result};

use crate::status;

const LLVM_DIR: &str = "/usr/lib/llvm-22";
const BPF_LINKER_VERSION: &str = "0.13.0";
const EBPF_TOOLCHAIN: &str = "nightly";

pub fn run() -> Result<()> {
    ensure_llvm()?;
    ensure_rust_src()?;
    ensure_bpf_linker()?;
    ensure_mounts()?;
    ensure_rsyslog()?;
    ensure_systemd_analyze()?;
    Ok(())
}

/// The service tests check the shipped unit with `systemd-analyze verify`; Debian's
/// `systemd` package carries it (installing it does not make systemd PID 1).
fn ensure_systemd_analyze() -> Result<()> {
    if output_of("systemd-analyze", &["--version"]).is_some() {
        return Ok(());
    }
    apt_install("systemd")
}

/// The sink tests start their own rsyslogd (own config, loopback port) as a real CEF
/// forwarder; only the package is needed, never the system's configuration or service.
fn ensure_rsyslog() -> Result<()> {
    if output_of("rsyslogd", &["-v"]).is_some() {
        return Ok(());
    }
    apt_install("rsyslog")
}

/// Installs one Debian package (after refreshing the package lists, which a new machine
/// may not have), non-interactively. Needs root.
fn apt_install(package: &str) -> Result<()> {
    if !is_root() {
        bail!("{package} is missing and installing it needs root: apt-get install {package}");
    }
    eprintln!("xtask: installing {package} (apt)");
    crate::cross::apt_get(&[], &["update", "-q"])?;
    crate::cross::apt_get(&[], &["install", "-y", "-q", package])
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// bpf-linker links against LLVM 22's shared library (llvm-22-dev).
fn ensure_llvm() -> Result<()> {
    let have_llvm = std::fs::read_dir(Path::new(LLVM_DIR).join("lib"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with("libLLVM.so"))
        })
        .unwrap_or(false)
        && Path::new(LLVM_DIR).join("bin/llvm-config").exists();
    if have_llvm {
        return Ok(());
    }
    apt_install("llvm-22-dev")
}

/// `-Z build-std=core` needs the standard library's source for the eBPF toolchain.
fn ensure_rust_src() -> Result<()> {
    let toolchains = output_of("rustup", &["toolchain", "list"])
        .context("rustup is needed to build the eBPF programs")?;
    if !toolchains
        .lines()
        .any(|line| line.starts_with(EBPF_TOOLCHAIN))
    {
        bail!(
            "the {EBPF_TOOLCHAIN} toolchain is missing: rustup toolchain install {EBPF_TOOLCHAIN}"
        );
    }
    let installed = output_of(
        "rustup",
        &[
            "component",
            "list",
            "--installed",
            "--toolchain",
            EBPF_TOOLCHAIN,
        ],
    )
    .unwrap_or_default();
    if installed.lines().any(|line| line.starts_with("rust-src")) {
        return Ok(());
    }
    eprintln!("xtask: adding rust-src to the {EBPF_TOOLCHAIN} toolchain");
    status(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        EBPF_TOOLCHAIN,
    ]))
}

fn ensure_bpf_linker() -> Result<()> {
    if let Some(version) = output_of("bpf-linker", &["--version"]) {
        if version.contains(BPF_LINKER_VERSION) {
            return Ok(());
        }
    }
    eprintln!("xtask: installing bpf-linker {BPF_LINKER_VERSION} (about 90 s)");
    let path = format!(
        "{LLVM_DIR}/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    status(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("PATH", path),
    )?;
    if output_of("bpf-linker", &["--version"]).is_none() {
        bail!("bpf-linker was installed but is not on PATH: add ~/.cargo/bin to PATH");
    }
    Ok(())
}

/// bpffs (for pinning) and tracefs (for tracepoints) are not mounted at boot on every
/// machine. Mounting needs root; without it this step only warns.
fn ensure_mounts() -> Result<()> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    for (fstype, target) in [("bpf", "/sys/fs/bpf"), ("tracefs", "/sys/kernel/tracing")] {
        let mounted = mounts.lines().any(|line| {
            let mut fields = line.split_whitespace();
            let _source = fields.next();
            fields.next() == Some(target) && fields.next() == Some(fstype)
        });
        if mounted {
            continue;
        }
        if !is_root() {
            eprintln!("xtask: warning: {fstype} is not mounted on {target} (needs root)");
            continue;
        }
        std::fs::create_dir_all(target).with_context(|| format!("creating {target}"))?;
        status(Command::new("mount").args(["-t", fstype, fstype, target]))?;
        eprintln!("xtask: mounted {fstype} on {target}");
    }
    Ok(())
}
