//! The agent's status file (service mode) and `iocmon status`, which reads it beside the
//! pinned kernel state. Works while the agent is down: the pinned maps keep counting.

use std::path::Path;

use anyhow::{Context as _, Result};
use ioc_common::{SETTING_ALL_CONNECTIONS, SETTING_ENFORCE_TCP, SETTING_ENFORCE_UDP};
use serde::{Deserialize, Serialize};

use crate::kernel::PinnedStatus;

/// What the agent writes to its status file at start, every stats interval, after each
/// reload and at exit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub pid: u32,
    pub version: String,
    /// `running` or `stopped`.
    pub state: String,
    pub started: String,
    pub updated: String,
    pub mode: String,
    /// The pinned generation in use, and whether it was adopted from a previous agent.
    pub generation: String,
    pub adopted: bool,
    pub indicators: usize,
    pub reloads: u64,
    pub reload_failures: u64,
    pub last_reload: Option<ReloadStatus>,
    pub events_read: u64,
    pub records_written: u64,
    pub undecodable: u64,
    pub excluded: u64,
    pub sink_drops: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadStatus {
    pub at: String,
    pub why: String,
    /// Why it failed (the running set was kept); absent when it succeeded.
    pub error: Option<String>,
}

/// RFC 3339 UTC time, as records show it.
pub fn timestamp(at: std::time::SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Replaces the status file atomically (write beside it, then rename).
pub fn write(path: &Path, status: &AgentStatus) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(status)?;
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, text + "\n")
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))
}

fn read(path: &Path) -> Option<AgentStatus> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether the agent the status file names still runs (a killed one not yet reaped is
/// a zombie: state `Z` in /proc/PID/stat).
fn agent_alive(status: &AgentStatus) -> bool {
    status.state == "running"
        && std::fs::read_to_string(format!("/proc/{}/stat", status.pid)).is_ok_and(|stat| {
            let Some((name, rest)) = stat.split_once(") ") else {
                return false;
            };
            name.ends_with("(iocmon") && !rest.starts_with('Z')
        })
}

/// The mode the kernel applies, from its flag word.
fn kernel_mode(settings: u32) -> String {
    let tcp = settings & SETTING_ENFORCE_TCP != 0;
    let udp = settings & SETTING_ENFORCE_UDP != 0;
    let mut mode = match (tcp, udp) {
        (false, false) => "monitor".to_string(),
        (true, true) => "block (tcp+udp)".to_string(),
        (true, false) => "block (tcp)".to_string(),
        (false, true) => "block (udp)".to_string(),
    };
    if settings & SETTING_ALL_CONNECTIONS != 0 {
        mode.push_str(", all connections reported");
    }
    mode
}

/// Everything `iocmon status` shows.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub pin_dir: String,
    pub generation: String,
    pub kernel_mode: String,
    pub programs: Vec<(String, u32)>,
    /// Programs iocmon has in all; the rest (tracepoints before Linux 5.15) are attached
    /// only while an agent runs.
    pub program_count: usize,
    pub hook_calls: u64,
    pub indicator_hits: u64,
    pub blocked: u64,
    pub events_sent: u64,
    pub ring_buffer_full: u64,
    pub ring_unread_bytes: usize,
    pub ring_bytes: usize,
    pub endpoint_entries: (usize, u32),
    pub address_entries: (usize, u32),
    pub resolved_addresses: usize,
    pub watched_names: usize,
    pub agent_running: bool,
    pub agent: Option<AgentStatus>,
}

