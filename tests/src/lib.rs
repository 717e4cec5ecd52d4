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
        // --no-config: an installed /etc/iocmon/iocmon.toml must not leak into tests.
        command
            .arg("run")
            .arg("--no-config")
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
        assert_eq!(program_ids.len(), 9, "readiness line: {ready}");
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
    named_program_os(target, std::ffi::OsStr::new(name))
}

/// A fresh directory per call: tests run in parallel threads and may ask for the same
/// name at once.
fn unique_bin_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    scratch_dir(&format!("bin-{n}"))
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

/// What the test client's tcp/udp actions came to (its closing `outcomes ...` line).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub connected: u64,
    pub refused: u64,
    /// EPERM: refused by iocmon's block mode.
    pub denied: u64,
    pub sent: u64,
    pub failed: u64,
}

impl Outcomes {
    /// Parses the client's stdout; panics when the closing line is missing.
    pub fn parse(stdout: &str) -> Outcomes {
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("outcomes "))
            .unwrap_or_else(|| panic!("no outcomes line in client output: {stdout}"));
        let mut outcomes = Outcomes::default();
        for pair in line.split_whitespace() {
            let (name, value) = pair.split_once('=').expect("name=value");
            let value: u64 = value.parse().expect("a count");
            match name {
                "connected" => outcomes.connected = value,
                "refused" => outcomes.refused = value,
                "denied" => outcomes.denied = value,
                "sent" => outcomes.sent = value,
                "failed" => outcomes.failed = value,
                other => panic!("unknown outcome {other}"),
            }
        }
        outcomes
    }
}

/// Starts the test client in the background with its stdout captured.
pub fn spawn_client(client: &str, args: &[&str]) -> std::process::Child {
    Command::new(client)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the test client")
}

/// Waits for a client from [`spawn_client`]; returns its pid and outcomes.
pub fn finish_client(child: std::process::Child) -> (u32, Outcomes) {
    let pid = child.id();
    let output = child
        .wait_with_output()
        .expect("waiting for the test client");
    assert!(
        output.status.success(),
        "test client failed: {}",
        output.status
    );
    (
        pid,
        Outcomes::parse(&String::from_utf8_lossy(&output.stdout)),
    )
}

/// Runs the test client to the end; returns its pid and outcomes.
pub fn run_client_outcomes(client: &str, args: &[&str]) -> (u32, Outcomes) {
    finish_client(spawn_client(client, args))
}

/// A finished command's exit code, stdout and stderr, for assertion messages.
pub fn describe_output(output: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
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

// ---- Helpers for the sink tests (records, CEF, syslog, rsyslog) ----

/// A symlink to `target` whose name is any bytes but `/` and NUL (invalid UTF-8 too).
pub fn named_program_os(target: &str, name: &std::ffi::OsStr) -> PathBuf {
    let dir = unique_bin_dir();
    let link = dir.join(name);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(target, &link).expect("symlinking a test program");
    link
}

/// Seven header fields and the extension's (key, value) pairs.
pub type CefRecord = (Vec<String>, Vec<(String, String)>);

/// A CEF line split into its seven unescaped header fields and its extension pairs,
/// unescaped. Written independently of the agent's own code. `None` when malformed.
pub fn parse_cef(line: &str) -> Option<CefRecord> {
    let rest = line.strip_prefix("CEF:")?;
    let mut header = Vec::new();
    let mut field = String::new();
    let mut chars = rest.char_indices();
    let mut extension_start = None;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => field.push(chars.next()?.1),
            '|' => {
                header.push(std::mem::take(&mut field));
                if header.len() == 7 {
                    extension_start = Some(i + 1);
                    break;
                }
            }
            c => field.push(c),
        }
    }
    let extension = &rest[extension_start?..];
    if extension.contains('\n') || extension.contains('\r') {
        return None;
    }
    // Tokens: a key is [A-Za-z0-9_]+ right after the start or a space, followed by an
    // unescaped '='. Everything up to the next key (minus its space) is the value.
    let bytes = extension.as_bytes();
    let mut keys = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if i == 0 || bytes[i - 1] == b' ' {
            let mut j = i;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            let escaped = bytes[i..j].is_empty() || (j > 0 && bytes[j - 1] == b'\\');
            if j < bytes.len() && bytes[j] == b'=' && !escaped {
                keys.push((i, j));
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    let mut pairs = Vec::new();
    for (n, &(start, eq)) in keys.iter().enumerate() {
        let end = keys.get(n + 1).map_or(bytes.len(), |&(next, _)| next - 1);
        let raw = &extension[eq + 1..end];
        let mut value = String::new();
        let mut it = raw.chars();
        while let Some(c) = it.next() {
            if c == '\\' {
                match it.next()? {
                    'n' => value.push('\n'),
                    'r' => value.push('\r'),
                    '\\' => value.push('\\'),
                    '=' => value.push('='),
                    _ => return None, // no other escape is valid
                }
            } else if c == '=' {
                return None; // an unescaped '=' inside a value
            } else {
                value.push(c);
            }
        }
        pairs.push((extension[start..eq].to_string(), value));
    }
    Some((header, pairs))
}

/// The value of `key` in parsed CEF pairs.
pub fn cef_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Syslog messages from a stream: LF-terminated, or octet-counted (`LEN SP MSG`).
/// `None` when the bytes do not frame cleanly.
pub fn syslog_frames(bytes: &[u8], octet: bool) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if octet {
            let space = rest.iter().position(|&b| b == b' ')?;
            let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
            let body = rest.get(space + 1..space + 1 + len)?;
            out.push(body.to_vec());
            rest = &rest[space + 1 + len..];
        } else {
            let end = rest.iter().position(|&b| b == b'\n')?;
            out.push(rest[..end].to_vec());
            rest = &rest[end + 1..];
        }
    }
    Some(out)
}

