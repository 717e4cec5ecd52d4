//! Decoding ring buffer records into plain events. Records come from our own kernel
//! programs, but a short or unknown record is still an error, never a panic.

use std::{
    fmt,
    net::{IpAddr, Ipv6Addr, SocketAddr},
};

use ioc_common::{
    ConnectEvent, DnsEvent, ExecEvent, ExitEvent, OutcomeEvent, DNS_EGRESS, EVENT_CONNECT,
    EVENT_DNS, EVENT_EXEC, EVENT_EXIT, EVENT_OUTCOME, HOOK_CONNECT4, HOOK_CONNECT6, HOOK_SENDMSG4,
    HOOK_SENDMSG6, MATCH_ADDRESS, MATCH_ENDPOINT, MATCH_ENDPOINT_ADDRESS, MATCH_RESOLVED,
    REASON_WATCHED, VERDICT_BLOCKED,
};

use crate::text::from_nul_padded;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    Other(u8),
}

impl Protocol {
    fn from_number(number: u8) -> Self {
        match number {
            6 => Self::Tcp,
            17 => Self::Udp,
            other => Self::Other(other),
        }
    }
}

/// Which hook saw the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Connect4,
    Connect6,
    Sendmsg4,
    Sendmsg6,
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Self::Connect4 => "connect4",
            Self::Connect6 => "connect6",
            Self::Sendmsg4 => "sendmsg4",
            Self::Sendmsg6 => "sendmsg6",
        }
    }
}

/// How the destination matched an indicator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchKind {
    /// Exact `ip:port`.
    Endpoint,
    /// IP or CIDR indicator.
    Address,
    /// The address of an `ip:port` indicator, on another port (weaker).
    EndpointAddress,
    /// An address a domain indicator resolved to (until the answer's TTL passes).
    Resolved,
}

impl MatchKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Endpoint => "endpoint",
            Self::Address => "address",
            Self::EndpointAddress => "endpoint-address",
            Self::Resolved => "resolved-address",
        }
    }
}

/// An outbound connect or send, as the kernel saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionEvent {
    pub boot_ns: u64,
    pub hook: Hook,
    pub protocol: Protocol,
    /// Thread id.
    pub pid: u32,
    /// Process id.
    pub tgid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cgroup_id: u64,
    /// `task->comm`, invalid UTF-8 replaced.
    pub comm: String,
    /// Destination; IPv4 (also v4-mapped IPv6) as plain IPv4.
    pub remote: SocketAddr,
    /// Source, when the socket was already bound.
    pub local: Option<SocketAddr>,
    /// Matched indicator id and how it matched.
    pub indicator: Option<(MatchKind, u32)>,
    pub blocked: bool,
    /// The process name is in the watched set.
    pub watched: bool,
    /// The socket, when the kernel tracks this TCP connect's outcome (else 0).
    pub sock: u64,
}

/// How a reported TCP connect ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutcomeRecord {
    pub boot_ns: u64,
    pub sock: u64,
    pub established: bool,
    /// The connection's local address, once the kernel chose it.
    pub local: SocketAddr,
}

/// A process started a new program image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRecord {
    pub boot_ns: u64,
    /// When the task was created (fork), nanoseconds since boot.
    pub start_boot_ns: u64,
    pub cgroup_id: u64,
    pub tgid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub comm: String,
    /// The path given to execve (may be relative).
    pub filename: String,
    /// argv, invalid UTF-8 replaced.
    pub args: Vec<String>,
    /// argv was longer than the kernel copies; the last argument is cut.
    pub args_truncated: bool,
}

