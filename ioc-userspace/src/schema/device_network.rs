//! `DeviceNetworkEvents` rows (Defender XDR advanced hunting column names and types).

use std::net::SocketAddr;

use serde::Serialize;

use crate::{
    clock::format_timestamp,
    event::{ConnectionEvent, Protocol},
    ioc::ParsedIndicator,
    schema::provenance::Provenance,
};

pub const TABLE: &str = "DeviceNetworkEvents";

/// Defender's ActionType for an outbound attempt on Linux.
pub const ACTION_CONNECTION_REQUEST: &str = "ConnectionRequest";

/// What the agent knows about the initiating process, ready for output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessContext {
    /// Executable file name; the comm when the executable is unknown.
    pub file_name: String,
    pub folder_path: Option<String>,
    pub command_line: Option<String>,
    pub command_line_truncated: bool,
    pub account_name: Option<String>,
    pub effective_uid: Option<u32>,
    pub creation_unix_ns: Option<i128>,
    pub parent_id: Option<u32>,
    pub parent_file_name: Option<String>,
    pub parent_creation_unix_ns: Option<i128>,
    /// Ancestor file names, parent first.
    pub ancestors: Vec<String>,
    pub container_id: Option<String>,
}

/// The detection outcome, for the record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Detection {
    pub class: &'static str,
    pub classes: Vec<&'static str>,
    /// Set when an exclusion rule suppressed the whole event (shown only on request).
    pub excluded_by: Option<String>,
    /// Classes removed by rules while others remain reported.
    pub suppressed: Vec<(&'static str, String)>,
    pub reverse_shell_evidence: Option<String>,
}

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
    pub InitiatingProcessCommandLine: Option<&'a str>,
    pub InitiatingProcessCreationTime: Option<String>,
    pub InitiatingProcessAccountName: Option<&'a str>,
    pub InitiatingProcessParentId: Option<u32>,
    pub InitiatingProcessParentFileName: Option<&'a str>,
    pub InitiatingProcessParentCreationTime: Option<String>,
    pub AdditionalFields: AdditionalFields<'a>,
}

/// iocmon's own details, in `AdditionalFields` (a JSON object; `dynamic` in Sentinel).
#[allow(non_snake_case)]
#[derive(Debug, Serialize)]
pub struct AdditionalFields<'a> {
    pub DetectionClass: &'static str,
    pub DetectionClasses: &'a [&'static str],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ExcludedBy: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub SuppressedClasses: Vec<SuppressedClass<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ReverseShellEvidence: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub MatchKind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub IndicatorId: Option<u32>,
    /// The matched indicator and its threat-intel metadata, flattened in.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub Provenance: Option<Provenance>,
    pub Verdict: &'static str,
    pub Hook: &'static str,
    pub Comm: &'a str,
    pub ThreadId: u32,
    pub PosixUserId: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub PosixEffectiveUserId: Option<u32>,
    pub PosixGroupId: u32,
    pub CgroupId: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ContainerId: Option<&'a str>,
    pub Ancestors: &'a [String],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub CommandLineTruncated: bool,
}

#[allow(non_snake_case)]
#[derive(Debug, Serialize)]
pub struct SuppressedClass<'a> {
    pub Class: &'static str,
    pub Rule: &'a str,
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
    detection: &'a Detection,
    indicator: Option<&ParsedIndicator>,
) -> DeviceNetworkEvent<'a> {
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
        InitiatingProcessCommandLine: process.command_line.as_deref(),
        InitiatingProcessCreationTime: process.creation_unix_ns.map(format_timestamp),
        InitiatingProcessAccountName: process.account_name.as_deref(),
        InitiatingProcessParentId: process.parent_id,
        InitiatingProcessParentFileName: process.parent_file_name.as_deref(),
        InitiatingProcessParentCreationTime: process.parent_creation_unix_ns.map(format_timestamp),
        AdditionalFields: AdditionalFields {
            DetectionClass: detection.class,
            DetectionClasses: &detection.classes,
            ExcludedBy: detection.excluded_by.as_deref(),
            SuppressedClasses: detection
                .suppressed
                .iter()
                .map(|(class, rule)| SuppressedClass {
                    Class: class,
                    Rule: rule,
                })
                .collect(),
            ReverseShellEvidence: detection.reverse_shell_evidence.as_deref(),
            MatchKind: matched.map(|(kind, _)| kind),
            IndicatorId: matched.map(|(_, id)| id),
            Provenance: indicator.map(Provenance::of),
            Verdict: if event.blocked { "blocked" } else { "allowed" },
            Hook: event.hook.name(),
            Comm: &event.comm,
            ThreadId: event.pid,
            PosixUserId: event.uid,
            PosixEffectiveUserId: process.effective_uid,
            PosixGroupId: event.gid,
            CgroupId: event.cgroup_id,
            ContainerId: process.container_id.as_deref(),
            Ancestors: &process.ancestors,
            CommandLineTruncated: process.command_line_truncated,
        },
    }
}

