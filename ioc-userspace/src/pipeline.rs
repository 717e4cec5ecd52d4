//! From raw ring buffer records to queued output lines: decode, keep the process cache
//! current, enrich connections with process and container context, judge them against
//! the rules, build the row, serialise, and hand it to the sinks. Synchronous; the
//! agent's event loop calls it for each record.

use crate::{
    clock::BootClock,
    container::ContainerResolver,
    detect::{self, primary_class, ProcessView},
    dns::{self, Answer, Asker, DomainIndex, NameCache, PendingQueries},
    event::{decode, ConnectionEvent, DnsRecord, Event, OutcomeRecord},
    ioc::{IocSet, KernelId},
    process::ProcessCache,
    rules::{DetectionClass, RuleSet},
    schema::device_network::{self, join_command_line, Detection, ProcessContext},
    schema::{cef, device_id},
    sink::{severity, Format, SinkStats, Sinks},
};

/// How many ancestors a record lists (and the rules see).
const MAX_ANCESTORS: usize = 16;

/// Counters of the userspace side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipelineStats {
    pub records_read: u64,
    pub decode_errors: u64,
    pub rows_emitted: u64,
    /// Connections every detection class of which a rule suppressed.
    pub excluded: u64,
    /// Connections the kernel reported (watched name) that the rules found no class for.
    pub not_detections: u64,
    /// DNS messages parsed, and those refused as malformed or truncated.
    pub dns_messages: u64,
    pub dns_malformed: u64,
    /// DNS answers whose name matched a domain indicator.
    pub dns_hits: u64,
}

/// An address a domain indicator resolved to, for the kernel maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolvedAddress {
    pub addr: std::net::IpAddr,
    pub indicator: KernelId,
    pub ttl: std::time::Duration,
}

/// Choices that shape what is emitted.
#[derive(Clone, Copy, Debug, Default)]
pub struct PipelineOptions {
    /// Emit every connection, detection or not.
    pub all_connections: bool,
    /// Emit excluded events too, marked with the rule (for tuning).
    pub show_excluded: bool,
    /// Emit a DnsEvents row for every answered query, not only indicator hits.
    pub all_dns: bool,
    /// Longest time a resolved address stays an indicator (the answer's TTL, capped).
    pub resolved_ttl_max: std::time::Duration,
    /// Write a second record (ConnectionSuccess / ConnectionFailed) when a reported TCP
    /// connect's outcome is known.
    pub connection_outcomes: bool,
}

/// Reported TCP connects waiting for their outcome, at most this many.
const MAX_AWAITING_OUTCOME: usize = 8192;

pub struct Pipeline {
    iocs: IocSet,
    /// The indicators the last reload removed: events already in the ring buffer may
    /// name them (ids are never reused, so there is no confusion). Only the removed
    /// ones: an id the new set still has is found there, so a reload does not keep a
    /// second copy of the whole set.
    previous_iocs: Option<IocSet>,
    rules: RuleSet,
    processes: ProcessCache,
    containers: ContainerResolver,
    clock: BootClock,
    device_name: String,
    /// `DeviceId` of every record.
    device_id: String,
    /// `ReportId` of the last record.
    report_id: u64,
    options: PipelineOptions,
    sinks: Sinks,
    stats: PipelineStats,
    line: Vec<u8>,
    domains: DomainIndex,
    pending_queries: PendingQueries,
    names: NameCache,
    resolved: Vec<ResolvedAddress>,
    awaiting_outcome: std::collections::HashMap<u64, ConnectionEvent>,
}

/// Everything a pipeline is built from.
pub struct PipelineParts {
    pub iocs: IocSet,
    pub rules: RuleSet,
    pub processes: ProcessCache,
    pub containers: ContainerResolver,
    pub clock: BootClock,
    pub device_name: String,
    pub options: PipelineOptions,
    pub sinks: Sinks,
}

impl Pipeline {
    pub fn new(parts: PipelineParts) -> Self {
        Self {
            domains: DomainIndex::from_set(&parts.iocs),
            iocs: parts.iocs,
            previous_iocs: None,
            rules: parts.rules,
            processes: parts.processes,
            containers: parts.containers,
            clock: parts.clock,
            device_id: device_id::current(&parts.device_name),
            report_id: 0,
            device_name: parts.device_name,
            options: parts.options,
            sinks: parts.sinks,
            stats: PipelineStats::default(),
            line: Vec::with_capacity(2048),
            pending_queries: PendingQueries::default(),
            names: NameCache::default(),
            resolved: Vec::new(),
            awaiting_outcome: std::collections::HashMap::new(),
        }
    }

