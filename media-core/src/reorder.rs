//! Per-stream reordering: a bounded window that releases packets in sequence order.
//!
//! Packets leave in extended-sequence order. A missing packet is waited for until either a
//! packet behind it has waited `max_delay` or the window is `capacity` packets wide; then it is
//! declared lost and skipped. Copies of a packet already taken are duplicates; a packet that
//! arrives after its slot was skipped is late, dropped, and moved from the lost count to the
//! late count (it was received, just not in time).
//!
//! The common case, the next expected packet arriving with nothing buffered, never touches
//! the slots ([`Admission::Deliver`]): the caller hands the packet straight on without a copy.
//! Slots hold caller-defined items `T` that are reused, so steady state allocates nothing.

use crate::seq::ExtSeq;
use crate::time::Micros;

/// Bounds of the reorder window.
#[derive(Debug, Clone, Copy)]
pub struct ReorderConfig {
    /// Slots in the window; rounded up to a power of two. At 20 ms per packet, 32 slots hold
    /// 640 ms, well beyond `max_delay`, so the time bound is what normally decides.
    pub capacity: usize,
    /// How long a packet waits for a missing predecessor before the gap is declared lost.
    pub max_delay: Micros,
}

impl Default for ReorderConfig {
    fn default() -> Self {
        ReorderConfig {
            capacity: 32,
            max_delay: Micros::from_millis(200),
        }
    }
}

/// Counters kept by the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReorderStats {
    /// Sequence numbers never received (skipped, minus those that later arrived late).
    pub lost: u64,
    /// Extra copies of packets already taken.
    pub duplicated: u64,
    /// Packets that arrived after their place in the sequence had been given up.
    pub late: u64,
}

/// What to do with an arriving packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// In order with nothing waiting: process it now. `lost_before` packets were skipped
    /// right before it (always 0 here; kept for symmetry with [`Released`]).
    Deliver,
    /// Out of order: call [`ReorderBuffer::make_room`], then [`ReorderBuffer::insert`].
    Store,
    /// A copy of a packet already taken or waiting; dropped and counted.
    Duplicate,
    /// Its place in the sequence has passed; dropped and counted.
    Late,
}

/// A packet leaving the window.
#[derive(Debug)]
pub struct Released<'a, T> {
    /// Its extended sequence number.
    pub seq: ExtSeq,
    /// When it arrived.
    pub arrival: Micros,
    /// Packets skipped as lost right before this one.
    pub lost_before: u64,
    /// The caller's item, to be consumed before the next call into the window.
    pub item: &'a mut T,
}

#[derive(Debug, Default)]
struct Slot<T> {
    occupied: bool,
    seq: u64,
    arrival: Micros,
    item: T,
}

/// Bits of sequence history kept below the release point, to tell duplicates from late
/// arrivals.
const HISTORY: u64 = 1024;

/// The reorder window of one RTP stream.
#[derive(Debug)]
pub struct ReorderBuffer<T> {
    config: ReorderConfig,
    mask: u64,
    slots: Vec<Slot<T>>,
    buffered: usize,
    /// Next sequence number to release; `None` until the stream's start is settled (the first
    /// packets are held `max_delay` so that a reordered start is not counted as late).
    next: Option<u64>,
    /// Lowest and highest sequence numbers waiting in the slots.
    lowest: u64,
    highest: u64,
    /// Bit per sequence number below `next`: set if it was released.
    history: [u64; (HISTORY / 64) as usize],
    stats: ReorderStats,
}

impl<T: Default> ReorderBuffer<T> {
    /// An empty window.
    pub fn new(config: ReorderConfig) -> Self {
        let cap = config.capacity.max(2).next_power_of_two();
        ReorderBuffer {
            config,
            mask: cap as u64 - 1,
            // No slots until a packet first arrives out of order: most streams never reorder,
            // and a bot holds thousands of streams.
            slots: Vec::new(),
            buffered: 0,
            next: None,
            lowest: u64::MAX,
            highest: 0,
            history: [0; (HISTORY / 64) as usize],
            stats: ReorderStats::default(),
        }
    }
}

impl<T> ReorderBuffer<T> {
    /// The counters so far.
    pub fn stats(&self) -> ReorderStats {
        self.stats
    }

