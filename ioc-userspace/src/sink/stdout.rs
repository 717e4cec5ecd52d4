//! Records on standard output, one per line.

use super::{queued::LineOutput, Format, QueuedSink};

pub fn spawn(format: Format, capacity: usize) -> std::io::Result<QueuedSink> {
    QueuedSink::spawn(
        "stdout",
        format,
        capacity,
        LineOutput::new(std::io::stdout()),
    )
}
