//! The agent's life: readiness, clean detach on SIGTERM and SIGINT, refusal of bad input.

use std::process::Command;

use iocmon_tests::{iocmon_bin, require_root, scratch_dir, Agent};

/// Ids of every program currently loaded in the kernel.
fn loaded_program_ids() -> Vec<u32> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .map(|info| info.id())
        .collect()
}

fn assert_detached_after(signal: i32, test: &str) {
    let agent = Agent::start(test, "127.0.0.2:4444\n", &[]);
    let ids = agent.program_ids.clone();
    let loaded = loaded_program_ids();
    for id in &ids {
        assert!(loaded.contains(id), "program {id} not loaded while running");
    }
    let stopped = agent.stop_with(signal);
    assert!(
        stopped.status.success(),
        "exit {:?}: {:?}",
        stopped.status,
        stopped.stderr
    );
    assert!(
        stopped
            .stderr
            .iter()
            .any(|l| l.contains("detached all programs")),
        "{:?}",
        stopped.stderr
    );
    assert!(
        stopped
            .stderr
            .iter()
            .any(|l| l.contains("stopped:") && l.contains("kernel drops 0")),
        "{:?}",
        stopped.stderr
    );
    let still = loaded_program_ids();
    let left: Vec<_> = ids.iter().filter(|id| still.contains(id)).collect();
    assert!(
        left.is_empty(),
        "programs still loaded after exit: {left:?}"
    );
}

#[test]
fn nothing_stays_attached_after_sigterm() {
    assert_detached_after(libc::SIGTERM, "sigterm");
}

#[test]
fn nothing_stays_attached_after_sigint() {
    assert_detached_after(libc::SIGINT, "sigint");
}

#[test]
fn invalid_indicator_file_refuses_start_naming_file_line_and_value() {
    require_root();
    let dir = scratch_dir("bad-iocs");
    let file = dir.join("bad.txt");
    std::fs::write(&file, "127.0.0.2:4444\n127.0.0.999\n\"\n").unwrap();
    let output = Command::new(iocmon_bin())
        .arg("run")
        .arg("--no-config")
        .arg("--iocs")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:2: invalid indicator \"127.0.0.999\"",
            file.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}:3", file.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("ready:"), "{stderr}");
}

#[test]
fn iocs_check_summarises_without_touching_the_kernel() {
    let dir = scratch_dir("check");
    let file = dir.join("ok.txt");
    std::fs::write(
        &file,
        "127.0.0.2:4444\n127.0.0.3\n127.1.0.0/16\n127.0.0.3\n",
    )
    .unwrap();
    let output = Command::new(iocmon_bin())
        .args(["iocs", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("3 indicators from 1 file(s) (4 read, 0 filtered out, 1 duplicates)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("types:        1 cidr, 1 ip, 1 ip:port"),
        "{stdout}"
    );
}
