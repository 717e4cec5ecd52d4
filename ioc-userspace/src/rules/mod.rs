//! Detection classes and exclusion rules: which classes a connection by a process falls
//! in, and whether an exclusion rule suppresses it.
//!
//! Pure code: a [`Subject`] (the process and the connection, as plain data) goes in, a
//! [`Verdict`] comes out. The rule file format and the default rules are documented in
//! `docs/RULES.md`; the defaults are embedded from `default-rules.toml`.
//!
//! Suppression policy, enforced here whatever a rule file says:
//! - `reverse-shell` is never suppressed; a rule naming it does not load, and a
//!   connection with that class bypasses every rule.
//! - `ioc` is only suppressed by a rule that names `"ioc"` in `suppresses`; the default
//!   rules never do.

pub mod args;
mod config;
pub mod pattern;
pub mod replay;

use std::{
    net::IpAddr,
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
};

pub use args::{ParsedArgs, Tool, ToolFamily};
pub use config::{Rule, RuleError};
pub use replay::{replay, ReplayReport};

/// The embedded default rule file.
pub const DEFAULT_RULES: &str = include_str!("default-rules.toml");
/// The origin name used in errors about the embedded default rules.
pub const DEFAULT_RULES_ORIGIN: &str = "<default-rules.toml>";

/// Why a connection is worth reporting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DetectionClass {
    /// The destination matches an indicator.
    Ioc,
    /// A watched network utility made the connection.
    NetworkTool,
    /// A watched tool was told to run a program on the connection (`nc -e`).
    ReverseShell,
}

impl DetectionClass {
    pub const ALL: [DetectionClass; 3] = [Self::Ioc, Self::NetworkTool, Self::ReverseShell];

    pub fn name(self) -> &'static str {
        match self {
            Self::Ioc => "ioc",
            Self::NetworkTool => "network-tool",
            Self::ReverseShell => "reverse-shell",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|class| class.name() == name)
    }

    /// Whether any rule may suppress this class.
    pub fn suppressible(self) -> bool {
        self != Self::ReverseShell
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Other,
}

/// One ancestor of the process, from the parent upward.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ancestor {
    /// Its comm (for a script, the script's name).
    pub name: String,
    /// Its executable path, when known.
    pub exe_path: Option<String>,
}

impl Ancestor {
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            exe_path: None,
        }
    }

    /// Whether `name` is this ancestor's comm or its executable's file name.
    pub fn is_named(&self, name: &str) -> bool {
        self.name == name || self.exe_path.as_deref().map(args::basename) == Some(name)
    }
}

/// Ancestor names that mean "started by a cron daemon". A systemd timer's service is a
/// child of PID 1 and cannot be told apart by ancestry; a caller that knows a process
/// came from a timer may add an ancestor named `systemd-timer` to say so.
pub const CRON_ANCESTORS: &[&str] = &["cron", "crond", "anacron", "fcron", "systemd-timer"];

/// A connection and the process that made it: everything a rule can look at.
///
/// Every string in it may be attacker-controlled; nothing here trusts it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    /// The kernel's comm (at most 15 bytes; the name the program was executed as).
    pub comm: String,
    /// Executable path, when known.
    pub exe_path: Option<String>,
    /// The full argument vector, argv[0] included (may be empty if capture failed).
    pub argv: Vec<String>,
    /// Parent first, then grandparent, and so on.
    pub ancestors: Vec<Ancestor>,
    pub user: Option<String>,
    pub uid: Option<u32>,
    pub container_id: Option<String>,
    /// Local address of the connection, when known (often not at connect time).
    pub source_ip: Option<IpAddr>,
    pub destination_ip: Option<IpAddr>,
    pub destination_port: u16,
    pub protocol: Protocol,
    /// Whether the destination matched an indicator.
    pub indicator_hit: bool,
}

impl Subject {
    /// The executable's file name, or the comm when the executable is unknown.
    pub fn file_name(&self) -> &str {
        self.exe_path
            .as_deref()
            .map(args::basename)
            .filter(|name| !name.is_empty())
            .unwrap_or(&self.comm)
    }

    /// Whether a cron daemon (see [`CRON_ANCESTORS`]) is among the ancestors.
    pub fn under_cron(&self) -> bool {
        self.ancestors
            .iter()
            .any(|ancestor| CRON_ANCESTORS.iter().any(|cron| ancestor.is_named(cron)))
    }

    /// The watched tool this process is, if any.
    pub fn tool(&self) -> Option<Tool> {
        args::identify(&self.comm, self.exe_path.as_deref(), &self.argv)
    }
}

/// What the process and its arguments look like, computed once per evaluation.
#[derive(Clone, Debug)]
pub struct Analysis {
    pub tool: Option<Tool>,
    pub args: ParsedArgs,
    pub reverse_shell: Option<args::ReverseShell>,
}

impl Analysis {
    pub fn of(subject: &Subject) -> Self {
        let tool = subject.tool();
        let (dialect, start) = tool.as_ref().map_or((args::Dialect::Generic, 1), |tool| {
            (tool.dialect, tool.args_start)
        });
        let parsed = args::parse(dialect, subject.argv.get(start..).unwrap_or_default());
        let reverse_shell = tool
            .as_ref()
            .and_then(|tool| args::reverse_shell(tool, &parsed));
        Self {
            tool,
            args: parsed,
            reverse_shell,
        }
    }

