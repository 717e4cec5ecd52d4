//! The systemd unit and `cargo xtask install`/`uninstall`: the unit passes
//! `systemd-analyze verify` without a word, and the installer stages, keeps and removes
//! the right files. Nothing here runs systemd as PID 1 (these machines do not), so
//! what the unit does at run time is not covered; see docs/OPERATIONS.md.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use iocmon_tests::{describe_output, iocmon_bin, scratch_dir};

/// Where the unit expects the agent, as shipped.
const INSTALLED_BINARY: &str = "/usr/local/bin/iocmon";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn shipped(path: &str) -> Vec<u8> {
    let path = workspace_root().join(path);
    std::fs::read(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

fn shipped_unit() -> String {
    String::from_utf8(shipped("packaging/iocmon.service")).expect("the unit is UTF-8")
}

/// Fails the test when systemd-analyze is not installed (`cargo xtask setup` installs it).
fn require_systemd_analyze() {
    let found = Command::new("systemd-analyze").arg("--version").output();
    assert!(
        found.as_ref().is_ok_and(|out| out.status.success()),
        "systemd-analyze is needed to verify the unit and is missing ({found:?}): \
         apt-get install systemd, or run `cargo xtask setup`"
    );
}

/// `systemd-analyze verify` on a copy of `unit` in `dir` whose ExecStart runs `binary`:
/// verify insists that the executable exists, and /usr/local/bin/iocmon does not here.
fn verify(unit: &str, binary: &Path, dir: &Path) -> Output {
    require_systemd_analyze();
    assert!(
        unit.contains(&format!("ExecStart={INSTALLED_BINARY} ")),
        "the unit no longer runs {INSTALLED_BINARY}:\n{unit}"
    );
    let binary = binary.to_str().expect("binary path is UTF-8");
    let copy = dir.join("iocmon.service");
    std::fs::write(&copy, unit.replace(INSTALLED_BINARY, binary)).expect("writing the unit");
    Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("running systemd-analyze verify")
}

fn assert_verifies_cleanly(output: &Output) {
    assert!(output.status.success(), "{}", describe_output(output));
    // verify exits 0 even for unknown keys and unparsable values (it only logs them),
    // so any output at all is a failure.
    assert!(
        output.stdout.is_empty() && output.stderr.is_empty(),
        "systemd-analyze verify complained:\n{}",
        describe_output(output)
    );
}

#[test]
fn shipped_unit_verifies_without_warnings() {
    let dir = scratch_dir("unit-verify");
    let output = verify(&shipped_unit(), &iocmon_bin(), &dir);
    assert_verifies_cleanly(&output);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn verify_reports_a_broken_unit() {
    // The check above must be able to fail: a misspelt key and a bad value are reported.
    let dir = scratch_dir("unit-verify-broken");
    let broken = shipped_unit()
        .replace("NoNewPrivileges=yes", "NoNewPrivileges=perhaps")
        .replace("[Service]\n", "[Service]\nRestartSecs=2\n");
    let output = verify(&broken, &iocmon_bin(), &dir);
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("RestartSecs"), "{}", describe_output(&output));
    assert!(text.contains("perhaps"), "{}", describe_output(&output));
    let _ = std::fs::remove_dir_all(dir);
}

/// The settings the agent cannot work without, as `key=value` lines (comments skipped).
#[test]
fn unit_leaves_the_agent_what_it_needs() {
    let unit = shipped_unit();
    let settings: Vec<&str> = unit
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    let value = |key: &str| {
        settings
            .iter()
            .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let capabilities = value("CapabilityBoundingSet");
    for needed in [
        "CAP_BPF",
        "CAP_PERFMON",
        "CAP_NET_ADMIN",
        "CAP_SYS_ADMIN",
        "CAP_SYS_PTRACE",
    ] {
        assert!(
            capabilities.split_whitespace().any(|c| c == needed),
            "{needed} missing from CapabilityBoundingSet={capabilities}"
        );
    }
    assert_eq!(value("Type"), "simple");
    assert_eq!(
        value("ExecStart"),
        "/usr/local/bin/iocmon run --pin --config /etc/iocmon/iocmon.toml"
    );
    assert_eq!(value("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(value("Restart"), "always");
    assert_eq!(value("LimitMEMLOCK"), "infinity");
    assert_eq!(value("RuntimeDirectoryPreserve"), "yes");
    assert_eq!(value("StateDirectory"), "iocmon");
    assert!(
        value("ReadWritePaths")
            .split_whitespace()
            .any(|p| p == "/sys/fs/bpf"),
        "pins need /sys/fs/bpf writable"
    );
    // Each of these would break the agent (see the unit's comments).
    for key in [
        "ProtectKernelTunables",
        "ProtectProc",
        "ProcSubset",
        "SystemCallFilter",
    ] {
        assert_eq!(value(key), "", "{key}= is set");
    }
    let families = value("RestrictAddressFamilies");
    for family in ["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"] {
        assert!(
            families.contains(family),
            "{family} not allowed: {families}"
        );
    }
}

fn xtask(args: &[&str]) -> Output {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Command::new(cargo)
        .arg("xtask")
        .args(args)
        .current_dir(workspace_root())
        .output()
        .expect("running cargo xtask")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn xtask_install_stages_verifies_and_uninstalls() {
    let scratch = scratch_dir("install");
    let destdir = scratch.join("root");
    let destdir_arg = destdir.to_str().expect("UTF-8 path");
    let binary = iocmon_bin();
    let binary_arg = binary.to_str().expect("UTF-8 path");
    let install = || xtask(&["install", "--destdir", destdir_arg, "--binary", binary_arg]);

    let output = install();
    assert!(output.status.success(), "{}", describe_output(&output));

    // The binary: executable by all, stripped copy of the one given, runs.
    let installed = destdir.join("usr/local/bin/iocmon");
    assert_eq!(mode(&installed), 0o755);
    let version = Command::new(&installed)
        .arg("--version")
        .output()
        .expect("running the installed iocmon");
    assert!(version.status.success(), "{}", describe_output(&version));
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("iocmon "));

    // Configuration, rules and starter indicators are the shipped files.
    let config_dir = destdir.join("etc/iocmon");
    for (installed_name, source) in [
        ("iocmon.toml", "packaging/iocmon.toml"),
        ("rules.toml", "ioc-userspace/src/rules/default-rules.toml"),
        ("indicators.txt", "ioc-userspace/samples/loopback-iocs.txt"),
    ] {
        let path = config_dir.join(installed_name);
        let text = std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        assert!(
            text == shipped(source),
            "{} differs from {source}",
            path.display()
        );
    }
    assert_eq!(mode(&config_dir.join("iocmon.toml")), 0o640);
    assert_eq!(mode(&destdir.join("var/spool/iocmon")), 0o700);

    // The starter indicators parse: the service starts with them.
    let check = Command::new(&installed)
        .args(["iocs", "check"])
        .arg(config_dir.join("indicators.txt"))
        .output()
        .expect("running iocmon iocs check");
    assert!(check.status.success(), "{}", describe_output(&check));

    // The unit is the shipped one, and verifies against the staged binary.
    let unit_path = destdir.join("etc/systemd/system/iocmon.service");
    let unit = std::fs::read_to_string(&unit_path).expect("reading the staged unit");
    assert_eq!(unit, shipped_unit());
    assert_verifies_cleanly(&verify(&unit, &installed, &scratch));

    // Installing again keeps the operator's edits and puts the shipped file beside them.
    let rules = config_dir.join("rules.toml");
    let edited = "# the operator's own rules\n";
    std::fs::write(&rules, edited).expect("editing rules.toml");
    let output = install();
    assert!(output.status.success(), "{}", describe_output(&output));
    assert_eq!(
        std::fs::read_to_string(&rules).ok().as_deref(),
        Some(edited)
    );
    let rules_new = config_dir.join("rules.toml.new");
    assert!(
        std::fs::read(&rules_new).ok()
            == Some(shipped("ioc-userspace/src/rules/default-rules.toml")),
        "rules.toml.new is not the shipped rules"
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("rules.toml.new"),
        "install did not say where the shipped rules went:\n{}",
        describe_output(&output)
    );

    // Uninstall removes binary and unit, keeps the configuration; twice is fine.
    for _ in 0..2 {
        let output = xtask(&["uninstall", "--destdir", destdir_arg]);
        assert!(output.status.success(), "{}", describe_output(&output));
        assert!(!installed.exists(), "binary still installed");
        assert!(!unit_path.exists(), "unit still installed");
        assert_eq!(
            std::fs::read_to_string(&rules).ok().as_deref(),
            Some(edited)
        );
        assert!(config_dir.join("iocmon.toml").is_file());
    }

    // --purge removes the configuration too.
    let output = xtask(&["uninstall", "--destdir", destdir_arg, "--purge"]);
    assert!(output.status.success(), "{}", describe_output(&output));
    assert!(!config_dir.exists(), "/etc/iocmon survived --purge");
    assert!(!destdir.join("var/spool/iocmon").exists());
    let _ = std::fs::remove_dir_all(scratch);
}
