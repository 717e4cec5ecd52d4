//! Service mode (`run --pin`): the programs, links and maps stay in bpffs while no agent
//! runs, so blocking never lapses; a restarted agent adopts them and reports what happened
//! meanwhile; a generation of another layout is replaced without a gap; `iocmon unpin`
//! leaves nothing behind.
//!
//! Block mode acts on every process, so these tests use 127.0.78.0/24, which no other test
//! touches. Each test pins under its own directory.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use iocmon_tests::{
    finish_client, from_pid, iocmon_bin, scratch_dir, spawn_client, str_field, Agent, Stopped,
};
use serde_json::Value;

const CLIENT: &str = env!("CARGO_BIN_EXE_ioc-connect");

fn pin_dir(test: &str) -> PathBuf {
    PathBuf::from(format!(
        "/sys/fs/bpf/iocmon-test-{}-{test}",
        std::process::id()
    ))
}

fn loaded_program_ids() -> Vec<u32> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .map(|info| info.id())
        .collect()
}

fn iocmon(args: &[&str]) -> std::process::Output {
    Command::new(iocmon_bin())
        .args(args)
        .output()
        .expect("running iocmon")
}

/// Removes a test's pinned objects even when the test fails half-way, so no blocking
/// program outlives it.
struct PinGuard(PathBuf);

impl Drop for PinGuard {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = iocmon(&["unpin", "--pin-dir", &self.0.display().to_string()]);
        }
    }
}

/// Waits (the kernel frees programs shortly after their last link goes) until none of
/// `ids` is loaded; returns those still loaded after 5 s.
fn wait_unloaded(ids: &[u32]) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let loaded = loaded_program_ids();
        let left: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|id| loaded.contains(id))
            .collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `iocmon unpin` and checks that neither the directory nor any of `ids` is left.
fn unpin_and_check(dir: &Path, ids: &[u32]) {
    let output = iocmon(&["unpin", "--pin-dir", &dir.display().to_string()]);
    assert!(output.status.success(), "{output:?}");
    assert!(!dir.exists(), "{} still exists after unpin", dir.display());
    let left = wait_unloaded(ids);
    assert!(
        left.is_empty(),
        "programs {left:?} still loaded after unpin"
    );
}

/// A listener on an indicator address: nothing may ever be accepted while blocking.
fn indicator_listener(ip: &str) -> TcpListener {
    let listener = TcpListener::bind((ip, 0)).expect("listener");
    listener.set_nonblocking(true).expect("nonblocking");
    listener
}

fn accepted(listener: &TcpListener) -> usize {
    std::iter::from_fn(|| listener.accept().ok()).count()
}

/// A record's Timestamp (`2026-12-03T19:05:18.9176153Z`) in 100 ns ticks since the start
/// of its month: enough to order one test's records.
fn ticks(timestamp: &str) -> u64 {
    let number = |range: std::ops::Range<usize>| -> u64 {
        timestamp
            .get(range)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad timestamp {timestamp}"))
    };
    let seconds =
        ((number(8..10) * 24 + number(11..13)) * 60 + number(14..16)) * 60 + number(17..19);
    seconds * 10_000_000 + number(20..27)
}

/// The refusals reported for `pid`, by time. The attempts are at least 5 ms apart; a
/// record that the next agent read again after a kill (written, not yet committed) gets
/// its time from that agent's own clock estimate, off by microseconds, and counts once.
fn distinct_refusals(records: &[&Value], pid: u32) -> usize {
    let mut times: Vec<u64> = records
        .iter()
        .filter(|r| from_pid(r, pid) && r["AdditionalFields"]["Verdict"] == "blocked")
        .map(|r| ticks(str_field(r, "Timestamp")))
        .collect();
    times.sort_unstable();
    times.dedup_by(|later, earlier| *later - *earlier < 10_000); // within 1 ms
    times.len()
}

