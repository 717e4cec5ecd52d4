//! `cargo xtask install` / `cargo xtask uninstall`: put iocmon on this machine as a
//! systemd service, or stage the same files under a directory for packaging and tests.
//!
//! Both directions are idempotent. Files an operator may have edited (configuration,
//! rules, indicators) are never overwritten: a changed shipped version lands beside them
//! as `FILE.new`. The binary and the unit are the project's and are always replaced.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::{build_agent, setup, status, workspace_root};

/// Where each installed file goes, relative to the root (`/` or `--destdir`).
const BINARY: &str = "usr/local/bin/iocmon";
const UNIT: &str = "etc/systemd/system/iocmon.service";
const CONFIG_DIR: &str = "etc/iocmon";
/// The TCP syslog output's default spool; the unit lists it in ReadWritePaths, which
/// systemd only grants to directories that exist.
const SPOOL_DIR: &str = "var/spool/iocmon";
/// Directories the service creates itself (StateDirectory, LogsDirectory), removed only
/// by `--purge`.
const SERVICE_DIRS: [&str; 2] = ["var/lib/iocmon", "var/log/iocmon"];
const SERVICE: &str = "iocmon";

/// Operator-owned files: (shipped source in the repository, installed name in
/// /etc/iocmon, mode).
const CONFIG_FILES: [(&str, &str, u32); 3] = [
    // Feed URLs in the configuration may carry API keys: not world-readable.
    ("packaging/iocmon.toml", "iocmon.toml", 0o640),
    (
        "ioc-userspace/src/rules/default-rules.toml",
        "rules.toml",
        0o644,
    ),
    // Loopback-only sample indicators: the service starts with them and reports
    // nothing real until the operator adds real indicator files or feeds.
    (
        "ioc-userspace/samples/loopback-iocs.txt",
        "indicators.txt",
        0o644,
    ),
];

pub struct InstallPlan {
    /// Stage under this directory instead of `/`; never runs systemctl.
    pub destdir: Option<PathBuf>,
    /// Install this binary instead of building a release one.
    pub binary: Option<PathBuf>,
}

pub struct UninstallPlan {
    pub destdir: Option<PathBuf>,
    /// Also remove the configuration, state, spool and log directories.
    pub purge: bool,
}

pub fn install(plan: &InstallPlan) -> Result<()> {
    let root = target_root(plan.destdir.as_deref())?;
    if let Some(destdir) = &plan.destdir {
        std::fs::create_dir_all(destdir)
            .with_context(|| format!("creating {}", destdir.display()))?;
    }
    let source_binary = match &plan.binary {
        Some(binary) => {
            if !binary.is_file() {
                bail!("--binary {}: no such file", binary.display());
            }
            binary.clone()
        }
        None => {
            setup::run()?;
            build_agent(true)?
        }
    };

    let binary = root.join(BINARY);
    install_binary(&source_binary, &binary)?;

    let config_dir = root.join(CONFIG_DIR);
    create_dir(&config_dir, 0o755)?;
    for (source, name, mode) in CONFIG_FILES {
        install_config_file(&workspace_root().join(source), &config_dir.join(name), mode)?;
    }
    create_dir(&root.join(SPOOL_DIR), 0o700)?;

    let unit = root.join(UNIT);
    let unit_text = read(&workspace_root().join("packaging/iocmon.service"))?;
    replace_file(&unit, &unit_text, 0o644)?;
    warn_if_unit_options_unsupported(&binary);

    if let Some(destdir) = &plan.destdir {
        say(&format!(
            "staged under {}; systemctl not run (a staged tree is not this system)",
            destdir.display()
        ));
        return Ok(());
    }
    if !systemd_is_pid1() {
        say(&format!(
            "systemd is not PID 1 here (no /run/systemd/system): nothing was enabled or \
             started. Start the agent yourself with\n    /{BINARY} run --config /{CONFIG_DIR}/iocmon.toml\n\
             or, on a machine that runs systemd:\n    systemctl daemon-reload && systemctl enable --now {SERVICE}"
        ));
        return Ok(());
    }
    if !probe_says_it_can_run(&binary) {
        say(&format!(
            "not enabling {SERVICE}: `iocmon probe` says it cannot run here (output above); \
             fix that, then: systemctl enable --now {SERVICE}"
        ));
        return Ok(());
    }
    status(Command::new("systemctl").arg("daemon-reload"))?;
    if systemctl_quiet(&["is-active", "--quiet", SERVICE]) {
        // An upgrade: the running agent still executes the old binary.
        status(Command::new("systemctl").args(["restart", SERVICE]))?;
        say(&format!("restarted {SERVICE} with the new binary"));
    } else {
        status(Command::new("systemctl").args(["enable", "--now", SERVICE]))?;
        say(&format!("enabled and started {SERVICE}"));
    }
    say(&format!(
        "check it with: systemctl status {SERVICE}; journalctl -u {SERVICE}"
    ));
    Ok(())
}

