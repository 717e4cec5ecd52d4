//! Finding (or making) the cgroup v2 hierarchy whose root the programs attach to.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// Where iocmon mounts a cgroup v2 hierarchy on systems that only mount cgroup v1.
pub const FALLBACK_MOUNT: &str = "/run/iocmon/cgroup2";

/// The mount point of the root of a cgroup2 hierarchy in `/proc/self/mountinfo` text.
/// Mounts of a sub-tree (cgroup namespaces) are skipped: attaching there would miss
/// every process outside it.
pub fn find_cgroup2_root(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        let fstype = fs.split_whitespace().next()?;
        let mut fields = mount.split_whitespace();
        let root = fields.nth(3)?;
        let mount_point = fields.next()?;
        (fstype == "cgroup2" && root == "/").then(|| PathBuf::from(unescape_octal(mount_point)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
pub(crate) fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(value as u8);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup v2 root to attach to: `explicit` when given, else the mounted hierarchy,
/// else a hierarchy mounted at [`FALLBACK_MOUNT`] (every process sits in its root).
pub fn cgroup2_root(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    if let Some(root) = find_cgroup2_root(&mountinfo) {
        return Ok(root);
    }
    std::fs::create_dir_all(FALLBACK_MOUNT)
        .with_context(|| format!("creating {FALLBACK_MOUNT}"))?;
    nix::mount::mount(
        Some("cgroup2"),
        FALLBACK_MOUNT,
        Some("cgroup2"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .with_context(|| {
        format!("no cgroup v2 hierarchy is mounted, and mounting one at {FALLBACK_MOUNT} failed")
    })?;
    log::info!("mounted a cgroup v2 hierarchy at {FALLBACK_MOUNT}");
    Ok(PathBuf::from(FALLBACK_MOUNT))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 30 0:23 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,relatime shared:5 - cgroup2 cgroup2 rw
27 25 0:25 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
";

    #[test]
    fn finds_hybrid_unified_mount() {
        assert_eq!(
            find_cgroup2_root(HYBRID),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
    }

    #[test]
    fn skips_namespaced_subtree_and_v1_only() {
        let sub = "40 30 0:26 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(find_cgroup2_root(sub), None);
        let v1 = "27 25 0:25 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(find_cgroup2_root(v1), None);
    }

    #[test]
    fn unescapes_mount_point() {
        let spaced = "41 30 0:27 / /mnt/my\\040cgroup rw - cgroup2 none rw\n";
        assert_eq!(
            find_cgroup2_root(spaced),
            Some(PathBuf::from("/mnt/my cgroup"))
        );
    }
}
