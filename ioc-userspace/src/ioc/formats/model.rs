//! The indicator model the readers produce: a value of any supported type plus the
//! threat-intel metadata that came with it, and the reject type for bad entries.

use std::{
    borrow::Borrow, cell::RefCell, collections::HashSet, fmt, hash::Hash, sync::Arc,
    thread::LocalKey,
};

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::ioc::{parse_value, IndicatorValue};

/// Longest value text kept in a [`Reject`] (the log line shows at most 120 characters).
const REJECT_VALUE_KEEP: usize = 256;
/// Longest accepted URL.
pub const MAX_URL_LEN: usize = 8192;

/// Hash algorithms of file indicators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashKind {
    Md5,
    Sha1,
    Sha256,
}

impl HashKind {
    /// Hex digits in a value of this kind.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Md5 => 32,
            Self::Sha1 => 40,
            Self::Sha256 => 64,
        }
    }

    /// ThreatFox type name (`md5_hash`, ...).
    pub fn type_name(self) -> &'static str {
        match self {
            Self::Md5 => "md5_hash",
            Self::Sha1 => "sha1_hash",
            Self::Sha256 => "sha256_hash",
        }
    }
}

/// A URL indicator: the URL (scheme and host lower-cased) and its host for matching.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UrlValue {
    pub url: String,
    /// Domain (normalised), IPv4 address, or IPv6 address without brackets.
    pub host: String,
    pub port: Option<u16>,
}

/// Any indicator value a feed can carry. Only [`IocValue::Net`] reaches the kernel maps.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IocValue {
    /// `ip`, `ip:port` or CIDR, exactly as the kernel-facing model has it.
    Net(IndicatorValue),
    /// A domain name: lower case, no trailing dot, syntax checked.
    Domain(String),
    Url(UrlValue),
    /// A file hash, lower-case hex.
    Hash(HashKind, String),
}

impl IocValue {
    /// ThreatFox-style type name: `ip`, `ip:port`, `cidr`, `domain`, `url`, `md5_hash`, ...
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Net(net) => net.type_name(),
            Self::Domain(_) => "domain",
            Self::Url(_) => "url",
            Self::Hash(kind, _) => kind.type_name(),
        }
    }

    /// The kernel-facing value, for network indicators.
    pub fn network(&self) -> Option<&IndicatorValue> {
        match self {
            Self::Net(net) => Some(net),
            _ => None,
        }
    }
}

impl fmt::Display for IocValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Net(net) => write!(f, "{net}"),
            Self::Domain(domain) => f.write_str(domain),
            Self::Url(url) => f.write_str(&url.url),
            Self::Hash(_, hex) => f.write_str(hex),
        }
    }
}

/// A stable identifier: the feed's own id when it has one, else a hash of type and value
/// (FNV-1a 64, fixed here so it never changes between builds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StableId {
    ThreatFox(u64),
    Hash(u64),
}

impl StableId {
    /// The hash-based id of a value.
    pub fn of_value(value: &IocValue) -> Self {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let text = value.to_string();
        for byte in value
            .type_name()
            .bytes()
            .chain(std::iter::once(0))
            .chain(text.bytes())
        {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Self::Hash(hash)
    }
}

impl fmt::Display for StableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ThreatFox(id) => write!(f, "threatfox:{id}"),
            Self::Hash(hash) => write!(f, "ioc:{hash:016x}"),
        }
    }
}

/// Malware family as the feed names it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Malware {
    /// Malpedia-style id (`elf.mirai`), when given.
    pub id: Option<String>,
    /// Display name (`Mirai`), when given.
    pub printable: Option<String>,
    pub aliases: Vec<String>,
}

/// Where in a file an entry sits: a line, or a JSON path such as `$["1856791"][0].ioc_value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Line(usize),
    Json(String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line(line) => write!(f, "line {line}"),
            Self::Json(path) => f.write_str(path),
        }
    }
}

