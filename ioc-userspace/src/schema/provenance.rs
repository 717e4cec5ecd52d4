//! Where a matched indicator came from, as every record type carries it.

use serde::Serialize;

use crate::{clock::format_timestamp, ioc::ParsedIndicator};

/// The indicator's value and threat-intel metadata, with Defender-style field names.
#[allow(non_snake_case)]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Provenance {
    pub Indicator: String,
    pub IndicatorType: &'static str,
    /// The feed's id (`threatfox:1856791`) or a stable hash of type and value.
    pub IndicatorStableId: String,
    /// `file:line` or `file: $.json.path`.
    pub IndicatorSource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ThreatType: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub Malware: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub MalwareId: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub Confidence: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub Reference: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub Tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub FirstSeen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub LastSeen: Option<String>,
}

impl Provenance {
    pub fn of(indicator: &ParsedIndicator) -> Self {
        let meta = &indicator.meta;
        let seen =
            |t: Option<time::OffsetDateTime>| t.map(|t| format_timestamp(t.unix_timestamp_nanos()));
        Self {
            Indicator: indicator.value.to_string(),
            IndicatorType: indicator.value.type_name(),
            IndicatorStableId: meta.id.to_string(),
            IndicatorSource: indicator.origin(),
            ThreatType: meta.threat_type.as_deref().map(str::to_owned),
            Malware: meta
                .malware
                .as_ref()
                .and_then(|m| m.printable.clone().or_else(|| m.id.clone())),
            MalwareId: meta.malware.as_ref().and_then(|m| m.id.clone()),
            Confidence: meta.confidence,
            Reference: meta.reference.clone().filter(|r| !r.is_empty()),
            Tags: meta.tags.to_vec(),
            FirstSeen: seen(meta.first_seen),
            LastSeen: seen(meta.last_seen),
        }
    }
}
