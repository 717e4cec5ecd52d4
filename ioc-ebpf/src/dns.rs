//! `cgroup_skb` egress and ingress on the cgroup v2 root: DNS messages on port 53 (UDP
//! and TCP, IPv4 and IPv6) are copied, bounded, to the agent, which parses them. Every
//! other packet costs a few header loads and passes untouched; these programs never drop.

use aya_ebpf::{
    helpers::{
        bpf_get_socket_cookie, bpf_ktime_get_boot_ns,
        generated::{bpf_skb_cgroup_id, bpf_skb_load_bytes},
    },
    macros::cgroup_skb,
    programs::SkBuffContext,
};
use ioc_common::{stat, v4_mapped, DnsEvent, DNS_EGRESS, DNS_INGRESS, DNS_PAYLOAD_LEN, EVENT_DNS};

use crate::maps::{count, DNS_SOCKETS, EVENTS};

const PASS: i32 = 1;
const DNS_PORT: u16 = 53;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

#[cgroup_skb(egress)]
pub fn ioc_dns_egress(ctx: SkBuffContext) -> i32 {
    capture(&ctx, DNS_EGRESS);
    PASS
}

#[cgroup_skb(ingress)]
pub fn ioc_dns_ingress(ctx: SkBuffContext) -> i32 {
    capture(&ctx, DNS_INGRESS);
    PASS
}

/// Where the headers are: (L4 protocol, L4 offset, source, destination).
#[inline(always)]
fn network_header(ctx: &SkBuffContext) -> Option<(u8, usize, [u8; 16], [u8; 16])> {
    let first: u8 = ctx.load(0).ok()?;
    match first >> 4 {
        4 => {
            let ihl = usize::from(first & 0x0f) * 4;
            let protocol: u8 = ctx.load(9).ok()?;
            let src: [u8; 4] = ctx.load(12).ok()?;
            let dst: [u8; 4] = ctx.load(16).ok()?;
            Some((protocol, ihl, v4_mapped(src), v4_mapped(dst)))
        }
        6 => {
            // Extension headers are rare on DNS traffic and not followed.
            let protocol: u8 = ctx.load(6).ok()?;
            let src: [u8; 16] = ctx.load(8).ok()?;
            let dst: [u8; 16] = ctx.load(24).ok()?;
            Some((protocol, 40, src, dst))
        }
        _ => None,
    }
}

#[inline(always)]
fn capture(ctx: &SkBuffContext, direction: u8) {
    let Some((protocol, l4, src_addr, dst_addr)) = network_header(ctx) else {
        return;
    };
    if protocol != IPPROTO_UDP && protocol != IPPROTO_TCP {
        return;
    }
    let (Ok(sport), Ok(dport)) = (ctx.load::<u16>(l4), ctx.load::<u16>(l4 + 2)) else {
        return;
    };
    let (src_port, dst_port) = (u16::from_be(sport), u16::from_be(dport));
    let server_port = if direction == DNS_EGRESS {
        dst_port
    } else {
        src_port
    };
    if server_port != DNS_PORT {
        return;
    }
    let payload_offset = if protocol == IPPROTO_UDP {
        l4 + 8
    } else {
        let Ok(data_offset) = ctx.load::<u8>(l4 + 12) else {
            return;
        };
        // TCP: skip the header and DNS's two-byte length prefix.
        l4 + usize::from(data_offset >> 4) * 4 + 2
    };
    let total = ctx.len() as usize;
    if total <= payload_offset {
        return; // no payload (TCP handshake, ACKs)
    }
    let available = total - payload_offset;

    let Some(mut entry) = EVENTS.reserve::<DnsEvent>(0) else {
        count(stat::RINGBUF_FULL);
        return;
    };
    let event = entry.as_mut_ptr();
    // Copy length in 1..=DNS_PAYLOAD_LEN, in a form the verifier can bound.
    let want = if available > DNS_PAYLOAD_LEN {
        DNS_PAYLOAD_LEN
    } else {
        available
    };
    let len = ((want as u32 - 1) & (DNS_PAYLOAD_LEN as u32 - 1)) + 1;
    // SAFETY: `event` is reserved ring-buffer memory of the right size; the copy is
    // bounded by the payload buffer's length.
    unsafe {
        let copied = bpf_skb_load_bytes(
            ctx.skb.skb as *const _,
            payload_offset as u32,
            (*event).payload.as_mut_ptr().cast(),
            len,
        );
        if copied != 0 {
            entry.discard(0);
            return;
        }
        // The sending process, as the connect/sendmsg hooks recorded it: cgroup_skb
        // programs may not ask for the current task before Linux 6.16.
        let owner = if direction == DNS_EGRESS {
            let cookie = bpf_get_socket_cookie(ctx.skb.skb.cast());
            DNS_SOCKETS.get(&cookie).copied()
        } else {
            None
        };
        (*event).kind = EVENT_DNS;
        (*event).payload_len = len;
        (*event).boot_ns = bpf_ktime_get_boot_ns();
        (*event).cgroup_id = if direction == DNS_EGRESS {
            bpf_skb_cgroup_id(ctx.skb.skb)
        } else {
            0
        };
        let tgid = owner.map_or(0, |o| o.tgid);
        (*event).pid = tgid;
        (*event).tgid = tgid;
        (*event).uid = ctx.get_socket_uid();
        (*event)._pad = 0;
        (*event).direction = direction;
        (*event).protocol = protocol;
        (*event).truncated = u8::from(available > DNS_PAYLOAD_LEN);
        (*event)._pad2 = 0;
        (*event).src_port = src_port;
        (*event).dst_port = dst_port;
        (*event).src_addr = src_addr;
        (*event).dst_addr = dst_addr;
        (*event).comm = owner.map_or([0u8; 16], |o| o.comm);
    }
    entry.submit(0);
    count(stat::EVENTS_SENT);
}
