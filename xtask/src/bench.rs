//! `cargo xtask bench`: loopback TCP connect+close rate with the agent attached (and
//! 100,000 indicators loaded) against the same loop without it, measured in one run, in
//! alternating rounds. Results go to docs/BENCHMARKS.md between markers.

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{anyhow, bail, Context as _, Result};

use crate::{build_agent, cargo, status, workspace_root};

pub struct Plan {
    pub iterations: u32,
    pub indicators: u32,
    pub rounds: u32,
    /// Indicators parsed and loaded by the load benchmark.
    pub load_indicators: u32,
}

const START: &str = "<!-- connect-bench:start -->";
const END: &str = "<!-- connect-bench:end -->";

pub fn run(plan: &Plan) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the benchmark loads the agent: run it as root");
    }
    let agent = build_agent(true)?;
    status(cargo().args([
        "build",
        "--release",
        "--package",
        "iocmon-tests",
        "--bin",
        "connect-bench",
        "--bin",
        "load-bench",
    ]))?;
    let client = agent.with_file_name("connect-bench");
    let iocs = std::env::temp_dir().join("iocmon-bench-iocs.txt");
    std::fs::write(&iocs, indicator_file(plan.indicators))?;

    let load_before = loadavg();
    let mut without = Vec::new();
    let mut with = Vec::new();
    let mut cpu_without = Vec::new();
    let mut cpu_with = Vec::new();
    let mut agent_rss_kib = 0;
    // Warm-up, not recorded: first-run effects (page cache, listener set-up).
    measure(&client, plan.iterations / 10)?;
    // Rounds alternate, so slow drift in the machine's load hits both sides alike.
    for round in 1..=plan.rounds {
        let (rate, cpu) = measure(&client, plan.iterations)?;
        eprintln!("xtask: round {round}: without agent {rate:.0} connects/s, {cpu:.2} us CPU each");
        without.push(rate);
        cpu_without.push(cpu);
        let mut running = start_agent(&agent, &iocs)?;
        let rate = measure(&client, plan.iterations);
        agent_rss_kib = agent_rss_kib.max(rss_kib(running.child.id()).unwrap_or(0));
        stop_agent(&mut running.child)?;
        let (rate, cpu) = rate?;
        eprintln!("xtask: round {round}: with agent    {rate:.0} connects/s, {cpu:.2} us CPU each");
        with.push(rate);
        cpu_with.push(cpu);
    }
    let base = median(&mut without);
    let attached = median(&mut with);
    let ratio = attached / base;
    let cpu_base = median(&mut cpu_without);
    let cpu_attached = median(&mut cpu_with);
    let load_after = loadavg();
    let binary_kib = std::fs::metadata(&agent)
        .map(|m| m.len() / 1024)
        .unwrap_or(0);
    let section = format!(
        "{START}\n\
         Measured {date} on this machine ({cpus} CPUs, kernel {kernel}) with\n\
         `cargo xtask bench --iterations {it} --indicators {ind} --rounds {rounds}`:\n\
         loopback TCP connect+close to a non-indicator listener, {it} per round, median of\n\
         {rounds} alternating rounds, agent (release build) loaded with {ind} indicators.\n\n\
         | measure | value |\n\
         |---|---|\n\
         | without agent (baseline) | {base:.0} connects/s |\n\
         | with agent attached | {attached:.0} connects/s |\n\
         | **rate ratio with / without** | **{ratio:.3}** |\n\
         | CPU per connect+close, without agent | {cpu_base:.2} us |\n\
         | CPU per connect+close, with agent | {cpu_attached:.2} us |\n\
         | **CPU ratio with / without** | **{cpu_ratio:.3}** |\n\
         | load average before / after | {load_before} / {load_after} |\n\
         | agent resident memory (peak seen) | {rss} KiB |\n\
         | agent binary (release) | {binary_kib} KiB |\n\
         \n{END}",
        date = today(),
        cpus = std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel = kernel_release(),
        it = plan.iterations,
        ind = plan.indicators,
        rounds = plan.rounds,
        rss = agent_rss_kib,
        cpu_ratio = cpu_attached / cpu_base,
    );
    println!("{section}");
    let doc = workspace_root().join("docs/BENCHMARKS.md");
    write_section(&doc, START, END, &section)?;
    memory_bench(&agent, plan.indicators, &doc)?;
    load_bench(&agent, plan.load_indicators, &doc)
}

