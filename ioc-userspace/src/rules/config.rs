//! The exclusion rule file: TOML schema, validation, and matching one rule.
//!
//! ```toml
//! version = 1
//!
//! [[rule]]
//! name = "netcat-admin-diagnostics"
//! tools = ["netcat"]
//! flags = ["-z", "-w", "-v"]
//! suppresses = ["network-tool"]
//! ```
//!
//! Keys combine with AND; the values inside one key's list combine with OR. Every key
//! is documented in `docs/RULES.md`.

use std::{collections::BTreeMap, fmt, net::IpAddr};

use ipnet::IpNet;
use serde::Deserialize;
use toml::{Spanned, Table, Value};

use super::{args::ToolFamily, pattern::Pattern, Analysis, DetectionClass, Subject};

/// The rule file version this code reads.
pub const VERSION: i64 = 1;

/// The special `destinations` value; see [`in_container_network`].
pub const CONTAINER_NETWORK: &str = "container-network";

/// Shortest container id prefix a rule may give (docker's short id length).
pub const MIN_CONTAINER_ID_PREFIX: usize = 12;

/// A rule file that cannot be used, with where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    /// The file (a path, or `<default-rules.toml>`).
    pub origin: String,
    /// 1-based line of the problem (for a rule: its `[[rule]]` header).
    pub line: Option<u32>,
    /// 1-based position of the rule in the file.
    pub rule_index: Option<u32>,
    pub rule_name: Option<String>,
    pub key: Option<String>,
    pub reason: String,
}

impl RuleError {
    pub(crate) fn file(origin: &str, reason: String) -> Self {
        Self {
            origin: origin.to_string(),
            line: None,
            rule_index: None,
            rule_name: None,
            key: None,
            reason,
        }
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if let Some(index) = self.rule_index {
            match &self.rule_name {
                Some(name) => write!(f, "rule {index} {name:?}: ")?,
                None => write!(f, "rule {index} (unnamed): ")?,
            }
        }
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        write!(f, "{}", self.reason)
    }
}

impl std::error::Error for RuleError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: Option<i64>,
    #[serde(default)]
    rule: Vec<Spanned<Table>>,
}

/// One `[[rule]]` table as written. Every field is optional here so that each key can
/// be checked on its own (and required keys reported by name).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<String>,
    description: Option<String>,
    suppresses: Option<Vec<String>>,
    process_names: Option<Vec<String>>,
    tools: Option<Vec<String>>,
    exe_paths: Option<Vec<String>>,
    flags: Option<Vec<String>>,
    unless_flags: Option<Vec<String>>,
    args: Option<Vec<String>>,
    arg_substrings: Option<Vec<String>>,
    ancestor_names: Option<Vec<String>>,
    ancestor_exe_paths: Option<Vec<String>>,
    under_cron: Option<bool>,
    users: Option<Vec<String>>,
    uids: Option<Vec<u32>>,
    in_container: Option<bool>,
    container_ids: Option<Vec<String>>,
    destinations: Option<Vec<String>>,
    destination_ports: Option<Vec<u16>>,
}

/// Every key a rule may have, in documentation order.
pub const RULE_KEYS: &[&str] = &[
    "name",
    "description",
    "suppresses",
    "process_names",
    "tools",
    "exe_paths",
    "flags",
    "unless_flags",
    "args",
    "arg_substrings",
    "ancestor_names",
    "ancestor_exe_paths",
    "under_cron",
    "users",
    "uids",
    "in_container",
    "container_ids",
    "destinations",
    "destination_ports",
];

/// A destination a rule accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Network(IpNet),
    /// See [`in_container_network`].
    ContainerNetwork,
}

