//! `DeviceNetworkEvents` rows (Defender XDR advanced hunting column names and types).

use std::net::{IpAddr, SocketAddr};

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
/// The TCP connect completed (`--connection-outcomes`).
pub const ACTION_CONNECTION_SUCCESS: &str = "ConnectionSuccess";
/// The TCP connect failed: refused, reset or timed out (`--connection-outcomes`).
pub const ACTION_CONNECTION_FAILED: &str = "ConnectionFailed";

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

/// One row. Field names are the table's column names, verbatim; columns Linux cannot
/// fill are present and null, so every row has the table's full shape.
#[allow(non_snake_case)]
#[derive(Debug, Serialize)]
pub struct DeviceNetworkEvent<'a> {
    pub Table: &'static str,
    pub Timestamp: String,
    /// 40 hex digits, stable per device (see [`super::device_id`]).
    pub DeviceId: &'a str,
    pub DeviceName: &'a str,
    pub ActionType: &'static str,
    pub RemoteIP: String,
    pub RemotePort: u16,
    /// Not known at connect time (a later issue correlates DNS answers).
    pub RemoteUrl: Option<&'a str>,
    pub LocalIP: Option<String>,
    pub LocalPort: Option<u16>,
    pub Protocol: &'static str,
    pub LocalIPType: Option<&'static str>,
    pub RemoteIPType: &'static str,
    pub InitiatingProcessSHA1: Option<&'a str>,
    pub InitiatingProcessSHA256: Option<&'a str>,
    pub InitiatingProcessMD5: Option<&'a str>,
    pub InitiatingProcessFileName: &'a str,
    pub InitiatingProcessFileSize: Option<u64>,
    pub InitiatingProcessVersionInfoCompanyName: Option<&'static str>,
    pub InitiatingProcessVersionInfoProductName: Option<&'static str>,
    pub InitiatingProcessVersionInfoProductVersion: Option<&'static str>,
    pub InitiatingProcessVersionInfoInternalFileName: Option<&'static str>,
    pub InitiatingProcessVersionInfoOriginalFileName: Option<&'static str>,
    pub InitiatingProcessVersionInfoFileDescription: Option<&'static str>,
    pub InitiatingProcessId: u32,
    pub InitiatingProcessCommandLine: Option<&'a str>,
    pub InitiatingProcessCreationTime: Option<String>,
    pub InitiatingProcessFolderPath: Option<&'a str>,
    pub InitiatingProcessParentFileName: Option<&'a str>,
    pub InitiatingProcessParentId: Option<u32>,
    pub InitiatingProcessParentCreationTime: Option<String>,
    /// The host name, as Defender shows it for macOS and Linux accounts.
    pub InitiatingProcessAccountDomain: &'a str,
    pub InitiatingProcessAccountName: Option<&'a str>,
    pub InitiatingProcessAccountSid: Option<&'static str>,
    pub InitiatingProcessAccountUpn: Option<&'static str>,
    pub InitiatingProcessAccountObjectId: Option<&'static str>,
    pub InitiatingProcessIntegrityLevel: Option<&'static str>,
    /// `None` (the string), as Defender reports it where UAC does not apply.
    pub InitiatingProcessTokenElevation: &'static str,
    pub InitiatingProcessSessionId: Option<u64>,
    pub IsInitiatingProcessRemoteSession: Option<bool>,
    pub InitiatingProcessRemoteSessionDeviceName: Option<&'static str>,
    pub InitiatingProcessRemoteSessionIP: Option<&'static str>,
    pub AppGuardContainerId: Option<&'static str>,
    /// Counter per agent run; DeviceName + Timestamp + ReportId identify a record.
    pub ReportId: u64,
    pub AdditionalFields: AdditionalFields<'a>,
    /// The event time as Unix nanoseconds (for CEF `rt`); not a column.
    #[serde(skip)]
    pub unix_ns: i128,
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
/// `DeviceId` and `ReportId` are the emitter's to set (empty and 0 here).
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
        DeviceId: "",
        DeviceName: device_name,
        ActionType: ACTION_CONNECTION_REQUEST,
        RemoteIP: event.remote.ip().to_string(),
        RemotePort: event.remote.port(),
        RemoteUrl: None,
        LocalIP: local_ip,
        LocalPort: local_port,
        Protocol: protocol_name(event.protocol),
        LocalIPType: event.local.map(|addr| ip_type(addr.ip())),
        RemoteIPType: ip_type(event.remote.ip()),
        InitiatingProcessSHA1: None,
        InitiatingProcessSHA256: None,
        InitiatingProcessMD5: None,
        InitiatingProcessFileName: &process.file_name,
        InitiatingProcessFileSize: None,
        InitiatingProcessVersionInfoCompanyName: None,
        InitiatingProcessVersionInfoProductName: None,
        InitiatingProcessVersionInfoProductVersion: None,
        InitiatingProcessVersionInfoInternalFileName: None,
        InitiatingProcessVersionInfoOriginalFileName: None,
        InitiatingProcessVersionInfoFileDescription: None,
        InitiatingProcessId: event.tgid,
        InitiatingProcessCommandLine: process.command_line.as_deref(),
        InitiatingProcessCreationTime: process.creation_unix_ns.map(format_timestamp),
        InitiatingProcessFolderPath: process.folder_path.as_deref(),
        InitiatingProcessParentFileName: process.parent_file_name.as_deref(),
        InitiatingProcessParentId: process.parent_id,
        InitiatingProcessParentCreationTime: process.parent_creation_unix_ns.map(format_timestamp),
        InitiatingProcessAccountDomain: device_name,
        InitiatingProcessAccountName: process.account_name.as_deref(),
        InitiatingProcessAccountSid: None,
        InitiatingProcessAccountUpn: None,
        InitiatingProcessAccountObjectId: None,
        InitiatingProcessIntegrityLevel: None,
        InitiatingProcessTokenElevation: "None",
        InitiatingProcessSessionId: None,
        IsInitiatingProcessRemoteSession: None,
        InitiatingProcessRemoteSessionDeviceName: None,
        InitiatingProcessRemoteSessionIP: None,
        AppGuardContainerId: None,
        ReportId: 0,
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
        unix_ns,
    }
}

