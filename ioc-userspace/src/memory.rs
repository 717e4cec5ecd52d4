//! How the agent uses the C allocator on glibc builds: indicator sets are a few large
//! allocations (tables of 100,000 entries) that live until the next reload, and a load
//! parses whole files into temporary trees several times their size. glibc's defaults
//! keep such freed memory in the process, so the resident size would stay at the peak of
//! the last load. musl, which the device builds use, has neither knob (not measured
//! there).

/// Called once at start, before the first load: large blocks (a set's tables) always come
/// from their own mappings, which go back to the system when freed. glibc's default moves
/// this threshold up to 32 MiB after the first large free, after which such blocks sit in
/// the heap and fragment it (measured: 18 MB more resident after a reload of 100,000
/// indicators, depending only on the entry size).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc's own parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Hands the memory a load freed back to the system (its parse trees, the old set):
/// without it glibc keeps freed small blocks, 22 MB after a reload of 100,000 plain-list
/// indicators and about 250 MB after loading a 60 MB ThreatFox JSON export.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own heap structures; no pointers are passed.
    unsafe {
        libc::malloc_trim(0);
    }
}
