//! STIX 2.1 bundles: the `pattern` of each `indicator` object (reference §5).
//!
//! Supported comparisons (`=`, `IN`, `ISSUBSET`): `ipv4-addr:value`, `ipv6-addr:value`,
//! `domain-name:value`, `url:value`, `file:hashes.MD5/SHA-1/SHA-256`,
//! `network-traffic:dst_ref.value` (with `network-traffic:dst_port` in the same
//! observation, quoted or not, it becomes `ip:port`), `network-traffic:src_ref.value`, and
//! `domain-name:resolves_to_refs[*].value`. Other object paths are ignored; an indicator whose
//! pattern has none of these yields nothing. A pattern that does not tokenize, or whose
//! brackets do not balance, is a reject. Malware names come from `indicates` relationships,
//! reporters from `created_by_ref` identities in the same bundle.

use std::{collections::HashMap, sync::Arc};

use serde_json::Value;

use super::{
    json::{self, Fields},
    model::{
        parse_hash, parse_timestamp, parse_typed_value, shared_tags, shared_text, HashKind,
        IndicatorMeta, IocValue, Location, Malware, ParsedIndicator, Reject, Rejects,
    },
};
use crate::ioc::IndicatorValue;

/// Longest pattern read (longer is a reject).
const MAX_PATTERN: usize = 64 * 1024;
/// Most `ip:port` pairs one observation may expand to.
const MAX_PAIRS: usize = 1024;

/// Reads a STIX 2.x bundle (`{"type":"bundle","objects":[...]}`).
pub fn read_stix(text: &str, source: &str) -> Result<Vec<ParsedIndicator>, Vec<Reject>> {
    let value = json::parse(text, source).map_err(|r| vec![r])?;
    stix_value(&value, source)
}

