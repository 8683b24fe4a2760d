//! Per-SSRC receive state: packet index estimation (RFC 3711 section 3.3.1 / Appendix A),
//! the replay window (section 3.3.2), and a bounded SSRC table.
//!
//! Everything here is split into a read-only *check* and a *commit*, because the session only
//! commits after the packet has authenticated: a forged packet must never move the ROC or the
//! window, or an attacker could desynchronise the receiver with a single spoofed sequence
//! number.

use super::SrtpError;

/// Width of the replay window in packets. RFC 3711 requires at least 64; 128 matches
/// libsrtp's default and tolerates the reordering seen on real networks.
pub(crate) const REPLAY_WINDOW: u64 = 128;

/// Guesses the 48-bit SRTP packet index of `seq` given the highest authenticated index so
/// far, exactly as RFC 3711 Appendix A does (ROC - 1, ROC or ROC + 1, whichever puts `seq`
/// nearest to the highest sequence number seen, s_l).
///
/// Returns `None` when the guess falls before index 0 (ROC would be -1) or beyond the 48-bit
/// index space; such a packet cannot be valid.
pub(crate) fn estimate_index(highest: u64, seq: u16) -> Option<u64> {
    let roc = (highest >> 16) as i64;
    let s_l = i64::from(highest as u16);
    let seq = i64::from(seq);
    let v = if s_l < 32_768 {
        if seq - s_l > 32_768 {
            roc - 1
        } else {
            roc
        }
    } else if s_l - 32_768 > seq {
        roc + 1
    } else {
        roc
    };
    if !(0..=i64::from(u32::MAX)).contains(&v) {
        return None;
    }
    Some(((v as u64) << 16) | seq as u64)
}

/// Sliding replay window over packet indices: bit `i` of `seen` records whether index
/// `highest - i` has been accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplayWindow {
    /// Highest index accepted so far (for RTP this also carries ROC and s_l).
    pub(crate) highest: u64,
    seen: u128,
}

impl ReplayWindow {
    /// A window whose first accepted packet is `index`.
    pub(crate) fn new(index: u64) -> Self {
        Self {
            highest: index,
            seen: 1,
        }
    }

    /// Read-only check: would `index` be accepted?
    pub(crate) fn check(&self, index: u64) -> Result<(), SrtpError> {
        if index > self.highest {
            return Ok(());
        }
        let age = self.highest - index;
        if age >= REPLAY_WINDOW {
            return Err(SrtpError::TooOld);
        }
        if self.seen & (1u128 << age) != 0 {
            return Err(SrtpError::Replayed);
        }
        Ok(())
    }

    /// Records `index` as received. Call only after [`Self::check`] passed and the packet
    /// authenticated.
    pub(crate) fn accept(&mut self, index: u64) {
        if index > self.highest {
            let shift = index - self.highest;
            self.seen = if shift >= REPLAY_WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.highest = index;
        } else {
            let age = self.highest - index;
            if age < REPLAY_WINDOW {
                self.seen |= 1u128 << age;
            }
        }
    }
}

/// A small map from SSRC to per-SSRC state, capped at `cap` entries with least-recently-used
/// eviction, so hostile traffic spraying random SSRCs cannot grow memory.
///
/// A linear scan over a few dozen `u32`s beats hashing for the handful of SSRCs a real call
/// has, and the vectors are allocated once up front: no allocation per packet, even when a
/// new SSRC evicts an old one.
#[derive(Debug, Clone)]
pub(crate) struct SsrcTable<T> {
    ssrcs: Vec<u32>,
    entries: Vec<T>,
    last_used: Vec<u64>,
    tick: u64,
    cap: usize,
}

impl<T> SsrcTable<T> {
    pub(crate) fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        // `cap` bounds the table, it is not reserved: a session nearly always sees one SSRC,
        // and a bot holds thousands of sessions.
        Self {
            ssrcs: Vec::new(),
            entries: Vec::new(),
            last_used: Vec::new(),
            tick: 0,
            cap,
        }
    }

    /// Slot of `ssrc`, if it has state.
    #[inline]
    pub(crate) fn find(&self, ssrc: u32) -> Option<usize> {
        self.ssrcs.iter().position(|&s| s == ssrc)
    }

    #[inline]
    pub(crate) fn get(&self, slot: usize) -> &T {
        &self.entries[slot]
    }

    /// Mutable access that also marks the slot as most recently used.
    #[inline]
    pub(crate) fn get_mut(&mut self, slot: usize) -> &mut T {
        self.tick += 1;
        self.last_used[slot] = self.tick;
        &mut self.entries[slot]
    }

    /// Adds state for a new `ssrc`, evicting the least recently used SSRC when full.
    pub(crate) fn insert(&mut self, ssrc: u32, value: T) {
        self.tick += 1;
        if self.ssrcs.len() < self.cap {
            self.ssrcs.push(ssrc);
            self.entries.push(value);
            self.last_used.push(self.tick);
            return;
        }
        let victim = self
            .last_used
            .iter()
            .enumerate()
            .min_by_key(|(_, &t)| t)
            .map_or(0, |(i, _)| i);
        self.ssrcs[victim] = ssrc;
        self.entries[victim] = value;
        self.last_used[victim] = self.tick;
    }

    /// Number of SSRCs with state.
    pub(crate) fn len(&self) -> usize {
        self.ssrcs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_estimation_follows_appendix_a() {
        // In the middle of ROC 0: plain sequence numbers.
        assert_eq!(estimate_index(1000, 1001), Some(1001));
        assert_eq!(estimate_index(1000, 900), Some(900));
        // Near the top of ROC 0, a small seq is the next roll-over.
        assert_eq!(estimate_index(65_500, 5), Some(0x1_0005));
        // Just after the wrap, a large seq is a late packet of the previous ROC.
        assert_eq!(estimate_index(0x1_0005, 65_500), Some(65_500));
        // A late packet of ROC -1 does not exist.
        assert_eq!(estimate_index(5, 65_500), None);
        // The index space ends at ROC = 2^32 - 1.
        assert_eq!(estimate_index(0xFFFF_FFFF_FFF0, 3), None);
    }

    #[test]
    fn window_accepts_once_and_rejects_old() {
        let mut w = ReplayWindow::new(100);
        assert_eq!(w.check(100), Err(SrtpError::Replayed));
        assert_eq!(w.check(101), Ok(()));
        w.accept(101);
        // Reordered but in window: accepted once.
        assert_eq!(w.check(50), Ok(()));
        w.accept(50);
        assert_eq!(w.check(50), Err(SrtpError::Replayed));
        // Jump far ahead: the old window is gone.
        w.accept(1_000);
        assert_eq!(w.check(1_000 - REPLAY_WINDOW), Err(SrtpError::TooOld));
        assert_eq!(w.check(1_000 - REPLAY_WINDOW + 1), Ok(()));
        assert_eq!(w.check(101), Err(SrtpError::TooOld));
    }

    #[test]
    fn table_evicts_least_recently_used() {
        let mut t: SsrcTable<u32> = SsrcTable::new(2);
        t.insert(1, 10);
        t.insert(2, 20);
        let s1 = t.find(1).unwrap();
        *t.get_mut(s1) += 1; // 1 is now the most recent
        t.insert(3, 30);
        assert_eq!(t.len(), 2);
        assert!(t.find(2).is_none());
        assert_eq!(*t.get(t.find(1).unwrap()), 11);
        assert_eq!(*t.get(t.find(3).unwrap()), 30);
    }
}
