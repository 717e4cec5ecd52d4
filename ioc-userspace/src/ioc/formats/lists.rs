//! Line-based lists: plain indicator lists (one value per line, any type, defanged forms
//! accepted) and hosts(5) block lists (`0.0.0.0 domain`).

use std::net::IpAddr;

use super::{
    model::{parse_any_value, IndicatorMeta, IocValue, Location, ParsedIndicator, Reject, Rejects},
    refang::refang,
};

/// Text before a `#` comment: a `#` that starts the line or follows a blank (so a URL
/// fragment such as `http://a.com/x#y` stays part of the value).
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (index, &byte) in bytes.iter().enumerate() {
        if byte == b'#' && (index == 0 || bytes[index - 1].is_ascii_whitespace()) {
            return &line[..index];
        }
    }
    line
}

/// The lines that say something (comments cut, blank lines skipped), with their numbers.
fn content_lines(text: &str) -> impl Iterator<Item = (Location, &str)> {
    text.lines().enumerate().filter_map(|(index, raw)| {
        let line = strip_comment(raw).trim();
        (!line.is_empty()).then_some((Location::Line(index + 1), line))
    })
}

/// Reads a plain list: one `ip`, `ip:port`, CIDR, domain, URL or hash per line, defanged
/// forms (`1.2.3[.]4`, `hxxp://`) refanged; `#` comments and blank lines ignored.
pub fn read_plain(text: &str, source: &str) -> Result<Vec<ParsedIndicator>, Vec<Reject>> {
    let mut out = Vec::new();
    let mut rejects = Rejects::default();
    for (location, line) in content_lines(text) {
        let value = refang(line);
        match parse_any_value(&value) {
            Ok(value) => {
                let meta = IndicatorMeta::new(&value, source, location);
                out.push(ParsedIndicator { value, meta });
            }
            Err(reason) => rejects.push(Reject::new(source, location, line, reason)),
        }
    }
    rejects.finish(source, out)
}

/// Names hosts files map to themselves; never indicators.
const LOCAL_NAMES: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "localhost4",
    "localhost4.localdomain4",
    "localhost6",
    "localhost6.localdomain6",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
    "0.0.0.0",
];

/// Reads a hosts(5) block list: `<address> <name> [<name>...]`, `#` comments. Each name
/// becomes a domain indicator; localhost-style names are skipped.
pub fn read_hosts(text: &str, source: &str) -> Result<Vec<ParsedIndicator>, Vec<Reject>> {
    let mut out = Vec::new();
    let mut rejects = Rejects::default();
    for (location, line) in content_lines(text) {
        let mut fields = line.split_whitespace();
        let address = fields.next().unwrap_or("");
        if address.parse::<IpAddr>().is_err() {
            let reason = "hosts line must start with an IP address";
            rejects.push(Reject::new(source, location, address, reason));
            continue;
        }
        let mut names = 0;
        for name in fields {
            names += 1;
            let lower = name.trim_end_matches('.').to_ascii_lowercase();
            if LOCAL_NAMES.contains(&lower.as_str()) {
                continue;
            }
            match super::model::normalize_domain(name) {
                Ok(domain) => {
                    let value = IocValue::Domain(domain);
                    let meta = IndicatorMeta::new(&value, source, location.clone());
                    out.push(ParsedIndicator { value, meta });
                }
                Err(reason) => rejects.push(Reject::new(source, location.clone(), name, reason)),
            }
        }
        if names == 0 {
            rejects.push(Reject::new(
                source,
                location,
                line,
                "hosts line has no host name",
            ));
        }
    }
    rejects.finish(source, out)
}

/// Whether a line looks like a hosts entry: an address, then at least one name.
pub(super) fn is_hosts_line(line: &str) -> bool {
    let mut fields = line.split_whitespace();
    matches!(
        (fields.next(), fields.next()),
        (Some(address), Some(_)) if address.parse::<IpAddr>().is_ok()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ioc::formats::model::HashKind;
    use crate::ioc::formats::reject_texts;

    #[test]
    fn plain_reads_every_type_and_defanged_forms() {
        let text = "# feed\n127.0.0.2:4444  # c2\n216[.]128[.]153[.]60:51515\n10.0.0.0/8\n\
                    Evil[.]Example(dot)com.\nhxxp://evil[.]com/a#frag\n\
                    a20052c78501ce91feba8ce56a3aa665\n[2001:db8::1]:443\n";
        let all = read_plain(text, "list.txt").unwrap();
        let shown: Vec<String> = all
            .iter()
            .map(|i| format!("{} {}", i.value.type_name(), i.value))
            .collect();
        assert_eq!(
            shown,
            [
                "ip:port 127.0.0.2:4444",
                "ip:port 216.128.153.60:51515",
                "cidr 10.0.0.0/8",
                "domain evil.example.com",
                "url http://evil.com/a#frag",
                "md5_hash a20052c78501ce91feba8ce56a3aa665",
                "ip:port [2001:db8::1]:443",
            ]
        );
        assert_eq!(all[1].meta.location, Location::Line(3));
        assert_eq!(
            all[5].value,
            IocValue::Hash(HashKind::Md5, "a20052c78501ce91feba8ce56a3aa665".into())
        );
    }

    #[test]
    fn plain_reports_every_bad_line() {
        let text = "1.2.3.4\n300.1.1.1\nbad_tld.c_m\n1.2.3.4:99999\nhttp://a.com:0/\n";
        let rejects = reject_texts(read_plain(text, "l.txt"));
        assert_eq!(
            rejects,
            [
                "l.txt:2: invalid indicator \"300.1.1.1\": not an IP address, ip:port or CIDR",
                "l.txt:3: invalid indicator \"bad_tld.c_m\": not an IP address, ip:port, CIDR, URL, hash or domain (character \"_\" not allowed in a domain)",
                "l.txt:4: invalid indicator \"1.2.3.4:99999\": port 99999 is out of range (1-65535)",
                "l.txt:5: invalid indicator \"http://a.com:0/\": bad URL port (expected 1-65535)",
            ]
        );
    }

    #[test]
    fn hosts_file() {
        let text = "# ThreatFox hostfile\n127.0.0.1 localhost\n::1 localhost ip6-localhost\n\
                    127.0.0.1\tEvil.Example.com # c2\n0.0.0.0 a.bad.net b.bad.net.\n0.0.0.0 0.0.0.0\n";
        let all = read_hosts(text, "hosts").unwrap();
        let names: Vec<String> = all.iter().map(|i| i.value.to_string()).collect();
        assert_eq!(names, ["evil.example.com", "a.bad.net", "b.bad.net"]);
        assert!(all.iter().all(|i| i.value.type_name() == "domain"));
        assert_eq!(all[0].meta.location, Location::Line(4));
    }

    #[test]
    fn hosts_errors() {
        let text = "example.com 1.2.3.4\n0.0.0.0 -bad-.com\n127.0.0.1\n";
        let rejects = reject_texts(read_hosts(text, "hosts"));
        assert_eq!(
            rejects,
            [
                "hosts:1: invalid indicator \"example.com\": hosts line must start with an IP address",
                "hosts:2: invalid indicator \"-bad-.com\": domain label starts or ends with '-'",
                "hosts:3: invalid indicator \"127.0.0.1\": hosts line has no host name",
            ]
        );
    }
}