/// "kernel drops N (ring buffer full)" from the agent's closing line.
fn ring_drops(stopped: &Stopped) -> u64 {
    stopped
        .stderr
        .iter()
        .find_map(|line| {
            let rest = line.split("kernel drops ").nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no closing line in {:?}", stopped.stderr))
}

#[test]
fn sigkill_and_restart_never_lets_a_connect_through_and_loses_no_attempt() {
    let dir = pin_dir("kill");
    let _guard = PinGuard(dir.clone());
    let status_file = scratch_dir("pin-kill").join("status.json");
    let dir_arg = dir.display().to_string();
    let status_arg = status_file.display().to_string();
    let args = [
        "--pin",
        "--pin-dir",
        &dir_arg,
        "--status-file",
        &status_arg,
        "--mode",
        "block",
        "--stats-interval",
        "1",
        "--health-interval",
        "0",
    ];
    let target = indicator_listener("127.0.78.1");
    let target_addr = target.local_addr().expect("addr").to_string();

    let first = Agent::start("pin-kill", "127.0.78.1\n", &args);
    let ids = first.program_ids.clone();
    let client = spawn_client(CLIENT, &["loop", "3000", "tcp", &target_addr, "sleep", "5"]);
    std::thread::sleep(Duration::from_millis(800));
    let killed = first.stop_with(libc::SIGKILL);

    // While no agent runs, the pinned programs still block, and status says so.
    let status = iocmon(&[
        "status",
        "--pin-dir",
        &dir_arg,
        "--status-file",
        &status_arg,
    ]);
    let status_text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{status:?}");
    assert!(
        status_text.contains("kernel mode  block (tcp+udp)"),
        "{status_text}"
    );
    assert!(status_text.contains("not running"), "{status_text}");
    std::thread::sleep(Duration::from_millis(500));

    let mut second = Agent::start("pin-kill", "127.0.78.1\n", &args);
    assert_eq!(second.program_ids, ids, "adopted, not reattached");
    let (pid, outcomes) = finish_client(client);
    assert_eq!(outcomes.connected, 0, "a connect got through: {outcomes:?}");
    assert_eq!(accepted(&target), 0);
    assert!(outcomes.denied > 50, "{outcomes:?}");

    // Every attempt is reported by one agent or the other (or counted as overflow).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let all: Vec<&Value> = killed.records.iter().chain(second.records()).collect();
        if distinct_refusals(&all, pid) as u64 >= outcomes.denied || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let stopped = second.stop();
    assert!(stopped.status.success(), "{:?}", stopped.stderr);
    let before_kill = distinct_refusals(&killed.records.iter().collect::<Vec<_>>(), pid);
    let all: Vec<&Value> = killed.records.iter().chain(&stopped.records).collect();
    let reported = distinct_refusals(&all, pid);
    let overflow = ring_drops(&stopped);
    eprintln!(
        "{} refused attempts: {before_kill} reported before the kill, {} after the restart, \
         {overflow} counted as ring-buffer overflow",
        outcomes.denied,
        reported - before_kill
    );
    assert!(
        before_kill > 0,
        "the first agent reported before it was killed"
    );
    assert!(
        reported as u64 <= outcomes.denied,
        "more refusals reported ({reported}) than made ({})",
        outcomes.denied
    );
    assert!(
        reported as u64 + overflow >= outcomes.denied,
        "{} attempts, {reported} reported ({before_kill} before the kill), {overflow} counted \
         as overflow",
        outcomes.denied
    );
    unpin_and_check(&dir, &ids);
    // Nothing blocks any more.
    let (_, after) = iocmon_tests::run_client_outcomes(CLIENT, &["tcp", &target_addr]);
    assert_eq!(after.connected, 1, "{after:?}");
}

/// Pins every map and link of `generation` again under `copy` (programs stay alive through
/// their links), then removes the original: what an agent of another version would have
/// left.
fn disguise_as_other_layout(generation: &Path, copy: &Path) {
    use aya::{
        maps::MapData,
        programs::links::{FdLink, PinnedLink},
    };
    std::fs::create_dir(copy).expect("creating the disguised generation");
    for entry in std::fs::read_dir(generation).expect("listing the generation") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name").to_owned();
        let name_text = name.to_string_lossy();
        if name_text.starts_with("map_") {
            MapData::from_pin(&path)
                .expect("opening map")
                .pin(copy.join(&name))
                .expect("pinning map copy");
        } else if name_text.starts_with("link_") {
            let link = PinnedLink::from_pin(&path).expect("opening link");
            FdLink::from(link)
                .pin(copy.join(&name))
                .expect("pinning link copy");
        }
    }
    for entry in std::fs::read_dir(generation).expect("listing the generation") {
        std::fs::remove_file(entry.expect("entry").path()).expect("removing the original");
    }
    std::fs::remove_dir(generation).expect("removing the original generation");
}

#[test]
fn generation_of_another_layout_is_replaced_without_a_gap() {
    let dir = pin_dir("upgrade");
    let _guard = PinGuard(dir.clone());
    let dir_arg = dir.display().to_string();
    let args = [
        "--pin",
        "--pin-dir",
        &dir_arg,
        "--mode",
        "block",
        "--health-interval",
        "0",
    ];
    let target = indicator_listener("127.0.78.2");
    let target_addr = target.local_addr().expect("addr").to_string();

    let first = Agent::start("pin-upgrade", "127.0.78.2\n", &args);
    let old_ids = first.program_ids.clone();
    let stopped = first.stop();
    assert!(stopped.status.success(), "{:?}", stopped.stderr);
    let generations: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("pin dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(generations.len(), 1, "{generations:?}");
    let old = dir.join("v0-00000000deadbeef-1");
    disguise_as_other_layout(&generations[0], &old);

    let client = spawn_client(CLIENT, &["loop", "2500", "tcp", &target_addr, "sleep", "5"]);
    std::thread::sleep(Duration::from_millis(300));
    let second = Agent::start("pin-upgrade", "127.0.78.2\n", &args);
    let (_, outcomes) = finish_client(client);
    assert_eq!(outcomes.connected, 0, "a connect got through: {outcomes:?}");
    assert_eq!(accepted(&target), 0);
    assert!(outcomes.denied > 50, "{outcomes:?}");

    let stderr = second.stderr_text();
    assert!(
        stderr.contains(&format!("retired pinned generation {}", old.display())),
        "{stderr}"
    );
    assert!(!old.exists(), "the old generation is gone");
    let remaining: Vec<String> = std::fs::read_dir(&dir)
        .expect("pin dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(remaining.len(), 1, "{remaining:?}");
    assert!(remaining[0].starts_with("v1-"), "{remaining:?}");
    let left = wait_unloaded(&old_ids);
    assert!(left.is_empty(), "old programs {left:?} still loaded");
    let new_ids = second.program_ids.clone();
    assert!(new_ids.iter().all(|id| !old_ids.contains(id)));
    let stopped = second.stop();
    assert!(stopped.status.success(), "{:?}", stopped.stderr);
    unpin_and_check(&dir, &new_ids);
}

/// How many tracepoint attachments of `programs` exist, whichever way the kernel makes
/// them: from 5.15 a BPF link each (gone when detached); before, a perf event that the
/// attaching process holds open (`agent`, when one runs), with no BPF link at all.
fn tracepoint_attachments(programs: &[u32], agent: Option<u32>) -> usize {
    let links = aya::programs::loaded_links()
        .filter_map(Result::ok)
        .filter(|link| programs.contains(&link.program_id()))
        .count();
    let perf_events = agent.map_or(0, |pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("the agent's fd directory")
            .filter_map(Result::ok)
            .filter(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|target| target.as_os_str() == "anon_inode:[perf_event]")
            })
            .count()
    });
    links + perf_events
}

