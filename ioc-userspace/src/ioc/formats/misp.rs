//! MISP attributes (reference §5): an event (`{"Event":{"Attribute":[...],"Object":[...]}}`),
//! a REST search answer (`{"response":...}`), a bare `{"Attribute":[...]}`, or a JSON list of
//! attributes or events.
//!
//! Read types: `ip-dst`, `ip-src` (address or CIDR), `ip-dst|port` / `ip-src|port`
//! (`a.b.c.d|port`), `domain`, `hostname`, `hostname|port` (the domain), `domain|ip` (both),
//! `url`, `md5`, `sha1`, `sha256`, `filename|<hash>` (the hash). Other types (comments,
//! e-mail addresses, file names, ...) are context and skipped, and so are attributes marked
//! `"to_ids": false` (MISP's "not for detection").

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{
    json::{self, Fields},
    model::{
        parse_timestamp, parse_typed_value, shared_tags, shared_text, IndicatorMeta, IocValue,
        Location, Malware, ParsedIndicator, Reject, Rejects,
    },
};
use crate::ioc::IndicatorValue;

/// Reads MISP JSON in any of the shapes above.
pub fn read_misp(text: &str, source: &str) -> Result<Vec<ParsedIndicator>, Vec<Reject>> {
    let value = json::parse(text, source).map_err(|r| vec![r])?;
    misp_value(&value, source)
}

/// Event-wide context applied to its attributes.
#[derive(Default, Clone)]
struct Context {
    reporter: Option<String>,
    tags: Vec<String>,
}

pub(super) fn misp_value(value: &Value, source: &str) -> Result<Vec<ParsedIndicator>, Vec<Reject>> {
    let mut out = Vec::new();
    let mut rejects = Rejects::default();
    let mut reader = Reader {
        source,
        out: &mut out,
        rejects: &mut rejects,
    };
    let none = Context::default();
    match value {
        Value::Object(top) if top.contains_key("Event") => {
            reader.event(top.get("Event").unwrap_or(&Value::Null), "$.Event")
        }
        Value::Object(top) if top.contains_key("Attribute") => {
            reader.attributes(top.get("Attribute"), "$.Attribute", &none)
        }
        Value::Object(top) if top.contains_key("response") => {
            let response = top.get("response").unwrap_or(&Value::Null);
            reader.any(response, "$.response", &none, 0)
        }
        Value::Array(_) => reader.any(value, "$", &none, 0),
        other => reader.rejects.push(Reject::new(
            source,
            Location::Json("$".into()),
            &json::shown(other),
            "not MISP JSON (expected an Event, Attribute list or response)",
        )),
    }
    rejects.finish(source, out)
}

struct Reader<'a> {
    source: &'a str,
    out: &'a mut Vec<ParsedIndicator>,
    rejects: &'a mut Rejects,
}

