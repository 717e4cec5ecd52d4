//! What the exec program needs to know about this kernel: structure offsets (from BTF)
//! and the layout of the sched_process_exec tracepoint record (from tracefs).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _, Result};
use ioc_common::TaskOffsets;

use super::btf::KernelBtf;

/// Where tracefs is found: its own mount point (4.1+), then the older debugfs location.
pub const TRACEFS_MOUNTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The tracefs directory holding `events/`, mounting tracefs when it is absent (aya
/// needs it to attach tracepoints, and some devices do not mount it at boot).
pub fn tracefs() -> Result<PathBuf> {
    if let Some(found) = TRACEFS_MOUNTS
        .iter()
        .map(Path::new)
        .find(|dir| dir.join("events").is_dir())
    {
        return Ok(found.to_path_buf());
    }
    let target = TRACEFS_MOUNTS[0];
    std::fs::create_dir_all(target).with_context(|| format!("creating {target}"))?;
    nix::mount::mount(
        Some("tracefs"),
        target,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .with_context(|| format!("tracefs is not mounted and mounting it on {target} failed"))?;
    log::info!("mounted tracefs on {target}");
    Ok(PathBuf::from(target))
}

/// Offset of `field` in a tracepoint `format` file's text.
pub fn tracepoint_field_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let line = line.trim();
        let declaration = line.strip_prefix("field:")?.split(';').next()?;
        let name = declaration.rsplit([' ', '*']).next()?;
        let name = name.split('[').next()?;
        if name != field {
            return None;
        }
        line.split(';')
            .find_map(|part| part.trim().strip_prefix("offset:"))
            .and_then(|n| n.parse().ok())
    })
}

/// Everything in [`TaskOffsets`], from this kernel.
pub fn task_offsets() -> Result<TaskOffsets> {
    let mut offsets = btf_offsets()?;
    add_tracepoint_layouts(&mut offsets, &tracefs()?)?;
    Ok(offsets)
}

/// The structure-member half of [`TaskOffsets`], from the kernel's BTF alone (tracepoint
/// fields zero, not yet `valid`). Split out so `iocmon probe` can check BTF without
/// mounting tracefs.
pub fn btf_offsets() -> Result<TaskOffsets> {
    let btf = KernelBtf::from_sys_fs().map_err(|e| anyhow!("{e}"))?;
    let member = |strukt: &str, field: &str| {
        btf.member_offset(strukt, field)
            .with_context(|| format!("reading {strukt}.{field} from the kernel's BTF"))
    };
    // start_boottime (5.5+) counts suspend like our event clock; older kernels only
    // have real_start_time / start_time.
    let start = ["start_boottime", "real_start_time", "start_time"]
        .iter()
        .find_map(|field| btf.member_offset("task_struct", field).ok())
        .ok_or_else(|| anyhow!("task_struct has no start time field in the kernel's BTF"))?;
    Ok(TaskOffsets {
        valid: 0,
        task_mm: member("task_struct", "mm")?,
        task_real_parent: member("task_struct", "real_parent")?,
        task_tgid: member("task_struct", "tgid")?,
        task_start_boottime: start,
        task_cred: member("task_struct", "cred")?,
        cred_euid: member("cred", "euid")?,
        mm_arg_start: member("mm_struct", "arg_start")?,
        mm_arg_end: member("mm_struct", "arg_end")?,
        ..TaskOffsets::default()
    })
}

/// Fills in the tracepoint record offsets from the `format` files under `tracefs` and
/// marks `offsets` valid.
fn add_tracepoint_layouts(offsets: &mut TaskOffsets, tracefs: &Path) -> Result<()> {
    let format_path = tracefs.join("events/sched/sched_process_exec/format");
    let format = std::fs::read_to_string(&format_path)
        .with_context(|| format!("reading {}", format_path.display()))?;
    offsets.tp_exec_filename = tracepoint_field_offset(&format, "filename")
        .ok_or_else(|| anyhow!("no filename field in {}", format_path.display()))?;
    // The socket state tracepoint (outcomes of TCP connects); zero offsets leave the
    // program idle on kernels whose record lacks a field.
    let sock_format =
        std::fs::read_to_string(tracefs.join("events/sock/inet_sock_set_state/format"))
            .unwrap_or_default();
    match sock_state_offsets(&sock_format) {
        Some([skaddr, newstate, sport, saddr_v6]) => {
            offsets.tp_sock_skaddr = skaddr;
            offsets.tp_sock_newstate = newstate;
            offsets.tp_sock_sport = sport;
            offsets.tp_sock_saddr_v6 = saddr_v6;
        }
        None => {
            log::warn!("sock/inet_sock_set_state has an unexpected layout: no connection outcomes")
        }
    }
    offsets.valid = 1;
    Ok(())
}

/// The fields of the sock/inet_sock_set_state record that the outcome program reads
/// (skaddr, newstate, sport, saddr_v6), when the `format` text has all of them.
pub fn sock_state_offsets(format: &str) -> Option<[u32; 4]> {
    Some([
        tracepoint_field_offset(format, "skaddr")?,
        tracepoint_field_offset(format, "newstate")?,
        tracepoint_field_offset(format, "sport")?,
        tracepoint_field_offset(format, "saddr_v6")?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXEC_FORMAT: &str = "name: sched_process_exec
ID: 312
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;
";

    #[test]
    fn finds_tracepoint_field_offsets() {
        assert_eq!(tracepoint_field_offset(EXEC_FORMAT, "filename"), Some(8));
        assert_eq!(tracepoint_field_offset(EXEC_FORMAT, "old_pid"), Some(16));
        assert_eq!(tracepoint_field_offset(EXEC_FORMAT, "pid"), Some(12));
        assert_eq!(tracepoint_field_offset(EXEC_FORMAT, "nothing"), None);
    }

    #[test]
    fn this_kernel_offsets_load() {
        let offsets = task_offsets().unwrap();
        assert_eq!(offsets.valid, 1);
        assert_eq!(offsets.mm_arg_end, offsets.mm_arg_start + 8);
        assert_eq!(offsets.tp_exec_filename, 8);
    }
}