pub(super) fn stix_value(value: &Value, source: &str) -> Result<Vec<ParsedIndicator>, Vec<Reject>> {
    let objects = match value {
        Value::Object(top) if top.get("type").and_then(Value::as_str) == Some("bundle") => {
            match top.get("objects") {
                Some(Value::Array(objects)) => objects.as_slice(),
                None | Some(Value::Null) => &[],
                Some(other) => {
                    return Err(vec![json::wrong_type(
                        source,
                        "$.objects",
                        other,
                        "an array",
                    )]);
                }
            }
        }
        Value::Object(top) if top.get("type").and_then(Value::as_str) == Some("indicator") => {
            std::slice::from_ref(value)
        }
        other => {
            return Err(vec![Reject::new(
                source,
                Location::Json("$".into()),
                &json::shown(other),
                "not a STIX bundle (expected \"type\": \"bundle\")",
            )])
        }
    };
    let base = if matches!(value.get("type").and_then(Value::as_str), Some("bundle")) {
        "$.objects"
    } else {
        ""
    };

    // Names of malware and identities, and which indicator indicates which malware.
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut indicates: HashMap<&str, &str> = HashMap::new();
    for object in objects {
        let get = |key: &str| object.get(key).and_then(Value::as_str);
        match get("type") {
            Some("malware" | "identity") => {
                if let (Some(id), Some(name)) = (get("id"), get("name")) {
                    names.insert(id, name);
                }
            }
            Some("relationship") if get("relationship_type") == Some("indicates") => {
                if let (Some(from), Some(to)) = (get("source_ref"), get("target_ref")) {
                    indicates.entry(from).or_insert(to);
                }
            }
            _ => {}
        }
    }

    let mut out = Vec::new();
    let mut rejects = Rejects::default();
    for (index, object) in objects.iter().enumerate() {
        let path = if base.is_empty() {
            "$".to_string()
        } else {
            json::index_path(base, index)
        };
        let Value::Object(obj) = object else {
            rejects.push(json::wrong_type(source, path, object, "an object"));
            continue;
        };
        if obj.get("type").and_then(Value::as_str) != Some("indicator") {
            continue;
        }
        let locate = |key: &str| Location::Json(json::key_path(&path, key));
        let fields = Fields {
            obj,
            source,
            locate: &locate,
            name_in_reason: false,
        };
        let Ok(pattern_type) = fields.opt_str("pattern_type", &mut rejects) else {
            continue;
        };
        if pattern_type.is_some_and(|t| t != "stix") {
            continue; // snort, yara, sigma...: not ours
        }
        let Ok(pattern) = fields.req_str("pattern", &mut rejects) else {
            continue;
        };
        let values = match pattern_values(pattern) {
            Ok(values) => values,
            Err(reason) => {
                fields.reject(&mut rejects, "pattern", pattern, &reason);
                continue;
            }
        };
        let mut bad = false;
        let first_seen = match fields.opt_text("valid_from", &mut rejects) {
            Ok(Some(text)) => match parse_timestamp(&text) {
                Ok(when) => Some(when),
                Err(reason) => {
                    fields.reject(&mut rejects, "valid_from", &text, &reason);
                    bad = true;
                    None
                }
            },
            Ok(None) => None,
            Err(()) => {
                bad = true;
                None
            }
        };
        let confidence = fields
            .opt_uint("confidence", 100, &mut rejects)
            .unwrap_or_else(|()| {
                bad = true;
                None
            });
        let labels = fields.tags("labels", &mut rejects).unwrap_or_else(|()| {
            bad = true;
            Vec::new()
        });
        let kinds = fields
            .tags("indicator_types", &mut rejects)
            .unwrap_or_else(|()| {
                bad = true;
                Vec::new()
            });
        let mut parsed = Vec::new();
        for (text, result) in values {
            match result {
                Ok(value) => parsed.push(value),
                Err(reason) => {
                    fields.reject(&mut rejects, "pattern", &text, &reason);
                    bad = true;
                }
            }
        }
        if bad {
            continue;
        }
        let id = obj.get("id").and_then(Value::as_str);
        let malware = id
            .and_then(|id| indicates.get(id))
            .and_then(|target| names.get(target))
            .map(|name| {
                Arc::new(Malware {
                    id: None,
                    printable: Some(name.to_string()),
                    aliases: Vec::new(),
                })
            });
        let reporter = obj
            .get("created_by_ref")
            .and_then(Value::as_str)
            .and_then(|by| names.get(by))
            .map(|name| name.to_string());
        let reference = obj
            .get("external_references")
            .and_then(Value::as_array)
            .and_then(|refs| {
                refs.iter()
                    .find_map(|r| r.get("url").and_then(Value::as_str))
            })
            .map(str::to_string);
        for value in parsed {
            let mut meta = IndicatorMeta::new(&value, source, Location::Json(path.clone()));
            meta.threat_type = kinds.first().map(shared_text);
            meta.malware = malware.clone();
            meta.confidence = confidence.map(|c| c as u8);
            meta.first_seen = first_seen;
            meta.reference = reference.clone();
            meta.tags = shared_tags(&labels);
            meta.reporter = reporter.as_ref().map(shared_text);
            out.push(ParsedIndicator { value, meta });
        }
    }
    rejects.finish(source, out)
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Open,       // [
    Close,      // ]
    ParenOpen,  // (
    ParenClose, // )
    Comma,
    Op(String),   // = != < > <= >=
    Word(String), // object paths, keywords, numbers
    Str(String),  // 'quoted' (also t'..', h'..', b'..')
}