/// The message after an RFC 3164 header `<PRI>Mmm dd hh:mm:ss HOST ` (and the
/// `iocmon[PID]: ` tag for JSON), or after an RFC 5424 header's structured data `- `.
pub fn syslog_body(message: &str) -> Option<&str> {
    let after_pri = message.strip_prefix('<')?.split_once('>')?.1;
    if let Some(rest) = after_pri.strip_prefix("1 ") {
        // VERSION TIMESTAMP HOST APP PROCID MSGID SD MSG
        let mut parts = rest.splitn(6, ' ');
        for _ in 0..5 {
            parts.next()?;
        }
        return parts.next()?.strip_prefix("- ");
    }
    // Mmm dd hh:mm:ss: 15 characters, then a space, HOST and a space.
    let rest = after_pri.get(16..)?;
    let body = rest.split_once(' ')?.1;
    Some(match body.split_once("]: ") {
        Some((tag, json)) if tag.starts_with("iocmon[") => json,
        _ => body,
    })
}

/// A loopback port nothing listens on right now.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a loopback port")
        .port()
}

/// An rsyslogd of the test's own: its own config, port, work directory, pid file and
/// output file, in the foreground (`-n`); never the system's configuration.
pub struct Rsyslog {
    child: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
    pub output: PathBuf,
    config: PathBuf,
}

impl Rsyslog {
    /// Installs rsyslog when missing (apt-get) and starts it on 127.0.0.1:`port`.
    pub fn start(test: &str, port: u16) -> Rsyslog {
        require_root();
        ensure_rsyslog_installed();
        let dir = scratch_dir(&format!("rsyslog-{test}"));
        let output = dir.join("received.log");
        let config = dir.join("rsyslog.conf");
        let work = dir.join("work");
        std::fs::create_dir_all(&work).expect("rsyslog work dir");
        std::fs::write(
            &config,
            format!(
                "global(workDirectory=\"{work}\" maxMessageSize=\"64k\")\n\
                 module(load=\"imtcp\")\n\
                 template(name=\"raw\" type=\"string\" string=\"%hostname% %rawmsg%\\n\")\n\
                 input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"capture\")\n\
                 ruleset(name=\"capture\") {{\n\
                   action(type=\"omfile\" file=\"{out}\" template=\"raw\")\n\
                 }}\n",
                work = work.display(),
                out = output.display(),
            ),
        )
        .expect("writing rsyslog.conf");
        let mut rsyslog = Rsyslog {
            child: None,
            dir,
            port,
            output,
            config,
        };
        rsyslog.restart();
        rsyslog
    }

    /// Starts rsyslogd (again) and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "rsyslog already running");
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&self.config)
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting rsyslogd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "rsyslogd did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops rsyslogd (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    /// The received lines (`HOST RAWMSG`).
    pub fn lines(&self) -> Vec<String> {
        std::fs::read(&self.output)
            .map(|bytes| {
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `apt-get install -y rsyslog` when rsyslogd is not on the PATH.
pub fn ensure_rsyslog_installed() {
    let found = Command::new("rsyslogd")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return;
    }
    let _ = Command::new("apt-get")
        .args(["update", "-q"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    let status = Command::new("apt-get")
        .args(["install", "-y", "-q", "rsyslog"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .expect("running apt-get");
    assert!(status.success(), "apt-get install rsyslog failed: {status}");
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
