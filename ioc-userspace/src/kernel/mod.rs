//! Everything that touches the kernel through aya: loading the programs, attaching them to
//! the cgroup v2 root, keeping the maps in step with the indicator set, and reading the
//! ring buffer. The rest of the agent sees plain Rust values and byte slices.

mod btf;
pub mod cgroup;
mod entries;
mod events;
mod offsets;

use std::{os::fd::AsFd as _, path::Path};

use anyhow::{anyhow, Context as _, Result};
use aya::{
    maps::{lpm_trie::Key as LpmKey, Array, HashMap as BpfHashMap, LpmTrie, MapData, PerCpuArray},
    programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, TracePoint},
    Ebpf, EbpfLoader,
};
use ioc_common::{
    comm_key, stat, CommKey, EndpointKey, IocValue, TaskOffsets, MAP_EVENTS, MAP_IOC_ENDPOINTS,
    MAP_IOC_NETS, MAP_SETTINGS, MAP_STATS, MAP_TASK_OFFSETS, MAP_WATCHED_COMMS, PROG_CONNECT4,
    PROG_CONNECT6, PROG_DNS_EGRESS, PROG_DNS_INGRESS, PROG_EXEC, PROG_EXIT, PROG_SENDMSG4,
    PROG_SENDMSG6, PROG_SOCK_STATE, SETTINGS_FLAGS,
};

pub use entries::{diff, KernelEntries, MatchOptions, NetKey};
pub use events::EventReader;

/// The compiled kernel programs, built by build.rs for the BPF target.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ioc-ebpf"));

/// Socket-address programs, attached to the cgroup v2 root.
const SOCK_PROGRAMS: [&str; 4] = [PROG_CONNECT4, PROG_CONNECT6, PROG_SENDMSG4, PROG_SENDMSG6];

/// DNS capture programs on the cgroup v2 root.
const SKB_PROGRAMS: [(&str, CgroupSkbAttachType); 2] = [
    (PROG_DNS_EGRESS, CgroupSkbAttachType::Egress),
    (PROG_DNS_INGRESS, CgroupSkbAttachType::Ingress),
];

/// Tracepoint programs and their (category, event). Attached before the socket programs,
/// so a process is known before its first connection is reported.
const TRACEPOINTS: [(&str, &str, &str); 3] = [
    (PROG_EXEC, "sched", "sched_process_exec"),
    (PROG_EXIT, "sched", "sched_process_exit"),
    (PROG_SOCK_STATE, "sock", "inet_sock_set_state"),
];

/// Map sizes chosen at load time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapSizes {
    pub endpoints: u32,
    pub nets: u32,
    pub ringbuf_bytes: u32,
}

impl MapSizes {
    /// Room for the entries at hand, half as many again for reloads that grow the set,
    /// and never less than 1024.
    pub fn for_entries(entries: &KernelEntries, ringbuf_bytes: u32) -> Self {
        let with_headroom = |n: usize| {
            let n = n.saturating_add(n / 2).max(1024);
            u32::try_from(n).unwrap_or(u32::MAX)
        };
        Self {
            endpoints: with_headroom(entries.endpoints.len()),
            nets: with_headroom(entries.nets.len()),
            ringbuf_bytes,
        }
    }
}

/// A program attached by this agent.
#[derive(Clone, Debug)]
pub struct AttachedProgram {
    pub name: &'static str,
    /// Kernel program id (`bpftool prog show id N`).
    pub id: u32,
}

/// Counts in the kernel's per-CPU `STATS` map, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    pub hook_calls: u64,
    pub ioc_hits: u64,
    pub events_sent: u64,
    pub ringbuf_full: u64,
    pub blocked: u64,
}

/// What a call to [`Kernel::sync_indicators`] changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub upserted: usize,
    pub removed: usize,
}

/// The loaded programs and their maps. Dropping it detaches and unloads everything.
pub struct Kernel {
    ebpf: Ebpf,
    sizes: MapSizes,
    installed: KernelEntries,
    /// Addresses domain indicators resolved to, with their expiry. They live in
    /// `IOC_NETS` beside the static entries, which win where both name an address.
    resolved: std::collections::HashMap<NetKey, (IocValue, std::time::Instant)>,
}

