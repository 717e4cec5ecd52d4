//! `--output` values. Repeatable; every record goes to every output.
//!
//! ```text
//! stdout[?format=json|cef]
//! file:DIR[?format=json|cef&max-bytes=SIZE&keep=N]
//! syslog+udp://HOST:PORT[?OPTIONS]
//! syslog+tcp://HOST:PORT[?OPTIONS&spool=DIR&spool-bytes=SIZE]
//! syslog+unix:///PATH[?OPTIONS]
//!
//! OPTIONS: format=cef|json (default cef), rfc=3164|5424 (default 3164),
//!          framing=lf|octet (streams; default lf), facility=local4 (name or 0-23),
//!          queue=N (records; default --queue-size)
//! SIZE: bytes, or with a K, M or G suffix (powers of 1024)
//! ```
//!
//! Defaults: `stdout` writes JSON; files rotate at 10M and keep 5; a TCP syslog sink
//! spools up to 64M in /var/spool/iocmon (`spool-bytes=0` turns the spool off).

use std::{
    net::{SocketAddr, ToSocketAddrs},
    path::PathBuf,
    sync::Arc,
};

use anyhow::{anyhow, bail, Context as _, Result};

use super::{
    file::FileOutput,
    queued::{LineOutput, SinkCounters},
    syslog::{Framing, Header, Rfc, TcpOutput, UdpOutput, UnixOutput},
    Format, QueuedSink, Spool,
};

pub const DEFAULT_SPOOL_DIR: &str = "/var/spool/iocmon";
const DEFAULT_SPOOL_BYTES: u64 = 64 << 20;
const DEFAULT_FILE_BYTES: u64 = 10 << 20;
const DEFAULT_KEEP: u32 = 5;
/// local4, as Microsoft's CEF examples use.
const DEFAULT_FACILITY: u8 = 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp(String),
    Tcp(String),
    Unix(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Stdout,
    File {
        dir: PathBuf,
        max_bytes: u64,
        keep: u32,
    },
    Syslog {
        transport: Transport,
        rfc3164: bool,
        octet_framing: bool,
        facility: u8,
        /// Spool directory and bound (TCP only; `None` when turned off).
        spool: Option<(PathBuf, u64)>,
    },
}

/// One parsed `--output` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkSpec {
    /// The value without its options, for logs and health records.
    pub name: String,
    pub kind: Kind,
    pub format: Format,
    pub queue: Option<usize>,
}

