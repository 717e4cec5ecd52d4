//! Reader of the `EVENTS` ring buffer with a deferred commit.
//!
//! aya's `RingBuf` hands the space of a record back to the kernel as soon as the record is
//! dropped. Here reading and committing are separate steps: records are copied out, the
//! agent turns them into records and waits until its outputs have them, and only then is
//! the consumer position advanced. With the map pinned, an agent killed at any moment
//! leaves every event it had not yet written in the ring, where its successor reads it.

use std::{
    os::fd::{AsFd as _, AsRawFd, BorrowedFd, RawFd},
    ptr::NonNull,
    sync::atomic::{fence, AtomicU32, AtomicUsize, Ordering},
};

use anyhow::{anyhow, Context as _, Result};
use aya::maps::{Map, MapData};
use tokio::io::{unix::AsyncFd, Interest};

/// Record header bits (`BPF_RINGBUF_*` in the kernel's uapi).
const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;
const HEADER_BYTES: usize = 8;

/// One `mmap` of the ring buffer map, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize, prot: i32, offset: usize) -> Result<Self> {
        let offset = libc::off_t::try_from(offset).context("ring buffer offset")?;
        // SAFETY: a fresh shared mapping of a BPF ring buffer fd; the kernel checks the
        // length, protection and offset against the map.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error()).context("mapping the ring buffer");
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| anyhow!("mmap returned null"))?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: exactly the region mapped in `new`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The ring buffer: the consumer page (ours to write), then the producer page and the
/// data area, which the kernel maps twice in a row so a record never wraps.
struct Ring {
    map: MapData,
    consumer: Mapping,
    producer: Mapping,
    page: usize,
    size: usize,
    /// Where the next read starts; the kernel's consumer position until committed.
    read_pos: usize,
}

// SAFETY: the mappings are plain shared memory owned by this value; all access goes through
// atomics or reads bounded by the mapping.
unsafe impl Send for Ring {}

impl AsRawFd for Ring {
    fn as_raw_fd(&self) -> RawFd {
        self.map.fd().as_fd().as_raw_fd()
    }
}

impl Ring {
    fn new(map: MapData) -> Result<Self> {
        let size = map
            .info()
            .context("reading the ring buffer's size")?
            .max_entries() as usize;
        // SAFETY: sysconf has no preconditions.
        let page =
            usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).context("page size")?;
        if size == 0 || !size.is_power_of_two() || !size.is_multiple_of(page) {
            return Err(anyhow!("ring buffer size {size} is not a page multiple"));
        }
        let fd = map.fd().as_fd();
        let consumer = Mapping::new(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        let producer = Mapping::new(fd, page + 2 * size, libc::PROT_READ, page)?;
        let mut ring = Self {
            map,
            consumer,
            producer,
            page,
            size,
            read_pos: 0,
        };
        // A pinned ring buffer keeps the position its last reader committed.
        ring.read_pos = ring.consumer_pos().load(Ordering::Acquire);
        Ok(ring)
    }

    fn consumer_pos(&self) -> &AtomicUsize {
        // SAFETY: the consumer page starts with the kernel's `unsigned long consumer_pos`,
        // page-aligned and alive as long as the mapping.
        unsafe { self.consumer.ptr.cast::<AtomicUsize>().as_ref() }
    }

    fn producer_pos(&self) -> usize {
        // SAFETY: the producer page starts with `producer_pos`, which the kernel writes with
        // release semantics.
        unsafe { self.producer.ptr.cast::<AtomicUsize>().as_ref() }.load(Ordering::Acquire)
    }

