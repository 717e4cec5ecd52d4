//! The health record: what the agent read, lost and holds, every `--health-interval`
//! seconds and once at exit. It goes through the sinks like any other record, as JSON
//! with `Table` = `IocmonHealth` (and as a CEF line with class id `health` for CEF sinks).

use std::{collections::BTreeMap, time::Instant};

use serde::Serialize;

use crate::{
    clock::format_timestamp,
    ioc::Summary,
    kernel::{Kernel, KernelStats, MapSizes},
    pipeline::{Pipeline, PipelineStats},
    rules::RuleCount,
    schema::cef::CefLine,
    sink::{severity, Format, SinkStats, Sinks},
};

pub const TABLE: &str = "IocmonHealth";

#[allow(non_snake_case)]
#[derive(Debug, Serialize)]
pub struct HealthRecord<'a> {
    pub Table: &'static str,
    pub Timestamp: String,
    pub DeviceId: &'a str,
    pub DeviceName: &'a str,
    pub AgentVersion: &'static str,
    /// `Periodic`, or `Final` for the record written at exit.
    pub Kind: &'static str,
    pub UptimeSeconds: f64,
    /// Seconds since the previous health record.
    pub IntervalSeconds: f64,
    /// Kernel records read from the ring buffer (connections, execs, exits).
    pub EventsRead: u64,
    /// Kernel records read per second over the interval.
    pub EventsPerSecond: f64,
    pub RecordsEmitted: u64,
    pub DecodeErrors: u64,
    pub ExcludedByRules: u64,
    /// Events lost in the kernel because the ring buffer was full.
    pub KernelDrops: u64,
    pub KernelHookCalls: u64,
    pub KernelIndicatorHits: u64,
    pub KernelBlocked: u64,
    /// What the agent does with indicator connections: `monitor (record only)` or
    /// `block (tcp+udp; ...)`, so a SOC sees which devices refuse.
    pub Mode: &'a str,
    pub Sinks: Vec<SinkHealth<'a>>,
    /// Indicators loaded, per type (`ip:port`, `ip`, `cidr`, `domain`, ...).
    pub IndicatorsLoaded: &'a BTreeMap<&'static str, usize>,
    pub IndicatorsTotal: usize,
    pub MapFill: MapFill,
    /// Events each exclusion rule suppressed since start.
    pub Exclusions: Vec<RuleExclusions<'a>>,
}

#[allow(non_snake_case)]
#[derive(Debug, Serialize)]
pub struct SinkHealth<'a> {
    pub Name: &'a str,
    pub Written: u64,
    /// Everything lost: queue full + write errors + spool full.
    pub Dropped: u64,
    pub QueueFull: u64,
    pub WriteErrors: u64,
    pub SpoolFull: u64,
    pub SpooledRecords: u64,
    pub SpooledBytes: u64,
    pub Replayed: u64,
}

#[allow(non_snake_case)]
#[derive(Debug, Serialize)]
pub struct MapFill {
    pub EndpointEntries: usize,
    pub EndpointCapacity: u32,
    pub NetEntries: usize,
    pub NetCapacity: u32,
}

#[allow(non_snake_case)]
#[derive(Debug, Serialize)]
pub struct RuleExclusions<'a> {
    pub Rule: &'a str,
    pub Excluded: u64,
}

/// Everything a health record is made from.
pub struct HealthInputs<'a> {
    pub unix_ns: i128,
    pub device_id: &'a str,
    pub device_name: &'a str,
    pub final_record: bool,
    pub uptime_seconds: f64,
    pub interval_seconds: f64,
    /// `EventsRead` at the previous record.
    pub previous_events_read: u64,
    pub pipeline: PipelineStats,
    pub kernel: KernelStats,
    pub sinks: &'a [(String, SinkStats)],
    pub indicators: &'a Summary,
    pub map_sizes: MapSizes,
    /// Entries in the kernel's ip:port and address maps.
    pub map_entries: (usize, usize),
    pub rules: &'a [RuleCount],
    pub mode: &'a str,
}

