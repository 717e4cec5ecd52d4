//! `iocmon run`: load indicators, load and attach the programs, and turn kernel events
//! into records until SIGINT/SIGTERM.

mod start;

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result};
use ioc_common::{SETTING_ALL_CONNECTIONS, SETTING_OUTCOMES};
use tokio::signal::unix::{signal, SignalKind};

use self::start::{start_kernel, Pinning, Started};
use crate::{
    clock::BootClock,
    container::ContainerResolver,
    enforce::Enforcement,
    health::HealthClock,
    ioc::{
        feed::{fetch_and_log, spawn_fetcher, FeedConfig},
        Filter, Format,
    },
    kernel::{cgroup::cgroup2_root, Kernel, KernelEntries, KernelStats, MatchOptions},
    pipeline::{Pipeline, PipelineOptions, PipelineParts},
    privilege,
    process::{CacheLimits, ProcessCache},
    reconfigure,
    reload::{IndicatorSources, Reloader},
    rules::RuleSet,
    sink,
    status::{self, AgentStatus, ReloadStatus},
};

/// Everything `iocmon run` needs, resolved from the command line.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub ioc_files: Vec<PathBuf>,
    /// Indicator file format; detected per file when `Format::Auto`.
    pub ioc_format: Format,
    /// Remote feeds, fetched in the background and cached on disk.
    pub feeds: Vec<FeedConfig>,
    pub filter: Filter,
    /// How often indicator files are checked for changes (`None`: only on SIGHUP).
    pub reload_interval: Option<Duration>,
    /// Exclusion rules file; the embedded defaults when `None`.
    pub rules_file: Option<PathBuf>,
    pub all_connections: bool,
    pub show_excluded: bool,
    /// A DnsEvents row for every answered query, not only indicator hits.
    pub all_dns: bool,
    /// A ConnectionSuccess/ConnectionFailed record after each reported TCP connect.
    pub connection_outcomes: bool,
    /// Cap on how long a resolved address of a domain indicator stays an indicator.
    pub resolved_ttl_max: Duration,
    pub match_options: MatchOptions,
    pub cgroup: Option<PathBuf>,
    pub device_name: Option<String>,
    pub watched_comms: Vec<String>,
    pub queue_capacity: usize,
    pub ringbuf_bytes: u32,
    pub stats_interval: Duration,
    /// Where records go (`--output`); standard output when empty.
    pub outputs: Vec<sink::SinkSpec>,
    /// Seconds between health records (`None`: only the one at exit).
    pub health_interval: Option<Duration>,
    /// Service mode: keep the kernel objects pinned across restarts.
    pub pin: Option<PinOptions>,
}

/// Where service mode keeps its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinOptions {
    /// bpffs directory holding the pinned programs, links and maps.
    pub dir: PathBuf,
    /// The agent's status for `iocmon status`.
    pub status_file: PathBuf,
}

/// Produces the options afresh (configuration file and command line) at each SIGHUP.
pub type Reconfigure = Box<dyn Fn() -> Result<RunOptions>>;

pub fn run(options: RunOptions, reconfigure: Option<Reconfigure>) -> Result<()> {
    crate::memory::tune_allocator();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the event loop")?;
    runtime.block_on(run_async(options, reconfigure))
}

/// The device's name as Defender shows it: the host name, lower-case.
fn device_name(explicit: Option<String>) -> String {
    explicit.unwrap_or_else(|| {
        nix::unistd::gethostname()
            .map(|name| name.to_string_lossy().to_lowercase())
            .unwrap_or_else(|_| "localhost".to_string())
    })
}

