//! End-to-end: the real agent, the real kernel programs, real loopback connections from
//! child processes. Every destination is loopback.

use iocmon_tests::{extra, from_pid, run_client, str_field, Agent};
use serde_json::Value;

const CLIENT: &str = env!("CARGO_BIN_EXE_ioc-connect");

const IOCS: &str = "\
# test indicators (loopback only)
127.0.0.2:4444
127.0.0.3
127.0.0.64/26
[::1]:4445
";

/// Fields every connection record must carry, whatever matched.
fn assert_common(record: &Value, pid: u32) {
    assert_eq!(
        str_field(record, "Table"),
        "DeviceNetworkEvents",
        "{record}"
    );
    assert_eq!(
        str_field(record, "ActionType"),
        "ConnectionRequest",
        "{record}"
    );
    assert_eq!(record["InitiatingProcessId"], pid, "{record}");
    assert_eq!(
        str_field(record, "InitiatingProcessFileName"),
        "ioc-connect",
        "{record}"
    );
    assert_eq!(
        str_field(record, "InitiatingProcessAccountName"),
        "root",
        "{record}"
    );
    assert!(!str_field(record, "DeviceName").is_empty(), "{record}");
    let timestamp = str_field(record, "Timestamp");
    assert_eq!(
        timestamp.len(),
        28,
        "7 fractional digits and Z: {timestamp}"
    );
    assert!(timestamp.ends_with('Z'), "{timestamp}");
}

#[test]
fn tcp_connect_to_ip_port_indicator_is_reported_exactly() {
    let mut agent = Agent::start("tcp-endpoint", IOCS, &[]);
    let pid = run_client(CLIENT, None, &["tcp", "127.0.0.2:4444"]);
    let record = agent.wait_for("tcp to 127.0.0.2:4444", |r| from_pid(r, pid));
    assert_common(&record, pid);
    assert_eq!(str_field(&record, "RemoteIP"), "127.0.0.2");
    assert_eq!(record["RemotePort"], 4444);
    assert_eq!(str_field(&record, "Protocol"), "Tcp");
    assert_eq!(extra(&record, "DetectionClass"), "ioc");
    assert_eq!(extra(&record, "MatchKind"), "endpoint");
    assert_eq!(extra(&record, "Indicator"), "127.0.0.2:4444");
    assert_eq!(extra(&record, "IndicatorType"), "ip:port");
    assert_eq!(extra(&record, "IndicatorId"), 1);
    assert!(extra(&record, "IndicatorSource")
        .as_str()
        .is_some_and(|s| s.ends_with("iocs.txt:2")));
    assert_eq!(extra(&record, "Verdict"), "allowed");
    assert_eq!(extra(&record, "Hook"), "connect4");
    let stopped = agent.stop();
    assert!(stopped.status.success(), "{:?}", stopped.stderr);
}

#[test]
fn ip_only_indicator_matches_any_port() {
    let mut agent = Agent::start("ip-only", IOCS, &[]);
    let pid = run_client(CLIENT, None, &["tcp", "127.0.0.3:31337"]);
    let record = agent.wait_for("tcp to 127.0.0.3:31337", |r| from_pid(r, pid));
    assert_common(&record, pid);
    assert_eq!(str_field(&record, "RemoteIP"), "127.0.0.3");
    assert_eq!(record["RemotePort"], 31337);
    assert_eq!(extra(&record, "MatchKind"), "address");
    assert_eq!(extra(&record, "Indicator"), "127.0.0.3");
    assert_eq!(extra(&record, "IndicatorType"), "ip");
}

#[test]
fn ip_port_indicator_matches_its_address_on_other_ports_weakly_unless_strict() {
    let mut agent = Agent::start("endpoint-address", IOCS, &[]);
    let pid = run_client(CLIENT, None, &["tcp", "127.0.0.2:8080"]);
    let record = agent.wait_for("tcp to 127.0.0.2:8080", |r| from_pid(r, pid));
    assert_common(&record, pid);
    assert_eq!(record["RemotePort"], 8080);
    assert_eq!(extra(&record, "MatchKind"), "endpoint-address");
    assert_eq!(extra(&record, "Indicator"), "127.0.0.2:4444");
    agent.stop();

    // --strict-ports: the other port is not a hit; the exact one (the marker) still is.
    let mut strict = Agent::start("endpoint-address-strict", IOCS, &["--strict-ports"]);
    let pid = run_client(
        CLIENT,
        None,
        &["tcp", "127.0.0.2:8080", "tcp", "127.0.0.2:4444"],
    );
    strict.wait_for("marker tcp to 127.0.0.2:4444", |r| {
        from_pid(r, pid) && r["RemotePort"] == 4444
    });
    let stopped = strict.stop();
    let other_port: Vec<_> = stopped
        .records
        .iter()
        .filter(|r| from_pid(r, pid) && r["RemotePort"] == 8080)
        .collect();
    assert!(
        other_port.is_empty(),
        "strict ports still matched: {other_port:?}"
    );
}

#[test]
fn udp_sendto_indicator_network_is_reported() {
    let mut agent = Agent::start("udp-sendto", IOCS, &[]);
    let pid = run_client(CLIENT, None, &["udp", "127.0.0.66:5353"]);
    let record = agent.wait_for("udp to 127.0.0.66:5353", |r| from_pid(r, pid));
    assert_common(&record, pid);
    assert_eq!(str_field(&record, "RemoteIP"), "127.0.0.66");
    assert_eq!(record["RemotePort"], 5353);
    assert_eq!(str_field(&record, "Protocol"), "Udp");
    assert_eq!(extra(&record, "Hook"), "sendmsg4");
    assert_eq!(extra(&record, "Indicator"), "127.0.0.64/26");
    assert_eq!(extra(&record, "IndicatorType"), "cidr");
    assert_eq!(
        str_field(&record, "LocalIP"),
        "127.0.0.1",
        "bound source: {record}"
    );
    assert!(
        record["LocalPort"].as_u64().is_some_and(|p| p > 0),
        "{record}"
    );
}

