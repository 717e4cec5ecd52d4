//! `iocmon probe` on the machine the tests run on (which runs every other integration
//! test, so it must be able to run iocmon), and as an unprivileged user. The one limit
//! the probe may report here is the kernel's: before 5.15 service mode cannot pin the
//! tracepoint links (the VM tests boot such a kernel), which is a warning, exit 2.

use std::{
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    path::PathBuf,
    process::{Command, Output},
};

use iocmon_tests::{describe_output, iocmon_bin, require_root, scratch_dir};
use serde_json::Value;

/// The `nobody` ids; no passwd entry is needed to switch to them.
const NOBODY: u32 = 65534;

fn uname_release() -> String {
    let output = Command::new("uname")
        .arg("-r")
        .output()
        .expect("running uname -r");
    assert!(output.status.success(), "uname -r failed: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The checks that may warn on this kernel: `service-mode` before 5.15.
fn expected_warnings() -> Vec<&'static str> {
    let release = uname_release();
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    if version < (5, 15) {
        vec!["service-mode"]
    } else {
        Vec::new()
    }
}

/// The exit code and verdict sentence `iocmon probe` owes this machine.
fn expected_verdict() -> (i32, &'static str, &'static str) {
    if expected_warnings().is_empty() {
        (0, "can-run", "verdict: iocmon can run here (exit 0)")
    } else {
        (
            2,
            "can-run-limited",
            "verdict: iocmon can run here, with limits (exit 2)",
        )
    }
}

/// The status a check should have here.
fn expected_status(check: &str) -> &'static str {
    if expected_warnings().contains(&check) {
        "warn"
    } else {
        "ok"
    }
}

fn probe(json: bool) -> Output {
    let mut command = Command::new(iocmon_bin());
    command.arg("probe");
    if json {
        command.arg("--json");
    }
    command.output().expect("running iocmon probe")
}

fn parse_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "probe --json is not JSON ({err}): {}",
            describe_output(output)
        )
    })
}

#[test]
fn probe_says_this_machine_can_run() {
    require_root();
    let output = probe(false);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (code, _, sentence) = expected_verdict();
    assert_eq!(
        output.status.code(),
        Some(code),
        "{}",
        describe_output(&output)
    );
    assert!(text.contains(sentence), "{}", describe_output(&output));
    let release = uname_release();
    assert_eq!(
        text.lines().next(),
        Some(format!("iocmon probe: Linux {release}").as_str()),
        "{}",
        describe_output(&output)
    );
    // The table: a header, then one line per check until the blank line.
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|line| !line.starts_with("CHECK"))
        .skip(1)
        .take_while(|line| !line.is_empty())
        .collect();
    assert!(
        rows.len() >= 10,
        "too few checks: {}",
        describe_output(&output)
    );
    for row in rows {
        let mut words = row.split_whitespace();
        let (name, status) = (words.next().unwrap_or(""), words.next());
        assert_eq!(
            status,
            Some(expected_status(name)),
            "check {name}: {row}\n{}",
            describe_output(&output)
        );
    }
}

#[test]
fn probe_json_agrees_with_the_table() {
    require_root();
    let output = probe(true);
    let (code, verdict, _) = expected_verdict();
    assert_eq!(
        output.status.code(),
        Some(code),
        "{}",
        describe_output(&output)
    );
    let report = parse_json(&output);
    assert_eq!(report["verdict"], verdict, "{report:#}");
    assert_eq!(report["exit_code"], code, "{report:#}");
    assert_eq!(report["kernel_release"], uname_release().as_str());
    let reasons: Vec<&str> = report["reasons"]
        .as_array()
        .expect("reasons array")
        .iter()
        .filter_map(|r| r.as_str()?.split(':').next())
        .collect();
    assert_eq!(reasons, expected_warnings(), "{report:#}");
    let checks = report["checks"].as_array().expect("checks array");
    for check in checks {
        let name = check["name"].as_str().unwrap_or("");
        assert_eq!(check["status"], expected_status(name), "{check:#}");
        assert!(
            check["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{check:#}"
        );
    }
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    for wanted in [
        "kernel",
        "privileges",
        "cgroup-v2",
        "bpffs",
        "tracefs",
        "tracepoint:sched/sched_process_exec",
        "tracepoint:sched/sched_process_exit",
        "tracepoint:sock/inet_sock_set_state",
        "btf",
        "ringbuf",
        "program-types",
        "helpers",
        "verifier",
    ] {
        assert!(names.contains(&wanted), "no {wanted} check in {names:?}");
    }
}

/// A copy of the binary that `nobody` can execute: the build tree may sit under a
/// directory only root can enter.
fn binary_for_nobody() -> PathBuf {
    let dir = scratch_dir("probe-unprivileged");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .expect("opening the scratch dir to nobody");
    let copy = dir.join("iocmon");
    // cp(1), not std::fs::copy: a write handle open in this process is inherited by any
    // child another test forks meanwhile, and executing the copy then fails with ETXTBSY
    // (seen once in a CI run). cp's handle lives and dies in cp.
    let copied = Command::new("cp")
        .arg(iocmon_bin())
        .arg(&copy)
        .status()
        .expect("running cp");
    assert!(copied.success(), "copying iocmon failed: {copied}");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
        .expect("making the copy executable");
    copy
}

fn probe_as_nobody(binary: &PathBuf, json: bool) -> Output {
    let mut command = Command::new(binary);
    command.arg("probe").current_dir("/");
    if json {
        command.arg("--json");
    }
    // Setting uid and gid as root also clears the supplementary groups.
    command
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("running iocmon probe as nobody")
}

#[test]
fn unprivileged_probe_says_it_needs_root() {
    require_root();
    let binary = binary_for_nobody();

    let output = probe_as_nobody(&binary, false);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        describe_output(&output)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("verdict: iocmon cannot run here (exit 1)"),
        "{}",
        describe_output(&output)
    );
    assert!(
        text.contains("  - privileges: euid 65534"),
        "{}",
        describe_output(&output)
    );
    assert!(text.contains("needs root"), "{}", describe_output(&output));

    let output = probe_as_nobody(&binary, true);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        describe_output(&output)
    );
    let report = parse_json(&output);
    assert_eq!(report["verdict"], "cannot-run", "{report:#}");
    let reasons = report["reasons"].as_array().expect("reasons array");
    assert_eq!(
        reasons.len(),
        1,
        "only privileges should be missing: {report:#}"
    );
    assert!(
        reasons[0]
            .as_str()
            .is_some_and(|r| r.starts_with("privileges:") && r.contains("needs root")),
        "{report:#}"
    );
    let checks = report["checks"].as_array().expect("checks array");
    let status_of = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["status"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(status_of("privileges"), "missing", "{report:#}");
    // The BPF checks say why they did not run rather than failing.
    for name in ["ringbuf", "program-types", "verifier"] {
        assert_eq!(status_of(name), "unchecked", "{report:#}");
    }
    // What needs no privileges is still reported.
    assert_eq!(status_of("kernel"), "ok", "{report:#}");
    assert_eq!(status_of("btf"), "ok", "{report:#}");
    if let Some(dir) = binary.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
