//! Benchmark client: loopback TCP connect+close in a tight loop against its own listener
//! on 127.0.0.1, printing the rate as one JSON object. Used by `cargo xtask bench`.
//!
//! Usage: connect-bench ITERATIONS

use std::{
    net::{TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    process::ExitCode,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

/// Connects not yet accepted before the loop waits: well under the listen backlog (128).
/// A full accept queue drops SYNs, and each drop costs the client a 1 s retransmit,
/// which made wall-clock rates swing tenfold between rounds.
const MAX_IN_FLIGHT: u32 = 64;

/// Close with RST instead of FIN: no TIME_WAIT, so the loop never runs out of ports.
fn abort_on_close(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid socket fd and a pointer to an initialised linger struct of that size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// User + system CPU time of this process (all threads): the connect hooks run in the
/// connecting task, so their cost lands here. Less sensitive than wall time to other
/// load on the machine.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn main() -> ExitCode {
    let Some(iterations) = std::env::args().nth(1).and_then(|n| n.parse::<u32>().ok()) else {
        eprintln!("usage: connect-bench ITERATIONS");
        return ExitCode::from(2);
    };
    let listener = match TcpListener::bind("127.0.0.1:0") {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("connect-bench: bind: {err}");
            return ExitCode::FAILURE;
        }
    };
    let Ok(target) = listener.local_addr() else {
        return ExitCode::FAILURE;
    };
    let accepted = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            abort_on_close(&stream);
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let cpu_before = cpu_seconds();
    let start = Instant::now();
    let mut failures = 0u32;
    for started in 0..iterations {
        // Sleeping, not spinning: waiting must not add CPU time to either side.
        while started.saturating_sub(accepted.load(Ordering::Relaxed)) > MAX_IN_FLIGHT {
            std::thread::sleep(Duration::from_micros(100));
        }
        match TcpStream::connect(target) {
            Ok(stream) => abort_on_close(&stream),
            Err(_) => failures += 1,
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    println!(
        "{{\"iterations\":{iterations},\"failures\":{failures},\"seconds\":{seconds:.6},\"rate\":{:.1},\"cpu_seconds\":{cpu:.6}}}",
        f64::from(iterations) / seconds
    );
    ExitCode::SUCCESS
}
