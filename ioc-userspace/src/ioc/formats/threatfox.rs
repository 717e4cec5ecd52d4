//! ThreatFox (abuse.ch): the JSON export (`/export/json/recent/`), API answers
//! (`get_iocs`, `search_ioc`) and the CSV export. Schema notes: reference §4.

use serde_json::{Map, Value};

use super::{
    json::{self, Fields},
    model::{
        parse_timestamp, parse_typed_value, shared_malware, shared_tags, shared_text,
        IndicatorMeta, Location, Malware, ParsedIndicator, Reject, Rejects, StableId,
    },
};

/// Field names, which differ between the export, the API and the CSV.
struct Names {
    value: &'static str,
    first_seen: &'static str,
    last_seen: &'static str,
    malware: &'static str,
    /// Field holding the id (the export keys entries by id instead).
    id: Option<&'static str>,
}

const EXPORT: Names = Names {
    value: "ioc_value",
    first_seen: "first_seen_utc",
    last_seen: "last_seen_utc",
    malware: "malware",
    id: None,
};

const API: Names = Names {
    value: "ioc",
    first_seen: "first_seen",
    last_seen: "last_seen",
    malware: "malware",
    id: Some("id"),
};

const CSV: Names = Names {
    value: "ioc_value",
    first_seen: "first_seen_utc",
    last_seen: "last_seen_utc",
    malware: "fk_malware",
    id: Some("ioc_id"),
};

/// Reads a JSON export: `{"<id>": [ {entry}, ... ], ...}`.
pub fn read_threatfox_json(text: &str, source: &str) -> Result<Vec<ParsedIndicator>, Vec<Reject>> {
    if let Some(indicators) = stream_export(text, source) {
        return Ok(indicators);
    }
    let value = json::parse(text, source).map_err(|r| vec![r])?;
    threatfox_json_value(&value, source)
}

/// Whether `text` starts like a JSON export: `{` then a numeric key holding an array.
pub(super) fn looks_like_export(text: &str) -> bool {
    let rest = text.trim_start();
    let Some(rest) = rest.strip_prefix('{').map(str::trim_start) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix('"') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0
        && rest[digits..]
            .strip_prefix('"')
            .map(str::trim_start)
            .and_then(|r| r.strip_prefix(':'))
            .is_some_and(|r| r.trim_start().starts_with('['))
}

/// Reads a JSON export one id at a time, never holding the whole document tree (several
/// times the file's size: a 58 MiB export peaked at 392 MB that way, 115 MB streamed).
/// Only for a clean export: `None` at the first syntax error, non-numeric or repeated
/// key, or reject; the caller then reads the file the whole-document way, which words
/// every error exactly as before. Indicators come out in that reading's order (ids
/// sorted as strings).
pub(super) fn stream_export(text: &str, source: &str) -> Option<Vec<ParsedIndicator>> {
    use serde::de::{Deserializer as _, Error as _, MapAccess, Visitor};

    /// Each indicator with its id's place in string order and the entry it came from.
    type Keyed = Vec<(u128, u32, ParsedIndicator)>;

    struct Export<'a> {
        source: &'a str,
    }
    impl<'de> Visitor<'de> for Export<'_> {
        type Value = Keyed;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a ThreatFox JSON export")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keyed, A::Error> {
            // One flat vector: a small vector per id would leave the heap full of holes.
            let mut keyed = Keyed::new();
            let mut out = Vec::new();
            let mut rejects = Rejects::default();
            let mut entry: u32 = 0;
            while let Some((key, list)) = map.next_entry::<String, Value>()? {
                export_id(&key, &list, self.source, &mut out, &mut rejects);
                let Some(order) = string_order(&key).filter(|_| rejects.is_empty()) else {
                    return Err(A::Error::custom("not a clean export"));
                };
                keyed.extend(out.drain(..).map(|indicator| (order, entry, indicator)));
                entry = entry.wrapping_add(1);
            }
            Ok(keyed)
        }
    }

    let mut deserializer = serde_json::Deserializer::from_str(text);
    let mut keyed = deserializer.deserialize_map(Export { source }).ok()?;
    deserializer.end().ok()?;
    keyed.sort_by_key(|(order, _, _)| *order);
    // A repeated id: the whole-document reading keeps only its last entry.
    if keyed
        .windows(2)
        .any(|pair| pair[0].0 == pair[1].0 && pair[0].1 != pair[1].1)
    {
        return None;
    }
    Some(
        keyed
            .into_iter()
            .map(|(_, _, indicator)| indicator)
            .collect(),
    )
}

