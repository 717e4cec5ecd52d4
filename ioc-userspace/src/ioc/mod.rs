//! Indicators of compromise: the model, the readers, and the loaded set.

pub mod formats;
mod plain;

use std::{
    collections::HashMap,
    fmt,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
};

use ipnet::IpNet;

pub use plain::{parse_plain_list, parse_value};

/// What an indicator points at. Only network values reach the kernel maps.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IndicatorValue {
    /// `ip:port`: an exact endpoint (IPv4 addresses canonical, never v4-mapped).
    Endpoint(SocketAddr),
    /// A single address.
    Address(IpAddr),
    /// A network in CIDR form (host bits cleared).
    Network(IpNet),
}

impl IndicatorValue {
    /// ThreatFox-style type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Endpoint(_) => "ip:port",
            Self::Address(_) => "ip",
            Self::Network(_) => "cidr",
        }
    }
}

impl fmt::Display for IndicatorValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Endpoint(addr) => write!(f, "{addr}"),
            Self::Address(addr) => write!(f, "{addr}"),
            Self::Network(net) => write!(f, "{net}"),
        }
    }
}

/// Where an indicator came from, for errors and for provenance in records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One indicator and its provenance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Indicator {
    pub value: IndicatorValue,
    pub origin: Origin,
}

/// Indicator id as the kernel reports it: 1-based position in the set (0 means none).
pub type IndicatorId = u32;

/// One rejected entry of an indicator file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    pub origin: Origin,
    /// The offending text, as found (shown quoted and escaped).
    pub value: String,
    pub reason: String,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: invalid indicator {}: {}",
            self.origin,
            crate::text::quote_for_log(&self.value, 120),
            self.reason
        )
    }
}

/// Why a set of indicator files could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    Read {
        file: PathBuf,
        error: std::io::Error,
    },
    Invalid(Vec<Reject>),
    TooMany {
        count: usize,
        limit: usize,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { file, error } => write!(f, "cannot read {}: {error}", file.display()),
            Self::Invalid(rejects) => {
                write!(f, "{} invalid indicator(s), file refused:", rejects.len())?;
                for reject in rejects.iter().take(20) {
                    write!(f, "\n  {reject}")?;
                }
                if rejects.len() > 20 {
                    write!(f, "\n  ... and {} more", rejects.len() - 20)?;
                }
                Ok(())
            }
            Self::TooMany { count, limit } => {
                write!(f, "{count} indicators exceed the limit of {limit}")
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// The loaded indicators, de-duplicated, addressable by id.
#[derive(Clone, Debug, Default)]
pub struct IocSet {
    indicators: Vec<Indicator>,
}

/// Counts per indicator type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IocCounts {
    pub endpoints: usize,
    pub addresses: usize,
    pub networks: usize,
}

impl IocSet {
    /// Builds a set, keeping the first occurrence of each value.
    pub fn new(indicators: impl IntoIterator<Item = Indicator>) -> Self {
        let mut seen = HashMap::new();
        let mut kept = Vec::new();
        for indicator in indicators {
            if seen.insert(indicator.value.clone(), ()).is_none() {
                kept.push(indicator);
            }
        }
        Self { indicators: kept }
    }

    /// Reads and parses every file; any invalid entry refuses the whole load.
    pub fn load_files(paths: &[PathBuf]) -> Result<Self, LoadError> {
        let mut all = Vec::new();
        let mut rejects = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(path).map_err(|error| LoadError::Read {
                file: path.clone(),
                error,
            })?;
            match parse_plain_list(&text, path) {
                Ok(mut parsed) => all.append(&mut parsed),
                Err(mut bad) => rejects.append(&mut bad),
            }
        }
        if !rejects.is_empty() {
            return Err(LoadError::Invalid(rejects));
        }
        let set = Self::new(all);
        if set.len() > u32::MAX as usize - 1 {
            return Err(LoadError::TooMany {
                count: set.len(),
                limit: u32::MAX as usize - 1,
            });
        }
        Ok(set)
    }

    pub fn len(&self) -> usize {
        self.indicators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indicators.is_empty()
    }

    /// The indicator the kernel reported as `id`.
    pub fn get(&self, id: IndicatorId) -> Option<&Indicator> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.indicators.get(index)
    }

    /// Every indicator with its id.
    pub fn iter(&self) -> impl Iterator<Item = (IndicatorId, &Indicator)> {
        self.indicators
            .iter()
            .enumerate()
            .map(|(index, indicator)| (index as IndicatorId + 1, indicator))
    }

    pub fn counts(&self) -> IocCounts {
        let mut counts = IocCounts::default();
        for indicator in &self.indicators {
            match indicator.value {
                IndicatorValue::Endpoint(_) => counts.endpoints += 1,
                IndicatorValue::Address(_) => counts.addresses += 1,
                IndicatorValue::Network(_) => counts.networks += 1,
            }
        }
        counts
    }
}

/// Origin for text that did not come from a file (tests, benchmarks).
pub fn inline_origin(line: usize) -> Origin {
    Origin {
        file: Path::new("<inline>").to_path_buf(),
        line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ind(value: IndicatorValue, line: usize) -> Indicator {
        Indicator {
            value,
            origin: inline_origin(line),
        }
    }

    #[test]
    fn set_deduplicates_keeping_first_and_ids_are_one_based() {
        let a = IndicatorValue::Address("127.0.0.9".parse().unwrap());
        let e = IndicatorValue::Endpoint("127.0.0.2:4444".parse().unwrap());
        let set = IocSet::new([ind(a.clone(), 1), ind(e.clone(), 2), ind(a.clone(), 3)]);
        assert_eq!(set.len(), 2);
        assert_eq!(set.get(1).unwrap().origin.line, 1);
        assert_eq!(set.get(2).unwrap().value, e);
        assert!(set.get(0).is_none());
        assert!(set.get(3).is_none());
        assert_eq!(
            set.counts(),
            IocCounts {
                endpoints: 1,
                addresses: 1,
                networks: 0
            }
        );
    }

    #[test]
    fn load_files_names_file_line_and_value() {
        let dir = std::env::temp_dir().join(format!("iocmon-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.txt");
        std::fs::write(&path, "127.0.0.2:4444\n300.1.1.1\n").unwrap();
        let err = IocSet::load_files(std::slice::from_ref(&path))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("{}:2", path.display())), "{err}");
        assert!(err.contains("\"300.1.1.1\""), "{err}");
        let missing = IocSet::load_files(&[dir.join("missing.txt")]).unwrap_err();
        assert!(missing.to_string().contains("missing.txt"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
