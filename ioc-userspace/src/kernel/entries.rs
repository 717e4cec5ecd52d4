//! The kernel map contents an indicator set calls for, and the difference between two
//! such contents. Pure: tested without a kernel.

use std::{collections::HashMap, hash::Hash, net::IpAddr};

use ioc_common::{
    v4_mapped, EndpointKey, IocValue, IOC_FLAG_BLOCK, IOC_FLAG_FROM_ENDPOINT, IOC_FLAG_RESOLVED,
};
use ipnet::IpNet;

use crate::{
    enforce::Enforcement,
    ioc::{IndicatorValue, IocSet},
};

/// Key of an `IOC_NETS` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NetKey {
    /// Out of 128 (IPv4 prefixes are stored v4-mapped, so /24 becomes /120).
    pub prefix_len: u32,
    pub addr: [u8; 16],
}

impl NetKey {
    /// The /128 entry of one address (IPv4 v4-mapped).
    pub fn host(addr: IpAddr) -> Self {
        Self {
            prefix_len: 128,
            addr: addr16(addr),
        }
    }
}

/// How indicators become kernel entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchOptions {
    /// An `ip:port` indicator also matches its address on other ports (a weaker match).
    pub endpoint_address_match: bool,
    /// Which entries carry `IOC_FLAG_BLOCK`.
    pub enforcement: Enforcement,
}

impl Default for MatchOptions {
    fn default() -> Self {
        Self {
            endpoint_address_match: true,
            enforcement: Enforcement::default(),
        }
    }
}

/// Desired contents of `IOC_ENDPOINTS` and `IOC_NETS`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelEntries {
    pub endpoints: HashMap<EndpointKey, IocValue>,
    pub nets: HashMap<NetKey, IocValue>,
}