async fn run_async(mut options: RunOptions, reconfigure: Option<Reconfigure>) -> Result<()> {
    let (loads_done, mut loaded) = tokio::sync::mpsc::unbounded_channel();
    let mut reloader = Reloader::new(
        IndicatorSources {
            files: options.ioc_files.clone(),
            format: options.ioc_format,
            feeds: options.feeds.clone(),
            filter: options.filter.clone(),
            match_options: options.match_options.clone(),
        },
        options.rules_file.clone(),
        loads_done,
    );
    // Service mode: lock the pin directory and see what a previous agent left there.
    let pinning = options
        .pin
        .as_ref()
        .map(|pin| Pinning::open(&pin.dir))
        .transpose()?;
    if let Some(pinning) = &pinning {
        pinning.carry_over_ids(&mut reloader);
    }
    // A feed never fetched before is fetched now, so a first start has its indicators;
    // later starts use the cached copy and refresh in the background.
    let mut fetched_now = Vec::new();
    for feed in &options.feeds {
        fetched_now.push(!feed.cache_path().exists() && fetch_and_log(feed));
        if !feed.cache_path().exists() {
            log::warn!(
                "feed {} has no cached copy yet: starting without it",
                crate::text::quote_for_log(&feed.url, 200)
            );
        }
    }
    let (parsed, load_report) = reloader.sources().read()?;
    if load_report.filtered_out > 0 {
        log::info!(
            "filters dropped {} of {} indicators read",
            load_report.filtered_out,
            load_report.read
        );
    }
    let iocs = reloader.build_set(parsed);
    let rules = match &options.rules_file {
        Some(path) => RuleSet::load(path)?,
        None => RuleSet::builtin()?,
    };
    if iocs.is_empty() && !options.all_connections {
        log::warn!("no indicators loaded: only watched network tools will be reported");
    }
    let entries = KernelEntries::from_set(&iocs, &options.match_options);
    let cgroup = cgroup2_root(options.cgroup.as_deref())?;

    // Handlers go in before readiness is announced, so a stop right after it is clean.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let Started {
        mut kernel,
        attached,
        generation,
        adopted,
    } = start_kernel(&options, pinning.as_ref(), entries, &cgroup)?;
    // The load's parse trees and the kernel entries are gone; give their memory back.
    crate::memory::release_freed();
    let mut reader = kernel.take_event_reader()?;
    // Before any thread exists (capabilities are per thread; new threads inherit them).
    let capabilities = privilege::drop_all_but(&privilege::needed_after_attach())
        .context("dropping capabilities")?;

    let clock = BootClock::new().context("reading the boot and wall clocks")?;
    let device_name = device_name(options.device_name.clone());
    let outputs = if options.outputs.is_empty() {
        vec!["stdout".parse()?]
    } else {
        options.outputs.clone()
    };
    let sinks = sink::Sinks::start(&outputs, options.queue_capacity, &device_name)
        .context("starting the outputs")?;
    let mut pipeline = Pipeline::new(PipelineParts {
        iocs,
        rules,
        processes: ProcessCache::new(CacheLimits::default()),
        containers: ContainerResolver::new(&cgroup),
        clock,
        device_name,
        options: pipeline_options(&options),
        sinks,
    });
    // After the exec tracepoint is attached, so no process falls between the two.
    let seeded = pipeline.seed_processes();
    if let Some(pinning) = &pinning {
        pinning.retire_others(generation.as_ref(), &mut pipeline);
    }
    let (feed_updated, mut feed_updates) = tokio::sync::mpsc::unbounded_channel();
    for (feed, fetched) in options.feeds.iter().zip(fetched_now) {
        let updated = feed_updated.clone();
        let first_delay = if fetched {
            feed.interval
        } else {
            Duration::ZERO
        };
        spawn_fetcher(feed.clone(), first_delay, move |url| {
            updated.send(url.to_string()).is_ok()
        })
        .context("starting a feed fetcher")?;
    }
    let summary = pipeline.iocs().summary();
    let pinned_note = match &generation {
        Some(generation) if adopted => format!(
            "; adopted pinned {} ({} bytes of events waiting)",
            generation.path.display(),
            reader.pending_bytes()
        ),
        Some(generation) => format!("; pinned as {}", generation.path.display()),
        None => String::new(),
    };
    log::info!(
        "ready: {} programs attached to {} (program ids {}); {} indicators loaded \
         ({}); {} exclusion rules from {}; {} processes known; mode {}; capabilities {}{}",
        attached.len(),
        cgroup.display(),
        attached
            .iter()
            .map(|p| p.id.to_string())
            .collect::<Vec<_>>()
            .join(","),
        pipeline.iocs().len(),
        summary.types_text(),
        pipeline.rules().len(),
        pipeline.rules().origin(),
        seeded,
        options.match_options.enforcement.describe(),
        privilege::describe(&capabilities),
        pinned_note,
    );
    let status = options.pin.as_ref().map(|pin| StatusWriter {
        path: pin.status_file.clone(),
        started: status::timestamp(std::time::SystemTime::now()),
        generation: generation
            .as_ref()
            .map(|g| g.path.display().to_string())
            .unwrap_or_default(),
        adopted,
    });
    let write_status =
        |state: &str, options: &RunOptions, reloader: &Reloader, pipeline: &Pipeline| {
            if let Some(writer) = &status {
                writer.write(state, options, reloader, pipeline);
            }
        };
    write_status("running", &options, &reloader, &pipeline);

    let mut drops = DropWatch::default();
    let mut tick = tokio::time::interval(options.stats_interval);
    tick.tick().await;
    // Polling a few files' metadata is cheaper and more portable than inotify, and sees
    // files replaced by rename (the way feeds and config managers write them).
    let mut file_check =
        tokio::time::interval(options.reload_interval.unwrap_or(Duration::from_secs(3600)));
    file_check.tick().await;
    let mut health = HealthClock::default();
    let mut health_tick =
        tokio::time::interval(options.health_interval.unwrap_or(Duration::from_secs(3600)));
    health_tick.tick().await;
    let mut batch = Vec::new();
    // Resolved addresses expire with their TTL, checked every second.
    let mut expiry = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            read = reader.read_batch(&mut batch) => {
                read?;
                for record in batch.drain(..) {
                    pipeline.handle(&record);
                    // An answer's addresses go into the kernel before the next record,
                    // not after the batch: the asking process connects as soon as it
                    // reads the answer, and a batch can hold thousands of records.
                    track_resolved(&mut kernel, &mut pipeline, &options.match_options.enforcement);
                }
                // Pinned, the ring outlives us: its records are given back only once the
                // outputs have theirs, so a kill at any moment loses nothing.
                if pinning.is_some() && !pipeline.sinks().wait_settled(SETTLE_TIMEOUT) {
                    log::debug!("outputs still busy after {SETTLE_TIMEOUT:?}; committing");
                }
                reader.commit();
            }
            _ = expiry.tick() => {
                if let Err(err) = kernel.expire_resolved() {
                    log::warn!("expiring resolved addresses: {err:#}");
                }
                pipeline.expire_queries();
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = tick.tick() => {
                drops.check(kernel.stats()?, &pipeline);
                write_status("running", &options, &reloader, &pipeline);
            }
            _ = health_tick.tick(), if options.health_interval.is_some() => {
                health.emit(&kernel, &pipeline, &options.match_options.enforcement.describe(), false);
            }
            _ = sighup.recv() => {
                if let Some(reconfigure) = &reconfigure {
                    apply_configuration(reconfigure, &mut options, &mut kernel, &mut pipeline, &mut reloader);
                }
                reloader.start("SIGHUP");
                reloader.reload_rules(&mut pipeline);
            }
            _ = file_check.tick(), if options.reload_interval.is_some() => {
                if reloader.files_changed() {
                    reloader.start("file changed");
                }
            }
            Some(done) = loaded.recv() => {
                reloader.finish(done, &mut kernel, &mut pipeline);
                write_status("running", &options, &reloader, &pipeline);
            }
            Some(_url) = feed_updates.recv() => reloader.start("feed updated"),
        }
    }

    reader.drain(|record| pipeline.handle(record))?;
    let kernel_stats = kernel.stats()?;
    health.emit(
        &kernel,
        &pipeline,
        &options.match_options.enforcement.describe(),
        true,
    );
    drop(reader);
    drop(kernel);
    match &generation {
        Some(generation) => log::info!(
            "programs stay attached (pinned in {}); `iocmon unpin --pin-dir {}` removes them",
            generation.path.display(),
            options
                .pin
                .as_ref()
                .map(|p| p.dir.display().to_string())
                .unwrap_or_default()
        ),
        None => log::info!("detached all programs from {}", cgroup.display()),
    }
    write_status("stopped", &options, &reloader, &pipeline);
    let pipeline_stats = pipeline.stats();
    let rule_counts = pipeline.rules().suppression_counts();
    let sinks = pipeline.close();
    let sink_drops: u64 = sinks.iter().map(|(_, s)| s.lost()).sum();
    log::info!(
        "stopped: {} kernel events read, {} records written, kernel drops {} \
         (ring buffer full), sink drops {}, undecodable {}, excluded by rules {}",
        pipeline_stats.records_read,
        pipeline_stats.rows_emitted,
        kernel_stats.ringbuf_full,
        sink_drops,
        pipeline_stats.decode_errors,
        pipeline_stats.excluded,
    );
    for count in rule_counts.iter().filter(|c| c.excluded > 0) {
        log::info!("rule {:?} excluded {} events", count.rule, count.excluded);
    }
    Ok(())
}

