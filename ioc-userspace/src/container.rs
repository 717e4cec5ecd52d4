//! Container ids from cgroups. The kernel reports a cgroup id (the inode number of the
//! cgroup's directory on cgroup v2); the directory's path carries the container id in
//! every common layout: docker (`docker-<id>.scope`, `/docker/<id>`), containerd
//! (`cri-containerd-<id>.scope`), CRI-O (`crio-<id>.scope`), podman (`libpod-<id>.scope`)
//! and kubernetes (`kubepods/.../pod<uid>/<id>`).

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// How many cgroup directories one scan visits at most.
const SCAN_LIMIT: usize = 100_000;
/// Scans for unknown ids happen at most this often.
const RESCAN_INTERVAL: Duration = Duration::from_millis(500);

/// The container id in a cgroup path: the deepest component that holds a run of exactly
/// 64 hex digits (conmon's `libpod-conmon-<id>` scopes are not the container itself).
pub fn container_id_from_path(path: &str) -> Option<String> {
    path.rsplit('/')
        .filter(|component| !component.contains("conmon"))
        .find_map(hex64_in)
}

fn hex64_in(component: &str) -> Option<String> {
    let bytes = component.as_bytes();
    let mut run_start = None;
    for (i, b) in bytes.iter().chain(std::iter::once(&b'/')).enumerate() {
        if b.is_ascii_hexdigit() {
            run_start.get_or_insert(i);
        } else if let Some(start) = run_start.take() {
            if i - start == 64 {
                return Some(component[start..i].to_ascii_lowercase());
            }
        }
    }
    None
}

/// Maps cgroup ids to container ids, scanning the cgroup v2 tree on a miss.
#[derive(Debug)]
pub struct ContainerResolver {
    root: PathBuf,
    paths: HashMap<u64, String>,
    last_scan: Option<Instant>,
}

impl ContainerResolver {
    pub fn new(cgroup_root: &Path) -> Self {
        Self {
            root: cgroup_root.to_path_buf(),
            paths: HashMap::new(),
            last_scan: None,
        }
    }

    /// The container id for `cgroup_id`, if its cgroup path has one.
    pub fn container_id(&mut self, cgroup_id: u64) -> Option<String> {
        if cgroup_id <= 1 {
            return None; // the root cgroup
        }
        if !self.paths.contains_key(&cgroup_id) {
            let due = self
                .last_scan
                .is_none_or(|at| at.elapsed() >= RESCAN_INTERVAL);
            if due {
                self.scan();
            }
        }
        self.paths
            .get(&cgroup_id)
            .and_then(|p| container_id_from_path(p))
    }

    /// The cgroup path (relative to the root) of `cgroup_id`, when known.
    pub fn path(&self, cgroup_id: u64) -> Option<&str> {
        self.paths.get(&cgroup_id).map(String::as_str)
    }

    fn scan(&mut self) {
        self.last_scan = Some(Instant::now());
        self.paths.clear();
        let mut pending = vec![self.root.clone()];
        let mut visited = 0;
        while let Some(dir) = pending.pop() {
            visited += 1;
            if visited > SCAN_LIMIT {
                log::warn!("cgroup scan stopped after {SCAN_LIMIT} directories");
                break;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                let Ok(meta) = entry.metadata() else { continue };
                if !meta.is_dir() {
                    continue;
                }
                let path = entry.path();
                if let Ok(relative) = path.strip_prefix(&self.root) {
                    self.paths
                        .insert(meta.ino(), format!("/{}", relative.to_string_lossy()));
                }
                pending.push(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f3b2a1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a";

    #[test]
    fn every_common_layout() {
        for path in [
            format!("/system.slice/docker-{ID}.scope"),
            format!("/docker/{ID}"),
            format!("/system.slice/containerd.service/cri-containerd-{ID}.scope"),
            format!("/kubepods.slice/kubepods-burstable.slice/crio-{ID}.scope"),
            format!("/machine.slice/libpod-{ID}.scope/container"),
            format!("/kubepods/burstable/pod0b1c2d3e-aaaa-bbbb-cccc-000000000000/{ID}"),
        ] {
            assert_eq!(container_id_from_path(&path).as_deref(), Some(ID), "{path}");
        }
    }

    #[test]
    fn not_containers() {
        assert_eq!(
            container_id_from_path("/user.slice/user-0.slice/session-1.scope"),
            None
        );
        assert_eq!(container_id_from_path("/"), None);
        // 65 hex digits is not an id; neither is conmon's scope.
        assert_eq!(container_id_from_path(&format!("/docker/{ID}a")), None);
        assert_eq!(
            container_id_from_path(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            None
        );
    }

    #[test]
    fn resolves_a_real_cgroup_by_inode() {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root = crate::kernel::cgroup::find_cgroup2_root(&mountinfo)
            .expect("a cgroup v2 hierarchy is mounted");
        let root = root.as_path();
        let dir = root.join(format!("iocmon-unit-docker-{ID}.scope"));
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).unwrap();
        let ino = std::fs::metadata(&dir).unwrap().ino();
        let mut resolver = ContainerResolver::new(root);
        let found = resolver.container_id(ino);
        std::fs::remove_dir(&dir).unwrap();
        assert_eq!(found.as_deref(), Some(ID));
        assert_eq!(resolver.container_id(1), None);
    }
}