fn addr16(addr: IpAddr) -> [u8; 16] {
    match addr.to_canonical() {
        IpAddr::V4(v4) => v4_mapped(v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The address a 16-byte key holds (IPv4 when v4-mapped, as indicators have it).
fn ip_of(addr: [u8; 16]) -> IpAddr {
    IpAddr::V6(std::net::Ipv6Addr::from(addr)).to_canonical()
}

/// The indicator a `IOC_NETS` key was made from.
fn net_value(key: &NetKey) -> Option<IndicatorValue> {
    let ip = ip_of(key.addr);
    if key.prefix_len == 128 {
        return Some(IndicatorValue::Address(ip));
    }
    let net = match ip {
        IpAddr::V4(v4) => IpNet::V4(
            ipnet::Ipv4Net::new(v4, u8::try_from(key.prefix_len.checked_sub(96)?).ok()?).ok()?,
        ),
        IpAddr::V6(v6) => {
            IpNet::V6(ipnet::Ipv6Net::new(v6, u8::try_from(key.prefix_len).ok()?).ok()?)
        }
    };
    Some(IndicatorValue::Network(net))
}

fn net_key(net: IpNet) -> NetKey {
    match net {
        IpNet::V4(v4) => NetKey {
            prefix_len: 96 + u32::from(v4.prefix_len()),
            addr: v4_mapped(v4.network().octets()),
        },
        IpNet::V6(v6) => NetKey {
            prefix_len: u32::from(v6.prefix_len()),
            addr: v6.network().octets(),
        },
    }
}

impl KernelEntries {
    pub fn from_set(set: &IocSet, options: &MatchOptions) -> Self {
        let mut entries = Self::default();
        let mut endpoint_addresses = Vec::new();
        for (id, indicator) in set.iter() {
            let flags = if options.enforcement.blocks(indicator) {
                IOC_FLAG_BLOCK
            } else {
                0
            };
            let value = IocValue { id, flags };
            let Some(network) = indicator.value.network() else {
                continue; // domains, URLs and hashes have no kernel entry
            };
            match *network {
                IndicatorValue::Endpoint(endpoint) => {
                    let key = EndpointKey::new(addr16(endpoint.ip()), endpoint.port());
                    entries.endpoints.entry(key).or_insert(value);
                    endpoint_addresses.push((endpoint.ip(), id));
                }
                IndicatorValue::Address(addr) => {
                    let key = NetKey {
                        prefix_len: 128,
                        addr: addr16(addr),
                    };
                    entries.nets.entry(key).or_insert(value);
                }
                IndicatorValue::Network(net) => {
                    entries.nets.entry(net_key(net)).or_insert(value);
                }
            }
        }
        if options.endpoint_address_match {
            // After the address indicators, so a real address indicator wins the slot.
            // Never blocking: the indicator named another port, and refusing every port
            // of a shared host would be a guess.
            for (addr, id) in endpoint_addresses {
                let key = NetKey {
                    prefix_len: 128,
                    addr: addr16(addr),
                };
                entries.nets.entry(key).or_insert(IocValue {
                    id,
                    flags: IOC_FLAG_FROM_ENDPOINT,
                });
            }
        }
        entries
    }

    pub fn len(&self) -> usize {
        self.endpoints.len() + self.nets.len()
    }

    /// The indicator each entry stands for, with its id; the weaker address entries of
    /// `ip:port` indicators and resolved addresses stand for none of their own.
    pub fn indicator_ids(&self) -> Vec<(crate::ioc::IocValue, u32)> {
        let endpoints = self.endpoints.iter().map(|(key, value)| {
            let endpoint = std::net::SocketAddr::new(ip_of(key.addr), key.port);
            (IndicatorValue::Endpoint(endpoint), value.id)
        });
        let nets = self
            .nets
            .iter()
            .filter(|(_, value)| value.flags & (IOC_FLAG_FROM_ENDPOINT | IOC_FLAG_RESOLVED) == 0)
            .filter_map(|(key, value)| Some((net_value(key)?, value.id)));
        endpoints
            .chain(nets)
            .map(|(net, id)| (crate::ioc::IocValue::Net(net), id))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What turns `old` into `new`: entries to insert or overwrite, then keys to delete.
pub fn diff<K: Copy + Eq + Hash, V: Copy + PartialEq>(
    old: &HashMap<K, V>,
    new: &HashMap<K, V>,
) -> (Vec<(K, V)>, Vec<K>) {
    let upserts = new
        .iter()
        .filter(|(key, value)| old.get(key) != Some(value))
        .map(|(key, value)| (*key, *value))
        .collect();
    let removals = old
        .keys()
        .filter(|key| !new.contains_key(key))
        .copied()
        .collect();
    (upserts, removals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ioc::{network_indicator, IdAllocator};

    fn set(values: &[&str]) -> IocSet {
        let indicators = values
            .iter()
            .enumerate()
            .map(|(i, v)| network_indicator(v, "test", i + 1).unwrap())
            .collect();
        IocSet::build(indicators, &mut IdAllocator::default())
    }

    #[test]
    fn endpoint_also_matches_its_address_weakly() {
        let entries = KernelEntries::from_set(&set(&["127.0.0.2:4444"]), &MatchOptions::default());
        let key = EndpointKey::new(v4_mapped([127, 0, 0, 2]), 4444);
        assert_eq!(entries.endpoints[&key], IocValue { id: 1, flags: 0 });
        let net = NetKey {
            prefix_len: 128,
            addr: v4_mapped([127, 0, 0, 2]),
        };
        assert_eq!(
            entries.nets[&net],
            IocValue {
                id: 1,
                flags: IOC_FLAG_FROM_ENDPOINT
            }
        );
        let strict = KernelEntries::from_set(
            &set(&["127.0.0.2:4444"]),
            &MatchOptions {
                endpoint_address_match: false,
                ..MatchOptions::default()
            },
        );
        assert!(strict.nets.is_empty());
    }

    #[test]
    fn address_indicator_wins_over_endpoint_address() {
        let entries = KernelEntries::from_set(
            &set(&["127.0.0.2:4444", "127.0.0.2"]),
            &MatchOptions::default(),
        );
        let net = NetKey {
            prefix_len: 128,
            addr: v4_mapped([127, 0, 0, 2]),
        };
        assert_eq!(entries.nets[&net], IocValue { id: 2, flags: 0 });
    }

    #[test]
    fn networks_are_v4_mapped_prefixes() {
        let entries = KernelEntries::from_set(
            &set(&["127.9.0.0/16", "fd00::/8"]),
            &MatchOptions::default(),
        );
        assert!(entries.nets.contains_key(&NetKey {
            prefix_len: 112,
            addr: v4_mapped([127, 9, 0, 0])
        }));
        let mut v6 = [0u8; 16];
        v6[0] = 0xfd;
        assert!(entries.nets.contains_key(&NetKey {
            prefix_len: 8,
            addr: v6
        }));
    }

    #[test]
    fn block_mode_flags_exact_entries_but_not_the_weak_address_match() {
        let options = MatchOptions {
            enforcement: Enforcement {
                mode: crate::enforce::Mode::Block,
                ..Enforcement::default()
            },
            ..MatchOptions::default()
        };
        let entries = KernelEntries::from_set(&set(&["127.0.0.2:4444", "127.0.0.3"]), &options);
        let endpoint = EndpointKey::new(v4_mapped([127, 0, 0, 2]), 4444);
        assert_eq!(entries.endpoints[&endpoint].flags, IOC_FLAG_BLOCK);
        let address = NetKey::host("127.0.0.3".parse().unwrap());
        assert_eq!(entries.nets[&address].flags, IOC_FLAG_BLOCK);
        let weak = NetKey::host("127.0.0.2".parse().unwrap());
        assert_eq!(entries.nets[&weak].flags, IOC_FLAG_FROM_ENDPOINT);
    }

    #[test]
    fn entries_give_back_the_indicators_and_ids_they_came_from() {
        let original = set(&[
            "127.0.0.2:4444",
            "127.0.0.3",
            "127.9.0.0/16",
            "fd00::/8",
            "::1",
        ]);
        let entries = KernelEntries::from_set(&original, &MatchOptions::default());
        let mut recovered = entries.indicator_ids();
        recovered.sort_by_key(|(_, id)| *id);
        let expected: Vec<_> = original
            .iter()
            .map(|(id, indicator)| (indicator.value.clone(), id))
            .collect();
        assert_eq!(recovered, expected);
    }

    #[test]
    fn diff_upserts_changes_and_removes_stale() {
        let old: HashMap<u8, u8> = [(1, 1), (2, 2), (3, 3)].into();
        let new: HashMap<u8, u8> = [(1, 1), (2, 9), (4, 4)].into();
        let (mut upserts, removals) = diff(&old, &new);
        upserts.sort();
        assert_eq!(upserts, vec![(2, 9), (4, 4)]);
        assert_eq!(removals, vec![3]);
        let (same, none) = diff(&new, &new);
        assert!(same.is_empty() && none.is_empty());
    }
}
