//! `DeviceId`: 40 hex digits, stable per device, as Defender's column looks.
//!
//! Derived from the systemd machine id (`/etc/machine-id`, else
//! `/var/lib/dbus/machine-id`). machine-id(5) asks applications not to expose the id
//! itself but a hash of it with an application-specific key, so this is
//! `SHA-1("iocmon-device-id:" + machine-id)`: the same on every run of the agent on the
//! device, not the machine id, and the 160-bit width of Defender's ids. Without a
//! machine id (some embedded images have none) the host name takes its place, with a
//! warning, since it is less stable.

const KEY: &str = "iocmon-device-id:";
const SOURCES: [&str; 2] = ["/etc/machine-id", "/var/lib/dbus/machine-id"];

/// The device id for `machine_id` (surrounding whitespace ignored).
pub fn from_machine_id(machine_id: &str) -> String {
    let mut hasher = sha1_smol::Sha1::new();
    hasher.update(KEY.as_bytes());
    hasher.update(machine_id.trim().as_bytes());
    hasher.digest().to_string()
}

/// This device's id, from the machine id, else from `fallback` (the host name).
pub fn current(fallback: &str) -> String {
    for path in SOURCES {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.trim().is_empty() {
                return from_machine_id(&text);
            }
        }
    }
    log::warn!("no machine id in /etc/machine-id: DeviceId is derived from the host name");
    from_machine_id(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forty_hex_digits_and_stable() {
        let id = from_machine_id("0123456789abcdef0123456789abcdef\n");
        assert_eq!(id.len(), 40);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(id, from_machine_id("0123456789abcdef0123456789abcdef"));
        assert_ne!(id, from_machine_id("0123456789abcdef0123456789abcdee"));
        // SHA-1("iocmon-device-id:x"), computed independently with sha1sum.
        assert_eq!(
            from_machine_id("x"),
            "e156ef346c37de801bdfac42b52a0b4476a7de50"
        );
    }
}