const MEMORY_START: &str = "<!-- memory-bench:start -->";
const MEMORY_END: &str = "<!-- memory-bench:end -->";

/// Resident memory (KiB) of one agent run: 2 s after ready, 2 s after a reload, peak.
struct Memory {
    ready: u64,
    reloaded: u64,
    peak: u64,
}

/// Starts the agent on `initial`, replaces the file with `updated`, sends SIGHUP.
fn memory_of(agent: &Path, file: &Path, initial: &str, updated: &str) -> Result<Memory> {
    std::fs::write(file, initial)?;
    let mut running = start_agent(agent, file)?;
    std::thread::sleep(Duration::from_secs(2));
    let ready = rss_kib(running.child.id()).unwrap_or(0);
    std::fs::write(file, updated)?;
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(running.child.id() as libc::pid_t, libc::SIGHUP) };
    let reload = running.wait_for("reloaded indicators", Duration::from_secs(300));
    std::thread::sleep(Duration::from_secs(2));
    let reloaded = rss_kib(running.child.id()).unwrap_or(0);
    let peak = hwm_kib(running.child.id()).unwrap_or(0);
    stop_agent(&mut running.child)?;
    let _ = std::fs::remove_file(file);
    reload?;
    Ok(Memory {
        ready,
        reloaded,
        peak,
    })
}

/// The `ip:port` values of the memory benchmark before and after a 1% change (the first
/// hundredth removed, as many new ones added).
fn memory_values(count: u32) -> (Vec<String>, Vec<String>) {
    let before: Vec<String> = indicator_file(count)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            if l.contains(':') {
                l.to_owned()
            } else {
                format!("{l}:443")
            }
        })
        .collect();
    let changed = (count / 100) as usize;
    let mut after: Vec<String> = before[changed..].to_vec();
    after.extend((0..changed).map(|i| format!("127.255.{}.{}:4444", (i >> 8) & 0xff, i & 0xff)));
    (before, after)
}

/// A ThreatFox JSON export (`/export/json/recent/` layout) of `values`, with the
/// metadata real entries carry, cycling through a few families as real exports do.
fn threatfox_export(values: &[String]) -> String {
    const FAMILIES: [(&str, &str, &str); 4] = [
        ("elf.mirai", "Mirai", "botnet_cc"),
        ("elf.bashlite", "Bashlite", "botnet_cc"),
        ("elf.aisuru", "Aisuru", "payload_delivery"),
        ("unknown", "Unknown malware", "botnet_cc"),
    ];
    let mut export = serde_json::Map::new();
    for (i, value) in values.iter().enumerate() {
        let (malware, printable, threat) = FAMILIES[i % FAMILIES.len()];
        let entry = serde_json::json!({
            "ioc_value": value,
            "ioc_type": "ip:port",
            "threat_type": threat,
            "malware": malware,
            "malware_alias": null,
            "malware_printable": printable,
            "first_seen_utc": "2026-07-24 13:05:11",
            "last_seen_utc": null,
            "confidence_level": 100,
            "is_compromised": false,
            "reference": null,
            "tags": printable.to_ascii_lowercase(),
            "anonymous": 0,
            "reporter": "bench"
        });
        export.insert((2_000_000 + i).to_string(), serde_json::json!([entry]));
    }
    serde_json::to_string_pretty(&export).unwrap_or_default()
}