/// Everything known about an indicator besides its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndicatorMeta {
    pub id: StableId,
    /// `botnet_cc`, `payload_delivery`, ... as the feed says.
    /// Shared per distinct text (see [`shared_text`]).
    pub threat_type: Option<Arc<str>>,
    /// Shared: readers give every indicator of one event or family the same one, and
    /// most indicators have none (8 bytes instead of 72 inline).
    pub malware: Option<Arc<Malware>>,
    /// 0-100.
    pub confidence: Option<u8>,
    pub first_seen: Option<OffsetDateTime>,
    pub last_seen: Option<OffsetDateTime>,
    pub reference: Option<String>,
    /// Shared per distinct list (see [`shared_tags`]).
    pub tags: Arc<[String]>,
    /// The file or URL the indicator was read from; one allocation per file, shared.
    pub source: Arc<str>,
    /// Shared, like the threat type.
    pub reporter: Option<Arc<str>>,
    /// ThreatFox `is_compromised` (absent in older exports).
    pub compromised: Option<bool>,
    /// Where in the source the entry was.
    pub location: Location,
}

impl IndicatorMeta {
    /// Metadata with only the required parts; the id is the hash of `value`.
    pub fn new(value: &IocValue, source: &str, location: Location) -> Self {
        Self {
            id: StableId::of_value(value),
            threat_type: None,
            malware: None,
            confidence: None,
            first_seen: None,
            last_seen: None,
            reference: None,
            tags: shared_tags(&[]),
            source: shared_text(source),
            reporter: None,
            compromised: None,
            location,
        }
    }
}

/// Most distinct values a sharing table keeps; past it the table starts again, so a
/// hostile feed with a new reporter per entry cannot grow it without bound.
const MAX_SHARED: usize = 4096;

thread_local! {
    /// Texts that repeat across a feed's entries: source names, threat types, reporters.
    static SHARED_TEXTS: RefCell<HashSet<Arc<str>>> = RefCell::default();
    /// Tag lists, which repeat as whole lists (`["mirai"]`).
    static SHARED_TAGS: RefCell<HashSet<Arc<[String]>>> = RefCell::default();
    /// Malware families (ThreatFox repeats a few dozen in every entry).
    static SHARED_MALWARE: RefCell<HashSet<Arc<Malware>>> = RefCell::default();
}

/// The table's allocation for `value`, made by `make` the first time. Readers call this
/// per entry: 100,000 entries of a feed then hold a handful of threat types, not 100,000
/// copies. Per thread, so loads on different threads never contend.
fn shared<T, Q>(
    table: &'static LocalKey<RefCell<HashSet<Arc<T>>>>,
    value: &Q,
    make: impl FnOnce(&Q) -> Arc<T>,
) -> Arc<T>
where
    T: ?Sized + Eq + Hash,
    Q: ?Sized + Eq + Hash,
    Arc<T>: Borrow<Q>,
{
    table.with(|table| {
        let mut table = table.borrow_mut();
        if let Some(found) = table.get(value) {
            return Arc::clone(found);
        }
        if table.len() >= MAX_SHARED {
            table.clear();
        }
        let made = make(value);
        table.insert(Arc::clone(&made));
        made
    })
}

/// One shared allocation per distinct text (see [`shared`]).
pub fn shared_text(text: impl AsRef<str>) -> Arc<str> {
    shared(&SHARED_TEXTS, text.as_ref(), |text: &str| Arc::from(text))
}

/// One shared allocation per distinct tag list (see [`shared`]).
pub fn shared_tags(tags: &[String]) -> Arc<[String]> {
    shared(&SHARED_TAGS, tags, |tags: &[String]| Arc::from(tags))
}

/// One shared allocation per distinct malware family (see [`shared`]).
pub fn shared_malware(malware: Malware) -> Arc<Malware> {
    shared(&SHARED_MALWARE, &malware, |m: &Malware| Arc::new(m.clone()))
}

/// One indicator read from a feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedIndicator {
    pub value: IocValue,
    pub meta: IndicatorMeta,
}

impl ParsedIndicator {
    /// Where it came from: `file:line` or `file: $.json.path`.
    pub fn origin(&self) -> String {
        match &self.meta.location {
            Location::Line(line) => format!("{}:{line}", self.meta.source),
            Location::Json(path) => format!("{}: {path}", self.meta.source),
        }
    }
}