/// A DNS message on port 53, as the kernel copied it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsRecord {
    pub boot_ns: u64,
    /// A query leaving (with its process) rather than an answer arriving.
    pub egress: bool,
    pub tcp: bool,
    pub tgid: u32,
    pub uid: u32,
    pub cgroup_id: u64,
    pub comm: String,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub payload: Vec<u8>,
    /// The message was longer than the kernel copies.
    pub truncated: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Connection(ConnectionEvent),
    Dns(DnsRecord),
    Exec(ExecRecord),
    Exit { tgid: u32, boot_ns: u64 },
    Outcome(OutcomeRecord),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    Short { kind: u32, len: usize, need: usize },
    UnknownKind(u32),
    BadField(&'static str, u32),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Short { kind, len, need } => {
                write!(f, "record of kind {kind} is {len} bytes, need {need}")
            }
            Self::UnknownKind(kind) => write!(f, "unknown record kind {kind}"),
            Self::BadField(field, value) => write!(f, "bad {field} {value}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes one ring buffer record.
pub fn decode(record: &[u8]) -> Result<Event, DecodeError> {
    let kind_bytes: [u8; 4] =
        record
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or(DecodeError::Short {
                kind: 0,
                len: record.len(),
                need: 4,
            })?;
    match u32::from_ne_bytes(kind_bytes) {
        EVENT_CONNECT => decode_connect(record).map(Event::Connection),
        EVENT_EXEC => decode_exec(record).map(Event::Exec),
        EVENT_OUTCOME => {
            let raw: OutcomeEvent = read_record(record, EVENT_OUTCOME)?;
            Ok(Event::Outcome(OutcomeRecord {
                boot_ns: raw.boot_ns,
                sock: raw.sock,
                established: raw.established != 0,
                local: SocketAddr::new(canonical_ip(raw.src_addr), raw.src_port),
            }))
        }
        EVENT_DNS => {
            let raw: DnsEvent = read_record(record, EVENT_DNS)?;
            let len = (raw.payload_len as usize).min(raw.payload.len());
            Ok(Event::Dns(DnsRecord {
                boot_ns: raw.boot_ns,
                egress: raw.direction == DNS_EGRESS,
                tcp: raw.protocol == 6,
                tgid: raw.tgid,
                uid: raw.uid,
                cgroup_id: raw.cgroup_id,
                comm: from_nul_padded(&raw.comm),
                source: SocketAddr::new(canonical_ip(raw.src_addr), raw.src_port),
                destination: SocketAddr::new(canonical_ip(raw.dst_addr), raw.dst_port),
                payload: raw.payload[..len].to_vec(),
                truncated: raw.truncated != 0,
            }))
        }
        EVENT_EXIT => {
            let raw: ExitEvent = read_record(record, EVENT_EXIT)?;
            Ok(Event::Exit {
                tgid: raw.tgid,
                boot_ns: raw.boot_ns,
            })
        }
        other => Err(DecodeError::UnknownKind(other)),
    }
}

/// Copies a record of kind `kind` out of the ring buffer bytes.
fn read_record<T: Copy>(record: &[u8], kind: u32) -> Result<T, DecodeError> {
    let need = std::mem::size_of::<T>();
    if record.len() < need {
        return Err(DecodeError::Short {
            kind,
            len: record.len(),
            need,
        });
    }
    // SAFETY: length checked; callers only use the plain-old-data record types of
    // ioc-common, valid for any bytes; the read is unaligned-safe.
    Ok(unsafe { std::ptr::read_unaligned(record.as_ptr().cast()) })
}

fn decode_exec(record: &[u8]) -> Result<ExecRecord, DecodeError> {
    let raw: ExecEvent = read_record(record, EVENT_EXEC)?;
    let len = (raw.args_len as usize).min(raw.args.len());
    let area = &raw.args[..len];
    let area = area.strip_suffix(&[0]).unwrap_or(area);
    let args = if area.is_empty() {
        Vec::new()
    } else {
        area.split(|&b| b == 0)
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect()
    };
    Ok(ExecRecord {
        boot_ns: raw.boot_ns,
        start_boot_ns: raw.start_boot_ns,
        cgroup_id: raw.cgroup_id,
        tgid: raw.tgid,
        ppid: raw.ppid,
        uid: raw.uid,
        euid: raw.euid,
        gid: raw.gid,
        comm: from_nul_padded(&raw.comm),
        filename: from_nul_padded(&raw.filename),
        args,
        args_truncated: raw.args_truncated != 0,
    })
}

fn decode_connect(record: &[u8]) -> Result<ConnectionEvent, DecodeError> {
    let raw: ConnectEvent = read_record(record, EVENT_CONNECT)?;
    let hook = match raw.hook {
        HOOK_CONNECT4 => Hook::Connect4,
        HOOK_CONNECT6 => Hook::Connect6,
        HOOK_SENDMSG4 => Hook::Sendmsg4,
        HOOK_SENDMSG6 => Hook::Sendmsg6,
        other => return Err(DecodeError::BadField("hook", other.into())),
    };
    let indicator = match raw.match_kind {
        0 => None,
        MATCH_ENDPOINT => Some((MatchKind::Endpoint, raw.ioc_id)),
        MATCH_ADDRESS => Some((MatchKind::Address, raw.ioc_id)),
        MATCH_ENDPOINT_ADDRESS => Some((MatchKind::EndpointAddress, raw.ioc_id)),
        MATCH_RESOLVED => Some((MatchKind::Resolved, raw.ioc_id)),
        other => return Err(DecodeError::BadField("match kind", other.into())),
    };
    let local_ip = canonical_ip(raw.src_addr);
    let local = (!local_ip.is_unspecified() || raw.src_port != 0)
        .then(|| SocketAddr::new(local_ip, raw.src_port));
    Ok(ConnectionEvent {
        boot_ns: raw.boot_ns,
        hook,
        protocol: Protocol::from_number(raw.protocol),
        pid: raw.pid,
        tgid: raw.tgid,
        uid: raw.uid,
        gid: raw.gid,
        cgroup_id: raw.cgroup_id,
        comm: from_nul_padded(&raw.comm),
        remote: SocketAddr::new(canonical_ip(raw.dst_addr), raw.dst_port),
        local,
        indicator,
        blocked: raw.verdict == VERDICT_BLOCKED,
        watched: raw.reason & REASON_WATCHED != 0,
        sock: raw.sock,
    })
}

/// IPv4 for v4-mapped addresses (and `::` unspecified as IPv4 0.0.0.0 when v4-mapped).
fn canonical_ip(bytes: [u8; 16]) -> IpAddr {
    Ipv6Addr::from(bytes).to_canonical()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ioc_common::{v4_mapped, COMM_LEN, REASON_IOC};

    pub(crate) fn raw_connect() -> ConnectEvent {
        let mut comm = [0u8; COMM_LEN];
        comm[..4].copy_from_slice(b"curl");
        ConnectEvent {
            kind: EVENT_CONNECT,
            hook: HOOK_CONNECT6,
            protocol: 6,
            verdict: 0,
            match_kind: MATCH_ENDPOINT,
            boot_ns: 5,
            cgroup_id: 7,
            pid: 100,
            tgid: 99,
            uid: 1000,
            gid: 1000,
            ioc_id: 3,
            family: 10,
            dst_port: 4444,
            src_port: 0,
            reason: REASON_IOC,
            _pad: 0,
            _pad2: 0,
            dst_addr: v4_mapped([127, 0, 0, 2]),
            src_addr: [0; 16],
            comm,
            sock: 0,
        }
    }

    pub(crate) fn bytes_of(raw: &ConnectEvent) -> Vec<u8> {
        // SAFETY: reading the bytes of a plain-old-data value.
        unsafe {
            std::slice::from_raw_parts(
                (raw as *const ConnectEvent).cast::<u8>(),
                std::mem::size_of::<ConnectEvent>(),
            )
        }
        .to_vec()
    }

    fn connection(record: &[u8]) -> ConnectionEvent {
        match decode(record) {
            Ok(Event::Connection(event)) => event,
            other => panic!("not a connection: {other:?}"),
        }
    }

    pub(crate) fn raw_exec(args: &[u8]) -> Vec<u8> {
        // SAFETY: all-zero is a valid ExecEvent.
        let mut raw: ExecEvent = unsafe { std::mem::zeroed() };
        raw.kind = EVENT_EXEC;
        raw.tgid = 4242;
        raw.ppid = 1;
        raw.uid = 0;
        raw.euid = 0;
        raw.comm[..2].copy_from_slice(b"nc");
        raw.filename[..11].copy_from_slice(b"/usr/bin/nc");
        raw.args[..args.len()].copy_from_slice(args);
        raw.args_len = args.len() as u32;
        // SAFETY: reading the bytes of a plain-old-data value.
        unsafe {
            std::slice::from_raw_parts(
                (&raw as *const ExecEvent).cast::<u8>(),
                std::mem::size_of::<ExecEvent>(),
            )
        }
        .to_vec()
    }

    #[test]
    fn decodes_exec_argv() {
        let Ok(Event::Exec(exec)) = decode(&raw_exec(b"nc\0-zv\0host name\0\xff\0")) else {
            panic!("not an exec")
        };
        assert_eq!(exec.args, vec!["nc", "-zv", "host name", "\u{fffd}"]);
        assert_eq!(exec.filename, "/usr/bin/nc");
        assert_eq!(exec.comm, "nc");
        assert!(!exec.args_truncated);
        let Ok(Event::Exec(empty)) = decode(&raw_exec(b"")) else {
            panic!("not an exec")
        };
        assert!(empty.args.is_empty());
    }

    #[test]
    fn decodes_v4_mapped_destination_as_ipv4() {
        let event = connection(&bytes_of(&raw_connect()));
        assert_eq!(event.remote, "127.0.0.2:4444".parse().unwrap());
        assert_eq!(event.local, None);
        assert_eq!(event.indicator, Some((MatchKind::Endpoint, 3)));
        assert_eq!(event.comm, "curl");
        assert_eq!((event.pid, event.tgid), (100, 99));
        assert_eq!(event.protocol, Protocol::Tcp);
        assert!(!event.watched && !event.blocked);
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        let bytes = bytes_of(&raw_connect());
        assert!(matches!(
            decode(&bytes[..50]),
            Err(DecodeError::Short { need: 112, .. })
        ));
        assert_eq!(decode(&[9, 0, 0, 0]), Err(DecodeError::UnknownKind(9)));
        assert!(decode(&[]).is_err());
        let mut bad = raw_connect();
        bad.hook = 77;
        assert_eq!(
            decode(&bytes_of(&bad)),
            Err(DecodeError::BadField("hook", 77))
        );
    }
}
