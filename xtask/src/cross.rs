//! Cross builds of the agent: static musl binaries for other architectures, with the
//! eBPF object embedded (ioc-userspace's build.rs builds it for the target's endianness;
//! every target listed here is little-endian, so it is the same `bpfel` object).
//!
//! The linker is rust-lld, shipped with the Rust toolchain, linking musl's self-contained
//! C runtime from the target's rust-std component. Debian's C cross compiler only
//! compiles the C parts of dependencies (ring, under rustls).
//!
//! Where rustup cannot provide a target's standard library (the mirror these machines
//! use has no rust-std for armv7-unknown-linux-musleabihf: HTTP 404), the standard
//! library is built from source with nightly `-Z build-std`, and the musl C runtime comes
//! from Debian's `musl-dev` package of that architecture (plus libgcc from the cross
//! compiler, whose unwinder stands in for libunwind).

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
    /// Debian architecture and multiarch directory of musl-dev, for building the
    /// standard library from source when rustup has none.
    pub musl_fallback: Option<(&'static str, &'static str)>,
}

pub const TARGETS: &[Target] = &[
    Target {
        triple: "x86_64-unknown-linux-musl",
        cc_package: "gcc",
        cc_prefix: "",
        musl_fallback: None,
    },
    Target {
        triple: "aarch64-unknown-linux-musl",
        cc_package: "gcc-aarch64-linux-gnu",
        cc_prefix: "aarch64-linux-gnu-",
        musl_fallback: Some(("arm64", "aarch64-linux-musl")),
    },
    Target {
        triple: "armv7-unknown-linux-musleabihf",
        cc_package: "gcc-arm-linux-gnueabihf",
        cc_prefix: "arm-linux-gnueabihf-",
        musl_fallback: Some(("armhf", "arm-linux-musleabihf")),
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

/// The installed version of a Debian package, `None` when it is not installed.
pub fn installed_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}\t${Version}", package])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (state, version) = text.split_once('\t')?;
    state
        .contains("install ok installed")
        .then(|| version.trim().to_owned())
}

/// The packages of `packages` that are not installed.
pub fn missing_packages<'a>(packages: &[&'a str]) -> Vec<&'a str> {
    packages
        .iter()
        .copied()
        .filter(|package| installed_version(package).is_none())
        .collect()
}