/// One rejected entry: the source, where in it, the offending text and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    pub source: String,
    pub location: Location,
    /// The offending text as found (at most 256 characters kept).
    pub value: String,
    pub reason: String,
}

impl Reject {
    pub fn new(source: &str, location: Location, value: &str, reason: impl Into<String>) -> Self {
        Self {
            source: source.to_string(),
            location,
            value: value.chars().take(REJECT_VALUE_KEEP + 1).collect(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = crate::text::quote_for_log(&self.value, 120);
        match &self.location {
            Location::Line(line) => write!(
                f,
                "{}:{line}: invalid indicator {value}: {}",
                self.source, self.reason
            ),
            Location::Json(path) => write!(
                f,
                "{}: {path}: invalid indicator {value}: {}",
                self.source, self.reason
            ),
        }
    }
}

/// At most this many rejects are kept per file; one more says how many were dropped.
pub const MAX_REJECTS: usize = 10_000;

/// Collects rejects for one file, bounded by [`MAX_REJECTS`].
#[derive(Debug, Default)]
pub struct Rejects {
    kept: Vec<Reject>,
    dropped: usize,
}

impl Rejects {
    pub fn push(&mut self, reject: Reject) {
        if self.kept.len() < MAX_REJECTS {
            self.kept.push(reject);
        } else {
            self.dropped += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// `Ok(indicators)` when nothing was rejected, else every reject.
    pub fn finish(
        self,
        source: &str,
        indicators: Vec<ParsedIndicator>,
    ) -> Result<Vec<ParsedIndicator>, Vec<Reject>> {
        if self.kept.is_empty() {
            return Ok(indicators);
        }
        let mut kept = self.kept;
        if self.dropped > 0 {
            let location = kept
                .last()
                .map(|r| r.location.clone())
                .unwrap_or(Location::Line(0));
            kept.push(Reject::new(
                source,
                location,
                "",
                format!("{} more rejects not listed", self.dropped),
            ));
        }
        Err(kept)
    }
}

/// Parses a value whose type the feed declares (`ip:port`, `domain`, `url`, `md5_hash`, ...).
pub fn parse_typed_value(ioc_type: &str, text: &str) -> Result<IocValue, String> {
    let kind = ioc_type.trim().to_ascii_lowercase();
    match kind.as_str() {
        "ip:port" => match parse_value(text)? {
            net @ IndicatorValue::Endpoint(_) => Ok(IocValue::Net(net)),
            _ => Err("ip:port indicator without a port".into()),
        },
        "ip" | "ipv4" | "ipv6" | "ip-dst" | "ip-src" => match parse_value(text)? {
            net @ IndicatorValue::Address(_) => Ok(IocValue::Net(net)),
            _ => Err("not a single IP address".into()),
        },
        "cidr" => match parse_value(text)? {
            net @ (IndicatorValue::Network(_) | IndicatorValue::Address(_)) => {
                Ok(IocValue::Net(net))
            }
            _ => Err("not a CIDR network".into()),
        },
        "domain" | "hostname" => normalize_domain(text).map(IocValue::Domain),
        "url" => parse_url(text).map(IocValue::Url),
        "md5_hash" | "md5" => parse_hash(HashKind::Md5, text),
        "sha1_hash" | "sha1" => parse_hash(HashKind::Sha1, text),
        "sha256_hash" | "sha256" => parse_hash(HashKind::Sha256, text),
        _ => Err(format!(
            "unknown indicator type {}",
            crate::text::quote_for_log(ioc_type, 40)
        )),
    }
}

/// Parses a value of unknown type: ip, ip:port, CIDR, URL, hash, or domain.
pub fn parse_any_value(text: &str) -> Result<IocValue, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty value".into());
    }
    if text.contains("://") {
        return parse_url(text).map(IocValue::Url);
    }
    if text.bytes().all(|b| b.is_ascii_hexdigit()) {
        for kind in [HashKind::Md5, HashKind::Sha1, HashKind::Sha256] {
            if text.len() == kind.hex_len() {
                return parse_hash(kind, text);
            }
        }
    }
    let net_error = match parse_value(text) {
        Ok(net) => return Ok(IocValue::Net(net)),
        Err(reason) => reason,
    };
    // Anything made only of digits, dots, colons, slashes and brackets was meant as an
    // address: explain it as one rather than as a bad domain.
    if text
        .bytes()
        .all(|b| b.is_ascii_digit() || b".:/[]".contains(&b))
        || text.starts_with('[')
        || text.matches(':').count() > 1
    {
        return Err(net_error);
    }
    if let Some((host, port)) = text.rsplit_once(':') {
        if normalize_domain(host).is_ok() && port.bytes().all(|b| b.is_ascii_digit()) {
            return Err("domain:port is not supported (list the domain alone)".into());
        }
    }
    normalize_domain(text)
        .map(IocValue::Domain)
        .map_err(|reason| {
            format!("not an IP address, ip:port, CIDR, URL, hash or domain ({reason})")
        })
}

/// A hash value of the given kind, lower-cased.
pub fn parse_hash(kind: HashKind, text: &str) -> Result<IocValue, String> {
    let text = text.trim();
    if text.len() != kind.hex_len() || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "not a {} ({} hex digits)",
            kind.type_name(),
            kind.hex_len()
        ));
    }
    Ok(IocValue::Hash(kind, text.to_ascii_lowercase()))
}