impl StatusReport {
    pub fn new(
        pin_dir: &Path,
        generation: &str,
        kernel: &PinnedStatus,
        status_file: &Path,
    ) -> Self {
        let agent = read(status_file);
        Self {
            pin_dir: pin_dir.display().to_string(),
            generation: generation.to_string(),
            kernel_mode: kernel_mode(kernel.settings),
            programs: kernel
                .programs
                .iter()
                .map(|p| (p.name.to_string(), p.id))
                .collect(),
            program_count: kernel.program_count,
            hook_calls: kernel.stats.hook_calls,
            indicator_hits: kernel.stats.ioc_hits,
            blocked: kernel.stats.blocked,
            events_sent: kernel.stats.events_sent,
            ring_buffer_full: kernel.stats.ringbuf_full,
            ring_unread_bytes: kernel.ring.0,
            ring_bytes: kernel.ring.1,
            endpoint_entries: kernel.endpoints,
            address_entries: kernel.nets,
            resolved_addresses: kernel.resolved,
            watched_names: kernel.watched,
            agent_running: agent.as_ref().is_some_and(agent_alive),
            agent,
        }
    }

    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let mut line = |label: &str, value: String| {
            out.push_str(&format!("{label:<13}{value}\n"));
        };
        line("pin dir", self.pin_dir.clone());
        line("generation", self.generation.clone());
        let ids = self
            .programs
            .iter()
            .map(|(_, id)| id.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let unpinned = self.program_count.saturating_sub(self.programs.len());
        let programs = if unpinned == 0 {
            format!("{} attached (ids {ids})", self.programs.len())
        } else {
            format!(
                "{} attached through pinned links (ids {ids}); {unpinned} tracepoints are \
                 attached only while an agent runs (kernel before 5.15)",
                self.programs.len()
            )
        };
        line("programs", programs);
        line("kernel mode", self.kernel_mode.clone());
        line(
            "counters",
            format!(
                "{} hook calls, {} indicator hits, {} blocked, {} events sent",
                self.hook_calls, self.indicator_hits, self.blocked, self.events_sent
            ),
        );
        line(
            "drops",
            format!(
                "{} events lost to a full ring buffer{}",
                self.ring_buffer_full,
                self.agent
                    .as_ref()
                    .map(|a| format!(
                        ", {} records lost by outputs, {} undecodable",
                        a.sink_drops, a.undecodable
                    ))
                    .unwrap_or_default()
            ),
        );
        line(
            "ring buffer",
            format!(
                "{} of {} bytes unread",
                self.ring_unread_bytes, self.ring_bytes
            ),
        );
        line(
            "map fill",
            format!(
                "IOC_ENDPOINTS {}/{}, IOC_NETS {}/{} ({} resolved addresses), {} watched names",
                self.endpoint_entries.0,
                self.endpoint_entries.1,
                self.address_entries.0,
                self.address_entries.1,
                self.resolved_addresses,
                self.watched_names
            ),
        );
        match &self.agent {
            None => line(
                "agent",
                "no status file: never ran in service mode here".to_string(),
            ),
            Some(agent) => {
                let state = if self.agent_running {
                    format!(
                        "running (pid {}) since {}; its figures below as of {}",
                        agent.pid, agent.started, agent.updated
                    )
                } else {
                    format!(
                        "not running (last seen {}); the pinned programs still record and enforce",
                        agent.updated
                    )
                };
                line("agent", state);
                line(
                    "indicators",
                    format!(
                        "{} loaded; mode {}; {} reloads, {} failed",
                        agent.indicators, agent.mode, agent.reloads, agent.reload_failures
                    ),
                );
                if let Some(reload) = &agent.last_reload {
                    let outcome = match &reload.error {
                        None => "applied".to_string(),
                        Some(err) => format!("FAILED, previous set kept: {err}"),
                    };
                    line(
                        "last reload",
                        format!("{} ({}): {outcome}", reload.at, reload.why),
                    );
                }
                line(
                    "records",
                    format!(
                        "{} events read, {} records written, {} excluded by rules",
                        agent.events_read, agent.records_written, agent.excluded
                    ),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_mode_names_the_enforced_protocols() {
        assert_eq!(kernel_mode(0), "monitor");
        assert_eq!(
            kernel_mode(SETTING_ENFORCE_TCP | SETTING_ENFORCE_UDP),
            "block (tcp+udp)"
        );
        assert_eq!(
            kernel_mode(SETTING_ENFORCE_UDP | SETTING_ALL_CONNECTIONS),
            "block (udp), all connections reported"
        );
    }

    #[test]
    fn status_file_round_trips() {
        let dir = std::env::temp_dir().join(format!("iocmon-status-{}", std::process::id()));
        let path = dir.join("status.json");
        let status = AgentStatus {
            pid: 7,
            state: "running".into(),
            last_reload: Some(ReloadStatus {
                at: timestamp(std::time::UNIX_EPOCH),
                why: "SIGHUP".into(),
                error: Some("bad.txt:3: \"x\"".into()),
            }),
            ..AgentStatus::default()
        };
        write(&path, &status).unwrap();
        assert_eq!(read(&path), Some(status));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