/// The agent's resident memory with `count` indicators, as a plain list and as a
/// ThreatFox JSON export, at start and after a reload that changes 1% of them, against
/// the same agent with the bundled two-line sample.
fn memory_bench(agent: &Path, count: u32, doc: &Path) -> Result<()> {
    let sample = workspace_root().join("ioc-userspace/samples/loopback-iocs.txt");
    let mut base = start_agent(agent, &sample)?;
    std::thread::sleep(Duration::from_secs(2));
    let base_kib = rss_kib(base.child.id()).unwrap_or(0);
    stop_agent(&mut base.child)?;

    let (before, after) = memory_values(count);
    let lines = |values: &[String]| values.join("\n") + "\n";
    let tmp = std::env::temp_dir();
    let plain = memory_of(
        agent,
        &tmp.join("iocmon-bench-memory.txt"),
        &lines(&before),
        &lines(&after),
    )?;
    let threatfox_text = threatfox_export(&before);
    let json_mib = threatfox_text.len() as f64 / 1048576.0;
    let threatfox = memory_of(
        agent,
        &tmp.join("iocmon-bench-memory.json"),
        &threatfox_text,
        &threatfox_export(&after),
    )?;
    let per = |kib: u64| kib.saturating_sub(base_kib) as f64 * 1024.0 / f64::from(count);
    let row = |name: &str, m: &Memory| {
        format!(
            "| {name} | {} KiB ({:.0} B each) | {} KiB ({:.0} B each) | {} KiB |\n",
            m.ready,
            per(m.ready),
            m.reloaded,
            per(m.reloaded),
            m.peak
        )
    };
    let section = format!(
        "{MEMORY_START}\n\
         Measured {date} with `cargo xtask bench --indicators {count}` (the memory step):\n\
         the release agent's resident memory (VmRSS) 2 s after it is ready with {count}\n\
         loopback `ip:port` indicators, then 2 s after a SIGHUP reload of the file with\n\
         {changed} removed and {changed} added; once as a plain list, once as a ThreatFox\n\
         JSON export ({json_mib:.0} MiB, every entry with its threat type, family, tags,\n\
         reporter and times). Bytes each: over the baseline, per indicator. Baseline: the\n\
         same agent with the bundled two-indicator sample, {base_kib} KiB. Kernel maps are\n\
         not in these figures (see the load section).\n\n\
         | file | ready | after the 1% reload | peak (VmHWM) |\n\
         |---|---|---|---|\n\
         {plain_row}{threatfox_row}\
         \n{MEMORY_END}",
        date = today(),
        changed = count / 100,
        plain_row = row("plain list", &plain),
        threatfox_row = row("ThreatFox JSON", &threatfox),
    );
    println!("{section}");
    write_section(doc, MEMORY_START, MEMORY_END, &section)
}

const LOAD_START: &str = "<!-- load-bench:start -->";
const LOAD_END: &str = "<!-- load-bench:end -->";

