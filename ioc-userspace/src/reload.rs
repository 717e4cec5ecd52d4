//! Indicator (and rule) reloads without gaps: on SIGHUP, or when an indicator file
//! changes. Files are parsed off the event loop; a failed load keeps the running set and
//! says why; a good one changes only the difference in the kernel maps (new entries go in
//! before stale ones come out), so an indicator in both sets is never absent.

use std::{os::unix::fs::MetadataExt as _, path::PathBuf, time::SystemTime};

use anyhow::{Context as _, Result};

use crate::{
    ioc::{
        feed::FeedConfig, load_named, Filter, Format, IdAllocator, IocSet, LoadReport,
        ParsedIndicator, Source,
    },
    kernel::{Kernel, KernelEntries, MatchOptions},
    pipeline::Pipeline,
    rules::RuleSet,
};

/// What identifies a file's content cheaply: a change in any part means "re-read".
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fingerprint {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn fingerprint(path: &PathBuf) -> Option<Fingerprint> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Fingerprint {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

/// Everything needed to (re)build the indicator set from its sources.
#[derive(Clone, Debug)]
pub struct IndicatorSources {
    pub files: Vec<PathBuf>,
    pub format: Format,
    /// Remote feeds; their cached copies are read like files (named by URL). A feed
    /// without a cached copy yet is skipped.
    pub feeds: Vec<FeedConfig>,
    pub filter: Filter,
    pub match_options: MatchOptions,
}

impl IndicatorSources {
    /// Reads and filters every file (blocking; call off the event loop for big files).
    pub fn read(&self) -> Result<(Vec<ParsedIndicator>, LoadReport), crate::ioc::LoadError> {
        let files = self.files.iter().map(|path| Source {
            path: path.clone(),
            name: path.display().to_string(),
            format: self.format,
        });
        let feeds = self
            .feeds
            .iter()
            .map(|feed| (feed.cache_path(), feed))
            .filter(|(cache, _)| cache.exists())
            .map(|(cache, feed)| Source {
                path: cache,
                name: feed.url.clone(),
                format: feed.format,
            });
        let sources: Vec<Source> = files.chain(feeds).collect();
        load_named(&sources, &self.filter)
    }
}

/// A finished background load.
pub struct Loaded {
    why: &'static str,
    result: Result<(Vec<ParsedIndicator>, LoadReport), crate::ioc::LoadError>,
}

pub struct Reloader {
    sources: IndicatorSources,
    done: tokio::sync::mpsc::UnboundedSender<Loaded>,
    loading: bool,
    again: Option<&'static str>,
    rules_file: Option<PathBuf>,
    ids: IdAllocator,
    fingerprints: Vec<Option<Fingerprint>>,
    reloads: u64,
    failures: u64,
    last: Option<LastReload>,
}

/// The most recent reload, for `iocmon status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastReload {
    pub at: std::time::SystemTime,
    pub why: &'static str,
    /// `None` when it succeeded, else why it failed (the running set was kept).
    pub error: Option<String>,
}

/// Outcome of one applied reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReloadReport {
    pub indicators: usize,
    pub upserted: usize,
    pub removed: usize,
    pub filtered_out: usize,
}

impl Reloader {
    pub fn new(
        sources: IndicatorSources,
        rules_file: Option<PathBuf>,
        done: tokio::sync::mpsc::UnboundedSender<Loaded>,
    ) -> Self {
        let fingerprints = sources.files.iter().map(fingerprint).collect();
        Self {
            sources,
            done,
            loading: false,
            again: None,
            rules_file,
            ids: IdAllocator::default(),
            fingerprints,
            reloads: 0,
            failures: 0,
            last: None,
        }
    }

    pub fn sources(&self) -> &IndicatorSources {
        &self.sources
    }

    /// Builds a set from parsed indicators with this reloader's stable ids.
    pub fn build_set(&mut self, parsed: Vec<ParsedIndicator>) -> IocSet {
        IocSet::build(parsed, &mut self.ids)
    }

    /// Whether any indicator file changed since it was last read (and remembers the new
    /// state, so one change triggers one reload).
    pub fn files_changed(&mut self) -> bool {
        let now: Vec<Option<Fingerprint>> = self.sources.files.iter().map(fingerprint).collect();
        let changed = now != self.fingerprints;
        self.fingerprints = now;
        changed
    }