    /// Copies every complete record after `read_pos` into `batch`; stops at a record
    /// still being written. Returns how many were copied.
    fn read(&mut self, batch: &mut Vec<Vec<u8>>) -> Result<usize> {
        let before = batch.len();
        let producer = self.producer_pos();
        while self.read_pos != producer {
            let offset = self.page + (self.read_pos & (self.size - 1));
            // SAFETY: offset + 8 lies within the page + 2 * size mapping.
            let header = unsafe {
                self.producer
                    .ptr
                    .add(offset)
                    .cast::<AtomicU32>()
                    .as_ref()
                    .load(Ordering::Acquire)
            };
            if header & BUSY_BIT != 0 {
                break;
            }
            let len = (header & !(BUSY_BIT | DISCARD_BIT)) as usize;
            if len > self.size - HEADER_BYTES {
                return Err(anyhow!("corrupt ring buffer record header {header:#x}"));
            }
            if header & DISCARD_BIT == 0 {
                // SAFETY: the data area is mapped twice, so `len` bytes after the header
                // are inside the mapping whatever the offset.
                let data = unsafe {
                    std::slice::from_raw_parts(
                        self.producer.ptr.add(offset + HEADER_BYTES).as_ptr(),
                        len,
                    )
                };
                batch.push(data.to_vec());
            }
            self.read_pos += (HEADER_BYTES + len).next_multiple_of(8);
        }
        Ok(batch.len() - before)
    }

    /// Hands the space of everything read back to the kernel. Returns whether more
    /// records arrived meanwhile (they may not have woken us: the kernel only notifies a
    /// reader that had caught up).
    fn commit(&mut self) -> bool {
        self.consumer_pos().store(self.read_pos, Ordering::Release);
        fence(Ordering::SeqCst);
        self.producer_pos() != self.read_pos
    }

    fn pending_bytes(&self) -> usize {
        self.producer_pos()
            .wrapping_sub(self.consumer_pos().load(Ordering::Acquire))
    }
}

/// (bytes not yet consumed, size) of a ring buffer, without consuming anything.
pub fn unread(map: Map) -> Result<(usize, usize)> {
    let Map::RingBuf(data) = map else {
        return Err(anyhow!("EVENTS is not a ring buffer"));
    };
    let ring = Ring::new(data)?;
    Ok((ring.pending_bytes(), ring.size))
}

/// Hands out raw ring buffer records; decoding is `crate::event`'s job.
pub struct EventReader {
    ring: AsyncFd<Ring>,
    /// More records were seen after the last commit.
    more: bool,
}

impl EventReader {
    pub(super) fn new(map: Map) -> Result<Self> {
        let Map::RingBuf(data) = map else {
            return Err(anyhow!("EVENTS is not a ring buffer"));
        };
        let ring = Ring::new(data)?;
        // SAFETY: the ring owns the map and with it the fd, which stays open and unchanged
        // for as long as the AsyncFd (which owns the ring) lives.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|err| err.into_parts().1)
            .context("registering the ring buffer with the event loop")?;
        Ok(Self { ring, more: true })
    }

    /// Waits until records are available, then appends a copy of each to `batch`. They
    /// stay in the ring until [`EventReader::commit`].
    pub async fn read_batch(&mut self, batch: &mut Vec<Vec<u8>>) -> Result<usize> {
        loop {
            if self.more {
                self.more = false;
                let read = self.ring.get_mut().read(batch)?;
                if read > 0 {
                    return Ok(read);
                }
            }
            let mut guard = self.ring.readable_mut().await?;
            guard.clear_ready();
            self.more = true;
        }
    }

    /// Gives the space of the records read so far back to the kernel. Call once they
    /// are safely with the outputs.
    pub fn commit(&mut self) {
        if self.ring.get_mut().commit() {
            self.more = true;
        }
    }

    /// Reads, passes to `handle` and commits every record already waiting, without
    /// waiting for more.
    pub fn drain(&mut self, mut handle: impl FnMut(&[u8])) -> Result<usize> {
        let mut batch = Vec::new();
        let mut count = 0;
        // A record reserved but not yet submitted blocks the ones behind it; its program
        // finishes within microseconds, so a few yields are enough.
        let mut busy_retries = 100;
        loop {
            let read = self.ring.get_mut().read(&mut batch)?;
            for record in batch.drain(..) {
                handle(&record);
            }
            count += read;
            if !self.ring.get_mut().commit() {
                return Ok(count);
            }
            if read == 0 {
                busy_retries -= 1;
                if busy_retries == 0 {
                    return Ok(count);
                }
                std::thread::yield_now();
            }
        }
    }

    /// Bytes of records not yet committed (read or not).
    pub fn pending_bytes(&self) -> usize {
        self.ring.get_ref().pending_bytes()
    }
}
