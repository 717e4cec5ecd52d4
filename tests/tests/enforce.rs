//! Block mode: the kernel refuses connects and sends to indicators with EPERM while every
//! other connection goes through, each refusal is recorded, the scope narrows what is
//! refused, a configuration reload switches modes without reattaching, and the running
//! agent keeps only the capabilities it needs.
//!
//! Block mode acts on every process of the machine, so these tests use addresses in
//! 127.0.77.0/24, which no other test touches.

use std::{
    io::Read as _,
    net::{TcpListener, UdpSocket},
    process::{Command, Stdio},
    time::Duration,
};

use iocmon_tests::{
    extra, from_pid, iocmon_bin, run_client_outcomes, scratch_dir, str_field, Agent,
};
use serde_json::Value;

const CLIENT: &str = env!("CARGO_BIN_EXE_ioc-connect");

/// A TCP listener and a UDP socket on `ip`, to see whether traffic got through.
struct Listeners {
    tcp: TcpListener,
    udp: UdpSocket,
}

impl Listeners {
    fn on(ip: &str) -> Self {
        let tcp = TcpListener::bind((ip, 0)).expect("tcp listener");
        tcp.set_nonblocking(true).expect("nonblocking");
        let udp = UdpSocket::bind((ip, 0)).expect("udp socket");
        udp.set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        Self { tcp, udp }
    }

    fn tcp_addr(&self) -> String {
        self.tcp.local_addr().expect("addr").to_string()
    }

    fn udp_addr(&self) -> String {
        self.udp.local_addr().expect("addr").to_string()
    }

    /// How many connections were accepted and datagrams received.
    fn arrived(&self) -> (usize, usize) {
        let mut accepted = 0;
        while self.tcp.accept().is_ok() {
            accepted += 1;
        }
        let mut received = 0;
        let mut buf = [0u8; 64];
        while self.udp.recv_from(&mut buf).is_ok() {
            received += 1;
        }
        (accepted, received)
    }
}

fn blocked_from(record: &Value, pid: u32, protocol: &str) -> bool {
    from_pid(record, pid)
        && str_field(record, "Protocol") == protocol
        && extra(record, "Verdict") == "blocked"
}

#[test]
fn block_mode_refuses_tcp_and_udp_to_indicators_and_records_each_refusal() {
    let bad = Listeners::on("127.0.77.1");
    let good = Listeners::on("127.0.0.1");
    let mut agent = Agent::start(
        "block-tcp-udp",
        "127.0.77.1\n",
        &["--mode", "block", "--health-interval", "0"],
    );
    let (pid, outcomes) = run_client_outcomes(
        CLIENT,
        &[
            "tcp",
            &bad.tcp_addr(),
            "udp",
            &bad.udp_addr(),
            "tcp",
            &good.tcp_addr(),
            "udp",
            &good.udp_addr(),
        ],
    );
    assert_eq!(outcomes.denied, 2, "{outcomes:?}");
    assert_eq!(outcomes.connected, 1, "{outcomes:?}");
    assert_eq!(outcomes.sent, 1, "{outcomes:?}");
    assert_eq!(bad.arrived(), (0, 0), "nothing may reach the indicator");
    assert_eq!(
        good.arrived(),
        (1, 1),
        "other loopback traffic goes through"
    );

    let tcp = agent.wait_for("refused tcp", |r| blocked_from(r, pid, "Tcp"));
    let udp = agent.wait_for("refused udp", |r| blocked_from(r, pid, "Udp"));
    for record in [&tcp, &udp] {
        assert_eq!(str_field(record, "RemoteIP"), "127.0.77.1", "{record}");
        assert_eq!(extra(record, "DetectionClass"), "ioc", "{record}");
        assert_eq!(
            str_field(record, "ActionType"),
            "ConnectionRequest",
            "{record}"
        );
    }
    let stopped = agent.stop();
    assert!(stopped.status.success(), "{:?}", stopped.stderr);
    let refusals = stopped
        .records
        .iter()
        .filter(|r| from_pid(r, pid) && extra(r, "Verdict") == "blocked")
        .count();
    assert_eq!(refusals, 2, "one record per refusal");
    let health = stopped
        .records
        .iter()
        .find(|r| str_field(r, "Table") == "IocmonHealth")
        .expect("final health record");
    assert!(
        health["KernelBlocked"].as_u64().unwrap_or(0) >= 2,
        "{health}"
    );
}

