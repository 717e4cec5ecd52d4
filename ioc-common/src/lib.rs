//! Types shared by iocmon's kernel programs and its userspace agent.
//!
//! Everything here is `#[repr(C)]` with explicit padding, so the kernel and the agent agree
//! on every byte and `aya::Pod` (behind the `user` feature) is sound. Addresses are always
//! 16-byte IPv6; IPv4 travels as v4-mapped `::ffff:a.b.c.d`, so one key type serves both.
#![no_std]

/// Length of `task->comm`, including its NUL.
pub const COMM_LEN: usize = 16;

/// Prefix of an IPv4-mapped IPv6 address (`::ffff:0:0/96`).
pub const V4_MAPPED_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/// Maps `a.b.c.d` (as its four octets) to `::ffff:a.b.c.d`.
pub const fn v4_mapped(octets: [u8; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[10] = 0xff;
    out[11] = 0xff;
    out[12] = octets[0];
    out[13] = octets[1];
    out[14] = octets[2];
    out[15] = octets[3];
    out
}

// ---------------------------------------------------------------------------------------
// Map names: the agent looks the maps up by these, so they live in one place.
// ---------------------------------------------------------------------------------------

pub const MAP_IOC_ENDPOINTS: &str = "IOC_ENDPOINTS";
pub const MAP_IOC_NETS: &str = "IOC_NETS";
pub const MAP_SETTINGS: &str = "SETTINGS";
pub const MAP_WATCHED_COMMS: &str = "WATCHED_COMMS";
pub const MAP_EVENTS: &str = "EVENTS";
pub const MAP_STATS: &str = "STATS";
pub const MAP_TASK_OFFSETS: &str = "TASK_OFFSETS";
pub const MAP_PENDING_CONNECTS: &str = "PENDING_CONNECTS";
pub const MAP_DNS_SOCKETS: &str = "DNS_SOCKETS";

/// Every map, in the order service mode pins them.
pub const MAP_NAMES: [&str; 9] = [
    MAP_IOC_ENDPOINTS,
    MAP_IOC_NETS,
    MAP_SETTINGS,
    MAP_WATCHED_COMMS,
    MAP_TASK_OFFSETS,
    MAP_PENDING_CONNECTS,
    MAP_DNS_SOCKETS,
    MAP_STATS,
    MAP_EVENTS,
];

/// Version of the layout of every map key, map value and event above and below. Service
/// mode names its pinned objects with it, so an agent never reads maps or events written
/// under another layout. Bump it with any such change.
pub const LAYOUT_VERSION: u32 = 1;

/// Program (function) names. The kernel keeps 15 characters of a program name, so these
/// stay short enough to be recognisable in `bpftool prog show`.
pub const PROG_CONNECT4: &str = "ioc_connect4";
pub const PROG_CONNECT6: &str = "ioc_connect6";
pub const PROG_SENDMSG4: &str = "ioc_sendmsg4";
pub const PROG_SENDMSG6: &str = "ioc_sendmsg6";
pub const PROG_EXEC: &str = "ioc_exec";
pub const PROG_EXIT: &str = "ioc_exit";
pub const PROG_DNS_EGRESS: &str = "ioc_dns_egress";
pub const PROG_DNS_INGRESS: &str = "ioc_dns_ingress";
pub const PROG_SOCK_STATE: &str = "ioc_sock_state";

// ---------------------------------------------------------------------------------------
// Indicator maps
// ---------------------------------------------------------------------------------------

/// Key of `IOC_ENDPOINTS`: an exact `ip:port` indicator.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EndpointKey {
    pub addr: [u8; 16],
    /// Host byte order.
    pub port: u16,
    pub _pad: u16,
}

impl EndpointKey {
    pub const fn new(addr: [u8; 16], port: u16) -> Self {
        Self {
            addr,
            port,
            _pad: 0,
        }
    }
}

/// Value of both indicator maps.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IocValue {
    /// The agent's id for the indicator; its metadata stays in userspace.
    pub id: u32,
    /// `IOC_FLAG_*`.
    pub flags: u32,
}