/// Lower-cases a domain, strips one trailing dot and checks its syntax.
pub fn normalize_domain(text: &str) -> Result<String, String> {
    let text = text.trim();
    if !text.is_ascii() {
        return Err("domain has non-ASCII characters (use punycode, xn--)".into());
    }
    let lower = text.to_ascii_lowercase();
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    if name.is_empty() {
        return Err("empty domain".into());
    }
    if name.len() > 253 {
        return Err(format!("domain is {} characters (at most 253)", name.len()));
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err("domain needs at least two labels".into());
    }
    let last = labels.len() - 1;
    for (index, label) in labels.iter().enumerate() {
        if label.is_empty() {
            return Err("empty domain label".into());
        }
        if label.len() > 63 {
            return Err(format!(
                "domain label is {} characters (at most 63)",
                label.len()
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("domain label starts or ends with '-'".into());
        }
        for byte in label.bytes() {
            let ok = byte.is_ascii_lowercase()
                || byte.is_ascii_digit()
                || byte == b'-'
                || (byte == b'_' && index != last);
            if !ok {
                return Err(format!(
                    "character {} not allowed in a domain",
                    crate::text::quote_for_log(&char::from(byte).to_string(), 4)
                ));
            }
        }
    }
    if !labels[last].bytes().any(|b| b.is_ascii_lowercase()) {
        return Err("top-level label has no letter (not a domain; bad address?)".into());
    }
    Ok(name.to_string())
}

/// Checks a URL: `scheme://[userinfo@]host[:port][/path...]`, host a domain or address.
pub fn parse_url(text: &str) -> Result<UrlValue, String> {
    let text = text.trim();
    if text.len() > MAX_URL_LEN {
        return Err(format!("URL longer than {MAX_URL_LEN} bytes"));
    }
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("URL contains spaces or control characters".into());
    }
    let (scheme, rest) = text.split_once("://").ok_or("URL has no scheme://")?;
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b));
    if !scheme_ok {
        return Err("bad URL scheme".into());
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port_text) = if let Some(after) = hostport.strip_prefix('[') {
        let (inside, after) = after.split_once(']').ok_or("unclosed '[' in URL host")?;
        let v6: std::net::Ipv6Addr = inside.parse().map_err(|_| "bad IPv6 address in URL")?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("junk after URL host")?),
        };
        (v6.to_string(), port)
    } else {
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        };
        let host = if let Ok(v4) = host.parse::<std::net::Ipv4Addr>() {
            v4.to_string()
        } else {
            if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return Err("impossible IPv4 address in URL host".into());
            }
            normalize_domain(host).map_err(|reason| format!("bad URL host: {reason}"))?
        };
        (host, port)
    };
    let port = match port_text {
        None | Some("") => None,
        Some(p) => match p.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Some(n as u16),
            _ => return Err("bad URL port (expected 1-65535)".into()),
        },
    };
    let display_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let mut url = format!("{}://", scheme.to_ascii_lowercase());
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        url.push_str(userinfo);
        url.push('@');
    }
    url.push_str(&display_host);
    if let Some(port) = port_text.filter(|p| !p.is_empty()) {
        url.push(':');
        url.push_str(port);
    }
    url.push_str(tail);
    Ok(UrlValue { url, host, port })
}

