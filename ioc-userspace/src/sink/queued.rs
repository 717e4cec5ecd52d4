use std::{
    io::Write,
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use super::{Format, Record};

/// Counters of one sink, as the health record shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Records handed to the output (for a syslog sink: sent, replays included).
    pub written: u64,
    /// Records refused because the queue was full.
    pub queue_full: u64,
    /// Records lost to write errors (nothing could keep them).
    pub write_errors: u64,
    /// Records waiting in the disk spool, and their bytes.
    pub spooled_records: u64,
    pub spooled_bytes: u64,
    /// Records that went to the spool, and that came back out of it and were sent.
    pub spooled_total: u64,
    pub replayed: u64,
    /// Records the spool could not take (full).
    pub spool_full: u64,
}

impl SinkStats {
    /// Every record this sink lost.
    pub fn lost(&self) -> u64 {
        self.queue_full + self.write_errors + self.spool_full
    }
}

/// Shared between a sink's handle and its writer thread.
#[derive(Debug, Default)]
pub struct SinkCounters {
    pub written: AtomicU64,
    pub queue_full: AtomicU64,
    pub write_errors: AtomicU64,
    pub spooled_records: AtomicU64,
    pub spooled_bytes: AtomicU64,
    pub spooled_total: AtomicU64,
    pub replayed: AtomicU64,
    pub spool_full: AtomicU64,
    /// Records taken into the queue, and how many of those the writer has finished with
    /// (written, spooled or counted lost).
    pub accepted: AtomicU64,
    pub settled: AtomicU64,
}

impl SinkCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> SinkStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SinkStats {
            written: get(&self.written),
            queue_full: get(&self.queue_full),
            write_errors: get(&self.write_errors),
            spooled_records: get(&self.spooled_records),
            spooled_bytes: get(&self.spooled_bytes),
            spooled_total: get(&self.spooled_total),
            replayed: get(&self.replayed),
            spool_full: get(&self.spool_full),
        }
    }
}

/// Where a sink's writer thread puts records. Implementations count every outcome.
pub trait Output: Send {
    /// Writes (or buffers) one record.
    fn write(&mut self, record: &Record, counters: &SinkCounters);
    /// Called after each burst of records.
    fn flush(&mut self, counters: &SinkCounters);
    /// How long the writer may wait for a record before calling [`Output::idle`].
    fn idle_interval(&self) -> Option<Duration> {
        None
    }
    /// Periodic work while no records arrive (reconnecting, replaying a spool).
    fn idle(&mut self, _counters: &SinkCounters) {}
    /// The queue is closed and empty: last chance to deliver.
    fn close(&mut self, counters: &SinkCounters) {
        self.flush(counters);
    }
}

/// Lines on any `Write` (standard output, tests): each record plus `\n`.
pub struct LineOutput<W: Write + Send> {
    out: std::io::BufWriter<W>,
}

impl<W: Write + Send> LineOutput<W> {
    pub fn new(out: W) -> Self {
        Self {
            out: std::io::BufWriter::new(out),
        }
    }
}

impl<W: Write + Send> Output for LineOutput<W> {
    fn write(&mut self, record: &Record, counters: &SinkCounters) {
        let result = self
            .out
            .write_all(record.line.as_bytes())
            .and_then(|()| self.out.write_all(b"\n"));
        match result {
            Ok(()) => SinkCounters::add(&counters.written, 1),
            Err(_) => SinkCounters::add(&counters.write_errors, 1),
        }
    }

    fn flush(&mut self, counters: &SinkCounters) {
        if self.out.flush().is_err() {
            SinkCounters::add(&counters.write_errors, 1);
        }
    }
}

/// A bounded queue of records in front of a writer thread.
pub struct QueuedSink {
    name: String,
    format: Format,
    sender: Option<SyncSender<Record>>,
    counters: Arc<SinkCounters>,
    writer: Option<JoinHandle<()>>,
}

impl QueuedSink {
    /// Starts the writer thread. `capacity` is the queue length in records.
    pub fn spawn(
        name: &str,
        format: Format,
        capacity: usize,
        output: impl Output + 'static,
    ) -> std::io::Result<Self> {
        Self::spawn_with(name, format, capacity, output, Arc::default())
    }