    /// Packets waiting in the window.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Classifies an arriving packet. On [`Admission::Deliver`] the window has already moved
    /// past it; the caller processes the packet directly.
    pub fn admit(&mut self, seq: ExtSeq) -> Admission {
        let seq = seq.0;
        let Some(next) = self.next else {
            return if self.waiting(seq) {
                self.stats.duplicated += 1;
                Admission::Duplicate
            } else {
                Admission::Store
            };
        };
        if seq < next {
            let behind = next - seq;
            if behind <= HISTORY && self.history_bit(seq) {
                self.stats.duplicated += 1;
            } else {
                // It was skipped as lost (or is older than our history); it is here after all.
                if behind <= HISTORY {
                    self.stats.lost = self.stats.lost.saturating_sub(1);
                    self.set_history(seq, true);
                }
                self.stats.late += 1;
                return Admission::Late;
            }
            return Admission::Duplicate;
        }
        if seq == next && self.buffered == 0 {
            self.set_history(seq, true);
            self.next = Some(seq + 1);
            return Admission::Deliver;
        }
        if self.waiting(seq) {
            self.stats.duplicated += 1;
            return Admission::Duplicate;
        }
        Admission::Store
    }

    fn waiting(&self, seq: u64) -> bool {
        self.slots
            .get((seq & self.mask) as usize)
            .is_some_and(|slot| slot.occupied && slot.seq == seq)
    }

