//! Everything that touches the kernel through aya: loading the programs, attaching them to
//! the cgroup v2 root, keeping the maps in step with the indicator set, and reading the
//! ring buffer. The rest of the agent sees plain Rust values and byte slices.

mod btf;
pub mod cgroup;
mod entries;
mod events;
pub mod features;
mod offsets;
pub mod pin;

use std::{os::fd::AsFd as _, path::Path};

use anyhow::{anyhow, Context as _, Result};
use aya::{
    maps::{
        lpm_trie::Key as LpmKey, Array, HashMap as BpfHashMap, LpmTrie, Map, MapData, PerCpuArray,
    },
    programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, TracePoint},
    Ebpf, EbpfLoader,
};
use ioc_common::{
    comm_key, stat, CommKey, EndpointKey, IocValue, TaskOffsets, IOC_FLAG_RESOLVED, MAP_EVENTS,
    MAP_IOC_ENDPOINTS, MAP_IOC_NETS, MAP_NAMES, MAP_SETTINGS, MAP_STATS, MAP_TASK_OFFSETS,
    MAP_WATCHED_COMMS, PROG_CONNECT4, PROG_CONNECT6, PROG_DNS_EGRESS, PROG_DNS_INGRESS, PROG_EXEC,
    PROG_EXIT, PROG_SENDMSG4, PROG_SENDMSG6, PROG_SOCK_STATE, SETTINGS_FLAGS,
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

/// The state of a pinned generation, read from its maps and links.
#[derive(Clone, Debug)]
pub struct PinnedStatus {
    /// Programs attached through pinned links (all of them from Linux 5.15).
    pub programs: Vec<AttachedProgram>,
    /// How many programs iocmon has in all.
    pub program_count: usize,
    pub stats: KernelStats,
    /// The `SETTING_*` flag word.
    pub settings: u32,
    /// (entries, capacity) of `IOC_ENDPOINTS` and `IOC_NETS`.
    pub endpoints: (usize, u32),
    pub nets: (usize, u32),
    /// Of the `IOC_NETS` entries, addresses resolved from domain indicators.
    pub resolved: usize,
    pub watched: usize,
    /// (unread bytes, size) of the ring buffer.
    pub ring: (usize, usize),
}

/// What a call to [`Kernel::sync_indicators`] changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub upserted: usize,
    pub removed: usize,
}

