//! Process lifecycle: `sched/sched_process_exec` captures who a process is (argv, file
//! name, parent, user, start time) the moment it starts, so even a process that connects
//! and exits within a millisecond is attributed fully. `sched/sched_process_exit` tells
//! the agent when to forget it.
//!
//! Kernel structure offsets come from the agent (read from this kernel's BTF) through
//! `TASK_OFFSETS`; the program does nothing until they are there.

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_task, bpf_get_current_uid_gid, bpf_ktime_get_boot_ns,
        bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes, generated::bpf_probe_read_user,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use ioc_common::{
    stat, ExecEvent, ExitEvent, OutcomeEvent, TaskOffsets, ARGS_CAPACITY, EVENT_EXEC, EVENT_EXIT,
    EVENT_OUTCOME,
};

use crate::maps::{count, EVENTS, PENDING_CONNECTS, TASK_OFFSETS};

#[tracepoint]
pub fn ioc_exec(ctx: TracePointContext) -> u32 {
    let Some(offsets) = TASK_OFFSETS.get(0) else {
        return 0;
    };
    if offsets.valid == 0 {
        return 0;
    }
    let offsets = *offsets;
    let Some(mut entry) = EVENTS.reserve::<ExecEvent>(0) else {
        count(stat::RINGBUF_FULL);
        return 0;
    };
    // The event is 4 KiB: fill it in place, never on the 512-byte stack.
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points at reserved ring-buffer memory of the right size; every
    // kernel read goes through the probe-read helpers, which fail safely.
    unsafe { fill_exec(&ctx, &offsets, event) };
    entry.submit(0);
    count(stat::EVENTS_SENT);
    0
}

#[inline(always)]
unsafe fn read_field<T>(base: u64, offset: u32) -> Option<T> {
    if base == 0 {
        return None;
    }
    // SAFETY: a probe read; an invalid address yields an error, not a fault.
    unsafe { bpf_probe_read_kernel((base + u64::from(offset)) as *const T).ok() }
}

#[inline(always)]
unsafe fn fill_exec(ctx: &TracePointContext, offsets: &TaskOffsets, event: *mut ExecEvent) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    // SAFETY (whole block): see `ioc_exec`.
    unsafe {
        (*event).kind = EVENT_EXEC;
        (*event).boot_ns = bpf_ktime_get_boot_ns();
        (*event).cgroup_id = bpf_get_current_cgroup_id();
        (*event).pid = pid_tgid as u32;
        (*event).tgid = (pid_tgid >> 32) as u32;
        (*event).uid = uid_gid as u32;
        (*event).gid = (uid_gid >> 32) as u32;
        (*event).comm = bpf_get_current_comm().unwrap_or([0u8; 16]);
        (*event)._pad = [0u8; 7];

        let task = bpf_get_current_task();
        let parent: u64 = read_field(task, offsets.task_real_parent).unwrap_or(0);
        (*event).ppid = read_field(parent, offsets.task_tgid).unwrap_or(0);
        (*event).start_boot_ns = read_field(task, offsets.task_start_boottime).unwrap_or(0);
        let cred: u64 = read_field(task, offsets.task_cred).unwrap_or(0);
        (*event).euid = read_field(cred, offsets.cred_euid).unwrap_or(u32::MAX);

        // File name as given to execve: a __data_loc field (offset | length << 16).
        (*event).filename[0] = 0;
        if let Ok(loc) = ctx.read_at::<u32>(offsets.tp_exec_filename as usize) {
            let src = (ctx.as_ptr_u8()).wrapping_add((loc & 0xffff) as usize);
            let _ = bpf_probe_read_kernel_str_bytes(src, &mut (*event).filename);
        }

        // The argument area of the new image: argv strings, NUL-separated, contiguous.
        (*event).args_len = 0;
        (*event).args_truncated = 0;
        let mm: u64 = read_field(task, offsets.task_mm).unwrap_or(0);
        let start: u64 = read_field(mm, offsets.mm_arg_start).unwrap_or(0);
        let end: u64 = read_field(mm, offsets.mm_arg_end).unwrap_or(0);
        if start != 0 && end > start {
            let mut len = end - start;
            if len > ARGS_CAPACITY as u64 {
                len = ARGS_CAPACITY as u64;
                (*event).args_truncated = 1;
            }
            // The mask proves the bound to the verifier (len <= ARGS_CAPACITY already).
            let len = (len as u32) & (ARGS_CAPACITY as u32);
            let dst = (*event).args.as_mut_ptr();
            if bpf_probe_read_user(dst.cast(), len, start as *const _) == 0 {
                (*event).args_len = len;
            }
        }
    }
}