/// Splits a pattern into tokens. Linear; rejects unknown characters and open strings.
fn tokenize(pattern: &str) -> Result<Vec<Token>, String> {
    let bytes = pattern.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b"_-.:*".contains(&b);
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        match b {
            _ if b.is_ascii_whitespace() => {}
            b'[' => tokens.push(Token::Open),
            b']' => tokens.push(Token::Close),
            b'(' => tokens.push(Token::ParenOpen),
            b')' => tokens.push(Token::ParenClose),
            b',' => tokens.push(Token::Comma),
            b'=' => tokens.push(Token::Op("=".into())),
            b'!' | b'<' | b'>' => {
                let mut op = char::from(b).to_string();
                if bytes.get(i) == Some(&b'=') {
                    op.push('=');
                    i += 1;
                }
                tokens.push(Token::Op(op));
            }
            b'\'' => {
                let (value, next) = read_string(pattern, i)?;
                tokens.push(Token::Str(value));
                i = next;
            }
            _ if is_word(b) => {
                // A word runs over path characters, `'quoted'` path steps
                // (`hashes.'SHA-256'`) and `[*]` / `[0]` list steps; `t'...'`, `h'...'` and
                // `b'...'` are prefixed literals.
                let mut word = char::from(b).to_string();
                loop {
                    match bytes.get(i) {
                        Some(&c) if is_word(c) => {
                            word.push(char::from(c));
                            i += 1;
                        }
                        Some(b'\'') if matches!(word.as_str(), "t" | "h" | "b") => {
                            let (value, next) = read_string(pattern, i + 1)?;
                            word = value;
                            i = next;
                            tokens.push(Token::Str(std::mem::take(&mut word)));
                            break;
                        }
                        Some(b'\'') if word.ends_with('.') => {
                            let (step, next) = read_string(pattern, i + 1)?;
                            word.push_str(&step);
                            i = next;
                        }
                        Some(b'[')
                            if word.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') =>
                        {
                            let window = &bytes[i + 1..bytes.len().min(i + 12)];
                            match window.iter().position(|&c| c == b']') {
                                Some(len)
                                    if len > 0
                                        && window[..len]
                                            .iter()
                                            .all(|&c| c == b'*' || c.is_ascii_digit()) =>
                                {
                                    word.push_str(&pattern[i..i + len + 2]);
                                    i += len + 2;
                                }
                                _ => break,
                            }
                        }
                        _ => break,
                    }
                }
                if !word.is_empty() {
                    tokens.push(Token::Word(word));
                }
            }
            _ => {
                let shown = pattern[i - 1..].chars().next().unwrap_or('?').to_string();
                return Err(format!(
                    "malformed STIX pattern: unexpected {}",
                    crate::text::quote_for_log(&shown, 4)
                ));
            }
        }
    }
    Ok(tokens)
}

/// A `'...'` literal whose body starts at `start`; returns it and the index after it.
fn read_string(pattern: &str, start: usize) -> Result<(String, usize), String> {
    const OPEN: &str = "malformed STIX pattern: unterminated string";
    let mut value = String::new();
    let mut chars = pattern.get(start..).ok_or(OPEN)?.char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            '\'' => return Ok((value, start + offset + 1)),
            '\\' => match chars.next() {
                Some((_, escaped)) => value.push(escaped),
                None => break,
            },
            c => value.push(c),
        }
    }
    Err(OPEN.into())
}

/// A path's indicator role.
enum Role {
    Ip,
    Domain,
    Url,
    Hash(HashKind),
    DstPort,
    Ignored,
}

fn role(path: &str) -> Role {
    let path = path.to_ascii_lowercase();
    let Some((object, property)) = path.split_once(':') else {
        return Role::Ignored;
    };
    match (object, property) {
        ("ipv4-addr" | "ipv6-addr", "value") => Role::Ip,
        ("domain-name", "value") => Role::Domain,
        ("domain-name", p) if p.starts_with("resolves_to_refs[") && p.ends_with("].value") => {
            Role::Ip
        }
        ("url", "value") => Role::Url,
        ("network-traffic", "dst_ref.value" | "src_ref.value") => Role::Ip,
        ("network-traffic", "dst_port") => Role::DstPort,
        ("file", p) => match p.strip_prefix("hashes.") {
            Some("md5") => Role::Hash(HashKind::Md5),
            Some("sha1" | "sha-1") => Role::Hash(HashKind::Sha1),
            Some("sha256" | "sha-256") => Role::Hash(HashKind::Sha256),
            _ => Role::Ignored,
        },
        _ => Role::Ignored,
    }
}

type ValueResult = (String, Result<IocValue, String>);

