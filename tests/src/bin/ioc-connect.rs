//! Test client: performs the network actions named on its command line, in order, and
//! exits. Integration tests run it (under chosen names) so the agent sees real
//! connections from a process whose pid the test knows.
//!
//! Usage: ioc-connect ACTION ADDR [ACTION ADDR]...
//!   tcp ADDR   TCP connect (an IPv6 socket for [v6]:port, v4-mapped included)
//!   udp ADDR   one unconnected UDP datagram (sendto)
//!   sleep MS   pause
//!   dns NAME@SERVER     one A query over UDP to SERVER:53; prints `answer=ADDR` per answer
//!   dnstcp NAME@SERVER  the same over TCP
//!   note TEXT  nothing (lets a test give the process a long or odd command line)
//!   loop MS    repeat all the actions after it until MS milliseconds have passed, then
//!              print `iterations=N` (how many complete rounds ran) on stdout
//! Each tcp/udp action counts its outcome (connected, refused, denied (EPERM: iocmon's
//! block mode), sent, failed); the totals end the output as
//! `outcomes connected=N refused=N denied=N sent=N failed=N` (when there were any).
//! ADDR must be loopback: this tool refuses anything else.
//!
//! Run under a netcat name (a symlink called nc, ncat, netcat, ...) it takes a netcat-like
//! command line instead, `[flags] HOST PORT`, and makes one TCP connect (UDP with `-u`),
//! so rule tests can use real argument vectors. It never runs what `-e`/`-c` name.

use std::{
    net::{SocketAddr, TcpStream, UdpSocket},
    process::ExitCode,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// Outcome counters: connected, refused, denied, sent, failed.
static OUTCOMES: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
const CONNECTED: usize = 0;
const REFUSED: usize = 1;
const DENIED: usize = 2;
const SENT: usize = 3;
const FAILED: usize = 4;

fn count(outcome: usize) {
    OUTCOMES[outcome].fetch_add(1, Ordering::Relaxed);
}

/// Prints the totals, when any tcp/udp action ran (tests that compare the whole output of
/// a dns query see no extra line).
fn print_outcomes() {
    let get = |i: usize| OUTCOMES[i].load(Ordering::Relaxed);
    if (0..OUTCOMES.len()).all(|i| get(i) == 0) {
        return;
    }
    println!(
        "outcomes connected={} refused={} denied={} sent={} failed={}",
        get(CONNECTED),
        get(REFUSED),
        get(DENIED),
        get(SENT),
        get(FAILED)
    );
}

fn is_denied(err: &std::io::Error) -> bool {
    err.kind() == std::io::ErrorKind::PermissionDenied
}

fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text.parse().map_err(|_| format!("bad address {text}"))?;
    if !is_loopback(&addr) {
        return Err(format!("refusing non-loopback address {addr}"));
    }
    Ok(addr)
}

/// Netcat flags that take a value (`-w 3` as well as `-w3`).
const NC_VALUE_FLAGS: &[char] = &['w', 'p', 's', 'e', 'c', 'i', 'q', 'x', 'X', 'O', 'I'];

/// `[flags] HOST PORT [PORT...]` as netcat reads it: (udp, host, port).
fn netcat_target(args: &[String]) -> Result<(bool, String, String), String> {
    let mut udp = false;
    let mut operands = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.strip_prefix('-').filter(|flags| !flags.is_empty()) {
            Some(flags) if !flags.starts_with('-') => {
                for (i, flag) in flags.char_indices() {
                    if flag == 'u' {
                        udp = true;
                    }
                    if NC_VALUE_FLAGS.contains(&flag) {
                        if i + flag.len_utf8() == flags.len() {
                            iter.next();
                        }
                        break;
                    }
                }
            }
            Some(_) => {} // long option
            None => operands.push(arg.clone()),
        }
    }
    match operands.as_slice() {
        [host, port, ..] => Ok((udp, host.clone(), port.clone())),
        _ => Err(format!("netcat mode needs HOST PORT in {args:?}")),
    }
}

fn netcat_main(args: &[String]) -> ExitCode {
    let (udp, host, port) = match netcat_target(args) {
        Ok(target) => target,
        Err(err) => {
            eprintln!("ioc-connect: {err}");
            return ExitCode::from(2);
        }
    };
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let action = if udp { "udp" } else { "tcp" };
    run_actions(&[action.to_string(), addr])
}

