//! Harness for iocmon's integration tests: start the real agent (which loads the real
//! programs into the running kernel), run client processes, and read its records.
//!
//! Tests need root. Without it they fail loudly; they never pass by skipping.

use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        mpsc::{self, Receiver, RecvTimeoutError},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use serde_json::Value;

/// How long the agent may take to load and attach.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a record may take to arrive after the client has exited.
pub const RECORD_TIMEOUT: Duration = Duration::from_secs(10);

pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "iocmon integration tests load eBPF programs and need root; run `cargo xtask test` as root"
    );
}

/// The agent binary: $IOCMON_BIN (set by `cargo xtask test`), else target/debug/iocmon.
pub fn iocmon_bin() -> PathBuf {
    let path = std::env::var_os("IOCMON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/iocmon")
        });
    assert!(
        path.is_file(),
        "iocmon binary not found at {}: run the tests with `cargo xtask test`, which builds it",
        path.display()
    );
    path
}

/// A unique scratch directory for one test.
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("iocmon-test-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creating scratch dir");
    dir
}

/// A running agent and everything it has written.
pub struct Agent {
    child: Child,
    records: Receiver<Value>,
    seen: Vec<Value>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Kernel ids of the programs the agent attached (from its readiness line).
    pub program_ids: Vec<u32>,
}

/// What an agent left behind when it stopped.
pub struct Stopped {
    pub status: ExitStatus,
    pub records: Vec<Value>,
    pub stderr: Vec<String>,
}

impl Agent {
    /// Writes `iocs` to a file and starts `iocmon run --iocs FILE ARGS...`, returning once
    /// the agent reports that every program is attached.
    pub fn start(test: &str, iocs: &str, args: &[&str]) -> Agent {
        require_root();
        let dir = scratch_dir(test);
        let ioc_file = dir.join("iocs.txt");
        std::fs::write(&ioc_file, iocs).expect("writing indicator file");
        let mut command = Command::new(iocmon_bin());
        command
            .arg("run")
            .arg("--iocs")
            .arg(&ioc_file)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Self::spawn(command)
    }

    /// Starts an agent from a prepared command and waits for readiness.
    pub fn spawn(mut command: Command) -> Agent {
        let mut child = command.spawn().expect("starting iocmon");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");

        let (record_tx, records) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|err| Value::String(format!("UNPARSABLE ({err}): {line}")));
                if record_tx.send(value).is_err() {
                    break;
                }
            }
        });

        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let stderr_sink = Arc::clone(&stderr_lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains(": ready: ") {
                    let _ = ready_tx.send(line.clone());
                }
                if let Ok(mut lines) = stderr_sink.lock() {
                    lines.push(line);
                }
            }
        });

        let ready = match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "iocmon did not become ready within {READY_TIMEOUT:?} (exit: {status:?}); stderr:\n{}",
                    stderr_lines.lock().map(|l| l.join("\n")).unwrap_or_default()
                );
            }
        };
        let program_ids = parse_program_ids(&ready);
        assert_eq!(program_ids.len(), 6, "readiness line: {ready}");
        Agent {
            child,
            records,
            seen: Vec::new(),
            stderr: stderr_lines,
            program_ids,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a record matching `predicate`, failing the test (with every record seen)
    /// when none arrives in time.
    pub fn wait_for(&mut self, what: &str, predicate: impl Fn(&Value) -> bool) -> Value {
        if let Some(found) = self.seen.iter().find(|r| predicate(r)) {
            return found.clone();
        }
        let deadline = Instant::now() + RECORD_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.records.recv_timeout(left) {
                Ok(record) => {
                    let hit = predicate(&record);
                    self.seen.push(record.clone());
                    if hit {
                        return record;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => panic!(
                    "no record for {what} within {RECORD_TIMEOUT:?}; records seen:\n{}\nstderr:\n{}",
                    self.seen
                        .iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join("\n"),
                    self.stderr_text()
                ),
            }
        }
    }

    /// Every record received so far.
    pub fn records(&mut self) -> &[Value] {
        while let Ok(record) = self.records.try_recv() {
            self.seen.push(record);
        }
        &self.seen
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Sends `signal` and waits for the agent to exit.
    pub fn stop_with(mut self, signal: i32) -> Stopped {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "signalling iocmon");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for iocmon") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "iocmon did not exit after signal {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // Let the reader threads see EOF.
        std::thread::sleep(Duration::from_millis(100));
        let mut records = std::mem::take(&mut self.seen);
        while let Ok(record) = self.records.try_recv() {
            records.push(record);
        }
        Stopped {
            status,
            records,
            stderr: self.stderr.lock().map(|l| l.clone()).unwrap_or_default(),
        }
    }

    pub fn stop(self) -> Stopped {
        self.stop_with(libc::SIGTERM)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // A failed test must not leave an agent (and its programs) behind.
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = self.child.wait();
        }
    }
}

/// Program ids from "... (program ids 30,31,32,33); ...".
pub fn parse_program_ids(ready_line: &str) -> Vec<u32> {
    ready_line
        .split("program ids ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .map(|ids| {
            ids.split(',')
                .filter_map(|id| id.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A symlink called `name` to `target`, in a scratch directory: running it makes a
/// process whose comm (and executable file name) is `name`.
pub fn named_program(target: &str, name: &str) -> PathBuf {
    let dir = scratch_dir(&format!("bin-{name}"));
    let link = dir.join(name);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(target, &link).expect("symlinking a test program");
    link
}

/// Runs `sh -c SCRIPT` under the program name `shell_name` (a symlink to /bin/sh, so it
/// shows as that ancestor) and waits for it.
pub fn run_shell_as(shell_name: &str, script: &str) {
    let shell = named_program("/bin/sh", shell_name);
    let status = Command::new(shell)
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .status()
        .expect("starting the shell");
    assert!(
        status.success(),
        "{shell_name} -c {script:?} failed: {status}"
    );
}

/// Runs the test client with `args`, optionally under another program name (a symlink
/// named `name`, which becomes the process's comm), and returns its pid once it exited.
pub fn run_client(client: &str, name: Option<&str>, args: &[&str]) -> u32 {
    let program = match name {
        Some(name) => named_program(client, name),
        None => PathBuf::from(client),
    };
    let mut child = Command::new(&program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the test client");
    let pid = child.id();
    let status = child.wait().expect("waiting for the test client");
    assert!(status.success(), "test client {args:?} failed: {status}");
    pid
}

/// Field accessors that keep assertions short.
pub fn str_field<'a>(record: &'a Value, name: &str) -> &'a str {
    record[name].as_str().unwrap_or("")
}

pub fn extra<'a>(record: &'a Value, name: &str) -> &'a Value {
    &record["AdditionalFields"][name]
}

pub fn from_pid(record: &Value, pid: u32) -> bool {
    record["InitiatingProcessId"].as_u64() == Some(u64::from(pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_ids_from_ready_line() {
        let line = "iocmon: info: ready: 4 programs attached to /x (program ids 30,31,32,33); 4 indicators";
        assert_eq!(parse_program_ids(line), vec![30, 31, 32, 33]);
        assert!(parse_program_ids("nothing").is_empty());
    }
}