    pub fn iocs(&self) -> &IocSet {
        &self.iocs
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Installs a reloaded indicator set (after the kernel maps were updated).
    pub fn replace_iocs(&mut self, iocs: IocSet) {
        self.domains = DomainIndex::from_set(&iocs);
        let previous = std::mem::replace(&mut self.iocs, iocs);
        self.previous_iocs = Some(previous.removed_in(&self.iocs));
    }

    /// Addresses resolved from domain indicators since the last call, for the kernel.
    pub fn take_resolved(&mut self) -> Vec<ResolvedAddress> {
        std::mem::take(&mut self.resolved)
    }

    /// Forgets queries that never got an answer.
    pub fn expire_queries(&mut self) {
        self.pending_queries
            .expire(std::time::Duration::from_secs(10));
    }

    /// Applies changed options (a configuration reload).
    pub fn set_options(&mut self, options: PipelineOptions) {
        self.options = options;
    }

    /// Installs reloaded rules, carrying the per-rule counters over.
    pub fn replace_rules(&mut self, rules: RuleSet) {
        rules.adopt_counts(&self.rules);
        self.rules = rules;
    }

    pub fn processes(&self) -> &ProcessCache {
        &self.processes
    }

    /// Loads every running process from /proc; returns how many.
    pub fn seed_processes(&mut self) -> usize {
        self.processes.seed_from_proc()
    }

    pub fn handle(&mut self, record: &[u8]) {
        self.stats.records_read += 1;
        match decode(record) {
            Ok(Event::Connection(event)) => {
                self.on_connection(&event, device_network::ACTION_CONNECTION_REQUEST);
                if event.sock != 0 && self.options.connection_outcomes {
                    if self.awaiting_outcome.len() >= MAX_AWAITING_OUTCOME {
                        // Sockets closed without a state change never report; start over
                        // rather than grow without bound.
                        self.awaiting_outcome.clear();
                    }
                    self.awaiting_outcome.insert(event.sock, event);
                }
            }
            Ok(Event::Outcome(outcome)) => self.on_outcome(&outcome),
            Ok(Event::Dns(record)) => self.on_dns(&record),
            Ok(Event::Exec(exec)) => self.processes.on_exec(&exec),
            Ok(Event::Exit { tgid, .. }) => self.processes.on_exit(tgid),
            Err(err) => {
                self.stats.decode_errors += 1;
                log::warn!("skipping kernel record: {err}");
            }
        }
    }

    fn on_dns(&mut self, record: &DnsRecord) {
        let message = match dns::parse(&record.payload) {
            Ok(message) => message,
            Err(err) => {
                self.stats.dns_malformed += 1;
                let cut = if record.truncated {
                    " (cut at capture size)"
                } else {
                    ""
                };
                log::debug!("skipping DNS message{cut}: {err}");
                return;
            }
        };
        self.stats.dns_messages += 1;
        if record.egress {
            if !message.is_response {
                self.pending_queries.insert(
                    message.id,
                    Asker {
                        tgid: record.tgid,
                        uid: record.uid,
                        comm: record.comm.clone(),
                        cgroup_id: record.cgroup_id,
                        boot_ns: record.boot_ns,
                        client: record.source,
                        server: record.destination,
                    },
                );
            }
            return;
        }
        if !message.is_response {
            return;
        }
        let asker = self
            .pending_queries
            .take(record.destination, record.source, message.id);
        let mut addresses = Vec::new();
        for answer in &message.answers {
            if let Answer::Address { addr, ttl, .. } = answer {
                self.names.remember(*addr, &message.name, *ttl);
                addresses.push((*addr, *ttl));
            }
        }
        let hit = self.domains.lookup_message(&message);
        if let Some((indicator, _)) = &hit {
            self.stats.dns_hits += 1;
            for (addr, ttl) in &addresses {
                let ttl = std::time::Duration::from_secs(u64::from((*ttl).max(1)))
                    .min(self.options.resolved_ttl_max);
                self.resolved.push(ResolvedAddress {
                    addr: *addr,
                    indicator: *indicator,
                    ttl,
                });
            }
        } else if !self.options.all_dns {
            return;
        }
        self.emit_dns(record, &message, asker.as_ref(), hit.map(|(id, _)| id));
    }

    fn emit_dns(
        &mut self,
        record: &DnsRecord,
        message: &dns::DnsMessage,
        asker: Option<&Asker>,
        indicator: Option<KernelId>,
    ) {
        use crate::schema::dns_events::{self, DnsQuery};
        let process = match asker {
            Some(asker) => {
                let info = self.processes.lookup(asker.tgid, &asker.comm).cloned();
                let parent = self
                    .processes
                    .ancestors(asker.tgid, 1)
                    .first()
                    .map(|p| p.file_name().to_string());
                ProcessContext {
                    file_name: info
                        .as_ref()
                        .map_or_else(|| asker.comm.clone(), |p| p.file_name().to_string()),
                    folder_path: info.as_ref().and_then(|p| p.exe.clone()),
                    command_line: info
                        .as_ref()
                        .filter(|p| !p.args.is_empty())
                        .map(|p| join_command_line(&p.args)),
                    account_name: self.processes.user_name(asker.uid),
                    parent_file_name: parent,
                    container_id: self.containers.container_id(asker.cgroup_id),
                    ..ProcessContext::default()
                }
            }
            None => ProcessContext::default(),
        };
        let query = DnsQuery {
            unix_ns: self.clock.unix_ns(record.boot_ns),
            name: message.name.clone(),
            query_type: message.query_type,
            answers: message
                .answers
                .iter()
                .filter_map(|a| match a {
                    Answer::Address { addr, .. } => Some(*addr),
                    Answer::Cname { .. } => None,
                })
                .collect(),
            result_code: message.rcode,
            client_ip: Some(record.destination.ip()),
            server_ip: Some(record.source.ip()),
        };
        let detection = Detection {
            class: if indicator.is_some() { "ioc" } else { "dns" },
            classes: if indicator.is_some() {
                vec!["ioc"]
            } else {
                Vec::new()
            },
            ..Detection::default()
        };
        let indicator = indicator.and_then(|id| {
            self.iocs
                .get(id)
                .or_else(|| self.previous_iocs.as_ref()?.get(id))
        });
        let row = dns_events::build(
            &query,
            &self.device_name,
            asker.map_or(0, |a| a.tgid),
            &process,
            &detection,
            indicator,
        );
        self.line.clear();
        if let Err(err) = serde_json::to_writer(&mut self.line, &row) {
            log::error!("cannot serialise a DNS record: {err}");
            return;
        }
        let json = std::str::from_utf8(&self.line).ok();
        let level = if detection.class == "ioc" {
            severity::WARNING
        } else {
            severity::NOTICE
        };
        self.sinks.emit(dns_events::TABLE, level, json, None);
        self.stats.rows_emitted += 1;
    }

    /// The connect's second record: how it ended, with the local address the kernel chose.
    fn on_outcome(&mut self, outcome: &OutcomeRecord) {
        let Some(mut event) = self.awaiting_outcome.remove(&outcome.sock) else {
            return;
        };
        event.boot_ns = outcome.boot_ns;
        if outcome.local.port() != 0 {
            event.local = Some(outcome.local);
        }
        let action = if outcome.established {
            device_network::ACTION_CONNECTION_SUCCESS
        } else {
            device_network::ACTION_CONNECTION_FAILED
        };
        self.on_connection(&event, action);
    }

    fn on_connection(&mut self, event: &ConnectionEvent, action: &'static str) {
        let container_id = self.containers.container_id(event.cgroup_id);
        let user = self.processes.user_name(event.uid);
        let process = self.processes.lookup(event.tgid, &event.comm).cloned();
        let ancestors = self.processes.ancestors(event.tgid, MAX_ANCESTORS);
        let view = ProcessView {
            exe_path: process.as_ref().and_then(|p| p.exe.as_deref()),
            argv: process.as_ref().map_or(&[], |p| p.args.as_slice()),
            ancestors: ancestors
                .iter()
                .map(|a| (a.comm.as_str(), a.exe.as_deref()))
                .collect(),
            user: user.as_deref(),
            uid: event.uid,
            container_id: container_id.as_deref(),
        };
        let subject = detect::subject(event, &view);
        let verdict = detect::judge(&self.rules, &subject);

        let excluded = verdict.is_excluded();
        if excluded {
            self.stats.excluded += 1;
            // A refusal is always written (with the rule in ExcludedBy): the connection
            // failed because of us, and whoever looks into it needs the record.
            if !self.options.show_excluded && !event.blocked {
                return;
            }
        } else if verdict.classes.is_empty() && !self.options.all_connections {
            self.stats.not_detections += 1;
            return;
        }
        let shown: &[DetectionClass] = if excluded {
            &verdict.classes
        } else {
            &verdict.reported_classes
        };
        let detection = Detection {
            class: primary_class(shown),
            classes: shown.iter().map(|c| c.name()).collect(),
            excluded_by: excluded.then(|| verdict.suppressed_by.clone()).flatten(),
            suppressed: if excluded {
                Vec::new()
            } else {
                verdict
                    .suppressions
                    .iter()
                    .map(|s| (s.class.name(), s.rule.clone()))
                    .collect()
            },
            reverse_shell_evidence: verdict.reverse_shell_evidence.clone(),
        };

        let parent = ancestors.first();
        let context = ProcessContext {
            file_name: process
                .as_ref()
                .map_or_else(|| event.comm.clone(), |p| p.file_name().to_string()),
            folder_path: process.as_ref().and_then(|p| p.exe.clone()),
            command_line: process
                .as_ref()
                .filter(|p| !p.args.is_empty())
                .map(|p| join_command_line(&p.args)),
            command_line_truncated: process.as_ref().is_some_and(|p| p.args_truncated),
            account_name: user.clone(),
            effective_uid: process.as_ref().map(|p| p.euid),
            creation_unix_ns: process
                .as_ref()
                .and_then(|p| p.start_boot_ns)
                .map(|ns| self.clock.unix_ns(ns)),
            parent_id: process.as_ref().map(|p| p.ppid),
            parent_file_name: parent.map(|p| p.file_name().to_string()),
            parent_creation_unix_ns: parent
                .and_then(|p| p.start_boot_ns)
                .map(|ns| self.clock.unix_ns(ns)),
            ancestors: ancestors
                .iter()
                .map(|a| a.file_name().to_string())
                .collect(),
            container_id,
        };
        let indicator = event.indicator.and_then(|(_, id)| {
            self.iocs
                .get(id)
                .or_else(|| self.previous_iocs.as_ref()?.get(id))
        });
        let mut row = device_network::build(
            event,
            self.clock.unix_ns(event.boot_ns),
            &self.device_name,
            &context,
            &detection,
            indicator,
        );
        self.report_id += 1;
        row.DeviceId = &self.device_id;
        row.ReportId = self.report_id;
        row.RemoteUrl = self.names.name_of(event.remote.ip());
        row.ActionType = action;
        // Serialise once per format some sink takes.
        self.line.clear();
        let json = if self.sinks.wants(Format::Json) {
            if let Err(err) = serde_json::to_writer(&mut self.line, &row) {
                log::error!("cannot serialise a record: {err}");
                return;
            }
            std::str::from_utf8(&self.line).ok()
        } else {
            None
        };
        let cef = self
            .sinks
            .wants(Format::Cef)
            .then(|| cef::device_network(&row));
        let level = if detection.class == crate::detect::CLASS_CONNECTION {
            severity::NOTICE
        } else {
            severity::WARNING
        };
        self.sinks
            .emit(device_network::TABLE, level, json, cef.as_deref());
        self.stats.rows_emitted += 1;
    }

    pub fn stats(&self) -> PipelineStats {
        self.stats
    }

    pub fn sink_stats(&self) -> Vec<(String, SinkStats)> {
        self.sinks.stats()
    }

    /// The outputs, for records that do not come from the kernel (health).
    pub fn sinks(&self) -> &Sinks {
        &self.sinks
    }

    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Flushes and stops every sink.
    pub fn close(self) -> Vec<(String, SinkStats)> {
        self.sinks.close()
    }
}