trait CtxBytes {
    fn as_ptr_u8(&self) -> *const u8;
}

impl CtxBytes for TracePointContext {
    fn as_ptr_u8(&self) -> *const u8 {
        aya_ebpf::EbpfContext::as_ptr(self) as *const u8
    }
}

#[tracepoint]
pub fn ioc_exit(_ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    // Threads exit too; only the thread-group leader's exit ends the process.
    if pid_tgid as u32 != tgid {
        return 0;
    }
    match EVENTS.reserve::<ExitEvent>(0) {
        Some(mut entry) => {
            entry.write(ExitEvent {
                kind: EVENT_EXIT,
                tgid,
                // SAFETY: plain helper call.
                boot_ns: unsafe { bpf_ktime_get_boot_ns() },
            });
            entry.submit(0);
            count(stat::EVENTS_SENT);
        }
        None => count(stat::RINGBUF_FULL),
    }
    0
}

/// TCP states of interest (include/net/tcp_states.h).
const TCP_ESTABLISHED: i32 = 1;
const TCP_CLOSE: i32 = 7;

/// `sock/inet_sock_set_state`: how a reported TCP connect ended. Only sockets the connect
/// hooks put in `PENDING_CONNECTS` (outcomes on, connection reported) produce an event.
#[tracepoint]
pub fn ioc_sock_state(ctx: TracePointContext) -> u32 {
    let Some(offsets) = TASK_OFFSETS.get(0) else {
        return 0;
    };
    if offsets.valid == 0 || offsets.tp_sock_skaddr == 0 {
        return 0;
    }
    let offsets = *offsets;
    // SAFETY: probe reads of the tracepoint record at offsets read from tracefs.
    let Ok(newstate) = (unsafe { ctx.read_at::<i32>(offsets.tp_sock_newstate as usize) }) else {
        return 0;
    };
    if newstate != TCP_ESTABLISHED && newstate != TCP_CLOSE {
        return 0;
    }
    let Ok(sock) = (unsafe { ctx.read_at::<u64>(offsets.tp_sock_skaddr as usize) }) else {
        return 0;
    };
    // SAFETY: read-only lookup of a small value.
    if unsafe { PENDING_CONNECTS.get(&sock) }.is_none() {
        return 0;
    }
    let _ = PENDING_CONNECTS.remove(&sock);
    let src_port = unsafe { ctx.read_at::<u16>(offsets.tp_sock_sport as usize) }.unwrap_or(0);
    let src_addr =
        unsafe { ctx.read_at::<[u8; 16]>(offsets.tp_sock_saddr_v6 as usize) }.unwrap_or([0; 16]);
    match EVENTS.reserve::<OutcomeEvent>(0) {
        Some(mut entry) => {
            entry.write(OutcomeEvent {
                kind: EVENT_OUTCOME,
                established: u8::from(newstate == TCP_ESTABLISHED),
                _pad: [0],
                src_port,
                // SAFETY: plain helper call.
                boot_ns: unsafe { bpf_ktime_get_boot_ns() },
                sock,
                src_addr,
            });
            entry.submit(0);
            count(stat::EVENTS_SENT);
        }
        None => count(stat::RINGBUF_FULL),
    }
    0
}
