//! CEF lines for Sentinel's `CommonSecurityLog` (through rsyslog/syslog-ng and the Azure
//! Monitor Agent's "CEF via AMA" connector).
//!
//! Header: `CEF:0|Vendor|Product|Version|DeviceEventClassID|Name|Severity|` then the
//! extension, space-separated `key=value`. Escaping (ArcSight CEF; rsyslog's
//! `cef_ext_escape`):
//!
//! - header fields: `\` -> `\\`, `|` -> `\|`; CR and LF (not allowed in a header) become
//!   spaces, so no value can start a new line;
//! - extension values: `\` -> `\\`, `=` -> `\=`, LF -> `\n`, CR -> `\r`; `|` stays as is.
//!
//! Keys and labels are ours (constants), never input. Values longer than
//! [`MAX_VALUE_BYTES`] are cut at a character boundary and end in `...`, the length
//! ArcSight gives custom strings, so one record stays one syslog message.

use std::fmt::Write as _;

use super::device_network::DeviceNetworkEvent;

/// `DeviceVendor` and `DeviceProduct`.
pub const VENDOR: &str = "iocmon";
pub const PRODUCT: &str = "iocmon";
/// `DeviceVersion`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Longest extension value, in bytes before escaping.
pub const MAX_VALUE_BYTES: usize = 4000;

/// The table CEF lines land in; the routing name for file and syslog sinks.
pub const TABLE: &str = "CommonSecurityLog";

/// Appends `value` escaped for a CEF header field.
pub fn escape_header(value: &str, out: &mut String) {
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\n' | '\r' => out.push(' '),
            other => out.push(other),
        }
    }
}

/// Appends `value` escaped for a CEF extension value (cut to [`MAX_VALUE_BYTES`]).
pub fn escape_extension(value: &str, out: &mut String) {
    let (value, cut) = cut_at_boundary(value, MAX_VALUE_BYTES);
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            other => out.push(other),
        }
    }
    if cut {
        out.push_str("...");
    }
}

fn cut_at_boundary(value: &str, max: usize) -> (&str, bool) {
    if value.len() <= max {
        return (value, false);
    }
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    (&value[..end], true)
}

/// One CEF line under construction.
#[derive(Debug)]
pub struct CefLine {
    line: String,
    /// No extension written yet (no separating space needed).
    first: bool,
}

impl CefLine {
    /// Starts a line with the header. `severity` is 0-10.
    pub fn new(class_id: &str, name: &str, severity: u8) -> Self {
        let mut line = String::with_capacity(512);
        line.push_str("CEF:0|");
        for field in [VENDOR, PRODUCT, VERSION, class_id, name] {
            escape_header(field, &mut line);
            line.push('|');
        }
        let _ = write!(line, "{}|", severity.min(10));
        Self { line, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.line.push(' ');
        }
        self.first = false;
        self.line.push_str(key);
        self.line.push('=');
    }

    /// `key=value`, the value escaped.
    pub fn text(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        escape_extension(value, &mut self.line);
        self
    }

    /// `key=value` when there is a value; nothing otherwise.
    pub fn opt_text(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.text(key, value);
        }
        self
    }

    /// `key=N` for a number (no escaping needed).
    pub fn number(&mut self, key: &str, value: impl std::fmt::Display) -> &mut Self {
        self.key(key);
        let _ = write!(self.line, "{value}");
        self
    }

    /// `csNLabel=LABEL csN=VALUE` (DeviceCustomStringN), omitted when there is no value.
    pub fn custom_string(&mut self, n: u8, label: &str, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.text(&format!("cs{n}Label"), label);
            self.text(&format!("cs{n}"), value);
        }
        self
    }

    /// `cnNLabel=LABEL cnN=VALUE` (DeviceCustomNumberN), omitted when there is no value.
    pub fn custom_number(&mut self, n: u8, label: &str, value: Option<i64>) -> &mut Self {
        if let Some(value) = value {
            self.text(&format!("cn{n}Label"), label);
            self.number(&format!("cn{n}"), value);
        }
        self
    }

    pub fn finish(self) -> String {
        self.line
    }
}

/// Activity (the header Name) and severity for a detection class.
pub fn activity(class: &str) -> (&'static str, u8) {
    match class {
        "ioc" => ("Connection to threat-intel indicator", 8),
        "reverse-shell" => ("Reverse shell connection", 9),
        "network-tool" => ("Network tool connection", 5),
        _ => ("Outbound connection", 1),
    }
}

