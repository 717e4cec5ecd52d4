//! One file per table in a directory (`DeviceNetworkEvents.json`, `IocmonHealth.json`,
//! `CommonSecurityLog.cef`, ...), rotated by size: `X.json` becomes `X.json.1`, `.1`
//! becomes `.2`, and so on up to `keep` old files; older ones are deleted. A record
//! never straddles two files.

use std::{
    collections::HashMap,
    fs::{File, OpenOptions},
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use super::{queued::SinkCounters, Format, Output, Record};

pub struct FileOutput {
    dir: PathBuf,
    extension: &'static str,
    max_bytes: u64,
    keep: u32,
    open: HashMap<&'static str, Open>,
}

struct Open {
    path: PathBuf,
    out: BufWriter<File>,
    size: u64,
}

impl FileOutput {
    pub fn new(dir: &Path, format: Format, max_bytes: u64, keep: u32) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            extension: match format {
                Format::Json => "json",
                Format::Cef => "cef",
            },
            max_bytes: max_bytes.max(1),
            keep,
            open: HashMap::new(),
        })
    }

    fn file_for(&mut self, table: &'static str) -> std::io::Result<&mut Open> {
        if !self.open.contains_key(table) {
            let path = self.dir.join(format!("{table}.{}", self.extension));
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            let size = file.metadata()?.len();
            self.open.insert(
                table,
                Open {
                    path,
                    out: BufWriter::new(file),
                    size,
                },
            );
        }
        self.open
            .get_mut(table)
            .ok_or_else(|| std::io::Error::other("file vanished from the table"))
    }

    fn write_line(&mut self, record: &Record) -> std::io::Result<()> {
        let (max_bytes, keep) = (self.max_bytes, self.keep);
        let len = record.line.len() as u64 + 1;
        let open = self.file_for(record.table)?;
        if open.size > 0 && open.size + len > max_bytes {
            open.out.flush()?;
            rotate(&open.path, keep)?;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&open.path)?;
            open.out = BufWriter::new(file);
            open.size = 0;
        }
        open.out.write_all(record.line.as_bytes())?;
        open.out.write_all(b"\n")?;
        open.size += len;
        Ok(())
    }
}

/// `path.N-1` -> `path.N` ... `path` -> `path.1`; `path.keep` is deleted (with keep 0,
/// `path` itself is).
fn rotate(path: &Path, keep: u32) -> std::io::Result<()> {
    let numbered = |n: u32| {
        let mut name = path.as_os_str().to_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    if keep == 0 {
        return std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(numbered(keep));
    for n in (1..keep).rev() {
        let from = numbered(n);
        if from.exists() {
            std::fs::rename(&from, numbered(n + 1))?;
        }
    }
    std::fs::rename(path, numbered(1))
}

impl Output for FileOutput {
    fn write(&mut self, record: &Record, counters: &SinkCounters) {
        match self.write_line(record) {
            Ok(()) => SinkCounters::add(&counters.written, 1),
            Err(err) => {
                SinkCounters::add(&counters.write_errors, 1);
                log::debug!("file sink {}: {err}", self.dir.display());
            }
        }
    }

    fn flush(&mut self, counters: &SinkCounters) {
        for open in self.open.values_mut() {
            if open.out.flush().is_err() {
                SinkCounters::add(&counters.write_errors, 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::queued::tests::record;

    #[test]
    fn one_file_per_table_rotated_by_size_keeping_n() {
        let dir = std::env::temp_dir().join(format!("iocmon-file-sink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let counters = SinkCounters::default();
        let mut out = FileOutput::new(&dir, Format::Json, 20, 2).unwrap();
        for i in 0..10 {
            // 9 bytes with the newline: two per file.
            out.write(&record(&format!("line-{i:02}")), &counters);
        }
        let mut health = record("h");
        health.table = "IocmonHealth";
        out.write(&health, &counters);
        out.flush(&counters);
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(read("T.json"), "line-08\nline-09\n");
        assert_eq!(read("T.json.1"), "line-06\nline-07\n");
        assert_eq!(read("T.json.2"), "line-04\nline-05\n");
        assert!(!dir.join("T.json.3").exists());
        assert_eq!(read("IocmonHealth.json"), "h\n");
        assert_eq!(counters.snapshot().written, 11);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
