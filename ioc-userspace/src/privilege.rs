//! Least privilege: once the programs are attached the agent gives up every capability
//! it no longer needs, in all sets (the bounding set too, so nothing it starts regains
//! them).
//!
//! Kept:
//! - `CAP_BPF` (or `CAP_SYS_ADMIN` on kernels without it): map updates at reloads and
//!   for resolved addresses; every bpf() call needs it when unprivileged BPF is disabled.
//! - `CAP_SYS_PTRACE`: reading `/proc/PID/exe` of processes of other users or with more
//!   capabilities than the agent, for the process path in records.
//!
//! Given up, among others: `CAP_NET_ADMIN` and `CAP_PERFMON` (only attaching needs them),
//! `CAP_SYS_RESOURCE` (memlock, at load), `CAP_DAC_OVERRIDE` (files the agent reads at a
//! reload must be readable by root through their permissions), `CAP_SYS_ADMIN` where
//! `CAP_BPF` exists.

use anyhow::{Context as _, Result};
use caps::{CapSet, Capability, CapsHashSet};

/// The capabilities the running agent keeps.
pub fn needed_after_attach() -> CapsHashSet {
    let bpf = if caps::runtime::thread_all_supported().contains(&Capability::CAP_BPF) {
        Capability::CAP_BPF
    } else {
        Capability::CAP_SYS_ADMIN
    };
    [bpf, Capability::CAP_SYS_PTRACE].into_iter().collect()
}

/// Drops every capability but `keep` from the bounding, ambient, inheritable, permitted
/// and effective sets. Returns the effective set afterwards.
pub fn drop_all_but(keep: &CapsHashSet) -> Result<CapsHashSet> {
    let permitted = caps::read(None, CapSet::Permitted).context("reading capabilities")?;
    let keep: CapsHashSet = keep.intersection(&permitted).copied().collect();
    // Shrinking the bounding set takes CAP_SETPCAP; without it (a service manager already
    // bounded us) the other sets still shrink.
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false) {
        for cap in caps::runtime::thread_all_supported() {
            if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
                caps::drop(None, CapSet::Bounding, cap)
                    .with_context(|| format!("dropping {cap} from the bounding set"))?;
            }
        }
    }
    caps::clear(None, CapSet::Ambient).context("clearing ambient capabilities")?;
    caps::clear(None, CapSet::Inheritable).context("clearing inheritable capabilities")?;
    caps::set(None, CapSet::Effective, &keep).context("setting effective capabilities")?;
    caps::set(None, CapSet::Permitted, &keep).context("setting permitted capabilities")?;
    caps::read(None, CapSet::Effective).context("reading capabilities")
}

/// `CAP_BPF,CAP_SYS_PTRACE`, sorted, for logs.
pub fn describe(set: &CapsHashSet) -> String {
    let mut names: Vec<String> = set.iter().map(|cap| cap.to_string()).collect();
    names.sort();
    names.join(",")
}