pub fn uninstall(plan: &UninstallPlan) -> Result<()> {
    let root = target_root(plan.destdir.as_deref())?;
    if !root.is_dir() {
        say(&format!(
            "{} does not exist: nothing is staged there",
            root.display()
        ));
        return Ok(());
    }
    let binary = root.join(BINARY);
    let unit = root.join(UNIT);
    let live = plan.destdir.is_none();

    if live && systemd_is_pid1() && unit.exists() {
        // Stop before unpinning: a stopped service-mode agent leaves its pins behind on
        // purpose (restarts without a gap), and unpinning is what really detaches.
        status(Command::new("systemctl").args(["disable", "--now", SERVICE]))?;
        say(&format!("stopped and disabled {SERVICE}"));
    } else if live && unit.exists() {
        say("systemd is not PID 1 here: no service to stop (stop a hand-started agent with SIGTERM)");
    }

    if !live {
        say("staged tree: the running system's pinned programs are not touched");
    } else if !binary.is_file() {
        say(&format!("{} is absent: no unpin to run", binary.display()));
    } else if Command::new(&binary)
        .args(["unpin", "--help"])
        .output()
        .is_ok_and(|out| out.status.success())
    {
        status(Command::new(&binary).arg("unpin")).context(
            "iocmon unpin failed; the binary stays in place so you can retry (cargo xtask uninstall)",
        )?;
        say("removed iocmon's pinned programs and maps");
    } else {
        say("this iocmon has no `unpin` command: skipped (nothing it could have pinned)");
    }

    remove_installed(&binary)?;
    remove_installed(&unit)?;
    if live && systemd_is_pid1() {
        status(Command::new("systemctl").arg("daemon-reload"))?;
    }

    let mut kept_dirs = vec![root.join(CONFIG_DIR), root.join(SPOOL_DIR)];
    kept_dirs.extend(SERVICE_DIRS.iter().map(|dir| root.join(dir)));
    kept_dirs.retain(|dir| dir.exists());
    if plan.purge {
        for dir in &kept_dirs {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
            say(&format!("removed {}", dir.display()));
        }
    } else if !kept_dirs.is_empty() {
        let list: Vec<String> = kept_dirs.iter().map(|d| d.display().to_string()).collect();
        say(&format!(
            "kept {} (configuration, indicators, feed caches, spool, logs); --purge removes them",
            list.join(", ")
        ));
    }
    Ok(())
}

fn say(message: &str) {
    eprintln!("xtask: {message}");
}

/// `/` (which needs root) or the absolute form of `--destdir`.
fn target_root(destdir: Option<&Path>) -> Result<PathBuf> {
    match destdir {
        Some(dir) => std::path::absolute(dir)
            .with_context(|| format!("resolving --destdir {}", dir.display())),
        None => {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                bail!("installing into / needs root; use --destdir DIR to stage the files instead");
            }
            Ok(PathBuf::from("/"))
        }
    }
}

/// systemd's own test (sd_booted): it creates this directory when it runs as PID 1.
fn systemd_is_pid1() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn systemctl_quiet(args: &[&str]) -> bool {
    Command::new("systemctl")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

/// Removes a file `install` put there; an absent one is fine (idempotent).
fn remove_installed(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => say(&format!("removed {}", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            say(&format!("{} already absent", path.display()));
        }
        Err(err) => return Err(err).with_context(|| format!("removing {}", path.display())),
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn create_dir(dir: &Path, mode: u32) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    set_mode(dir, mode)?;
    say(&format!("created {}", dir.display()));
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader (or a
/// running process, for the binary) never sees a half-written file.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let parent = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let temporary = temporary_beside(path);
    std::fs::write(&temporary, bytes)
        .with_context(|| format!("writing {}", temporary.display()))?;
    set_mode(&temporary, mode)?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("moving {} to {}", temporary.display(), path.display()))
}

fn temporary_beside(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".xtask-tmp");
    path.with_file_name(name)
}

/// Replaces a project-owned file, saying whether anything changed.
fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        set_mode(path, mode)?;
        say(&format!("{} is up to date", path.display()));
        return Ok(());
    }
    let existed = path.exists();
    write_atomically(path, bytes, mode)?;
    say(&format!(
        "{} {}",
        if existed { "replaced" } else { "installed" },
        path.display()
    ));
    Ok(())
}