/// Parses the timestamps feeds use, as UTC: `YYYY-MM-DD HH:MM:SS` (optionally ` UTC`),
/// `YYYY-MM-DD`, RFC 3339 (`...T...Z`, `+hh:mm`, fractions), or Unix seconds.
pub fn parse_timestamp(text: &str) -> Result<OffsetDateTime, String> {
    const BAD: &str = "bad timestamp (expected YYYY-MM-DD[ HH:MM:SS] UTC)";
    let text = text.trim();
    if !text.is_empty() && text.len() <= 12 && text.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = text.parse().map_err(|_| BAD)?;
        return OffsetDateTime::from_unix_timestamp(secs).map_err(|_| BAD.to_string());
    }
    let text = text.strip_suffix(" UTC").unwrap_or(text);
    let (text, offset) = split_offset(text).ok_or(BAD)?;
    let (date_text, time_text) = match text.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let date = parse_date(date_text).ok_or(BAD)?;
    let time = match time_text {
        None => Time::MIDNIGHT,
        Some(t) => parse_time(t).ok_or(BAD)?,
    };
    Ok(PrimitiveDateTime::new(date, time)
        .assume_offset(offset)
        .to_offset(UtcOffset::UTC))
}

fn split_offset(text: &str) -> Option<(&str, UtcOffset)> {
    if let Some(rest) = text.strip_suffix(['Z', 'z']) {
        return Some((rest, UtcOffset::UTC));
    }
    // `+hh:mm` / `-hh:mm` after a time (not the date's own dashes).
    if text.len() > 16 && text.is_char_boundary(text.len() - 6) {
        let (rest, off) = text.split_at(text.len() - 6);
        let b = off.as_bytes();
        if (b[0] == b'+' || b[0] == b'-') && b[3] == b':' {
            let hours: i8 = off.get(1..3)?.parse().ok()?;
            let minutes: i8 = off.get(4..6)?.parse().ok()?;
            let sign = if b[0] == b'-' { -1 } else { 1 };
            let offset = UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()?;
            return Some((rest, offset));
        }
    }
    Some((text, UtcOffset::UTC))
}