fn parse_size(text: &str) -> Result<u64> {
    let (digits, shift) = match text.as_bytes().last() {
        Some(b'K' | b'k') => (&text[..text.len() - 1], 10),
        Some(b'M' | b'm') => (&text[..text.len() - 1], 20),
        Some(b'G' | b'g') => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| anyhow!("not a size: {text:?}"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| anyhow!("size too large: {text:?}"))
}

fn parse_facility(text: &str) -> Result<u8> {
    const NAMES: [&str; 24] = [
        "kern",
        "user",
        "mail",
        "daemon",
        "auth",
        "syslog",
        "lpr",
        "news",
        "uucp",
        "cron",
        "authpriv",
        "ftp",
        "ntp",
        "security",
        "console",
        "solaris-cron",
        "local0",
        "local1",
        "local2",
        "local3",
        "local4",
        "local5",
        "local6",
        "local7",
    ];
    if let Some(index) = NAMES.iter().position(|n| *n == text) {
        return Ok(index as u8);
    }
    match text.parse::<u8>() {
        Ok(n) if n < 24 => Ok(n),
        _ => bail!("unknown syslog facility {text:?}"),
    }
}

impl std::str::FromStr for SinkSpec {
    type Err = anyhow::Error;

    fn from_str(value: &str) -> Result<Self> {
        let (base, query) = value.split_once('?').unwrap_or((value, ""));
        let mut options: Vec<(&str, &str)> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, val) = pair
                .split_once('=')
                .ok_or_else(|| anyhow!("option {pair:?} in {value:?} needs a value"))?;
            options.push((key, val));
        }
        let option = |key: &str| {
            options
                .iter()
                .rev()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| *v)
        };
        let known: &[&str] = if base.starts_with("syslog+") {
            &[
                "format",
                "rfc",
                "framing",
                "facility",
                "queue",
                "spool",
                "spool-bytes",
            ]
        } else if base.starts_with("file:") {
            &["format", "max-bytes", "keep", "queue"]
        } else {
            &["format", "queue"]
        };
        if let Some((key, _)) = options.iter().find(|(k, _)| !known.contains(k)) {
            bail!("unknown option {key:?} in output {value:?}");
        }
        let format = |default| match option("format") {
            None => Ok(default),
            Some("json") => Ok(Format::Json),
            Some("cef") => Ok(Format::Cef),
            Some(other) => Err(anyhow!("format must be json or cef, not {other:?}")),
        };
        let queue = option("queue")
            .map(|q| q.parse::<usize>().map_err(|_| anyhow!("bad queue {q:?}")))
            .transpose()?;

        let (kind, format) = if base == "stdout" {
            (Kind::Stdout, format(Format::Json)?)
        } else if let Some(dir) = base.strip_prefix("file:") {
            if dir.is_empty() {
                bail!("file: needs a directory, as in file:/var/log/iocmon/");
            }
            let kind = Kind::File {
                dir: PathBuf::from(dir),
                max_bytes: option("max-bytes")
                    .map(parse_size)
                    .transpose()?
                    .unwrap_or(DEFAULT_FILE_BYTES),
                keep: option("keep")
                    .map(|k| k.parse().map_err(|_| anyhow!("bad keep {k:?}")))
                    .transpose()?
                    .unwrap_or(DEFAULT_KEEP),
            };
            (kind, format(Format::Json)?)
        } else if let Some(rest) = base.strip_prefix("syslog+") {
            let (scheme, target) = rest.split_once("://").ok_or_else(|| {
                anyhow!("expected syslog+udp://, +tcp:// or +unix:// in {value:?}")
            })?;
            let transport = match scheme {
                "udp" => Transport::Udp(target.to_string()),
                "tcp" => Transport::Tcp(target.to_string()),
                "unix" => Transport::Unix(PathBuf::from(target)),
                other => bail!("unknown syslog transport {other:?} (udp, tcp, unix)"),
            };
            if matches!(&transport, Transport::Udp(t) | Transport::Tcp(t) if t.is_empty()) {
                bail!("{value:?} needs HOST:PORT");
            }
            let spool = match &transport {
                Transport::Tcp(target) => {
                    let bytes = option("spool-bytes")
                        .map(parse_size)
                        .transpose()?
                        .unwrap_or(DEFAULT_SPOOL_BYTES);
                    let dir = option("spool")
                        .map_or_else(|| PathBuf::from(DEFAULT_SPOOL_DIR), PathBuf::from);
                    let file: String = target
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                        .collect();
                    (bytes > 0).then(|| (dir.join(format!("syslog-tcp-{file}.spool")), bytes))
                }
                _ => {
                    if option("spool").is_some() || option("spool-bytes").is_some() {
                        bail!("only syslog+tcp outputs spool");
                    }
                    None
                }
            };
            let kind = Kind::Syslog {
                transport,
                rfc3164: match option("rfc") {
                    None | Some("3164") => true,
                    Some("5424") => false,
                    Some(other) => bail!("rfc must be 3164 or 5424, not {other:?}"),
                },
                octet_framing: match option("framing") {
                    None | Some("lf") => false,
                    Some("octet") => true,
                    Some(other) => bail!("framing must be lf or octet, not {other:?}"),
                },
                facility: option("facility")
                    .map(parse_facility)
                    .transpose()?
                    .unwrap_or(DEFAULT_FACILITY),
                spool,
            };
            (kind, format(Format::Cef)?)
        } else {
            bail!(
                "unknown output {value:?}: use stdout, file:DIR, syslog+udp://HOST:PORT, \
                 syslog+tcp://HOST:PORT or syslog+unix:///PATH"
            );
        };
        Ok(SinkSpec {
            name: base.to_string(),
            kind,
            format,
            queue,
        })
    }
}

fn resolve(target: &str) -> Result<SocketAddr> {
    target
        .to_socket_addrs()
        .with_context(|| format!("resolving {target}"))?
        .next()
        .ok_or_else(|| anyhow!("{target} has no address"))
}