#[test]
fn block_scope_limits_protocols_threat_types_and_confidence() {
    let bad = Listeners::on("127.0.77.2");
    let port = bad.tcp.local_addr().expect("addr").port();
    // Two indicators on the same host: a confident C2 endpoint and a payload host.
    let iocs = format!(
        r#"{{"1": [{{"ioc_value": "127.0.77.2:{port}", "ioc_type": "ip:port",
                     "threat_type": "botnet_cc", "malware": "elf.mirai",
                     "malware_printable": "Mirai", "confidence_level": 100,
                     "first_seen_utc": "2026-12-01 10:00:00"}}],
             "2": [{{"ioc_value": "127.0.77.3", "ioc_type": "ip",
                     "threat_type": "payload_delivery", "malware": "elf.mirai",
                     "malware_printable": "Mirai", "confidence_level": 50,
                     "first_seen_utc": "2026-12-01 10:00:00"}}]}}"#
    );
    let payload = Listeners::on("127.0.77.3");
    // A (careless) rule that suppresses indicator hits from the client: refusals are
    // written anyway.
    let rules = scratch_dir("block-scope").join("rules.toml");
    std::fs::write(
        &rules,
        "version = 1\n[[rule]]\nname = \"hide-client\"\nprocess_names = [\"ioc-connect\"]\n\
         suppresses = [\"ioc\"]\n",
    )
    .expect("writing rules");
    let rules_arg = rules.display().to_string();
    let mut agent = Agent::start(
        "block-scope",
        &iocs,
        &[
            "--rules",
            &rules_arg,
            "--format",
            "threatfox-json",
            "--mode",
            "block",
            "--block-protocol",
            "tcp",
            "--block-threat-type",
            "botnet_cc",
            "--block-min-confidence",
            "75",
        ],
    );
    let (pid, outcomes) = run_client_outcomes(
        CLIENT,
        &[
            "tcp",
            &bad.tcp_addr(),
            "udp",
            &bad.udp_addr(),
            "tcp",
            &payload.tcp_addr(),
        ],
    );
    // TCP to the C2 refused; UDP (out of scope) and the low-confidence payload host allowed.
    assert_eq!(outcomes.denied, 1, "{outcomes:?}");
    assert_eq!(outcomes.sent, 1, "{outcomes:?}");
    assert_eq!(outcomes.connected, 1, "{outcomes:?}");
    assert_eq!(payload.arrived().0, 1);
    let refused = agent.wait_for("the refusal", |r| blocked_from(r, pid, "Tcp"));
    assert_eq!(extra(&refused, "ExcludedBy"), "hide-client", "{refused}");
    assert_eq!(extra(&refused, "ThreatType"), "botnet_cc", "{refused}");
    let stopped = agent.stop();
    assert!(stopped.status.success(), "{:?}", stopped.stderr);
    // The allowed hits were suppressed by the rule, as asked.
    let written: Vec<&Value> = stopped
        .records
        .iter()
        .filter(|r| from_pid(r, pid))
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
}

fn write_config(path: &std::path::Path, iocs: &std::path::Path, mode: &str) {
    let text = format!(
        "iocs = [{:?}]\nmode = {mode:?}\nhealth-interval = 0\nreload-interval = 0\n",
        iocs.display().to_string()
    );
    std::fs::write(path, text).expect("writing config");
}

#[test]
fn sighup_switches_modes_without_reattaching() {
    let dir = scratch_dir("mode-switch");
    let iocs = dir.join("iocs.txt");
    std::fs::write(&iocs, "127.0.77.4\n").expect("writing indicators");
    let config = dir.join("iocmon.toml");
    write_config(&config, &iocs, "monitor");
    let mut command = Command::new(iocmon_bin());
    command
        .arg("run")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let agent = Agent::spawn(command);
    let target = Listeners::on("127.0.77.4");

    let (_, before) = run_client_outcomes(CLIENT, &["tcp", &target.tcp_addr()]);
    assert_eq!(before.connected, 1, "monitor mode only records: {before:?}");

    let switch = |mode: &str, reloads: usize| {
        write_config(&config, &iocs, mode);
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(agent.pid() as i32, libc::SIGHUP) }, 0);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while agent
            .stderr_text()
            .matches("reloaded indicators (SIGHUP)")
            .count()
            < reloads
        {
            assert!(
                std::time::Instant::now() < deadline,
                "no reload after SIGHUP:\n{}",
                agent.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    switch("block", 1);
    let (_, blocked) = run_client_outcomes(CLIENT, &["tcp", &target.tcp_addr()]);
    assert_eq!(blocked.denied, 1, "block mode after SIGHUP: {blocked:?}");
    assert!(agent.stderr_text().contains("mode now block (tcp+udp)"));

    switch("monitor", 2);
    let (_, after) = run_client_outcomes(CLIENT, &["tcp", &target.tcp_addr()]);
    assert_eq!(after.connected, 1, "monitor again: {after:?}");
    assert_eq!(target.arrived().0, 2);

    // Same programs throughout: one readiness line, the same ids still loaded.
    let stderr = agent.stderr_text();
    assert_eq!(stderr.matches(": ready: ").count(), 1, "{stderr}");
    let loaded: Vec<u32> = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .map(|info| info.id())
        .collect();
    assert!(agent.program_ids.iter().all(|id| loaded.contains(id)));

    // A bad configuration changes nothing and says why.
    std::fs::write(&config, "mode = \"deny\"\n").expect("writing config");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(agent.pid() as i32, libc::SIGHUP) }, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !agent.stderr_text().contains("configuration reload failed") {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            agent.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let failure = agent.stderr_text();
    assert!(
        failure.contains(&config.display().to_string()) && failure.contains("mode"),
        "the error names the file and key: {failure}"
    );
    let stopped = agent.stop();
    assert!(stopped.status.success(), "{:?}", stopped.stderr);
}

#[test]
fn running_agent_keeps_only_cap_bpf_and_cap_sys_ptrace() {
    let agent = Agent::start("capabilities", "127.0.77.5\n", &[]);
    let mut status = String::new();
    std::fs::File::open(format!("/proc/{}/status", agent.pid()))
        .and_then(|mut f| f.read_to_string(&mut status))
        .expect("reading /proc/PID/status");
    // CAP_SYS_PTRACE is bit 19, CAP_BPF bit 39.
    let expected = (1u64 << 19) | (1u64 << 39);
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{set}:\t")))
            .unwrap_or_else(|| panic!("{set} missing in {status}"));
        let value = u64::from_str_radix(value.trim(), 16).expect("hex capability mask");
        assert_eq!(value, expected, "{set} = {value:#x}");
    }
    for set in ["CapInh", "CapAmb"] {
        assert!(
            status.contains(&format!("{set}:\t0000000000000000")),
            "{status}"
        );
    }
    let stopped = agent.stop();
    assert!(stopped.status.success(), "{:?}", stopped.stderr);
}
