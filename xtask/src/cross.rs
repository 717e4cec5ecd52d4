//! Cross builds of the agent: static musl binaries for other architectures, with the
//! eBPF object embedded (ioc-userspace's build.rs builds it for the target's endianness;
//! every target listed here is little-endian, so it is the same `bpfel` object).
//!
//! The linker is rust-lld, shipped with the Rust toolchain, linking musl's self-contained
//! C runtime from the target's rust-std component: no C cross compiler is needed.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::{cargo, status, target_dir};

/// From llvm-22, which `cargo xtask setup` installs.
const LLVM_STRIP: &str = "/usr/lib/llvm-22/bin/llvm-strip";

/// A target the agent is cross-built for.
pub struct Target {
    pub triple: &'static str,
    /// C compiler for crates with C parts (ring, under rustls): Debian package and prefix
    /// (objects only; the final link is rust-lld against musl).
    pub cc_package: &'static str,
    pub cc_prefix: &'static str,
}

pub const TARGETS: &[Target] = &[
    Target {
        triple: "x86_64-unknown-linux-musl",
        cc_package: "gcc",
        cc_prefix: "",
    },
    Target {
        triple: "aarch64-unknown-linux-musl",
        cc_package: "gcc-aarch64-linux-gnu",
        cc_prefix: "aarch64-linux-gnu-",
    },
    Target {
        triple: "armv7-unknown-linux-musleabihf",
        cc_package: "gcc-arm-linux-gnueabihf",
        cc_prefix: "arm-linux-gnueabihf-",
    },
];

pub fn target(triple: &str) -> Result<&'static Target> {
    TARGETS
        .iter()
        .find(|t| t.triple == triple)
        .with_context(|| {
            format!(
                "unknown target {triple}; known: {}",
                TARGETS
                    .iter()
                    .map(|t| t.triple)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// Installs the target's standard library (rustup) when missing. Idempotent.
pub fn ensure_target(triple: &str) -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("rustup is needed for cross builds")?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|line| line.trim() == triple)
    {
        return Ok(());
    }
    eprintln!("xtask: adding the Rust standard library for {triple} (rustup)");
    status(Command::new("rustup").args(["target", "add", triple]))
        .with_context(|| format!("rustup could not provide the standard library for {triple}"))
}

/// Installs Debian packages that are missing (apt). Idempotent.
pub fn ensure_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|package| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", package])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "missing Debian packages and no root to install them: apt-get install {}",
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {} (apt)", missing.join(" "));
    let apt = |args: &[&str]| {
        status(
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    let mut install = vec!["install", "-y", "-q"];
    install.extend(&missing);
    if apt(&install).is_err() {
        apt(&["update", "-q"])?;
        apt(&install)?;
    }
    Ok(())
}

/// Everything a build for `target` needs on this machine: the Rust standard library and a
/// C compiler for the C parts of dependencies.
pub fn ensure_toolchain(target: &Target) -> Result<()> {
    ensure_target(target.triple)?;
    ensure_packages(&[target.cc_package])
}

/// Points cargo at rust-lld (the link) and the Debian C compiler (C parts) for `target`.
pub fn configure(command: &mut Command, target: &Target) {
    let upper = target.triple.to_uppercase().replace('-', "_");
    let lower = target.triple.replace('-', "_");
    command
        .env(format!("CARGO_TARGET_{upper}_LINKER"), "rust-lld")
        .env(format!("CC_{lower}"), format!("{}gcc", target.cc_prefix))
        .env(format!("AR_{lower}"), format!("{}ar", target.cc_prefix));
}

/// Builds `iocmon` for `triple` and returns the binary's path.
pub fn build_agent(triple: &str, release: bool) -> Result<PathBuf> {
    let target = target(triple)?;
    ensure_toolchain(target)?;
    let mut build = cargo();
    build.args([
        "build",
        "--package",
        "ioc-userspace",
        "--bin",
        "iocmon",
        "--target",
        triple,
    ]);
    if release {
        build.arg("--release");
    }
    configure(&mut build, target);
    status(&mut build)?;
    let binary = target_dir()
        .join(triple)
        .join(if release { "release" } else { "debug" })
        .join("iocmon");
    if !binary.is_file() {
        bail!("cargo built iocmon but {} is missing", binary.display());
    }
    if let Ok(size) = stripped_size(&binary) {
        eprintln!(
            "xtask: {} ({triple}): {} bytes stripped ({:.2} MiB)",
            binary.display(),
            size,
            size as f64 / (1024.0 * 1024.0)
        );
    }
    Ok(binary)
}

/// A stripped copy of `binary` (llvm-strip, installed by setup) next to it; its path.
pub fn strip(binary: &Path) -> Result<PathBuf> {
    let stripped = binary.with_extension("stripped");
    status(
        Command::new(LLVM_STRIP)
            .arg("--strip-all")
            .arg("-o")
            .arg(&stripped)
            .arg(binary),
    )?;
    Ok(stripped)
}

pub fn stripped_size(binary: &Path) -> Result<u64> {
    let stripped = strip(binary)?;
    Ok(std::fs::metadata(&stripped)?.len())
}
