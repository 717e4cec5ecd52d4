//! DNS end to end: a stub resolver on a loopback address the test owns (never the
//! system resolver), real queries from a client process, the kernel's cgroup_skb
//! capture, DnsEvents records, and resolved-address tracking with TTL expiry.

use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, TcpListener, UdpSocket},
    process::{Command, Stdio},
    time::Duration,
};

use iocmon_tests::{extra, from_pid, run_client, str_field, Agent};
use serde_json::Value;
use simple_dns::{rdata, Name, Packet, ResourceRecord, CLASS};

const CLIENT: &str = env!("CARGO_BIN_EXE_ioc-connect");

const IOCS: &str = "justkiddin.live\n127.0.0.9:9999\n";

/// Answers every A query with `answer` and `ttl`, over UDP and TCP on `ip`:53.
fn stub_resolver(ip: &str, answer: Ipv4Addr, ttl: u32) {
    let reply = move |query: &[u8]| -> Option<Vec<u8>> {
        let query = Packet::parse(query).ok()?;
        let mut reply = query.into_reply();
        let question = reply.questions.first()?.clone();
        reply.answers.push(ResourceRecord::new(
            Name::new_unchecked(&question.qname.to_string()).into_owned(),
            CLASS::IN,
            ttl,
            rdata::RData::A(rdata::A {
                address: u32::from(answer),
            }),
        ));
        reply.build_bytes_vec().ok()
    };
    let udp = UdpSocket::bind((ip, 53)).expect("binding the stub resolver (udp)");
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            if let Some(answer) = reply(&buf[..n]) {
                let _ = udp.send_to(&answer, from);
            }
        }
    });
    let tcp = TcpListener::bind((ip, 53)).expect("binding the stub resolver (tcp)");
    std::thread::spawn(move || {
        for mut stream in tcp.incoming().flatten() {
            let mut len = [0u8; 2];
            if stream.read_exact(&mut len).is_err() {
                continue;
            }
            let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if stream.read_exact(&mut query).is_err() {
                continue;
            }
            if let Some(answer) = reply(&query) {
                let mut framed = (answer.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&answer);
                let _ = stream.write_all(&framed);
            }
        }
    });
}

/// Runs a DNS query from the client; returns (pid, answers).
fn query(action: &str, name: &str, server: &str) -> (u32, String) {
    let child = Command::new(CLIENT)
        .args([action, &format!("{name}@{server}")])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "query {name} failed");
    (pid, String::from_utf8_lossy(&output.stdout).into_owned())
}

fn is_dns(record: &Value) -> bool {
    record["Table"] == "DnsEvents"
}

#[test]
fn udp_query_is_recorded_and_answer_becomes_an_indicator() {
    let mut agent = Agent::start("dns-udp", IOCS, &[]);
    stub_resolver("127.0.53.1", Ipv4Addr::new(127, 0, 0, 77), 60);
    let (pid, answers) = query("dns", "justkiddin.live", "127.0.53.1");
    assert_eq!(answers.trim(), "answer=127.0.0.77");

    let record = agent.wait_for("DnsEvents row", |r| {
        is_dns(r) && extra(r, "InitiatingProcessId") == pid
    });
    assert_eq!(str_field(&record, "Name"), "justkiddin.live");
    assert_eq!(str_field(&record, "QueryType"), "A");
    assert_eq!(str_field(&record, "IPAddresses"), "127.0.0.77");
    assert_eq!(str_field(&record, "SubType"), "LookupQuery");
    assert_eq!(record["ResultCode"], 0);
    assert_eq!(str_field(&record, "ClientIP"), "127.0.0.1");
    assert_eq!(extra(&record, "Indicator"), "justkiddin.live");
    assert_eq!(extra(&record, "IndicatorType"), "domain");
    assert_eq!(extra(&record, "InitiatingProcessFileName"), "ioc-connect");

    // The next connection to the answered address is an indicator hit, with the name.
    let connector = run_client(CLIENT, None, &["tcp", "127.0.0.77:8080"]);
    let hit = agent.wait_for("connect to the resolved address", |r| {
        from_pid(r, connector)
    });
    assert_eq!(str_field(&hit, "RemoteUrl"), "justkiddin.live", "{hit}");
    assert_eq!(extra(&hit, "MatchKind"), "resolved-address");
    assert_eq!(extra(&hit, "Indicator"), "justkiddin.live");
    assert_eq!(extra(&hit, "DetectionClass"), "ioc");
}

#[test]
fn subdomain_and_upper_case_queries_match() {
    let mut agent = Agent::start("dns-case", IOCS, &[]);
    stub_resolver("127.0.53.2", Ipv4Addr::new(127, 0, 0, 78), 60);
    for name in ["a.b.justkiddin.live", "JUSTKIDDIN.LIVE"] {
        let (pid, _) = query("dns", name, "127.0.53.2");
        let record = agent.wait_for(name, |r| {
            is_dns(r) && extra(r, "InitiatingProcessId") == pid
        });
        assert_eq!(str_field(&record, "Name"), name.to_ascii_lowercase());
        assert_eq!(extra(&record, "Indicator"), "justkiddin.live");
    }
    // A name that only ends like the indicator does not match.
    let (pid, _) = query("dns", "notjustkiddin.live", "127.0.53.2");
    let (marker, _) = query("dns", "justkiddin.live", "127.0.53.2");
    agent.wait_for("marker", |r| {
        is_dns(r) && extra(r, "InitiatingProcessId") == marker
    });
    assert!(!agent
        .records()
        .iter()
        .any(|r| is_dns(r) && extra(r, "InitiatingProcessId") == pid));
}

#[test]
fn dns_over_tcp_is_captured() {
    let mut agent = Agent::start("dns-tcp", IOCS, &[]);
    stub_resolver("127.0.53.3", Ipv4Addr::new(127, 0, 0, 79), 60);
    let (pid, answers) = query("dnstcp", "c2.justkiddin.live", "127.0.53.3");
    assert_eq!(answers.trim(), "answer=127.0.0.79");
    let record = agent.wait_for("DNS over TCP", |r| {
        is_dns(r) && extra(r, "InitiatingProcessId") == pid
    });
    assert_eq!(str_field(&record, "IPAddresses"), "127.0.0.79");
}

#[test]
fn resolved_address_stops_matching_after_its_ttl() {
    let mut agent = Agent::start("dns-ttl", IOCS, &[]);
    // 4 s: long enough for the first connect on a loaded machine, short for the test.
    stub_resolver("127.0.53.4", Ipv4Addr::new(127, 0, 0, 80), 4);
    let (pid, _) = query("dns", "justkiddin.live", "127.0.53.4");
    agent.wait_for("DnsEvents row", |r| {
        is_dns(r) && extra(r, "InitiatingProcessId") == pid
    });
    let first = run_client(CLIENT, None, &["tcp", "127.0.0.80:8080"]);
    agent.wait_for("hit within the TTL", |r| from_pid(r, first));

    // Past the TTL plus a second for the agent's expiry check, with a second to spare.
    std::thread::sleep(Duration::from_secs(6));
    let later = run_client(
        CLIENT,
        None,
        &["tcp", "127.0.0.80:8080", "tcp", "127.0.0.9:9999"],
    );
    agent.wait_for("marker", |r| from_pid(r, later) && r["RemotePort"] == 9999);
    let expired_hit = agent
        .records()
        .iter()
        .any(|r| from_pid(r, later) && r["RemotePort"] == 8080);
    assert!(!expired_hit, "address still matched after its TTL");
}