/// Re-reads the configuration and applies what can change while running: indicator
/// sources and filters, match and block options (the maps are re-synced by the indicator
/// reload that follows), rules, reporting choices and watched names. A bad configuration
/// changes nothing.
fn apply_configuration(
    reconfigure: &Reconfigure,
    options: &mut RunOptions,
    kernel: &mut Kernel,
    pipeline: &mut Pipeline,
    reloader: &mut Reloader,
) {
    let new = match reconfigure() {
        Ok(new) => new,
        Err(err) => {
            log::error!("configuration reload failed; keeping the running configuration: {err:#}");
            return;
        }
    };
    let waiting = reconfigure::restart_needed(options, &new);
    if !waiting.is_empty() {
        log::warn!(
            "changed {} take effect at the next restart",
            waiting.join(", ")
        );
    }
    let new = reconfigure::live_options(options, new);
    let mode_changed = new.match_options.enforcement != options.match_options.enforcement;
    if new.watched_comms != options.watched_comms {
        if let Err(err) = kernel.set_watched_comms(&new.watched_comms) {
            log::error!("updating watched process names: {err:#}");
        }
    }
    // The entries' block flags follow with the indicator reload; the flag word goes now.
    if let Err(err) = kernel.set_settings(settings_flags(&new)) {
        log::error!("updating kernel settings: {err:#}");
    }
    pipeline.set_options(pipeline_options(&new));
    reloader.set_sources(
        IndicatorSources {
            files: new.ioc_files.clone(),
            format: new.ioc_format,
            feeds: new.feeds.clone(),
            filter: new.filter.clone(),
            match_options: new.match_options.clone(),
        },
        new.rules_file.clone(),
    );
    if mode_changed {
        log::info!("mode now {}", new.match_options.enforcement.describe());
    }
    *options = new;
}

