//! Output records, shaped as the Sentinel/Defender tables they are meant for. Every JSON
//! record carries `Table`, naming its table, so a forwarder can route it.

pub mod cef;
pub mod device_id;
pub mod device_network;
pub mod dns_events;
pub mod provenance;

/// The routing field present in every JSON record.
pub const TABLE_FIELD: &str = "Table";
