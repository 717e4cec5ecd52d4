//! Detection rules and the netcat false-positive exclusions (work in progress).