/// Starts a pinned, blocking agent that behaves as on a kernel before 5.15, where
/// tracepoint links cannot be pinned.
fn start_without_pinnable_tracepoints(dir: &Path, iocs: &Path) -> Agent {
    let mut command = Command::new(iocmon_bin());
    command
        .env("IOCMON_TEST_UNPINNED_TRACEPOINTS", "1")
        .args([
            "run",
            "--no-config",
            "--pin",
            "--mode",
            "block",
            "--health-interval",
            "0",
        ])
        .arg("--pin-dir")
        .arg(dir)
        .arg("--iocs")
        .arg(iocs)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    Agent::spawn(command)
}

#[test]
fn tracepoints_are_attached_again_where_their_links_cannot_be_pinned() {
    let dir = pin_dir("reattach");
    let _guard = PinGuard(dir.clone());
    let iocs = scratch_dir("pin-reattach").join("iocs.txt");
    std::fs::write(&iocs, "127.0.78.3\n").expect("writing indicators");
    let target = indicator_listener("127.0.78.3");
    let target_addr = target.local_addr().expect("addr").to_string();

    let first = start_without_pinnable_tracepoints(&dir, &iocs);
    let ids = first.program_ids.clone();
    let generation = std::fs::read_dir(&dir)
        .expect("pin dir")
        .map(|e| e.expect("entry").path())
        .next()
        .expect("a generation");
    assert!(generation.join("prog_ioc_exec").exists());
    assert!(!generation.join("link_ioc_exec").exists());
    assert!(generation.join("link_ioc_connect4").exists());
    let killed = first.stop_with(libc::SIGKILL);
    assert!(!killed.status.success());

    // The socket programs' links are pinned: blocking goes on with no agent.
    let (down_pid, down) = iocmon_tests::run_client_outcomes(CLIENT, &["tcp", &target_addr]);
    assert_eq!(down.denied, 1, "{down:?}");
    let status = iocmon(&["status", "--pin-dir", &dir.display().to_string()]);
    let status_text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status_text.contains("6 attached through pinned links")
            && status_text.contains("3 tracepoints are attached only while an agent runs"),
        "{status_text}"
    );

    // ids[0..3] are the tracepoint programs (exec, exit, sock_state): detached while down.
    assert_eq!(
        tracepoint_attachments(&ids[..3], None),
        0,
        "tracepoints detached with the agent"
    );
    let mut second = start_without_pinnable_tracepoints(&dir, &iocs);
    assert_eq!(
        second.program_ids, ids,
        "the same programs, tracepoints attached again"
    );
    assert_eq!(
        tracepoint_attachments(&ids[..3], Some(second.pid())),
        3,
        "each tracepoint attached again"
    );
    second.wait_for("the refusal made while no agent ran", |r| {
        from_pid(r, down_pid) && r["AdditionalFields"]["Verdict"] == "blocked"
    });
    // A process started now is known from its exec event: the exec tracepoint is back.
    let (pid, after) =
        iocmon_tests::run_client_outcomes(CLIENT, &["note", "after-reattach", "tcp", &target_addr]);
    assert_eq!(after.denied, 1, "{after:?}");
    let record = second.wait_for("the refusal after the restart", |r| from_pid(r, pid));
    assert!(
        str_field(&record, "InitiatingProcessCommandLine").contains("after-reattach"),
        "{record}"
    );
    let stopped = second.stop();
    assert!(stopped.status.success(), "{:?}", stopped.stderr);
    assert_eq!(accepted(&target), 0);
    unpin_and_check(&dir, &ids);
}

#[test]
fn status_and_unpin_explain_an_empty_pin_directory() {
    let dir = pin_dir("empty");
    let dir_arg = dir.display().to_string();
    let status = iocmon(&["status", "--pin-dir", &dir_arg]);
    assert_eq!(status.status.code(), Some(1), "{status:?}");
    assert!(String::from_utf8_lossy(&status.stdout).contains("nothing pinned"));
    let unpin = iocmon(&["unpin", "--pin-dir", &dir_arg]);
    assert!(unpin.status.success(), "{unpin:?}");
    assert!(String::from_utf8_lossy(&unpin.stdout).contains("nothing pinned"));
}
