//! Why a connection is worth a record.

use crate::event::ConnectionEvent;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetectionClass {
    /// The destination matches an indicator.
    Ioc,
    /// A watched network utility (netcat family, wget, curl, ...) connected out.
    NetworkTool,
    /// Reported only because every connection is (`--all-connections`).
    Connection,
}

impl DetectionClass {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ioc => "ioc",
            Self::NetworkTool => "network-tool",
            Self::Connection => "connection",
        }
    }
}

pub fn classify(event: &ConnectionEvent) -> DetectionClass {
    if event.indicator.is_some() {
        DetectionClass::Ioc
    } else if event.watched {
        DetectionClass::NetworkTool
    } else {
        DetectionClass::Connection
    }
}

/// Process names whose connections are always reported: the tools Mirai loaders and
/// reverse shells use on IoT devices.
pub const DEFAULT_WATCHED_COMMS: &[&str] = &[
    "nc",
    "ncat",
    "netcat",
    "nc.openbsd",
    "nc.traditional",
    "busybox",
    "socat",
    "telnet",
    "wget",
    "curl",
    "tftp",
];