/// A number that sorts like the digit string `key` sorts as a string (up to 20 digits:
/// each digit as 1-10 in base 11, shorter keys padded with 0). `None` for anything else.
fn string_order(key: &str) -> Option<u128> {
    if key.is_empty() || key.len() > 20 || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut order: u128 = 0;
    for i in 0..20 {
        let digit = key
            .as_bytes()
            .get(i)
            .map_or(0, |b| u128::from(b - b'0') + 1);
        order = order * 11 + digit;
    }
    Some(order)
}

pub(super) fn threatfox_json_value(
    value: &Value,
    source: &str,
) -> Result<Vec<ParsedIndicator>, Vec<Reject>> {
    let mut rejects = Rejects::default();
    let mut out = Vec::new();
    let Value::Object(entries) = value else {
        let reason = "not a ThreatFox JSON export (expected an object keyed by IOC id)";
        return Err(vec![Reject::new(
            source,
            Location::Json("$".into()),
            &json::shown(value),
            reason,
        )]);
    };
    for (key, list) in entries {
        export_id(key, list, source, &mut out, &mut rejects);
    }
    rejects.finish(source, out)
}

/// The entries under one id of a JSON export.
fn export_id(
    key: &str,
    list: &Value,
    source: &str,
    out: &mut Vec<ParsedIndicator>,
    rejects: &mut Rejects,
) {
    let path = json::quoted_key_path("$", key);
    let id = match key.parse::<u64>() {
        Ok(id) if key.bytes().all(|b| b.is_ascii_digit()) => id,
        _ => {
            rejects.push(Reject::new(
                source,
                Location::Json(path),
                key,
                "IOC id is not a number",
            ));
            return;
        }
    };
    let Value::Array(items) = list else {
        rejects.push(json::wrong_type(source, path, list, "an array of entries"));
        return;
    };
    for (index, item) in items.iter().enumerate() {
        let item_path = json::index_path(&path, index);
        if let Some(indicator) = json_entry(item, &item_path, source, &EXPORT, Some(id), rejects) {
            out.push(indicator);
        }
    }
}

/// Reads an API answer: `{"query_status":"ok","data":[...]}`; `no_result` is an empty set.
pub fn read_threatfox_api(text: &str, source: &str) -> Result<Vec<ParsedIndicator>, Vec<Reject>> {
    let value = json::parse(text, source).map_err(|r| vec![r])?;
    threatfox_api_value(&value, source)
}

pub(super) fn threatfox_api_value(
    value: &Value,
    source: &str,
) -> Result<Vec<ParsedIndicator>, Vec<Reject>> {
    let fail = |path: &str, shown: &str, reason: &str| {
        Err(vec![Reject::new(
            source,
            Location::Json(path.into()),
            shown,
            reason,
        )])
    };
    let Value::Object(top) = value else {
        return fail(
            "$",
            &json::shown(value),
            "not a ThreatFox API answer (expected an object)",
        );
    };
    let status = match top.get("query_status") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return fail("$.query_status", &json::shown(other), "expected a string"),
        None => return fail("$", "{...}", "not a ThreatFox API answer (no query_status)"),
    };
    let data = top.get("data").unwrap_or(&Value::Null);
    match status {
        "ok" => {}
        "no_result" => return Ok(Vec::new()),
        other => {
            let detail = match data {
                Value::String(s) => format!(": {}", crate::text::quote_for_log(s, 120)),
                _ => String::new(),
            };
            return fail(
                "$.query_status",
                other,
                &format!("API query failed{detail}"),
            );
        }
    }
    let Value::Array(items) = data else {
        let reason = format!("expected an array of IOCs, found {}", json::type_of(data));
        return fail("$.data", &json::shown(data), &reason);
    };
    let mut rejects = Rejects::default();
    let mut out = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let path = json::index_path("$.data", index);
        if let Some(indicator) = json_entry(item, &path, source, &API, None, &mut rejects) {
            out.push(indicator);
        }
    }
    rejects.finish(source, out)
}

