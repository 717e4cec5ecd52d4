//! `DeviceNetworkEvents` rows (Defender XDR advanced hunting column names and types).

use std::net::SocketAddr;

use serde::Serialize;

use crate::{
    clock::format_timestamp,
    detect::classify,
    event::{ConnectionEvent, Protocol},
    ioc::Indicator,
    process::ProcessContext,
};

pub const TABLE: &str = "DeviceNetworkEvents";

/// Defender's ActionType for an outbound attempt on Linux.
pub const ACTION_CONNECTION_REQUEST: &str = "ConnectionRequest";

/// One row. Field names are the table's column names, verbatim.
#[allow(non_snake_case)]
#[derive(Debug, Serialize)]
pub struct DeviceNetworkEvent<'a> {
    pub Table: &'static str,
    pub Timestamp: String,
    pub DeviceName: &'a str,
    pub ActionType: &'static str,
    pub RemoteIP: String,
    pub RemotePort: u16,
    pub LocalIP: Option<String>,
    pub LocalPort: Option<u16>,
    pub Protocol: &'static str,
    pub InitiatingProcessId: u32,
    pub InitiatingProcessFileName: &'a str,
    pub InitiatingProcessFolderPath: Option<&'a str>,
    pub InitiatingProcessAccountName: Option<&'a str>,
    pub AdditionalFields: AdditionalFields<'a>,
}

/// iocmon's own details, in `AdditionalFields` (a JSON object; `dynamic` in Sentinel).
#[allow(non_snake_case)]
#[derive(Debug, Serialize)]
pub struct AdditionalFields<'a> {
    pub DetectionClass: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub MatchKind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub IndicatorId: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub Indicator: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub IndicatorType: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub IndicatorSource: Option<String>,
    pub Verdict: &'static str,
    pub Hook: &'static str,
    pub Comm: &'a str,
    pub ThreadId: u32,
    pub PosixUserId: u32,
    pub PosixGroupId: u32,
    pub CgroupId: u64,
}

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "Tcp",
        Protocol::Udp => "Udp",
        Protocol::Other(1 | 58) => "Icmp",
        Protocol::Other(_) => "Unknown",
    }
}

fn ip_port(addr: Option<SocketAddr>) -> (Option<String>, Option<u16>) {
    match addr {
        Some(addr) => (Some(addr.ip().to_string()), Some(addr.port())),
        None => (None, None),
    }
}

/// Builds the row for `event`. `indicator` is the set's entry for the matched id, if any.
pub fn build<'a>(
    event: &'a ConnectionEvent,
    unix_ns: i128,
    device_name: &'a str,
    process: &'a ProcessContext,
    indicator: Option<&Indicator>,
) -> DeviceNetworkEvent<'a> {
    let class = classify(event);
    let (local_ip, local_port) = ip_port(event.local);
    let matched = event.indicator.map(|(kind, id)| (kind.name(), id));
    DeviceNetworkEvent {
        Table: TABLE,
        Timestamp: format_timestamp(unix_ns),
        DeviceName: device_name,
        ActionType: ACTION_CONNECTION_REQUEST,
        RemoteIP: event.remote.ip().to_string(),
        RemotePort: event.remote.port(),
        LocalIP: local_ip,
        LocalPort: local_port,
        Protocol: protocol_name(event.protocol),
        InitiatingProcessId: event.tgid,
        InitiatingProcessFileName: &process.file_name,
        InitiatingProcessFolderPath: process.folder_path.as_deref(),
        InitiatingProcessAccountName: process.account_name.as_deref(),
        AdditionalFields: AdditionalFields {
            DetectionClass: class.name(),
            MatchKind: matched.map(|(kind, _)| kind),
            IndicatorId: matched.map(|(_, id)| id),
            Indicator: indicator.map(|i| i.value.to_string()),
            IndicatorType: indicator.map(|i| i.value.type_name()),
            IndicatorSource: indicator.map(|i| i.origin.to_string()),
            Verdict: if event.blocked { "blocked" } else { "allowed" },
            Hook: event.hook.name(),
            Comm: &event.comm,
            ThreadId: event.pid,
            PosixUserId: event.uid,
            PosixGroupId: event.gid,
            CgroupId: event.cgroup_id,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::{decode, tests::bytes_of, tests::raw_connect, Event},
        ioc::{inline_origin, parse_value},
    };

    #[test]
    fn golden_ioc_row() {
        let Event::Connection(event) = decode(&bytes_of(&raw_connect())).unwrap();
        let process = ProcessContext {
            file_name: "curl".into(),
            folder_path: Some("/usr/bin/curl".into()),
            account_name: Some("alice".into()),
        };
        let indicator = Indicator {
            value: parse_value("127.0.0.2:4444").unwrap(),
            origin: inline_origin(3),
        };
        let row = build(
            &event,
            1_689_769_062_778_236_400,
            "iot-box",
            &process,
            Some(&indicator),
        );
        let json = serde_json::to_string(&row).unwrap();
        assert_eq!(
            json,
            r#"{"Table":"DeviceNetworkEvents","Timestamp":"2023-07-19T12:17:42.7782364Z","DeviceName":"iot-box","ActionType":"ConnectionRequest","RemoteIP":"127.0.0.2","RemotePort":4444,"LocalIP":null,"LocalPort":null,"Protocol":"Tcp","InitiatingProcessId":99,"InitiatingProcessFileName":"curl","InitiatingProcessFolderPath":"/usr/bin/curl","InitiatingProcessAccountName":"alice","AdditionalFields":{"DetectionClass":"ioc","MatchKind":"endpoint","IndicatorId":3,"Indicator":"127.0.0.2:4444","IndicatorType":"ip:port","IndicatorSource":"<inline>:3","Verdict":"allowed","Hook":"connect6","Comm":"curl","ThreadId":100,"PosixUserId":1000,"PosixGroupId":1000,"CgroupId":7}}"#
        );
    }
}