impl Reader<'_> {
    fn reject(&mut self, path: &str, value: &Value, reason: &str) {
        let reject = Reject::new(
            self.source,
            Location::Json(path.into()),
            &json::shown(value),
            reason,
        );
        self.rejects.push(reject);
    }

    /// A response or list: events, attribute lists or attributes (nesting bounded).
    fn any(&mut self, value: &Value, path: &str, context: &Context, depth: usize) {
        match value {
            Value::Array(items) if depth < 2 => {
                for (index, item) in items.iter().enumerate() {
                    self.any(item, &json::index_path(path, index), context, depth + 1);
                }
            }
            Value::Object(obj) if obj.contains_key("Event") => {
                let event = obj.get("Event").unwrap_or(&Value::Null);
                self.event(event, &json::key_path(path, "Event"));
            }
            Value::Object(obj) if obj.contains_key("Attribute") && depth < 2 => {
                let path = json::key_path(path, "Attribute");
                self.attributes(obj.get("Attribute"), &path, context);
            }
            Value::Object(obj) if obj.contains_key("type") && obj.contains_key("value") => {
                self.attribute(obj, path, context);
            }
            other => self.reject(path, other, "expected a MISP event or attribute"),
        }
    }

    fn event(&mut self, event: &Value, path: &str) {
        let Value::Object(event) = event else {
            return self.reject(path, event, "expected an object");
        };
        let org = |key: &str| {
            event
                .get(key)
                .and_then(|o| o.get("name"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let context = Context {
            reporter: org("Orgc").or_else(|| org("Org")),
            tags: tag_names(event.get("Tag")),
        };
        self.attributes(
            event.get("Attribute"),
            &json::key_path(path, "Attribute"),
            &context,
        );
        match event.get("Object") {
            None | Some(Value::Null) => {}
            Some(Value::Array(objects)) => {
                let base = json::key_path(path, "Object");
                for (index, object) in objects.iter().enumerate() {
                    let object_path = json::index_path(&base, index);
                    match object {
                        Value::Object(o) => {
                            let attr_path = json::key_path(&object_path, "Attribute");
                            self.attributes(o.get("Attribute"), &attr_path, &context);
                        }
                        other => self.reject(&object_path, other, "expected an object"),
                    }
                }
            }
            Some(other) => {
                let path = json::key_path(path, "Object");
                self.reject(&path, other, "expected an array");
            }
        }
    }

    fn attributes(&mut self, list: Option<&Value>, path: &str, context: &Context) {
        match list {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (index, item) in items.iter().enumerate() {
                    let item_path = json::index_path(path, index);
                    match item {
                        Value::Object(obj) => self.attribute(obj, &item_path, context),
                        other => self.reject(&item_path, other, "expected an attribute object"),
                    }
                }
            }
            Some(other) => self.reject(path, other, "expected an array of attributes"),
        }
    }

    fn attribute(&mut self, obj: &Map<String, Value>, path: &str, context: &Context) {
        let locate = |key: &str| Location::Json(json::key_path(path, key));
        let fields = Fields {
            obj,
            source: self.source,
            locate: &locate,
            name_in_reason: false,
        };
        let rejects = &mut *self.rejects;
        let (Ok(kind), Ok(text)) = (
            fields.req_str("type", rejects),
            fields.req_str("value", rejects),
        ) else {
            return;
        };
        let Ok(to_ids) = fields.opt_bool("to_ids", rejects) else {
            return;
        };
        if to_ids == Some(false) {
            return;
        }
        let values = match attribute_values(kind, text) {
            None => return,
            Some(Ok(values)) => values,
            Some(Err(reason)) => return fields.reject(rejects, "value", text, &reason),
        };
        let mut times = [None, None];
        for (slot, key) in times.iter_mut().zip(["first_seen", "last_seen"]) {
            match fields.opt_text(key, rejects) {
                Ok(None) => {}
                Ok(Some(t)) => match parse_timestamp(&t) {
                    Ok(when) => *slot = Some(when),
                    Err(reason) => return fields.reject(rejects, key, &t, &reason),
                },
                Err(()) => return,
            }
        }
        let Ok(category) = fields.opt_text("category", rejects) else {
            return;
        };
        let mut tags = context.tags.clone();
        tags.extend(tag_names(obj.get("Tag")));
        let malware = tags.iter().find_map(|tag| {
            let name = tag.strip_prefix("misp-galaxy:malpedia=")?.trim_matches('"');
            Some(Arc::new(Malware {
                id: None,
                printable: Some(name.to_string()),
                aliases: Vec::new(),
            }))
        });
        for value in values {
            let mut meta = IndicatorMeta::new(&value, self.source, Location::Json(path.into()));
            meta.threat_type = category.as_ref().map(shared_text);
            meta.first_seen = times[0];
            meta.last_seen = times[1];
            meta.tags = shared_tags(&tags);
            meta.malware = malware.clone();
            meta.reporter = context.reporter.as_ref().map(shared_text);
            self.out.push(ParsedIndicator { value, meta });
        }
    }
}

/// `name`s of a MISP `Tag` list.
fn tag_names(tags: Option<&Value>) -> Vec<String> {
    tags.and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(|t| t.get("name").and_then(Value::as_str))
                .map(|n| n.chars().take(200).collect())
                .collect()
        })
        .unwrap_or_default()
}