fn json_entry(
    item: &Value,
    path: &str,
    source: &str,
    names: &Names,
    id: Option<u64>,
    rejects: &mut Rejects,
) -> Option<ParsedIndicator> {
    let Value::Object(obj) = item else {
        rejects.push(json::wrong_type(source, path, item, "an object"));
        return None;
    };
    let locate = |key: &str| Location::Json(json::key_path(path, key));
    let fields = Fields {
        obj,
        source,
        locate: &locate,
        name_in_reason: false,
    };
    entry(&fields, names, id, Location::Json(path.into()), rejects)
}

/// One entry, whatever its container. Every bad field is recorded; `None` if any was bad.
fn entry(
    fields: &Fields<'_>,
    names: &Names,
    id: Option<u64>,
    location: Location,
    rejects: &mut Rejects,
) -> Option<ParsedIndicator> {
    let mut bad = false;
    let value_text = ok(&mut bad, fields.req_str(names.value, rejects));
    let ioc_type = ok(&mut bad, fields.req_str("ioc_type", rejects));
    let value = match (value_text, ioc_type) {
        (Some(text), Some(kind)) => match parse_typed_value(kind, text) {
            Ok(value) => Some(value),
            Err(reason) => {
                fields.reject(rejects, names.value, text, &reason);
                None
            }
        },
        _ => None,
    };
    let id = match (id, names.id) {
        (Some(id), _) => Some(id),
        (None, Some(key)) => ok(&mut bad, fields.opt_uint(key, u64::MAX, rejects)).flatten(),
        (None, None) => None,
    };
    let threat_type = ok(&mut bad, fields.opt_text("threat_type", rejects)).flatten();
    let malware_id = ok(&mut bad, fields.opt_text(names.malware, rejects)).flatten();
    let printable = ok(&mut bad, fields.opt_text("malware_printable", rejects)).flatten();
    let aliases = ok(&mut bad, fields.tags("malware_alias", rejects)).unwrap_or_default();
    let first_seen = ok(&mut bad, time_field(fields, names.first_seen, rejects)).flatten();
    let last_seen = ok(&mut bad, time_field(fields, names.last_seen, rejects)).flatten();
    let confidence = ok(&mut bad, fields.opt_uint("confidence_level", 100, rejects)).flatten();
    let compromised = ok(&mut bad, fields.opt_bool("is_compromised", rejects)).flatten();
    let reference = ok(&mut bad, fields.opt_text("reference", rejects)).flatten();
    let tags = ok(&mut bad, fields.tags("tags", rejects)).unwrap_or_default();
    let _anonymous = ok(&mut bad, fields.opt_bool("anonymous", rejects));
    let reporter = ok(&mut bad, fields.opt_text("reporter", rejects)).flatten();
    let value = value?;
    if bad {
        return None;
    }
    let mut meta = IndicatorMeta::new(&value, fields.source, location);
    if let Some(id) = id {
        meta.id = StableId::ThreatFox(id);
    }
    meta.threat_type = threat_type.map(shared_text);
    if malware_id.is_some() || printable.is_some() || !aliases.is_empty() {
        meta.malware = Some(shared_malware(Malware {
            id: malware_id,
            printable,
            aliases,
        }));
    }
    meta.confidence = confidence.map(|c| c as u8);
    meta.first_seen = first_seen;
    meta.last_seen = last_seen;
    meta.reference = reference;
    meta.tags = shared_tags(&tags);
    meta.reporter = reporter.map(shared_text);
    meta.compromised = compromised;
    Some(ParsedIndicator { value, meta })
}

/// The value of a field read with a recorded reject on failure; notes the failure in `bad`.
fn ok<T>(bad: &mut bool, result: Result<T, ()>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(()) => {
            *bad = true;
            None
        }
    }
}