    /// Starts re-reading every source on a blocking thread; the result arrives on the
    /// channel given to [`Reloader::new`] and goes to [`Reloader::finish`]. The event
    /// loop keeps reading kernel events meanwhile. A trigger during a load queues one more.
    pub fn start(&mut self, why: &'static str) {
        if self.loading {
            self.again = Some(why);
            return;
        }
        self.loading = true;
        self.fingerprints = self.sources.files.iter().map(fingerprint).collect();
        let sources = self.sources.clone();
        let done = self.done.clone();
        tokio::task::spawn_blocking(move || {
            let _ = done.send(Loaded {
                why,
                result: sources.read(),
            });
        });
    }

    /// Applies a finished load (or reports why it failed, keeping the running set).
    pub fn finish(&mut self, loaded: Loaded, kernel: &mut Kernel, pipeline: &mut Pipeline) {
        self.loading = false;
        let why = loaded.why;
        let result = loaded
            .result
            .map_err(anyhow::Error::new)
            .and_then(|(parsed, report)| self.apply(parsed, report, kernel, pipeline));
        match result {
            Ok(report) => {
                self.reloads += 1;
                self.last = Some(LastReload {
                    at: std::time::SystemTime::now(),
                    why,
                    error: None,
                });
                log::info!(
                    "reloaded indicators ({why}): {} loaded, {} filtered out, kernel maps: \
                     {} added or changed, {} removed",
                    report.indicators,
                    report.filtered_out,
                    report.upserted,
                    report.removed
                );
            }
            Err(err) => {
                self.failures += 1;
                self.last = Some(LastReload {
                    at: std::time::SystemTime::now(),
                    why,
                    error: Some(format!("{err:#}")),
                });
                log::error!(
                    "indicator reload ({why}) failed; keeping the {} indicators in use: {err:#}",
                    pipeline.iocs().len()
                );
            }
        }
        crate::memory::release_freed();
        if let Some(again) = self.again.take() {
            self.start(again);
        }
    }

    fn apply(
        &mut self,
        parsed: Vec<ParsedIndicator>,
        report: LoadReport,
        kernel: &mut Kernel,
        pipeline: &mut Pipeline,
    ) -> Result<ReloadReport> {
        let set = self.build_set(parsed);
        let entries = KernelEntries::from_set(&set, &self.sources.match_options);
        let sync = kernel.sync_indicators(entries)?;
        let indicators = set.len();
        pipeline.replace_iocs(set);
        Ok(ReloadReport {
            indicators,
            upserted: sync.upserted,
            removed: sync.removed,
            filtered_out: report.filtered_out,
        })
    }

    /// Re-reads the rules file, if one is configured; a bad file keeps the running rules.
    pub fn reload_rules(&mut self, pipeline: &mut Pipeline) {
        let Some(path) = &self.rules_file else { return };
        match RuleSet::load(path).with_context(|| format!("loading {}", path.display())) {
            Ok(rules) => {
                log::info!(
                    "reloaded {} exclusion rules from {}",
                    rules.len(),
                    path.display()
                );
                pipeline.replace_rules(rules);
            }
            Err(err) => log::error!("rule reload failed; keeping the running rules: {err:#}"),
        }
    }

    pub fn counts(&self) -> (u64, u64) {
        (self.reloads, self.failures)
    }

    pub fn last(&self) -> Option<&LastReload> {
        self.last.as_ref()
    }

    /// Takes over the ids a previous agent gave the indicators in the kernel maps, so
    /// events it left in a pinned ring buffer name the right indicators.
    pub fn seed_ids(&mut self, entries: &KernelEntries) -> usize {
        self.ids.seed(entries.indicator_ids())
    }

    /// Replaces the sources (after a configuration reload); the next load uses them.
    pub fn set_sources(&mut self, sources: IndicatorSources, rules_file: Option<PathBuf>) {
        self.fingerprints = sources.files.iter().map(fingerprint).collect();
        self.sources = sources;
        self.rules_file = rules_file;
    }
}