/// A validated rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub description: Option<String>,
    /// 1-based line of the rule's `[[rule]]` header.
    pub line: u32,
    suppresses: Vec<DetectionClass>,
    process_names: Option<Vec<String>>,
    tools: Option<Vec<ToolFamily>>,
    exe_paths: Option<Vec<Pattern>>,
    flags: Option<Vec<String>>,
    unless_flags: Option<Vec<String>>,
    args: Option<Vec<Pattern>>,
    arg_substrings: Option<Vec<String>>,
    ancestor_names: Option<Vec<String>>,
    ancestor_exe_paths: Option<Vec<Pattern>>,
    under_cron: Option<bool>,
    users: Option<Vec<String>>,
    uids: Option<Vec<u32>>,
    in_container: Option<bool>,
    container_ids: Option<Vec<String>>,
    destinations: Option<Vec<Destination>>,
    destination_ports: Option<Vec<u16>>,
}

impl Rule {
    /// The classes this rule may suppress.
    pub fn suppressed_classes(&self) -> &[DetectionClass] {
        &self.suppresses
    }

    pub fn suppresses(&self, class: DetectionClass) -> bool {
        class.suppressible() && self.suppresses.contains(&class)
    }

    /// Whether every condition of the rule holds for the subject.
    pub(crate) fn matches(&self, subject: &Subject, analysis: &Analysis) -> bool {
        fn check<T>(condition: &Option<T>, test: impl FnOnce(&T) -> bool) -> bool {
            condition.as_ref().is_none_or(test)
        }
        let applet = analysis.tool.as_ref().map(|tool| tool.name.as_str());
        check(&self.process_names, |names| {
            names.iter().any(|name| {
                *name == subject.comm
                    || name == subject.file_name()
                    || Some(name.as_str()) == applet
            })
        }) && check(&self.tools, |tools| {
            analysis
                .tool
                .as_ref()
                .is_some_and(|tool| tools.contains(&tool.family))
        }) && check(&self.exe_paths, |patterns| {
            subject
                .exe_path
                .as_deref()
                .is_some_and(|exe| patterns.iter().any(|p| p.matches(exe)))
        }) && check(&self.flags, |flags| {
            flags.iter().any(|flag| analysis.args.has_flag(flag))
        }) && check(&self.unless_flags, |flags| {
            !flags.iter().any(|flag| analysis.args.has_flag(flag))
        }) && check(&self.args, |patterns| {
            analysis
                .args
                .arguments()
                .any(|arg| patterns.iter().any(|p| p.matches(arg)))
        }) && check(&self.arg_substrings, |needles| {
            analysis
                .args
                .tokens
                .iter()
                .any(|token| needles.iter().any(|needle| token.contains(needle.as_str())))
        }) && self.ancestors_match(subject)
            && check(&self.under_cron, |wanted| subject.under_cron() == *wanted)
            && check(&self.users, |users| {
                subject
                    .user
                    .as_ref()
                    .is_some_and(|user| users.contains(user))
            })
            && check(&self.uids, |uids| {
                subject.uid.is_some_and(|uid| uids.contains(&uid))
            })
            && check(&self.in_container, |wanted| {
                subject.container_id.is_some() == *wanted
            })
            && check(&self.container_ids, |ids| {
                subject
                    .container_id
                    .as_deref()
                    .is_some_and(|id| ids.iter().any(|prefix| id.starts_with(prefix.as_str())))
            })
            && check(&self.destinations, |destinations| {
                destinations.iter().any(|destination| match destination {
                    Destination::Network(net) => subject
                        .destination_ip
                        .is_some_and(|ip| net.contains(&ip.to_canonical())),
                    Destination::ContainerNetwork => in_container_network(subject),
                })
            })
            && check(&self.destination_ports, |ports| {
                ports.contains(&subject.destination_port)
            })
    }

    /// `ancestor_names` and `ancestor_exe_paths`: one ancestor must satisfy both.
    fn ancestors_match(&self, subject: &Subject) -> bool {
        if self.ancestor_names.is_none() && self.ancestor_exe_paths.is_none() {
            return true;
        }
        subject.ancestors.iter().any(|ancestor| {
            self.ancestor_names
                .as_ref()
                .is_none_or(|names| names.iter().any(|name| ancestor.is_named(name)))
                && self.ancestor_exe_paths.as_ref().is_none_or(|patterns| {
                    ancestor
                        .exe_path
                        .as_deref()
                        .is_some_and(|exe| patterns.iter().any(|p| p.matches(exe)))
                })
        })
    }
}

