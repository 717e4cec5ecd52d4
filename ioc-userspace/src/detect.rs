//! From a connection and its process to a verdict: builds the rules' `Subject`, asks the
//! rule set, and names the classes for the record.

use crate::{
    event::{ConnectionEvent, Protocol},
    rules::{self, Ancestor, DetectionClass, RuleSet, Subject, Verdict},
};

/// Process names the kernel always reports, so the rules can judge them: the tools Mirai
/// loaders and reverse shells use on IoT devices.
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

/// Label of a record that is no detection (reported because of `--all-connections`).
pub const CLASS_CONNECTION: &str = "connection";

/// What the process looked like, as the rules need it.
#[derive(Clone, Debug, Default)]
pub struct ProcessView<'a> {
    pub exe_path: Option<&'a str>,
    pub argv: &'a [String],
    /// (name, exe path), parent first.
    pub ancestors: Vec<(&'a str, Option<&'a str>)>,
    pub user: Option<&'a str>,
    pub uid: u32,
    pub container_id: Option<&'a str>,
}

pub fn subject(event: &ConnectionEvent, process: &ProcessView<'_>) -> Subject {
    Subject {
        comm: event.comm.clone(),
        exe_path: process.exe_path.map(str::to_string),
        argv: process.argv.to_vec(),
        ancestors: process
            .ancestors
            .iter()
            .map(|(name, exe)| Ancestor {
                name: (*name).to_string(),
                exe_path: exe.map(str::to_string),
            })
            .collect(),
        user: process.user.map(str::to_string),
        uid: Some(process.uid),
        container_id: process.container_id.map(str::to_string),
        source_ip: event.local.map(|a| a.ip()),
        destination_ip: Some(event.remote.ip()),
        destination_port: event.remote.port(),
        protocol: match event.protocol {
            Protocol::Tcp => rules::Protocol::Tcp,
            Protocol::Udp => rules::Protocol::Udp,
            Protocol::Other(_) => rules::Protocol::Other,
        },
        indicator_hit: event.indicator.is_some(),
    }
}

/// The class a record is filed under: an indicator hit first, then a reverse shell,
/// then a network tool.
pub fn primary_class(classes: &[DetectionClass]) -> &'static str {
    [
        DetectionClass::Ioc,
        DetectionClass::ReverseShell,
        DetectionClass::NetworkTool,
    ]
    .into_iter()
    .find(|class| classes.contains(class))
    .map_or(CLASS_CONNECTION, DetectionClass::name)
}

/// Judges one connection.
pub fn judge(rules: &RuleSet, subject: &Subject) -> Verdict {
    rules.evaluate(subject)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_class_order() {
        use DetectionClass::*;
        assert_eq!(primary_class(&[NetworkTool, ReverseShell, Ioc]), "ioc");
        assert_eq!(primary_class(&[NetworkTool, ReverseShell]), "reverse-shell");
        assert_eq!(primary_class(&[NetworkTool]), "network-tool");
        assert_eq!(primary_class(&[]), "connection");
    }
}