/// The indicator values a pattern names, each with its text for rejects.
fn pattern_values(pattern: &str) -> Result<Vec<ValueResult>, String> {
    if pattern.len() > MAX_PATTERN {
        return Err(format!("pattern longer than {MAX_PATTERN} bytes"));
    }
    let tokens = tokenize(pattern)?;
    let mut out = Vec::new();
    let mut depth_paren = 0usize;
    let mut in_observation = false;
    let mut observations = 0;
    // Per observation: addresses and ports (paired into ip:port at `]`).
    let mut ips: Vec<String> = Vec::new();
    let mut ports: Vec<String> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Open => {
                if in_observation {
                    return Err("malformed STIX pattern: nested '['".into());
                }
                in_observation = true;
                observations += 1;
                i += 1;
            }
            Token::Close => {
                if !in_observation {
                    return Err("malformed STIX pattern: unbalanced ']'".into());
                }
                in_observation = false;
                flush_network(&mut ips, &mut ports, &mut out)?;
                i += 1;
            }
            Token::ParenOpen => {
                depth_paren += 1;
                i += 1;
            }
            Token::ParenClose => {
                depth_paren = depth_paren
                    .checked_sub(1)
                    .ok_or("malformed STIX pattern: unbalanced ')'")?;
                i += 1;
            }
            Token::Word(word) if in_observation && word.contains(':') => {
                // comparison: path [NOT] op value | path [NOT] IN (list)
                let path = word.clone();
                i += 1;
                let negated =
                    matches!(tokens.get(i), Some(Token::Word(w)) if w.eq_ignore_ascii_case("not"));
                if negated {
                    i += 1;
                }
                let (op, values, next) = comparison_rhs(&tokens, i)?;
                i = next;
                let wanted = !negated
                    && (op == "="
                        || op.eq_ignore_ascii_case("in")
                        || op.eq_ignore_ascii_case("issubset"));
                if !wanted {
                    continue;
                }
                for text in values {
                    match role(&path) {
                        Role::Ip => ips.push(text),
                        Role::DstPort => ports.push(text),
                        Role::Domain => {
                            let value = parse_typed_value("domain", &text);
                            out.push((text, value));
                        }
                        Role::Url => {
                            let value = parse_typed_value("url", &text);
                            out.push((text, value));
                        }
                        Role::Hash(kind) => {
                            let value = parse_hash(kind, &text);
                            out.push((text, value));
                        }
                        Role::Ignored => {}
                    }
                }
            }
            Token::Word(word)
                if !in_observation
                    || ["and", "or"].contains(&word.to_ascii_lowercase().as_str()) =>
            {
                // connectors (AND, OR, FOLLOWEDBY) and qualifiers (WITHIN 5 SECONDS, ...)
                i += 1;
            }
            Token::Str(_) | Token::Comma if !in_observation => i += 1, // qualifier literals
            other => {
                return Err(format!(
                    "malformed STIX pattern: unexpected {}",
                    describe(other)
                ));
            }
        }
    }
    if in_observation || depth_paren != 0 {
        return Err("malformed STIX pattern: unbalanced brackets".into());
    }
    if observations == 0 {
        return Err("malformed STIX pattern: no [observation]".into());
    }
    Ok(out)
}

fn describe(token: &Token) -> String {
    let text = match token {
        Token::Open => "[".to_string(),
        Token::Close => "]".to_string(),
        Token::ParenOpen => "(".to_string(),
        Token::ParenClose => ")".to_string(),
        Token::Comma => ",".to_string(),
        Token::Op(op) => op.clone(),
        Token::Word(word) => word.clone(),
        Token::Str(s) => format!("'{s}'"),
    };
    crate::text::quote_for_log(&text, 40)
}

/// The operator and literal(s) at `i`; returns them and the index after.
fn comparison_rhs(tokens: &[Token], mut i: usize) -> Result<(String, Vec<String>, usize), String> {
    let op = match tokens.get(i) {
        Some(Token::Op(op)) => op.clone(),
        Some(Token::Word(word)) => word.clone(), // IN, LIKE, MATCHES, ISSUBSET, ISSUPERSET
        other => {
            let shown = other.map_or("end of pattern".into(), describe);
            return Err(format!(
                "malformed STIX pattern: expected an operator, found {shown}"
            ));
        }
    };
    i += 1;
    let literal = |token: Option<&Token>| match token {
        Some(Token::Str(s)) => Some(s.clone()),
        Some(Token::Word(w))
            if w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') =>
        {
            Some(w.clone())
        }
        _ => None,
    };
    if matches!(tokens.get(i), Some(Token::ParenOpen)) {
        i += 1;
        let mut values = Vec::new();
        loop {
            match tokens.get(i) {
                Some(Token::ParenClose) => return Ok((op, values, i + 1)),
                Some(Token::Comma) => i += 1,
                token => match literal(token) {
                    Some(value) => {
                        values.push(value);
                        i += 1;
                    }
                    None => return Err("malformed STIX pattern: bad list".into()),
                },
            }
        }
    }
    match literal(tokens.get(i)) {
        Some(value) => Ok((op, vec![value], i + 1)),
        None => {
            let shown = tokens.get(i).map_or("end of pattern".into(), describe);
            Err(format!(
                "malformed STIX pattern: expected a value, found {shown}"
            ))
        }
    }
}

