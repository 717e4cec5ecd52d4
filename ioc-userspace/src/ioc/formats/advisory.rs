//! Advisory texts (threat reports with an IOC summary): the markdown IOC table
//! (`| Type | Value | Threat Type | First Seen | Confidence |`, values often defanged),
//! the `Malware Family:` line, and the `dynamic([...])` lists of KQL hunting queries.

use std::{collections::HashSet, sync::Arc};

use super::{
    model::{
        normalize_domain, parse_any_value, parse_timestamp, parse_typed_value, shared_text,
        IndicatorMeta, IocValue, Location, Malware, ParsedIndicator, Reject, Rejects,
    },
    refang::refang,
};

/// Columns of an IOC table, by position.
struct Table {
    kind: usize,
    value: usize,
    threat_type: Option<usize>,
    first_seen: Option<usize>,
    confidence: Option<usize>,
    width: usize,
}

impl Table {
    /// The column map when `cells` is an IOC table header (it has `Type` and `Value`).
    fn from_header(cells: &[&str]) -> Option<Self> {
        let find = |names: &[&str]| {
            cells
                .iter()
                .position(|c| names.iter().any(|n| c.eq_ignore_ascii_case(n)))
        };
        Some(Self {
            kind: find(&["type", "ioc type", "indicator type"])?,
            value: find(&["value", "ioc", "indicator", "ioc value"])?,
            threat_type: find(&["threat type", "threat_type"]),
            first_seen: find(&["first seen", "first_seen", "first seen (utc)"]),
            confidence: find(&["confidence", "confidence level"]),
            width: cells.len(),
        })
    }
}

fn cells(line: &str) -> Vec<&str> {
    let inner = line.trim();
    let inner = inner.strip_prefix('|').unwrap_or(inner);
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    inner.split('|').map(str::trim).collect()
}

fn is_separator(cells: &[&str]) -> bool {
    cells
        .iter()
        .all(|c| !c.is_empty() && c.bytes().all(|b| matches!(b, b'-' | b':' | b' ')))
}

/// The family named on a `Malware Family: Mirai Total IOCs: 7 ...` line.
fn malware_family(text: &str) -> Option<String> {
    const KEY: &str = "Malware Family:";
    let line = text.lines().find(|l| l.contains(KEY))?;
    let after = &line[line.find(KEY)? + KEY.len()..];
    let name = after.split("Total IOCs:").next().unwrap_or("").trim();
    (!name.is_empty()).then(|| name.chars().take(200).collect())
}

/// Reads an advisory: every row of its IOC tables and every value in its KQL
/// `dynamic([...])` lists (repeated values kept once).
pub fn read_advisory(text: &str, source: &str) -> Result<Vec<ParsedIndicator>, Vec<Reject>> {
    let malware = malware_family(text).map(|name| {
        Arc::new(Malware {
            id: None,
            printable: Some(name),
            aliases: Vec::new(),
        })
    });
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut rejects = Rejects::default();
    let mut push = |value: IocValue, meta: IndicatorMeta, out: &mut Vec<ParsedIndicator>| {
        if seen.insert(value.clone()) {
            out.push(ParsedIndicator { value, meta });
        }
    };

    let mut table: Option<Table> = None;
    for (index, line) in text.lines().enumerate() {
        let location = Location::Line(index + 1);
        if !line.trim_start().starts_with('|') {
            table = None;
            continue;
        }
        let row = cells(line);
        let Some(columns) = &table else {
            table = Table::from_header(&row);
            continue;
        };
        if is_separator(&row) {
            continue;
        }
        if row.len() != columns.width {
            let reason = format!(
                "table row has {} cells, header has {}",
                row.len(),
                columns.width
            );
            rejects.push(Reject::new(source, location, line.trim(), reason));
            continue;
        }
        let raw = row[columns.value];
        let value = match parse_typed_value(row[columns.kind], &refang(raw)) {
            Ok(value) => value,
            Err(reason) => {
                rejects.push(Reject::new(source, location, raw, reason));
                continue;
            }
        };
        let mut meta = IndicatorMeta::new(&value, source, location.clone());
        meta.malware = malware.clone();
        meta.threat_type = columns
            .threat_type
            .map(|i| row[i])
            .filter(|t| !t.is_empty())
            .map(shared_text);
        if let Some(cell) = columns.first_seen.map(|i| row[i]).filter(|c| !c.is_empty()) {
            match parse_timestamp(cell) {
                Ok(when) => meta.first_seen = Some(when),
                Err(reason) => {
                    rejects.push(Reject::new(source, location, cell, reason));
                    continue;
                }
            }
        }
        if let Some(cell) = columns.confidence.map(|i| row[i]).filter(|c| !c.is_empty()) {
            match cell.trim_end_matches('%').trim().parse::<u8>() {
                Ok(level) if level <= 100 => meta.confidence = Some(level),
                _ => {
                    rejects.push(Reject::new(
                        source,
                        location,
                        cell,
                        "confidence must be 0-100%",
                    ));
                    continue;
                }
            }
        }
        push(value, meta, &mut out);
    }

    for list in dynamic_lists(text) {
        let kind = list_kind(&list.name);
        for item in list.items {
            let location = Location::Line(item.line);
            let fanged = refang(&item.text);
            let parsed = match kind {
                ListKind::Domain => normalize_domain(&fanged).map(IocValue::Domain),
                ListKind::Ip => match parse_any_value(&fanged) {
                    Ok(value @ IocValue::Net(_)) => Ok(value),
                    Ok(_) => Err("not an IP address in an IP list".to_string()),
                    Err(reason) => Err(reason),
                },
                ListKind::Any => parse_any_value(&fanged),
            };
            match parsed {
                Ok(value) => {
                    let mut meta = IndicatorMeta::new(&value, source, location);
                    meta.malware = malware.clone();
                    push(value, meta, &mut out);
                }
                Err(reason) => rejects.push(Reject::new(source, location, &item.text, reason)),
            }
        }
        if let Some((line, reason)) = list.error {
            rejects.push(Reject::new(
                source,
                Location::Line(line),
                &list.name,
                reason,
            ));
        }
    }
    rejects.finish(source, out)
}