/// The Sentinel `Protocol` value: `TCP`, `UDP`, `ICMP` (CommonSecurityLog convention).
fn cef_protocol(protocol: &str) -> &str {
    match protocol {
        "Tcp" => "TCP",
        "Udp" => "UDP",
        "Icmp" => "ICMP",
        other => other,
    }
}

/// The `DeviceNetworkEvents` row as one CEF line (no newline).
///
/// | key | column | from |
/// |---|---|---|
/// | header class id / Name / Severity | DeviceEventClassID / Activity / LogSeverity | detection class |
/// | `rt` | ReceiptTime | event time, ms since the epoch |
/// | `dvchost` | DeviceName | DeviceName |
/// | `externalId` | ExternalID | ReportId |
/// | `deviceDirection` | CommunicationDirection | `1` (outbound) |
/// | `src` `spt` `dst` `dpt` `proto` | SourceIP ... Protocol | LocalIP, LocalPort, RemoteIP, RemotePort, Protocol |
/// | `act` | DeviceAction | Verdict (`allowed`/`blocked`) |
/// | `suser` `sproc` `spid` | SourceUserName, SourceProcessName, SourceProcessId | account, file name, pid |
/// | `cs1`..`cs6` | DeviceCustomString1..6 | Indicator, Malware, ThreatType, CommandLine, DetectionClass, MatchedRule |
/// | `cn1` | DeviceCustomNumber1 | Confidence |
pub fn device_network(row: &DeviceNetworkEvent) -> String {
    let extra = &row.AdditionalFields;
    let (name, severity) = activity(extra.DetectionClass);
    let mut line = CefLine::new(extra.DetectionClass, name, severity);
    line.number("rt", row.unix_ns.div_euclid(1_000_000))
        .text("dvchost", row.DeviceName)
        .number("externalId", row.ReportId)
        .number("deviceDirection", 1)
        .opt_text("src", row.LocalIP.as_deref());
    if let Some(port) = row.LocalPort {
        line.number("spt", port);
    }
    line.text("dst", &row.RemoteIP)
        .number("dpt", row.RemotePort)
        .text("proto", cef_protocol(row.Protocol))
        .text("act", extra.Verdict)
        .opt_text("suser", row.InitiatingProcessAccountName)
        .text("sproc", row.InitiatingProcessFileName)
        .number("spid", row.InitiatingProcessId);
    let classes = extra.DetectionClasses.join(",");
    let matched = matched_rule(row);
    let provenance = extra.Provenance.as_ref();
    line.custom_string(1, "Indicator", provenance.map(|p| p.Indicator.as_str()))
        .custom_string(2, "Malware", provenance.and_then(|p| p.Malware.as_deref()))
        .custom_string(
            3,
            "ThreatType",
            provenance.and_then(|p| p.ThreatType.as_deref()),
        )
        .custom_string(4, "CommandLine", row.InitiatingProcessCommandLine)
        .custom_string(
            5,
            "DetectionClass",
            Some(if classes.is_empty() {
                extra.DetectionClass
            } else {
                &classes
            }),
        )
        .custom_string(6, "MatchedRule", matched.as_deref())
        .custom_number(
            1,
            "Confidence",
            provenance.and_then(|p| p.Confidence).map(i64::from),
        );
    line.finish()
}

/// What made the record: the exclusion rule for an excluded event, else the indicator's
/// match kind and provenance (`endpoint iocs.txt:2`), else the reverse-shell evidence.
fn matched_rule(row: &DeviceNetworkEvent) -> Option<String> {
    let extra = &row.AdditionalFields;
    if let Some(rule) = extra.ExcludedBy {
        return Some(format!("excluded by {rule}"));
    }
    match (
        extra.MatchKind,
        extra
            .Provenance
            .as_ref()
            .map(|p| p.IndicatorSource.as_str()),
    ) {
        (Some(kind), Some(source)) => return Some(format!("{kind} {source}")),
        (Some(kind), None) => return Some(kind.to_string()),
        _ => {}
    }
    extra.ReverseShellEvidence.map(str::to_string)
}

