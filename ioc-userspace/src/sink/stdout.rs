//! JSON lines on standard output.

use super::QueuedSink;

pub fn spawn(capacity: usize) -> std::io::Result<QueuedSink> {
    QueuedSink::spawn("stdout", capacity, std::io::stdout())
}
