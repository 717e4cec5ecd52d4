//! Live reload while a process connects in a tight loop: SIGHUP and file edits change
//! the kernel maps without a gap for indicators present before and after.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use iocmon_tests::{from_pid, run_client, Agent};

const CLIENT: &str = env!("CARGO_BIN_EXE_ioc-connect");

fn wait_for_stderr(agent: &Agent, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while agent.stderr_text().matches(needle).count() < count {
        assert!(
            Instant::now() < deadline,
            "no {count}x {needle:?} in stderr:\n{}",
            agent.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Replaces `path` the way feed tools do: write a temporary file, rename it over.
fn replace_file(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn reload_by_sighup_and_file_edit_keeps_common_indicators_without_gaps() {
    let mut agent = Agent::start(
        "reload",
        "127.0.0.2:4444\n127.0.0.3\n",
        &["--reload-interval", "1"],
    );
    let ioc_file = iocmon_tests::scratch_dir("reload").join("iocs.txt");

    // ~3 s of connects: to a kept indicator, a removed one and an added one.
    let looper = Command::new(CLIENT)
        .args([
            "loop",
            "3000",
            "tcp",
            "127.0.0.2:4444",
            "tcp",
            "127.0.0.3:9",
            "tcp",
            "127.0.0.4:9",
            "sleep",
            "1",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let looper_pid = looper.id();

    std::thread::sleep(Duration::from_millis(700));
    // Reload 1 (SIGHUP): 127.0.0.3 out, 127.0.0.4 in.
    std::fs::write(&ioc_file, "127.0.0.2:4444\n127.0.0.4\n").unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(agent.pid() as libc::pid_t, libc::SIGHUP) };
    wait_for_stderr(&agent, "reloaded indicators (", 1);

    std::thread::sleep(Duration::from_millis(700));
    // Reload 2 (file edit, replaced by rename): 127.0.0.3 back in.
    replace_file(&ioc_file, "127.0.0.2:4444\n127.0.0.4\n127.0.0.3\n");
    wait_for_stderr(&agent, "reloaded indicators (", 2);
    assert!(agent
        .stderr_text()
        .contains("reloaded indicators (file changed)"));

    let output = looper.wait_with_output().unwrap();
    let iterations: usize = String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("iterations="))
        .and_then(|n| n.parse().ok())
        .expect("looper prints iterations=N");
    assert!(iterations > 100, "only {iterations} rounds");

    // Marker after the loop: once it is in, every earlier record is too.
    let marker = run_client(CLIENT, None, &["tcp", "127.0.0.2:4444"]);
    agent.wait_for("marker", |r| from_pid(r, marker));

    let records: Vec<_> = agent
        .records()
        .iter()
        .filter(|r| from_pid(r, looper_pid))
        .cloned()
        .collect();
    let to = |ip: &str| records.iter().filter(|r| r["RemoteIP"] == ip).count();
    // The indicator in every set: every single connect reported.
    assert_eq!(
        to("127.0.0.2"),
        iterations,
        "connects to the kept indicator lost"
    );
    // Added and removed ones took effect during the loop.
    assert!(to("127.0.0.4") > 0, "added indicator never matched");
    assert!(
        to("127.0.0.3") > 0 && to("127.0.0.3") < iterations,
        "removal had no effect"
    );

    let stopped = agent.stop();
    assert!(
        stopped.stderr.iter().any(|l| l.contains("kernel drops 0")),
        "{:?}",
        stopped.stderr
    );
}

#[test]
fn bad_reload_keeps_the_running_set_and_says_why() {
    let mut agent = Agent::start(
        "bad-reload",
        "127.0.0.2:4444\n",
        &["--reload-interval", "0"],
    );
    let ioc_file = iocmon_tests::scratch_dir("bad-reload").join("iocs.txt");
    std::fs::write(&ioc_file, "127.0.0.3\n999.0.0.1\n").unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(agent.pid() as libc::pid_t, libc::SIGHUP) };
    wait_for_stderr(&agent, "indicator reload (SIGHUP) failed", 1);
    let text = agent.stderr_text();
    assert!(text.contains("keeping the 1 indicators in use"), "{text}");
    assert!(
        text.contains(":2: invalid indicator \"999.0.0.1\""),
        "{text}"
    );
    // Still matching the old set, not the new one.
    let pid = run_client(
        CLIENT,
        None,
        &["tcp", "127.0.0.3:80", "tcp", "127.0.0.2:4444"],
    );
    agent.wait_for("old indicator", |r| {
        from_pid(r, pid) && r["RemotePort"] == 4444
    });
    let stopped = agent.stop();
    assert!(!stopped.records.iter().any(|r| r["RemoteIP"] == "127.0.0.3"));
}
