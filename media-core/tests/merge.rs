//! Dual-bot merging checked against the dual fixtures (fixtures/generate.sh; the hour-long
//! pair with `fixtures/generate.sh --dual-long`): each leg's capture is recorded here with
//! `ParticipantTrack`, the legs of each participant are merged, and the merged file is read
//! back with the `ogg` crate and compared with the truth packet by packet.

mod common;

use media_core::merge::{merge_legs, LegTrack, MergeError, MergeStats};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

fn generated() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/generated");
    if d.join("dual-primary.truth.json").exists() {
        Some(d)
    } else {
        eprintln!(
            "note: {} has no dual fixtures (run fixtures/generate.sh); skipped",
            d.display()
        );
        None
    }
}

fn truth(dir: &Path, name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.truth.json"))).unwrap()).unwrap()
}

/// One recorded flow: its Ogg bytes and its first sample on the leg's clock (Unix ms).
struct Recorded {
    ogg: Vec<u8>,
    start_unix_ms: f64,
    /// Its first sample on the sender's clock, from the first RTCP SR placed on the track.
    sender_start_ms: Option<f64>,
}

/// What places the paired leg before the content match.
#[derive(Clone, Copy, PartialEq)]
enum Coarse {
    /// Each host's arrival clock.
    Arrival,
    /// The sender's NTP clock through each track's SR anchor, on the primary host's clock.
    SenderReports,
}

/// The paired track's start as handed to the merge.
fn paired_start(lp: &Recorded, lq: &Recorded, coarse: Coarse) -> f64 {
    match coarse {
        Coarse::Arrival => lq.start_unix_ms,
        Coarse::SenderReports => {
            let (a, b) = (lp.sender_start_ms, lq.sender_start_ms);
            lp.start_unix_ms + b.expect("paired SR anchor") - a.expect("primary SR anchor")
        }
    }
}

/// Every UDP flow of a capture recorded as the recorder does, keyed by "src->dst".
fn record(pcap: &Path) -> BTreeMap<String, Recorded> {
    common::record_capture(pcap)
        .into_iter()
        .map(|f| {
            if f.stats.resyncs > 0 {
                println!(
                    "{}: {}: {} time line resyncs",
                    pcap.display(),
                    f.key,
                    f.stats.resyncs
                );
            }
            let first = f.stats.first_arrival.expect("flow has audio");
            let recorded = Recorded {
                ogg: f.ogg,
                start_unix_ms: first.0 as f64 / 1000.0,
                sender_start_ms: f.stats.sr_anchor.map(|a| a.track_start_sender_ms()),
            };
            (f.key, recorded)
        })
        .collect()
}

fn flow<'a>(t: &'a Value, participant: &str) -> &'a Value {
    t["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["participant"] == participant)
        .unwrap()
}

fn flow_key(f: &Value) -> String {
    format!(
        "{}->{}",
        f["src"].as_str().unwrap(),
        f["dst"].as_str().unwrap()
    )
}

fn fnv64(data: &[u8]) -> String {
    format!("{:016x}", media_core::merge::fnv1a64(data))
}

/// The merged file read back with the `ogg` crate: (48 kHz position, payload hash) of each
/// real packet, and the total length in samples.
fn read_merged(bytes: &[u8]) -> (Vec<(u64, String)>, u64) {
    let mut r = ogg::PacketReader::new(Cursor::new(bytes));
    let head = r.read_packet_expected().unwrap();
    assert_eq!(&head.data[..8], b"OpusHead");
    assert_eq!(u16::from_le_bytes([head.data[10], head.data[11]]), 312);
    let channels = head.data[9];
    let tags = r.read_packet_expected().unwrap();
    assert_eq!(&tags.data[..8], b"OpusTags");
    let (mut pos, mut real, mut last_granule) = (0u64, Vec::new(), 0);
    while let Some(p) = r.read_packet().unwrap() {
        let n = media_core::opus::packet_samples_48k(&p.data).unwrap();
        if !media_core::merge::is_silence(&p.data, n, channels) {
            real.push((pos, fnv64(&p.data)));
        }
        pos += u64::from(n);
        last_granule = p.absgp_page();
    }
    assert_eq!(last_granule, pos, "final granule");
    (real, pos)
}