/// Defender's `LocalIPType`/`RemoteIPType` for an address (IPv4 given as IPv4, never
/// v4-mapped; a v4-mapped IPv6 address is `FourToSixMapping`).
///
/// Loopback: 127/8, ::1. Private: 10/8, 172.16/12, 192.168/16, 100.64/10 (shared
/// address space), fc00::/7. LinkLocal: 169.254/16, fe80::/10. Broadcast:
/// 255.255.255.255. Teredo: 2001::/32. FourToSixMapping: ::ffff:0:0/96. Reserved:
/// 0/8, 192.0.0/24, documentation and benchmark ranges, 240/4, multicast, ::,
/// 2001:db8::/32. Public: everything else.
pub fn ip_type(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                "Loopback"
            } else if v4.is_broadcast() {
                "Broadcast"
            } else if v4.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
                "Private"
            } else if v4.is_link_local() {
                "LinkLocal"
            } else if o[0] == 0
                || o[0] >= 224
                || (o[0] == 192 && o[1] == 0 && (o[2] == 0 || o[2] == 2))
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || (o[0] == 198 && o[1] == 51 && o[2] == 100)
                || (o[0] == 203 && o[1] == 0 && o[2] == 113)
            {
                "Reserved"
            } else {
                "Public"
            }
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if v6.is_loopback() {
                "Loopback"
            } else if v6.to_ipv4_mapped().is_some() {
                "FourToSixMapping"
            } else if (s[0] & 0xfe00) == 0xfc00 {
                "Private"
            } else if (s[0] & 0xffc0) == 0xfe80 {
                "LinkLocal"
            } else if s[0] == 0x2001 && s[1] == 0 {
                "Teredo"
            } else if v6.is_unspecified() || v6.is_multicast() || (s[0] == 0x2001 && s[1] == 0x0db8)
            {
                "Reserved"
            } else {
                "Public"
            }
        }
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
        indicator.meta.malware = Some(std::sync::Arc::new(crate::ioc::formats::model::Malware {
            id: Some("elf.mirai".into()),
            printable: Some("Mirai".into()),
            aliases: Vec::new(),
        }));
        let mut row = build(
            &event,
            1_689_769_062_778_236_400,
            "iot-box",
            &process,
            &detection,
            Some(&indicator),
        );
        row.DeviceId = "22bb10ffe3104214b20fc7de339a2b053e915e5c";
        row.ReportId = 7;
        let json = serde_json::to_string(&row).unwrap();
        assert_eq!(
            json,
            r#"{"Table":"DeviceNetworkEvents","Timestamp":"2023-07-19T12:17:42.7782364Z","DeviceId":"22bb10ffe3104214b20fc7de339a2b053e915e5c","DeviceName":"iot-box","ActionType":"ConnectionRequest","RemoteIP":"127.0.0.2","RemotePort":4444,"RemoteUrl":null,"LocalIP":null,"LocalPort":null,"Protocol":"Tcp","LocalIPType":null,"RemoteIPType":"Loopback","InitiatingProcessSHA1":null,"InitiatingProcessSHA256":null,"InitiatingProcessMD5":null,"InitiatingProcessFileName":"curl","InitiatingProcessFileSize":null,"InitiatingProcessVersionInfoCompanyName":null,"InitiatingProcessVersionInfoProductName":null,"InitiatingProcessVersionInfoProductVersion":null,"InitiatingProcessVersionInfoInternalFileName":null,"InitiatingProcessVersionInfoOriginalFileName":null,"InitiatingProcessVersionInfoFileDescription":null,"InitiatingProcessId":99,"InitiatingProcessCommandLine":"curl -s 'http://x/a b'","InitiatingProcessCreationTime":"2023-07-19T12:16:40.0000000Z","InitiatingProcessFolderPath":"/usr/bin/curl","InitiatingProcessParentFileName":"sh","InitiatingProcessParentId":1,"InitiatingProcessParentCreationTime":null,"InitiatingProcessAccountDomain":"iot-box","InitiatingProcessAccountName":"alice","InitiatingProcessAccountSid":null,"InitiatingProcessAccountUpn":null,"InitiatingProcessAccountObjectId":null,"InitiatingProcessIntegrityLevel":null,"InitiatingProcessTokenElevation":"None","InitiatingProcessSessionId":null,"IsInitiatingProcessRemoteSession":null,"InitiatingProcessRemoteSessionDeviceName":null,"InitiatingProcessRemoteSessionIP":null,"AppGuardContainerId":null,"ReportId":7,"AdditionalFields":{"DetectionClass":"ioc","DetectionClasses":["ioc","network-tool"],"MatchKind":"endpoint","IndicatorId":3,"Indicator":"127.0.0.2:4444","IndicatorType":"ip:port","IndicatorStableId":"ioc:e0f3a38d3299ad49","IndicatorSource":"mirai.txt:3","ThreatType":"botnet_cc","Malware":"Mirai","MalwareId":"elf.mirai","Confidence":100,"Verdict":"allowed","Hook":"connect6","Comm":"curl","ThreadId":100,"PosixUserId":1000,"PosixEffectiveUserId":1000,"PosixGroupId":1000,"CgroupId":7,"Ancestors":["sh","init"]}}"#
        );
    }

    /// The golden row's event with hostile process text, as CEF.
    #[test]
    fn golden_cef_line() {
        let Ok(Event::Connection(event)) = decode(&bytes_of(&raw_connect())) else {
            panic!("not a connection")
        };
        let process = ProcessContext {
            file_name: "cu|rl".into(),
            command_line: Some("curl -d a=b\\c\n<13>CEF:0|forged|x 'p|q'".into()),
            account_name: Some("alice".into()),
            ..ProcessContext::default()
        };
        let detection = Detection {
            class: "ioc",
            classes: vec!["ioc", "network-tool"],
            ..Detection::default()
        };
        let mut indicator = network_indicator("127.0.0.2:4444", "mirai.txt", 3).unwrap();
        indicator.meta.threat_type = Some("botnet_cc".into());
        indicator.meta.confidence = Some(100);
        indicator.meta.malware = Some(std::sync::Arc::new(crate::ioc::formats::model::Malware {
            id: Some("elf.mirai".into()),
            printable: Some("Mirai".into()),
            aliases: Vec::new(),
        }));
        let mut row = build(
            &event,
            1_689_769_062_778_236_400,
            "iot-box",
            &process,
            &detection,
            Some(&indicator),
        );
        row.ReportId = 7;
        let line = super::super::cef::device_network(&row);
        assert_eq!(
            line,
            format!(
                "CEF:0|iocmon|iocmon|{}|ioc|Connection to threat-intel indicator|8|{}",
                super::super::cef::VERSION,
                r"rt=1689769062778 dvchost=iot-box externalId=7 deviceDirection=1 dst=127.0.0.2 dpt=4444 proto=TCP act=allowed suser=alice sproc=cu|rl spid=99 cs1Label=Indicator cs1=127.0.0.2:4444 cs2Label=Malware cs2=Mirai cs3Label=ThreatType cs3=botnet_cc cs4Label=CommandLine cs4=curl -d a\=b\\c\n<13>CEF:0|forged|x 'p|q' cs5Label=DetectionClass cs5=ioc,network-tool cs6Label=MatchedRule cs6=endpoint mirai.txt:3 cn1Label=Confidence cn1=100"
            )
        );
    }

    #[test]
    fn ip_types() {
        let t = |s: &str| ip_type(s.parse().unwrap());
        assert_eq!(t("127.0.0.2"), "Loopback");
        assert_eq!(t("::1"), "Loopback");
        assert_eq!(t("10.1.2.3"), "Private");
        assert_eq!(t("172.31.0.1"), "Private");
        assert_eq!(t("192.168.1.1"), "Private");
        assert_eq!(t("100.64.0.1"), "Private");
        assert_eq!(t("fd00::1"), "Private");
        assert_eq!(t("169.254.1.1"), "LinkLocal");
        assert_eq!(t("fe80::1"), "LinkLocal");
        assert_eq!(t("255.255.255.255"), "Broadcast");
        assert_eq!(t("2001:0:4136:e378::1"), "Teredo");
        assert_eq!(t("::ffff:8.8.8.8"), "FourToSixMapping");
        assert_eq!(t("0.1.2.3"), "Reserved");
        assert_eq!(t("224.0.0.1"), "Reserved");
        assert_eq!(t("192.0.2.1"), "Reserved");
        assert_eq!(t("2001:db8::1"), "Reserved");
        assert_eq!(t("217.60.195.160"), "Public");
        assert_eq!(t("2a00:1450::1"), "Public");
        assert_eq!(t("100.128.0.1"), "Public");
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