#[test]
fn ipv6_socket_to_v4_mapped_indicator_reports_dotted_quad() {
    let mut agent = Agent::start("v4-mapped", IOCS, &[]);
    let pid = run_client(CLIENT, None, &["tcp", "[::ffff:127.0.0.2]:4444"]);
    let record = agent.wait_for("tcp6 to ::ffff:127.0.0.2:4444", |r| from_pid(r, pid));
    assert_common(&record, pid);
    assert_eq!(
        str_field(&record, "RemoteIP"),
        "127.0.0.2",
        "never ::ffff: forms"
    );
    assert_eq!(record["RemotePort"], 4444);
    assert_eq!(extra(&record, "Hook"), "connect6");
    assert_eq!(extra(&record, "MatchKind"), "endpoint");
    assert_eq!(extra(&record, "Indicator"), "127.0.0.2:4444");
}

#[test]
fn ipv6_ip_port_indicator_is_reported() {
    let mut agent = Agent::start("ipv6", IOCS, &[]);
    let pid = run_client(CLIENT, None, &["tcp", "[::1]:4445", "udp", "[::1]:4445"]);
    let tcp = agent.wait_for("tcp to [::1]:4445", |r| {
        from_pid(r, pid) && r["Protocol"] == "Tcp"
    });
    assert_common(&tcp, pid);
    assert_eq!(str_field(&tcp, "RemoteIP"), "::1");
    assert_eq!(extra(&tcp, "Indicator"), "[::1]:4445");
    let udp = agent.wait_for("udp to [::1]:4445", |r| {
        from_pid(r, pid) && r["Protocol"] == "Udp"
    });
    assert_eq!(extra(&udp, "Hook"), "sendmsg6");
}

#[test]
fn connection_to_non_indicator_is_not_reported() {
    let mut agent = Agent::start("non-indicator", IOCS, &[]);
    // The indicator connect afterwards is a marker: records arrive in order, so once it is
    // in, the earlier connect would have been too.
    let pid = run_client(
        CLIENT,
        None,
        &[
            "tcp",
            "127.0.0.5:4444",
            "udp",
            "127.0.0.5:53",
            "tcp",
            "127.0.0.2:4444",
        ],
    );
    agent.wait_for("marker", |r| {
        from_pid(r, pid) && r["RemoteIP"] == "127.0.0.2"
    });
    let stopped = agent.stop();
    let leaked: Vec<_> = stopped
        .records
        .iter()
        .filter(|r| r["RemoteIP"] == "127.0.0.5")
        .collect();
    assert!(leaked.is_empty(), "non-indicator reported: {leaked:?}");
}

#[test]
fn all_connections_reports_non_indicators_too() {
    // The control for the test above: the same connect is visible when asked for.
    let mut agent = Agent::start("all-connections", IOCS, &["--all-connections"]);
    let pid = run_client(CLIENT, None, &["tcp", "127.0.0.5:4444"]);
    let record = agent.wait_for("tcp to 127.0.0.5:4444", |r| from_pid(r, pid));
    assert_common(&record, pid);
    assert_eq!(extra(&record, "DetectionClass"), "connection");
    assert!(extra(&record, "Indicator").is_null(), "{record}");
    assert!(extra(&record, "MatchKind").is_null(), "{record}");
}

#[test]
fn watched_process_names_are_reported_without_indicator() {
    let mut agent = Agent::start("watched", IOCS, &[]);
    let pid = run_client(CLIENT, Some("nc"), &["127.0.0.5", "4444"]);
    let record = agent.wait_for("nc to a non-indicator", |r| from_pid(r, pid));
    assert_eq!(extra(&record, "DetectionClass"), "network-tool");
    assert_eq!(extra(&record, "Comm"), "nc");
    assert_eq!(str_field(&record, "RemoteIP"), "127.0.0.5");
}

#[test]
fn connection_outcomes_follow_the_request_when_asked() {
    let mut agent = Agent::start("outcomes", IOCS, &["--connection-outcomes"]);
    // 127.0.0.3 is an address indicator: one listening port, one closed port.
    let listener = std::net::TcpListener::bind("127.0.0.3:0").unwrap();
    let open_port = listener.local_addr().unwrap().port();
    let open = format!("127.0.0.3:{open_port}");
    let pid = run_client(CLIENT, None, &["tcp", &open, "tcp", "127.0.0.3:9"]);
    let success = agent.wait_for("ConnectionSuccess", |r| {
        from_pid(r, pid) && r["ActionType"] == "ConnectionSuccess"
    });
    assert_eq!(success["RemotePort"], open_port);
    assert_eq!(str_field(&success, "LocalIP"), "127.0.0.1", "{success}");
    assert!(
        success["LocalPort"].as_u64().is_some_and(|p| p > 0),
        "{success}"
    );
    assert_eq!(extra(&success, "Indicator"), "127.0.0.3");
    let failed = agent.wait_for("ConnectionFailed", |r| {
        from_pid(r, pid) && r["ActionType"] == "ConnectionFailed"
    });
    assert_eq!(failed["RemotePort"], 9);
    // Each connect has exactly its request and one outcome.
    let records: Vec<_> = agent
        .records()
        .iter()
        .filter(|r| from_pid(r, pid))
        .cloned()
        .collect();
    assert_eq!(records.len(), 4, "{records:?}");
    drop(listener);
}
