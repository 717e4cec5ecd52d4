//! What `iocmon probe` asks the kernel: whether the program types, map types and helpers
//! that iocmon's programs use are there (aya's feature probes, which load throw-away
//! programs and maps), whether the real programs pass the verifier, and the pieces of
//! the agent's own start-up (BTF offsets, tracepoint layouts) that can be checked
//! without changing the system. Nothing here attaches or mounts anything.

use anyhow::{Context as _, Result};
use aya::{
    maps::MapType,
    programs::ProgramType,
    sys::{is_helper_supported, is_map_supported, is_program_supported, BpfHelper},
};
use ioc_common::TaskOffsets;

pub use super::offsets::{sock_state_offsets, tracepoint_field_offset, TRACEFS_MOUNTS};
use super::{Kernel, MapSizes, SKB_PROGRAMS, SOCK_PROGRAMS, TRACEPOINTS};

/// One kernel facility and whether this kernel has it. `Err` carries the reason the
/// question could not be answered (an unexpected error from the probe).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feature {
    /// What was asked, as the report shows it (`cgroup_sock_addr`, `ringbuf`, ...).
    pub name: String,
    /// The first upstream release that has it, for the report.
    pub since: &'static str,
    pub supported: Result<bool, String>,
}

/// The program types iocmon loads.
pub fn program_types() -> Vec<Feature> {
    [
        (ProgramType::CgroupSockAddr, "cgroup_sock_addr", "4.17"),
        (ProgramType::CgroupSkb, "cgroup_skb", "4.10"),
        (ProgramType::TracePoint, "tracepoint", "4.7"),
    ]
    .into_iter()
    .map(|(program_type, name, since)| Feature {
        name: name.to_string(),
        since,
        supported: is_program_supported(program_type).map_err(|err| err.to_string()),
    })
    .collect()
}

/// The ring buffer that carries every event (`EVENTS`).
pub fn ring_buffer() -> Feature {
    map_feature(MapType::RingBuf, "ringbuf", "5.8")
}

/// The other map types in ioc-ebpf's maps.rs.
pub fn map_types() -> Vec<Feature> {
    [
        (MapType::Hash, "hash", "3.19"),
        (MapType::Array, "array", "3.19"),
        (MapType::PerCpuArray, "percpu_array", "4.6"),
        (MapType::LpmTrie, "lpm_trie", "4.11"),
    ]
    .into_iter()
    .map(|(map_type, name, since)| map_feature(map_type, name, since))
    .collect()
}

fn map_feature(map_type: MapType, name: &str, since: &'static str) -> Feature {
    Feature {
        name: name.to_string(),
        since,
        supported: is_map_supported(map_type).map_err(|err| err.to_string()),
    }
}

/// The helpers whose availability depends on the program type and the kernel release:
/// the ones that set the 5.7/5.8 floor (docs/KERNELS.md) and the ones lockdown can take
/// away (`probe_read_kernel` under lockdown=confidentiality).
pub fn helpers() -> Vec<Feature> {
    use BpfHelper as H;
    let wanted: [(ProgramType, &str, H, &'static str); 14] = [
        (
            ProgramType::CgroupSockAddr,
            "cgroup_sock_addr",
            H::BPF_FUNC_get_current_pid_tgid,
            "5.7",
        ),
        (
            ProgramType::CgroupSockAddr,
            "cgroup_sock_addr",
            H::BPF_FUNC_get_current_comm,
            "5.7",
        ),
        (
            ProgramType::CgroupSockAddr,
            "cgroup_sock_addr",
            H::BPF_FUNC_get_current_cgroup_id,
            "5.7",
        ),
        (
            ProgramType::CgroupSockAddr,
            "cgroup_sock_addr",
            H::BPF_FUNC_ringbuf_reserve,
            "5.8",
        ),
        (
            ProgramType::CgroupSockAddr,
            "cgroup_sock_addr",
            H::BPF_FUNC_ktime_get_boot_ns,
            "5.8",
        ),
        (
            ProgramType::CgroupSkb,
            "cgroup_skb",
            H::BPF_FUNC_skb_load_bytes,
            "4.10",
        ),
        (
            ProgramType::CgroupSkb,
            "cgroup_skb",
            H::BPF_FUNC_get_socket_cookie,
            "4.12",
        ),
        (
            ProgramType::CgroupSkb,
            "cgroup_skb",
            H::BPF_FUNC_skb_cgroup_id,
            "4.18",
        ),
        (
            ProgramType::CgroupSkb,
            "cgroup_skb",
            H::BPF_FUNC_ringbuf_reserve,
            "5.8",
        ),
        (
            ProgramType::TracePoint,
            "tracepoint",
            H::BPF_FUNC_get_current_task,
            "4.8",
        ),
        (
            ProgramType::TracePoint,
            "tracepoint",
            H::BPF_FUNC_probe_read_kernel,
            "5.5",
        ),
        (
            ProgramType::TracePoint,
            "tracepoint",
            H::BPF_FUNC_probe_read_user,
            "5.5",
        ),
        (
            ProgramType::TracePoint,
            "tracepoint",
            H::BPF_FUNC_ringbuf_reserve,
            "5.8",
        ),
        (
            ProgramType::TracePoint,
            "tracepoint",
            H::BPF_FUNC_ktime_get_boot_ns,
            "5.8",
        ),
    ];
    wanted
        .into_iter()
        .map(|(program_type, program_name, helper, since)| {
            // "BPF_FUNC_get_current_comm" -> "bpf_get_current_comm", as in the kernel docs.
            let helper_name = format!("{helper:?}").replacen("BPF_FUNC_", "bpf_", 1);
            Feature {
                name: format!("{helper_name} from {program_name}"),
                since,
                supported: is_helper_supported(program_type, helper).map_err(|e| e.to_string()),
            }
        })
        .collect()
}

/// Loads iocmon's own programs (small maps, nothing attached) and unloads them again:
/// the verifier's word on this kernel. Returns how many programs it accepted.
pub fn load_programs() -> Result<usize> {
    let sizes = MapSizes {
        endpoints: 1024,
        nets: 1024,
        // A power of two and a multiple of every page size Linux uses (up to 64 KiB).
        ringbuf_bytes: 256 * 1024,
    };
    let kernel = Kernel::load(sizes).context("loading iocmon's eBPF programs")?;
    drop(kernel);
    Ok(SOCK_PROGRAMS.len() + SKB_PROGRAMS.len() + TRACEPOINTS.len())
}

/// The tracepoints the agent attaches to, as (program, category, event).
pub fn attached_tracepoints() -> &'static [(&'static str, &'static str, &'static str)] {
    &TRACEPOINTS
}

/// The `task_struct`/`cred`/`mm_struct` member offsets the exec program needs, read from
/// `/sys/kernel/btf/vmlinux` exactly as the agent reads them at start.
pub fn btf_offsets() -> Result<TaskOffsets> {
    super::offsets::btf_offsets()
}
