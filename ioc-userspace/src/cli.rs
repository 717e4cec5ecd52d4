//! Command line: parsing, logging set-up, and dispatch to the commands.

use std::{ffi::OsString, io::Write as _, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::{
    agent::PinOptions,
    agent::{self, RunOptions},
    config::ConfigSource,
    detect::DEFAULT_WATCHED_COMMS,
    enforce::{BlockScope, Enforcement, Mode, Protocol},
    ioc::{feed::FeedConfig, load_sources, Filter, Format, IdAllocator, IocSet},
    kernel::MatchOptions,
};

#[derive(Debug, Parser)]
#[command(
    name = "iocmon",
    version,
    about = "eBPF threat-intel connection monitor: reports (and can refuse) outbound \
             connections to known-malicious endpoints",
    long_about = "iocmon hooks every outbound connect and UDP send on the cgroup v2 root, \
                  checks the destination against indicator maps in the kernel, and writes \
                  Defender-style records (DeviceNetworkEvents JSON lines) for hits, for \
                  watched network tools, and, on request, for every connection. In block \
                  mode the kernel refuses connections to indicators (EPERM).\n\n\
                  Needs root to start (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN) \
                  and Linux >= 5.8 with BTF; once attached it keeps only CAP_BPF and \
                  CAP_SYS_PTRACE. Service mode (run --pin) keeps every program attached \
                  between agents from Linux 5.15 (before: all but the process tracepoints). \
                  `iocmon probe` says what this kernel offers."
)]
pub struct Cli {
    /// Log level for messages on stderr: error, warn, info, debug, trace.
    #[arg(long, global = true, default_value = "info", value_name = "LEVEL")]
    pub log_level: log::LevelFilter,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load indicators, attach to the cgroup v2 root and write records to stdout until
    /// SIGINT or SIGTERM. Settings come from /etc/iocmon/iocmon.toml when it exists (see
    /// --config); options on the command line win over the file.
    Run(Box<RunCommand>),
    /// Work with the configuration file of `iocmon run`.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Work with indicator files without touching the kernel.
    #[command(subcommand)]
    Iocs(IocsCommand),
    /// Show what the pinned programs of service mode (`run --pin`) are doing: counters,
    /// map fill, drops, mode, and the agent's last reload. Works while the agent is down.
    /// Exit status 0 when a pinned generation is attached, 1 when nothing is pinned.
    Status {
        /// Pin directory of the agent.
        #[arg(long, default_value = DEFAULT_PIN_DIR, value_name = "DIR")]
        pin_dir: PathBuf,
        /// The agent's status file.
        #[arg(long, default_value = DEFAULT_STATUS_FILE, value_name = "FILE")]
        status_file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Detach and remove every program, link and map service mode pinned (stop the agent
    /// first). Nothing of iocmon stays in the kernel afterwards.
    Unpin {
        /// Pin directory of the agent.
        #[arg(long, default_value = DEFAULT_PIN_DIR, value_name = "DIR")]
        pin_dir: PathBuf,
    },
    /// Run recorded DeviceNetworkEvents JSON lines (iocmon's own output, e.g. captured with
    /// --show-excluded --all-connections) through exclusion rules and report what each
    /// rule would suppress: measure false positives before deploying a rule file.
    Replay {
        /// JSON lines file; `-` reads standard input.
        #[arg(value_name = "FILE.jsonl")]
        file: PathBuf,
        /// Rules to judge with [default: the embedded default rules].
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        /// Print the report as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check what this kernel and process offer and whether `iocmon run` can work here;
    /// changes nothing. Exit 0: can run; 2: can run with limits (something reduced or
    /// unchecked); 1: cannot run.
    Probe {
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration file merged with the defaults and print every setting
    /// of `iocmon run` with where it comes from; exit 1 on any error. Touches no kernel.
    Check {
        /// The file to check [default: /etc/iocmon/iocmon.toml].
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// `iocmon run`: where its settings file is, and the settings themselves.
#[derive(Debug, Args)]
pub struct RunCommand {
    #[command(flatten)]
    pub config_file: ConfigFileArgs,

    #[command(flatten)]
    pub options: RunArgs,
}

/// Which configuration file `iocmon run` reads. Only on the command line: these two are
/// the only options that a configuration file cannot set.
#[derive(Debug, Args)]
pub struct ConfigFileArgs {
    /// Read settings from this TOML file [default: /etc/iocmon/iocmon.toml, when it
    /// exists]. Keys are the long options without `--`: `feed-interval = 60`,
    /// `iocs = ["/a", "/b"]`, `all-connections = true`, `log-level = "debug"`. An option
    /// given on the command line replaces the file's value (a list too). A missing FILE
    /// is an error.
    #[arg(long, value_name = "FILE", conflicts_with = "no_config")]
    pub config: Option<PathBuf>,

    /// Do not read /etc/iocmon/iocmon.toml: only the command line and the defaults apply.
    #[arg(long)]
    pub no_config: bool,
}

#[derive(Debug, Subcommand)]
pub enum IocsCommand {
    /// Parse and validate indicator files; print a summary; exit 1 on any invalid entry.
    Check {
        /// Indicator files, in any supported format (see `iocmon run --help`).
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        indicators: IndicatorArgs,
    },
}

/// How indicator files are read and which indicators are used.
#[derive(Debug, Args)]
pub struct IndicatorArgs {
    /// Indicator file format: auto (detect per file), threatfox-json, threatfox-api,
    /// threatfox-csv, advisory, plain, hosts, stix, misp.
    #[arg(long, default_value = "auto", value_name = "FORMAT")]
    pub format: Format,

    /// Drop indicators whose confidence is below N (0-100). Indicators without a
    /// confidence (plain lists) are kept.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub min_confidence: Option<u8>,

    /// Keep only this threat type (repeatable), e.g. botnet_cc, payload_delivery.
    #[arg(long = "threat-type", value_name = "TYPE")]
    pub threat_types: Vec<String>,

    /// Keep only this malware family (repeatable), by id (elf.mirai) or name (Mirai).
    #[arg(long = "malware", value_name = "FAMILY")]
    pub malware: Vec<String>,

    /// Drop indicators last (else first) seen more than N days ago. Indicators without
    /// dates are kept.
    #[arg(long, value_name = "DAYS")]
    pub max_age_days: Option<u32>,
}

impl IndicatorArgs {
    pub fn filter(&self) -> Filter {
        Filter {
            min_confidence: self.min_confidence,
            threat_types: self.threat_types.clone(),
            malware: self.malware.clone(),
            max_age_days: self.max_age_days,
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Indicator file to load (repeatable): ThreatFox JSON/CSV exports and API answers,
    /// advisory markdown tables and KQL lists, STIX 2.1 bundles, MISP attributes, hosts
    /// files, or plain lists (one ip, ip:port, [v6]:port, CIDR, domain or URL per line;
    /// defanged forms like 1.2.3[.]4 are refanged). Any invalid entry refuses the file,
    /// naming file, line (or JSON path) and value; at start that stops the agent, at a
    /// reload the running set is kept.
    #[arg(long = "iocs", value_name = "PATH")]
    pub iocs: Vec<PathBuf>,

    #[command(flatten)]
    pub indicators: IndicatorArgs,

    /// Remote indicator feed (repeatable), http:// or https://, in any supported format
    /// (detected from the content). Fetched at start when no cached copy exists, then
    /// every --feed-interval with conditional requests; a bad or failed fetch keeps the
    /// last good copy.
    #[arg(long = "feed", value_name = "URL", value_parser = parse_feed_url)]
    pub feeds: Vec<String>,

    /// Seconds between feed refreshes.
    #[arg(long, default_value_t = 3600, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub feed_interval: u64,

    /// Seconds a feed fetch may take in all (connect, request, body).
    #[arg(long, default_value_t = 30, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub feed_timeout: u64,

    /// Largest feed body accepted, in bytes.
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    pub feed_max_bytes: u64,

    /// Where the last good copy of each feed is kept.
    #[arg(long, default_value = "/var/lib/iocmon/feeds", value_name = "DIR")]
    pub feed_cache: PathBuf,

    /// Seconds between checks of the indicator files for changes (0: only on SIGHUP).
    /// SIGHUP always reloads indicators and rules.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub reload_interval: u64,

    /// Exclusion rules (TOML; see docs/RULES.md) [default: the embedded default rules,
    /// which never suppress indicator hits or reverse shells].
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,

    /// Report every outbound connection, not only indicator hits and watched tools.
    #[arg(long)]
    pub all_connections: bool,

    /// Also write events that exclusion rules suppressed, with `ExcludedBy` naming the
    /// rule, to tune the rules.
    #[arg(long)]
    pub show_excluded: bool,

    /// Write a DnsEvents row for every answered DNS query, not only for names that
    /// match a domain indicator.
    #[arg(long)]
    pub all_dns: bool,

    /// After each reported TCP connect, write a second record when its outcome is known:
    /// ActionType ConnectionSuccess (with the local address and port) or ConnectionFailed.
    #[arg(long)]
    pub connection_outcomes: bool,

    /// Longest time (seconds) an address that a domain indicator resolved to stays an
    /// indicator; the answer's TTL applies when shorter.
    #[arg(long, default_value_t = 3600, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub resolved_ttl_max: u64,

    /// Match ip:port indicators on their exact port only. By default they also match
    /// their address on any port, reported with MatchKind "endpoint-address".
    #[arg(long)]
    pub strict_ports: bool,

    /// Also watch this process name (repeatable): its connections are always reported.
    #[arg(long = "watch", value_name = "NAME")]
    pub watch: Vec<String>,

    /// Do not watch the default network tools (nc, ncat, netcat, busybox, socat, telnet,
    /// wget, curl, tftp).
    #[arg(long)]
    pub no_default_watch: bool,

    /// cgroup v2 directory to attach to [default: the mounted cgroup v2 root, found in
    /// /proc/self/mountinfo; one is mounted under /run/iocmon when there is none].
    #[arg(long, value_name = "DIR")]
    pub cgroup: Option<PathBuf>,

    /// DeviceName in records [default: the host name, lower-case].
    #[arg(long, value_name = "NAME")]
    pub device_name: Option<String>,

    /// Records queued per output before new ones are dropped (and counted).
    #[arg(long, default_value_t = 8192, value_name = "N")]
    pub queue_size: usize,

    /// Kernel ring buffer size in bytes (a power of two, at least 4096). Exec events
    /// take 4.4 KiB each, connection events 112 bytes.
    #[arg(long, default_value_t = 1024 * 1024, value_parser = parse_ringbuf_size, value_name = "BYTES")]
    pub ringbuf_size: u32,

    /// Seconds between checks of the drop counters (a warning when any grew).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..), value_name = "SECS")]
    pub stats_interval: u64,

    /// Where records go (repeatable; every record goes to every output) [default: stdout].
    /// `stdout`, `file:DIR` (one file per table, rotated), `syslog+udp://HOST:PORT`,
    /// `syslog+tcp://HOST:PORT` (spools to disk while the forwarder is down),
    /// `syslog+unix:///PATH`; options after `?`, joined by `&`: format=json|cef,
    /// rfc=3164|5424, framing=lf|octet, facility=NAME, max-bytes=SIZE, keep=N, spool=DIR,
    /// spool-bytes=SIZE, queue=N. Example:
    /// `syslog+tcp://127.0.0.1:514?format=cef&framing=octet`. See docs/SENTINEL.md.
    #[arg(long = "output", value_name = "OUTPUT", value_parser = parse_output)]
    pub outputs: Vec<crate::sink::SinkSpec>,

    /// Seconds between health records (Table "IocmonHealth"); 0: only the one at exit.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub health_interval: u64,

    /// monitor: record connections to indicators. block: the kernel also refuses them
    /// (connect/sendto fail with EPERM) within the --block-* scope; records carry
    /// Verdict "blocked". Weak `endpoint-address` matches are never refused. Switching
    /// at a reload (SIGHUP with a config file) takes effect at once.
    #[arg(long, value_enum, default_value_t = Mode::Monitor, value_name = "MODE")]
    pub mode: Mode,

    /// Block mode refuses only indicators of this threat type (repeatable), e.g.
    /// botnet_cc [default: every threat type].
    #[arg(long = "block-threat-type", value_name = "TYPE")]
    pub block_threat_types: Vec<String>,

    /// Block mode refuses only indicators with at least this confidence (0-100).
    /// Indicators without a confidence (plain lists) are refused.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub block_min_confidence: Option<u8>,

    /// Block mode refuses only this protocol (repeatable): tcp, udp [default: both].
    #[arg(long = "block-protocol", value_enum, value_name = "PROTO")]
    pub block_protocols: Vec<Protocol>,

    /// Service mode: pin the programs, links and maps under --pin-dir, so recording and
    /// blocking go on while the agent is stopped, restarted or upgraded. A later agent
    /// adopts them (an agent of another version replaces them without a gap) and first
    /// reads the events recorded meanwhile. `iocmon unpin` removes them.
    #[arg(long)]
    pub pin: bool,

    /// bpffs directory for --pin, `iocmon status` and `iocmon unpin`.
    #[arg(long, default_value = DEFAULT_PIN_DIR, value_name = "DIR")]
    pub pin_dir: PathBuf,

    /// With --pin: where the agent keeps its status (last reload, drops) for
    /// `iocmon status`.
    #[arg(long, default_value = DEFAULT_STATUS_FILE, value_name = "FILE")]
    pub status_file: PathBuf,
}

/// Where service mode pins its kernel objects.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/iocmon";
/// Where service mode writes the agent's status.
pub const DEFAULT_STATUS_FILE: &str = "/run/iocmon/status.json";

fn parse_output(text: &str) -> Result<crate::sink::SinkSpec, String> {
    text.parse()
        .map_err(|err: anyhow::Error| format!("{err:#}"))
}

fn parse_feed_url(text: &str) -> Result<String, String> {
    let https = text.starts_with("https://");
    if !https && !text.starts_with("http://") {
        return Err("a feed URL starts with http:// or https://".into());
    }
    if https && !cfg!(feature = "https") {
        return Err("this build has no TLS support (feature `https`)".into());
    }
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("a feed URL has no spaces or control characters".into());
    }
    Ok(text.to_string())
}

fn parse_ringbuf_size(text: &str) -> Result<u32, String> {
    let size: u32 = text.parse().map_err(|_| format!("not a size: {text}"))?;
    if size < 4096 || !size.is_power_of_two() {
        return Err(format!("{size} is not a power of two >= 4096"));
    }
    Ok(size)
}

impl RunArgs {
    pub fn into_options(self) -> RunOptions {
        let mut watched: Vec<String> = if self.no_default_watch {
            Vec::new()
        } else {
            DEFAULT_WATCHED_COMMS
                .iter()
                .map(|s| s.to_string())
                .collect()
        };
        for name in self.watch {
            if !watched.contains(&name) {
                watched.push(name);
            }
        }
        RunOptions {
            ioc_files: self.iocs,
            ioc_format: self.indicators.format,
            feeds: self
                .feeds
                .iter()
                .map(|url| FeedConfig {
                    url: url.clone(),
                    format: Format::Auto,
                    interval: Duration::from_secs(self.feed_interval),
                    timeout: Duration::from_secs(self.feed_timeout),
                    max_bytes: self.feed_max_bytes,
                    cache_dir: self.feed_cache.clone(),
                })
                .collect(),
            filter: self.indicators.filter(),
            reload_interval: (self.reload_interval > 0)
                .then(|| Duration::from_secs(self.reload_interval)),
            rules_file: self.rules,
            all_connections: self.all_connections,
            show_excluded: self.show_excluded,
            all_dns: self.all_dns,
            connection_outcomes: self.connection_outcomes,
            resolved_ttl_max: Duration::from_secs(self.resolved_ttl_max),
            match_options: MatchOptions {
                endpoint_address_match: !self.strict_ports,
                enforcement: Enforcement {
                    mode: self.mode,
                    scope: BlockScope {
                        threat_types: self.block_threat_types,
                        min_confidence: self.block_min_confidence,
                        protocols: self.block_protocols,
                    },
                },
            },
            pin: self.pin.then_some(PinOptions {
                dir: self.pin_dir,
                status_file: self.status_file,
            }),
            cgroup: self.cgroup,
            device_name: self.device_name,
            watched_comms: watched,
            queue_capacity: self.queue_size.max(1),
            ringbuf_bytes: self.ringbuf_size,
            stats_interval: Duration::from_secs(self.stats_interval),
            outputs: self.outputs,
            health_interval: (self.health_interval > 0)
                .then(|| Duration::from_secs(self.health_interval)),
        }
    }
}

/// Parses `args` (the whole command line, program name first), runs the command, and
/// reports an error on stderr.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let cli = Cli::parse_from(&args);
    init_logging(cli.log_level);
    match dispatch(cli, args) {
        Ok(code) => code,
        Err(err) => {
            log::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr from now on, at `level` until [`set_log_level`] changes it.
pub fn init_logging(level: log::LevelFilter) {
    // The logger itself passes everything; `log`'s global maximum is the one filter, so
    // the level can change later (from the configuration file, or at a reload).
    env_logger::Builder::new()
        .filter_level(log::LevelFilter::Trace)
        .format(|buf, record| {
            writeln!(
                buf,
                "iocmon: {}: {}",
                record.level().as_str().to_ascii_lowercase(),
                record.args()
            )
        })
        .init();
    set_log_level(level);
}

/// Changes which messages [`init_logging`]'s logger writes.
pub fn set_log_level(level: log::LevelFilter) {
    log::set_max_level(level);
}

/// Runs the parsed command. `args` is the command line `cli` came from: `run` re-reads it
/// with the configuration file.
pub fn dispatch(cli: Cli, args: Vec<OsString>) -> Result<ExitCode> {
    match cli.command {
        Command::Run(_) => {
            let source = ConfigSource::new(args);
            let config = source.load()?;
            set_log_level(config.log_level);
            log::info!("{}", config.file);
            let reconfigure: agent::Reconfigure = Box::new(move || {
                let config = source.load()?;
                set_log_level(config.log_level);
                Ok(config.options)
            });
            agent::run(config.options, Some(reconfigure))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Check { config }) => check_config(&args, config),
        Command::Replay { file, rules, json } => replay(&file, rules.as_deref(), json),
        Command::Status {
            pin_dir,
            status_file,
            json,
        } => status(&pin_dir, &status_file, json),
        Command::Unpin { pin_dir } => {
            let report = crate::kernel::pin::unpin_all(&pin_dir)?;
            if report.objects == 0 {
                println!("nothing pinned under {}", pin_dir.display());
            } else {
                println!(
                    "removed {} pinned objects in {} generation(s) and {}",
                    report.objects,
                    report.generations,
                    pin_dir.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Probe { json } => Ok(crate::probe::run(json)),
        Command::Iocs(IocsCommand::Check { paths, indicators }) => {
            Ok(check_iocs(&paths, &indicators))
        }
    }
}

fn status(
    pin_dir: &std::path::Path,
    status_file: &std::path::Path,
    json: bool,
) -> Result<ExitCode> {
    let Some(generation) = crate::kernel::pin::newest_generation(pin_dir)? else {
        println!(
            "nothing pinned under {}: the agent is not running in service mode (run --pin)",
            pin_dir.display()
        );
        return Ok(ExitCode::FAILURE);
    };
    let kernel = crate::kernel::Kernel::pinned_status(&generation.path)?;
    let name = generation
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let report = crate::status::StatusReport::new(pin_dir, &name, &kernel, status_file);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render_text());
    }
    Ok(ExitCode::SUCCESS)
}

fn replay(file: &std::path::Path, rules: Option<&std::path::Path>, json: bool) -> Result<ExitCode> {
    use anyhow::Context as _;
    let rules = match rules {
        Some(path) => crate::rules::RuleSet::load(path)?,
        None => crate::rules::RuleSet::builtin()?,
    };
    let text = if file == std::path::Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("reading standard input")?;
        text
    } else {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let report = crate::rules::replay(&rules, text.lines());
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render_text());
    }
    Ok(ExitCode::SUCCESS)
}

/// `iocmon config check`: loads the settings exactly as `iocmon run` would (a
/// `--log-level` given here counts as the command line's) and prints them.
fn check_config(args: &[OsString], config: Option<PathBuf>) -> Result<ExitCode> {
    let loaded = ConfigSource::for_config_check(args, config.as_deref())?.load()?;
    match loaded.file.path() {
        Some(path) => println!("# {}: valid", path.display()),
        None => println!("# {}: defaults apply", loaded.file),
    }
    print!("{}", loaded.settings_text());
    Ok(ExitCode::SUCCESS)
}

fn check_iocs(paths: &[PathBuf], args: &IndicatorArgs) -> ExitCode {
    match load_sources(paths, args.format, &args.filter()) {
        Ok((parsed, report)) => {
            let set = IocSet::build(parsed, &mut IdAllocator::default());
            let summary = set.summary();
            println!(
                "{} indicators from {} file(s) ({} read, {} filtered out, {} duplicates)",
                set.len(),
                report.files,
                report.read,
                report.filtered_out,
                report.read - report.filtered_out - set.len()
            );
            println!("  types:        {}", summary.types_text());
            println!("  threat types: {}", summary.threat_types_text());
            println!("  malware:      {}", summary.malware_text());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("iocmon: error: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn ringbuf_size_must_be_power_of_two() {
        assert!(parse_ringbuf_size("4096").is_ok());
        assert!(parse_ringbuf_size("5000").is_err());
        assert!(parse_ringbuf_size("1024").is_err());
        assert!(parse_ringbuf_size("big").is_err());
    }

    #[test]
    fn watch_list_merges_defaults_and_extras() {
        let cli = Cli::parse_from(["iocmon", "run", "--watch", "python3", "--watch", "nc"]);
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        let options = run.options.into_options();
        assert!(options.watched_comms.contains(&"python3".to_string()));
        assert_eq!(
            options.watched_comms.iter().filter(|n| *n == "nc").count(),
            1
        );
    }
}