fn time_field(
    fields: &Fields<'_>,
    key: &str,
    rejects: &mut Rejects,
) -> Result<Option<time::OffsetDateTime>, ()> {
    let Some(text) = fields.opt_text(key, rejects)? else {
        return Ok(None);
    };
    match parse_timestamp(&text) {
        Ok(when) => Ok(Some(when)),
        Err(reason) => {
            fields.reject(rejects, key, &text, &reason);
            Err(())
        }
    }
}

/// Reads a CSV export. The header is the `#` comment line that lists the quoted column
/// names (or a plain header row); columns are found by name, so the older 14-column files
/// (no `is_compromised`) read the same. Fields are quoted and separated by `", "`.
pub fn read_threatfox_csv(text: &str, source: &str) -> Result<Vec<ParsedIndicator>, Vec<Reject>> {
    let (cleaned, header_comment) = skip_initial_space(text);
    // Byte offsets of the line ends in `cleaned` (one per original line) -> line numbers.
    let line_ends: Vec<usize> = cleaned
        .bytes()
        .enumerate()
        .filter(|&(_, b)| b == b'\n')
        .map(|(i, _)| i)
        .collect();
    let line_of = |byte: u64| {
        // A record's position is where reading started: step over the blank lines before it.
        let mut at = usize::try_from(byte).unwrap_or(usize::MAX);
        while matches!(cleaned.as_bytes().get(at), Some(b'\n' | b'\r')) {
            at += 1;
        }
        line_ends.partition_point(|&end| end < at) + 1
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(cleaned.as_bytes());
    let mut header: Option<Vec<String>> = header_comment.as_deref().and_then(parse_header);
    let mut rejects = Rejects::default();
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = line_of(reader.position().byte());
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(error) => {
                let line = error.position().map_or(line, |p| line_of(p.byte()));
                let reason = format!("unreadable CSV: {error}");
                rejects.push(Reject::new(source, Location::Line(line), "", reason));
                break;
            }
        }
        let line = record.position().map_or(line, |p| line_of(p.byte()));
        let Some(names) = header.as_ref() else {
            if record.iter().any(|f| f == "ioc_value") {
                header = Some(record.iter().map(|f| f.trim().to_string()).collect());
                continue;
            }
            let reason = "no CSV header (expected a `# \"first_seen_utc\",\"ioc_id\",\"ioc_value\",...` comment)";
            let shown = record.iter().collect::<Vec<_>>().join(",");
            return Err(vec![Reject::new(
                source,
                Location::Line(line),
                &shown,
                reason,
            )]);
        };
        if record.len() != names.len() {
            let shown = record.iter().collect::<Vec<_>>().join("\", \"");
            let reason = format!("expected {} fields, found {}", names.len(), record.len());
            rejects.push(Reject::new(
                source,
                Location::Line(line),
                &format!("\"{shown}\""),
                reason,
            ));
            continue;
        }
        let mut obj = Map::new();
        for (name, field) in names.iter().zip(record.iter()) {
            let field = field.trim();
            let value = if field.is_empty() || field == "None" {
                Value::Null
            } else {
                Value::String(field.to_string())
            };
            obj.insert(name.clone(), value);
        }
        let locate = |_: &str| Location::Line(line);
        let fields = Fields {
            obj: &obj,
            source,
            locate: &locate,
            name_in_reason: true,
        };
        if let Some(indicator) = entry(&fields, &CSV, None, Location::Line(line), &mut rejects) {
            out.push(indicator);
        }
    }
    rejects.finish(source, out)
}

/// Column names from the header comment's text (after `#`).
fn parse_header(line: &str) -> Option<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(line.as_bytes());
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => Some(record.iter().map(|f| f.trim().to_string()).collect()),
        _ => None,
    }
}

