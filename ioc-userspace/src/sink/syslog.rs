//! Syslog over UDP, TCP or a unix socket: RFC 3164 or RFC 5424 headers, LF or
//! octet-counted (RFC 6587) framing on streams, one message per datagram otherwise.
//!
//! CEF lines go out as Sentinel's forwarder expects them, with no tag before `CEF:`:
//! `<PRI>Mmm dd hh:mm:ss HOST CEF:0|...` (RFC 3164) or
//! `<PRI>1 TIMESTAMP HOST iocmon PID CommonSecurityLog - CEF:0|...` (RFC 5424). JSON lines
//! carry the tag `iocmon[PID]:` (RFC 3164) or the table as MSGID (RFC 5424). Times are UTC.
//!
//! A TCP sink whose forwarder is down writes to its disk spool (bounded) and replays it,
//! in order and before anything newer, once a connection succeeds again. A closed
//! connection is noticed before each write (a forwarder that stopped has sent FIN), so
//! records are not written into a dead socket.

use std::{
    io::Write,
    net::{SocketAddr, TcpStream, UdpSocket},
    os::{
        fd::AsRawFd,
        unix::net::{UnixDatagram, UnixStream},
    },
    path::PathBuf,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use time::{format_description::BorrowedFormatItem, macros::format_description, OffsetDateTime};

use super::{queued::SinkCounters, Format, Output, Record, Spool};

const RFC3164_TIME: &[BorrowedFormatItem<'static>] =
    format_description!("[month repr:short] [day padding:space] [hour]:[minute]:[second]");
const RFC5424_TIME: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_MIN: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rfc {
    R3164,
    R5424,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Non-transparent framing: each message ends in LF (records never contain one).
    Lf,
    /// Octet counting: `LEN SP MSG`.
    Octet,
}

/// How messages are written.
#[derive(Clone, Debug)]
pub struct Header {
    pub rfc: Rfc,
    pub facility: u8,
    /// HOSTNAME (the device name; spaces are not allowed there and become `-`).
    pub host: String,
    pub format: Format,
}

impl Header {
    /// The syslog message for `record` (no framing).
    pub fn message(&self, record: &Record, now: OffsetDateTime) -> Vec<u8> {
        let pri = u16::from(self.facility) * 8 + u16::from(record.severity.min(7));
        let host: String = self
            .host
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '-' })
            .collect();
        let host = if host.is_empty() {
            "-".to_string()
        } else {
            host
        };
        let pid = std::process::id();
        let mut out = Vec::with_capacity(record.line.len() + 96);
        match self.rfc {
            Rfc::R3164 => {
                let time = now.format(RFC3164_TIME).unwrap_or_default();
                let _ = write!(out, "<{pri}>{time} {host} ");
                if self.format == Format::Json {
                    let _ = write!(out, "iocmon[{pid}]: ");
                }
            }
            Rfc::R5424 => {
                let time = now.format(RFC5424_TIME).unwrap_or_else(|_| "-".into());
                let _ = write!(
                    out,
                    "<{pri}>1 {time} {host} iocmon {pid} {} - ",
                    record.table
                );
            }
        }
        out.extend_from_slice(record.line.as_bytes());
        out
    }
}

