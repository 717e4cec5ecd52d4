//! Service mode's pinned objects in bpffs.
//!
//! ```text
//! /sys/fs/bpf/iocmon/                  the pin directory (locked by the running agent)
//!   v1-3f2a9c0d1e2b4a5c-7/             one generation: layout version, build tag, sequence
//!     map_IOC_ENDPOINTS ... map_EVENTS every map
//!     prog_ioc_connect4 ...            every program
//!     link_ioc_connect4 ...            every link: while pinned, the program stays attached
//! ```
//!
//! bpffs refuses names with dots and cannot rename directories, so a generation is built
//! under its final name; one left incomplete by an agent that died while starting fails
//! adoption and is replaced.
//!
//! A generation of the same layout and build is adopted as it is. Anything else is
//! replaced: the new generation is attached first, then the old one's links are removed,
//! so there is no moment without programs attached.

use std::{
    fs::File,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
};

use anyhow::{anyhow, Context as _, Result};
use aya::programs::links::{FdLink, LinkError, PinnedLink};
use ioc_common::LAYOUT_VERSION;

use super::{AttachedProgram, OBJECT};

/// `statfs` magic of bpffs.
const BPF_FS_MAGIC: u64 = 0xcafe_4a11;
/// Where bpffs is normally mounted.
const BPFFS_ROOT: &str = "/sys/fs/bpf";

pub fn map_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("map_{name}"))
}

pub fn program_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("prog_{name}"))
}

pub fn link_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("link_{name}"))
}

