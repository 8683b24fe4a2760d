//! Placing packets on a participant track's time line.
//!
//! The output file must play every packet at the moment it was spoken, across losses, DTX
//! pauses, SSRC changes and timestamp jumps. Two clocks describe a packet's moment: its RTP
//! timestamp (exact, but restarts or jumps when a sender restarts or a middlebox rewrites it)
//! and its arrival time (always continuous, but jittered). The RTP clock decides as long as it
//! agrees with the arrival clock within tolerance; when they disagree in a way jitter cannot
//! explain, the arrival clock wins and the RTP clock is re-anchored:
//!
//! * RTP time moves forward more than `jump_threshold` beyond arrival time (a timestamp jump
//!   with no pause in arrival), or moves backward at all;
//! * arrival time moves forward more than `pause_threshold` beyond RTP time (a sender that
//!   paused without advancing its timestamps).
//!
//! A network stall followed by a burst (arrival late, RTP contiguous) is *not* a disagreement:
//! the packets are placed by RTP time, where they were spoken.
//!
//! Positions are 48 kHz samples since the track's first packet (Opus's granule clock).

use crate::seq::ExtTs;
use crate::time::{micros_to_samples48, Micros};

/// Tolerances for clock disagreement.
#[derive(Debug, Clone, Copy)]
pub struct TimelineConfig {
    /// How far RTP time may run ahead of arrival time between consecutive packets before the
    /// timestamps are considered to have jumped. Larger than realistic jitter (the reorder
    /// window already bounds it at 200 ms), smaller than any pause worth keeping.
    pub jump_threshold: Micros,
    /// How far arrival time may run ahead of RTP time before the sender is considered to have
    /// paused without advancing its clock.
    pub pause_threshold: Micros,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        TimelineConfig {
            jump_threshold: Micros::from_millis(400),
            pause_threshold: Micros::from_millis(2000),
        }
    }
}

/// Why the time line was re-anchored on the arrival clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resync {
    /// A new RTP source (SSRC change) started on the track.
    NewSource,
    /// The RTP timestamp jumped forward without a matching pause in arrival.
    TimestampJump,
    /// The RTP timestamp moved backward.
    TimestampBackward,
    /// Arrival paused far longer than the RTP timestamps advanced.
    UnclockedPause,
}

#[derive(Debug, Clone, Copy)]
struct Anchor {
    ts: u64,
    pos: i64,
}

/// The mapping of one track's packets onto its time line.
#[derive(Debug, Clone)]
pub struct Timeline {
    config: TimelineConfig,
    clock_rate: u32,
    anchor: Option<Anchor>,
    /// Position and arrival of the last placed packet.
    last: Option<(i64, Micros)>,
    new_source: bool,
    resyncs: u64,
}

impl Timeline {
    /// A time line for a stream whose RTP clock runs at `clock_rate` Hz (48000 for Opus).
    pub fn new(clock_rate: u32, config: TimelineConfig) -> Self {
        Timeline {
            config,
            clock_rate: clock_rate.max(1),
            anchor: None,
            last: None,
            new_source: false,
            resyncs: 0,
        }
    }

    /// Sets the RTP clock rate once the stream's format is known (before its first packet).
    pub fn set_clock_rate(&mut self, clock_rate: u32) {
        self.clock_rate = clock_rate.max(1);
    }

    /// Announces that the next packet comes from a new RTP source (another SSRC) whose
    /// timestamps have an unrelated base: it is placed by its arrival time.
    pub fn new_source(&mut self) {
        self.new_source = true;
    }

    /// How many times the time line was re-anchored on the arrival clock.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// Places a packet with extended timestamp `ts` that arrived at `arrival`; returns its
    /// position in 48 kHz samples since the first packet, and the reason if the RTP clock was
    /// re-anchored.
    pub fn place(&mut self, ts: ExtTs, arrival: Micros) -> (u64, Option<Resync>) {
        let Some((last_pos, last_arrival)) = self.last else {
            self.anchor = Some(Anchor { ts: ts.0, pos: 0 });
            self.last = Some((0, arrival));
            self.new_source = false;
            return (0, None);
        };
        let d_arr = micros_to_samples48(arrival.signed_since(last_arrival));
        let by_arrival = last_pos + d_arr.max(0);
        let reason = if std::mem::take(&mut self.new_source) {
            Some(Resync::NewSource)
        } else {
            let anchor = self.anchor.unwrap_or(Anchor { ts: ts.0, pos: 0 });
            let by_rtp = anchor.pos + self.rtp_to_samples48(ts.0 as i64 - anchor.ts as i64);
            let d_rtp = by_rtp - last_pos;
            if d_rtp < 0 {
                Some(Resync::TimestampBackward)
            } else if d_rtp - d_arr > micros_to_samples48(self.config.jump_threshold.0 as i64) {
                Some(Resync::TimestampJump)
            } else if d_arr - d_rtp > micros_to_samples48(self.config.pause_threshold.0 as i64) {
                Some(Resync::UnclockedPause)
            } else {
                self.last = Some((by_rtp, arrival));
                return (by_rtp as u64, None);
            }
        };
        self.resyncs += 1;
        self.anchor = Some(Anchor {
            ts: ts.0,
            pos: by_arrival,
        });
        self.last = Some((by_arrival, arrival));
        (by_arrival as u64, reason)
    }