    /// Releases what must leave so that `seq` fits in the window. Call repeatedly until it
    /// returns `None`, consuming each packet, before [`ReorderBuffer::insert`].
    pub fn make_room(&mut self, seq: ExtSeq) -> Option<Released<'_, T>> {
        let cap = self.mask + 1;
        let must_release = match self.next {
            None => self.buffered > 0 && seq.0.max(self.highest) - seq.0.min(self.lowest) >= cap,
            Some(next) => seq.0 >= next + cap,
        };
        if !must_release {
            return None;
        }
        if self.next.is_none() {
            // The start is settled by what waited; a packet far older than that is late
            // (see `insert`).
            self.next = Some(self.lowest);
        }
        if self.buffered == 0 {
            // Nothing waits, but the window must jump: everything up to the new packet's
            // lower window edge is lost.
            let next = self.next.unwrap_or(seq.0);
            let new_next = seq.0 + 1 - cap;
            if new_next > next {
                self.skip(next, new_next);
            }
            return None;
        }
        self.release_head()
    }

    /// Stores an out-of-order packet and returns its slot's item for the caller to fill, or
    /// `None` if making room settled the stream's start past it (it is then counted late).
    /// Call only after [`Admission::Store`] and [`ReorderBuffer::make_room`].
    pub fn insert(&mut self, seq: ExtSeq, now: Micros) -> Option<&mut T>
    where
        T: Default,
    {
        if self.next.is_some_and(|next| seq.0 < next) {
            self.stats.late += 1;
            return None;
        }
        if self.slots.is_empty() {
            self.slots = (0..=self.mask).map(|_| Slot::default()).collect();
        }
        let seq = seq.0;
        self.lowest = if self.buffered == 0 {
            seq
        } else {
            self.lowest.min(seq)
        };
        self.highest = if self.buffered == 0 {
            seq
        } else {
            self.highest.max(seq)
        };
        self.buffered += 1;
        let slot = &mut self.slots[(seq & self.mask) as usize];
        debug_assert!(!slot.occupied, "make_room must run before insert");
        slot.occupied = true;
        slot.seq = seq;
        slot.arrival = now;
        Some(&mut slot.item)
    }

    /// Releases the next packet that may leave at `now`: the head of the sequence if it is
    /// present, or, once a waiting packet has waited `max_delay`, the first present packet
    /// after the gap. Call until `None`.
    pub fn pop(&mut self, now: Micros) -> Option<Released<'_, T>> {
        if self.buffered == 0 {
            return None;
        }
        match self.next {
            Some(next) if self.waiting(next) => return self.release_head(),
            _ => {}
        }
        let oldest = self.oldest_arrival()?;
        if now.saturating_since(oldest) < self.config.max_delay {
            return None;
        }
        if self.next.is_none() {
            self.next = Some(self.lowest);
        }
        self.release_head()
    }

    /// Releases everything still waiting, in order (end of stream).
    pub fn drain(&mut self) -> Option<Released<'_, T>> {
        if self.buffered == 0 {
            return None;
        }
        if self.next.is_none() {
            self.next = Some(self.lowest);
        }
        self.release_head()
    }

    /// When [`ReorderBuffer::pop`] would next release something without a new packet.
    pub fn poll_timeout(&self) -> Option<Micros> {
        self.oldest_arrival().map(|a| a + self.config.max_delay)
    }

    fn oldest_arrival(&self) -> Option<Micros> {
        if self.buffered == 0 {
            return None;
        }
        self.slots
            .iter()
            .filter(|s| s.occupied)
            .map(|s| s.arrival)
            .min()
    }

    /// Releases the first present packet at or after `next`, skipping (and counting) the gap.
    fn release_head(&mut self) -> Option<Released<'_, T>> {
        let next = self.next?;
        // The first present packet: scan at most one window (slots are indexed by seq).
        let mut seq = next;
        let end = next + self.mask + 1;
        while seq < end && !self.waiting(seq) {
            seq += 1;
        }
        if seq == end {
            // Only possible if `buffered` is out of step; recover rather than loop.
            debug_assert!(false, "buffered count out of step");
            self.buffered = 0;
            return None;
        }
        let lost_before = seq - next;
        if lost_before > 0 {
            self.skip(next, seq);
        }
        self.set_history(seq, true);
        self.next = Some(seq + 1);
        self.buffered -= 1;
        let slot = &mut self.slots[(seq & self.mask) as usize];
        slot.occupied = false;
        Some(Released {
            seq: ExtSeq(seq),
            arrival: slot.arrival,
            lost_before,
            item: &mut slot.item,
        })
    }

    /// Declares `from..to` lost.
    fn skip(&mut self, from: u64, to: u64) {
        self.stats.lost += to - from;
        if to - from >= HISTORY {
            self.history = [0; (HISTORY / 64) as usize];
        } else {
            for s in from..to {
                self.set_history(s, false);
            }
        }
        self.next = Some(to);
    }

    fn history_bit(&self, seq: u64) -> bool {
        let i = seq % HISTORY;
        self.history[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn set_history(&mut self, seq: u64, received: bool) {
        let i = seq % HISTORY;
        let word = &mut self.history[(i / 64) as usize];
        if received {
            *word |= 1 << (i % 64);
        } else {
            *word &= !(1 << (i % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `(arrival_ms, seq)` pairs and returns the released sequence numbers in order.
    fn run(cfg: ReorderConfig, input: &[(u64, u64)]) -> (Vec<u64>, ReorderStats) {
        let mut rb: ReorderBuffer<u64> = ReorderBuffer::new(cfg);
        let mut out = Vec::new();
        for &(ms, seq) in input {
            let now = Micros::from_millis(ms);
            while let Some(r) = rb.pop(now) {
                out.push(*r.item);
            }
            match rb.admit(ExtSeq(seq)) {
                Admission::Deliver => out.push(seq),
                Admission::Store => {
                    while let Some(r) = rb.make_room(ExtSeq(seq)) {
                        out.push(*r.item);
                    }
                    if let Some(item) = rb.insert(ExtSeq(seq), now) {
                        *item = seq;
                    }
                }
                Admission::Duplicate | Admission::Late => {}
            }
            while let Some(r) = rb.pop(now) {
                out.push(*r.item);
            }
        }
        while let Some(r) = rb.drain() {
            out.push(*r.item);
        }
        (out, rb.stats())
    }

    fn cfg() -> ReorderConfig {
        ReorderConfig {
            capacity: 8,
            max_delay: Micros::from_millis(100),
        }
    }

    #[test]
    fn in_order_passes_straight_through() {
        let input: Vec<_> = (0..100).map(|i| (i * 20, 1000 + i)).collect();
        let (out, st) = run(cfg(), &input);
        assert_eq!(out, (1000..1100).collect::<Vec<_>>());
        assert_eq!(st, ReorderStats::default());
    }

    #[test]
    fn swapped_pair_is_reordered() {
        let (out, st) = run(cfg(), &[(0, 1), (20, 3), (40, 2), (60, 4)]);
        assert_eq!(out, vec![1, 2, 3, 4]);
        assert_eq!(st, ReorderStats::default());
    }

    #[test]
    fn reordered_start_is_not_late() {
        let (out, st) = run(cfg(), &[(0, 11), (10, 10), (20, 12)]);
        assert_eq!(out, vec![10, 11, 12]);
        assert_eq!(st, ReorderStats::default());
    }

    #[test]
    fn loss_released_after_max_delay() {
        let (out, st) = run(cfg(), &[(0, 1), (20, 2), (60, 4), (80, 5), (200, 6)]);
        assert_eq!(out, vec![1, 2, 4, 5, 6]);
        assert_eq!(st.lost, 1);
    }

    #[test]
    fn late_packet_moves_from_lost_to_late() {
        let (out, st) = run(cfg(), &[(0, 1), (40, 3), (200, 4), (220, 2)]);
        assert_eq!(out, vec![1, 3, 4]);
        assert_eq!(
            st,
            ReorderStats {
                lost: 0,
                duplicated: 0,
                late: 1
            }
        );
    }

    #[test]
    fn duplicates_counted_in_and_out_of_window() {
        let (out, st) = run(
            cfg(),
            &[(0, 1), (1, 1), (20, 3), (21, 3), (40, 2), (300, 2)],
        );
        assert_eq!(out, vec![1, 2, 3]);
        assert_eq!(st.duplicated, 3);
        assert_eq!(st.lost, 0);
    }

    #[test]
    fn window_overflow_forces_release() {
        // 2 is missing; 3..=12 arrive within max_delay, so capacity (8) forces the skip.
        let mut input = vec![(0, 1)];
        for s in 3..=12 {
            input.push((s, s));
        }
        let (out, st) = run(cfg(), &input);
        assert_eq!(out, [1].into_iter().chain(3..=12).collect::<Vec<_>>());
        assert_eq!(st.lost, 1);
    }

    #[test]
    fn huge_jump_forward_counts_gap_once() {
        let (out, st) = run(cfg(), &[(0, 1), (20, 2), (40, 10_002), (60, 10_003)]);
        assert_eq!(out, vec![1, 2, 10_002, 10_003]);
        assert_eq!(st.lost, 9_999);
    }

    #[test]
    fn packet_far_older_than_a_waiting_start_is_late() {
        // Found by the ingest fuzzer: during the start hold, a packet more than a window
        // older than the one waiting.
        let (out, st) = run(cfg(), &[(0, 1000), (10, 10), (20, 1001)]);
        assert_eq!(out, vec![1000, 1001]);
        assert_eq!(st.late, 1);
    }

    #[test]
    fn timeout_is_reported() {
        let mut rb: ReorderBuffer<u64> = ReorderBuffer::new(cfg());
        assert_eq!(rb.admit(ExtSeq(5)), Admission::Store);
        *rb.insert(ExtSeq(5), Micros::from_millis(10)).unwrap() = 5;
        assert_eq!(rb.poll_timeout(), Some(Micros::from_millis(110)));
        assert!(rb.pop(Micros::from_millis(109)).is_none());
        assert_eq!(*rb.pop(Micros::from_millis(110)).unwrap().item, 5);
    }

    #[test]
    fn random_shuffles_release_every_packet_once() {
        // Deterministic LCG so the test needs no RNG crate.
        let mut x: u64 = 12345;
        let mut rnd = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 33
        };
        for _ in 0..50 {
            let n = 500u64;
            let mut input: Vec<(u64, u64)> = (0..n).map(|i| (i * 20, i)).collect();
            // Displace some packets by up to 3 places (60 ms), inside max_delay.
            for i in 0..n as usize - 3 {
                if rnd() % 10 == 0 {
                    let j = i + 1 + (rnd() % 3) as usize;
                    input.swap(i, j);
                }
            }
            let input: Vec<_> = input
                .iter()
                .enumerate()
                .map(|(i, &(_, s))| (i as u64 * 20, s))
                .collect();
            let (out, st) = run(
                ReorderConfig {
                    capacity: 32,
                    max_delay: Micros::from_millis(200),
                },
                &input,
            );
            assert_eq!(out, (0..n).collect::<Vec<_>>());
            assert_eq!(st, ReorderStats::default());
        }
    }
}