/// `destinations = ["container-network"]`: the process runs in a container (it has a
/// container id) and the destination is on a container network rather than the wider
/// world:
/// - loopback (the container's own network namespace), or
/// - when the source address is known and private: a private destination in the same
///   /16 (IPv4; docker's bridge pools are /16 or smaller) or the same /48 (IPv6 ULA);
/// - when the source address is unknown (usual at connect time) or not private: any
///   RFC 1918 (10/8, 172.16/12, 192.168/16) or ULA (fc00::/7) destination.
///
/// Link-local addresses (169.254.0.0/16, fe80::/10) never count: that is where cloud
/// metadata services live, a favourite target of code running in a container.
pub fn in_container_network(subject: &Subject) -> bool {
    if subject.container_id.is_none() {
        return false;
    }
    let Some(destination) = subject.destination_ip.map(|ip| ip.to_canonical()) else {
        return false;
    };
    if destination.is_loopback() {
        return true;
    }
    match (subject.source_ip.map(|ip| ip.to_canonical()), destination) {
        (Some(IpAddr::V4(source)), IpAddr::V4(destination)) if source.is_private() => {
            destination.is_private() && source.octets()[..2] == destination.octets()[..2]
        }
        (Some(IpAddr::V6(source)), IpAddr::V6(destination)) if is_ula(&source) => {
            is_ula(&destination) && source.segments()[..3] == destination.segments()[..3]
        }
        (_, IpAddr::V4(destination)) => destination.is_private(),
        (_, IpAddr::V6(destination)) => is_ula(&destination),
    }
}

fn is_ula(ip: &std::net::Ipv6Addr) -> bool {
    ip.segments()[0] & 0xfe00 == 0xfc00
}

fn line_of(text: &str, offset: usize) -> u32 {
    let newlines = text
        .get(..offset)
        .map_or(0, |before| before.matches('\n').count());
    u32::try_from(newlines)
        .unwrap_or(u32::MAX)
        .saturating_add(1)
}

/// Parse and validate a rule file.
pub(crate) fn parse(text: &str, origin: &str) -> Result<Vec<Rule>, RuleError> {
    let file: RawFile = toml::from_str(text).map_err(|error| RuleError {
        line: error.span().map(|span| line_of(text, span.start)),
        ..RuleError::file(origin, error.message().trim_end().to_string())
    })?;
    match file.version {
        None | Some(VERSION) => {}
        Some(other) => {
            return Err(RuleError::file(
                origin,
                format!("unsupported version {other}; this iocmon reads version {VERSION}"),
            ))
        }
    }
    let mut rules: Vec<Rule> = Vec::with_capacity(file.rule.len());
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for (position, spanned) in file.rule.into_iter().enumerate() {
        let line = line_of(text, spanned.span().start);
        let table = spanned.into_inner();
        let index = u32::try_from(position)
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let name = table
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string);
        let error = |key: Option<&str>, reason: String| RuleError {
            origin: origin.to_string(),
            line: Some(line),
            rule_index: Some(index),
            rule_name: name.clone(),
            key: key.map(str::to_string),
            reason,
        };
        let raw = read_rule(table).map_err(|(key, reason)| error(key.as_deref(), reason))?;
        let rule = validate(raw, line).map_err(|(key, reason)| error(key, reason))?;
        if let Some(first) = seen.get(&rule.name) {
            return Err(error(
                Some("name"),
                format!("duplicate name; rule {first} already uses it"),
            ));
        }
        seen.insert(rule.name.clone(), index);
        rules.push(rule);
    }
    Ok(rules)
}