    /// An RTP timestamp difference in the stream's clock as 48 kHz samples.
    pub fn rtp_to_samples48(&self, ticks: i64) -> i64 {
        if self.clock_rate == 48_000 {
            ticks
        } else {
            (ticks as i128 * 48_000 / self.clock_rate as i128) as i64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Micros {
        Micros::from_millis(v)
    }

    #[test]
    fn contiguous_stream_follows_rtp_despite_jitter() {
        let mut t = Timeline::new(48_000, TimelineConfig::default());
        let jitter = [0u64, 35, 5, 60, 10, 0, 150, 20];
        for i in 0..200u64 {
            let (pos, r) = t.place(ExtTs(1000 + i * 960), ms(i * 20 + jitter[i as usize % 8]));
            assert_eq!(pos, i * 960);
            assert!(r.is_none());
        }
    }

    #[test]
    fn loss_gap_is_kept_from_rtp() {
        let mut t = Timeline::new(48_000, TimelineConfig::default());
        t.place(ExtTs(0), ms(0));
        // 3 s outage: RTP and arrival agree.
        let (pos, r) = t.place(ExtTs(960 * 151), ms(20 * 151));
        assert_eq!(pos, 960 * 151);
        assert!(r.is_none());
    }

    #[test]
    fn stall_then_burst_keeps_rtp_positions() {
        let mut t = Timeline::new(48_000, TimelineConfig::default());
        t.place(ExtTs(0), ms(0));
        // Next three packets arrive together 500 ms late.
        for i in 1..4u64 {
            let (pos, r) = t.place(ExtTs(i * 960), ms(560));
            assert_eq!(pos, i * 960);
            assert!(r.is_none());
        }
    }

    #[test]
    fn timestamp_jump_follows_arrival() {
        let mut t = Timeline::new(48_000, TimelineConfig::default());
        for i in 0..10u64 {
            t.place(ExtTs(i * 960), ms(i * 20));
        }
        let (pos, r) = t.place(ExtTs(9 * 960 + 1_000_000), ms(200));
        assert_eq!(r, Some(Resync::TimestampJump));
        assert_eq!(pos, 10 * 960);
        // And the RTP clock rules again from the new anchor.
        let (pos, r) = t.place(ExtTs(10 * 960 + 1_000_000), ms(221));
        assert_eq!((pos, r), (11 * 960, None));
    }

    #[test]
    fn backward_timestamp_follows_arrival() {
        let mut t = Timeline::new(48_000, TimelineConfig::default());
        t.place(ExtTs(100_000), ms(0));
        let (pos, r) = t.place(ExtTs(50_000), ms(20));
        assert_eq!(r, Some(Resync::TimestampBackward));
        assert_eq!(pos, 960);
    }

    #[test]
    fn new_source_is_placed_by_arrival() {
        let mut t = Timeline::new(48_000, TimelineConfig::default());
        t.place(ExtTs(0), ms(0));
        t.new_source();
        let (pos, r) = t.place(ExtTs(777_777), ms(1000));
        assert_eq!(r, Some(Resync::NewSource));
        assert_eq!(pos, 48_000);
        assert_eq!(t.resyncs(), 1);
    }

    #[test]
    fn unclocked_pause_follows_arrival() {
        let mut t = Timeline::new(48_000, TimelineConfig::default());
        t.place(ExtTs(0), ms(0));
        let (pos, r) = t.place(ExtTs(960), ms(5020));
        assert_eq!(r, Some(Resync::UnclockedPause));
        assert_eq!(pos, 5020 * 48);
    }

    #[test]
    fn other_clock_rates_scale() {
        let mut t = Timeline::new(16_000, TimelineConfig::default());
        t.place(ExtTs(0), ms(0));
        let (pos, _) = t.place(ExtTs(320), ms(20));
        assert_eq!(pos, 960);
    }
}