/// Parse-and-load of many indicators into the real kernel maps, and a 1% reload.
fn load_bench(agent: &Path, count: u32, doc: &Path) -> Result<()> {
    let bench = agent.with_file_name("load-bench");
    let output = Command::new(&bench)
        .arg(count.to_string())
        .output()
        .context("running load-bench")?;
    if !output.status.success() {
        bail!(
            "load-bench failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let r: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let f = |key: &str| r[key].as_f64().unwrap_or(f64::NAN);
    let n = |key: &str| r[key].as_u64().unwrap_or(0);
    let load_total = f("parse_s") + f("build_s") + f("kernel_load_s") + f("map_fill_s");
    let reload_total = f("reload_prepare_s") + f("reload_apply_s");
    let mut maps = String::new();
    for map in r["maps"].as_array().into_iter().flatten() {
        maps.push_str(&format!(
            "| kernel map `{}` | {:.1} MiB |\n",
            map["name"].as_str().unwrap_or("?"),
            map["bytes"].as_f64().unwrap_or(0.0) / 1048576.0
        ));
    }
    let section = format!(
        "{LOAD_START}\n\
         Measured {date} with `cargo xtask bench` (the `load-bench` step,\n\
         `target/release/load-bench {count}`): {count} loopback indicators in a plain list\n\
         (nine in ten `ip:port`, one in ten addresses) parsed, de-duplicated, turned into\n\
         {entries} kernel entries and written into the real maps; then a 1% difference\n\
         ({upserted} added or changed, {removed} removed) applied the way a reload does.\n\
         Baseline: reading the same file and counting its lines.\n\n\
         | measure | value |\n\
         |---|---|\n\
         | baseline: read + count lines | {read:.3} s |\n\
         | parse (readers, validation) | {parse:.3} s ({parse_ratio:.0}x baseline) |\n\
         | build set, ids, kernel entries | {build:.3} s |\n\
         | load programs and maps | {kload:.3} s |\n\
         | fill the maps | {fill:.3} s |\n\
         | **full load** | **{load_total:.2} s** |\n\
         | 1% reload: parse, build, diff | {rprep:.3} s |\n\
         | 1% reload: apply to kernel maps | {rapply:.3} s |\n\
         | **1% reload / full load** | **{ratio:.2}** |\n\
         | peak resident memory (VmHWM) | {rss:.0} MiB |\n\
         {maps}\n{LOAD_END}",
        date = today(),
        entries = n("kernel_entries"),
        upserted = n("reload_upserted"),
        removed = n("reload_removed"),
        read = f("read_s"),
        parse = f("parse_s"),
        parse_ratio = f("parse_s") / f("read_s"),
        build = f("build_s"),
        kload = f("kernel_load_s"),
        fill = f("map_fill_s"),
        rprep = f("reload_prepare_s"),
        rapply = f("reload_apply_s"),
        ratio = reload_total / load_total,
        rss = n("peak_rss_kib") as f64 / 1024.0,
    );
    println!("{section}");
    write_section(doc, LOAD_START, LOAD_END, &section)
}

/// `count` loopback indicators, none of them 127.0.0.1 (the benchmark's listener): nine
/// in ten `ip:port`, one in ten address-only.
fn indicator_file(count: u32) -> String {
    let mut text = String::with_capacity(count as usize * 24);
    text.push_str("# generated by cargo xtask bench: loopback indicators only\n");
    for i in 0..count {
        let host = i + 256; // skips 127.0.0.x
        let (b, c, d) = ((host >> 16) & 0xff, (host >> 8) & 0xff, host & 0xff);
        if i.is_multiple_of(10) {
            text.push_str(&format!("127.{b}.{c}.{d}\n"));
        } else {
            text.push_str(&format!("127.{b}.{c}.{d}:{}\n", 1024 + (i % 50_000)));
        }
    }
    text
}

/// (connects per second of wall time, CPU microseconds per connect).
fn measure(client: &Path, iterations: u32) -> Result<(f64, f64)> {
    let output = Command::new(client)
        .arg(iterations.to_string())
        .output()
        .context("running connect-bench")?;
    if !output.status.success() {
        bail!(
            "connect-bench failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let result: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    // A full accept backlog occasionally refuses a connect on a loaded machine; more
    // than one in a thousand means the measurement is off.
    let failures = result["failures"].as_u64().unwrap_or(u64::MAX);
    if failures > u64::from(iterations / 1000) {
        bail!("connect-bench had too many failed connects: {result}");
    }
    if failures > 0 {
        eprintln!("xtask: note: {failures} of {iterations} connects failed in this round");
    }
    let rate = result["rate"]
        .as_f64()
        .ok_or_else(|| anyhow!("no rate in {result}"))?;
    let cpu = result["cpu_seconds"].as_f64().unwrap_or(f64::NAN);
    Ok((rate, cpu * 1e6 / f64::from(iterations)))
}

/// A running agent and the lines of its stderr.
struct RunningAgent {
    child: Child,
    stderr: mpsc::Receiver<String>,
}

impl RunningAgent {
    /// Waits for a stderr line containing `text`.
    fn wait_for(&self, text: &str, timeout: Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(text) => return Ok(()),
                Ok(_) => {}
                Err(_) => bail!("iocmon printed no {text:?} within {timeout:?}"),
            }
        }
    }
}

fn start_agent(agent: &Path, iocs: &Path) -> Result<RunningAgent> {
    // --no-config: an installed service configuration must not change what is measured.
    let mut child = Command::new(agent)
        .args(["run", "--no-config", "--iocs"])
        .arg(iocs)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting iocmon")?;
    let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut running = RunningAgent { child, stderr: rx };
    if let Err(err) = running.wait_for(": ready: ", Duration::from_secs(120)) {
        let _ = running.child.kill();
        return Err(err);
    }
    Ok(running)
}

fn stop_agent(child: &mut Child) -> Result<()> {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait()?;
    if !status.success() {
        bail!("iocmon exited with {status}");
    }
    Ok(())
}

fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

fn hwm_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// A `/proc/PID/status` field in KiB.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The 1-minute load average: other work on the machine skews wall-time rates.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Replaces the text between the markers (or appends it) in `path`.
fn write_section(path: &Path, start_marker: &str, end_marker: &str, section: &str) -> Result<()> {
    let current = std::fs::read_to_string(path).unwrap_or_default();
    let updated = match (current.find(start_marker), current.find(end_marker)) {
        (Some(start), Some(end)) if end > start => format!(
            "{}{}{}",
            &current[..start],
            section,
            &current[end + end_marker.len()..]
        ),
        _ => format!("{current}\n{section}\n"),
    };
    std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))
}