/// Deserialize a rule table key by key, so a type error names its key.
fn read_rule(table: Table) -> Result<RawRule, (Option<String>, String)> {
    for (key, value) in &table {
        if !RULE_KEYS.contains(&key.as_str()) {
            return Err((Some(key.clone()), "unknown key".to_string()));
        }
        let mut single = Table::new();
        single.insert(key.clone(), value.clone());
        Value::Table(single)
            .try_into::<RawRule>()
            .map_err(|error| (Some(key.clone()), error.message().trim_end().to_string()))?;
    }
    Value::Table(table)
        .try_into::<RawRule>()
        .map_err(|error| (None, error.message().trim_end().to_string()))
}

type Invalid = (Option<&'static str>, String);

fn invalid(key: &'static str, reason: impl Into<String>) -> Invalid {
    (Some(key), reason.into())
}

/// A list key: `None` when absent; an error when present and empty or holding "".
fn list<T>(key: &'static str, values: Option<Vec<T>>) -> Result<Option<Vec<T>>, Invalid> {
    match values {
        Some(values) if values.is_empty() => Err(invalid(
            key,
            "empty list; remove the key or give at least one value",
        )),
        other => Ok(other),
    }
}

fn strings(key: &'static str, values: Option<Vec<String>>) -> Result<Option<Vec<String>>, Invalid> {
    let values = list(key, values)?;
    if values.iter().flatten().any(String::is_empty) {
        return Err(invalid(key, "empty string in list"));
    }
    Ok(values)
}

fn paths(key: &'static str, values: Option<Vec<String>>) -> Result<Option<Vec<Pattern>>, Invalid> {
    strings(key, values)?
        .map(|values| {
            values
                .iter()
                .map(|value| {
                    if value.starts_with('/') {
                        Ok(Pattern::new(value, true))
                    } else {
                        Err(invalid(
                            key,
                            format!(
                                "{value:?} is not an absolute path or pattern (must start with /)"
                            ),
                        ))
                    }
                })
                .collect()
        })
        .transpose()
}

fn flag_list(
    key: &'static str,
    values: Option<Vec<String>>,
) -> Result<Option<Vec<String>>, Invalid> {
    let values = strings(key, values)?;
    for flag in values.iter().flatten() {
        if let Some(long) = flag.strip_prefix("--") {
            if long.is_empty() || long.contains('=') {
                return Err(invalid(
                    key,
                    format!("{flag:?} is not a flag; write \"--name\" without a value"),
                ));
            }
        } else if let Some(short) = flag.strip_prefix('-') {
            let mut letters = short.chars();
            match (letters.next(), letters.next()) {
                (Some(_), None) => {}
                (Some(_), Some(_)) => {
                    let split: Vec<String> = short.chars().map(|c| format!("\"-{c}\"")).collect();
                    return Err(invalid(
                        key,
                        format!(
                            "{flag:?} combines flags; write one flag per entry ({})",
                            split.join(", ")
                        ),
                    ));
                }
                (None, _) => return Err(invalid(key, "\"-\" is not a flag")),
            }
        } else {
            return Err(invalid(
                key,
                format!("{flag:?} is not a flag; write \"-x\" or \"--name\""),
            ));
        }
    }
    Ok(values)
}

fn validate(raw: RawRule, line: u32) -> Result<Rule, Invalid> {
    let name = match raw.name {
        None => return Err(invalid("name", "missing; every rule needs a unique name")),
        Some(name) if name.trim().is_empty() => return Err(invalid("name", "must not be empty")),
        Some(name) => name,
    };
    let Some(classes) = list("suppresses", raw.suppresses)? else {
        return Err(invalid(
            "suppresses",
            "missing; list the classes this rule may suppress (\"network-tool\", \"ioc\")",
        ));
    };
    let mut suppresses = Vec::with_capacity(classes.len());
    for class_name in &classes {
        match DetectionClass::from_name(class_name) {
            Some(DetectionClass::ReverseShell) => {
                return Err(invalid(
                    "suppresses",
                    "\"reverse-shell\" can never be suppressed",
                ))
            }
            Some(class) => {
                if !suppresses.contains(&class) {
                    suppresses.push(class);
                }
            }
            None => {
                return Err(invalid(
                    "suppresses",
                    format!(
                    "unknown detection class {class_name:?}; expected \"network-tool\" or \"ioc\""
                ),
                ))
            }
        }
    }
    let tools = list("tools", raw.tools)?
        .map(|tools| {
            tools
                .iter()
                .map(|tool| {
                    ToolFamily::from_name(tool).ok_or_else(|| {
                        let known: Vec<&str> = ToolFamily::ALL.iter().map(|t| t.name()).collect();
                        invalid(
                            "tools",
                            format!(
                                "unknown tool {tool:?}; expected one of {}",
                                known.join(", ")
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let args = strings("args", raw.args)?.map(|values| {
        values
            .iter()
            .map(|value| Pattern::new(value, false))
            .collect()
    });
    let container_ids = strings("container_ids", raw.container_ids)?;
    if let Some(short) = container_ids
        .iter()
        .flatten()
        .find(|id| id.chars().count() < MIN_CONTAINER_ID_PREFIX)
    {
        return Err(invalid(
            "container_ids",
            format!(
                "{short:?} is too short; give a full container id or a prefix of at least {MIN_CONTAINER_ID_PREFIX} characters"
            ),
        ));
    }
    let destinations = strings("destinations", raw.destinations)?
        .map(|values| {
            values
                .iter()
                .map(|value| {
                    if value == CONTAINER_NETWORK {
                        Ok(Destination::ContainerNetwork)
                    } else if let Ok(net) = value.parse::<IpNet>() {
                        Ok(Destination::Network(net.trunc()))
                    } else if let Ok(ip) = value.parse::<IpAddr>() {
                        Ok(Destination::Network(IpNet::from(ip.to_canonical())))
                    } else {
                        Err(invalid(
                            "destinations",
                            format!(
                                "{value:?} is not a CIDR network, an IP address or \"{CONTAINER_NETWORK}\""
                            ),
                        ))
                    }
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let rule = Rule {
        name,
        description: raw.description,
        line,
        suppresses,
        process_names: strings("process_names", raw.process_names)?,
        tools,
        exe_paths: paths("exe_paths", raw.exe_paths)?,
        flags: flag_list("flags", raw.flags)?,
        unless_flags: flag_list("unless_flags", raw.unless_flags)?,
        args,
        arg_substrings: strings("arg_substrings", raw.arg_substrings)?,
        ancestor_names: strings("ancestor_names", raw.ancestor_names)?,
        ancestor_exe_paths: paths("ancestor_exe_paths", raw.ancestor_exe_paths)?,
        under_cron: raw.under_cron,
        users: strings("users", raw.users)?,
        uids: list("uids", raw.uids)?,
        in_container: raw.in_container,
        container_ids,
        destinations,
        destination_ports: list("destination_ports", raw.destination_ports)?,
    };
    if !rule.has_conditions() {
        return Err((
            None,
            "no match conditions: the rule would suppress every connection".to_string(),
        ));
    }
    Ok(rule)
}

impl Rule {
    /// Whether the rule narrows anything (`unless_flags` alone does not count: a rule
    /// that only says what must be absent still matches nearly everything).
    fn has_conditions(&self) -> bool {
        self.process_names.is_some()
            || self.tools.is_some()
            || self.exe_paths.is_some()
            || self.flags.is_some()
            || self.args.is_some()
            || self.arg_substrings.is_some()
            || self.ancestor_names.is_some()
            || self.ancestor_exe_paths.is_some()
            || self.under_cron.is_some()
            || self.users.is_some()
            || self.uids.is_some()
            || self.in_container.is_some()
            || self.container_ids.is_some()
            || self.destinations.is_some()
            || self.destination_ports.is_some()
    }
}