/// Per-participant result of a checked merge.
struct Checked {
    stats: MergeStats,
    slots: u64,
    lost_both: u64,
    lost_outside_outage: u64,
    slots_outside_outage: u64,
    outage_from_paired: u64,
    outage_lost: u64,
}

/// Merges one participant's legs and checks every merged packet against the truth.
fn merge_and_check(
    dir: &Path,
    primary: &str,
    paired: &str,
    participant: &str,
    outage_ms: Option<(f64, f64)>,
    coarse: Coarse,
) -> Checked {
    let (tp, tq) = (truth(dir, primary), truth(dir, paired));
    assert_eq!(tp["leg"], "primary");
    assert_eq!(tq["leg"], "paired");
    let (fp, fq) = (flow(&tp, participant), flow(&tq, participant));
    let (rp, rq) = (
        record(&dir.join(tp["capture"].as_str().unwrap())),
        record(&dir.join(tq["capture"].as_str().unwrap())),
    );
    let (lp, lq) = (&rp[&flow_key(fp)], &rq[&flow_key(fq)]);
    let mut out = Vec::new();
    let (stats, start) = merge_legs(
        LegTrack {
            reader: Cursor::new(&lp.ogg),
            start_unix_ms: lp.start_unix_ms,
        },
        LegTrack {
            reader: Cursor::new(&lq.ogg),
            start_unix_ms: paired_start(lp, lq, coarse),
        },
        "dual",
        participant,
        &mut out,
    )
    .unwrap();
    let (real, total) = read_merged(&out);

    let pk = |f: &Value| f["packets"].as_array().unwrap().clone();
    let (pp, pq) = (pk(fp), pk(fq));
    assert_eq!(pp.len(), pq.len());
    let on = |v: &Value| v["on_wire"].as_bool().unwrap();
    // Where the merged track starts, in truth frames: the primary's first received frame,
    // moved back by the frames the merged track starts earlier.
    let first_p = pp.iter().position(on).unwrap() as i64;
    let lead = (lp.start_unix_ms - start) / 20.0;
    assert!(
        (lead - lead.round()).abs() < 1e-6,
        "merged start {start} is not on the primary's frame grid ({lead} frames)"
    );
    let first = first_p - lead.round() as i64;
    let last = (0..pp.len())
        .rev()
        .find(|&i| on(&pp[i]) || on(&pq[i]))
        .unwrap() as i64;
    let first_any = (0..pp.len()).find(|&i| on(&pp[i]) || on(&pq[i])).unwrap() as i64;
    assert_eq!(first, first_any, "merged track starts at the earlier leg");
    assert_eq!(total, (last - first + 1) as u64 * 960, "merged length");

    // Every real packet is the truth's packet at that position: nothing duplicated (one
    // packet per position), nothing misplaced (hash and position agree), nothing missed
    // (the real positions are exactly those some leg received).
    let mut seen = vec![false; pp.len()];
    for (pos, h) in &real {
        assert_eq!(pos % 960, 0, "packet off the 20 ms grid at {pos}");
        let idx = first + (*pos / 960) as i64;
        let t = &pp[idx as usize];
        assert_eq!(h, t["fnv"].as_str().unwrap(), "frame {idx} misplaced");
        assert!(!seen[idx as usize], "frame {idx} twice");
        seen[idx as usize] = true;
    }
    let mut c = Checked {
        stats,
        slots: (last - first + 1) as u64,
        lost_both: 0,
        lost_outside_outage: 0,
        slots_outside_outage: 0,
        outage_from_paired: 0,
        outage_lost: 0,
    };
    for i in first..=last {
        let i = i as usize;
        let any = on(&pp[i]) || on(&pq[i]);
        assert_eq!(
            seen[i],
            any,
            "frame {i}: merged has it {} / legs {} {}; {:?}",
            seen[i],
            on(&pp[i]),
            on(&pq[i]),
            c.stats
        );
        let pos_ms = fp["start_ms"].as_f64().unwrap() + pp[i]["pos_ms"].as_f64().unwrap();
        let in_outage = outage_ms.is_some_and(|(a, b)| pos_ms >= a && pos_ms < b);
        if in_outage {
            c.outage_from_paired += u64::from(seen[i] && !on(&pp[i]));
            c.outage_lost += u64::from(!any);
        } else {
            c.slots_outside_outage += 1;
            c.lost_outside_outage += u64::from(!any);
        }
        c.lost_both += u64::from(!any);
    }
    assert_eq!(c.stats.frames_lost_both, c.lost_both);
    assert_eq!(
        c.stats.frames_primary,
        (first..=last).filter(|&i| on(&pp[i as usize])).count() as u64
    );
    c
}

