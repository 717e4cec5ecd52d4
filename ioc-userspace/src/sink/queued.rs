use std::{
    io::Write,
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc::{self, Receiver, SyncSender, TrySendError},
        Arc,
    },
    thread::JoinHandle,
};

/// Counters of one sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkStats {
    pub written: u64,
    /// Records refused because the queue was full.
    pub queue_full: u64,
    /// Records lost to write errors.
    pub write_errors: u64,
}

#[derive(Default)]
struct Counters {
    written: AtomicU64,
    queue_full: AtomicU64,
    write_errors: AtomicU64,
}

/// A bounded queue of complete lines in front of a writer thread.
pub struct QueuedSink {
    name: String,
    sender: Option<SyncSender<Vec<u8>>>,
    counters: Arc<Counters>,
    writer: Option<JoinHandle<()>>,
}

impl QueuedSink {
    /// Starts the writer thread. `capacity` is the queue length in records.
    pub fn spawn(
        name: &str,
        capacity: usize,
        output: impl Write + Send + 'static,
    ) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::sync_channel(capacity);
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let writer = std::thread::Builder::new()
            .name(format!("sink-{name}"))
            .spawn(move || write_loop(receiver, output, &thread_counters))?;
        Ok(Self {
            name: name.to_string(),
            sender: Some(sender),
            counters,
            writer: Some(writer),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queues one record (a complete line, newline included). Never blocks.
    pub fn send(&self, line: Vec<u8>) {
        let Some(sender) = &self.sender else {
            self.counters.queue_full.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match sender.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.queue_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn stats(&self) -> SinkStats {
        SinkStats {
            written: self.counters.written.load(Ordering::Relaxed),
            queue_full: self.counters.queue_full.load(Ordering::Relaxed),
            write_errors: self.counters.write_errors.load(Ordering::Relaxed),
        }
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

fn write_loop(receiver: Receiver<Vec<u8>>, output: impl Write, counters: &Counters) {
    let mut output = std::io::BufWriter::new(output);
    // Block for the first record, then take whatever else is queued before flushing, so
    // bursts cost one write and a quiet stream is flushed at once.
    while let Ok(first) = receiver.recv() {
        let mut pending = Some(first);
        while let Some(line) = pending.take().or_else(|| receiver.try_recv().ok()) {
            match output.write_all(&line) {
                Ok(()) => counters.written.fetch_add(1, Ordering::Relaxed),
                Err(_) => counters.write_errors.fetch_add(1, Ordering::Relaxed),
            };
        }
        if output.flush().is_err() {
            counters.write_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    let _ = output.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

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

    #[test]
    fn writes_everything_in_order_and_flushes_on_close() {
        let out = Shared::default();
        let sink = QueuedSink::spawn("t", 16, out.clone()).unwrap();
        for i in 0..10 {
            sink.send(format!("{i}\n").into_bytes());
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
        let sink = QueuedSink::spawn("slow", 2, Gate(Arc::clone(&gate))).unwrap();
        for _ in 0..50 {
            sink.send(b"x\n".to_vec());
        }
        // At most the queue plus the one line in the writer's hands got through.
        assert!(sink.stats().queue_full >= 47, "{:?}", sink.stats());
        drop(held);
        let stats = sink.close();
        assert_eq!(stats.written + stats.queue_full, 50);
    }
}