/// Runs `apt-get` non-interactively with `-o` `options` and `args`.
pub fn apt_get(options: &[String], args: &[&str]) -> Result<()> {
    let mut command = Command::new("apt-get");
    for option in options {
        command.args(["-o", option]);
    }
    status(command.args(args).env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Installs Debian packages that are missing (apt). Idempotent.
pub fn ensure_packages(packages: &[&str]) -> Result<()> {
    let missing = missing_packages(packages);
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
    let apt = |args: &[&str]| apt_get(&[], args);
    let mut install = vec!["install", "-y", "-q"];
    install.extend(&missing);
    if apt(&install).is_err() {
        apt(&["update", "-q"])?;
        apt(&install)?;
    }
    Ok(())
}

/// How the standard library for a target is had.
pub enum Toolchain {
    /// rustup's rust-std component (the stable toolchain).
    Rustup,
    /// Built from source by nightly `-Z build-std`, linked against the musl C runtime in
    /// this directory.
    BuildStd(PathBuf),
}

/// Everything a build for `target` needs on this machine: the Rust standard library and a
/// C compiler for the C parts of dependencies.
pub fn ensure_toolchain(target: &Target) -> Result<Toolchain> {
    ensure_packages(&[target.cc_package])?;
    let err = match ensure_target(target.triple) {
        Ok(()) => return Ok(Toolchain::Rustup),
        Err(err) => err,
    };
    let Some((deb_arch, multiarch)) = target.musl_fallback else {
        return Err(err);
    };
    eprintln!(
        "xtask: rustup has no standard library for {} here ({err:#}); building it from \
         source (nightly -Z build-std) against Debian's musl-dev:{deb_arch}",
        target.triple
    );
    musl_crt(target, deb_arch, multiarch).map(Toolchain::BuildStd)
}

/// A directory with what rustc's self-contained musl linking would take from rust-std,
/// for a static (non-PIE) executable: musl's `crt1.o crti.o crtn.o libc.a` (Debian's
/// musl-dev), the compiler's `crtbeginT.o crtend.o libgcc.a`, and `libgcc_eh.a` as
/// `libunwind.a`. (`rcrt1.o`, for static PIE, crashes in a non-PIE executable.)
fn musl_crt(target: &Target, deb_arch: &str, multiarch: &str) -> Result<PathBuf> {
    let dir = target_dir().join(format!("{}-crt", target.triple));
    let names = [
        "crt1.o",
        "crti.o",
        "crtn.o",
        "libc.a",
        "crtbeginT.o",
        "crtend.o",
        "libgcc.a",
        "libunwind.a",
    ];
    if names.iter().all(|n| dir.join(n).is_file()) {
        return Ok(dir);
    }
    let work = target_dir().join("vm");
    let index = crate::vm::Index::native(deb_arch);
    crate::vm::ensure_index(index, &work, "musl-dev")?;
    let deb = crate::vm::download("musl-dev", index, &work.join("debs"), &work)?;
    let root = work.join(format!("musl-dev-{deb_arch}"));
    crate::vm::extract(&deb, &root, &[&format!("./usr/lib/{multiarch}/*")])?;
    let musl = root.join("usr/lib").join(multiarch);
    let gcc_triple = target.cc_prefix.trim_end_matches('-');
    let gcc = std::fs::read_dir(format!("/usr/lib/gcc-cross/{gcc_triple}"))
        .with_context(|| {
            format!(
                "{} has no /usr/lib/gcc-cross/{gcc_triple}",
                target.cc_package
            )
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.join("libgcc_eh.a").is_file())
        .with_context(|| format!("no libgcc_eh.a under /usr/lib/gcc-cross/{gcc_triple}"))?;
    std::fs::create_dir_all(&dir)?;
    for (from, to) in [
        (musl.join("crt1.o"), "crt1.o"),
        (musl.join("crti.o"), "crti.o"),
        (musl.join("crtn.o"), "crtn.o"),
        (musl.join("libc.a"), "libc.a"),
        (gcc.join("crtbeginT.o"), "crtbeginT.o"),
        (gcc.join("crtend.o"), "crtend.o"),
        (gcc.join("libgcc.a"), "libgcc.a"),
        (gcc.join("libgcc_eh.a"), "libunwind.a"),
    ] {
        std::fs::copy(&from, dir.join(to))
            .with_context(|| format!("copying {}", from.display()))?;
    }
    Ok(dir)
}

/// `cargo SUBCOMMAND` for `target`: the workspace's cargo, or nightly's with
/// `-Z build-std` when the standard library is built from source.
pub fn cargo_for(subcommand: &str, toolchain: &Toolchain) -> Command {
    match toolchain {
        Toolchain::Rustup => {
            let mut command = cargo();
            command.arg(subcommand);
            command
        }
        Toolchain::BuildStd(_) => {
            let mut command = Command::new("rustup");
            command
                .args(["run", "nightly", "cargo", subcommand])
                .args(["-Z", "build-std=std,panic_abort"])
                .current_dir(crate::workspace_root());
            command
        }
    }
}

/// Points cargo at rust-lld (the link) and the Debian C compiler (C parts) for `target`.
pub fn configure(command: &mut Command, target: &Target, toolchain: &Toolchain) {
    let upper = target.triple.to_uppercase().replace('-', "_");
    let lower = target.triple.replace('-', "_");
    command
        .env(format!("CARGO_TARGET_{upper}_LINKER"), "rust-lld")
        .env(format!("CC_{lower}"), format!("{}gcc", target.cc_prefix))
        .env(format!("AR_{lower}"), format!("{}ar", target.cc_prefix));
    if let Toolchain::BuildStd(crt) = toolchain {
        // A static, non-PIE executable (as rustc links armv7 musl by default), so the
        // start files are crt1.o and crtbeginT.o/crtend.o.
        let crt = crt.display();
        let flags = [
            "-Crelocation-model=static".to_owned(),
            "-Clink-self-contained=no".to_owned(),
            format!("-Lnative={crt}"),
            format!("-Zpre-link-arg={crt}/crt1.o"),
            format!("-Zpre-link-arg={crt}/crti.o"),
            format!("-Zpre-link-arg={crt}/crtbeginT.o"),
            format!("-Clink-arg={crt}/crtend.o"),
            format!("-Clink-arg={crt}/crtn.o"),
            "-Clink-arg=-lgcc".to_owned(),
        ];
        command.env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"));
    }
}

/// Builds `iocmon` for `triple` and returns the binary's path.
pub fn build_agent(triple: &str, release: bool) -> Result<PathBuf> {
    let target = target(triple)?;
    let toolchain = ensure_toolchain(target)?;
    let mut build = cargo_for("build", &toolchain);
    build.args([
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
    configure(&mut build, target, &toolchain);
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

const SIZE_DOC: &str = "docs/BENCHMARKS.md";
const SIZE_START: &str = "<!-- binary-size:start -->";
const SIZE_END: &str = "<!-- binary-size:end -->";
/// Kunai's static musl agent, as its documentation shows it (about 20.9 MB).
const KUNAI_BYTES: f64 = 20.9e6;

/// `cargo xtask binary-sizes`: release build for every cross target, stripped sizes,
/// optionally recorded in docs/BENCHMARKS.md between the binary-size markers.
pub fn sizes(record: bool) -> Result<()> {
    let mut rows = String::new();
    for target in TARGETS {
        let binary = build_agent(target.triple, true)?;
        let size = stripped_size(&binary)?;
        let toolchain = match ensure_toolchain(target)? {
            Toolchain::Rustup => "rust-std from rustup",
            Toolchain::BuildStd(_) => "std built from source (-Z build-std), Debian musl-dev",
        };
        rows.push_str(&format!(
            "| `{}` | {size} | {:.2} MB | {:.0}% | {toolchain} |\n",
            target.triple,
            size as f64 / 1e6,
            100.0 * size as f64 / KUNAI_BYTES,
        ));
    }
    let table = format!(
        "| target | stripped bytes | MB | of Kunai's ~20.9 MB | standard library |\n\
         |---|---|---|---|---|\n{rows}"
    );
    println!("{table}");
    if !record {
        return Ok(());
    }
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let section = format!(
        "{SIZE_START}\n## Binary size\n\n\
         Measured {date} with `cargo xtask binary-sizes --record`: the agent `iocmon` built \
         with `cargo xtask build --release --target TRIPLE` (profile `release`: opt-level \
         \"s\", LTO, one codegen unit, panic=abort), static musl, eBPF object embedded, then \
         `llvm-strip --strip-all`. Kunai's figure is its own documentation's sample of its \
         static musl binary (about 20.9 MB; see shared/reference/peer-systems.md).\n\n\
         {table}\n{SIZE_END}"
    );
    let path = crate::workspace_root().join(SIZE_DOC);
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    let updated = match (current.find(SIZE_START), current.find(SIZE_END)) {
        (Some(start), Some(end)) if end > start => format!(
            "{}{section}{}",
            &current[..start],
            &current[end + SIZE_END.len()..]
        ),
        _ if current.is_empty() => format!("# Benchmarks\n\n{section}\n"),
        _ => format!("{}\n\n{section}\n", current.trim_end()),
    };
    std::fs::write(&path, updated).with_context(|| format!("writing {SIZE_DOC}"))?;
    eprintln!("xtask: recorded binary sizes in {SIZE_DOC}");
    Ok(())
}