impl Kernel {
    /// Loads the programs into the kernel (verifier included), sized for `sizes`.
    pub fn load(sizes: MapSizes) -> Result<Self> {
        raise_memlock_limit();
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(MAP_IOC_ENDPOINTS, sizes.endpoints)
            .map_max_entries(MAP_IOC_NETS, sizes.nets)
            .map_max_entries(MAP_EVENTS, sizes.ringbuf_bytes)
            .load(OBJECT)
            .context("loading the eBPF object (is this kernel new enough, and are we root?)")?;
        for name in SOCK_PROGRAMS {
            let program: &mut CgroupSockAddr = program_mut(&mut ebpf, name)?.try_into()?;
            program
                .load()
                .with_context(|| format!("the kernel refused program {name}"))?;
        }
        for (name, _, _) in TRACEPOINTS {
            let program: &mut TracePoint = program_mut(&mut ebpf, name)?.try_into()?;
            program
                .load()
                .with_context(|| format!("the kernel refused program {name}"))?;
        }
        for (name, _) in SKB_PROGRAMS {
            let program: &mut CgroupSkb = program_mut(&mut ebpf, name)?.try_into()?;
            program
                .load()
                .with_context(|| format!("the kernel refused program {name}"))?;
        }
        Ok(Self {
            ebpf,
            sizes,
            installed: KernelEntries::default(),
            resolved: std::collections::HashMap::new(),
        })
    }

    pub fn sizes(&self) -> MapSizes {
        self.sizes
    }

    /// Gives the exec program this kernel's structure offsets, then attaches the
    /// process tracepoints, then the socket programs on `cgroup_root` (beside any other
    /// programs already there).
    pub fn attach(&mut self, cgroup_root: &Path) -> Result<Vec<AttachedProgram>> {
        let task_offsets = offsets::task_offsets()?;
        let mut table: Array<&mut MapData, TaskOffsets> =
            self.map_mut(MAP_TASK_OFFSETS)?.try_into()?;
        table.set(0, task_offsets, 0)?;

        let mut attached =
            Vec::with_capacity(TRACEPOINTS.len() + SKB_PROGRAMS.len() + SOCK_PROGRAMS.len());
        for (name, category, event) in TRACEPOINTS {
            let program: &mut TracePoint = program_mut(&mut self.ebpf, name)?.try_into()?;
            program
                .attach(category, event)
                .with_context(|| format!("attaching {name} to {category}/{event}"))?;
            let id = program.info().map(|info| info.id()).unwrap_or_default();
            attached.push(AttachedProgram { name, id });
        }

        let cgroup = std::fs::File::open(cgroup_root)
            .with_context(|| format!("opening cgroup {}", cgroup_root.display()))?;
        let mode = attach_mode();
        for (name, attach_type) in SKB_PROGRAMS {
            let program: &mut CgroupSkb = program_mut(&mut self.ebpf, name)?.try_into()?;
            program
                .attach(cgroup.as_fd(), attach_type, mode)
                .with_context(|| format!("attaching {name} to {}", cgroup_root.display()))?;
            let id = program.info().map(|info| info.id()).unwrap_or_default();
            attached.push(AttachedProgram { name, id });
        }
        for name in SOCK_PROGRAMS {
            let program: &mut CgroupSockAddr = program_mut(&mut self.ebpf, name)?.try_into()?;
            program
                .attach(cgroup.as_fd(), mode)
                .with_context(|| format!("attaching {name} to {}", cgroup_root.display()))?;
            let id = program.info().map(|info| info.id()).unwrap_or_default();
            attached.push(AttachedProgram { name, id });
        }
        Ok(attached)
    }

    /// Writes the `SETTING_*` flag word.
    pub fn set_settings(&mut self, flags: u32) -> Result<()> {
        let mut settings: Array<&mut MapData, u32> = self.map_mut(MAP_SETTINGS)?.try_into()?;
        settings.set(SETTINGS_FLAGS, flags, 0)?;
        Ok(())
    }

    /// Replaces the set of process names whose connections are always reported.
    pub fn set_watched_comms(&mut self, names: &[String]) -> Result<()> {
        let mut watched: BpfHashMap<&mut MapData, CommKey, u8> =
            self.map_mut(MAP_WATCHED_COMMS)?.try_into()?;
        let wanted: Vec<CommKey> = names.iter().map(|n| comm_key(n.as_bytes())).collect();
        for key in &wanted {
            watched
                .insert(key, 1, 0)
                .context("the watched process name map is full (64 names)")?;
        }
        let stale: Vec<CommKey> = watched
            .keys()
            .filter_map(Result::ok)
            .filter(|key| !wanted.contains(key))
            .collect();
        for key in stale {
            watched.remove(&key)?;
        }
        Ok(())
    }