/// The indicator values of an attribute; `None` for types that are not indicators.
fn attribute_values(kind: &str, text: &str) -> Option<Result<Vec<IocValue>, String>> {
    let pair = || {
        text.rsplit_once('|')
            .ok_or_else(|| format!("{kind} value must be two parts joined by '|'"))
    };
    let one = |kind: &str, text: &str| parse_typed_value(kind, text).map(|v| vec![v]);
    Some(match kind {
        "ip-dst" | "ip-src" => one("cidr", text),
        "ip-dst|port" | "ip-src|port" => pair().and_then(|(ip, port)| {
            let endpoint = if ip.contains(':') {
                format!("[{ip}]:{port}")
            } else {
                format!("{ip}:{port}")
            };
            match parse_typed_value("ip:port", &endpoint)? {
                value @ IocValue::Net(IndicatorValue::Endpoint(_)) => Ok(vec![value]),
                _ => Err("not an address and port".into()),
            }
        }),
        "domain" | "hostname" => one("domain", text),
        "hostname|port" => pair().and_then(|(host, _)| one("domain", host)),
        "domain|ip" => pair().and_then(|(domain, ip)| {
            let mut values = one("domain", domain)?;
            values.extend(one("cidr", ip)?);
            Ok(values)
        }),
        "url" => one("url", text),
        "md5" | "sha1" | "sha256" => one(kind, text),
        "filename|md5" | "filename|sha1" | "filename|sha256" => {
            let hash_kind = kind.trim_start_matches("filename|");
            pair().and_then(|(_, hash)| one(hash_kind, hash))
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ioc::formats::reject_texts;

    const EVENT: &str = r#"{"Event": {
  "id": "1234", "uuid": "5f0a0c8c-3a4c-4b9e-9a51-3f8f3c6b7d21", "info": "Mirai C2 and loaders",
  "date": "2026-06-21", "threat_level_id": "2", "analysis": "2",
  "Orgc": {"id": "1", "name": "CIRCL", "uuid": "55f6ea5e-2c60-40e5-964f-47a8950d210f"},
  "Tag": [{"name": "tlp:white"}, {"name": "misp-galaxy:malpedia=\"Mirai\""}],
  "Attribute": [
    {"id": "1", "type": "ip-dst|port", "category": "Network activity", "to_ids": true,
     "value": "216.128.153.60|51515", "comment": "C2", "timestamp": "1782036000",
     "first_seen": "2026-06-21T10:00:00.000000+00:00", "Tag": [{"name": "botnet_cc"}]},
    {"id": "2", "type": "ip-dst", "category": "Network activity", "to_ids": true, "value": "203.154.14.18"},
    {"id": "3", "type": "domain", "category": "Network activity", "to_ids": true, "value": "JustKiddin.live"},
    {"id": "4", "type": "hostname", "category": "Network activity", "to_ids": true, "value": "cnc.rspay.top"},
    {"id": "5", "type": "url", "category": "Payload delivery", "to_ids": true, "value": "http://8.213.214.55/nerv.mips"},
    {"id": "6", "type": "md5", "category": "Payload delivery", "to_ids": true, "value": "a20052c78501ce91feba8ce56a3aa665"},
    {"id": "7", "type": "comment", "category": "Other", "to_ids": false, "value": "seen on honeypots"},
    {"id": "8", "type": "ip-dst", "category": "Network activity", "to_ids": false, "value": "192.0.2.1"},
    {"id": "9", "type": "ip-dst|port", "category": "Network activity", "to_ids": "1", "value": "2001:db8::1|443"}
  ],
  "Object": [{"name": "file", "Attribute": [
    {"type": "sha256", "category": "Payload delivery", "to_ids": true,
     "value": "3ba46a4b246db63935fc44fc1f02e3f00dc833574f14733c0012fab9f5896510"},
    {"type": "filename|sha1", "category": "Payload delivery", "to_ids": true,
     "value": "mirai.arm7|18b3741afc2712dafb56505b1c1822372b35cc0b"}
  ]}]
}}"#;

    #[test]
    fn event() {
        let all = read_misp(EVENT, "event.json").unwrap();
        let shown: Vec<String> = all
            .iter()
            .map(|i| format!("{} {}", i.value.type_name(), i.value))
            .collect();
        assert_eq!(
            shown,
            [
                "ip:port 216.128.153.60:51515",
                "ip 203.154.14.18",
                "domain justkiddin.live",
                "domain cnc.rspay.top",
                "url http://8.213.214.55/nerv.mips",
                "md5_hash a20052c78501ce91feba8ce56a3aa665",
                "ip:port [2001:db8::1]:443",
                "sha256_hash 3ba46a4b246db63935fc44fc1f02e3f00dc833574f14733c0012fab9f5896510",
                "sha1_hash 18b3741afc2712dafb56505b1c1822372b35cc0b",
            ]
        );
        let first = &all[0].meta;
        assert_eq!(first.reporter.as_deref(), Some("CIRCL"));
        assert_eq!(first.threat_type.as_deref(), Some("Network activity"));
        assert_eq!(
            first.malware.as_ref().unwrap().printable.as_deref(),
            Some("Mirai")
        );
        assert_eq!(
            *first.tags,
            ["tlp:white", "misp-galaxy:malpedia=\"Mirai\"", "botnet_cc"]
        );
        assert_eq!(
            first.first_seen,
            Some(time::macros::datetime!(2026-06-21 10:00 UTC))
        );
        assert_eq!(
            first.location,
            Location::Json("$.Event.Attribute[0]".into())
        );
        assert_eq!(
            all[7].meta.location,
            Location::Json("$.Event.Object[0].Attribute[0]".into())
        );
    }

    #[test]
    fn bare_attribute_list_and_response_shapes() {
        let bare = r#"{"Attribute": [{"type": "domain|ip", "value": "evil.com|1.2.3.4"}]}"#;
        let all = read_misp(bare, "a.json").unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].value.to_string(), "1.2.3.4");
        let list = r#"[{"type": "hostname|port", "value": "evil.com|8443"}, {"type": "text", "value": "x"}]"#;
        assert_eq!(
            read_misp(list, "l.json").unwrap()[0].value.to_string(),
            "evil.com"
        );
        let response =
            r#"{"response": {"Attribute": [{"type": "ip-src", "value": "10.0.0.0/8"}]}}"#;
        assert_eq!(
            read_misp(response, "r.json").unwrap()[0].value.type_name(),
            "cidr"
        );
        let events = r#"{"response": [{"Event": {"Attribute": [{"type": "sha1", "value": "18b3741afc2712dafb56505b1c1822372b35cc0b"}]}}]}"#;
        let all = read_misp(events, "e.json").unwrap();
        assert_eq!(
            all[0].meta.location,
            Location::Json("$.response[0].Event.Attribute[0]".into())
        );
    }

    #[test]
    fn errors() {
        let text = r#"{"Attribute": [
            {"type": "ip-dst|port", "value": "1.2.3.4"},
            {"type": "ip-dst|port", "value": "1.2.3.4|0"},
            {"type": "ip-dst", "value": "1.2.3.256"},
            {"type": "domain", "value": 7},
            {"type": "md5", "value": "abc", "to_ids": "maybe"},
            "junk"
        ]}"#;
        let rejects = reject_texts(read_misp(text, "m.json"));
        assert_eq!(
            rejects,
            [
                "m.json: $.Attribute[0].value: invalid indicator \"1.2.3.4\": ip-dst|port value must be two parts joined by '|'",
                "m.json: $.Attribute[1].value: invalid indicator \"1.2.3.4|0\": port 0 is not a destination",
                "m.json: $.Attribute[2].value: invalid indicator \"1.2.3.256\": not an IP address, ip:port or CIDR",
                "m.json: $.Attribute[3].value: invalid indicator \"7\": expected a string, found a number",
                "m.json: $.Attribute[4].to_ids: invalid indicator \"maybe\": expected a boolean (true/false, 0/1)",
                "m.json: $.Attribute[5]: invalid indicator \"junk\": expected an attribute object",
            ]
        );
        assert_eq!(
            read_misp("{\"x\": 1}", "m.json").unwrap_err()[0].to_string(),
            "m.json: $: invalid indicator \"{...}\": not MISP JSON (expected an Event, Attribute list or response)"
        );
    }
}
