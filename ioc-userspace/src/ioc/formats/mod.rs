//! Readers for indicator feeds and files: ThreatFox (JSON export, API answers, CSV
//! export), advisory texts (markdown IOC tables and KQL `dynamic([...])` lists), plain
//! lists, hosts files, STIX 2.1 bundles and MISP attributes. Pure parsing: no I/O, no
//! name resolution, no network; values are data only.
//!
//! Every reader takes the whole text and the source name (file or URL) and returns either
//! every indicator or every reject ([`Reject`]: source, line or JSON path, value, reason),
//! so a refused file can be fixed in one pass. Input is hostile: no panics, and work is
//! linear in the input (JSON nesting is bounded by serde_json's recursion limit, rejects by
//! [`model::MAX_REJECTS`]).
//!
//! Dependencies added for this module:
//! - `csv` (BurntSushi, the standard Rust CSV parser): ThreatFox CSV fields are quoted,
//!   may hold commas (`"botnet,censys"`) and doubled quotes; hand-splitting gets that wrong.
//!   Only the `", "` separator needs help (Python's `skipinitialspace`), done in one pass
//!   before the real parse.
//! - `proptest` (dev only): the no-panic fuzz test of every reader.
//!
//! Timestamps are parsed by hand into `time::OffsetDateTime` (UTC), so the workspace `time`
//! dependency needs no extra feature.

mod advisory;
mod json;
mod lists;
mod misp;
pub mod model;
pub mod refang;
mod stix;
mod threatfox;

#[cfg(test)]
mod fuzz;

use std::{fmt, str::FromStr};

use serde_json::Value;

pub use advisory::read_advisory;
pub use lists::{read_hosts, read_plain};
pub use misp::read_misp;
pub use model::{
    normalize_domain, parse_any_value, parse_timestamp, parse_typed_value, HashKind, IndicatorMeta,
    IocValue, Location, Malware, ParsedIndicator, Reject, StableId, UrlValue,
};
pub use refang::refang;
pub use stix::read_stix;
pub use threatfox::{read_threatfox_api, read_threatfox_csv, read_threatfox_json};

/// An input format; [`Format::Auto`] detects it from the content.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Format {
    #[default]
    Auto,
    ThreatFoxJson,
    ThreatFoxApi,
    ThreatFoxCsv,
    Advisory,
    Plain,
    Hosts,
    Stix,
    Misp,
}

impl Format {
    /// Every format with its canonical name.
    pub const ALL: [(Format, &'static str); 9] = [
        (Format::Auto, "auto"),
        (Format::ThreatFoxJson, "threatfox-json"),
        (Format::ThreatFoxApi, "threatfox-api"),
        (Format::ThreatFoxCsv, "threatfox-csv"),
        (Format::Advisory, "advisory"),
        (Format::Plain, "plain"),
        (Format::Hosts, "hosts"),
        (Format::Stix, "stix"),
        (Format::Misp, "misp"),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(format, _)| *format == self)
            .map_or("auto", |(_, name)| name)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for an unknown format name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownFormat(pub String);

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Format::ALL.iter().map(|(_, name)| *name).collect();
        write!(
            f,
            "unknown indicator format {} (expected one of: {})",
            crate::text::quote_for_log(&self.0, 40),
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for Format {
    type Err = UnknownFormat;

    /// Canonical names, case-insensitive, `_` for `-` accepted, plus a few aliases
    /// (`threatfox`, `csv`, `api`, `markdown`, `txt`, `hostfile`, `stix2`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let name = text.trim().to_ascii_lowercase().replace('_', "-");
        Ok(match name.as_str() {
            "auto" => Self::Auto,
            "threatfox-json" | "threatfox" | "json" => Self::ThreatFoxJson,
            "threatfox-api" | "api" => Self::ThreatFoxApi,
            "threatfox-csv" | "csv" => Self::ThreatFoxCsv,
            "advisory" | "markdown" | "md" => Self::Advisory,
            "plain" | "txt" | "text" => Self::Plain,
            "hosts" | "hostfile" => Self::Hosts,
            "stix" | "stix2" | "stix2.1" => Self::Stix,
            "misp" => Self::Misp,
            _ => return Err(UnknownFormat(text.to_string())),
        })
    }
}

/// Lines looked at when guessing a text format (the rest of a big file is not needed).
const DETECT_LINES: usize = 200;

/// Guesses the format of `text` from its content.
pub fn detect_format(text: &str) -> Format {
    let text = text.trim_start_matches('\u{feff}');
    if looks_like_json(text) {
        return match serde_json::from_str::<Value>(text) {
            Ok(value) => detect_json(&value),
            // Broken JSON: the ThreatFox export reader reports the syntax error.
            Err(_) => Format::ThreatFoxJson,
        };
    }
    detect_text(text)
}

fn looks_like_json(text: &str) -> bool {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return true;
    }
    // `[` also starts `[2001:db8::1]:443` in a plain list.
    trimmed
        .strip_prefix('[')
        .map(str::trim_start)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['{', '"', ']']))
}