    /// Makes the indicator maps hold exactly `wanted`, changing only what differs. New and
    /// changed entries go in before stale ones come out, so an entry present in both the
    /// old and the new set is never absent.
    pub fn sync_indicators(&mut self, wanted: KernelEntries) -> Result<SyncReport> {
        if wanted.endpoints.len() > self.sizes.endpoints as usize
            || wanted.nets.len() > self.sizes.nets as usize
        {
            return Err(anyhow!(
                "{} ip:port and {} address entries exceed the kernel maps' capacity \
                 ({} and {}); restart the agent to resize them",
                wanted.endpoints.len(),
                wanted.nets.len(),
                self.sizes.endpoints,
                self.sizes.nets
            ));
        }
        let (endpoint_upserts, endpoint_removals) =
            diff(&self.installed.endpoints, &wanted.endpoints);
        let (net_upserts, net_removals) = diff(&self.installed.nets, &wanted.nets);
        {
            let [endpoints, nets] = self
                .ebpf
                .maps_disjoint_mut([MAP_IOC_ENDPOINTS, MAP_IOC_NETS]);
            let mut endpoints: BpfHashMap<&mut MapData, EndpointKey, IocValue> = endpoints
                .ok_or_else(|| anyhow!("map {MAP_IOC_ENDPOINTS} missing"))?
                .try_into()?;
            let mut nets: LpmTrie<&mut MapData, [u8; 16], IocValue> = nets
                .ok_or_else(|| anyhow!("map {MAP_IOC_NETS} missing"))?
                .try_into()?;
            for (key, value) in &endpoint_upserts {
                endpoints
                    .insert(key, value, 0)
                    .context("updating IOC_ENDPOINTS")?;
            }
            for (key, value) in &net_upserts {
                nets.insert(&LpmKey::new(key.prefix_len, key.addr), value, 0)
                    .context("updating IOC_NETS")?;
            }
            for key in &endpoint_removals {
                endpoints.remove(key).context("pruning IOC_ENDPOINTS")?;
            }
            for key in &net_removals {
                // A resolved address under a removed static entry takes its slot back.
                match self.resolved.get(key) {
                    Some((value, _)) => {
                        nets.insert(&LpmKey::new(key.prefix_len, key.addr), value, 0)
                    }
                    None => nets.remove(&LpmKey::new(key.prefix_len, key.addr)),
                }
                .context("pruning IOC_NETS")?;
            }
        }
        let report = SyncReport {
            upserted: endpoint_upserts.len() + net_upserts.len(),
            removed: endpoint_removals.len() + net_removals.len(),
        };
        self.installed = wanted;
        Ok(report)
    }

    /// Makes `addr` an indicator hit (for `value.id`, a domain indicator) until `ttl`
    /// passes. A static indicator on the same address keeps its slot. Returns whether the
    /// address was new.
    pub fn add_resolved(
        &mut self,
        addr: std::net::IpAddr,
        value: IocValue,
        ttl: std::time::Duration,
    ) -> Result<bool> {
        let key = NetKey::host(addr);
        let expires = std::time::Instant::now() + ttl;
        let fresh = self.resolved.insert(key, (value, expires)).is_none();
        if fresh && !self.installed.nets.contains_key(&key) {
            if self.resolved.len() + self.installed.nets.len() > self.sizes.nets as usize {
                self.resolved.remove(&key);
                return Err(anyhow!("IOC_NETS is full; resolved address not tracked"));
            }
            let mut nets: LpmTrie<&mut MapData, [u8; 16], IocValue> =
                self.map_mut(MAP_IOC_NETS)?.try_into()?;
            nets.insert(&LpmKey::new(key.prefix_len, key.addr), value, 0)?;
        }
        Ok(fresh)
    }