impl SinkSpec {
    /// Starts the sink's writer thread. `host` is the syslog HOSTNAME.
    pub fn start(&self, default_queue: usize, host: &str) -> Result<QueuedSink> {
        let queue = self.queue.unwrap_or(default_queue).max(1);
        let name = &self.name;
        let sink = match &self.kind {
            Kind::Stdout => {
                QueuedSink::spawn(name, self.format, queue, LineOutput::new(std::io::stdout()))?
            }
            Kind::File {
                dir,
                max_bytes,
                keep,
            } => {
                let output = FileOutput::new(dir, self.format, *max_bytes, *keep)
                    .with_context(|| format!("output {name}: creating {}", dir.display()))?;
                QueuedSink::spawn(name, self.format, queue, output)?
            }
            Kind::Syslog {
                transport,
                rfc3164,
                octet_framing,
                facility,
                spool,
            } => {
                let header = Header {
                    rfc: if *rfc3164 { Rfc::R3164 } else { Rfc::R5424 },
                    facility: *facility,
                    host: host.to_string(),
                    format: self.format,
                };
                let framing = if *octet_framing {
                    Framing::Octet
                } else {
                    Framing::Lf
                };
                match transport {
                    Transport::Udp(target) => {
                        let output = UdpOutput::new(header, resolve(target)?)
                            .with_context(|| format!("output {name}"))?;
                        QueuedSink::spawn(name, self.format, queue, output)?
                    }
                    Transport::Unix(path) => QueuedSink::spawn(
                        name,
                        self.format,
                        queue,
                        UnixOutput::new(header, framing, path.clone()),
                    )?,
                    Transport::Tcp(target) => {
                        let spool = spool
                            .as_ref()
                            .map(|(path, bytes)| {
                                Spool::open(path, *bytes).with_context(|| {
                                    format!("output {name}: opening spool {}", path.display())
                                })
                            })
                            .transpose()?;
                        if let Some(spool) = spool.as_ref().filter(|s| !s.is_empty()) {
                            log::info!(
                                "output {name}: {} records from an earlier run wait in {}",
                                spool.records(),
                                spool.path().display()
                            );
                        }
                        let output = TcpOutput::new(name, header, framing, resolve(target)?, spool);
                        let counters = Arc::new(SinkCounters::default());
                        output.publish(&counters);
                        QueuedSink::spawn_with(name, self.format, queue, output, counters)?
                    }
                }
            }
        };
        Ok(sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> SinkSpec {
        text.parse().unwrap()
    }

    #[test]
    fn stdout_and_file() {
        assert_eq!(parse("stdout").kind, Kind::Stdout);
        assert_eq!(parse("stdout").format, Format::Json);
        assert_eq!(parse("stdout?format=cef").format, Format::Cef);
        let spec = parse("file:/var/log/iocmon/?max-bytes=1M&keep=3");
        assert_eq!(
            spec.kind,
            Kind::File {
                dir: "/var/log/iocmon/".into(),
                max_bytes: 1 << 20,
                keep: 3
            }
        );
        assert_eq!(spec.name, "file:/var/log/iocmon/");
    }

    #[test]
    fn syslog_defaults_and_options() {
        let spec = parse("syslog+tcp://127.0.0.1:514?format=cef&framing=octet&spool=/tmp/s");
        assert_eq!(spec.format, Format::Cef);
        assert_eq!(
            spec.kind,
            Kind::Syslog {
                transport: Transport::Tcp("127.0.0.1:514".into()),
                rfc3164: true,
                octet_framing: true,
                facility: 20,
                spool: Some(("/tmp/s/syslog-tcp-127_0_0_1_514.spool".into(), 64 << 20)),
            }
        );
        let spec = parse("syslog+udp://[::1]:514?format=json&rfc=5424&facility=daemon");
        assert_eq!(spec.format, Format::Json);
        assert!(matches!(
            spec.kind,
            Kind::Syslog {
                rfc3164: false,
                facility: 3,
                spool: None,
                ..
            }
        ));
        let spec = parse("syslog+tcp://127.0.0.1:514?spool-bytes=0");
        assert!(matches!(spec.kind, Kind::Syslog { spool: None, .. }));
        assert!(matches!(
            parse("syslog+unix:///dev/log").kind,
            Kind::Syslog {
                transport: Transport::Unix(_),
                ..
            }
        ));
    }

    #[test]
    fn mistakes_are_refused_with_a_reason() {
        for bad in [
            "stderr",
            "file:",
            "syslog+tcp://127.0.0.1:514?framing=weird",
            "syslog+tcp://127.0.0.1:514?rfc=5425",
            "syslog+udp://127.0.0.1:514?spool=/x",
            "syslog+sctp://127.0.0.1:514",
            "syslog+tcp://",
            "stdout?colour=yes",
            "stdout?format=xml",
            "file:/x?max-bytes=lots",
            "syslog+tcp://127.0.0.1:514?facility=local9",
        ] {
            assert!(bad.parse::<SinkSpec>().is_err(), "{bad} accepted");
        }
    }
}