fn detect_json(value: &Value) -> Format {
    match value {
        Value::Object(top) => {
            if top.contains_key("query_status") {
                Format::ThreatFoxApi
            } else if matches!(
                top.get("type").and_then(Value::as_str),
                Some("bundle" | "indicator")
            ) {
                Format::Stix
            } else if top.contains_key("Event")
                || top.contains_key("Attribute")
                || top.contains_key("response")
            {
                Format::Misp
            } else {
                Format::ThreatFoxJson
            }
        }
        // ThreatFox exports are objects; lists are MISP attributes or events.
        Value::Array(_) => Format::Misp,
        _ => Format::ThreatFoxJson,
    }
}

fn detect_text(text: &str) -> Format {
    let mut hosts_lines = 0;
    let mut other_lines = 0;
    for line in text.lines().take(DETECT_LINES) {
        let trimmed = line.trim();
        if let Some(comment) = trimmed.strip_prefix('#') {
            if comment.contains("\"ioc_value\"") {
                return Format::ThreatFoxCsv;
            }
            continue;
        }
        if trimmed.starts_with('"') && trimmed.contains("\", \"") {
            return Format::ThreatFoxCsv;
        }
        if trimmed.starts_with('|') {
            let cells: Vec<String> = trimmed
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_ascii_lowercase())
                .collect();
            if cells.iter().any(|c| c == "type") && cells.iter().any(|c| c == "value") {
                return Format::Advisory;
            }
        }
        if trimmed.contains("dynamic([") || trimmed.contains("Malware Family:") {
            return Format::Advisory;
        }
        if trimmed.is_empty() {
            continue;
        }
        if lists::is_hosts_line(trimmed.split(" #").next().unwrap_or("")) {
            hosts_lines += 1;
        } else {
            other_lines += 1;
        }
    }
    if hosts_lines > 0 && hosts_lines >= other_lines {
        Format::Hosts
    } else {
        Format::Plain
    }
}

/// Reads `text` (from `source`, a file name or URL) in `format`, detecting it for
/// [`Format::Auto`]. Returns every indicator, or every reject when any entry is bad.
pub fn read_indicators(
    text: &str,
    source: &str,
    format: Format,
) -> Result<Vec<ParsedIndicator>, Vec<Reject>> {
    let text = text.trim_start_matches('\u{feff}');
    let format = match format {
        Format::Auto if looks_like_json(text) => {
            // A clean ThreatFox export is read without its whole document tree.
            if threatfox::looks_like_export(text) {
                if let Some(indicators) = threatfox::stream_export(text, source) {
                    return Ok(indicators);
                }
            }
            // Parse once; detect from and read the same value.
            let value = json::parse(text, source).map_err(|r| vec![r])?;
            return read_json_value(&value, source, detect_json(&value));
        }
        Format::Auto => detect_text(text),
        forced => forced,
    };
    match format {
        Format::ThreatFoxJson => read_threatfox_json(text, source),
        Format::ThreatFoxApi => read_threatfox_api(text, source),
        Format::Stix => read_stix(text, source),
        Format::Misp => read_misp(text, source),
        Format::ThreatFoxCsv => read_threatfox_csv(text, source),
        Format::Advisory => read_advisory(text, source),
        Format::Hosts => read_hosts(text, source),
        Format::Plain | Format::Auto => read_plain(text, source),
    }
}

fn read_json_value(
    value: &Value,
    source: &str,
    format: Format,
) -> Result<Vec<ParsedIndicator>, Vec<Reject>> {
    match format {
        Format::ThreatFoxApi => threatfox::threatfox_api_value(value, source),
        Format::Stix => stix::stix_value(value, source),
        Format::Misp => misp::misp_value(value, source),
        _ => threatfox::threatfox_json_value(value, source),
    }
}