impl<'a> HealthRecord<'a> {
    pub fn new(inputs: &'a HealthInputs<'a>) -> Self {
        let read = inputs.pipeline.records_read;
        let per_second = if inputs.interval_seconds > 0.0 {
            read.saturating_sub(inputs.previous_events_read) as f64 / inputs.interval_seconds
        } else {
            0.0
        };
        Self {
            Table: TABLE,
            Timestamp: format_timestamp(inputs.unix_ns),
            DeviceId: inputs.device_id,
            DeviceName: inputs.device_name,
            AgentVersion: env!("CARGO_PKG_VERSION"),
            Kind: if inputs.final_record {
                "Final"
            } else {
                "Periodic"
            },
            UptimeSeconds: round3(inputs.uptime_seconds),
            IntervalSeconds: round3(inputs.interval_seconds),
            EventsRead: read,
            EventsPerSecond: round3(per_second),
            RecordsEmitted: inputs.pipeline.rows_emitted,
            DecodeErrors: inputs.pipeline.decode_errors,
            ExcludedByRules: inputs.pipeline.excluded,
            KernelDrops: inputs.kernel.ringbuf_full,
            KernelHookCalls: inputs.kernel.hook_calls,
            KernelIndicatorHits: inputs.kernel.ioc_hits,
            KernelBlocked: inputs.kernel.blocked,
            Mode: inputs.mode,
            Sinks: inputs
                .sinks
                .iter()
                .map(|(name, s)| SinkHealth {
                    Name: name,
                    Written: s.written,
                    Dropped: s.lost(),
                    QueueFull: s.queue_full,
                    WriteErrors: s.write_errors,
                    SpoolFull: s.spool_full,
                    SpooledRecords: s.spooled_records,
                    SpooledBytes: s.spooled_bytes,
                    Replayed: s.replayed,
                })
                .collect(),
            IndicatorsLoaded: &inputs.indicators.by_type,
            IndicatorsTotal: inputs.indicators.total,
            MapFill: MapFill {
                EndpointEntries: inputs.map_entries.0,
                EndpointCapacity: inputs.map_sizes.endpoints,
                NetEntries: inputs.map_entries.1,
                NetCapacity: inputs.map_sizes.nets,
            },
            Exclusions: inputs
                .rules
                .iter()
                .map(|r| RuleExclusions {
                    Rule: &r.rule,
                    Excluded: r.excluded,
                })
                .collect(),
        }
    }

    /// The record as CEF (class id `health`, severity 0, counters in the extension and
    /// the whole JSON record in `msg`).
    pub fn to_cef(&self, json: &str, unix_ns: i128) -> String {
        let mut line = CefLine::new("health", "Agent health", 0);
        line.number("rt", unix_ns.div_euclid(1_000_000))
            .text("dvchost", self.DeviceName)
            .custom_string(1, "Kind", Some(self.Kind))
            .custom_number(1, "EventsRead", Some(clamp(self.EventsRead)))
            .custom_number(2, "KernelDrops", Some(clamp(self.KernelDrops)))
            .custom_number(
                3,
                "SinkDrops",
                Some(clamp(self.Sinks.iter().map(|s| s.Dropped).sum())),
            )
            .text("msg", json);
        line.finish()
    }

    /// Serialises the record and queues it on every sink.
    pub fn emit(&self, sinks: &Sinks, unix_ns: i128) {
        let json = match serde_json::to_string(self) {
            Ok(json) => json,
            Err(err) => {
                log::error!("cannot serialise the health record: {err}");
                return;
            }
        };
        let cef = sinks
            .wants(Format::Cef)
            .then(|| self.to_cef(&json, unix_ns));
        sinks.emit(TABLE, severity::INFO, Some(&json), cef.as_deref());
    }
}

/// When the last health record was written, to compute rates.
pub struct HealthClock {
    started: Instant,
    last: Instant,
    last_events_read: u64,
}

impl Default for HealthClock {
    fn default() -> Self {
        let now = Instant::now();
        Self {
            started: now,
            last: now,
            last_events_read: 0,
        }
    }
}

