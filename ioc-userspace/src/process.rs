//! Who made a connection: file name and user for a process id.
//!
//! The kernel event carries pid, uid and comm. The executable comes from `/proc` while the
//! process lives; a process that is already gone (or whose pid now names another program)
//! falls back to its comm.

use std::{collections::HashMap, path::PathBuf};

use nix::unistd::{Uid, User};

/// What the records say about the initiating process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessContext {
    /// Executable file name; the comm when the executable is unknown.
    pub file_name: String,
    /// Full executable path, when known.
    pub folder_path: Option<String>,
    /// User name of the uid; `None` when the uid has no name.
    pub account_name: Option<String>,
}

/// Resolves process context, caching user names (they rarely change and the lookup reads
/// /etc/passwd or NSS).
#[derive(Debug, Default)]
pub struct ProcessResolver {
    users: HashMap<u32, Option<String>>,
    proc_root: PathBuf,
}

impl ProcessResolver {
    pub fn new() -> Self {
        Self::with_proc_root(PathBuf::from("/proc"))
    }

    pub fn with_proc_root(proc_root: PathBuf) -> Self {
        Self {
            users: HashMap::new(),
            proc_root,
        }
    }

    pub fn context(&mut self, tgid: u32, uid: u32, comm: &str) -> ProcessContext {
        let exe = self.executable(tgid, comm);
        let file_name = exe
            .as_deref()
            .and_then(|path| path.rsplit('/').next())
            .filter(|name| !name.is_empty())
            .map_or_else(|| comm.to_string(), str::to_string);
        ProcessContext {
            file_name,
            folder_path: exe,
            account_name: self.user_name(uid),
        }
    }

    pub fn user_name(&mut self, uid: u32) -> Option<String> {
        self.users
            .entry(uid)
            .or_insert_with(|| {
                User::from_uid(Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|user| user.name)
            })
            .clone()
    }

    /// The executable of `tgid`, if that process still runs under the same comm.
    fn executable(&self, tgid: u32, comm: &str) -> Option<String> {
        let dir = self.proc_root.join(tgid.to_string());
        let current_comm = std::fs::read(dir.join("comm")).ok()?;
        if crate::text::from_nul_padded(&current_comm).trim_end_matches('\n') != comm {
            return None;
        }
        let exe = std::fs::read_link(dir.join("exe")).ok()?;
        let exe = exe.to_string_lossy();
        // A replaced binary reads "/path (deleted)"; the path is still what ran.
        Some(exe.strip_suffix(" (deleted)").unwrap_or(&exe).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_resolves_to_its_executable() {
        let me = std::process::id();
        let comm = std::fs::read_to_string(format!("/proc/{me}/comm")).unwrap();
        let mut resolver = ProcessResolver::new();
        let ctx = resolver.context(me, 0, comm.trim_end());
        let exe = std::env::current_exe().unwrap();
        assert_eq!(ctx.folder_path.as_deref(), exe.to_str());
        assert_eq!(ctx.account_name.as_deref(), Some("root"));
    }

    #[test]
    fn gone_or_reused_pid_falls_back_to_comm() {
        let mut resolver = ProcessResolver::new();
        let ctx = resolver.context(std::process::id(), u32::MAX - 7, "not-our-comm");
        assert_eq!(ctx.file_name, "not-our-comm");
        assert_eq!(ctx.folder_path, None);
        assert_eq!(ctx.account_name, None);
    }
}