/// Turns the addresses and ports of one observation into `ip` / `ip:port` values.
fn flush_network(
    ips: &mut Vec<String>,
    ports: &mut Vec<String>,
    out: &mut Vec<ValueResult>,
) -> Result<(), String> {
    if ips.len().saturating_mul(ports.len()) > MAX_PAIRS {
        return Err(format!(
            "pattern pairs more than {MAX_PAIRS} addresses and ports"
        ));
    }
    for ip in ips.iter() {
        let address = parse_typed_value("cidr", ip);
        if ports.is_empty() {
            out.push((ip.clone(), address));
            continue;
        }
        for port in ports.iter() {
            let text = format!("{ip}|{port}");
            let value = match &address {
                Err(reason) => Err(reason.clone()),
                Ok(IocValue::Net(IndicatorValue::Address(addr))) => {
                    match port.trim().parse::<u16>() {
                        Ok(p) if p != 0 => Ok(IocValue::Net(IndicatorValue::Endpoint(
                            std::net::SocketAddr::new(*addr, p),
                        ))),
                        _ => Err("bad port (expected 1-65535)".to_string()),
                    }
                }
                Ok(_) => Err("a network (CIDR) cannot have a port".to_string()),
            };
            out.push((text, value));
        }
    }
    ips.clear();
    ports.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const BUNDLE: &str = r#"{
  "type": "bundle",
  "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
  "objects": [
    {"type": "identity", "spec_version": "2.1", "id": "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff",
     "name": "ThreatFox", "identity_class": "organization"},
    {"type": "malware", "spec_version": "2.1", "id": "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b",
     "name": "Mirai", "is_family": true},
    {"type": "indicator", "spec_version": "2.1", "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
     "created_by_ref": "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff",
     "created": "2026-06-21T10:00:00.000Z", "modified": "2026-06-21T10:00:00.000Z",
     "indicator_types": ["malicious-activity"], "labels": ["botnet_cc", "mirai"], "confidence": 90,
     "pattern": "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '216.128.153.60' AND network-traffic:dst_port = '51515']",
     "pattern_type": "stix", "pattern_version": "2.1", "valid_from": "2026-06-21T10:00:00Z",
     "external_references": [{"source_name": "ThreatFox", "url": "https://threatfox.abuse.ch/ioc/1/"}]},
    {"type": "relationship", "spec_version": "2.1", "id": "relationship--44298a74-ba52-4f0c-87a3-1824e67d7fad",
     "relationship_type": "indicates", "source_ref": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
     "target_ref": "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b"},
    {"type": "indicator", "id": "indicator--2", "pattern_type": "stix", "valid_from": "2026-06-21T10:00:00Z",
     "pattern": "[network-traffic:dst_ref.value = '217.60.195.160' AND network-traffic:dst_port = 4569] OR [ipv4-addr:value = '203.154.14.18'] OR [ipv6-addr:value = '2001:db8::/32']"},
    {"type": "indicator", "id": "indicator--3", "pattern_type": "stix", "valid_from": "2026-06-21T10:00:00Z",
     "pattern": "[domain-name:value = 'JustKiddin.live'] AND [url:value = 'http://8.213.214.55/nerv.mips'] WITHIN 300 SECONDS"},
    {"type": "indicator", "id": "indicator--4", "pattern_type": "stix", "valid_from": "2026-06-21T10:00:00Z",
     "pattern": "[file:hashes.'SHA-256' = '3BA46A4B246DB63935FC44FC1F02E3F00DC833574F14733C0012FAB9F5896510' OR file:hashes.MD5 = 'a20052c78501ce91feba8ce56a3aa665' OR file:hashes.'SHA-1' = '18b3741afc2712dafb56505b1c1822372b35cc0b']"},
    {"type": "indicator", "id": "indicator--5", "pattern_type": "stix", "valid_from": "2026-06-21T10:00:00Z",
     "pattern": "[process:name = 'sh' AND ipv4-addr:value NOT = '10.0.0.1'] AND [ipv4-addr:value IN ('1.1.1.1', '2.2.2.2')]"},
    {"type": "indicator", "id": "indicator--6", "pattern_type": "yara", "pattern": "rule x { condition: true }",
     "valid_from": "2026-06-21T10:00:00Z"}
  ]
}"#;

    #[test]
    fn bundle() {
        let all = read_stix(BUNDLE, "bundle.json").unwrap();
        let shown: Vec<String> = all
            .iter()
            .map(|i| format!("{} {}", i.value.type_name(), i.value))
            .collect();
        assert_eq!(
            shown,
            [
                "ip:port 216.128.153.60:51515",
                "ip:port 217.60.195.160:4569",
                "ip 203.154.14.18",
                "cidr 2001:db8::/32",
                "domain justkiddin.live",
                "url http://8.213.214.55/nerv.mips",
                "sha256_hash 3ba46a4b246db63935fc44fc1f02e3f00dc833574f14733c0012fab9f5896510",
                "md5_hash a20052c78501ce91feba8ce56a3aa665",
                "sha1_hash 18b3741afc2712dafb56505b1c1822372b35cc0b",
                "ip 1.1.1.1",
                "ip 2.2.2.2",
            ]
        );
        let first = &all[0].meta;
        assert_eq!(
            first.malware.as_ref().unwrap().printable.as_deref(),
            Some("Mirai")
        );
        assert_eq!(first.reporter.as_deref(), Some("ThreatFox"));
        assert_eq!(first.confidence, Some(90));
        assert_eq!(*first.tags, ["botnet_cc", "mirai"]);
        assert_eq!(first.threat_type.as_deref(), Some("malicious-activity"));
        assert_eq!(first.first_seen, Some(datetime!(2026-06-21 10:00 UTC)));
        assert_eq!(
            first.reference.as_deref(),
            Some("https://threatfox.abuse.ch/ioc/1/")
        );
        assert_eq!(first.location, Location::Json("$.objects[2]".into()));
    }

    #[test]
    fn pattern_errors() {
        let bundle = |pattern: &str| {
            let text = serde_json::json!({"type": "bundle", "objects": [
                {"type": "indicator", "id": "indicator--1", "pattern_type": "stix", "pattern": pattern}
            ]})
            .to_string();
            read_stix(&text, "b.json").unwrap_err()[0].to_string()
        };
        assert_eq!(
            bundle("[ipv4-addr:value = '300.1.1.1']"),
            "b.json: $.objects[0].pattern: invalid indicator \"300.1.1.1\": not an IP address, ip:port or CIDR"
        );
        assert_eq!(
            bundle("[network-traffic:dst_ref.value = '1.2.3.4' AND network-traffic:dst_port = '70000']"),
            "b.json: $.objects[0].pattern: invalid indicator \"1.2.3.4|70000\": bad port (expected 1-65535)"
        );
        assert_eq!(
            bundle("[ipv4-addr:value = '1.2.3.4'"),
            "b.json: $.objects[0].pattern: invalid indicator \"[ipv4-addr:value = \\'1.2.3.4\\'\": malformed STIX pattern: unbalanced brackets"
        );
        assert_eq!(
            bundle("[ipv4-addr:value = '1.2.3.4]"),
            "b.json: $.objects[0].pattern: invalid indicator \"[ipv4-addr:value = \\'1.2.3.4]\": malformed STIX pattern: unterminated string"
        );
        assert_eq!(
            bundle("[domain-name:value = ]"),
            "b.json: $.objects[0].pattern: invalid indicator \"[domain-name:value = ]\": malformed STIX pattern: expected a value, found \"]\""
        );
        assert_eq!(
            bundle("[domain-name:value = 'bad.co_m']"),
            "b.json: $.objects[0].pattern: invalid indicator \"bad.co_m\": character \"_\" not allowed in a domain"
        );
        assert_eq!(
            read_stix("{\"type\": \"report\"}", "r.json").unwrap_err()[0].to_string(),
            "r.json: $: invalid indicator \"{...}\": not a STIX bundle (expected \"type\": \"bundle\")"
        );
    }

    #[test]
    fn escaped_quotes_in_values() {
        let values = pattern_values(r"[url:value = 'http://a.com/it\'s']").unwrap();
        assert_eq!(values[0].0, "http://a.com/it's");
    }
}