enum ListKind {
    Ip,
    Domain,
    Any,
}

fn list_kind(name: &str) -> ListKind {
    let name = name.to_ascii_lowercase();
    if name.contains("domain") || name.contains("host") {
        ListKind::Domain
    } else if name.contains("ip") || name.contains("addr") {
        ListKind::Ip
    } else {
        ListKind::Any
    }
}

struct Item {
    text: String,
    line: usize,
}

struct DynamicList {
    /// The `let` name the list is bound to (empty when none).
    name: String,
    items: Vec<Item>,
    error: Option<(usize, String)>,
}

/// Every `dynamic([...])` list of string literals, with the line of each item. One pass.
fn dynamic_lists(text: &str) -> Vec<DynamicList> {
    const OPEN: &str = "dynamic(";
    let mut lists = Vec::new();
    let mut line = 1;
    let mut counted_to = 0;
    // Start of the line holding the current match (tracked, not searched: stays linear).
    let mut line_start = 0;
    let mut search_from = 0;
    while let Some(found) = text[search_from..].find(OPEN) {
        let start = search_from + found;
        let between = &text[counted_to..start];
        line += between.matches('\n').count();
        if let Some(newline) = between.rfind('\n') {
            line_start = counted_to + newline + 1;
        }
        // `let NAME =` just before (looking back a bounded distance).
        let mut from = line_start.max(start.saturating_sub(200));
        while !text.is_char_boundary(from) {
            from += 1;
        }
        let before = &text[from..start];
        let name = before
            .rfind("let ")
            .map(|at| before[at + 4..].trim().trim_end_matches('=').trim())
            .map(|n| n.chars().take(100).collect())
            .unwrap_or_default();
        let mut list = DynamicList {
            name,
            items: Vec::new(),
            error: None,
        };
        let (end, item_line) = scan_list(text, start + OPEN.len(), line, &mut list);
        if let Some(newline) = text[start..end].rfind('\n') {
            line_start = start + newline + 1;
        }
        line = item_line;
        counted_to = end;
        search_from = end.max(start + OPEN.len());
        lists.push(list);
    }
    lists
}

