//! Kernel timestamps (nanoseconds since boot) to UTC, and the Defender timestamp format.

use nix::time::{clock_gettime, ClockId};
use time::{format_description::BorrowedFormatItem, macros::format_description, OffsetDateTime};

/// Converts `bpf_ktime_get_boot_ns` values to wall-clock time. The offset is read once;
/// a per-event clock syscall would cost more than the rest of the conversion.
#[derive(Clone, Copy, Debug)]
pub struct BootClock {
    /// Unix time (ns) at boot.
    boot_unix_ns: i128,
}

fn timespec_ns(ts: nix::sys::time::TimeSpec) -> i128 {
    i128::from(ts.tv_sec()) * 1_000_000_000 + i128::from(ts.tv_nsec())
}

impl BootClock {
    pub fn new() -> nix::Result<Self> {
        let boot = clock_gettime(ClockId::CLOCK_BOOTTIME)?;
        let real = clock_gettime(ClockId::CLOCK_REALTIME)?;
        Ok(Self {
            boot_unix_ns: timespec_ns(real) - timespec_ns(boot),
        })
    }

    pub fn with_boot_time(boot_unix_ns: i128) -> Self {
        Self { boot_unix_ns }
    }

    /// Unix time in nanoseconds.
    pub fn unix_ns(&self, boot_ns: u64) -> i128 {
        self.boot_unix_ns + i128::from(boot_ns)
    }
}

const DEFENDER_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z");

/// ISO 8601 UTC with 7 fractional digits, as Defender exports it:
/// `2026-12-03T16:03:54.1234567Z`.
pub fn format_timestamp(unix_ns: i128) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(unix_ns)
        .ok()
        .and_then(|t| t.format(DEFENDER_FORMAT).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00.0000000Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_seven_digits() {
        assert_eq!(
            format_timestamp(1_689_769_062_778_236_499),
            "2023-07-19T12:17:42.7782364Z"
        );
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.0000000Z");
    }

    #[test]
    fn boot_offset_applies() {
        let clock = BootClock::with_boot_time(1_000_000_000);
        assert_eq!(clock.unix_ns(500), 1_000_000_500);
        let now = BootClock::new().unwrap();
        // Boot happened in the past, after 2000-01-01.
        assert!(now.unix_ns(0) > 946_684_800 * 1_000_000_000);
    }
}