#[test]
fn dual_legs_merge_without_loss_gaps_or_misplaced_frames() {
    let Some(dir) = generated() else { return };
    let tp = truth(&dir, "dual-primary");
    let call = tp["call_duration_ms"].as_f64().unwrap();
    let outage = (call / 2.0 - 5000.0, call / 2.0 + 5000.0);
    for who in ["A", "B"] {
        let c = merge_and_check(
            &dir,
            "dual-primary",
            "dual-paired",
            who,
            Some(outage),
            Coarse::Arrival,
        );
        let s = &c.stats;
        let loss = c.lost_both as f64 / c.slots as f64;
        let loss_out = c.lost_outside_outage as f64 / c.slots_outside_outage as f64;
        println!(
            "{who}: {} slots, primary {} paired {} lost-by-both {} ({:.2}% overall, {:.2}% \
             outside the outage); outage: {} from paired, {} lost (the paired leg's own loss); \
             offset {:.1} ms, drift {:.1} ppm, matched {}/{}",
            c.slots,
            s.frames_primary,
            s.frames_paired,
            c.lost_both,
            loss * 100.0,
            loss_out * 100.0,
            c.outage_from_paired,
            c.outage_lost,
            s.offset_ms,
            s.drift_ppm,
            s.matched_frames,
            s.compared_frames
        );
        // Independent 5% loss on each leg: what both lose is ~0.25% of the slots.
        assert!(loss_out <= 0.005, "{who}: merged loss {loss_out}");
        // The outage leaves no gap: every slot the paired leg received is in the merge
        // (checked slot by slot above); what is missing there is the paired leg's own loss.
        assert!(c.outage_from_paired >= 400, "{who}: outage not filled");
        assert!(c.outage_lost * 20 <= c.outage_from_paired, "{who}");
        assert!(
            (s.offset_ms - 800.0).abs() < 25.0,
            "{who}: offset {}",
            s.offset_ms
        );
        assert_eq!(s.reanchors, 0);
    }
}

#[test]
fn a_paired_host_clock_beyond_the_search_window_is_aligned_by_sender_reports() {
    let Some(dir) = generated() else { return };
    let (tp, tq) = (
        truth(&dir, "dual-primary"),
        truth(&dir, "dual-skewed-paired"),
    );
    assert!(tq["clock_offset_ms"].as_f64().unwrap() > 2000.0);
    let call = tp["call_duration_ms"].as_f64().unwrap();
    let outage = (call / 2.0 - 5000.0, call / 2.0 + 5000.0);
    let (rp, rq) = (
        record(&dir.join("dual-primary.pcap")),
        record(&dir.join("dual-skewed-paired.pcap")),
    );
    for who in ["A", "B"] {
        let (lp, lq) = (
            &rp[&flow_key(flow(&tp, who))],
            &rq[&flow_key(flow(&tq, who))],
        );
        // Arrival times alone put the paired leg 3.5 s off, beyond the content search: the
        // merge must not place its frames there; it finds nothing matching and refuses.
        let mut out = Vec::new();
        let r = merge_legs(
            LegTrack {
                reader: Cursor::new(&lp.ogg),
                start_unix_ms: lp.start_unix_ms,
            },
            LegTrack {
                reader: Cursor::new(&lq.ogg),
                start_unix_ms: paired_start(lp, lq, Coarse::Arrival),
            },
            "dual",
            who,
            &mut out,
        );
        // (The primary's outage leaves few of its frames facing the paired leg's, too few
        // for the same-call test: the refusal comes from the frames that contradict it.)
        match r {
            Err(e @ (MergeError::Unaligned { .. } | MergeError::NotSameCall { .. })) => {
                println!("{who}: arrival only: refused: {e}");
            }
            other => panic!(
                "{who}: arrival alignment not refused: {:?}",
                other.map(|x| x.0)
            ),
        }
        assert!(out.is_empty(), "{who}: nothing written");
        // The sender reports align it, and the merge is exact slot by slot.
        let c = merge_and_check(
            &dir,
            "dual-primary",
            "dual-skewed-paired",
            who,
            Some(outage),
            Coarse::SenderReports,
        );
        let s = &c.stats;
        println!(
            "{who}: SR alignment: residual {:.3} ms, primary {} paired {} lost-by-both {}, \
             matched {}/{}",
            s.offset_ms,
            s.frames_primary,
            s.frames_paired,
            c.lost_both,
            s.matched_frames,
            s.compared_frames
        );
        // Both tracks are on the sender's RTP clock and the SRs relate them exactly: the
        // content match confirms the SR placement to the sample.
        assert!(s.offset_ms.abs() < 0.01, "{who}: residual {}", s.offset_ms);
        assert!(c.outage_from_paired >= 400, "{who}: outage not filled");
        assert_eq!(s.reanchors, 0);
    }
}

