//! Which loaded indicators are used: minimum confidence, threat types, malware families
//! and age. Indicators that do not say (a plain list has no confidence) are kept: the
//! operator put them there.

use time::{Duration, OffsetDateTime};

use super::ParsedIndicator;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub min_confidence: Option<u8>,
    /// Keep only these threat types (e.g. `botnet_cc`); empty keeps all.
    pub threat_types: Vec<String>,
    /// Keep only these malware families, by id (`elf.mirai`) or name (`Mirai`),
    /// case-insensitive; empty keeps all.
    pub malware: Vec<String>,
    /// Drop indicators last seen (else first seen) more than this many days ago.
    pub max_age_days: Option<u32>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    pub fn keeps(&self, indicator: &ParsedIndicator, now: OffsetDateTime) -> bool {
        let meta = &indicator.meta;
        if let (Some(min), Some(confidence)) = (self.min_confidence, meta.confidence) {
            if confidence < min {
                return false;
            }
        }
        if !self.threat_types.is_empty() {
            match &meta.threat_type {
                Some(threat)
                    if self
                        .threat_types
                        .iter()
                        .any(|t| t.eq_ignore_ascii_case(threat)) => {}
                _ => return false,
            }
        }
        if !self.malware.is_empty() {
            let names = meta.malware.iter().flat_map(|m| {
                m.id.iter()
                    .chain(m.printable.iter())
                    .chain(m.aliases.iter())
            });
            let mut names = names.peekable();
            if names.peek().is_none() {
                return false;
            }
            if !names.any(|name| self.malware.iter().any(|m| m.eq_ignore_ascii_case(name))) {
                return false;
            }
        }
        if let Some(days) = self.max_age_days {
            if let Some(seen) = meta.last_seen.or(meta.first_seen) {
                if now - seen > Duration::days(i64::from(days)) {
                    return false;
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ioc::{formats::Malware, network_indicator};

    fn mirai(confidence: u8, days_ago: i64) -> ParsedIndicator {
        let mut ind = network_indicator("127.0.0.2:4444", "t", 1).unwrap();
        ind.meta.confidence = Some(confidence);
        ind.meta.threat_type = Some("botnet_cc".into());
        ind.meta.malware = Some(std::sync::Arc::new(Malware {
            id: Some("elf.mirai".into()),
            printable: Some("Mirai".into()),
            aliases: Vec::new(),
        }));
        ind.meta.first_seen = Some(OffsetDateTime::UNIX_EPOCH + Duration::days(1000 - days_ago));
        ind
    }

    #[test]
    fn each_filter() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1000);
        let ind = mirai(75, 10);
        assert!(Filter::default().keeps(&ind, now));
        let min = |c| Filter {
            min_confidence: Some(c),
            ..Filter::default()
        };
        assert!(min(75).keeps(&ind, now) && !min(76).keeps(&ind, now));
        let threat = |t: &str| Filter {
            threat_types: vec![t.into()],
            ..Filter::default()
        };
        assert!(threat("BOTNET_CC").keeps(&ind, now) && !threat("payload").keeps(&ind, now));
        let malware = |m: &str| Filter {
            malware: vec![m.into()],
            ..Filter::default()
        };
        assert!(malware("mirai").keeps(&ind, now) && malware("elf.mirai").keeps(&ind, now));
        assert!(!malware("win.vidar").keeps(&ind, now));
        let age = |d| Filter {
            max_age_days: Some(d),
            ..Filter::default()
        };
        assert!(age(10).keeps(&ind, now) && !age(9).keeps(&ind, now));
        // A plain-list indicator (no metadata) passes confidence and age filters.
        let plain = network_indicator("127.0.0.9", "t", 1).unwrap();
        assert!(min(90).keeps(&plain, now) && age(1).keeps(&plain, now));
        assert!(!threat("botnet_cc").keeps(&plain, now));
    }
}