/// Parses an extension back into (key, value) pairs, undoing the escaping. For tests and
/// for checking what a forwarder received.
pub fn parse_extension(extension: &str) -> Vec<(String, String)> {
    // A key starts after a space and runs to an unescaped '='; a value runs until the
    // next " key=" (a space, word characters, an unescaped '=').
    let bytes = extension.as_bytes();
    let mut starts = Vec::new(); // (key_start, eq_index)
    let mut i = 0;
    while i < bytes.len() {
        if i == 0 || bytes[i - 1] == b' ' {
            let mut j = i;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            if j > i && j < bytes.len() && bytes[j] == b'=' && !escaped(bytes, j) {
                starts.push((i, j));
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    let mut pairs = Vec::new();
    for (n, &(key_start, eq)) in starts.iter().enumerate() {
        let end = starts
            .get(n + 1)
            .map_or(bytes.len(), |&(next, _)| next.saturating_sub(1));
        let key = &extension[key_start..eq];
        let raw = &extension[eq + 1..end.max(eq + 1)];
        pairs.push((key.to_string(), unescape_extension(raw)));
    }
    pairs
}

fn escaped(bytes: &[u8], at: usize) -> bool {
    let mut backslashes = 0;
    let mut k = at;
    while k > 0 && bytes[k - 1] == b'\\' {
        backslashes += 1;
        k -= 1;
    }
    backslashes % 2 == 1
}

fn unescape_extension(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Splits a CEF line into its 7 header fields (unescaped) and the raw extension.
pub fn split_line(line: &str) -> Option<(Vec<String>, &str)> {
    let rest = line.strip_prefix("CEF:")?;
    let mut fields = Vec::with_capacity(7);
    let mut current = String::new();
    let mut chars = rest.char_indices();
    while let Some((index, ch)) = chars.next() {
        match ch {
            '\\' => match chars.next() {
                Some((_, next)) => current.push(next),
                None => current.push('\\'),
            },
            '|' => {
                fields.push(std::mem::take(&mut current));
                if fields.len() == 7 {
                    return Some((fields, &rest[index + 1..]));
                }
            }
            other => current.push(other),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_escaping() {
        let mut out = String::new();
        escape_header(r"a|b\c=d", &mut out);
        assert_eq!(out, r"a\|b\\c=d");
        out.clear();
        escape_header("x\ny\rz", &mut out);
        assert_eq!(out, "x y z");
    }

    #[test]
    fn extension_escaping() {
        let mut out = String::new();
        escape_extension("a=b\\c|d\ne\rf g", &mut out);
        assert_eq!(out, r"a\=b\\c|d\ne\rf g");
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        let value = "é".repeat(MAX_VALUE_BYTES); // 2 bytes each
        let mut out = String::new();
        escape_extension(&value, &mut out);
        assert!(out.ends_with("..."));
        assert_eq!(out.len(), MAX_VALUE_BYTES + 3);
    }

    #[test]
    fn hostile_values_round_trip_and_never_add_fields_or_lines() {
        let hostile = "evil\n<13>Jan  1 00:00:00 h CEF:0|x|y|1|c|n|10|act=forged dst=1.2.3.4 \
                       \\ back\\slash = eq | pipe \"quoted\" 'single'\r\n";
        let mut line = CefLine::new("ioc|x", "na|me\\", 8);
        line.text("act", "allowed")
            .custom_string(4, "CommandLine", Some(hostile))
            .text("dst", "127.0.0.2");
        let line = line.finish();
        assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
        let (header, extension) = split_line(&line).unwrap();
        assert_eq!(header[0], "0");
        assert_eq!(header[4], "ioc|x");
        assert_eq!(header[5], "na|me\\");
        assert_eq!(header[6], "8");
        let pairs = parse_extension(extension);
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["act", "cs4Label", "cs4", "dst"]);
        assert_eq!(pairs[0].1, "allowed");
        assert_eq!(pairs[2].1, hostile);
        assert_eq!(pairs[3].1, "127.0.0.2");
    }

    #[test]
    fn absent_custom_values_leave_no_label() {
        let mut line = CefLine::new("c", "n", 3);
        line.custom_string(2, "Malware", None)
            .custom_number(1, "Confidence", None)
            .custom_number(2, "Other", Some(-5));
        assert_eq!(
            line.finish(),
            format!("CEF:0|iocmon|iocmon|{VERSION}|c|n|3|cn2Label=Other cn2=-5")
        );
    }

    #[test]
    fn severity_is_clamped() {
        assert!(CefLine::new("c", "n", 42).finish().ends_with("|10|"));
    }
}
