//! The media plane's counters: plain atomics the reader and worker threads bump without
//! coordination, read by [`MediaPlane::stats`](super::pipeline::MediaPlane::stats) and
//! rendered in the Prometheus text format by the host.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a datagram was dropped before reaching media-core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The worker's queue was full (the reader never blocks).
    QueueFull,
    /// No call expects media from the datagram's source address.
    UnknownSource,
    /// A call's per-call track limit was reached: a new SSRC got no track.
    UnknownSsrc,
    /// Too short to carry an RTP/RTCP header with an SSRC.
    Runt,
    /// The worker thread is gone (it panicked): its calls receive nothing more.
    WorkerGone,
}

impl DropReason {
    /// Every reason, in rendering order.
    pub const ALL: [DropReason; 5] = [
        DropReason::QueueFull,
        DropReason::UnknownSource,
        DropReason::UnknownSsrc,
        DropReason::Runt,
        DropReason::WorkerGone,
    ];

    /// The Prometheus label value.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::UnknownSource => "unknown_source",
            DropReason::UnknownSsrc => "unknown_ssrc",
            DropReason::Runt => "runt",
            DropReason::WorkerGone => "worker_gone",
        }
    }
}

/// Upper bounds (µs) of the per-packet processing-time histogram buckets; a last bucket
/// catches the rest (+Inf).
pub const LATENCY_BOUNDS_US: [u64; 14] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 100_000,
];

/// Counters of media-core that a sealed track adds to the plane's totals.
pub const TRACK_COUNTERS: [&str; 7] = [
    "malformed",
    "undecryptable",
    "late",
    "duplicated",
    "lost",
    "other_payload",
    "rtcp",
];

/// The shared counters.
#[derive(Debug, Default)]
pub struct Counters {
    pub(crate) packets: AtomicU64,
    pub(crate) bytes: AtomicU64,
    drops: [AtomicU64; DropReason::ALL.len()],
    pub(crate) active_calls: AtomicU64,
    pub(crate) calls_opened: AtomicU64,
    pub(crate) calls_sealed: AtomicU64,
    pub(crate) seal_failures: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    latency: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    latency_sum_ns: AtomicU64,
    track: [AtomicU64; TRACK_COUNTERS.len()],
}