/// Installs an operator-owned file unless one is there; a differing shipped version goes
/// to `FILE.new` for the operator to merge.
fn install_config_file(source: &Path, dest: &Path, mode: u32) -> Result<()> {
    let shipped = read(source)?;
    match std::fs::read(dest) {
        Ok(existing) if existing == shipped => {
            say(&format!("{} is up to date", dest.display()));
        }
        Ok(_) => {
            let mut name = dest.file_name().unwrap_or_default().to_os_string();
            name.push(".new");
            let new = dest.with_file_name(name);
            write_atomically(&new, &shipped, mode)?;
            say(&format!(
                "kept your {}; the shipped version is in {} (compare them: diff -u {} {})",
                dest.display(),
                new.display(),
                dest.display(),
                new.display()
            ));
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            write_atomically(dest, &shipped, mode)?;
            say(&format!("installed {}", dest.display()));
        }
        Err(err) => return Err(err).with_context(|| format!("reading {}", dest.display())),
    }
    Ok(())
}

/// Copies the agent into place, stripped of symbols (the release profile keeps them;
/// devices have little flash).
fn install_binary(source: &Path, dest: &Path) -> Result<()> {
    let bytes = read(source)?;
    let parent = dest
        .parent()
        .with_context(|| format!("{} has no parent directory", dest.display()))?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    // Strip a copy beside the destination, then rename it over: a running agent keeps
    // executing the old file instead of seeing it rewritten ("text file busy").
    let temporary = temporary_beside(dest);
    std::fs::write(&temporary, &bytes)
        .with_context(|| format!("writing {}", temporary.display()))?;
    set_mode(&temporary, 0o755)?;
    match strip_tool() {
        Some(tool) => {
            let stripped = Command::new(&tool)
                .arg("--strip-all")
                .arg(&temporary)
                .status()
                .is_ok_and(|s| s.success());
            if !stripped {
                let _ = std::fs::remove_file(&temporary);
                bail!(
                    "{} --strip-all {} failed",
                    tool.display(),
                    temporary.display()
                );
            }
        }
        None => say("no strip or llvm-strip found: installing the binary unstripped"),
    }
    std::fs::rename(&temporary, dest)
        .with_context(|| format!("moving {} to {}", temporary.display(), dest.display()))?;
    let size = std::fs::metadata(dest).map(|m| m.len()).unwrap_or_default();
    say(&format!(
        "installed {} ({} KiB, from {})",
        dest.display(),
        size / 1024,
        source.display()
    ));
    Ok(())
}

/// binutils' strip, else the LLVM one that `xtask setup` installs.
fn strip_tool() -> Option<PathBuf> {
    let runs = |tool: &Path| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
    };
    [
        PathBuf::from("strip"),
        PathBuf::from("/usr/lib/llvm-22/bin/llvm-strip"),
    ]
    .into_iter()
    .find(|tool| runs(tool))
}

/// The unit runs `iocmon run --config FILE`; say so when the installed binary does not
/// know that option (built before the configuration file support).
fn warn_if_unit_options_unsupported(binary: &Path) {
    let help = Command::new(binary).args(["run", "--help"]).output();
    let knows_config =
        help.is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("--config"));
    if !knows_config {
        say(&format!(
            "warning: {} has no `run --config` option, which the unit's ExecStart uses: \
             the service will not start with this binary",
            binary.display()
        ));
    }
}

/// Runs the installed binary's `probe`; prints its report unless it says "can run".
fn probe_says_it_can_run(binary: &Path) -> bool {
    match Command::new(binary).arg("probe").output() {
        Ok(out) => {
            let code = out.status.code();
            if code != Some(0) {
                print!("{}", String::from_utf8_lossy(&out.stdout));
            }
            // 2 is "can run, with limits": still worth running.
            matches!(code, Some(0 | 2))
        }
        Err(err) => {
            say(&format!("could not run {} probe: {err}", binary.display()));
            false
        }
    }
}
