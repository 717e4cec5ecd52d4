//! Getting the programs running: in service mode, adopting what a previous agent pinned
//! or replacing it without a gap; otherwise loading and attaching afresh.

use std::path::Path;

use anyhow::Result;

use super::{settings_flags, RunOptions};
use crate::{
    kernel::{
        pin::{remove_generation, Generation, PinDir},
        AttachedProgram, Kernel, KernelEntries, MapSizes,
    },
    pipeline::Pipeline,
    reload::Reloader,
};

/// Service mode's pin directory (locked) and the generations found in it at start.
pub(super) struct Pinning {
    dir: PinDir,
    previous: Vec<Generation>,
}

impl Pinning {
    pub(super) fn open(path: &Path) -> Result<Self> {
        let dir = PinDir::open(path)?;
        let previous = dir.generations()?;
        Ok(Self { dir, previous })
    }

    /// Events a previous agent left in its ring buffer name indicators by its ids: take
    /// them over, so the same indicator keeps its id.
    pub(super) fn carry_over_ids(&self, reloader: &mut Reloader) {
        let Some(newest) = self.previous.iter().rev().find(|g| g.same_layout()) else {
            return;
        };
        match Kernel::pinned_entries(&newest.path) {
            Ok(entries) => {
                let seeded = reloader.seed_ids(&entries);
                log::debug!(
                    "took over {seeded} indicator ids from {}",
                    newest.path.display()
                );
            }
            Err(err) => log::warn!("cannot read the previous indicator ids: {err:#}"),
        }
    }

    /// The newest generation, when this very build pinned it and it has room for
    /// `entries` and the requested ring buffer.
    fn adopt(&self, entries: &KernelEntries, ringbuf_bytes: u32) -> Option<Started> {
        let generation = self.previous.last().filter(|g| g.is_own())?;
        match Kernel::adopt(&generation.path) {
            Ok((kernel, attached)) if fits(&kernel, entries, ringbuf_bytes) => Some(Started {
                kernel,
                attached,
                generation: Some(generation.clone()),
                adopted: true,
            }),
            Ok(_) => {
                log::info!(
                    "pinned generation {} is too small for this indicator set or ring \
                     buffer size: replacing it",
                    generation.path.display()
                );
                None
            }
            Err(err) => {
                log::warn!(
                    "cannot adopt {} ({err:#}): replacing it",
                    generation.path.display()
                );
                None
            }
        }
    }

    /// Removes every generation but `current`, once ours records: no gap, at worst a
    /// connection seen by both in between is reported twice. Events left in their ring
    /// buffers go through `pipeline` when their layout is ours.
    pub(super) fn retire_others(&self, current: Option<&Generation>, pipeline: &mut Pipeline) {
        for old in self
            .previous
            .iter()
            .filter(|g| Some(&g.path) != current.map(|c| &c.path))
        {
            match Kernel::retire(old, |record| pipeline.handle(record)) {
                Ok((read, discarded)) => log::info!(
                    "retired pinned generation {}: {read} events it held were read{}",
                    old.path.display(),
                    if discarded > 0 {
                        format!(", {discarded} bytes of events of another layout discarded")
                    } else {
                        String::new()
                    }
                ),
                Err(err) => log::error!("retiring {}: {err:#}", old.path.display()),
            }
        }
    }
}

/// The programs, attached, with their maps filled.
pub(super) struct Started {
    pub kernel: Kernel,
    pub attached: Vec<AttachedProgram>,
    /// The pinned generation in use (service mode).
    pub generation: Option<Generation>,
    /// Taken over from a previous agent rather than attached by this one.
    pub adopted: bool,
}

/// Adopts (service mode, same build) or loads the programs, fills the maps with
/// `entries` and the options' settings, and attaches what is not attached yet: pinned
/// in a new generation in service mode, else held by this process.
pub(super) fn start_kernel(
    options: &RunOptions,
    pinning: Option<&Pinning>,
    entries: KernelEntries,
    cgroup: &Path,
) -> Result<Started> {
    let adopted = pinning.and_then(|p| p.adopt(&entries, options.ringbuf_bytes));
    let mut kernel = match adopted {
        Some(mut started) => {
            fill(&mut started.kernel, options, entries)?;
            return Ok(started);
        }
        None => Kernel::load(MapSizes::for_entries(&entries, options.ringbuf_bytes))?,
    };
    fill(&mut kernel, options, entries)?;
    let Some(pinning) = pinning else {
        let attached = kernel.attach(cgroup)?;
        return Ok(Started {
            kernel,
            attached,
            generation: None,
            adopted: false,
        });
    };
    let fresh = pinning.dir.create_generation()?;
    match kernel.attach_pinned(cgroup, &fresh.path) {
        Ok(attached) => Ok(Started {
            kernel,
            attached,
            generation: Some(fresh),
            adopted: false,
        }),
        Err(err) => {
            // Nothing half-attached may outlive us.
            if let Err(cleanup) = remove_generation(&fresh.path) {
                log::error!("removing {}: {cleanup:#}", fresh.path.display());
            }
            Err(err)
        }
    }
}

/// Watched names, indicators and the settings word.
fn fill(kernel: &mut Kernel, options: &RunOptions, entries: KernelEntries) -> Result<()> {
    kernel.set_watched_comms(&options.watched_comms)?;
    kernel.sync_indicators(entries)?;
    kernel.set_settings(settings_flags(options))
}

/// Whether an adopted generation has room for `entries` and the requested ring buffer.
fn fits(kernel: &Kernel, entries: &KernelEntries, ringbuf_bytes: u32) -> bool {
    let sizes = kernel.sizes();
    entries.endpoints.len() <= sizes.endpoints as usize
        && entries.nets.len() <= sizes.nets as usize
        && sizes.ringbuf_bytes == ringbuf_bytes
}
