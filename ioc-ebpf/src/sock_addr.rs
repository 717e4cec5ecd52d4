//! `cgroup/connect{4,6}` and `cgroup/sendmsg{4,6}`: every outbound TCP/UDP connect and
//! every unconnected UDP send, with the kernel's own copy of the destination.
//!
//! Fast path (no indicator, not reported): one hash lookup, one LPM lookup, one settings
//! read and, when nothing matched, the process name against `WATCHED_COMMS`. Nothing is
//! written for connections nobody asked about.

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_uid_gid, bpf_get_socket_cookie, bpf_ktime_get_boot_ns,
    },
    macros::cgroup_sock_addr,
    maps::lpm_trie::Key,
    programs::SockAddrContext,
};
use ioc_common::{
    stat, v4_mapped, ConnectEvent, EndpointKey, IocValue, SocketOwner, COMM_LEN, EVENT_CONNECT,
    HOOK_CONNECT4, HOOK_CONNECT6, HOOK_SENDMSG4, HOOK_SENDMSG6, IOC_FLAG_BLOCK,
    IOC_FLAG_FROM_ENDPOINT, IOC_FLAG_RESOLVED, MATCH_ADDRESS, MATCH_ENDPOINT,
    MATCH_ENDPOINT_ADDRESS, MATCH_NONE, MATCH_RESOLVED, REASON_ALL, REASON_IOC, REASON_WATCHED,
    SETTING_ALL_CONNECTIONS, SETTING_ENFORCE_TCP, SETTING_ENFORCE_UDP, SETTING_OUTCOMES,
    VERDICT_ALLOWED, VERDICT_BLOCKED,
};

use crate::maps::{
    count, settings, DNS_SOCKETS, EVENTS, IOC_ENDPOINTS, IOC_NETS, PENDING_CONNECTS, WATCHED_COMMS,
};

/// Return values of cgroup/sock_addr programs.
const ALLOW: i32 = 1;
const REFUSE: i32 = 0;

const AF_INET: u16 = 2;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;
const AF_INET6: u16 = 10;

#[cgroup_sock_addr(connect4)]
pub fn ioc_connect4(ctx: SockAddrContext) -> i32 {
    on_sock_addr(&ctx, HOOK_CONNECT4)
}

