//! Remote feeds from a test HTTP server on loopback: picked up without restart,
//! conditional requests, a broken feed keeps the last good copy, and the cached copy
//! starts a later agent without network.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use iocmon_tests::{from_pid, run_client, scratch_dir, Agent};

const CLIENT: &str = env!("CARGO_BIN_EXE_ioc-connect");

/// A tiny HTTP/1.1 server on 127.0.0.1 serving one body with an ETag.
struct FeedServer {
    port: u16,
    state: Arc<Mutex<ServerState>>,
}

#[derive(Default)]
struct ServerState {
    body: String,
    version: u32,
    requests: u32,
    conditional_hits: u32,
    down: bool,
}

impl FeedServer {
    fn start(body: &str) -> FeedServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(ServerState {
            body: body.to_string(),
            version: 1,
            ..ServerState::default()
        }));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                serve(stream, &shared);
            }
        });
        FeedServer { port, state }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/threatfox.txt", self.port)
    }

    fn set_body(&self, body: &str) {
        let mut state = self.state.lock().unwrap();
        state.body = body.to_string();
        state.version += 1;
    }

    fn state<T>(&self, f: impl Fn(&ServerState) -> T) -> T {
        f(&self.state.lock().unwrap())
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<ServerState>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut if_none_match = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("if-none-match:") {
            if_none_match = Some(value.trim().to_string());
        }
    }
    let mut state = state.lock().unwrap();
    state.requests += 1;
    if state.down {
        let _ = stream.write_all(b"HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    let etag = format!("\"v{}\"", state.version);
    if if_none_match.as_deref() == Some(etag.as_str()) {
        state.conditional_hits += 1;
        let _ = stream.write_all(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: {etag}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        state.body.len(),
        state.body
    );
    let _ = stream.write_all(response.as_bytes());
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
}

fn wait_until(what: &str, agent: &Agent, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; stderr:\n{}",
            agent.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Connects to `ip:port` and then to the always-present marker; true when the first
/// connect was reported as an indicator hit.
fn is_hit(agent: &mut Agent, ip: &str, port: u16) -> bool {
    let target = format!("{ip}:{port}");
    let pid = run_client(CLIENT, None, &["tcp", &target, "tcp", "127.0.0.9:9999"]);
    agent.wait_for("marker", |r| from_pid(r, pid) && r["RemotePort"] == 9999);
    agent
        .records()
        .iter()
        .any(|r| from_pid(r, pid) && r["RemotePort"] == port)
}

#[test]
fn feed_is_fetched_refreshed_validated_and_cached() {
    let server = FeedServer::start("# feed v1\n127.0.0.21:4444\n");
    let cache = scratch_dir("feed-cache");
    let _ = std::fs::remove_dir_all(&cache);
    let feed_args = |url: &str| {
        vec![
            "--feed".to_string(),
            url.to_string(),
            "--feed-interval".into(),
            "1".into(),
            "--feed-cache".into(),
            cache.display().to_string(),
        ]
    };
    let url = server.url();
    let args = feed_args(&url);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut agent = Agent::start("feed", "127.0.0.9:9999\n", &args);

    // v1 was fetched before start.
    assert!(
        is_hit(&mut agent, "127.0.0.21", 4444),
        "feed indicator not loaded"
    );

    // Unchanged feed: conditional requests answered 304.
    wait_until("a conditional request", &agent, || {
        server.state(|s| s.conditional_hits) >= 1
    });

    // Changed feed: picked up without restart.
    server.set_body("# feed v2\n127.0.0.22:4444\n");
    wait_until("the v2 reload", &agent, || {
        agent
            .stderr_text()
            .contains("reloaded indicators (feed updated)")
    });
    assert!(
        is_hit(&mut agent, "127.0.0.22", 4444),
        "updated feed not applied"
    );
    assert!(
        !is_hit(&mut agent, "127.0.0.21", 4444),
        "old feed entry still matched"
    );

    // Broken feed: refused, the last good copy stays.
    server.set_body("# feed v3\n127.0.0.23:4444\n999.1.1.1\n");
    wait_until("the broken feed to be refused", &agent, || {
        agent.stderr_text().contains("keeping the last good copy")
    });
    assert!(
        agent.stderr_text().contains("999.1.1.1"),
        "{}",
        agent.stderr_text()
    );
    assert!(
        is_hit(&mut agent, "127.0.0.22", 4444),
        "last good copy lost"
    );
    assert!(
        !is_hit(&mut agent, "127.0.0.23", 4444),
        "broken feed applied"
    );
    agent.stop();

    // Server down: a new agent starts from the cached copy.
    server.state.lock().unwrap().down = true;
    let mut offline = Agent::start("feed-offline", "127.0.0.9:9999\n", &args);
    assert!(
        is_hit(&mut offline, "127.0.0.22", 4444),
        "cached copy not used"
    );
    offline.stop();
}
