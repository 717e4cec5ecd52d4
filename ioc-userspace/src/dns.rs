//! DNS in userspace: parsing the messages the kernel copies (with simple-dns), matching
//! names against domain indicators (the name and its parents, case-insensitively, as the
//! advisory's `has_any` hunt intends), pairing answers with the query that asked, and
//! remembering which name each address came from (for `RemoteUrl`).
//!
//! Every message is attacker-controlled: malformed, truncated, oversized and
//! compression-loop packets are errors, counted and skipped.

use std::{
    collections::{HashMap, VecDeque},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::{Duration, Instant},
};

use simple_dns::{rdata::RData, Packet, PacketFlag};

use crate::ioc::{IocSet, IocValue, KernelId};

/// Most answers kept from one message.
const MAX_ANSWERS: usize = 64;

/// One answer record, as far as iocmon cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Address {
        name: String,
        addr: IpAddr,
        ttl: u32,
    },
    Cname {
        name: String,
        target: String,
        ttl: u32,
    },
}

/// The parts of a DNS message that records and matching use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsMessage {
    pub id: u16,
    pub is_response: bool,
    pub rcode: u16,
    /// The first question (the only one real resolvers send).
    pub name: String,
    pub query_type: u16,
    pub answers: Vec<Answer>,
}

/// Lower case, no trailing dot: the form indicators are kept in.
pub fn normalise_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Parses one DNS message (no TCP length prefix).
pub fn parse(bytes: &[u8]) -> Result<DnsMessage, String> {
    let packet = Packet::parse(bytes).map_err(|e| format!("malformed DNS message: {e}"))?;
    let question = packet
        .questions
        .first()
        .ok_or_else(|| "DNS message without a question".to_string())?;
    let mut answers = Vec::new();
    for record in packet.answers.iter().take(MAX_ANSWERS) {
        let name = normalise_name(&record.name.to_string());
        let ttl = record.ttl;
        match &record.rdata {
            RData::A(a) => answers.push(Answer::Address {
                name,
                addr: IpAddr::V4(Ipv4Addr::from(a.address)),
                ttl,
            }),
            RData::AAAA(aaaa) => answers.push(Answer::Address {
                name,
                addr: IpAddr::V6(Ipv6Addr::from(aaaa.address)).to_canonical(),
                ttl,
            }),
            RData::CNAME(cname) => answers.push(Answer::Cname {
                name,
                target: normalise_name(&cname.0.to_string()),
                ttl,
            }),
            _ => {}
        }
    }
    Ok(DnsMessage {
        id: packet.id(),
        is_response: packet.has_flags(PacketFlag::RESPONSE),
        rcode: packet.rcode() as u16,
        name: normalise_name(&question.qname.to_string()),
        query_type: u16::from(question.qtype),
        answers,
    })
}

/// Domain indicators, for name and parent-domain lookups.
#[derive(Debug, Default)]
pub struct DomainIndex {
    domains: HashMap<String, KernelId>,
}

impl DomainIndex {
    pub fn from_set(set: &IocSet) -> Self {
        let domains = set
            .iter()
            .filter_map(|(id, indicator)| match &indicator.value {
                IocValue::Domain(domain) => Some((domain.clone(), id)),
                _ => None,
            })
            .collect();
        Self { domains }
    }

    pub fn len(&self) -> usize {
        self.domains.len()
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// The indicator `name` or one of its parent domains is (`a.b.evil.example` matches
    /// `evil.example`).
    pub fn lookup(&self, name: &str) -> Option<KernelId> {
        if self.domains.is_empty() {
            return None;
        }
        let name = normalise_name(name);
        let mut rest = name.as_str();
        loop {
            if let Some(id) = self.domains.get(rest) {
                return Some(*id);
            }
            rest = rest.split_once('.')?.1;
        }
    }

    /// The first name of the query and its CNAME chain that matches an indicator.
    pub fn lookup_message(&self, message: &DnsMessage) -> Option<(KernelId, String)> {
        std::iter::once(message.name.as_str())
            .chain(message.answers.iter().filter_map(|a| match a {
                Answer::Cname { target, .. } => Some(target.as_str()),
                Answer::Address { .. } => None,
            }))
            .find_map(|name| self.lookup(name).map(|id| (id, name.to_string())))
    }
}

/// The process that sent a query, kept until its answer arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asker {
    pub tgid: u32,
    pub uid: u32,
    pub comm: String,
    pub cgroup_id: u64,
    pub boot_ns: u64,
    pub client: SocketAddr,
    pub server: SocketAddr,
}

/// Queries waiting for answers, keyed by (client, server, transaction id). Bounded.
#[derive(Debug, Default)]
pub struct PendingQueries {
    entries: HashMap<(SocketAddr, SocketAddr, u16), (Asker, Instant)>,
    order: VecDeque<(SocketAddr, SocketAddr, u16)>,
}

const MAX_PENDING: usize = 4096;

impl PendingQueries {
    pub fn insert(&mut self, id: u16, asker: Asker) {
        let key = (asker.client, asker.server, id);
        if self.entries.len() >= MAX_PENDING {
            while let Some(old) = self.order.pop_front() {
                if self.entries.remove(&old).is_some() {
                    break;
                }
            }
        }
        self.entries.insert(key, (asker, Instant::now()));
        self.order.push_back(key);
    }

    /// The asker of the answer from `server` to `client` with transaction `id`.
    pub fn take(&mut self, client: SocketAddr, server: SocketAddr, id: u16) -> Option<Asker> {
        self.entries.remove(&(client, server, id)).map(|(a, _)| a)
    }

