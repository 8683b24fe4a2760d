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
