//! DNS parsing rate, domain-indicator lookups and the process cache's cost per process,
//! each against a baseline measured in the same run. No criterion: best of five timed
//! rounds is enough for a ratio and keeps the dependency tree small.
//!
//! `cargo bench -p ioc-userspace --bench ingest` prints a Markdown section; with
//! `IOCMON_BENCH_DOC=docs/BENCHMARKS.md` it also writes it there between the
//! `ingest-bench` markers.

use std::{hint::black_box, time::Instant};

use iocmon::{
    dns::{self, DomainIndex},
    event::ExecRecord,
    ioc::{IdAllocator, IndicatorMeta, IocSet, IocValue, Location, ParsedIndicator},
    process::{CacheLimits, ProcessCache},
};

const START: &str = "<!-- ingest-bench:start -->";
const END: &str = "<!-- ingest-bench:end -->";

/// Best-of-five seconds per iteration of `f` run `n` times.
fn per_iteration(n: u32, mut f: impl FnMut(u32)) -> f64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for i in 0..n {
                f(i);
            }
            start.elapsed().as_secs_f64() / f64::from(n)
        })
        .fold(f64::INFINITY, f64::min)
}

/// A typical answer: A query for a three-label name, a CNAME and two addresses.
fn answer_bytes() -> Vec<u8> {
    use simple_dns::{
        rdata, rdata::RData, Name, Packet, Question, ResourceRecord, CLASS, QCLASS, QTYPE, TYPE,
    };
    let mut packet = Packet::new_reply(7);
    packet.questions.push(Question::new(
        Name::new_unchecked("www.justkiddin.live"),
        QTYPE::TYPE(TYPE::A),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    packet.answers.push(ResourceRecord::new(
        Name::new_unchecked("www.justkiddin.live"),
        CLASS::IN,
        60,
        RData::CNAME(rdata::CNAME(Name::new_unchecked("edge.cdn.example"))),
    ));
    for last in [1u8, 2] {
        packet.answers.push(ResourceRecord::new(
            Name::new_unchecked("edge.cdn.example"),
            CLASS::IN,
            60,
            RData::A(rdata::A {
                address: u32::from_be_bytes([127, 0, 0, last]),
            }),
        ));
    }
    packet.build_bytes_vec().expect("a valid packet")
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn main() {
    // First, before other work leaves freed heap behind to hide its growth.
    // Process cache: 20,000 processes with a typical argv, cost by the cache's own
    // account and by resident memory.
    let before = rss_kib();
    let mut cache = ProcessCache::new(CacheLimits {
        max_processes: 1_000_000,
        max_bytes: usize::MAX,
    });
    let processes = 20_000u32;
    let insert = per_iteration(1, |_| {
        for tgid in 0..processes {
            cache.on_exec(&ExecRecord {
                boot_ns: 1,
                start_boot_ns: 1,
                cgroup_id: 1,
                tgid: tgid + 10,
                ppid: 1,
                uid: 0,
                euid: 0,
                gid: 0,
                comm: "nc".into(),
                filename: "/usr/bin/nc".into(),
                args: ["nc", "-w", "3", "192.0.2.10", "514"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                args_truncated: false,
            });
        }
    }) / f64::from(processes);
    let after = rss_kib();
    let accounted = cache.bytes() as f64 / cache.len() as f64;
    let resident = (after.saturating_sub(before) as f64 * 1024.0) / f64::from(processes);

    // DNS: parse vs a baseline that touches every byte (sum) of the same message.
    let bytes = answer_bytes();
    let baseline = per_iteration(200_000, |_| {
        black_box(black_box(&bytes).iter().map(|&b| u64::from(b)).sum::<u64>());
    });
    let parse = per_iteration(200_000, |_| {
        black_box(dns::parse(black_box(&bytes)).ok());
    });

    // Domain lookups in 100,000 domain indicators, for a name four labels deep.
    let indicators: Vec<ParsedIndicator> = (0..100_000)
        .map(|i| {
            let value = IocValue::Domain(format!("host{i}.example"));
            let meta = IndicatorMeta::new(&value, "bench", Location::Line(1));
            ParsedIndicator { value, meta }
        })
        .collect();
    let index = DomainIndex::from_set(&IocSet::build(indicators, &mut IdAllocator::default()));
    let lookup = per_iteration(200_000, |i| {
        black_box(index.lookup(black_box(if i % 2 == 0 {
            "a.b.host77.example"
        } else {
            "a.b.nothing.example"
        })));
    });

    let section = format!(
        "{START}\n\
         Measured with `cargo bench -p ioc-userspace --bench ingest` (one core, release\n\
         build, best of five rounds).\n\n\
         | measure | value |\n\
         |---|---|\n\
         | baseline: sum the {len} bytes of a DNS answer | {base:.0} ns |\n\
         | parse that answer (simple-dns; question, CNAME, 2 A) | {parse:.0} ns = **{parse_rate:.0} messages/s per core** ({parse_ratio:.1}x baseline) |\n\
         | domain lookup with parents, 100,000 domain indicators | {lookup:.0} ns ({lookup_ratio:.1}x baseline) |\n\
         | process cache: insert one exec record | {insert:.0} ns |\n\
         | process cache: cost per process (own account) | {accounted:.0} bytes |\n\
         | process cache: cost per process (resident memory) | {resident:.0} bytes |\n\
         \n{END}",
        len = bytes.len(),
        base = baseline * 1e9,
        parse = parse * 1e9,
        parse_rate = 1.0 / parse,
        parse_ratio = parse / baseline,
        lookup = lookup * 1e9,
        lookup_ratio = lookup / baseline,
        insert = insert * 1e9,
    );
    println!("{section}");
    if let Ok(doc) = std::env::var("IOCMON_BENCH_DOC") {
        let current = std::fs::read_to_string(&doc).unwrap_or_default();
        let updated = match (current.find(START), current.find(END)) {
            (Some(s), Some(e)) if e > s => {
                format!("{}{section}{}", &current[..s], &current[e + END.len()..])
            }
            _ => format!("{current}\n{section}\n"),
        };
        if let Err(err) = std::fs::write(&doc, updated) {
            eprintln!("ingest bench: writing {doc}: {err}");
        }
    }
}