    /// Forgets queries older than `age` (no answer came).
    pub fn expire(&mut self, age: Duration) {
        let now = Instant::now();
        self.entries
            .retain(|_, (_, at)| now.duration_since(*at) < age);
        let entries = &self.entries;
        self.order.retain(|k| entries.contains_key(k));
    }
}

/// Which name each address was resolved from, for `RemoteUrl`. Bounded; entries live
/// for their TTL (at least a minute: connections often follow a cached answer).
#[derive(Debug, Default)]
pub struct NameCache {
    names: HashMap<IpAddr, (String, Instant)>,
    order: VecDeque<IpAddr>,
}

const MAX_NAMES: usize = 8192;
const MIN_NAME_LIFETIME: Duration = Duration::from_secs(60);

impl NameCache {
    pub fn remember(&mut self, addr: IpAddr, name: &str, ttl: u32) {
        let lifetime = Duration::from_secs(u64::from(ttl)).max(MIN_NAME_LIFETIME);
        if self.names.len() >= MAX_NAMES && !self.names.contains_key(&addr) {
            while let Some(old) = self.order.pop_front() {
                if self.names.remove(&old).is_some() {
                    break;
                }
            }
        }
        self.names
            .insert(addr, (name.to_string(), Instant::now() + lifetime));
        self.order.push_back(addr);
        if self.order.len() > MAX_NAMES * 2 {
            let names = &self.names;
            self.order.retain(|a| names.contains_key(a));
        }
    }

    pub fn name_of(&self, addr: IpAddr) -> Option<&str> {
        self.names
            .get(&addr)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(name, _)| name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ioc::{network_indicator, IdAllocator, IndicatorMeta, Location, ParsedIndicator};
    use proptest::prelude::*;
    use simple_dns::{rdata, Name, Question, ResourceRecord, CLASS, QCLASS, QTYPE, TYPE};

    fn response(name: &str, cname: Option<&str>, addr: [u8; 4], ttl: u32) -> Vec<u8> {
        let mut packet = Packet::new_reply(0x1234);
        packet.questions.push(Question::new(
            Name::new_unchecked(name),
            QTYPE::TYPE(TYPE::A),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
        let mut owner = name;
        if let Some(target) = cname {
            packet.answers.push(ResourceRecord::new(
                Name::new_unchecked(name),
                CLASS::IN,
                ttl,
                RData::CNAME(rdata::CNAME(Name::new_unchecked(target))),
            ));
            owner = target;
        }
        packet.answers.push(ResourceRecord::new(
            Name::new_unchecked(owner),
            CLASS::IN,
            ttl,
            RData::A(rdata::A {
                address: u32::from_be_bytes(addr),
            }),
        ));
        packet.build_bytes_vec().unwrap()
    }

    fn index(domains: &[&str]) -> DomainIndex {
        let indicators = domains
            .iter()
            .map(|d| {
                let value = IocValue::Domain(d.to_string());
                let meta = IndicatorMeta::new(&value, "t", Location::Line(1));
                ParsedIndicator { value, meta }
            })
            .chain(network_indicator("127.0.0.2:4444", "t", 2))
            .collect();
        DomainIndex::from_set(&IocSet::build(indicators, &mut IdAllocator::default()))
    }

    #[test]
    fn parses_answers_and_cname_chains() {
        let message = parse(&response(
            "Www.JustKiddin.live.",
            Some("edge.cdn.example"),
            [127, 0, 0, 77],
            30,
        ))
        .unwrap();
        assert!(message.is_response);
        assert_eq!(message.id, 0x1234);
        assert_eq!(message.name, "www.justkiddin.live");
        assert_eq!(message.query_type, 1);
        assert_eq!(
            message.answers[1],
            Answer::Address {
                name: "edge.cdn.example".into(),
                addr: "127.0.0.77".parse().unwrap(),
                ttl: 30
            }
        );
    }

    #[test]
    fn matches_name_and_parents_case_insensitively() {
        let index = index(&["justkiddin.live"]);
        assert!(index.lookup("justkiddin.live").is_some());
        assert!(index.lookup("a.b.JUSTKIDDIN.live.").is_some());
        assert!(index.lookup("notjustkiddin.live").is_none());
        assert!(index.lookup("live").is_none());
        assert_eq!(index.len(), 1);
        // Through a CNAME target.
        let cname = parse(&response(
            "innocent.example",
            Some("c2.justkiddin.live"),
            [127, 0, 0, 1],
            5,
        ))
        .unwrap();
        assert_eq!(
            index.lookup_message(&cname).unwrap().1,
            "c2.justkiddin.live"
        );
    }

    #[test]
    fn hostile_packets_are_errors() {
        assert!(parse(&[]).is_err());
        assert!(parse(&[0u8; 11]).is_err());
        // A name whose compression pointer points at itself.
        let mut looped = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(parse(&looped).is_err());
        let good = response("a.example", None, [127, 0, 0, 1], 1);
        assert!(parse(&good[..good.len() - 3]).is_err(), "truncated answer");
    }

    proptest! {
        // 2,000 cases each by default; PROPTEST_CASES=N for longer runs.
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(2000),
            ..ProptestConfig::default()
        })]

        #[test]
        fn parser_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn parser_never_panics_on_mutated_answers(flips in proptest::collection::vec((0usize..64, any::<u8>()), 1..8)) {
            let mut bytes = response("x.justkiddin.live", Some("y.example"), [127, 0, 0, 9], 60);
            for (at, value) in flips {
                let at = at % bytes.len();
                bytes[at] = value;
            }
            let _ = parse(&bytes);
        }
    }
}