/// This `IOC_NETS` entry is an address a domain indicator resolved to (it expires with
/// the answer's TTL).
pub const IOC_FLAG_RESOLVED: u32 = 1 << 2;
/// Refuse the connection when enforcement is on for its protocol (`SETTING_ENFORCE_*`).
pub const IOC_FLAG_BLOCK: u32 = 1 << 0;
/// This `IOC_NETS` entry is the address of an `ip:port` indicator, a weaker match than
/// an address or CIDR indicator.
pub const IOC_FLAG_FROM_ENDPOINT: u32 = 1 << 1;

// ---------------------------------------------------------------------------------------
// Settings and watched process names
// ---------------------------------------------------------------------------------------

/// Index of the flag word in the `SETTINGS` array.
pub const SETTINGS_FLAGS: u32 = 0;
/// Number of entries in `SETTINGS`.
pub const SETTINGS_LEN: u32 = 1;
/// Report every connection, not only hits and watched processes.
pub const SETTING_ALL_CONNECTIONS: u32 = 1 << 0;
/// Refuse TCP connects to indicators flagged `IOC_FLAG_BLOCK` (block mode).
pub const SETTING_ENFORCE_TCP: u32 = 1 << 1;
/// Report how reported TCP connects end (established or failed).
pub const SETTING_OUTCOMES: u32 = 1 << 2;
/// Refuse UDP connects and sends to indicators flagged `IOC_FLAG_BLOCK` (block mode).
pub const SETTING_ENFORCE_UDP: u32 = 1 << 3;

/// Key of `WATCHED_COMMS`: a process name, NUL-padded to `COMM_LEN`, exactly as
/// `bpf_get_current_comm` returns it.
pub type CommKey = [u8; COMM_LEN];

/// Builds the `WATCHED_COMMS` key for `name` (truncated to 15 bytes, like the kernel does).
pub fn comm_key(name: &[u8]) -> CommKey {
    let mut key = [0u8; COMM_LEN];
    let len = if name.len() < COMM_LEN - 1 {
        name.len()
    } else {
        COMM_LEN - 1
    };
    let mut i = 0;
    while i < len {
        key[i] = name[i];
        i += 1;
    }
    key
}

// ---------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------

/// Indexes of the per-CPU `STATS` array.
pub mod stat {
    /// Socket-address hook invocations (connect and sendmsg).
    pub const HOOK_CALLS: u32 = 0;
    /// Destinations that matched an indicator.
    pub const IOC_HITS: u32 = 1;
    /// Events written to the ring buffer.
    pub const EVENTS_SENT: u32 = 2;
    /// Events lost because the ring buffer was full.
    pub const RINGBUF_FULL: u32 = 3;
    /// Connections refused.
    pub const BLOCKED: u32 = 4;
    /// Number of counters.
    pub const COUNT: u32 = 5;
    /// Display names, in index order.
    pub const NAMES: [&str; COUNT as usize] = [
        "hook_calls",
        "ioc_hits",
        "events_sent",
        "ringbuf_full",
        "blocked",
    ];
}

// ---------------------------------------------------------------------------------------
// Ring buffer records
// ---------------------------------------------------------------------------------------

/// Every ring buffer record starts with its kind as a `u32`.
pub const EVENT_CONNECT: u32 = 1;
pub const EVENT_EXEC: u32 = 2;
pub const EVENT_EXIT: u32 = 3;
pub const EVENT_DNS: u32 = 4;
pub const EVENT_OUTCOME: u32 = 5;

/// Which hook saw the connection.
pub const HOOK_CONNECT4: u8 = 1;
pub const HOOK_CONNECT6: u8 = 2;
pub const HOOK_SENDMSG4: u8 = 3;
pub const HOOK_SENDMSG6: u8 = 4;

/// How the destination matched.
pub const MATCH_NONE: u8 = 0;
/// `ip:port` indicator, exact.
pub const MATCH_ENDPOINT: u8 = 1;
/// IP or CIDR indicator.
pub const MATCH_ADDRESS: u8 = 2;
/// The address of an `ip:port` indicator, on another port.
pub const MATCH_ENDPOINT_ADDRESS: u8 = 3;
/// An address a domain indicator resolved to.
pub const MATCH_RESOLVED: u8 = 4;