/// The programs and their maps. Dropping it detaches and unloads everything this agent
/// attached, except what is pinned (service mode), which stays in the kernel.
pub struct Kernel {
    /// Programs this agent loaded; `None` when it adopted pinned ones.
    ebpf: Option<Ebpf>,
    /// Pinned tracepoint programs this agent attached again after adopting them (kernels
    /// that cannot pin tracepoint links). Never read: held so that their links last as
    /// long as the agent.
    #[allow(dead_code)]
    reattached: Vec<TracePoint>,
    maps: std::collections::HashMap<&'static str, Map>,
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
        // The programs hold their own references to the maps; the agent keeps the handles.
        let mut maps = std::collections::HashMap::new();
        for name in MAP_NAMES {
            let map = ebpf
                .take_map(name)
                .ok_or_else(|| anyhow!("map {name} missing from the eBPF object"))?;
            maps.insert(name, map);
        }
        Ok(Self {
            ebpf: Some(ebpf),
            reattached: Vec::new(),
            maps,
            sizes,
            installed: KernelEntries::default(),
            resolved: std::collections::HashMap::new(),
        })
    }

    /// Takes over the programs, links and maps a previous agent pinned in `dir` (a
    /// generation of the same build): nothing is detached or reattached, so recording and
    /// blocking never stop. Addresses resolved from domain indicators are dropped (their
    /// TTLs were the previous agent's); the next answer brings them back.
    pub fn adopt(dir: &Path) -> Result<(Self, Vec<AttachedProgram>)> {
        let mut maps = std::collections::HashMap::new();
        for name in MAP_NAMES {
            let path = pin::map_path(dir, name);
            let data = MapData::from_pin(&path)
                .with_context(|| format!("opening pinned map {}", path.display()))?;
            maps.insert(name, Map::from_map_data(data)?);
        }
        let mut attached =
            Vec::with_capacity(TRACEPOINTS.len() + SKB_PROGRAMS.len() + SOCK_PROGRAMS.len());
        let mut reattached = Vec::new();
        for (name, category, event) in TRACEPOINTS {
            if pin::link_path(dir, name).exists() {
                attached.extend(pin::pinned_programs(dir, &[name])?);
                continue;
            }
            // Pinned without its link (a kernel before 5.15): attach it again, for as
            // long as this agent runs.
            let path = pin::program_path(dir, name);
            let mut program = TracePoint::from_pin(&path)
                .with_context(|| format!("opening pinned program {}", path.display()))?;
            program
                .attach(category, event)
                .with_context(|| format!("attaching {name} to {category}/{event}"))?;
            let id = program.info().map(|info| info.id()).unwrap_or_default();
            attached.push(AttachedProgram { name, id });
            reattached.push(program);
        }
        let cgroup_programs: Vec<&'static str> = SKB_PROGRAMS
            .iter()
            .map(|(name, _)| *name)
            .chain(SOCK_PROGRAMS)
            .collect();
        attached.extend(pin::pinned_programs(dir, &cgroup_programs)?);
        let max_entries = |name: &str| -> Result<u32> {
            Ok(match maps.get(name) {
                Some(Map::HashMap(data)) | Some(Map::LpmTrie(data)) | Some(Map::RingBuf(data)) => {
                    data.info()?.max_entries()
                }
                _ => return Err(anyhow!("pinned map {name} has an unexpected type")),
            })
        };
        let sizes = MapSizes {
            endpoints: max_entries(MAP_IOC_ENDPOINTS)?,
            nets: max_entries(MAP_IOC_NETS)?,
            ringbuf_bytes: max_entries(MAP_EVENTS)?,
        };
        let mut kernel = Self {
            ebpf: None,
            reattached,
            maps,
            sizes,
            installed: KernelEntries::default(),
            resolved: std::collections::HashMap::new(),
        };
        let (installed, resolved) = kernel.read_entries()?;
        {
            let mut nets: LpmTrie<&mut MapData, [u8; 16], IocValue> =
                kernel.map_mut(MAP_IOC_NETS)?.try_into()?;
            for key in resolved {
                nets.remove(&LpmKey::new(key.prefix_len, key.addr))?;
            }
        }
        kernel.installed = installed;
        Ok((kernel, attached))
    }

    /// The static entries of the indicator maps, and the keys of resolved addresses.
    fn read_entries(&self) -> Result<(KernelEntries, Vec<NetKey>)> {
        let mut entries = KernelEntries::default();
        let endpoints: BpfHashMap<&MapData, EndpointKey, IocValue> =
            self.map(MAP_IOC_ENDPOINTS)?.try_into()?;
        for item in endpoints.iter() {
            let (key, value) = item?;
            entries.endpoints.insert(key, value);
        }
        let nets: LpmTrie<&MapData, [u8; 16], IocValue> = self.map(MAP_IOC_NETS)?.try_into()?;
        let mut resolved = Vec::new();
        for item in nets.iter() {
            let (key, value) = item?;
            let key = NetKey {
                prefix_len: key.prefix_len(),
                addr: key.data(),
            };
            if value.flags & IOC_FLAG_RESOLVED != 0 {
                resolved.push(key);
            } else {
                entries.nets.insert(key, value);
            }
        }
        Ok((entries, resolved))
    }

    /// A read-only view of the maps pinned in `dir` (no programs).
    fn open_pinned(dir: &Path, names: &[&'static str]) -> Result<Self> {
        let mut maps = std::collections::HashMap::new();
        for name in names {
            let path = pin::map_path(dir, name);
            let data = MapData::from_pin(&path)
                .with_context(|| format!("opening pinned map {}", path.display()))?;
            maps.insert(*name, Map::from_map_data(data)?);
        }
        Ok(Self {
            ebpf: None,
            reattached: Vec::new(),
            maps,
            sizes: MapSizes {
                endpoints: 0,
                nets: 0,
                ringbuf_bytes: 0,
            },
            installed: KernelEntries::default(),
            resolved: std::collections::HashMap::new(),
        })
    }

    /// The indicator entries pinned in `dir`, to carry their ids over to a new agent.
    pub fn pinned_entries(dir: &Path) -> Result<KernelEntries> {
        Ok(Self::open_pinned(dir, &[MAP_IOC_ENDPOINTS, MAP_IOC_NETS])?
            .read_entries()?
            .0)
    }

    /// What the generation pinned in `dir` is doing, for `iocmon status`.
    pub fn pinned_status(dir: &Path) -> Result<PinnedStatus> {
        let mut view = Self::open_pinned(dir, &MAP_NAMES)?;
        let linked: Vec<&'static str> = all_program_names()
            .into_iter()
            .filter(|name| pin::link_path(dir, name).exists())
            .collect();
        let programs = pin::pinned_programs(dir, &linked)?;
        let (entries, resolved) = view.read_entries()?;
        let capacity = |name: &str| -> u32 {
            view.map(name)
                .ok()
                .and_then(|map| match map {
                    Map::HashMap(data) | Map::LpmTrie(data) => data.info().ok(),
                    _ => None,
                })
                .map_or(0, |info| info.max_entries())
        };
        let settings: Array<&MapData, u32> = view.map(MAP_SETTINGS)?.try_into()?;
        let settings = settings.get(&SETTINGS_FLAGS, 0)?;
        let watched: BpfHashMap<&MapData, CommKey, u8> = view.map(MAP_WATCHED_COMMS)?.try_into()?;
        let watched = watched.keys().filter(Result::is_ok).count();
        let stats = view.stats()?;
        let endpoints = (entries.endpoints.len(), capacity(MAP_IOC_ENDPOINTS));
        let nets = (entries.nets.len() + resolved.len(), capacity(MAP_IOC_NETS));
        let events = view
            .maps
            .remove(MAP_EVENTS)
            .ok_or_else(|| anyhow!("map {MAP_EVENTS} missing"))?;
        let ring = events::unread(events)?;
        Ok(PinnedStatus {
            programs,
            program_count: all_program_names().len(),
            stats,
            settings,
            endpoints,
            nets,
            resolved: resolved.len(),
            watched,
            ring,
        })
    }

    /// Ends a generation another agent pinned: detaches its programs (ours are attached
    /// already), passes the events left in its ring buffer to `handle` when they have
    /// this build's layout, and removes it. Returns how many events were read and how
    /// many bytes of events of another layout were discarded.
    pub fn retire(
        generation: &pin::Generation,
        handle: impl FnMut(&[u8]),
    ) -> Result<(usize, usize)> {
        let dir = &generation.path;
        let events = MapData::from_pin(pin::map_path(dir, MAP_EVENTS))
            .ok()
            .and_then(|data| Map::from_map_data(data).ok());
        pin::remove_links(dir)?;
        let mut report = (0, 0);
        if let Some(events) = events {
            if generation.same_layout() {
                report.0 = EventReader::new(events)?.drain(handle)?;
            } else {
                report.1 = events::unread(events)?.0;
            }
        }
        pin::remove_generation(dir)?;
        Ok(report)
    }

    pub fn sizes(&self) -> MapSizes {
        self.sizes
    }

    /// Gives the exec program this kernel's structure offsets, then attaches the
    /// process tracepoints, then the socket programs on `cgroup_root` (beside any other
    /// programs already there). The links live as long as this value.
    pub fn attach(&mut self, cgroup_root: &Path) -> Result<Vec<AttachedProgram>> {
        self.attach_inner(cgroup_root, None)
    }

    /// As [`Kernel::attach`], but first pins every map and program in `dir`, and pins
    /// each link there as it is made, so all of it outlives the agent.
    pub fn attach_pinned(
        &mut self,
        cgroup_root: &Path,
        dir: &Path,
    ) -> Result<Vec<AttachedProgram>> {
        for (name, map) in &self.maps {
            let path = pin::map_path(dir, name);
            map.pin(&path)
                .with_context(|| format!("pinning map {}", path.display()))?;
        }
        self.attach_inner(cgroup_root, Some(dir))
    }

    fn attach_inner(
        &mut self,
        cgroup_root: &Path,
        pin_dir: Option<&Path>,
    ) -> Result<Vec<AttachedProgram>> {
        let task_offsets = offsets::task_offsets()?;
        let mut table: Array<&mut MapData, TaskOffsets> =
            self.map_mut(MAP_TASK_OFFSETS)?.try_into()?;
        table.set(0, task_offsets, 0)?;
        let ebpf = self
            .ebpf
            .as_mut()
            .ok_or_else(|| anyhow!("adopted programs are attached already"))?;

        let mut attached =
            Vec::with_capacity(TRACEPOINTS.len() + SKB_PROGRAMS.len() + SOCK_PROGRAMS.len());
        for (name, category, event) in TRACEPOINTS {
            let program: &mut TracePoint = program_mut(ebpf, name)?.try_into()?;
            let link = program
                .attach(category, event)
                .with_context(|| format!("attaching {name} to {category}/{event}"))?;
            if let Some(dir) = pin_dir {
                program.pin(pin::program_path(dir, name))?;
                // Before 5.15 a tracepoint is attached through a perf event, which cannot
                // be pinned: the link stays with this agent, the next one attaches the
                // pinned program again.
                if tracepoint_links_pinnable() {
                    pin::pin_link(program.take_link(link)?, dir, name)?;
                }
            }
            let id = program.info().map(|info| info.id()).unwrap_or_default();
            attached.push(AttachedProgram { name, id });
        }

        let cgroup = std::fs::File::open(cgroup_root)
            .with_context(|| format!("opening cgroup {}", cgroup_root.display()))?;
        let mode = attach_mode();
        for (name, attach_type) in SKB_PROGRAMS {
            let program: &mut CgroupSkb = program_mut(ebpf, name)?.try_into()?;
            let link = program
                .attach(cgroup.as_fd(), attach_type, mode)
                .with_context(|| format!("attaching {name} to {}", cgroup_root.display()))?;
            if let Some(dir) = pin_dir {
                program.pin(pin::program_path(dir, name))?;
                pin::pin_link(program.take_link(link)?, dir, name)?;
            }
            let id = program.info().map(|info| info.id()).unwrap_or_default();
            attached.push(AttachedProgram { name, id });
        }
        for name in SOCK_PROGRAMS {
            let program: &mut CgroupSockAddr = program_mut(ebpf, name)?.try_into()?;
            let link = program
                .attach(cgroup.as_fd(), mode)
                .with_context(|| format!("attaching {name} to {}", cgroup_root.display()))?;
            if let Some(dir) = pin_dir {
                program.pin(pin::program_path(dir, name))?;
                pin::pin_link(program.take_link(link)?, dir, name)?;
            }
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
                .maps
                .get_disjoint_mut([MAP_IOC_ENDPOINTS, MAP_IOC_NETS]);
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
            .maps
            .get_mut(MAP_IOC_NETS)
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
            .maps
            .remove(MAP_EVENTS)
            .ok_or_else(|| anyhow!("map {MAP_EVENTS} missing or already taken"))?;
        EventReader::new(map)
    }

    pub fn stats(&self) -> Result<KernelStats> {
        let stats: PerCpuArray<&MapData, u64> = self.map(MAP_STATS)?.try_into()?;
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

    fn map_mut(&mut self, name: &str) -> Result<&mut Map> {
        self.maps
            .get_mut(name)
            .ok_or_else(|| anyhow!("map {name} missing from the eBPF object"))
    }

    fn map(&self, name: &str) -> Result<&Map> {
        self.maps
            .get(name)
            .ok_or_else(|| anyhow!("map {name} missing from the eBPF object"))
    }
}

/// Whether tracepoints get BPF links (5.15), which can be pinned. `IOCMON_TEST_UNPINNED_TRACEPOINTS=1`
/// makes the agent behave as on an older kernel, so the fallback is tested on this one.
pub fn tracepoint_links_pinnable() -> bool {
    if std::env::var_os("IOCMON_TEST_UNPINNED_TRACEPOINTS").is_some_and(|v| v == "1") {
        return false;
    }
    aya::util::KernelVersion::current()
        .map(|version| version >= aya::util::KernelVersion::new(5, 15, 0))
        .unwrap_or(true)
}

fn all_program_names() -> Vec<&'static str> {
    TRACEPOINTS
        .iter()
        .map(|(name, _, _)| *name)
        .chain(SKB_PROGRAMS.iter().map(|(name, _)| *name))
        .chain(SOCK_PROGRAMS)
        .collect()
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