fn digits<T: std::str::FromStr>(text: &str, len: usize) -> Option<T> {
    (text.len() == len && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

fn parse_date(text: &str) -> Option<Date> {
    let mut parts = text.split('-');
    let year: i32 = digits(parts.next()?, 4)?;
    let month: u8 = digits(parts.next()?, 2)?;
    let day: u8 = digits(parts.next()?, 2)?;
    if parts.next().is_some() {
        return None;
    }
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

fn parse_time(text: &str) -> Option<Time> {
    let (hms, fraction) = match text.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (text, None),
    };
    let mut parts = hms.split(':');
    let hour: u8 = digits(parts.next()?, 2)?;
    let minute: u8 = digits(parts.next()?, 2)?;
    let second: u8 = match parts.next() {
        Some(s) => digits(s, 2)?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    let nanos = match fraction {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let value: u32 = f.parse().ok()?;
            value * 10u32.pow(9 - f.len() as u32)
        }
        Some(_) => return None,
    };
    Time::from_hms_nano(hour, minute, second, nanos).ok()
}

/// Splits a tag list (`a,b, c`), dropping empties.
pub fn split_tags(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn repeated_values_share_one_bounded_allocation() {
        let a = shared_text("botnet_cc");
        let b = shared_text(String::from("botnet_cc"));
        assert!(Arc::ptr_eq(&a, &b));
        let tags = shared_tags(&["mirai".into()]);
        assert!(Arc::ptr_eq(&tags, &shared_tags(&["mirai".into()])));
        assert!(!Arc::ptr_eq(&tags, &shared_tags(&["gafgyt".into()])));
        let mirai = Malware {
            printable: Some("Mirai".into()),
            ..Malware::default()
        };
        assert!(Arc::ptr_eq(
            &shared_malware(mirai.clone()),
            &shared_malware(mirai)
        ));
        // A feed with a new reporter on every entry cannot grow the table past its bound.
        for i in 0..MAX_SHARED + 10 {
            shared_text(format!("reporter-{i}"));
        }
        SHARED_TEXTS.with(|texts| assert!(texts.borrow().len() <= MAX_SHARED));
    }

    #[test]
    fn domains_are_normalised_and_checked() {
        assert_eq!(
            normalize_domain("MicrosoftSyst3m.com.").unwrap(),
            "microsoftsyst3m.com"
        );
        assert_eq!(
            normalize_domain("_dmarc.xn--p1ai").unwrap(),
            "_dmarc.xn--p1ai"
        );
        assert_eq!(
            normalize_domain("a.b_c").unwrap_err(),
            "character \"_\" not allowed in a domain"
        );
        assert_eq!(
            normalize_domain("-a.com").unwrap_err(),
            "domain label starts or ends with '-'"
        );
        assert_eq!(
            normalize_domain("a..com").unwrap_err(),
            "empty domain label"
        );
        assert_eq!(
            normalize_domain(&format!("{}.com", "a".repeat(64))).unwrap_err(),
            "domain label is 64 characters (at most 63)"
        );
        let long = vec!["abcdefghi"; 26].join(".");
        assert_eq!(
            normalize_domain(&long).unwrap_err(),
            "domain is 259 characters (at most 253)"
        );
        assert_eq!(
            normalize_domain("localhost").unwrap_err(),
            "domain needs at least two labels"
        );
        assert_eq!(
            normalize_domain("1.2.3.999").unwrap_err(),
            "top-level label has no letter (not a domain; bad address?)"
        );
        assert_eq!(
            normalize_domain("bücher.de").unwrap_err(),
            "domain has non-ASCII characters (use punycode, xn--)"
        );
    }

    #[test]
    fn any_value_types() {
        assert_eq!(
            parse_any_value("1.2.3.4:80").unwrap().type_name(),
            "ip:port"
        );
        assert_eq!(parse_any_value("1.2.3.4").unwrap().type_name(), "ip");
        assert_eq!(parse_any_value("10.0.0.0/8").unwrap().type_name(), "cidr");
        assert_eq!(
            parse_any_value("Example.COM").unwrap(),
            IocValue::Domain("example.com".into())
        );
        assert_eq!(
            parse_any_value("A20052C78501CE91FEBA8CE56A3AA665").unwrap(),
            IocValue::Hash(HashKind::Md5, "a20052c78501ce91feba8ce56a3aa665".into())
        );
        assert_eq!(parse_any_value("http://x.com/").unwrap().type_name(), "url");
        assert_eq!(
            parse_any_value("300.1.1.1").unwrap_err(),
            "not an IP address, ip:port or CIDR"
        );
        assert_eq!(
            parse_any_value("1.2.3.4:70000").unwrap_err(),
            "port 70000 is out of range (1-65535)"
        );
        assert_eq!(
            parse_any_value("evil.com:443").unwrap_err(),
            "domain:port is not supported (list the domain alone)"
        );
        assert_eq!(
            parse_any_value("no spaces.com").unwrap_err(),
            "not an IP address, ip:port, CIDR, URL, hash or domain (character \" \" not allowed in a domain)"
        );
    }

    #[test]
    fn urls() {
        let url = parse_url("HTTP://User@Sup.Merahsm188.TOP:8080/Path?q=1").unwrap();
        assert_eq!(url.url, "http://User@sup.merahsm188.top:8080/Path?q=1");
        assert_eq!(url.host, "sup.merahsm188.top");
        assert_eq!(url.port, Some(8080));
        let v6 = parse_url("http://[2001:DB8::1]/x").unwrap();
        assert_eq!(v6.host, "2001:db8::1");
        assert_eq!(v6.url, "http://[2001:db8::1]/x");
        assert_eq!(
            parse_url("http://8.213.214.55/nerv.mips").unwrap().host,
            "8.213.214.55"
        );
        assert_eq!(
            parse_url("http://999.1.1.1/").unwrap_err(),
            "impossible IPv4 address in URL host"
        );
        assert_eq!(
            parse_url("http://a.com:0/").unwrap_err(),
            "bad URL port (expected 1-65535)"
        );
        assert_eq!(parse_url("1http://a.com/").unwrap_err(), "bad URL scheme");
        assert_eq!(
            parse_url("http://a.com/ x").unwrap_err(),
            "URL contains spaces or control characters"
        );
    }

    #[test]
    fn typed_values() {
        assert_eq!(
            parse_typed_value("ip:port", "1.2.3.4").unwrap_err(),
            "ip:port indicator without a port"
        );
        assert_eq!(
            parse_typed_value("sha1_hash", "abc").unwrap_err(),
            "not a sha1_hash (40 hex digits)"
        );
        assert_eq!(
            parse_typed_value("email", "a@b.c").unwrap_err(),
            "unknown indicator type \"email\""
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            parse_timestamp("2026-07-24 13:50:06").unwrap(),
            datetime!(2026-07-24 13:50:06 UTC)
        );
        assert_eq!(
            parse_timestamp("2026-09-02 06:05:06 UTC").unwrap(),
            datetime!(2026-09-02 06:05:06 UTC)
        );
        assert_eq!(
            parse_timestamp("2026-06-21").unwrap(),
            datetime!(2026-06-21 0:00 UTC)
        );
        assert_eq!(
            parse_timestamp("2026-06-21T10:00:00.5Z").unwrap(),
            datetime!(2026-06-21 10:00:00.5 UTC)
        );
        assert_eq!(
            parse_timestamp("2026-06-21T10:00:00+02:00").unwrap(),
            datetime!(2026-06-21 08:00:00 UTC)
        );
        assert_eq!(
            parse_timestamp("1700000000").unwrap(),
            datetime!(2023-11-14 22:13:20 UTC)
        );
        for bad in [
            "2026-13-01",
            "2026-02-30 00:00:00",
            "yesterday",
            "2026-01-01 25:00:00",
            "",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn origin_names_file_and_line_or_path() {
        let value = parse_any_value("127.0.0.2:4444").unwrap();
        let meta = IndicatorMeta::new(&value, "list.txt", Location::Line(3));
        assert_eq!(ParsedIndicator { value, meta }.origin(), "list.txt:3");
        let domain = IocValue::Domain("a.com".into());
        let meta = IndicatorMeta::new(&domain, "x.json", Location::Json("$[0]".into()));
        assert_eq!(
            ParsedIndicator {
                value: domain,
                meta
            }
            .origin(),
            "x.json: $[0]"
        );
    }

    #[test]
    fn stable_ids_are_stable() {
        let value = IocValue::Domain("example.com".into());
        assert_eq!(StableId::of_value(&value), StableId::of_value(&value));
        assert_ne!(
            StableId::of_value(&value),
            StableId::of_value(&IocValue::Domain("example.org".into()))
        );
        assert_eq!(StableId::ThreatFox(7).to_string(), "threatfox:7");
        assert!(StableId::of_value(&value).to_string().starts_with("ioc:"));
    }

    #[test]
    fn rejects_display_and_bound() {
        let r = Reject::new(
            "f.json",
            Location::Json("$[\"1\"][0].ioc_value".into()),
            "a\nb",
            "bad",
        );
        assert_eq!(
            r.to_string(),
            "f.json: $[\"1\"][0].ioc_value: invalid indicator \"a\\nb\": bad"
        );
        let mut rejects = Rejects::default();
        for line in 0..MAX_REJECTS + 5 {
            rejects.push(Reject::new("f", Location::Line(line), "x", "bad"));
        }
        let all = rejects.finish("f", Vec::new()).unwrap_err();
        assert_eq!(all.len(), MAX_REJECTS + 1);
        assert_eq!(all[MAX_REJECTS].reason, "5 more rejects not listed");
    }
}