/// Reads `[ "a", 'b' ]` from `pos`; returns where it stopped and the line there.
fn scan_list(text: &str, pos: usize, mut line: usize, list: &mut DynamicList) -> (usize, usize) {
    let bytes = text.as_bytes();
    let mut i = pos;
    let skip_blank = |i: &mut usize, line: &mut usize| {
        while *i < bytes.len() && (bytes[*i].is_ascii_whitespace() || bytes[*i] == b',') {
            if bytes[*i] == b'\n' {
                *line += 1;
            }
            *i += 1;
        }
    };
    skip_blank(&mut i, &mut line);
    if bytes.get(i) != Some(&b'[') {
        list.error = Some((line, "dynamic(...) without a [list]".into()));
        return (i, line);
    }
    i += 1;
    loop {
        skip_blank(&mut i, &mut line);
        match bytes.get(i) {
            Some(b']') => return (i + 1, line),
            Some(&quote @ (b'"' | b'\'')) => {
                let item_line = line;
                let mut value = String::new();
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => {
                            list.error =
                                Some((item_line, "unterminated string in dynamic list".into()));
                            return (i, line);
                        }
                        Some(&b) if b == quote => {
                            i += 1;
                            break;
                        }
                        Some(b'\n') => {
                            list.error =
                                Some((item_line, "unterminated string in dynamic list".into()));
                            return (i, line);
                        }
                        Some(b'\\') if i + 1 < bytes.len() && bytes[i + 1] != b'\n' => {
                            // keep the escaped character as is
                            i += 1;
                            let ch = text[i..].chars().next().unwrap_or('\\');
                            value.push(ch);
                            i += ch.len_utf8();
                        }
                        Some(_) => {
                            let ch = text[i..].chars().next().unwrap_or(' ');
                            value.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
                list.items.push(Item {
                    text: value,
                    line: item_line,
                });
            }
            _ => {
                list.error = Some((line, "dynamic list items must be quoted strings".into()));
                return (i, line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ioc::formats::reject_texts;
    use crate::ioc::IndicatorValue;
    use time::macros::datetime;

    const MIRAI: &str = include_str!("testdata/seed-threatfox-mirai.txt");

    #[test]
    fn mirai_advisory_sample() {
        let all = read_advisory(MIRAI, "seed-threatfox-mirai.txt").unwrap();
        let table: Vec<&ParsedIndicator> =
            all.iter().filter(|i| i.meta.confidence.is_some()).collect();
        assert_eq!(table.len(), 7);
        let shown: Vec<String> = table
            .iter()
            .map(|i| {
                format!(
                    "{} {} {}",
                    i.value.type_name(),
                    i.value,
                    i.meta.threat_type.as_deref().unwrap_or("-")
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                "domain justkiddin.live botnet_cc",
                "ip:port 216.128.153.60:51515 botnet_cc",
                "ip:port 217.60.195.160:4569 payload_delivery",
                "ip:port 217.60.195.160:4568 payload_delivery",
                "ip:port 217.60.195.160:9018 payload_delivery",
                "ip:port 203.154.14.18:8999 payload_delivery",
                "ip:port 203.154.14.18:2049 payload_delivery",
            ]
        );
        for indicator in &table {
            assert_eq!(indicator.meta.confidence, Some(100));
            assert_eq!(
                indicator.meta.first_seen,
                Some(datetime!(2026-06-21 0:00 UTC))
            );
            let malware = indicator.meta.malware.as_ref().unwrap();
            assert_eq!(malware.printable.as_deref(), Some("Mirai"));
        }
        assert_eq!(table[1].meta.location, Location::Line(7));
        // KQL lists: three IPs (listed twice) and the domain (already in the table).
        let kql: Vec<String> = all
            .iter()
            .filter(|i| i.meta.confidence.is_none())
            .map(|i| format!("{} {} {}", i.value.type_name(), i.value, i.meta.location))
            .collect();
        assert_eq!(
            kql,
            [
                "ip 217.60.195.160 line 15",
                "ip 203.154.14.18 line 15",
                "ip 216.128.153.60 line 15",
            ]
        );
        assert!(all
            .iter()
            .any(|i| i.value
                == IocValue::Net(IndicatorValue::Address("203.154.14.18".parse().unwrap()))));
        assert_eq!(all.len(), 10);
    }

    #[test]
    fn advisory_errors() {
        let text = "Malware Family: X\n| Type | Value | Confidence |\n|---|---|---|\n\
                    | ip:port | 1[.]2[.]3[.]4:0 | 100% |\n| domain | ok.com | 101% |\n| url |\n\
                    let malicious_ips = dynamic([\"1.2.3.4\", \"evil.com\", 5]);\n\
                    let d = dynamic([\"x\n";
        let rejects = reject_texts(read_advisory(text, "adv.md"));
        assert_eq!(
            rejects,
            [
                "adv.md:4: invalid indicator \"1[.]2[.]3[.]4:0\": port 0 is not a destination",
                "adv.md:5: invalid indicator \"101%\": confidence must be 0-100%",
                "adv.md:6: invalid indicator \"| url |\": table row has 1 cells, header has 3",
                "adv.md:7: invalid indicator \"evil.com\": not an IP address in an IP list",
                "adv.md:7: invalid indicator \"malicious_ips\": dynamic list items must be quoted strings",
                "adv.md:8: invalid indicator \"d\": unterminated string in dynamic list",
            ]
        );
    }

    #[test]
    fn two_lists_on_one_line() {
        let text = "let ips = dynamic([\"1.2.3.4\"]); let hosts = dynamic([\"a.com\"]);";
        let all = read_advisory(text, "q").unwrap();
        let types: Vec<&str> = all.iter().map(|i| i.value.type_name()).collect();
        assert_eq!(types, ["ip", "domain"]);
    }

    #[test]
    fn multi_line_dynamic_list_and_domains() {
        let text = "let bad_domains = dynamic([\n  'Evil[.]com',\n  \"b.org\"\n]);\nlet urls = dynamic([\"hxxp://c[.]net/x\"]);";
        let all = read_advisory(text, "q.kql").unwrap();
        let shown: Vec<String> = all
            .iter()
            .map(|i| format!("{} {} {}", i.value.type_name(), i.value, i.meta.location))
            .collect();
        assert_eq!(
            shown,
            [
                "domain evil.com line 2",
                "domain b.org line 3",
                "url http://c.net/x line 5"
            ]
        );
    }
}
