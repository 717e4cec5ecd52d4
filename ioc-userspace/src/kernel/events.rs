//! Asynchronous reader of the `EVENTS` ring buffer.

use anyhow::{Context as _, Result};
use aya::maps::{Map, MapData, RingBuf};
use tokio::io::{unix::AsyncFd, Interest};

/// Hands out raw ring buffer records; decoding is `crate::event`'s job.
pub struct EventReader {
    ring: AsyncFd<RingBuf<MapData>>,
}

impl EventReader {
    pub(super) fn new(map: Map) -> Result<Self> {
        let ring = RingBuf::try_from(map).context("EVENTS is not a ring buffer")?;
        // SAFETY: the ring buffer owns its fd, which stays open and unchanged for as long as
        // the AsyncFd (which owns the ring buffer) lives.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|err| err.into_parts().1)
            .context("registering the ring buffer with the event loop")?;
        Ok(Self { ring })
    }

    /// Waits until records are available, then appends a copy of each to `batch`. The
    /// copies let the caller handle them without holding the ring buffer borrowed.
    pub async fn read_batch(&mut self, batch: &mut Vec<Vec<u8>>) -> Result<usize> {
        let mut guard = self.ring.readable_mut().await?;
        let before = batch.len();
        while let Some(record) = guard.get_inner_mut().next() {
            batch.push(record.to_vec());
        }
        guard.clear_ready();
        Ok(batch.len() - before)
    }

    /// Passes every record already waiting to `handle`, without waiting.
    pub fn drain(&mut self, mut handle: impl FnMut(&[u8])) -> usize {
        let mut count = 0;
        while let Some(record) = self.ring.get_mut().next() {
            handle(&record);
            count += 1;
        }
        count
    }
}
