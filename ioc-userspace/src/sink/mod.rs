//! Output I/O. Each sink owns a bounded queue and a writer thread, so a slow or stuck
//! output never stalls the kernel reader; what does not fit is counted, never silently lost.

mod queued;
pub mod stdout;

pub use queued::{QueuedSink, SinkStats};
