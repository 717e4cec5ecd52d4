//! The configuration file, through the real binary: a bad file stops `iocmon run` with
//! the file, line, key and reason on stderr before anything is loaded into the kernel,
//! and `iocmon config check` accepts the packaged service configuration.

use std::{
    io::Read as _,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use iocmon_tests::{iocmon_bin, scratch_dir};

/// A config error is reported at once; an agent that got as far as the kernel would
/// still be running after this.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// Embedded rather than read from the source tree: `cargo xtask vm-test` runs this
/// executable inside a VM that has no source tree.
const PACKAGED: &str = include_str!("../../packaging/iocmon.toml");

struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs iocmon with `args` and waits for it to exit, killing it (and failing the test)
/// when it does not exit in time.
fn iocmon(args: &[&str]) -> Finished {
    let mut child = Command::new(iocmon_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting iocmon");
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for iocmon") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("iocmon {args:?} did not exit within {EXIT_TIMEOUT:?}: it started the agent");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_string(&mut stdout).expect("reading stdout");
    }
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut stderr).expect("reading stderr");
    }
    Finished {
        code: status.code(),
        stdout,
        stderr,
    }
}

fn config_file(test: &str, text: &str) -> PathBuf {
    let path = scratch_dir("config").join(format!("{test}.toml"));
    std::fs::write(&path, text).expect("writing a configuration file");
    path
}

/// `iocmon run --config FILE` with `text` in FILE must fail with exactly `message` (FILE
/// standing for the path) as its error line.
fn run_refuses(test: &str, text: &str, message: &str) {
    let path = config_file(test, text);
    let path = path.to_str().expect("UTF-8 scratch path");
    let finished = iocmon(&["run", "--config", path]);
    assert_eq!(finished.code, Some(1), "stderr:\n{}", finished.stderr);
    let expected = format!("iocmon: error: {}\n", message.replace("FILE", path));
    assert_eq!(finished.stderr, expected);
    assert!(!finished.stderr.contains(": ready: "));
}

#[test]
fn run_refuses_an_unknown_key() {
    run_refuses(
        "unknown-key",
        "all-dns = true\nfed-interval = 5\n",
        "FILE:2: unknown key `fed-interval` (did you mean `feed-interval`?)",
    );
}

#[test]
fn run_refuses_a_value_the_option_refuses() {
    run_refuses(
        "bad-value",
        "feed-interval = 0\n",
        "FILE:1: invalid value \"0\" for `feed-interval`: 0 is not in 1..18446744073709551615",
    );
}

#[test]
fn run_refuses_a_value_of_the_wrong_type() {
    run_refuses(
        "wrong-type",
        "all-connections = \"yes\"\n",
        "FILE:1: `all-connections` must be true or false, not a string",
    );
}

#[test]
fn run_refuses_a_syntax_error() {
    run_refuses(
        "syntax",
        "iocs = [\"/etc/iocmon/indicators.txt\"\n",
        "FILE:1:37: unclosed array, expected `]`",
    );
}

#[test]
fn run_refuses_a_missing_explicit_file() {
    let finished = iocmon(&["run", "--config", "/nonexistent/iocmon.toml"]);
    assert_eq!(finished.code, Some(1));
    assert_eq!(
        finished.stderr,
        "iocmon: error: /nonexistent/iocmon.toml: cannot read: No such file or directory (os error 2)\n"
    );
}

#[test]
fn config_check_accepts_the_packaged_configuration() {
    let packaged = config_file("packaged", PACKAGED);
    let packaged = packaged.to_str().expect("UTF-8 scratch path");
    let finished = iocmon(&["config", "check", "--config", packaged]);
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    assert!(finished.stderr.is_empty(), "{}", finished.stderr);
    let lines: Vec<&str> = finished.stdout.lines().collect();
    assert_eq!(lines[0], format!("# {packaged}: valid"));
    let line_of = |key: &str| {
        lines
            .iter()
            .find(|line| line.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} in:\n{}", finished.stdout))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        line_of("iocs"),
        "iocs = [\"/etc/iocmon/indicators.txt\"] # file"
    );
    assert_eq!(line_of("feed-interval"), "feed-interval = 3600 # default");
    assert_eq!(line_of("log-level"), "log-level = \"info\" # default");
}

#[test]
fn config_check_shows_command_line_globals_and_fails_on_a_bad_file() {
    let packaged = config_file("packaged-globals", PACKAGED);
    let packaged = packaged.to_str().expect("UTF-8 scratch path");
    let finished = iocmon(&[
        "--log-level",
        "warn",
        "config",
        "check",
        "--config",
        packaged,
    ]);
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    assert!(finished
        .stdout
        .lines()
        .any(|line| line.starts_with("log-level") && line.ends_with("= \"warn\"  # command line")));

    let path = config_file("check-bad", "ringbuf-size = 5000\n");
    let path = path.to_str().expect("UTF-8 scratch path");
    let finished = iocmon(&["config", "check", "--config", path]);
    assert_eq!(finished.code, Some(1));
    assert_eq!(
        finished.stderr,
        format!(
            "iocmon: error: {path}:1: invalid value \"5000\" for `ringbuf-size`: 5000 is not a power of two >= 4096\n"
        )
    );
    assert!(finished.stdout.is_empty());
}