impl Counters {
    pub(crate) fn count_drop(&self, reason: DropReason) {
        self.drops[reason as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn count_drops(&self, reason: DropReason, n: u64) {
        self.drops[reason as usize].fetch_add(n, Relaxed);
    }

    pub(crate) fn observe_ns(&self, ns: u64) {
        let i = LATENCY_BOUNDS_US
            .iter()
            .position(|&b| ns <= b * 1000)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        self.latency[i].fetch_add(1, Relaxed);
        self.latency_sum_ns.fetch_add(ns, Relaxed);
    }

    pub(crate) fn add_track(&self, values: [u64; TRACK_COUNTERS.len()]) {
        for (c, v) in self.track.iter().zip(values) {
            c.fetch_add(v, Relaxed);
        }
    }

    pub(crate) fn snapshot(&self, queue_depth: Vec<usize>) -> PlaneStats {
        PlaneStats {
            packets: self.packets.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            drops: DropReason::ALL.map(|r| (r, self.drops[r as usize].load(Relaxed))),
            queue_depth,
            active_calls: self.active_calls.load(Relaxed),
            calls_opened: self.calls_opened.load(Relaxed),
            calls_sealed: self.calls_sealed.load(Relaxed),
            seal_failures: self.seal_failures.load(Relaxed),
            write_errors: self.write_errors.load(Relaxed),
            latency_buckets: std::array::from_fn(|i| self.latency[i].load(Relaxed)),
            latency_sum_ns: self.latency_sum_ns.load(Relaxed),
            track_counters: std::array::from_fn(|i| {
                (TRACK_COUNTERS[i], self.track[i].load(Relaxed))
            }),
        }
    }
}

/// A snapshot of the plane's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaneStats {
    /// Datagrams received by the readers plus packets injected (WebRTC).
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Drops before media-core, by reason.
    pub drops: [(DropReason, u64); DropReason::ALL.len()],
    /// Messages waiting in each worker's queue.
    pub queue_depth: Vec<usize>,
    /// Calls open now.
    pub active_calls: u64,
    /// Calls opened since start.
    pub calls_opened: u64,
    /// Recordings sealed since start.
    pub calls_sealed: u64,
    /// Seals that failed (the recording stays in `active/` for recovery).
    pub seal_failures: u64,
    /// Track file writes that failed.
    pub write_errors: u64,
    /// Per-packet processing time histogram: counts per bucket of [`LATENCY_BOUNDS_US`] and
    /// a last +Inf bucket (not cumulative).
    pub latency_buckets: [u64; LATENCY_BOUNDS_US.len() + 1],
    /// Sum of all observed processing times, ns.
    pub latency_sum_ns: u64,
    /// media-core's own drop and loss counters of sealed tracks, by name.
    pub track_counters: [(&'static str, u64); TRACK_COUNTERS.len()],
}

impl PlaneStats {
    /// Drops for one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }

    /// The `q` quantile (0..=1) of the processing time, as the upper bound of its bucket, µs;
    /// `None` before any packet or when it falls in the +Inf bucket.
    pub fn latency_quantile_us(&self, q: f64) -> Option<u64> {
        let total: u64 = self.latency_buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.latency_buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return LATENCY_BOUNDS_US.get(i).copied();
            }
        }
        None
    }

    /// The counters in the Prometheus text exposition format, every metric name starting
    /// with `prefix` (e.g. `botho_media`).
    pub fn render_prometheus(&self, prefix: &str) -> String {
        let mut s = String::with_capacity(2048);
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = write!(
                s,
                "# HELP {prefix}_{name} {help}\n# TYPE {prefix}_{name} counter\n{prefix}_{name} {v}\n"
            );
        };
        counter(
            "packets_total",
            "Datagrams received (UDP and injected).",
            self.packets,
        );
        counter("bytes_total", "Bytes of received datagrams.", self.bytes);
        counter("calls_opened_total", "Calls opened.", self.calls_opened);
        counter(
            "recordings_sealed_total",
            "Recordings sealed.",
            self.calls_sealed,
        );
        counter(
            "seal_failures_total",
            "Seals that failed.",
            self.seal_failures,
        );
        counter(
            "write_errors_total",
            "Track file writes that failed.",
            self.write_errors,
        );
        let _ = write!(
            s,
            "# HELP {prefix}_drops_total Datagrams dropped, by reason.\n# TYPE {prefix}_drops_total counter\n"
        );
        for (r, n) in &self.drops {
            let _ = writeln!(s, "{prefix}_drops_total{{reason=\"{}\"}} {n}", r.label());
        }
        for (name, n) in &self.track_counters {
            let _ = writeln!(s, "{prefix}_drops_total{{reason=\"{name}\"}} {n}");
        }
        let _ = write!(
            s,
            "# HELP {prefix}_active_calls Calls being recorded.\n# TYPE {prefix}_active_calls gauge\n{prefix}_active_calls {}\n",
            self.active_calls
        );
        let _ = write!(
            s,
            "# HELP {prefix}_queue_depth Messages waiting per worker queue.\n# TYPE {prefix}_queue_depth gauge\n"
        );
        for (i, d) in self.queue_depth.iter().enumerate() {
            let _ = writeln!(s, "{prefix}_queue_depth{{worker=\"{i}\"}} {d}");
        }
        let name = format!("{prefix}_packet_processing_seconds");
        let _ = write!(
            s,
            "# HELP {name} Per-packet processing time on the worker.\n# TYPE {name} histogram\n"
        );
        let mut cumulative = 0;
        for (i, n) in self.latency_buckets.iter().enumerate() {
            cumulative += n;
            match LATENCY_BOUNDS_US.get(i) {
                Some(b) => {
                    let _ = writeln!(
                        s,
                        "{name}_bucket{{le=\"{}\"}} {cumulative}",
                        *b as f64 / 1e6
                    );
                }
                None => {
                    let _ = writeln!(s, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let _ = writeln!(s, "{name}_sum {}", self.latency_sum_ns as f64 / 1e9);
        let _ = writeln!(s, "{name}_count {cumulative}");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_quantiles() {
        let c = Counters::default();
        for _ in 0..98 {
            c.observe_ns(3_000); // 3 µs -> le 5
        }
        c.observe_ns(700_000); // 700 µs -> le 1000
        c.observe_ns(1_000); // exactly 1 µs -> le 1
        let s = c.snapshot(vec![0, 3]);
        assert_eq!(s.latency_buckets[0], 1);
        assert_eq!(s.latency_buckets[2], 98);
        assert_eq!(s.latency_buckets[9], 1);
        assert_eq!(s.latency_quantile_us(0.5), Some(5));
        assert_eq!(s.latency_quantile_us(0.99), Some(5));
        assert_eq!(s.latency_quantile_us(1.0), Some(1000));
        let text = s.render_prometheus("m");
        assert!(
            text.contains("m_packet_processing_seconds_bucket{le=\"0.000005\"} 99\n"),
            "{text}"
        );
        assert!(text.contains("m_packet_processing_seconds_count 100\n"));
        assert!(text.contains("m_queue_depth{worker=\"1\"} 3\n"));
    }

    #[test]
    fn drops_by_reason() {
        let c = Counters::default();
        c.count_drop(DropReason::UnknownSsrc);
        c.count_drop(DropReason::UnknownSsrc);
        c.count_drop(DropReason::QueueFull);
        let s = c.snapshot(Vec::new());
        assert_eq!(s.dropped(DropReason::UnknownSsrc), 2);
        assert_eq!(s.dropped(DropReason::QueueFull), 1);
        assert_eq!(s.dropped(DropReason::UnknownSource), 0);
        assert!(s
            .render_prometheus("m")
            .contains("m_drops_total{reason=\"unknown_ssrc\"} 2\n"));
    }
}
