//! Time as the caller gives it to us.
//!
//! media-core never reads a clock: every entry point takes `now`, so replaying a capture or a
//! simulated hour of traffic is deterministic and runs as fast as the CPU allows.

use std::ops::{Add, Sub};

/// A point in time in microseconds since an epoch the caller chooses (the Unix epoch for
/// captures, a monotonic clock's start for live sockets). Only differences are meaningful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Micros(pub u64);

impl Micros {
    /// Microseconds in one second.
    pub const PER_SEC: u64 = 1_000_000;

    /// From milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Micros(ms * 1000)
    }

    /// Signed difference `self - earlier` in microseconds; never overflows for realistic times.
    pub fn signed_since(self, earlier: Micros) -> i64 {
        self.0 as i64 - earlier.0 as i64
    }

    /// `self - earlier`, or zero if `earlier` is later (clocks of captures can step back).
    pub fn saturating_since(self, earlier: Micros) -> Micros {
        Micros(self.0.saturating_sub(earlier.0))
    }

    /// Whole milliseconds.
    pub fn as_millis(self) -> u64 {
        self.0 / 1000
    }
}

impl Add for Micros {
    type Output = Micros;
    fn add(self, rhs: Micros) -> Micros {
        Micros(self.0.saturating_add(rhs.0))
    }
}

impl Sub for Micros {
    type Output = Micros;
    fn sub(self, rhs: Micros) -> Micros {
        self.saturating_since(rhs)
    }
}

/// Opus's fixed output rate: Ogg Opus granule positions always count 48 kHz samples (RFC 7845).
pub const OPUS_RATE: u64 = 48_000;

/// Converts a signed duration in microseconds to 48 kHz samples (rounded toward zero).
pub fn micros_to_samples48(us: i64) -> i64 {
    us * OPUS_RATE as i64 / Micros::PER_SEC as i64
}

/// Converts 48 kHz samples to milliseconds as a float, for reports.
pub fn samples48_to_ms(samples: u64) -> f64 {
    samples as f64 * 1000.0 / OPUS_RATE as f64
}

/// Formats microseconds since the Unix epoch as an RFC 3339 UTC timestamp with millisecond
/// precision (`2026-11-26T00:24:32.123Z`), for tags and reports.
pub fn format_rfc3339(unix_us: u64) -> String {
    let secs = unix_us / 1_000_000;
    let millis = (unix_us / 1000) % 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339(951_782_400_000_000),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            format_rfc3339(1_795_652_672_123_456),
            "2026-11-26T00:24:32.123Z"
        );
    }

    #[test]
    fn sample_conversions() {
        assert_eq!(micros_to_samples48(20_000), 960);
        assert_eq!(micros_to_samples48(-20_000), -960);
        assert_eq!(samples48_to_ms(48_000), 1000.0);
    }
}