/// Longest wait for the outputs before the ring buffer space is given back anyway.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn pipeline_options(options: &RunOptions) -> PipelineOptions {
    PipelineOptions {
        all_connections: options.all_connections,
        show_excluded: options.show_excluded,
        all_dns: options.all_dns,
        resolved_ttl_max: options.resolved_ttl_max,
        connection_outcomes: options.connection_outcomes,
    }
}

/// Writes the status file of service mode.
struct StatusWriter {
    path: PathBuf,
    started: String,
    generation: String,
    adopted: bool,
}

impl StatusWriter {
    fn write(&self, state: &str, options: &RunOptions, reloader: &Reloader, pipeline: &Pipeline) {
        let stats = pipeline.stats();
        let (reloads, reload_failures) = reloader.counts();
        let agent = AgentStatus {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            state: state.to_string(),
            started: self.started.clone(),
            updated: status::timestamp(std::time::SystemTime::now()),
            mode: options.match_options.enforcement.describe(),
            generation: self.generation.clone(),
            adopted: self.adopted,
            indicators: pipeline.iocs().len(),
            reloads,
            reload_failures,
            last_reload: reloader.last().map(|last| ReloadStatus {
                at: status::timestamp(last.at),
                why: last.why.to_string(),
                error: last.error.clone(),
            }),
            events_read: stats.records_read,
            records_written: stats.rows_emitted,
            undecodable: stats.decode_errors,
            excluded: stats.excluded,
            sink_drops: pipeline.sink_stats().iter().map(|(_, s)| s.lost()).sum(),
        };
        if let Err(err) = status::write(&self.path, &agent) {
            log::warn!("writing the status file: {err:#}");
        }
    }
}

/// The kernel's `SETTING_*` flag word for these options.
pub(super) fn settings_flags(options: &RunOptions) -> u32 {
    let mut flags = options.match_options.enforcement.settings_flags();
    if options.all_connections {
        flags |= SETTING_ALL_CONNECTIONS;
    }
    if options.connection_outcomes {
        flags |= SETTING_OUTCOMES;
    }
    flags
}

/// Puts the addresses that domain indicators just resolved to into the kernel maps, so
/// the next connection to them is a hit.
fn track_resolved(kernel: &mut Kernel, pipeline: &mut Pipeline, enforcement: &Enforcement) {
    for resolved in pipeline.take_resolved() {
        let blocks = pipeline
            .iocs()
            .get(resolved.indicator)
            .is_some_and(|domain| enforcement.blocks(domain));
        let value = ioc_common::IocValue {
            id: resolved.indicator,
            flags: ioc_common::IOC_FLAG_RESOLVED
                | if blocks {
                    ioc_common::IOC_FLAG_BLOCK
                } else {
                    0
                },
        };
        match kernel.add_resolved(resolved.addr, value, resolved.ttl) {
            Ok(true) => log::info!(
                "tracking {} (resolved from a domain indicator) for {} s",
                resolved.addr,
                resolved.ttl.as_secs()
            ),
            Ok(false) => {}
            Err(err) => log::warn!("cannot track {}: {err:#}", resolved.addr),
        }
    }
}

/// Warns whenever a drop counter grows, so a loss is never silent between health records.
#[derive(Default)]
struct DropWatch {
    ringbuf_full: u64,
    sink_drops: u64,
}

impl DropWatch {
    fn check(&mut self, kernel: KernelStats, pipeline: &Pipeline) {
        if kernel.ringbuf_full > self.ringbuf_full {
            log::warn!(
                "kernel ring buffer was full: {} events lost since the last check ({} in all)",
                kernel.ringbuf_full - self.ringbuf_full,
                kernel.ringbuf_full
            );
            self.ringbuf_full = kernel.ringbuf_full;
        }
        let sink_drops: u64 = pipeline.sink_stats().iter().map(|(_, s)| s.lost()).sum();
        if sink_drops > self.sink_drops {
            log::warn!(
                "sinks dropped {} records since the last check ({} in all)",
                sink_drops - self.sink_drops,
                sink_drops
            );
            self.sink_drops = sink_drops;
        }
    }
}