/// Identifies this build's kernel object: any change to the programs makes a new tag.
pub fn object_tag() -> String {
    let digest = sha1_smol::Sha1::from(OBJECT).digest().bytes();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The name a generation of this build gets (before its sequence number).
fn own_prefix() -> String {
    format!("v{LAYOUT_VERSION}-{}", object_tag())
}

/// Pins `link` as `dir/link_NAME`. Needs a BPF link (Linux >= 5.7 for cgroup programs;
/// tracepoint links, from 5.15, are only pinned where the kernel makes them).
pub(super) fn pin_link<L>(link: L, dir: &Path, name: &str) -> Result<()>
where
    FdLink: TryFrom<L, Error = LinkError>,
{
    let link = FdLink::try_from(link).map_err(|_| {
        anyhow!(
            "cannot pin the link of {name}: this kernel did not attach it through a BPF link \
             (service mode needs Linux >= 5.7); run without --pin"
        )
    })?;
    let path = link_path(dir, name);
    link.pin(&path)
        .with_context(|| format!("pinning link {}", path.display()))?;
    Ok(())
}

/// The programs attached through the links pinned in `dir`.
pub(super) fn pinned_programs(dir: &Path, names: &[&'static str]) -> Result<Vec<AttachedProgram>> {
    names
        .iter()
        .map(|name| {
            let path = link_path(dir, name);
            let link = PinnedLink::from_pin(&path)
                .with_context(|| format!("opening pinned link {}", path.display()))?;
            let info = FdLink::from(link).info()?;
            Ok(AttachedProgram {
                name,
                id: info.program_id(),
            })
        })
        .collect()
}

/// One pinned generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generation {
    pub path: PathBuf,
    /// `v1-3f2a9c0d1e2b4a5c`: layout version and build tag (bpffs allows no dots).
    pub prefix: String,
    pub sequence: u64,
}

impl Generation {
    fn parse(path: PathBuf) -> Option<Self> {
        let name = path.file_name()?.to_str()?;
        let (prefix, sequence) = name.rsplit_once('-')?;
        let sequence = sequence.parse().ok()?;
        prefix.starts_with('v').then(|| Self {
            prefix: prefix.to_string(),
            sequence,
            path: path.clone(),
        })
    }

    /// Whether this generation was pinned by this very build (and can be adopted).
    pub fn is_own(&self) -> bool {
        self.prefix == own_prefix()
    }

    /// Whether its maps and events have this build's layout.
    pub fn same_layout(&self) -> bool {
        self.prefix
            .strip_prefix('v')
            .and_then(|rest| rest.split_once('-'))
            .is_some_and(|(version, _)| version == LAYOUT_VERSION.to_string())
    }
}

/// The pin directory, locked against a second agent for as long as this value lives.
pub struct PinDir {
    path: PathBuf,
    _lock: File,
}

impl PinDir {
    /// Creates (and if need be mounts bpffs for) `path` and takes its lock.
    pub fn open(path: &Path) -> Result<Self> {
        ensure_bpffs(path)?;
        std::fs::create_dir_all(path)
            .with_context(|| format!("creating pin directory {}", path.display()))?;
        let lock = lock(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every complete generation, oldest first.
    pub fn generations(&self) -> Result<Vec<Generation>> {
        generations(&self.path)
    }

    /// An empty directory for a new generation of this build.
    pub fn create_generation(&self) -> Result<Generation> {
        let next = self
            .generations()?
            .iter()
            .map(|g| g.sequence + 1)
            .max()
            .unwrap_or(1);
        let path = self.path.join(format!("{}-{next}", own_prefix()));
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Generation::parse(path).ok_or_else(|| anyhow!("unparsable generation name"))
    }
}

fn generations(path: &Path) -> Result<Vec<Generation>> {
    let mut found: Vec<Generation> = std::fs::read_dir(path)
        .with_context(|| format!("listing {}", path.display()))?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| Generation::parse(entry.path()))
        .collect();
    found.sort_by_key(|g| g.sequence);
    Ok(found)
}

/// The newest generation in `path`, if the directory exists.
pub fn newest_generation(path: &Path) -> Result<Option<Generation>> {
    if !path.exists() {
        return Ok(None);
    }
    Ok(generations(path)?.pop())
}

/// Removes one generation: links first (the programs detach), then programs and maps,
/// then the directory. Returns how many objects were removed.
pub fn remove_generation(dir: &Path) -> Result<usize> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    let rank = |path: &PathBuf| {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("link_") {
            0
        } else if name.starts_with("prog_") {
            1
        } else {
            2
        }
    };
    names.sort_by_key(rank);
    for path in &names {
        std::fs::remove_file(path).with_context(|| format!("unpinning {}", path.display()))?;
    }
    std::fs::remove_dir(dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(names.len())
}

/// Removes the links of a generation: its programs detach (and unload once nothing
/// else holds them).
pub fn remove_links(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("link_"))
        {
            std::fs::remove_file(&path).with_context(|| format!("unpinning {}", path.display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// What `iocmon unpin` removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnpinReport {
    pub generations: usize,
    pub objects: usize,
}

/// Removes every pinned object under `path` and the directory itself. Refuses while an
/// agent holds the directory.
pub fn unpin_all(path: &Path) -> Result<UnpinReport> {
    let mut report = UnpinReport::default();
    if !path.exists() {
        return Ok(report);
    }
    let _lock = lock(path)?;
    let entries: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("listing {}", path.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    for entry in entries {
        if entry.is_dir() {
            report.objects += remove_generation(&entry)?;
            report.generations += 1;
        } else {
            std::fs::remove_file(&entry)
                .with_context(|| format!("unpinning {}", entry.display()))?;
            report.objects += 1;
        }
    }
    std::fs::remove_dir(path).with_context(|| format!("removing {}", path.display()))?;
    Ok(report)
}

fn lock(path: &Path) -> Result<File> {
    let dir = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(anyhow!(
                "another iocmon agent is using {} (stop it first)",
                path.display()
            ));
        }
        return Err(err).with_context(|| format!("locking {}", path.display()));
    }
    Ok(dir)
}

fn is_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        // The field's type differs between targets and C libraries (i64 on x86_64 glibc,
        // u64 on musl, 32 bits on armv7); the magic fits all of them.
        .map(|fs| {
            #[allow(clippy::unnecessary_cast)]
            let magic = fs.filesystem_type().0 as u64;
            magic == BPF_FS_MAGIC
        })
        .unwrap_or(false)
}

/// Makes sure `path` (or the directory it will be created in) is on bpffs, mounting
/// bpffs on /sys/fs/bpf when that is where it belongs and nothing is mounted there.
fn ensure_bpffs(path: &Path) -> Result<()> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    if is_bpffs(existing) {
        return Ok(());
    }
    let root = Path::new(BPFFS_ROOT);
    if path.starts_with(root) && root.is_dir() && !is_bpffs(root) {
        nix::mount::mount(
            Some("bpf"),
            root,
            Some("bpf"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .context("mounting bpffs on /sys/fs/bpf")?;
        log::info!("mounted bpffs on {BPFFS_ROOT}");
        return Ok(());
    }
    Err(anyhow!(
        "{} is not on a bpffs mount (mount one: mount -t bpf bpf {BPFFS_ROOT})",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_names_carry_layout_tag_and_sequence() {
        let own = Generation::parse(PathBuf::from(format!("/p/{}-12", own_prefix()))).unwrap();
        assert!(own.is_own() && own.same_layout());
        assert_eq!(own.sequence, 12);
        let other = Generation::parse(PathBuf::from(format!(
            "/p/v{LAYOUT_VERSION}-0000000000000000-3"
        )))
        .unwrap();
        assert!(!other.is_own() && other.same_layout());
        let old = Generation::parse(PathBuf::from("/p/v0-0000000000000000-3")).unwrap();
        assert!(!old.same_layout());
        assert_eq!(Generation::parse(PathBuf::from("/p/other")), None);
        assert_eq!(Generation::parse(PathBuf::from("/p/v1-x-y")), None);
    }
}
