//! Extended (unwrapped) RTP sequence numbers and timestamps.
//!
//! RTP's 16-bit sequence number wraps every 21 minutes at 50 packets/s and its 32-bit
//! timestamp every 24.8 hours at 48 kHz. Everything after the wire works on these 64-bit
//! newtypes so that a wrap, or a 16-bit/32-bit mix-up, cannot reach the arithmetic.

/// A sequence number extended to 64 bits (RFC 3550 A.1's cycles * 2^16 + seq).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ExtSeq(pub u64);

/// An RTP timestamp extended to 64 bits, in the stream's clock rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ExtTs(pub u64);

/// The extended values start this far from zero so that packets slightly older than the
/// first one (reordering right at stream start) still unwrap to a smaller value instead of
/// underflowing.
const SEQ_ORIGIN: u64 = 1 << 32;
const TS_ORIGIN: u64 = 1 << 40;

/// Unwraps 16-bit sequence numbers relative to the highest one seen.
#[derive(Debug, Clone, Default)]
pub struct SeqUnwrapper {
    highest: Option<u64>,
}

impl SeqUnwrapper {
    /// Extends `seq`, taking the interpretation closest to the highest value seen so far
    /// (a difference of less than half the number space in either direction).
    pub fn unwrap(&mut self, seq: u16) -> ExtSeq {
        let ext = match self.highest {
            None => SEQ_ORIGIN + seq as u64,
            Some(h) => {
                let delta = seq.wrapping_sub(h as u16) as i16 as i64;
                (h as i64 + delta) as u64
            }
        };
        if self.highest.is_none_or(|h| ext > h) {
            self.highest = Some(ext);
        }
        ExtSeq(ext)
    }

    /// The highest extended sequence number seen.
    pub fn highest(&self) -> Option<ExtSeq> {
        self.highest.map(ExtSeq)
    }
}

/// Unwraps 32-bit timestamps relative to the previous one handed in.
///
/// Unlike sequence numbers, timestamps of consecutive packets may legitimately jump (DTX,
/// sender restarts), so the reference is the last value, not the highest.
#[derive(Debug, Clone, Default)]
pub struct TsUnwrapper {
    last: Option<u64>,
}

impl TsUnwrapper {
    /// Extends `ts` to the interpretation within +-2^31 of the previous timestamp.
    pub fn unwrap(&mut self, ts: u32) -> ExtTs {
        let ext = match self.last {
            None => TS_ORIGIN + ts as u64,
            Some(l) => {
                let delta = ts.wrapping_sub(l as u32) as i32 as i64;
                (l as i64 + delta) as u64
            }
        };
        self.last = Some(ext);
        ExtTs(ext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_wraps_forward() {
        let mut u = SeqUnwrapper::default();
        let a = u.unwrap(65534);
        let b = u.unwrap(65535);
        let c = u.unwrap(0);
        let d = u.unwrap(1);
        assert_eq!(b.0 - a.0, 1);
        assert_eq!(c.0 - b.0, 1);
        assert_eq!(d.0 - c.0, 1);
    }

    #[test]
    fn seq_reordered_across_wrap() {
        let mut u = SeqUnwrapper::default();
        let a = u.unwrap(65535);
        let c = u.unwrap(1);
        let b = u.unwrap(0); // arrives late, after the wrap
        assert_eq!(c.0 - a.0, 2);
        assert_eq!(b.0 - a.0, 1);
        assert_eq!(u.highest(), Some(c));
    }

    #[test]
    fn seq_older_than_first_does_not_underflow() {
        let mut u = SeqUnwrapper::default();
        let a = u.unwrap(5);
        let b = u.unwrap(3);
        assert_eq!(a.0 - b.0, 2);
    }

    #[test]
    fn seq_many_wraps() {
        let mut u = SeqUnwrapper::default();
        let first = u.unwrap(100);
        let mut last = first;
        for i in 1..=300_000u64 {
            last = u.unwrap((100 + i) as u16);
        }
        assert_eq!(last.0 - first.0, 300_000);
    }

    #[test]
    fn ts_wraps_and_jumps() {
        let mut u = TsUnwrapper::default();
        let a = u.unwrap(u32::MAX - 959);
        let b = u.unwrap(0);
        assert_eq!(b.0 - a.0, 960);
        let c = u.unwrap(1_000_000);
        assert_eq!(c.0 - b.0, 1_000_000);
        // A backward jump stays backward.
        let d = u.unwrap(500_000);
        assert!(d < c);
    }
}