pub const VERDICT_ALLOWED: u8 = 0;
pub const VERDICT_BLOCKED: u8 = 1;

/// Why the kernel reported the connection (bit set).
pub const REASON_IOC: u8 = 1 << 0;
pub const REASON_ALL: u8 = 1 << 1;
pub const REASON_WATCHED: u8 = 1 << 2;

/// A connect or sendmsg seen by a socket-address hook.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ConnectEvent {
    /// `EVENT_CONNECT`.
    pub kind: u32,
    /// `HOOK_*`.
    pub hook: u8,
    /// IP protocol number (6 TCP, 17 UDP).
    pub protocol: u8,
    /// `VERDICT_*`.
    pub verdict: u8,
    /// `MATCH_*`.
    pub match_kind: u8,
    /// `bpf_ktime_get_boot_ns`: nanoseconds since boot, suspend included.
    pub boot_ns: u64,
    pub cgroup_id: u64,
    /// Thread id.
    pub pid: u32,
    /// Process id (thread-group id).
    pub tgid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Indicator id when `match_kind != MATCH_NONE`.
    pub ioc_id: u32,
    /// Socket family (`AF_INET` 2, `AF_INET6` 10).
    pub family: u16,
    /// Host byte order.
    pub dst_port: u16,
    /// Host byte order; 0 when the socket is not bound yet.
    pub src_port: u16,
    /// `REASON_*` bits.
    pub reason: u8,
    pub _pad: u8,
    pub _pad2: u32,
    pub dst_addr: [u8; 16],
    /// All zero when unknown.
    pub src_addr: [u8; 16],
    pub comm: [u8; COMM_LEN],
    /// The socket's kernel address: pairs a TCP connect with its outcome (0 when outcomes
    /// are not tracked).
    pub sock: u64,
}

/// Who owns a socket that sends to port 53, recorded by the connect/sendmsg hooks (which
/// run in the sending task) for the `cgroup_skb` DNS capture, which may not ask for the
/// current task before Linux 6.16.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SocketOwner {
    pub tgid: u32,
    pub _pad: u32,
    pub comm: [u8; COMM_LEN],
}

/// How a reported TCP connect ended (`sock/inet_sock_set_state`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OutcomeEvent {
    /// `EVENT_OUTCOME`.
    pub kind: u32,
    /// 1: established; 0: failed (closed from SYN_SENT).
    pub established: u8,
    pub _pad: [u8; 1],
    /// Host byte order.
    pub src_port: u16,
    pub boot_ns: u64,
    /// `ConnectEvent::sock` of the connect.
    pub sock: u64,
    /// v4-mapped for IPv4.
    pub src_addr: [u8; 16],
}

// ---------------------------------------------------------------------------------------
// Process lifecycle
// ---------------------------------------------------------------------------------------

/// Bytes of the argument area copied at exec (NUL-separated argv). One less than a power
/// of two, so the verifier can bound the copy with a mask.
pub const ARGS_CAPACITY: usize = 4095;
/// Size of the `args` buffer (the capacity plus room for a final NUL).
pub const ARGS_LEN: usize = ARGS_CAPACITY + 1;
/// Bytes of the exec'd file name (as passed to execve).
pub const FILENAME_LEN: usize = 256;

/// Offsets into kernel structures, read from the running kernel's BTF by the agent and
/// stored in `TASK_OFFSETS[0]` before the exec program is attached.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskOffsets {
    /// Non-zero once the agent filled the struct.
    pub valid: u32,
    pub task_mm: u32,
    pub task_real_parent: u32,
    pub task_tgid: u32,
    pub task_start_boottime: u32,
    pub task_cred: u32,
    pub cred_euid: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    /// Offset of the `__data_loc char[] filename` field in the sched_process_exec
    /// tracepoint record (from tracefs).
    pub tp_exec_filename: u32,
    /// Offsets in the sock/inet_sock_set_state record (from tracefs).
    pub tp_sock_skaddr: u32,
    pub tp_sock_newstate: u32,
    pub tp_sock_sport: u32,
    pub tp_sock_saddr_v6: u32,
}