/// Emulates Python's `skipinitialspace`: drops blanks after a separator outside quotes, so
/// `"a", "b"` reads as two quoted fields. `#` comment lines (outside quoted fields) become
/// empty lines, which keeps line numbers; the first comment that lists `ioc_value` is
/// returned as the header. One pass, linear.
fn skip_initial_space(text: &str) -> (String, Option<String>) {
    let mut out = String::with_capacity(text.len());
    let mut header = None;
    let mut in_quotes = false;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        if !in_quotes {
            if let Some(comment) = body.trim_start().strip_prefix('#') {
                if header.is_none() && comment.contains("\"ioc_value\"") {
                    header = Some(skip_initial_space(comment.trim()).0);
                }
                out.push('\n');
                continue;
            }
        }
        let mut field_start = !in_quotes;
        for ch in body.chars() {
            if in_quotes {
                if ch == '"' {
                    in_quotes = false;
                }
                out.push(ch);
                continue;
            }
            if field_start && (ch == ' ' || ch == '\t') {
                continue;
            }
            match ch {
                '"' if field_start => in_quotes = true,
                ',' => {
                    field_start = true;
                    out.push(ch);
                    continue;
                }
                _ => {}
            }
            field_start = false;
            out.push(ch);
        }
        if line.ends_with('\n') {
            out.push('\n');
        }
    }
    (out, header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ioc::formats::model::{HashKind, IocValue};
    use crate::ioc::formats::reject_texts;
    use crate::ioc::IndicatorValue;
    use time::macros::datetime;

    const JSON_2026: &str =
        include_str!("testdata/threatfox_export_json_recent_20260724_subset.json");
    const JSON_2025: &str =
        include_str!("testdata/threatfox_export_json_recent_20250519_subset.json");
    const API_HIT: &str = include_str!("testdata/threatfox_api_search_ioc_ipport_hit.json");

    #[test]
    fn streamed_export_matches_the_whole_document_reading() {
        for text in [JSON_2026, JSON_2025] {
            assert!(looks_like_export(text));
            let streamed = stream_export(text, "feed.json").expect("a clean export streams");
            let value = json::parse(text, "feed.json").unwrap();
            let whole = threatfox_json_value(&value, "feed.json").unwrap();
            assert!(!streamed.is_empty());
            assert_eq!(streamed, whole);
        }
        assert!(!looks_like_export(r#"{"query_status": "ok", "data": []}"#));
        assert!(!looks_like_export("[1, 2]"));
        // A bad entry: streaming gives up, and the whole-document reading names it.
        let bad = r#"{"7": [{"ioc_value": "127.0.0.1:99999", "ioc_type": "ip:port"}]}"#;
        assert!(looks_like_export(bad));
        assert!(stream_export(bad, "f.json").is_none());
        let texts = reject_texts(read_threatfox_json(bad, "f.json"));
        assert!(texts[0].starts_with("f.json: $[\"7\"][0]"), "{texts:?}");
        // Broken JSON likewise.
        assert!(stream_export("{\"7\": [", "f.json").is_none());
        // Ids sort as strings, as the whole-document reading has them.
        let mut keys = ["9", "10", "1", "007", "100", "19"];
        let mut by_order = keys;
        keys.sort();
        by_order.sort_by_key(|k| string_order(k));
        assert_eq!(keys, by_order);
        assert_eq!(string_order("12a"), None);
        // A repeated id goes the whole-document way (which keeps its last entry).
        let entry = r#"[{"ioc_value": "127.0.0.2:4444", "ioc_type": "ip:port"}]"#;
        let repeated = format!(r#"{{"7": {entry}, "7": {entry}}}"#);
        assert!(stream_export(&repeated, "f.json").is_none());
        assert_eq!(read_threatfox_json(&repeated, "f.json").unwrap().len(), 1);
    }

    fn find(all: &[ParsedIndicator], id: u64) -> &ParsedIndicator {
        all.iter()
            .find(|i| i.meta.id == StableId::ThreatFox(id))
            .unwrap_or_else(|| panic!("id {id} missing"))
    }

    #[test]
    fn export_2026_sample() {
        let all = read_threatfox_json(JSON_2026, "recent.json").unwrap();
        assert_eq!(all.len(), 21);
        let vidar = find(&all, 1856791);
        assert_eq!(vidar.value.type_name(), "url");
        assert_eq!(vidar.value.to_string(), "https://sup.merahsm188.top/");
        assert_eq!(vidar.meta.threat_type.as_deref(), Some("botnet_cc"));
        let malware = vidar.meta.malware.as_ref().unwrap();
        assert_eq!(malware.id.as_deref(), Some("win.vidar"));
        assert_eq!(malware.printable.as_deref(), Some("Vidar"));
        assert_eq!(vidar.meta.confidence, Some(100));
        assert_eq!(
            vidar.meta.first_seen,
            Some(datetime!(2026-07-24 13:50:06 UTC))
        );
        assert_eq!(vidar.meta.last_seen, None);
        assert_eq!(vidar.meta.compromised, Some(true));
        assert_eq!(*vidar.meta.tags, ["vidar"]);
        assert_eq!(vidar.meta.reporter.as_deref(), Some("crep1x"));
        assert_eq!(&*vidar.meta.source, "recent.json");
        assert_eq!(
            vidar.meta.location,
            Location::Json("$[\"1856791\"][0]".into())
        );
        let smart = find(&all, 1856740);
        assert_eq!(
            smart.meta.last_seen,
            Some(datetime!(2026-07-24 12:08:02 UTC))
        );
        assert_eq!(
            smart.meta.malware.as_ref().unwrap().aliases,
            ["HANEYMANEY", "ZPHP"]
        );
        let endpoint = find(&all, 1856781);
        assert_eq!(
            endpoint.value,
            IocValue::Net(IndicatorValue::Endpoint(
                "221.132.16.23:8000".parse().unwrap()
            ))
        );
        // upper-case domains are lower-cased
        assert!(all
            .iter()
            .any(|i| i.value == IocValue::Domain("microsoftsyst3m.com".into())));
        let mut types: Vec<_> = all.iter().map(|i| i.value.type_name()).collect();
        types.sort();
        types.dedup();
        assert_eq!(
            types,
            [
                "domain",
                "ip:port",
                "md5_hash",
                "sha1_hash",
                "sha256_hash",
                "url"
            ]
        );
        let mirai = all
            .iter()
            .filter(|i| i.meta.malware.as_ref().and_then(|m| m.id.as_deref()) == Some("elf.mirai"))
            .count();
        assert!(mirai >= 3, "{mirai}");
    }

    #[test]
    fn export_2025_sample() {
        let all = read_threatfox_json(JSON_2025, "old.json").unwrap();
        assert_eq!(all.len(), 13);
        let first = find(&all, 1525892);
        assert_eq!(first.meta.compromised, None);
        assert_eq!(
            first.meta.reference.as_deref(),
            Some("https://app.any.run/tasks/db489f70-98a7-4c74-9902-2efe1dac0fa2/")
        );
        assert!(all.iter().any(|i| i.value.type_name() == "md5_hash"));
        // `reference: ""` is no reference
        assert!(all.iter().any(|i| i.meta.reference.is_none()));
    }

    #[test]
    fn api_hit_sample() {
        let all = read_threatfox_api(API_HIT, "api").unwrap();
        assert_eq!(all.len(), 1);
        let hit = &all[0];
        assert_eq!(hit.meta.id, StableId::ThreatFox(1892954));
        assert_eq!(hit.value.to_string(), "45.192.105.203:8000");
        assert_eq!(
            hit.meta.first_seen,
            Some(datetime!(2026-09-02 06:05:06 UTC))
        );
        assert_eq!(*hit.meta.tags, ["dcrat"]);
        assert_eq!(
            hit.meta.malware.as_ref().unwrap().aliases,
            ["DarkCrystal RAT"]
        );
        assert_eq!(hit.meta.location, Location::Json("$.data[0]".into()));
    }

    #[test]
    fn api_no_result_is_empty_and_failures_are_rejects() {
        let miss = r#"{"query_status":"no_result","data":"Your search did not yield any results"}"#;
        assert_eq!(read_threatfox_api(miss, "api").unwrap(), Vec::new());
        let bad = r#"{"query_status":"unknown_auth_key","data":"x"}"#;
        assert_eq!(
            read_threatfox_api(bad, "api").unwrap_err()[0].to_string(),
            "api: $.query_status: invalid indicator \"unknown_auth_key\": API query failed: \"x\""
        );
        let not_list = r#"{"query_status":"ok","data":{}}"#;
        assert_eq!(
            read_threatfox_api(not_list, "api").unwrap_err()[0].to_string(),
            "api: $.data: invalid indicator \"{...}\": expected an array of IOCs, found an object"
        );
    }

    #[test]
    fn export_errors_name_path_and_value() {
        let text = r#"{
  "1856791": [{"ioc_value": "300.1.1.1:80", "ioc_type": "ip:port", "confidence_level": 101,
               "first_seen_utc": "2026-02-30 00:00:00", "tags": 5, "anonymous": "maybe"}],
  "x1": [],
  "7": {"ioc_value": "a"},
  "8": [{"ioc_value": "a.com", "ioc_type": "email"}, "str"],
  "9": [{"ioc_type": "domain"}]
}"#;
        let rejects = reject_texts(read_threatfox_json(text, "feed.json"));
        assert_eq!(
            rejects,
            [
                "feed.json: $[\"1856791\"][0].ioc_value: invalid indicator \"300.1.1.1:80\": not an IP address, ip:port or CIDR",
                "feed.json: $[\"1856791\"][0].first_seen_utc: invalid indicator \"2026-02-30 00:00:00\": bad timestamp (expected YYYY-MM-DD[ HH:MM:SS] UTC)",
                "feed.json: $[\"1856791\"][0].confidence_level: invalid indicator \"101\": expected an integer 0-100",
                "feed.json: $[\"1856791\"][0].tags: invalid indicator \"5\": expected tags as a string or an array, found a number",
                "feed.json: $[\"1856791\"][0].anonymous: invalid indicator \"maybe\": expected a boolean (true/false, 0/1)",
                "feed.json: $[\"7\"]: invalid indicator \"{...}\": expected an array of entries, found an object",
                "feed.json: $[\"8\"][0].ioc_value: invalid indicator \"a.com\": unknown indicator type \"email\"",
                "feed.json: $[\"8\"][1]: invalid indicator \"str\": expected an object, found a string",
                "feed.json: $[\"9\"][0].ioc_value: invalid indicator \"\": missing ioc_value",
                "feed.json: $[\"x1\"]: invalid indicator \"x1\": IOC id is not a number",
            ]
        );
        assert_eq!(
            read_threatfox_json("[1]", "f").unwrap_err()[0].to_string(),
            "f: $: invalid indicator \"[...]\": not a ThreatFox JSON export (expected an object keyed by IOC id)"
        );
    }

    const CSV_15: &str = r#"################################################################
# ThreatFox IOCs: recent additions - CSV format                #
# Last updated: 2026-07-21 05:35:20 UTC                        #
#                                                              #
# Terms Of Use: https://threatfox.abuse.ch/faq/#tos            #
################################################################
#
# "first_seen_utc","ioc_id","ioc_value","ioc_type","threat_type","fk_malware","malware_alias","malware_printable","last_seen_utc","confidence_level","is_compromised","reference","tags","anonymous","reporter"
"2026-07-21 05:35:20", "1854731", "157.20.182.81:425", "ioc:port", "botnet_cc", "win.tofsee", "Gheg", "Tofsee", "", "75", "False", "", "Tofsee", "0", "abuse_ch"
"#;

    #[test]
    fn csv_15_columns() {
        let text = CSV_15.replace("ioc:port", "ip:port")
            + "\"2026-07-21 05:30:00\", \"1854730\", \"MicrosoftSyst3m.com\", \"domain\", \"botnet_cc\", \"elf.mirai\", \"None\", \"Mirai\", \"2026-07-21 06:00:00\", \"100\", \"True\", \"https://x.example/r\", \"botnet,censys,ddos\", \"1\", \"anonymous\"\n"
            + "\"2026-07-21 05:29:00\", \"1854729\", \"a20052c78501ce91feba8ce56a3aa665\", \"md5_hash\", \"payload\", \"elf.mirai\", \"\", \"Mirai\", \"\", \"50\", \"False\", \"None\", \"\", \"0\", \"abuse_ch\"\n"
            + "# Number of entries: 3\n";
        let all = read_threatfox_csv(&text, "recent.csv").unwrap();
        assert_eq!(all.len(), 3);
        let tofsee = &all[0];
        assert_eq!(tofsee.meta.id, StableId::ThreatFox(1854731));
        assert_eq!(tofsee.value.to_string(), "157.20.182.81:425");
        assert_eq!(tofsee.meta.location, Location::Line(9));
        assert_eq!(tofsee.meta.confidence, Some(75));
        assert_eq!(tofsee.meta.compromised, Some(false));
        assert_eq!(tofsee.meta.reference, None);
        assert_eq!(tofsee.meta.last_seen, None);
        assert_eq!(tofsee.meta.malware.as_ref().unwrap().aliases, ["Gheg"]);
        let domain = &all[1];
        assert_eq!(domain.value, IocValue::Domain("microsoftsyst3m.com".into()));
        assert_eq!(*domain.meta.tags, ["botnet", "censys", "ddos"]);
        assert_eq!(domain.meta.compromised, Some(true));
        assert_eq!(
            domain.meta.last_seen,
            Some(datetime!(2026-07-21 06:00:00 UTC))
        );
        assert_eq!(
            domain.meta.malware.as_ref().unwrap().aliases,
            Vec::<String>::new()
        );
        assert_eq!(
            all[2].value,
            IocValue::Hash(HashKind::Md5, "a20052c78501ce91feba8ce56a3aa665".into())
        );
    }

    #[test]
    fn csv_14_columns_by_header_name() {
        let text = "# \"first_seen_utc\",\"ioc_id\",\"ioc_value\",\"ioc_type\",\"threat_type\",\"fk_malware\",\"malware_alias\",\"malware_printable\",\"last_seen_utc\",\"confidence_level\",\"reference\",\"tags\",\"anonymous\",\"reporter\"\n\
\"2025-05-19 17:33:52\", \"1525892\", \"92.119.114.46:7702\", \"ip:port\", \"botnet_cc\", \"win.purelogs\", \"None\", \"PureLogs Stealer\", \"\", \"100\", \"https://app.any.run/tasks/x/\", \"PureLogstealer\", \"0\", \"NDA0E\"\n";
        let all = read_threatfox_csv(text, "old.csv").unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].meta.confidence, Some(100));
        assert_eq!(all[0].meta.compromised, None);
        assert_eq!(
            all[0].meta.reference.as_deref(),
            Some("https://app.any.run/tasks/x/")
        );
        assert_eq!(*all[0].meta.tags, ["PureLogstealer"]);
        assert_eq!(all[0].meta.reporter.as_deref(), Some("NDA0E"));
        assert_eq!(all[0].meta.location, Location::Line(2));
    }

    #[test]
    fn csv_errors_name_line_column_and_value() {
        let text = CSV_15.to_string()
            + "\"2026-07-21 05:35:20\", \"1\", \"1.2.3.4:80\"\n"
            + "\"yesterday\", \"2\", \"1.2.3.4:80\", \"ip:port\", \"botnet_cc\", \"\", \"\", \"\", \"\", \"75\", \"False\", \"\", \"\", \"0\", \"x\"\n";
        let rejects = reject_texts(read_threatfox_csv(&text, "r.csv"));
        assert_eq!(
            rejects,
            [
                "r.csv:9: invalid indicator \"157.20.182.81:425\": ioc_value: unknown indicator type \"ioc:port\"",
                "r.csv:10: invalid indicator \"\\\"2026-07-21 05:35:20\\\", \\\"1\\\", \\\"1.2.3.4:80\\\"\": expected 15 fields, found 3",
                "r.csv:11: invalid indicator \"yesterday\": first_seen_utc: bad timestamp (expected YYYY-MM-DD[ HH:MM:SS] UTC)",
            ]
        );
        assert_eq!(
            read_threatfox_csv("\"a\", \"b\"\n", "x.csv").unwrap_err()[0].to_string(),
            "x.csv:1: invalid indicator \"a,b\": no CSV header (expected a `# \"first_seen_utc\",\"ioc_id\",\"ioc_value\",...` comment)"
        );
    }

    #[test]
    fn csv_quoted_commas_and_quotes() {
        let (cleaned, header) =
            skip_initial_space("# \"a\", \"ioc_value\"\n\"x, y\", \"q\"\"\" , z\n");
        assert_eq!(header.as_deref(), Some("\"a\",\"ioc_value\""));
        assert_eq!(cleaned, "\n\"x, y\",\"q\"\"\" ,z\n");
    }
}