    /// As [`QueuedSink::spawn`], with counters the output already holds (a spool that
    /// was found non-empty at start).
    pub fn spawn_with(
        name: &str,
        format: Format,
        capacity: usize,
        mut output: impl Output + 'static,
        counters: Arc<SinkCounters>,
    ) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::sync_channel(capacity.max(1));
        let thread_counters = Arc::clone(&counters);
        let writer = std::thread::Builder::new()
            .name(format!("sink-{name}"))
            .spawn(move || write_loop(&receiver, &mut output, &thread_counters))?;
        Ok(Self {
            name: name.to_string(),
            format,
            sender: Some(sender),
            counters,
            writer: Some(writer),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Queues one record. Never blocks.
    pub fn send(&self, record: Record) {
        let Some(sender) = &self.sender else {
            SinkCounters::add(&self.counters.queue_full, 1);
            return;
        };
        match sender.try_send(record) {
            Ok(()) => SinkCounters::add(&self.counters.accepted, 1),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                SinkCounters::add(&self.counters.queue_full, 1);
            }
        }
    }

    pub fn stats(&self) -> SinkStats {
        self.counters.snapshot()
    }

    /// Whether the writer has finished with every record queued so far.
    pub fn settled(&self) -> bool {
        self.counters.settled.load(Ordering::Acquire)
            >= self.counters.accepted.load(Ordering::Acquire)
    }

    /// Writes out everything queued, flushes and stops the writer.
    pub fn close(mut self) -> SinkStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        self.sender.take();
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                log::error!("sink {} writer thread panicked", self.name);
            }
        }
    }
}

impl Drop for QueuedSink {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn write_loop(receiver: &Receiver<Record>, output: &mut dyn Output, counters: &SinkCounters) {
    // Block for the first record, then take whatever else is queued before flushing, so
    // bursts cost one flush and a quiet stream is flushed at once.
    loop {
        let first = match output.idle_interval() {
            Some(interval) => match receiver.recv_timeout(interval) {
                Ok(record) => record,
                Err(RecvTimeoutError::Timeout) => {
                    output.idle(counters);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match receiver.recv() {
                Ok(record) => record,
                Err(_) => break,
            },
        };
        output.write(&first, counters);
        let mut burst = 1;
        while let Ok(record) = receiver.try_recv() {
            output.write(&record, counters);
            burst += 1;
        }
        output.flush(counters);
        counters.settled.fetch_add(burst, Ordering::Release);
    }
    output.close(counters);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    pub(crate) struct Shared(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Blocks every write until released, to fill the queue.
    struct Gate(Arc<Mutex<()>>);

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            drop(self.0.lock().unwrap());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            drop(self.0.lock().unwrap());
            Ok(())
        }
    }

    pub(crate) fn record(line: &str) -> Record {
        Record {
            table: "T",
            severity: 6,
            line: Arc::from(line),
        }
    }

    #[test]
    fn writes_everything_in_order_and_flushes_on_close() {
        let out = Shared::default();
        let sink = QueuedSink::spawn("t", Format::Json, 16, LineOutput::new(out.clone())).unwrap();
        for i in 0..10 {
            sink.send(record(&i.to_string()));
        }
        let stats = sink.close();
        assert_eq!(stats.written, 10);
        assert_eq!(
            String::from_utf8(out.0.lock().unwrap().clone()).unwrap(),
            "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n"
        );
    }

    #[test]
    fn full_queue_counts_drops_instead_of_blocking() {
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let sink = QueuedSink::spawn(
            "slow",
            Format::Json,
            2,
            LineOutput::new(Gate(Arc::clone(&gate))),
        )
        .unwrap();
        let started = std::time::Instant::now();
        for _ in 0..50 {
            sink.send(record("x"));
        }
        assert!(started.elapsed() < Duration::from_secs(1), "send blocked");
        // At most the queue plus the one record in the writer's hands got through.
        assert!(sink.stats().queue_full >= 47, "{:?}", sink.stats());
        drop(held);
        let stats = sink.close();
        assert_eq!(stats.written + stats.queue_full, 50);
        assert_eq!(stats.lost(), stats.queue_full);
    }

    #[test]
    fn a_stuck_sink_does_not_hold_up_another() {
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let stuck = QueuedSink::spawn(
            "stuck",
            Format::Json,
            4,
            LineOutput::new(Gate(Arc::clone(&gate))),
        )
        .unwrap();
        let out = Shared::default();
        let fine =
            QueuedSink::spawn("fine", Format::Json, 1024, LineOutput::new(out.clone())).unwrap();
        let sinks = super::super::Sinks::new(vec![stuck, fine]);
        for i in 0..100 {
            sinks.emit("T", 6, Some(&i.to_string()), None);
        }
        // The healthy sink gets all 100 while the other is still blocked.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while out
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            < 100
        {
            assert!(std::time::Instant::now() < deadline, "healthy sink starved");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(held);
        let stats = sinks.close();
        assert_eq!(stats[1].1.written, 100);
        assert_eq!(stats[0].1.written + stats[0].1.queue_full, 100);
    }
}