/// Frames `message` for a stream.
pub fn frame(framing: Framing, message: &[u8]) -> Vec<u8> {
    match framing {
        Framing::Lf => {
            let mut out = Vec::with_capacity(message.len() + 1);
            out.extend_from_slice(message);
            out.push(b'\n');
            out
        }
        Framing::Octet => {
            let mut out = format!("{} ", message.len()).into_bytes();
            out.extend_from_slice(message);
            out
        }
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// One message per datagram.
pub struct UdpOutput {
    header: Header,
    socket: UdpSocket,
}

impl UdpOutput {
    pub fn new(header: Header, addr: SocketAddr) -> std::io::Result<Self> {
        let bind: SocketAddr = if addr.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let socket = UdpSocket::bind(bind)?;
        socket.connect(addr)?;
        socket.set_write_timeout(Some(WRITE_TIMEOUT))?;
        Ok(Self { header, socket })
    }
}

impl Output for UdpOutput {
    fn write(&mut self, record: &Record, counters: &SinkCounters) {
        let message = self.header.message(record, now());
        match self.socket.send(&message) {
            Ok(_) => SinkCounters::add(&counters.written, 1),
            Err(_) => SinkCounters::add(&counters.write_errors, 1),
        }
    }

    fn flush(&mut self, _counters: &SinkCounters) {}
}

enum UnixSocket {
    Datagram(UnixDatagram),
    Stream(UnixStream),
}

/// A local syslog socket (`/dev/log` is a datagram socket; stream sockets get framing).
pub struct UnixOutput {
    header: Header,
    framing: Framing,
    path: PathBuf,
    socket: Option<UnixSocket>,
}

impl UnixOutput {
    pub fn new(header: Header, framing: Framing, path: PathBuf) -> Self {
        Self {
            header,
            framing,
            path,
            socket: None,
        }
    }

    fn connect(&mut self) -> std::io::Result<&mut UnixSocket> {
        if self.socket.is_none() {
            let datagram = UnixDatagram::unbound().and_then(|s| {
                s.connect(&self.path)?;
                Ok(s)
            });
            let socket = match datagram {
                Ok(socket) => UnixSocket::Datagram(socket),
                Err(err) if err.raw_os_error() == Some(libc::EPROTOTYPE) => {
                    let stream = UnixStream::connect(&self.path)?;
                    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
                    UnixSocket::Stream(stream)
                }
                Err(err) => return Err(err),
            };
            self.socket = Some(socket);
        }
        self.socket
            .as_mut()
            .ok_or_else(|| std::io::Error::other("not connected"))
    }
}

impl Output for UnixOutput {
    fn write(&mut self, record: &Record, counters: &SinkCounters) {
        let message = self.header.message(record, now());
        let framing = self.framing;
        let result = self.connect().and_then(|socket| match socket {
            UnixSocket::Datagram(socket) => socket.send(&message).map(drop),
            UnixSocket::Stream(stream) => stream.write_all(&frame(framing, &message)),
        });
        match result {
            Ok(()) => SinkCounters::add(&counters.written, 1),
            Err(_) => {
                self.socket = None;
                SinkCounters::add(&counters.write_errors, 1);
            }
        }
    }

    fn flush(&mut self, _counters: &SinkCounters) {}
}

/// Syslog over TCP with a disk spool for when the forwarder is away.
pub struct TcpOutput {
    name: String,
    header: Header,
    framing: Framing,
    addr: SocketAddr,
    stream: Option<TcpStream>,
    retry_at: Instant,
    backoff: Duration,
    spool: Option<Spool>,
    /// Logged once per outage.
    down_logged: bool,
}

impl TcpOutput {
    pub fn new(
        name: &str,
        header: Header,
        framing: Framing,
        addr: SocketAddr,
        spool: Option<Spool>,
    ) -> Self {
        Self {
            name: name.to_string(),
            header,
            framing,
            addr,
            stream: None,
            retry_at: Instant::now(),
            backoff: RETRY_MIN,
            spool,
            down_logged: false,
        }
    }

    /// Puts the spool's gauges in the counters.
    pub fn publish(&self, counters: &SinkCounters) {
        let (records, bytes) = self
            .spool
            .as_ref()
            .map_or((0, 0), |s| (s.records(), s.bytes()));
        counters.spooled_records.store(records, Ordering::Relaxed);
        counters.spooled_bytes.store(bytes, Ordering::Relaxed);
    }

    /// A live connection, (re)connecting when the retry time has come.
    fn connection(&mut self) -> Option<&mut TcpStream> {
        if let Some(stream) = &self.stream {
            if peer_closed(stream) {
                log::warn!("sink {}: the forwarder closed the connection", self.name);
                self.stream = None;
            }
        }
        if self.stream.is_none() && Instant::now() >= self.retry_at {
            match TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT).and_then(|stream| {
                stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
                stream.set_nodelay(true)?;
                Ok(stream)
            }) {
                Ok(stream) => {
                    log::info!("sink {}: connected to {}", self.name, self.addr);
                    self.stream = Some(stream);
                    self.backoff = RETRY_MIN;
                    self.down_logged = false;
                }
                Err(err) => {
                    if !self.down_logged {
                        log::warn!(
                            "sink {}: cannot reach {}: {err}; spooling",
                            self.name,
                            self.addr
                        );
                        self.down_logged = true;
                    }
                    self.retry_at = Instant::now() + self.backoff;
                    self.backoff = (self.backoff * 2).min(RETRY_MAX);
                }
            }
        }
        self.stream.as_mut()
    }

    fn send(&mut self, framed: &[u8]) -> bool {
        let Some(stream) = self.connection() else {
            return false;
        };
        match stream.write_all(framed) {
            Ok(()) => true,
            Err(err) => {
                log::warn!("sink {}: write failed: {err}", self.name);
                self.stream = None;
                self.retry_at = Instant::now() + RETRY_MIN;
                false
            }
        }
    }

    fn spool_message(&mut self, framed: &[u8], counters: &SinkCounters) {
        match self.spool.as_mut().map(|spool| spool.push(framed)) {
            Some(Ok(true)) => SinkCounters::add(&counters.spooled_total, 1),
            Some(Ok(false)) => SinkCounters::add(&counters.spool_full, 1),
            Some(Err(err)) => {
                log::debug!("sink {}: spool write failed: {err}", self.name);
                SinkCounters::add(&counters.write_errors, 1);
            }
            None => SinkCounters::add(&counters.write_errors, 1),
        }
    }

    /// Sends spooled messages, oldest first, while the connection holds.
    fn replay(&mut self, counters: &SinkCounters) {
        loop {
            let front = match self.spool.as_mut().map(Spool::front) {
                Some(Ok(Some(message))) => message,
                Some(Ok(None)) | None => break,
                Some(Err(err)) => {
                    log::error!("sink {}: cannot read the spool: {err}", self.name);
                    break;
                }
            };
            if !self.send(&front) {
                break;
            }
            if let Some(Err(err)) = self.spool.as_mut().map(Spool::pop) {
                log::error!("sink {}: cannot advance the spool: {err}", self.name);
                break;
            }
            SinkCounters::add(&counters.replayed, 1);
            SinkCounters::add(&counters.written, 1);
        }
    }

    fn spool_pending(&self) -> bool {
        self.spool.as_ref().is_some_and(|s| !s.is_empty())
    }
}

/// Whether the peer has closed its side (a syslog forwarder never sends us data).
fn peer_closed(stream: &TcpStream) -> bool {
    let mut byte = 0u8;
    // SAFETY: recv into a valid one-byte buffer on a socket we own.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match n {
        0 => true,
        n if n > 0 => false,
        _ => {
            let err = std::io::Error::last_os_error();
            err.kind() != std::io::ErrorKind::WouldBlock
                && err.kind() != std::io::ErrorKind::Interrupted
        }
    }
}

