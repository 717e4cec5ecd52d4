//! Remote indicator feeds: fetched over HTTP(S) on a refresh interval with conditional
//! requests, a timeout and a size cap, validated before use, and cached on disk so a
//! device that reboots without network still starts with the last good copy.
//!
//! One blocking thread per feed (feeds are few and slow); each good new copy is written
//! to the cache atomically and announced on a channel so the agent reloads.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use super::{formats::read_indicators, Format};

/// How one feed is fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedConfig {
    pub url: String,
    pub format: Format,
    pub interval: Duration,
    pub timeout: Duration,
    pub max_bytes: u64,
    pub cache_dir: PathBuf,
}

impl FeedConfig {
    /// The cached copy: a name derived from the URL (FNV-1a, stable across versions).
    pub fn cache_path(&self) -> PathBuf {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.url.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.cache_dir.join(format!("feed-{hash:016x}.dat"))
    }

    fn validators_path(&self) -> PathBuf {
        self.cache_path().with_extension("validators")
    }
}

/// What a fetch produced.
#[derive(Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    /// A new, valid copy is in the cache.
    Updated { bytes: usize, indicators: usize },
    /// The server said 304 Not Modified.
    NotModified,
}

/// `ETag` and `Last-Modified` of the cached copy, for conditional requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Validators {
    etag: Option<String>,
    last_modified: Option<String>,
}

impl Validators {
    fn load(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut validators = Self::default();
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("etag ") {
                validators.etag = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("last-modified ") {
                validators.last_modified = Some(v.to_string());
            }
        }
        validators
    }

    fn to_text(&self) -> String {
        let mut text = String::new();
        if let Some(etag) = &self.etag {
            text.push_str(&format!("etag {etag}\n"));
        }
        if let Some(modified) = &self.last_modified {
            text.push_str(&format!("last-modified {modified}\n"));
        }
        text
    }
}

/// Header values go back to the server verbatim: refuse anything that could split a
/// request line.
fn header_safe(value: &str) -> Option<String> {
    (value.len() <= 1024 && !value.chars().any(|c| c.is_control())).then(|| value.to_string())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Fetches `feed` once. A new body is validated (every entry must parse) before it
/// replaces the cached copy; any error leaves the cache as it was.
pub fn fetch_once(feed: &FeedConfig) -> Result<FetchOutcome, String> {
    std::fs::create_dir_all(&feed.cache_dir)
        .map_err(|e| format!("creating {}: {e}", feed.cache_dir.display()))?;
    let cache = feed.cache_path();
    let validators = if cache.exists() {
        Validators::load(&feed.validators_path())
    } else {
        Validators::default()
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(feed.timeout))
        .http_status_as_error(false)
        .user_agent(concat!("iocmon/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut request = agent.get(&feed.url);
    if let Some(etag) = &validators.etag {
        request = request.header("If-None-Match", etag);
    }
    if let Some(modified) = &validators.last_modified {
        request = request.header("If-Modified-Since", modified);
    }
    let mut response = request.call().map_err(|e| format!("fetching: {e}"))?;
    let status = response.status().as_u16();
    if status == 304 {
        return Ok(FetchOutcome::NotModified);
    }
    if status != 200 {
        return Err(format!("server answered HTTP {status}"));
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(header_safe)
    };
    let new_validators = Validators {
        etag: header("etag"),
        last_modified: header("last-modified"),
    };
    let body = response
        .body_mut()
        .with_config()
        .limit(feed.max_bytes)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(limit) => {
                format!("body is larger than the {limit}-byte cap (--feed-max-bytes)")
            }
            other => format!("reading the body: {other}"),
        })?;
    let text = String::from_utf8_lossy(&body);
    let indicators = read_indicators(&text, &feed.url, feed.format).map_err(|rejects| {
        let first = rejects.first().map(ToString::to_string).unwrap_or_default();
        format!("{} invalid entries, first: {first}", rejects.len())
    })?;
    write_atomically(&cache, &body).map_err(|e| format!("writing {}: {e}", cache.display()))?;
    // Validators only once the body they describe is in place.
    let _ = write_atomically(&feed.validators_path(), new_validators.to_text().as_bytes());
    Ok(FetchOutcome::Updated {
        bytes: body.len(),
        indicators: indicators.len(),
    })
}

/// Fetches `feed` every interval (the first time after `first_delay`), calling
/// `on_update` with the URL after each good new copy; stops when it returns false.
/// Failures are logged and keep the last good copy.
pub fn spawn_fetcher(
    feed: FeedConfig,
    first_delay: Duration,
    on_update: impl Fn(&str) -> bool + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("feed".into())
        .spawn(move || {
            std::thread::sleep(first_delay);
            loop {
                if !fetch_and_log(&feed) || on_update(&feed.url) {
                    std::thread::sleep(feed.interval);
                } else {
                    return;
                }
            }
        })
        .map(drop)
}

/// One fetch with its outcome logged; true when the cache changed.
pub fn fetch_and_log(feed: &FeedConfig) -> bool {
    let url = crate::text::quote_for_log(&feed.url, 200);
    match fetch_once(feed) {
        Ok(FetchOutcome::Updated { bytes, indicators }) => {
            log::info!("feed {url}: new copy, {bytes} bytes, {indicators} indicators");
            true
        }
        Ok(FetchOutcome::NotModified) => {
            log::debug!("feed {url}: not modified");
            false
        }
        Err(err) => {
            log::error!("feed {url}: {err}; keeping the last good copy");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_round_trip_and_unsafe_headers_are_dropped() {
        let v = Validators {
            etag: Some("\"abc\"".into()),
            last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
        };
        let dir = std::env::temp_dir().join(format!("iocmon-feed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("v");
        std::fs::write(&path, v.to_text()).unwrap();
        assert_eq!(Validators::load(&path), v);
        assert_eq!(header_safe("x\r\nInjected: 1"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cache_path_is_stable_per_url() {
        let feed = |url: &str| FeedConfig {
            url: url.into(),
            format: Format::Auto,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            max_bytes: 1,
            cache_dir: PathBuf::from("/c"),
        };
        assert_eq!(
            feed("http://a/").cache_path(),
            feed("http://a/").cache_path()
        );
        assert_ne!(
            feed("http://a/").cache_path(),
            feed("http://b/").cache_path()
        );
    }
}
