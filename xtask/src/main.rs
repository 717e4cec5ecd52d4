//! `cargo xtask`: set-up, build, run, test and benchmark iocmon on a development machine.
//!
//! Every command that needs the eBPF toolchain runs `setup` first; `setup` is idempotent
//! and fast when everything is already in place.

mod bench;
mod cross;
mod install;
mod setup;
mod vm;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Development tasks for iocmon")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and running need (llvm-22-dev, bpf-linker, rust-src) and
    /// mount bpffs and tracefs when absent. Idempotent.
    Setup,
    /// Set up, then build the agent (eBPF object embedded).
    Build {
        /// Optimised, size-reduced build.
        #[arg(long)]
        release: bool,
        /// Cross-build a static binary for this target: x86_64-unknown-linux-musl,
        /// aarch64-unknown-linux-musl or armv7-unknown-linux-musleabihf (installs the
        /// Rust target and Debian's C cross compiler when missing).
        #[arg(long)]
        target: Option<String>,
    },
    /// Set up, build, then run the agent as root. Without --iocs it loads the bundled
    /// loopback sample (ioc-userspace/samples/loopback-iocs.txt). Other arguments go to
    /// `iocmon run`.
    #[command(trailing_var_arg = true)]
    Run {
        #[arg(long)]
        release: bool,
        /// Arguments for `iocmon run` (see `iocmon run --help`).
        #[arg(allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, then run formatting and lint checks and every unit and integration test
    /// (the integration tests load the real programs: root needed).
    #[command(trailing_var_arg = true)]
    Test {
        /// Skip the cargo fmt and clippy checks.
        #[arg(long)]
        no_lint: bool,
        /// Extra arguments for `cargo test` (a test name filter, say).
        #[arg(allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, then run the benchmarks and record their figures in docs/BENCHMARKS.md.
    Bench {
        /// Connect+close iterations per round.
        #[arg(long, default_value_t = 100_000)]
        iterations: u32,
        /// Indicators loaded into the agent while it is measured.
        #[arg(long, default_value_t = 100_000)]
        indicators: u32,
        /// Rounds of (without agent, with agent); the median of each is reported.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Indicators parsed and loaded into the kernel maps by the load benchmark.
        #[arg(long, default_value_t = 1_000_000)]
        load_indicators: u32,
    },
    /// Set up, then release-build the agent for every cross target and print the
    /// stripped sizes (with --record, into docs/BENCHMARKS.md).
    BinarySizes {
        #[arg(long)]
        record: bool,
    },
    /// Install iocmon as a systemd service (root): set up and build a release binary,
    /// install it stripped to /usr/local/bin/iocmon, the default configuration, rules and
    /// starter indicators to /etc/iocmon (an existing file is kept; the shipped version
    /// goes beside it as FILE.new), and the unit to /etc/systemd/system/iocmon.service;
    /// then, when systemd is PID 1, enable and start it (restart it when running).
    Install {
        /// Stage every file under DIR instead of / (for packaging and tests); runs no
        /// systemctl.
        #[arg(long, value_name = "DIR")]
        destdir: Option<PathBuf>,
        /// Install this iocmon binary instead of building a release one (no set-up, no
        /// build).
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
    },
    /// Remove what `install` put in place: stop and disable the service (when systemd
    /// is PID 1), remove iocmon's pins (`iocmon unpin`, when the binary has it), the
    /// binary and the unit. Keeps /etc/iocmon and /var/lib/iocmon unless --purge.
    Uninstall {
        /// Remove from the tree staged under DIR instead of /.
        #[arg(long, value_name = "DIR")]
        destdir: Option<PathBuf>,
        /// Also remove /etc/iocmon, /var/lib/iocmon, /var/spool/iocmon, /var/log/iocmon.
        #[arg(long)]
        purge: bool,
    },
    /// Set up, then boot Debian kernels under QEMU (no network device) and run the kernel
    /// integration tests inside each; prints a pass/fail table per kernel and architecture.
    /// Installs QEMU and downloads kernels with apt when missing (root).
    VmTest {
        /// Kernels to boot (repeatable): amd64-6.1, arm64-6.1, amd64-6.12, arm64-6.12.
        /// Default: all.
        #[arg(long = "kernel")]
        kernels: Vec<String>,
        /// Upper bound for one VM run, in seconds.
        #[arg(long, default_value_t = 1800)]
        timeout_secs: u64,
        /// Use KVM where /dev/kvm is usable (same-architecture VMs only). The default is
        /// software emulation (TCG): results must not depend on KVM, and nested KVM on
        /// these machines fails (QEMU cannot set MSR 0x10a).
        #[arg(long)]
        kvm: bool,
        /// Write the table into docs/VM-TESTS.md.
        #[arg(long)]
        record: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Task::Setup => setup::run(),
        Task::Build { release, target } => setup::run().and_then(|()| match target {
            Some(triple) => cross::build_agent(&triple, release).map(drop),
            None => build_agent(release).map(drop),
        }),
        Task::Run { release, args } => setup::run().and_then(|()| run_agent(release, &args)),
        Task::Test { no_lint, args } => setup::run().and_then(|()| test(no_lint, &args)),
        Task::Bench {
            iterations,
            indicators,
            rounds,
            load_indicators,
        } => setup::run().and_then(|()| {
            bench::run(&bench::Plan {
                iterations,
                indicators,
                rounds,
                load_indicators,
            })
        }),
        Task::BinarySizes { record } => setup::run().and_then(|()| cross::sizes(record)),
        Task::Install { destdir, binary } => {
            install::install(&install::InstallPlan { destdir, binary })
        }
        Task::Uninstall { destdir, purge } => {
            install::uninstall(&install::UninstallPlan { destdir, purge })
        }
        Task::VmTest {
            kernels,
            timeout_secs,
            kvm,
            record,
        } => setup::run().and_then(|()| {
            vm::run(&vm::Plan {
                kernels,
                timeout: std::time::Duration::from_secs(timeout_secs),
                kvm,
                record,
            })
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace_root());
    command
}

/// Runs `command`, failing with its rendering when it does not succeed.
pub fn status(command: &mut Command) -> Result<()> {
    let rendered = format!("{command:?}");
    let status = command
        .status()
        .with_context(|| format!("starting {rendered}"))?;
    if !status.success() {
        bail!("{rendered} failed ({status})");
    }
    Ok(())
}

/// Builds the `iocmon` binary and returns its path.
pub fn build_agent(release: bool) -> Result<PathBuf> {
    let mut build = cargo();
    build.args(["build", "--package", "ioc-userspace", "--bin", "iocmon"]);
    if release {
        build.arg("--release");
    }
    status(&mut build)?;
    let binary = target_dir()
        .join(if release { "release" } else { "debug" })
        .join("iocmon");
    if !binary.is_file() {
        bail!("cargo built iocmon but {} is missing", binary.display());
    }
    Ok(binary)
}

fn run_agent(release: bool, args: &[String]) -> Result<()> {
    let binary = build_agent(release)?;
    let mut command = Command::new(&binary);
    command.arg("run");
    // A development run ignores an installed service configuration unless one is named.
    if !args
        .iter()
        .any(|a| a == "--config" || a.starts_with("--config="))
    {
        command.arg("--no-config");
    }
    if !args
        .iter()
        .any(|a| a == "--iocs" || a.starts_with("--iocs="))
    {
        let sample = workspace_root().join("ioc-userspace/samples/loopback-iocs.txt");
        command.arg("--iocs").arg(sample);
    }
    command.args(args);
    // The agent handles SIGINT itself (detach, flush); xtask just waits for it.
    status(&mut command)
}

fn test(no_lint: bool, args: &[String]) -> Result<()> {
    if !no_lint {
        status(cargo().args(["fmt", "--all", "--", "--check"]))
            .context("formatting differs: run `cargo fmt --all`")?;
        status(cargo().args([
            "clippy",
            "--workspace",
            "--exclude",
            "ioc-ebpf",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    let binary = build_agent(false)?;
    let mut test = cargo();
    test.args(["test", "--workspace", "--exclude", "ioc-ebpf"])
        .env("IOCMON_BIN", &binary)
        .args(args);
    status(&mut test)
}
