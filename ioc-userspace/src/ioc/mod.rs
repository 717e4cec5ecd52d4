//! Indicators of compromise: the model (in `formats::model`), the readers (`formats`),
//! filters, and the loaded set whose network entries the kernel maps mirror.

pub mod feed;
mod filter;
pub mod formats;
mod load;
mod plain;
mod set;

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
};

use ipnet::IpNet;

pub use filter::Filter;
pub use formats::{Format, IndicatorMeta, IocValue, Location, ParsedIndicator, Reject};
pub use load::{load_named, load_sources, LoadError, LoadReport, Source};
pub use plain::parse_value;
pub use set::{IdAllocator, IocSet, KernelId, Summary};

/// A network indicator value: what the kernel maps can match.
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

/// A network indicator as tests and benchmarks write them: `value` parsed as ip,
/// ip:port or CIDR, with minimal metadata from `source`.
pub fn network_indicator(value: &str, source: &str, line: usize) -> Option<ParsedIndicator> {
    let value = IocValue::Net(parse_value(value).ok()?);
    let meta = IndicatorMeta::new(&value, source, Location::Line(line));
    Some(ParsedIndicator { value, meta })
}
