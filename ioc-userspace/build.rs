//! Builds the kernel programs (ioc-ebpf) for the BPF target and leaves the object in
//! OUT_DIR, where `kernel::load` embeds it.

fn main() -> anyhow::Result<()> {
    let ebpf_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../ioc-ebpf");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "ioc-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Nightly,
    )
}
