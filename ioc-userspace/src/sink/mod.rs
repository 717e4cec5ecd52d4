//! Output I/O. Each sink owns a bounded queue and a writer thread, so a slow or stuck
//! output never stalls the kernel reader or the other sinks; what does not fit is
//! counted, never silently lost.
//!
//! A record reaches every sink once, in the sink's format: JSON lines (every record
//! carries `Table`) or CEF lines (`CommonSecurityLog`). [`Sinks`] fans records out;
//! [`spec`] parses `--output` values.

mod file;
mod queued;
pub mod spec;
mod spool;
pub mod stdout;
mod syslog;

use std::sync::Arc;

pub use queued::{Output, QueuedSink, SinkCounters, SinkStats};
pub use spec::{SinkSpec, Transport};
pub use spool::Spool;

/// What a sink writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line, with the `Table` routing field.
    Json,
    /// One CEF line per record (CommonSecurityLog).
    Cef,
}

/// Syslog severities used for records.
pub mod severity {
    pub const WARNING: u8 = 4;
    pub const NOTICE: u8 = 5;
    pub const INFO: u8 = 6;
}

/// One serialised record on its way to a sink: a single line, no line terminator.
#[derive(Clone, Debug)]
pub struct Record {
    /// The table it is meant for (`DeviceNetworkEvents`, `CommonSecurityLog`, ...).
    pub table: &'static str,
    /// Syslog severity (see [`severity`]).
    pub severity: u8,
    pub line: Arc<str>,
}

/// Every configured sink.
#[derive(Default)]
pub struct Sinks {
    sinks: Vec<QueuedSink>,
}

impl Sinks {
    pub fn new(sinks: Vec<QueuedSink>) -> Self {
        Self { sinks }
    }

    /// Starts a sink for each spec.
    pub fn start(specs: &[SinkSpec], default_queue: usize, host: &str) -> anyhow::Result<Self> {
        let mut sinks = Vec::with_capacity(specs.len());
        for spec in specs {
            sinks.push(spec.start(default_queue, host)?);
        }
        Ok(Self { sinks })
    }

    /// Whether any sink takes `format` (so the other serialisation can be skipped).
    pub fn wants(&self, format: Format) -> bool {
        self.sinks.iter().any(|s| s.format() == format)
    }

    /// Queues a record on every sink, in the form it takes. `json` and `cef` are the two
    /// serialisations (either may be absent when no sink wants it); CEF lines are routed
    /// as `CommonSecurityLog`.
    pub fn emit(&self, table: &'static str, severity: u8, json: Option<&str>, cef: Option<&str>) {
        let json = json.map(|line| Record {
            table,
            severity,
            line: Arc::from(line),
        });
        let cef = cef.map(|line| Record {
            table: crate::schema::cef::TABLE,
            severity,
            line: Arc::from(line),
        });
        for sink in &self.sinks {
            let record = match sink.format() {
                Format::Json => json.as_ref(),
                Format::Cef => cef.as_ref(),
            };
            if let Some(record) = record {
                sink.send(record.clone());
            }
        }
    }

    pub fn len(&self) -> usize {
        self.sinks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    pub fn stats(&self) -> Vec<(String, SinkStats)> {
        self.sinks
            .iter()
            .map(|sink| (sink.name().to_string(), sink.stats()))
            .collect()
    }

    /// Waits (up to `timeout`) until every sink has written, spooled or counted as lost
    /// every record queued so far. Returns whether they all did.
    pub fn wait_settled(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.sinks.iter().all(|sink| sink.settled()) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }

    /// Writes out everything queued, flushes and stops every sink.
    pub fn close(self) -> Vec<(String, SinkStats)> {
        self.sinks
            .into_iter()
            .map(|sink| (sink.name().to_string(), sink.close()))
            .collect()
    }
}
