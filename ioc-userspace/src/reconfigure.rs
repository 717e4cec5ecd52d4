//! What a configuration reload (SIGHUP) can change in a running agent, and what waits for
//! a restart. Pure: the agent applies the result.

use crate::agent::RunOptions;

/// Options whose change takes a restart: they shape the maps, threads and outputs set up
/// at start. Returns the names (as configuration keys) of those that changed.
pub fn restart_needed(old: &RunOptions, new: &RunOptions) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |name: &'static str, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    check("feed", old.feeds != new.feeds);
    check("cgroup", old.cgroup != new.cgroup);
    check("device-name", old.device_name != new.device_name);
    check("queue-size", old.queue_capacity != new.queue_capacity);
    check("ringbuf-size", old.ringbuf_bytes != new.ringbuf_bytes);
    check("stats-interval", old.stats_interval != new.stats_interval);
    check("output", old.outputs != new.outputs);
    check(
        "health-interval",
        old.health_interval != new.health_interval,
    );
    check(
        "reload-interval",
        old.reload_interval != new.reload_interval,
    );
    check("pin", old.pin != new.pin);
    changed
}

/// Keeps the options that need a restart as they are running, takes everything else
/// from `new`.
pub fn live_options(running: &RunOptions, new: RunOptions) -> RunOptions {
    RunOptions {
        feeds: running.feeds.clone(),
        cgroup: running.cgroup.clone(),
        device_name: running.device_name.clone(),
        queue_capacity: running.queue_capacity,
        ringbuf_bytes: running.ringbuf_bytes,
        stats_interval: running.stats_interval,
        outputs: running.outputs.clone(),
        health_interval: running.health_interval,
        reload_interval: running.reload_interval,
        pin: running.pin.clone(),
        ..new
    }
}