impl HealthClock {
    /// Builds a health record from the agent's state and queues it on every sink.
    pub fn emit(&mut self, kernel: &Kernel, pipeline: &Pipeline, mode: &str, final_record: bool) {
        let now = Instant::now();
        let kernel_stats = kernel.stats().unwrap_or_else(|err| {
            log::warn!("reading the kernel counters: {err}");
            KernelStats::default()
        });
        let sinks = pipeline.sink_stats();
        let summary = pipeline.iocs().summary();
        let rules = pipeline.rules().suppression_counts();
        let unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let stats = pipeline.stats();
        let inputs = HealthInputs {
            unix_ns,
            device_id: pipeline.device_id(),
            device_name: pipeline.device_name(),
            final_record,
            uptime_seconds: now.duration_since(self.started).as_secs_f64(),
            interval_seconds: now.duration_since(self.last).as_secs_f64(),
            previous_events_read: self.last_events_read,
            pipeline: stats,
            kernel: kernel_stats,
            sinks: &sinks,
            indicators: &summary,
            map_sizes: kernel.sizes(),
            map_entries: kernel.installed_entries(),
            rules: &rules,
            mode,
        };
        HealthRecord::new(&inputs).emit(pipeline.sinks(), unix_ns);
        self.last = now;
        self.last_events_read = stats.records_read;
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_health_record() {
        let mut summary = Summary {
            total: 3,
            ..Summary::default()
        };
        summary.by_type.insert("ip:port", 2);
        summary.by_type.insert("cidr", 1);
        let sinks = vec![(
            "syslog+tcp://127.0.0.1:514".to_string(),
            SinkStats {
                written: 10,
                queue_full: 1,
                write_errors: 0,
                spooled_records: 2,
                spooled_bytes: 300,
                spooled_total: 5,
                replayed: 3,
                spool_full: 1,
            },
        )];
        let rules = vec![RuleCount {
            rule: "backup-nc".into(),
            excluded: 4,
        }];
        let inputs = HealthInputs {
            unix_ns: 1_782_043_200_000_000_000,
            device_id: "d",
            device_name: "iot-box",
            final_record: false,
            uptime_seconds: 20.0,
            interval_seconds: 10.0,
            previous_events_read: 100,
            pipeline: PipelineStats {
                records_read: 150,
                decode_errors: 0,
                rows_emitted: 12,
                excluded: 4,
                not_detections: 0,
                ..PipelineStats::default()
            },
            kernel: KernelStats {
                hook_calls: 900,
                ioc_hits: 11,
                events_sent: 150,
                ringbuf_full: 2,
                blocked: 0,
            },
            sinks: &sinks,
            indicators: &summary,
            map_sizes: MapSizes {
                endpoints: 1024,
                nets: 1024,
                ringbuf_bytes: 1 << 20,
            },
            map_entries: (2, 3),
            rules: &rules,
            mode: "monitor (record only)",
        };
        let record = HealthRecord::new(&inputs);
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"Table":"IocmonHealth","Timestamp":"2026-06-21T12:00:00.0000000Z","DeviceId":"d","DeviceName":"iot-box","AgentVersion":"{}","Kind":"Periodic","UptimeSeconds":20.0,"IntervalSeconds":10.0,"EventsRead":150,"EventsPerSecond":5.0,"RecordsEmitted":12,"DecodeErrors":0,"ExcludedByRules":4,"KernelDrops":2,"KernelHookCalls":900,"KernelIndicatorHits":11,"KernelBlocked":0,"Mode":"monitor (record only)","Sinks":[{{"Name":"syslog+tcp://127.0.0.1:514","Written":10,"Dropped":2,"QueueFull":1,"WriteErrors":0,"SpoolFull":1,"SpooledRecords":2,"SpooledBytes":300,"Replayed":3}}],"IndicatorsLoaded":{{"cidr":1,"ip:port":2}},"IndicatorsTotal":3,"MapFill":{{"EndpointEntries":2,"EndpointCapacity":1024,"NetEntries":3,"NetCapacity":1024}},"Exclusions":[{{"Rule":"backup-nc","Excluded":4}}]}}"#,
                env!("CARGO_PKG_VERSION")
            )
        );
        let cef = record.to_cef(&json, inputs.unix_ns);
        let (header, extension) = crate::schema::cef::split_line(&cef).unwrap();
        assert_eq!(header[4], "health");
        let pairs = crate::schema::cef::parse_extension(extension);
        let msg = pairs.iter().find(|(k, _)| k == "msg").unwrap();
        assert_eq!(msg.1, json);
    }
}
