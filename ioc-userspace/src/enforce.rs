//! Enforcement policy: which indicators the kernel refuses connections to, and for which
//! protocols. Pure: the kernel module turns it into entry flags and settings.

use std::fmt;

use ioc_common::{SETTING_ENFORCE_TCP, SETTING_ENFORCE_UDP};

use crate::ioc::ParsedIndicator;

/// What the agent does with a connection to an indicator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Record only.
    #[default]
    Monitor,
    /// Refuse (EPERM) connects and sends to indicators in the block scope, and record them.
    Block,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Monitor => "monitor",
            Self::Block => "block",
        })
    }
}

/// A transport protocol enforcement can apply to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    Tcp,
    Udp,
}

/// Which indicators and protocols block mode refuses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockScope {
    /// Only these threat types (`botnet_cc`, ...); all when empty.
    pub threat_types: Vec<String>,
    /// Only indicators with at least this confidence. Indicators without a confidence
    /// (an operator's own plain list) are in scope: listing them was the decision.
    pub min_confidence: Option<u8>,
    /// Protocols refused; both when empty.
    pub protocols: Vec<Protocol>,
}

/// The mode and its scope, as the kernel applies them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Enforcement {
    pub mode: Mode,
    pub scope: BlockScope,
}

impl Enforcement {
    /// Whether connections to `indicator` are refused (in block mode).
    pub fn blocks(&self, indicator: &ParsedIndicator) -> bool {
        if self.mode != Mode::Block {
            return false;
        }
        let meta = &indicator.meta;
        let type_in_scope = self.scope.threat_types.is_empty()
            || meta.threat_type.as_deref().is_some_and(|threat| {
                self.scope
                    .threat_types
                    .iter()
                    .any(|wanted| wanted.eq_ignore_ascii_case(threat))
            });
        let confident = match (self.scope.min_confidence, meta.confidence) {
            (Some(min), Some(confidence)) => confidence >= min,
            _ => true,
        };
        type_in_scope && confident
    }

    /// The `SETTING_ENFORCE_*` bits for the kernel's flag word.
    pub fn settings_flags(&self) -> u32 {
        if self.mode != Mode::Block {
            return 0;
        }
        let wants =
            |protocol| self.scope.protocols.is_empty() || self.scope.protocols.contains(&protocol);
        let mut flags = 0;
        if wants(Protocol::Tcp) {
            flags |= SETTING_ENFORCE_TCP;
        }
        if wants(Protocol::Udp) {
            flags |= SETTING_ENFORCE_UDP;
        }
        flags
    }

    /// One line for logs: `block (tcp+udp; threat types botnet_cc; confidence >= 75)`.
    pub fn describe(&self) -> String {
        if self.mode != Mode::Block {
            return "monitor (record only)".to_string();
        }
        let flags = self.settings_flags();
        let mut protocols = Vec::new();
        if flags & SETTING_ENFORCE_TCP != 0 {
            protocols.push("tcp");
        }
        if flags & SETTING_ENFORCE_UDP != 0 {
            protocols.push("udp");
        }
        let mut text = format!("block ({}", protocols.join("+"));
        if !self.scope.threat_types.is_empty() {
            text.push_str(&format!(
                "; threat types {}",
                self.scope.threat_types.join(",")
            ));
        }
        if let Some(min) = self.scope.min_confidence {
            text.push_str(&format!("; confidence >= {min}"));
        }
        text.push(')');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ioc::network_indicator;

    fn indicator(threat: Option<&str>, confidence: Option<u8>) -> ParsedIndicator {
        let mut parsed = network_indicator("127.0.0.2:4444", "test", 1).unwrap();
        parsed.meta.threat_type = threat.map(std::sync::Arc::from);
        parsed.meta.confidence = confidence;
        parsed
    }

    fn block(threat_types: &[&str], min_confidence: Option<u8>) -> Enforcement {
        Enforcement {
            mode: Mode::Block,
            scope: BlockScope {
                threat_types: threat_types.iter().map(|t| t.to_string()).collect(),
                min_confidence,
                protocols: Vec::new(),
            },
        }
    }

    #[test]
    fn monitor_never_blocks() {
        let monitor = Enforcement::default();
        assert!(!monitor.blocks(&indicator(Some("botnet_cc"), Some(100))));
        assert_eq!(monitor.settings_flags(), 0);
    }

    #[test]
    fn scope_selects_threat_types_and_confidence() {
        let policy = block(&["botnet_cc"], Some(75));
        assert!(policy.blocks(&indicator(Some("botnet_cc"), Some(75))));
        assert!(policy.blocks(&indicator(Some("BOTNET_CC"), Some(100))));
        assert!(!policy.blocks(&indicator(Some("botnet_cc"), Some(74))));
        assert!(!policy.blocks(&indicator(Some("payload_delivery"), Some(100))));
        assert!(!policy.blocks(&indicator(None, Some(100))));
        // No confidence: an operator's own list; in scope.
        assert!(policy.blocks(&indicator(Some("botnet_cc"), None)));
        assert!(block(&[], None).blocks(&indicator(None, None)));
    }

    #[test]
    fn protocols_default_to_both() {
        let mut policy = block(&[], None);
        assert_eq!(
            policy.settings_flags(),
            SETTING_ENFORCE_TCP | SETTING_ENFORCE_UDP
        );
        policy.scope.protocols = vec![Protocol::Udp];
        assert_eq!(policy.settings_flags(), SETTING_ENFORCE_UDP);
        assert_eq!(policy.describe(), "block (udp)");
        assert_eq!(
            block(&["botnet_cc"], Some(80)).describe(),
            "block (tcp+udp; threat types botnet_cc; confidence >= 80)"
        );
    }
}