/// Sends one A query for NAME to SERVER:53 (loopback only) and prints the answers.
fn dns_query(operand: &str, tcp: bool) -> Result<(), String> {
    use simple_dns::{rdata::RData, Name, Packet, Question, CLASS, QCLASS, QTYPE, TYPE};
    use std::io::{Read as _, Write as _};
    let (name, server) = operand
        .split_once('@')
        .ok_or_else(|| format!("expected NAME@SERVER, got {operand}"))?;
    let server = parse_addr(&format!("{server}:53"))?;
    let mut query = Packet::new_query(0x4242);
    query.questions.push(Question::new(
        Name::new(name).map_err(|e| format!("bad name {name}: {e}"))?,
        QTYPE::TYPE(TYPE::A),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    let bytes = query.build_bytes_vec().map_err(|e| e.to_string())?;
    let answer = if tcp {
        let mut stream = TcpStream::connect_timeout(&server, Duration::from_secs(2))
            .map_err(|e| format!("dns tcp {server}: {e}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok();
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        stream.write_all(&framed).map_err(|e| e.to_string())?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).map_err(|e| e.to_string())?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut answer).map_err(|e| e.to_string())?;
        answer
    } else {
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        socket.set_read_timeout(Some(Duration::from_secs(2))).ok();
        socket.send_to(&bytes, server).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 1500];
        let (n, _) = socket
            .recv_from(&mut buf)
            .map_err(|e| format!("dns answer: {e}"))?;
        buf[..n].to_vec()
    };
    let packet = Packet::parse(&answer).map_err(|e| e.to_string())?;
    for record in &packet.answers {
        if let RData::A(a) = &record.rdata {
            println!("answer={}", std::net::Ipv4Addr::from(a.address));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    // Lossy, so a test can give it arguments (and a name) that are not UTF-8.
    let mut argv = std::env::args_os().map(|a| a.to_string_lossy().into_owned());
    let program = argv.next().unwrap_or_default();
    let args: Vec<String> = argv.collect();
    let name = program.rsplit('/').next().unwrap_or_default();
    if matches!(
        name,
        "nc" | "ncat" | "netcat" | "nc.openbsd" | "nc.traditional"
    ) {
        return netcat_main(&args);
    }
    run_actions(&args)
}

fn run_actions(args: &[String]) -> ExitCode {
    if let [first, duration, rest @ ..] = args {
        if first == "loop" {
            let Ok(ms) = duration.parse::<u64>() else {
                eprintln!("ioc-connect: bad loop duration {duration}");
                return ExitCode::from(2);
            };
            let deadline = std::time::Instant::now() + Duration::from_millis(ms);
            let mut iterations = 0u64;
            while std::time::Instant::now() < deadline {
                let code = run_once(rest);
                if code != ExitCode::SUCCESS {
                    return code;
                }
                iterations += 1;
            }
            println!("iterations={iterations}");
            print_outcomes();
            return ExitCode::SUCCESS;
        }
    }
    let code = run_once(args);
    print_outcomes();
    code
}

fn run_once(args: &[String]) -> ExitCode {
    for pair in args.chunks(2) {
        let [action, operand] = pair else {
            eprintln!("ioc-connect: expected ACTION OPERAND pairs");
            return ExitCode::from(2);
        };
        let result = match action.as_str() {
            "tcp" => parse_addr(operand).map(|addr| {
                // Nothing listens on most test addresses: "refused" is the expected outcome.
                match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                    Ok(_) => count(CONNECTED),
                    Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                        count(REFUSED)
                    }
                    Err(err) if is_denied(&err) => count(DENIED),
                    Err(err) => {
                        count(FAILED);
                        eprintln!("ioc-connect: tcp {addr}: {err}");
                    }
                }
            }),
            "udp" => parse_addr(operand).and_then(|addr| {
                let bind: SocketAddr = if addr.is_ipv4() {
                    "127.0.0.1:0".parse().map_err(|_| "bind".to_string())?
                } else {
                    "[::1]:0".parse().map_err(|_| "bind".to_string())?
                };
                let socket = UdpSocket::bind(bind).map_err(|e| format!("bind: {e}"))?;
                match socket.send_to(b"iocmon-test", addr) {
                    Ok(_) => count(SENT),
                    Err(err) if is_denied(&err) => count(DENIED),
                    Err(err) => return Err(format!("udp {addr}: {err}")),
                }
                Ok(())
            }),
            "sleep" => operand
                .parse::<u64>()
                .map(|ms| std::thread::sleep(Duration::from_millis(ms)))
                .map_err(|_| format!("bad sleep {operand}")),
            "note" => Ok(()),
            "dns" | "dnstcp" => dns_query(operand, action == "dnstcp"),
            other => Err(format!("unknown action {other}")),
        };
        if let Err(err) = result {
            eprintln!("ioc-connect: {err}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
