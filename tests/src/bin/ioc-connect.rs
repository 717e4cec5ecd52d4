//! Test client: performs the network actions named on its command line, in order, and
//! exits. Integration tests run it (under chosen names) so the agent sees real
//! connections from a process whose pid the test knows.
//!
//! Usage: ioc-connect ACTION ADDR [ACTION ADDR]...
//!   tcp ADDR   TCP connect (an IPv6 socket for [v6]:port, v4-mapped included)
//!   udp ADDR   one unconnected UDP datagram (sendto)
//!   sleep MS   pause
//! ADDR must be loopback: this tool refuses anything else.

use std::{
    net::{SocketAddr, TcpStream, UdpSocket},
    process::ExitCode,
    time::Duration,
};

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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [action, operand] = pair else {
            eprintln!("ioc-connect: expected ACTION OPERAND pairs");
            return ExitCode::from(2);
        };
        let result = match action.as_str() {
            "tcp" => parse_addr(operand).map(|addr| {
                // Nothing listens on most test addresses: "refused" is the expected outcome.
                match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                    Err(err) if err.kind() != std::io::ErrorKind::ConnectionRefused => {
                        eprintln!("ioc-connect: tcp {addr}: {err}");
                    }
                    _ => {}
                }
            }),
            "udp" => parse_addr(operand).and_then(|addr| {
                let bind: SocketAddr = if addr.is_ipv4() {
                    "127.0.0.1:0".parse().map_err(|_| "bind".to_string())?
                } else {
                    "[::1]:0".parse().map_err(|_| "bind".to_string())?
                };
                let socket = UdpSocket::bind(bind).map_err(|e| format!("bind: {e}"))?;
                socket
                    .send_to(b"iocmon-test", addr)
                    .map_err(|e| format!("udp {addr}: {e}"))?;
                Ok(())
            }),
            "sleep" => operand
                .parse::<u64>()
                .map(|ms| std::thread::sleep(Duration::from_millis(ms)))
                .map_err(|_| format!("bad sleep {operand}")),
            other => Err(format!("unknown action {other}")),
        };
        if let Err(err) = result {
            eprintln!("ioc-connect: {err}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