/// argv as one command line that a POSIX shell (and `iocmon replay`) splits back into
/// the same words: arguments with blanks, quotes or backslashes are single-quoted.
pub fn join_command_line(args: &[String]) -> String {
    let mut line = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        let plain = !arg.is_empty()
            && !arg
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '\'' | '"' | '\\' | '$' | '`'));
        if plain {
            line.push_str(arg);
        } else {
            line.push('\'');
            line.push_str(&arg.replace('\'', r"'\''"));
            line.push('\'');
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::{decode, tests::bytes_of, tests::raw_connect, Event},
        ioc::network_indicator,
    };

    #[test]
    fn golden_ioc_row() {
        let Ok(Event::Connection(event)) = decode(&bytes_of(&raw_connect())) else {
            panic!("not a connection")
        };
        let process = ProcessContext {
            file_name: "curl".into(),
            folder_path: Some("/usr/bin/curl".into()),
            command_line: Some("curl -s 'http://x/a b'".into()),
            account_name: Some("alice".into()),
            effective_uid: Some(1000),
            creation_unix_ns: Some(1_689_769_000_000_000_000),
            parent_id: Some(1),
            parent_file_name: Some("sh".into()),
            parent_creation_unix_ns: None,
            ancestors: vec!["sh".into(), "init".into()],
            container_id: None,
            command_line_truncated: false,
        };
        let detection = Detection {
            class: "ioc",
            classes: vec!["ioc", "network-tool"],
            ..Detection::default()
        };
        let mut indicator = network_indicator("127.0.0.2:4444", "mirai.txt", 3).unwrap();
        indicator.meta.threat_type = Some("botnet_cc".into());
        indicator.meta.confidence = Some(100);
        let row = build(
            &event,
            1_689_769_062_778_236_400,
            "iot-box",
            &process,
            &detection,
            Some(&indicator),
        );
        let json = serde_json::to_string(&row).unwrap();
        assert_eq!(
            json,
            r#"{"Table":"DeviceNetworkEvents","Timestamp":"2023-07-19T12:17:42.7782364Z","DeviceName":"iot-box","ActionType":"ConnectionRequest","RemoteIP":"127.0.0.2","RemotePort":4444,"LocalIP":null,"LocalPort":null,"Protocol":"Tcp","InitiatingProcessId":99,"InitiatingProcessFileName":"curl","InitiatingProcessFolderPath":"/usr/bin/curl","InitiatingProcessCommandLine":"curl -s 'http://x/a b'","InitiatingProcessCreationTime":"2023-07-19T12:16:40.0000000Z","InitiatingProcessAccountName":"alice","InitiatingProcessParentId":1,"InitiatingProcessParentFileName":"sh","InitiatingProcessParentCreationTime":null,"AdditionalFields":{"DetectionClass":"ioc","DetectionClasses":["ioc","network-tool"],"MatchKind":"endpoint","IndicatorId":3,"Indicator":"127.0.0.2:4444","IndicatorType":"ip:port","IndicatorStableId":"ioc:e0f3a38d3299ad49","IndicatorSource":"mirai.txt:3","ThreatType":"botnet_cc","Confidence":100,"Verdict":"allowed","Hook":"connect6","Comm":"curl","ThreadId":100,"PosixUserId":1000,"PosixEffectiveUserId":1000,"PosixGroupId":1000,"CgroupId":7,"Ancestors":["sh","init"]}}"#
        );
    }

    #[test]
    fn command_line_round_trips_through_the_replay_splitter() {
        let args: Vec<String> = ["nc", "-e", "/bin/sh", "a b", "it's", "", "x\\y", "$HOME"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let line = join_command_line(&args);
        assert_eq!(line, r#"nc -e /bin/sh 'a b' 'it'\''s' '' 'x\y' '$HOME'"#);
        assert_eq!(crate::rules::replay::split_command_line(&line), args);
    }
}