#[cgroup_sock_addr(connect6)]
pub fn ioc_connect6(ctx: SockAddrContext) -> i32 {
    on_sock_addr(&ctx, HOOK_CONNECT6)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn ioc_sendmsg4(ctx: SockAddrContext) -> i32 {
    on_sock_addr(&ctx, HOOK_SENDMSG4)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn ioc_sendmsg6(ctx: SockAddrContext) -> i32 {
    on_sock_addr(&ctx, HOOK_SENDMSG6)
}

const DNS_PORT: u16 = 53;

/// Records which process owns a socket sending to port 53, for the DNS capture (see
/// `SocketOwner`).
#[inline(always)]
fn remember_dns_socket(ctx: &SockAddrContext) {
    // SAFETY: the helper takes the program's own context.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) };
    let owner = SocketOwner {
        tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
        _pad: 0,
        comm: bpf_get_current_comm().unwrap_or([0u8; COMM_LEN]),
    };
    let _ = DNS_SOCKETS.insert(&cookie, &owner, 0);
}

#[inline(always)]
fn is_v4(hook: u8) -> bool {
    hook == HOOK_CONNECT4 || hook == HOOK_SENDMSG4
}

/// The indicator the destination matches, if any. Exact `ip:port` wins over addresses.
#[inline(always)]
fn lookup(addr: [u8; 16], port: u16) -> (u8, IocValue) {
    // SAFETY: the value is copied out before the map could change under us.
    if let Some(value) = unsafe { IOC_ENDPOINTS.get(&EndpointKey::new(addr, port)) } {
        return (MATCH_ENDPOINT, *value);
    }
    if let Some(value) = IOC_NETS.get(&Key::new(128, addr)) {
        let kind = if value.flags & IOC_FLAG_FROM_ENDPOINT != 0 {
            MATCH_ENDPOINT_ADDRESS
        } else if value.flags & IOC_FLAG_RESOLVED != 0 {
            MATCH_RESOLVED
        } else {
            MATCH_ADDRESS
        };
        return (kind, *value);
    }
    (MATCH_NONE, IocValue { id: 0, flags: 0 })
}

#[inline(always)]
fn on_sock_addr(ctx: &SockAddrContext, hook: u8) -> i32 {
    count(stat::HOOK_CALLS);
    // SAFETY: the kernel hands every cgroup/sock_addr program a valid context.
    let sa = unsafe { &*ctx.sock_addr };

    let dst_addr = if is_v4(hook) {
        v4_mapped(sa.user_ip4.to_ne_bytes())
    } else {
        // SAFETY: field reads from the live context.
        unsafe { read_ip6(core::ptr::addr_of!(sa.user_ip6)) }
    };
    // `user_port` holds the network-order port in its low 16 bits.
    let dst_port = u16::from_be(sa.user_port as u16);

    if dst_port == DNS_PORT {
        remember_dns_socket(ctx);
    }
    let (match_kind, ioc) = lookup(dst_addr, dst_port);
    let flags = settings();
    let mut reason = 0u8;
    if match_kind != MATCH_NONE {
        reason |= REASON_IOC;
        count(stat::IOC_HITS);
    }
    if flags & SETTING_ALL_CONNECTIONS != 0 {
        reason |= REASON_ALL;
    }
    let comm = bpf_get_current_comm().unwrap_or([0u8; COMM_LEN]);
    // SAFETY: read-only lookup of a small value.
    if unsafe { WATCHED_COMMS.get(&comm) }.is_some() {
        reason |= REASON_WATCHED;
    }
    if reason == 0 {
        return ALLOW;
    }

    let enforced = match sa.protocol {
        IPPROTO_TCP => flags & SETTING_ENFORCE_TCP != 0,
        IPPROTO_UDP => flags & SETTING_ENFORCE_UDP != 0,
        _ => false,
    };
    let blocked = enforced && match_kind != MATCH_NONE && ioc.flags & IOC_FLAG_BLOCK != 0;
    if blocked {
        count(stat::BLOCKED);
    }
    let verdict = if blocked { REFUSE } else { ALLOW };

    let Some(mut entry) = EVENTS.reserve::<ConnectEvent>(0) else {
        count(stat::RINGBUF_FULL);
        return verdict;
    };

    let (src_addr, src_port) = source(sa, hook);
    // TCP connects that go ahead: remember the socket so its outcome can be reported.
    let tcp_connect =
        (hook == HOOK_CONNECT4 || hook == HOOK_CONNECT6) && sa.protocol == IPPROTO_TCP;
    let sock = if flags & SETTING_OUTCOMES != 0 && tcp_connect && !blocked {
        // SAFETY: `sk` is always set for cgroup/sock_addr programs; only its address is used.
        let sock = unsafe { sa.__bindgen_anon_1.sk } as u64;
        let _ = PENDING_CONNECTS.insert(&sock, &1, 0);
        sock
    } else {
        0
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    entry.write(ConnectEvent {
        kind: EVENT_CONNECT,
        hook,
        protocol: sa.protocol as u8,
        verdict: if blocked {
            VERDICT_BLOCKED
        } else {
            VERDICT_ALLOWED
        },
        match_kind,
        // SAFETY: plain helper calls without arguments.
        boot_ns: unsafe { bpf_ktime_get_boot_ns() },
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        pid: pid_tgid as u32,
        tgid: (pid_tgid >> 32) as u32,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        ioc_id: ioc.id,
        family: if is_v4(hook) { AF_INET } else { AF_INET6 },
        dst_port,
        src_port,
        reason,
        _pad: 0,
        _pad2: 0,
        dst_addr,
        src_addr,
        comm,
        sock,
    });
    entry.submit(0);
    count(stat::EVENTS_SENT);
    verdict
}

/// Reads an IPv6 address held as four network-order words in a context or socket.
///
/// The verifier only allows loads at constant offsets from the base pointer, so each word
/// is read on its own with a volatile load (a copy of the array would be lowered into an
/// offset pointer plus a loop, which it rejects).
#[inline(always)]
unsafe fn read_ip6(words: *const [u32; 4]) -> [u8; 16] {
    let base = words as *const u32;
    // SAFETY: the caller passes a pointer to four readable words.
    let w = unsafe {
        [
            core::ptr::read_volatile(base),
            core::ptr::read_volatile(base.add(1)),
            core::ptr::read_volatile(base.add(2)),
            core::ptr::read_volatile(base.add(3)),
        ]
    };
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&w[0].to_ne_bytes());
    out[4..8].copy_from_slice(&w[1].to_ne_bytes());
    out[8..12].copy_from_slice(&w[2].to_ne_bytes());
    out[12..].copy_from_slice(&w[3].to_ne_bytes());
    out
}

/// Source address and port, where the kernel already knows them: the sendmsg control
/// message's source, else the socket's bound address. Zero when unbound.
#[inline(always)]
fn source(sa: &aya_ebpf::bindings::bpf_sock_addr, hook: u8) -> ([u8; 16], u16) {
    // SAFETY: `sk` is always set for cgroup/sock_addr programs.
    let sk = unsafe { sa.__bindgen_anon_1.sk };
    if sk.is_null() {
        return ([0u8; 16], 0);
    }
    // SAFETY: checked non-null; the verifier types it as a full socket.
    let sk = unsafe { &*sk };
    let port = sk.src_port as u16;
    let addr = match hook {
        HOOK_SENDMSG4 if sa.msg_src_ip4 != 0 => v4_mapped(sa.msg_src_ip4.to_ne_bytes()),
        HOOK_SENDMSG6 => {
            // SAFETY: field reads from the live context and socket.
            let msg_src = unsafe { read_ip6(core::ptr::addr_of!(sa.msg_src_ip6)) };
            if msg_src != [0u8; 16] {
                msg_src
            } else {
                unsafe { read_ip6(core::ptr::addr_of!(sk.src_ip6)) }
            }
        }
        HOOK_CONNECT4 | HOOK_SENDMSG4 => v4_mapped(sk.src_ip4.to_ne_bytes()),
        // SAFETY: field reads from the live socket.
        _ => unsafe { read_ip6(core::ptr::addr_of!(sk.src_ip6)) },
    };
    (addr, port)
}