    /// The detection classes, in [`DetectionClass`] order.
    pub fn classes(&self, subject: &Subject) -> Vec<DetectionClass> {
        let mut classes = Vec::with_capacity(3);
        if subject.indicator_hit {
            classes.push(DetectionClass::Ioc);
        }
        if self.tool.is_some() {
            classes.push(DetectionClass::NetworkTool);
        }
        if self.reverse_shell.is_some() {
            classes.push(DetectionClass::ReverseShell);
        }
        classes
    }
}

/// The detection classes of a subject, without any rule applied.
pub fn detect(subject: &Subject) -> Vec<DetectionClass> {
    Analysis::of(subject).classes(subject)
}

/// One class removed from a verdict, and the rule that removed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppression {
    pub class: DetectionClass,
    pub rule: String,
}

/// The outcome of [`RuleSet::evaluate`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Every class the connection falls in.
    pub classes: Vec<DetectionClass>,
    /// The classes left after suppression; the connection is reported when non-empty.
    pub reported_classes: Vec<DetectionClass>,
    /// The first rule that suppressed a class, if any.
    pub suppressed_by: Option<String>,
    /// Every suppressed class with its rule (a class is credited to the first rule,
    /// in file order, that matches and lists it).
    pub suppressions: Vec<Suppression>,
    /// What made it a reverse shell (`-e`, `EXEC:/bin/sh`), for the record.
    pub reverse_shell_evidence: Option<String>,
}

impl Verdict {
    /// Whether anything is left to report.
    pub fn is_reported(&self) -> bool {
        !self.reported_classes.is_empty()
    }

    /// Whether the connection was detected and then entirely suppressed.
    pub fn is_excluded(&self) -> bool {
        !self.classes.is_empty() && self.reported_classes.is_empty()
    }
}

/// How many events a rule excluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleCount {
    pub rule: String,
    pub excluded: u64,
}

/// A validated set of exclusion rules, with a suppression counter per rule.
///
/// `evaluate` takes `&self` (the counters are atomic), so one set can be shared between
/// tasks behind an `Arc` and swapped whole on reload.
#[derive(Debug)]
pub struct RuleSet {
    origin: String,
    rules: Vec<Rule>,
    excluded: Vec<AtomicU64>,
}

impl RuleSet {
    /// No rules: every detection is reported.
    pub fn empty() -> Self {
        Self::from_rules("<none>", Vec::new())
    }

    /// The embedded default rules.
    pub fn builtin() -> Result<Self, RuleError> {
        Self::from_toml(DEFAULT_RULES, DEFAULT_RULES_ORIGIN)
    }

    /// Parse and validate rule file text; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, RuleError> {
        config::parse(text, origin).map(|rules| Self::from_rules(origin, rules))
    }

    /// Read, parse and validate a rule file.
    pub fn load(path: &Path) -> Result<Self, RuleError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|error| RuleError::file(&origin, format!("cannot read: {error}")))?;
        Self::from_toml(&text, &origin)
    }

    fn from_rules(origin: &str, rules: Vec<Rule>) -> Self {
        let excluded = rules.iter().map(|_| AtomicU64::new(0)).collect();
        Self {
            origin: origin.to_string(),
            rules,
            excluded,
        }
    }

    /// Where the rules came from (a path or `<default-rules.toml>`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Judge one connection, and count it against the rules that excluded it.
    pub fn evaluate(&self, subject: &Subject) -> Verdict {
        let verdict = self.judge(subject);
        if verdict.is_excluded() {
            self.count(&verdict);
        }
        verdict
    }

    /// Like [`evaluate`](Self::evaluate) without touching the counters.
    pub fn judge(&self, subject: &Subject) -> Verdict {
        let analysis = Analysis::of(subject);
        let classes = analysis.classes(subject);
        let mut verdict = Verdict {
            reported_classes: classes.clone(),
            classes,
            reverse_shell_evidence: analysis.reverse_shell.as_ref().map(|r| r.evidence.clone()),
            ..Verdict::default()
        };
        // A reverse shell is reported whole: no rule gets a say.
        if verdict.classes.is_empty() || verdict.classes.contains(&DetectionClass::ReverseShell) {
            return verdict;
        }
        for rule in &self.rules {
            if verdict.reported_classes.is_empty() {
                break;
            }
            let removable: Vec<DetectionClass> = verdict
                .reported_classes
                .iter()
                .copied()
                .filter(|class| class.suppressible() && rule.suppresses(*class))
                .collect();
            if removable.is_empty() || !rule.matches(subject, &analysis) {
                continue;
            }
            verdict
                .reported_classes
                .retain(|class| !removable.contains(class));
            verdict
                .suppressed_by
                .get_or_insert_with(|| rule.name.clone());
            verdict
                .suppressions
                .extend(removable.into_iter().map(|class| Suppression {
                    class,
                    rule: rule.name.clone(),
                }));
        }
        verdict
    }

    fn count(&self, verdict: &Verdict) {
        for (index, rule) in self.rules.iter().enumerate() {
            if verdict.suppressions.iter().any(|s| s.rule == rule.name) {
                if let Some(counter) = self.excluded.get(index) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Events excluded by each rule since load, in file order (for the health record).
    pub fn suppression_counts(&self) -> Vec<RuleCount> {
        self.rules
            .iter()
            .zip(&self.excluded)
            .map(|(rule, counter)| RuleCount {
                rule: rule.name.clone(),
                excluded: counter.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// After a reload, carry over the counts of rules that keep their name.
    pub fn adopt_counts(&self, previous: &RuleSet) {
        let old_counts = previous.suppression_counts();
        for (rule, counter) in self.rules.iter().zip(&self.excluded) {
            if let Some(old) = old_counts.iter().find(|count| count.rule == rule.name) {
                counter.store(old.excluded, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests;