    /// Removes resolved addresses whose TTL has passed; returns how many.
    pub fn expire_resolved(&mut self) -> Result<usize> {
        let now = std::time::Instant::now();
        let expired: Vec<NetKey> = self
            .resolved
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(key, _)| *key)
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        let installed = &self.installed.nets;
        let static_keys: Vec<bool> = expired.iter().map(|k| installed.contains_key(k)).collect();
        let mut nets: LpmTrie<&mut MapData, [u8; 16], IocValue> = self
            .ebpf
            .map_mut(MAP_IOC_NETS)
            .ok_or_else(|| anyhow!("map {MAP_IOC_NETS} missing"))?
            .try_into()?;
        for (key, is_static) in expired.iter().zip(static_keys) {
            if !is_static {
                nets.remove(&LpmKey::new(key.prefix_len, key.addr))?;
            }
        }
        for key in &expired {
            self.resolved.remove(key);
        }
        Ok(expired.len())
    }

    pub fn resolved_count(&self) -> usize {
        self.resolved.len()
    }

    /// The ring buffer reader. Can be taken once.
    pub fn take_event_reader(&mut self) -> Result<EventReader> {
        let map = self
            .ebpf
            .take_map(MAP_EVENTS)
            .ok_or_else(|| anyhow!("map {MAP_EVENTS} missing or already taken"))?;
        EventReader::new(map)
    }

    pub fn stats(&self) -> Result<KernelStats> {
        let map = self
            .ebpf
            .map(MAP_STATS)
            .ok_or_else(|| anyhow!("map {MAP_STATS} missing"))?;
        let stats: PerCpuArray<&MapData, u64> = map.try_into()?;
        let mut sums = [0u64; stat::COUNT as usize];
        for (index, sum) in sums.iter_mut().enumerate() {
            *sum = stats.get(&(index as u32), 0)?.iter().sum();
        }
        Ok(KernelStats {
            hook_calls: sums[stat::HOOK_CALLS as usize],
            ioc_hits: sums[stat::IOC_HITS as usize],
            events_sent: sums[stat::EVENTS_SENT as usize],
            ringbuf_full: sums[stat::RINGBUF_FULL as usize],
            blocked: sums[stat::BLOCKED as usize],
        })
    }

    /// Entries currently installed in (`IOC_ENDPOINTS`, `IOC_NETS`).
    pub fn installed_entries(&self) -> (usize, usize) {
        (self.installed.endpoints.len(), self.installed.nets.len())
    }

    /// Kernel memory charged to each BPF map this process holds (`memlock` in
    /// /proc/self/fdinfo), by map name, largest first.
    pub fn map_memory() -> Vec<(String, u64)> {
        let Ok(fds) = std::fs::read_dir("/proc/self/fdinfo") else {
            return Vec::new();
        };
        let mut maps: std::collections::BTreeMap<u32, (String, u64)> = Default::default();
        for entry in fds.filter_map(Result::ok) {
            let Ok(info) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let field = |name: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            };
            if let (Some(id), Some(memlock)) = (field("map_id:"), field("memlock:")) {
                let id = id as u32;
                let name = aya::maps::MapInfo::from_id(id)
                    .ok()
                    .and_then(|i| i.name_as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("map {id}"));
                maps.insert(id, (name, memlock));
            }
        }
        let mut list: Vec<(String, u64)> = maps.into_values().collect();
        list.sort_by_key(|map| std::cmp::Reverse(map.1));
        list
    }

    fn map_mut(&mut self, name: &str) -> Result<&mut aya::maps::Map> {
        self.ebpf
            .map_mut(name)
            .ok_or_else(|| anyhow!("map {name} missing from the eBPF object"))
    }
}

fn program_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::programs::Program> {
    ebpf.program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing from the eBPF object"))
}

/// How to attach beside other cgroup programs (systemd's among them) without replacing
/// them. From 5.7 aya attaches through BPF links, which the kernel always adds in
/// multi-program mode and which refuse an explicit BPF_F_ALLOW_MULTI (EINVAL); older
/// kernels use BPF_PROG_ATTACH, where the flag must be given.
fn attach_mode() -> CgroupAttachMode {
    match aya::util::KernelVersion::current() {
        Ok(version) if version < aya::util::KernelVersion::new(5, 7, 0) => {
            CgroupAttachMode::AllowMultiple
        }
        _ => CgroupAttachMode::Single,
    }
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; lift it so large indicator
/// sets load there too. Newer kernels ignore it.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid pointer to an initialised struct.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
    if rc != 0 {
        log::debug!(
            "could not lift RLIMIT_MEMLOCK: {}",
            std::io::Error::last_os_error()
        );
    }
}