impl Output for TcpOutput {
    fn write(&mut self, record: &Record, counters: &SinkCounters) {
        let framed = frame(self.framing, &self.header.message(record, now()));
        if self.spool_pending() {
            // Order: everything spooled goes before this one.
            self.replay(counters);
        }
        if !self.spool_pending() && self.send(&framed) {
            SinkCounters::add(&counters.written, 1);
        } else {
            self.spool_message(&framed, counters);
        }
        self.publish(counters);
    }

    fn flush(&mut self, _counters: &SinkCounters) {}

    fn idle_interval(&self) -> Option<Duration> {
        Some(RETRY_MIN)
    }

    fn idle(&mut self, counters: &SinkCounters) {
        if self.spool_pending() {
            self.replay(counters);
            self.publish(counters);
        } else {
            // Notice a closed connection while quiet, so the next record is not lost.
            let _ = self.connection();
        }
    }

    fn close(&mut self, counters: &SinkCounters) {
        if self.spool_pending() {
            self.retry_at = Instant::now();
            self.replay(counters);
            self.publish(counters);
        }
        if let Some(spool) = &self.spool {
            if !spool.is_empty() {
                log::warn!(
                    "sink {}: {} records stay in the spool {} for the next start",
                    self.name,
                    spool.records(),
                    spool.path().display()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::queued::tests::record;
    use std::{io::Read, net::TcpListener};

    fn header(rfc: Rfc, format: Format) -> Header {
        Header {
            rfc,
            facility: 20,
            host: "iot box".into(),
            format,
        }
    }

    #[test]
    fn rfc3164_cef_has_no_tag_and_json_has_one() {
        let t = OffsetDateTime::from_unix_timestamp(1_782_043_205).unwrap();
        let mut r = record("CEF:0|iocmon|iocmon|0.1.0|ioc|n|8|dst=127.0.0.2");
        r.severity = 4;
        let cef = header(Rfc::R3164, Format::Cef).message(&r, t);
        assert_eq!(
            String::from_utf8(cef).unwrap(),
            "<164>Jun 21 12:00:05 iot-box CEF:0|iocmon|iocmon|0.1.0|ioc|n|8|dst=127.0.0.2"
        );
        let t = OffsetDateTime::from_unix_timestamp(1_767_571_200).unwrap(); // Jan 5
        let json = header(Rfc::R3164, Format::Json).message(&record("{}"), t);
        let text = String::from_utf8(json).unwrap();
        assert!(
            text.starts_with("<166>Jan  5 00:00:00 iot-box iocmon["),
            "{text}"
        );
        assert!(text.ends_with("]: {}"), "{text}");
    }

    #[test]
    fn rfc5424_names_the_table() {
        let t = OffsetDateTime::from_unix_timestamp(1_782_043_205).unwrap();
        let text =
            String::from_utf8(header(Rfc::R5424, Format::Json).message(&record("{}"), t)).unwrap();
        let pid = std::process::id();
        assert_eq!(
            text,
            format!("<166>1 2026-06-21T12:00:05.000000Z iot-box iocmon {pid} T - {{}}")
        );
    }

    #[test]
    fn framing() {
        assert_eq!(frame(Framing::Lf, b"abc"), b"abc\n");
        assert_eq!(frame(Framing::Octet, b"abc"), b"3 abc");
    }

    #[test]
    fn tcp_spools_while_down_and_replays_in_order() {
        // Reserve a loopback port, then close it: nothing listens at first.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let dir = std::env::temp_dir().join(format!("iocmon-tcp-spool-{}", std::process::id()));
        let spool = Spool::open(&dir.join("s"), 1 << 20).unwrap();
        let counters = SinkCounters::default();
        let mut out = TcpOutput::new(
            "t",
            header(Rfc::R3164, Format::Cef),
            Framing::Octet,
            addr,
            Some(spool),
        );
        for i in 0..3 {
            out.write(&record(&format!("m{i}")), &counters);
        }
        assert_eq!(counters.snapshot().spooled_records, 3);
        let listener = TcpListener::bind(addr).unwrap();
        std::thread::sleep(RETRY_MAX.min(Duration::from_secs(1)));
        out.idle(&counters);
        out.write(&record("m3"), &counters);
        drop(out);
        let (mut conn, _) = listener.accept().unwrap();
        let mut received = String::new();
        conn.read_to_string(&mut received).unwrap();
        let mut messages = Vec::new();
        let mut rest = received.as_str();
        while let Some((len, tail)) = rest.split_once(' ') {
            let len: usize = len.parse().unwrap();
            messages.push(tail[..len].rsplit(' ').next().unwrap().to_string());
            rest = &tail[len..];
        }
        assert_eq!(messages, ["m0", "m1", "m2", "m3"], "{received}");
        let stats = counters.snapshot();
        assert_eq!((stats.written, stats.replayed, stats.lost()), (4, 3, 0));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
