//! Every map the programs share with the agent. Sizes here are defaults: the agent sets
//! `max_entries` at load time from the indicator count.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use ioc_common::{stat, CommKey, EndpointKey, IocValue, SocketOwner, TaskOffsets, SETTINGS_LEN};

/// Exact `ip:port` indicators.
#[map(name = "IOC_ENDPOINTS")]
pub static IOC_ENDPOINTS: HashMap<EndpointKey, IocValue> = HashMap::with_max_entries(1024, 0);

/// Address and CIDR indicators, plus the addresses of `ip:port` indicators (flagged
/// `IOC_FLAG_FROM_ENDPOINT`). Keys are 128-bit; IPv4 prefixes are stored v4-mapped.
#[map(name = "IOC_NETS")]
pub static IOC_NETS: LpmTrie<[u8; 16], IocValue> = LpmTrie::with_max_entries(1024, 0);

/// Agent settings (`SETTING_*` flags at `SETTINGS_FLAGS`).
#[map(name = "SETTINGS")]
pub static SETTINGS: Array<u32> = Array::with_max_entries(SETTINGS_LEN, 0);

/// Process names whose connections are always reported (netcat family, wget, ...).
#[map(name = "WATCHED_COMMS")]
pub static WATCHED_COMMS: HashMap<CommKey, u8> = HashMap::with_max_entries(64, 0);

/// Kernel structure offsets for the exec program, from the running kernel's BTF.
#[map(name = "TASK_OFFSETS")]
pub static TASK_OFFSETS: Array<TaskOffsets> = Array::with_max_entries(1, 0);

/// Reported TCP connects waiting for their outcome, by socket address. LRU: a socket
/// freed without a state change is simply forgotten.
#[map(name = "PENDING_CONNECTS")]
pub static PENDING_CONNECTS: LruHashMap<u64, u8> = LruHashMap::with_max_entries(8192, 0);

/// Owners of sockets that talk to port 53, by socket cookie (see `SocketOwner`).
#[map(name = "DNS_SOCKETS")]
pub static DNS_SOCKETS: LruHashMap<u64, SocketOwner> = LruHashMap::with_max_entries(4096, 0);

/// Every event, in order, for the agent.
#[map(name = "EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Per-CPU counters, indexed by `ioc_common::stat`.
#[map(name = "STATS")]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

#[inline(always)]
pub fn count(index: u32) {
    if let Some(counter) = STATS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, and programs do not migrate CPUs while they run.
        unsafe { *counter += 1 };
    }
}

#[inline(always)]
pub fn settings() -> u32 {
    match SETTINGS.get(ioc_common::SETTINGS_FLAGS) {
        Some(flags) => *flags,
        None => 0,
    }
}