/// The rejects of a failed read, as their messages (test helper).
#[cfg(test)]
pub(crate) fn reject_texts<T: std::fmt::Debug>(result: Result<T, Vec<Reject>>) -> Vec<String> {
    match result {
        Ok(value) => panic!("expected rejects, got {value:?}"),
        Err(rejects) => rejects.iter().map(ToString::to_string).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON_2026: &str =
        include_str!("testdata/threatfox_export_json_recent_20260724_subset.json");
    const JSON_2025: &str =
        include_str!("testdata/threatfox_export_json_recent_20250519_subset.json");
    const API_HIT: &str = include_str!("testdata/threatfox_api_search_ioc_ipport_hit.json");
    const MIRAI: &str = include_str!("testdata/seed-threatfox-mirai.txt");

    #[test]
    fn format_names_round_trip() {
        for (format, name) in Format::ALL {
            assert_eq!(name.parse::<Format>().unwrap(), format);
            assert_eq!(format.to_string(), name);
        }
        assert_eq!(
            "THREATFOX_CSV".parse::<Format>().unwrap(),
            Format::ThreatFoxCsv
        );
        assert_eq!("stix2".parse::<Format>().unwrap(), Format::Stix);
        assert_eq!(
            "yaml".parse::<Format>().unwrap_err().to_string(),
            "unknown indicator format \"yaml\" (expected one of: auto, threatfox-json, \
             threatfox-api, threatfox-csv, advisory, plain, hosts, stix, misp)"
        );
    }

    #[test]
    fn detects_every_format() {
        let cases = [
            (JSON_2026, Format::ThreatFoxJson),
            (JSON_2025, Format::ThreatFoxJson),
            (API_HIT, Format::ThreatFoxApi),
            (
                r#"{"query_status":"no_result","data":"x"}"#,
                Format::ThreatFoxApi,
            ),
            (MIRAI, Format::Advisory),
            (
                "# \"first_seen_utc\",\"ioc_id\",\"ioc_value\"\n",
                Format::ThreatFoxCsv,
            ),
            (
                "\"2026-07-21 05:35:20\", \"1854731\", \"1.2.3.4:80\"\n",
                Format::ThreatFoxCsv,
            ),
            (r#"{"type": "bundle", "objects": []}"#, Format::Stix),
            (r#"{"Event": {"Attribute": []}}"#, Format::Misp),
            (r#"{"Attribute": []}"#, Format::Misp),
            (r#"[{"type": "ip-dst", "value": "1.2.3.4"}]"#, Format::Misp),
            (
                "# hosts\n127.0.0.1 localhost\n0.0.0.0 evil.com\n",
                Format::Hosts,
            ),
            ("1.2.3.4\nevil[.]com\n", Format::Plain),
            ("[2001:db8::1]:443\n", Format::Plain),
            ("", Format::Plain),
        ];
        for (text, format) in cases {
            assert_eq!(detect_format(text), format, "{text}");
        }
    }

    #[test]
    fn read_indicators_auto_and_forced() {
        assert_eq!(
            read_indicators(JSON_2026, "a", Format::Auto).unwrap().len(),
            21
        );
        assert_eq!(
            read_indicators(API_HIT, "a", Format::Auto).unwrap().len(),
            1
        );
        assert_eq!(read_indicators(MIRAI, "a", Format::Auto).unwrap().len(), 10);
        assert_eq!(
            read_indicators("\u{feff}1.2.3.4\n", "a", Format::Auto)
                .unwrap()
                .len(),
            1
        );
        // Forcing a format reads the text as that format, whatever it looks like.
        let forced = read_indicators("0.0.0.0 evil.com\n", "l.txt", Format::Plain).unwrap_err();
        assert_eq!(forced[0].location, Location::Line(1));
        let json_as_plain = read_indicators(API_HIT, "a", Format::ThreatFoxJson).unwrap_err();
        assert_eq!(json_as_plain[0].reason, "IOC id is not a number");
        let broken = read_indicators("{\"1\": [", "b.json", Format::Auto).unwrap_err();
        assert_eq!(
            broken[0].to_string(),
            "b.json:1: invalid indicator \"{\\\"1\\\": [\": invalid JSON: EOF while parsing a list at line 1 column 7"
        );
    }
}
