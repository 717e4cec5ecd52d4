//! `iocmon run`: load indicators, load and attach the programs, and turn kernel events
//! into records until SIGINT/SIGTERM.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result};
use ioc_common::{SETTING_ALL_CONNECTIONS, SETTING_OUTCOMES};
use tokio::signal::unix::{signal, SignalKind};

use crate::{
    clock::BootClock,
    container::ContainerResolver,
    health::HealthClock,
    ioc::{
        feed::{fetch_and_log, spawn_fetcher, FeedConfig},
        Filter, Format,
    },
    kernel::{cgroup::cgroup2_root, Kernel, KernelEntries, KernelStats, MapSizes, MatchOptions},
    pipeline::{Pipeline, PipelineOptions, PipelineParts},
    process::{CacheLimits, ProcessCache},
    reload::{IndicatorSources, Reloader},
    rules::RuleSet,
    sink,
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
}

pub fn run(options: RunOptions) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the event loop")?;
    runtime.block_on(run_async(options))
}

/// The device's name as Defender shows it: the host name, lower-case.
fn device_name(explicit: Option<String>) -> String {
    explicit.unwrap_or_else(|| {
        nix::unistd::gethostname()
            .map(|name| name.to_string_lossy().to_lowercase())
            .unwrap_or_else(|_| "localhost".to_string())
    })
}

async fn run_async(options: RunOptions) -> Result<()> {
    let (loads_done, mut loaded) = tokio::sync::mpsc::unbounded_channel();
    let mut reloader = Reloader::new(
        IndicatorSources {
            files: options.ioc_files.clone(),
            format: options.ioc_format,
            feeds: options.feeds.clone(),
            filter: options.filter.clone(),
            match_options: options.match_options,
        },
        options.rules_file.clone(),
        loads_done,
    );
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
    let entries = KernelEntries::from_set(&iocs, options.match_options);
    let mut kernel = Kernel::load(MapSizes::for_entries(&entries, options.ringbuf_bytes))?;
    kernel.set_watched_comms(&options.watched_comms)?;
    kernel.sync_indicators(entries)?;
    let mut settings = 0;
    if options.all_connections {
        settings |= SETTING_ALL_CONNECTIONS;
    }
    if options.connection_outcomes {
        settings |= SETTING_OUTCOMES;
    }
    kernel.set_settings(settings)?;
    let cgroup = cgroup2_root(options.cgroup.as_deref())?;
    let mut reader = kernel.take_event_reader()?;
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
        options: PipelineOptions {
            all_connections: options.all_connections,
            show_excluded: options.show_excluded,
            all_dns: options.all_dns,
            resolved_ttl_max: options.resolved_ttl_max,
            connection_outcomes: options.connection_outcomes,
        },
        sinks,
    });

    // Handlers go in before readiness is announced, so a stop right after it is clean.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let attached = kernel.attach(&cgroup)?;
    // After the exec tracepoint is attached, so no process falls between the two.
    let seeded = pipeline.seed_processes();
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
    log::info!(
        "ready: {} programs attached to {} (program ids {}); {} indicators loaded \
         ({}); {} exclusion rules from {}; {} processes known",
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
    );

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
                }
                track_resolved(&mut kernel, &mut pipeline);
            }
            _ = expiry.tick() => {
                if let Err(err) = kernel.expire_resolved() {
                    log::warn!("expiring resolved addresses: {err:#}");
                }
                pipeline.expire_queries();
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = tick.tick() => drops.check(kernel.stats()?, &pipeline),
            _ = health_tick.tick(), if options.health_interval.is_some() => {
                health.emit(&kernel, &pipeline, options.match_options, false);
            }
            _ = sighup.recv() => {
                reloader.start("SIGHUP");
                reloader.reload_rules(&mut pipeline);
            }
            _ = file_check.tick(), if options.reload_interval.is_some() => {
                if reloader.files_changed() {
                    reloader.start("file changed");
                }
            }
            Some(done) = loaded.recv() => reloader.finish(done, &mut kernel, &mut pipeline),
            Some(_url) = feed_updates.recv() => reloader.start("feed updated"),
        }
    }

    reader.drain(|record| pipeline.handle(record));
    let kernel_stats = kernel.stats()?;
    health.emit(&kernel, &pipeline, options.match_options, true);
    drop(reader);
    drop(kernel);
    log::info!("detached all programs from {}", cgroup.display());
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

/// Puts the addresses that domain indicators just resolved to into the kernel maps, so
/// the next connection to them is a hit.
fn track_resolved(kernel: &mut Kernel, pipeline: &mut Pipeline) {
    for resolved in pipeline.take_resolved() {
        let value = ioc_common::IocValue {
            id: resolved.indicator,
            flags: ioc_common::IOC_FLAG_RESOLVED,
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