/// A process image was replaced (`sched/sched_process_exec`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecEvent {
    /// `EVENT_EXEC`.
    pub kind: u32,
    /// Bytes of `args` that hold the argument area (NUL-separated).
    pub args_len: u32,
    pub boot_ns: u64,
    /// The task's start time, nanoseconds since boot (suspend included).
    pub start_boot_ns: u64,
    pub cgroup_id: u64,
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    /// The argument area was longer than `ARGS_CAPACITY`.
    pub args_truncated: u8,
    pub _pad: [u8; 7],
    pub comm: [u8; COMM_LEN],
    pub filename: [u8; FILENAME_LEN],
    pub args: [u8; ARGS_LEN],
}

/// A process (thread-group leader) exited (`sched/sched_process_exit`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitEvent {
    /// `EVENT_EXIT`.
    pub kind: u32,
    pub tgid: u32,
    pub boot_ns: u64,
}

// ---------------------------------------------------------------------------------------
// DNS
// ---------------------------------------------------------------------------------------

/// Bytes of a DNS message copied to the agent (a power of two: the verifier bounds the
/// copy with a mask). Longer messages are cut and flagged.
pub const DNS_PAYLOAD_LEN: usize = 1024;
pub const DNS_EGRESS: u8 = 1;
pub const DNS_INGRESS: u8 = 2;

/// A DNS message on port 53 (`cgroup_skb` egress: queries; ingress: answers).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DnsEvent {
    /// `EVENT_DNS`.
    pub kind: u32,
    /// Bytes of `payload` holding the DNS message (TCP's length prefix removed).
    pub payload_len: u32,
    pub boot_ns: u64,
    pub cgroup_id: u64,
    /// The sending task for egress; 0 for ingress (softirq context).
    pub pid: u32,
    pub tgid: u32,
    /// Owner of the socket.
    pub uid: u32,
    pub _pad: u32,
    /// `DNS_EGRESS` or `DNS_INGRESS`.
    pub direction: u8,
    /// 6 TCP, 17 UDP.
    pub protocol: u8,
    /// The message was longer than `DNS_PAYLOAD_LEN`.
    pub truncated: u8,
    pub _pad2: u8,
    /// Host byte order.
    pub src_port: u16,
    pub dst_port: u16,
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    pub comm: [u8; COMM_LEN],
    pub payload: [u8; DNS_PAYLOAD_LEN],
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain-old-data with explicit padding; every bit pattern is valid.
    unsafe impl aya::Pod for super::EndpointKey {}
    unsafe impl aya::Pod for super::IocValue {}
    unsafe impl aya::Pod for super::ConnectEvent {}
    unsafe impl aya::Pod for super::TaskOffsets {}
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(core::mem::size_of::<EndpointKey>(), 20);
        assert_eq!(core::mem::size_of::<IocValue>(), 8);
        // 4 + 4 + 8 + 8 + 5*4 + 3*2 + 2 + 4 + 16 + 16 + 16
        assert_eq!(core::mem::size_of::<ConnectEvent>(), 112);
        assert_eq!(core::mem::size_of::<OutcomeEvent>(), 40);
        assert_eq!(core::mem::size_of::<TaskOffsets>(), 56);
        // 4+4+8+8+8 + 6*4 + 1+7 + 16 + 256 + 4096
        assert_eq!(core::mem::size_of::<ExecEvent>(), 4432);
        assert_eq!(core::mem::size_of::<ExitEvent>(), 16);
        // 4+4+8+8 + 4*4 + 4 + 2+2 + 16+16+16 + 1024
        assert_eq!(core::mem::size_of::<DnsEvent>(), 1120);
        assert!((ARGS_CAPACITY + 1).is_power_of_two());
    }

    #[test]
    fn comm_key_pads_and_truncates() {
        assert_eq!(&comm_key(b"nc")[..3], b"nc\0");
        let long = comm_key(b"a-very-long-process-name");
        assert_eq!(&long[..15], b"a-very-long-pro");
        assert_eq!(long[15], 0);
    }

    #[test]
    fn v4_mapped_form() {
        let a = v4_mapped([127, 0, 0, 2]);
        assert_eq!(&a[..12], &V4_MAPPED_PREFIX);
        assert_eq!(&a[12..], &[127, 0, 0, 2]);
    }
}