#[test]
fn a_paired_leg_of_another_call_is_rejected() {
    let Some(dir) = generated() else { return };
    let (tp, tf) = (
        truth(&dir, "dual-primary"),
        truth(&dir, "dual-foreign-paired"),
    );
    let (rp, rf) = (
        record(&dir.join("dual-primary.pcap")),
        record(&dir.join("dual-foreign-paired.pcap")),
    );
    for who in ["A", "B"] {
        let (lp, lf) = (
            &rp[&flow_key(flow(&tp, who))],
            &rf[&flow_key(flow(&tf, who))],
        );
        let r = merge_legs(
            LegTrack {
                reader: Cursor::new(&lp.ogg),
                start_unix_ms: lp.start_unix_ms,
            },
            LegTrack {
                reader: Cursor::new(&lf.ogg),
                start_unix_ms: lf.start_unix_ms,
            },
            "dual",
            who,
            Vec::new(),
        );
        match r {
            Err(MergeError::NotSameCall { matched, compared }) => {
                println!("{who}: foreign leg rejected, {matched} of {compared} frames match");
                assert!(compared >= 100, "{who}: too little compared ({compared})");
            }
            other => panic!("{who}: foreign leg not rejected: {:?}", other.map(|x| x.0)),
        }
    }
}

/// The hour: +800 ms offset, 100 ppm drift, 5% independent loss. Needs
/// `fixtures/generate.sh --dual-long` (fixtures/generated/long/); slow in a debug build (two hours of packets through
/// the recorder), so run it with `cargo test --release -p media-core --test merge --
/// --ignored`.
#[test]
#[ignore = "needs the dual-long fixtures; run in release"]
fn an_hour_with_offset_and_drift_stays_aligned_to_the_frame() {
    let Some(dir) = generated().map(|d| d.join("long")) else {
        return;
    };
    if !dir.join("dual-long-primary.truth.json").exists() {
        eprintln!("note: no dual-long fixtures (fixtures/generate.sh --dual-long); skipped");
        return;
    }
    let t0 = std::time::Instant::now();
    let c = merge_and_check(
        &dir,
        "dual-long-primary",
        "dual-long-paired",
        "A",
        None,
        Coarse::Arrival,
    );
    let s = &c.stats;
    println!(
        "hour: {} slots, primary {} paired {} lost-by-both {} ({:.3}%); every packet at its \
         truth position (alignment error 0 frames); offset {:.1} ms, drift {:.2} ppm, \
         re-anchors {}, matched {}/{}; {:.1} s",
        c.slots,
        s.frames_primary,
        s.frames_paired,
        c.lost_both,
        c.lost_both as f64 * 100.0 / c.slots as f64,
        s.offset_ms,
        s.drift_ppm,
        s.reanchors,
        s.matched_frames,
        s.compared_frames,
        t0.elapsed().as_secs_f64()
    );
    assert!(c.lost_both as f64 / c.slots as f64 <= 0.005);
}
