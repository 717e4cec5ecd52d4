//! From raw ring buffer records to queued output lines: decode, enrich, build the row,
//! serialise, hand to the sinks. Synchronous and allocation-light; the agent's event loop
//! calls it for each batch.

use crate::{
    clock::BootClock,
    event::{decode, Event},
    ioc::IocSet,
    process::ProcessResolver,
    schema::device_network,
    sink::{QueuedSink, SinkStats},
};

/// Counters of the userspace side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipelineStats {
    pub records_read: u64,
    pub decode_errors: u64,
    pub rows_emitted: u64,
}

pub struct Pipeline {
    iocs: IocSet,
    processes: ProcessResolver,
    clock: BootClock,
    device_name: String,
    sinks: Vec<QueuedSink>,
    stats: PipelineStats,
    line: Vec<u8>,
}

impl Pipeline {
    pub fn new(
        iocs: IocSet,
        clock: BootClock,
        device_name: String,
        sinks: Vec<QueuedSink>,
    ) -> Self {
        Self {
            iocs,
            processes: ProcessResolver::new(),
            clock,
            device_name,
            sinks,
            stats: PipelineStats::default(),
            line: Vec::with_capacity(1024),
        }
    }

    pub fn iocs(&self) -> &IocSet {
        &self.iocs
    }

    pub fn handle(&mut self, record: &[u8]) {
        self.stats.records_read += 1;
        let event = match decode(record) {
            Ok(Event::Connection(event)) => event,
            Err(err) => {
                self.stats.decode_errors += 1;
                log::warn!("skipping kernel record: {err}");
                return;
            }
        };
        let process = self.processes.context(event.tgid, event.uid, &event.comm);
        let indicator = event.indicator.and_then(|(_, id)| self.iocs.get(id));
        let row = device_network::build(
            &event,
            self.clock.unix_ns(event.boot_ns),
            &self.device_name,
            &process,
            indicator,
        );
        self.line.clear();
        if let Err(err) = serde_json::to_writer(&mut self.line, &row) {
            log::error!("cannot serialise a record: {err}");
            return;
        }
        self.line.push(b'\n');
        for sink in &self.sinks {
            sink.send(self.line.clone());
        }
        self.stats.rows_emitted += 1;
    }

    pub fn stats(&self) -> PipelineStats {
        self.stats
    }

    pub fn sink_stats(&self) -> Vec<(String, SinkStats)> {
        self.sinks
            .iter()
            .map(|sink| (sink.name().to_string(), sink.stats()))
            .collect()
    }

    /// Flushes and stops every sink.
    pub fn close(self) -> Vec<(String, SinkStats)> {
        self.sinks
            .into_iter()
            .map(|sink| (sink.name().to_string(), sink.close()))
            .collect()
    }
}
