//! iocmon's kernel programs. One module per hook family; every map lives in `maps`.
#![no_std]
#![no_main]

mod dns;
mod maps;
mod process;
mod sock_addr;

#[cfg(all(not(test), target_arch = "bpf"))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects programs that could reach this; it exists to satisfy no_std.
    loop {}
}

/// The kernel refuses GPL-only helpers to programs without a GPL-compatible licence.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
