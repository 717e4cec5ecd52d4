//! A bounded first-in-first-out queue of messages on disk, for a forwarder that is down.
//!
//! One file; each entry is a 4-byte little-endian length and the message bytes (already
//! framed for the wire, so a replay sends them as they were). Entries are read from the
//! front and appended at the back; when the front catches up with the back the file is
//! truncated to zero, and when an append would pass the bound the unread part is moved to
//! the start first. A torn last entry (power cut) is cut off when the spool is opened, so
//! a spool left by an earlier run is replayed too.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

const HEADER: u64 = 4;

pub struct Spool {
    path: PathBuf,
    file: File,
    read_pos: u64,
    write_pos: u64,
    max_bytes: u64,
    records: u64,
}

impl Spool {
    /// Opens (or creates) the spool at `path`, holding at most `max_bytes` on disk.
    pub fn open(path: &Path, max_bytes: u64) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len();
        // Walk the entries to find the end of the last whole one.
        let mut pos = 0;
        let mut records = 0;
        let mut header = [0u8; HEADER as usize];
        while pos + HEADER <= len {
            file.seek(SeekFrom::Start(pos))?;
            file.read_exact(&mut header)?;
            let size = u64::from(u32::from_le_bytes(header));
            if pos + HEADER + size > len {
                break;
            }
            pos += HEADER + size;
            records += 1;
        }
        if pos != len {
            log::warn!(
                "spool {}: cutting a torn entry ({} bytes)",
                path.display(),
                len - pos
            );
            file.set_len(pos)?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            read_pos: 0,
            write_pos: pos,
            max_bytes,
            records,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Entries waiting.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bytes waiting (headers included).
    pub fn bytes(&self) -> u64 {
        self.write_pos - self.read_pos
    }

    /// Appends `message`; `Ok(false)` when the bound leaves no room for it.
    pub fn push(&mut self, message: &[u8]) -> std::io::Result<bool> {
        let Ok(size) = u32::try_from(message.len()) else {
            return Ok(false);
        };
        let need = HEADER + u64::from(size);
        if self.write_pos + need > self.max_bytes && self.read_pos > 0 {
            self.compact()?;
        }
        if self.write_pos + need > self.max_bytes {
            return Ok(false);
        }
        self.file.seek(SeekFrom::Start(self.write_pos))?;
        let mut entry = Vec::with_capacity(need as usize);
        entry.extend_from_slice(&size.to_le_bytes());
        entry.extend_from_slice(message);
        self.file.write_all(&entry)?;
        self.write_pos += need;
        self.records += 1;
        Ok(true)
    }

    /// The oldest entry, without removing it.
    pub fn front(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        if self.records == 0 {
            return Ok(None);
        }
        let mut header = [0u8; HEADER as usize];
        self.file.seek(SeekFrom::Start(self.read_pos))?;
        self.file.read_exact(&mut header)?;
        let mut message = vec![0u8; u32::from_le_bytes(header) as usize];
        self.file.read_exact(&mut message)?;
        Ok(Some(message))
    }

    /// Removes the oldest entry (after it was sent).
    pub fn pop(&mut self) -> std::io::Result<()> {
        if self.records == 0 {
            return Ok(());
        }
        let mut header = [0u8; HEADER as usize];
        self.file.seek(SeekFrom::Start(self.read_pos))?;
        self.file.read_exact(&mut header)?;
        self.read_pos += HEADER + u64::from(u32::from_le_bytes(header));
        self.records -= 1;
        if self.records == 0 {
            self.file.set_len(0)?;
            self.read_pos = 0;
            self.write_pos = 0;
        }
        Ok(())
    }

    /// Moves the unread entries to the start of the file.
    fn compact(&mut self) -> std::io::Result<()> {
        let mut buffer = vec![0u8; 64 * 1024];
        let (mut from, mut to) = (self.read_pos, 0u64);
        while from < self.write_pos {
            let n = buffer.len().min((self.write_pos - from) as usize);
            self.file.seek(SeekFrom::Start(from))?;
            self.file.read_exact(&mut buffer[..n])?;
            self.file.seek(SeekFrom::Start(to))?;
            self.file.write_all(&buffer[..n])?;
            from += n as u64;
            to += n as u64;
        }
        self.file.set_len(to)?;
        self.read_pos = 0;
        self.write_pos = to;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("iocmon-spool-{}", std::process::id()));
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn fifo_bounded_compacting_and_persistent() {
        let path = path("fifo");
        let mut spool = Spool::open(&path, 40).unwrap();
        // Each entry: 4 + 6 = 10 bytes; four fit.
        for i in 0..5 {
            let kept = spool.push(format!("msg-{i:02}").as_bytes()).unwrap();
            assert_eq!(kept, i < 4, "entry {i}");
        }
        assert_eq!(spool.records(), 4);
        assert_eq!(spool.front().unwrap().unwrap(), b"msg-00");
        spool.pop().unwrap();
        // Room again, by compaction.
        assert!(spool.push(b"msg-05").unwrap());
        assert_eq!(spool.bytes(), 40);
        drop(spool);
        // A torn tail is cut; the rest survives a restart, in order.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[200, 0, 0, 0, b'x']).unwrap();
        let mut spool = Spool::open(&path, 40).unwrap();
        let mut seen = Vec::new();
        while let Some(message) = spool.front().unwrap() {
            seen.push(String::from_utf8(message).unwrap());
            spool.pop().unwrap();
        }
        assert_eq!(seen, ["msg-01", "msg-02", "msg-03", "msg-05"]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }
}
