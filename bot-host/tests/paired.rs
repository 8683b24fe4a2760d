//! `bot-host replay --paired`: the dual-bot fixture legs recorded, merged and checked; a leg
//! of another call rejected. Needs the generated fixtures (scripts/test.sh makes them).

use std::path::{Path, PathBuf};
use std::process::Command;

use bot_host::pair::{replay_pair, CoarseAlignment, PairOptions, PairSummary};
use serde_json::Value;

fn generated(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/generated")
        .join(name);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "note: {} absent (run fixtures/generate.sh); skipped",
            p.display()
        );
        None
    }
}

fn pair(
    primary: PathBuf,
    paired: PathBuf,
    name: &str,
    targeted: Option<&str>,
) -> (tempfile::TempDir, PathBuf, PairSummary) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let summary = replay_pair(&PairOptions {
        primary,
        paired,
        out: out.clone(),
        keys: Vec::new(),
        paired_keys: Vec::new(),
        call_id: Some(name.into()),
        targeted: targeted.map(String::from),
    })
    .unwrap();
    (tmp, out, summary)
}

fn opusinfo_clean(file: &Path) {
    let out = Command::new("opusinfo")
        .arg(file)
        .output()
        .expect("opusinfo installed");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {text}", file.display());
    assert!(
        !text.to_lowercase().contains("warning"),
        "{}: {text}",
        file.display()
    );
}

fn truth_of(capture: &Path) -> Value {
    let name = capture.file_stem().unwrap().to_string_lossy().into_owned();
    let path = capture.with_file_name(format!("{name}.truth.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every merged track against the truth, slot by slot: each real packet is the truth's
/// packet at its position (nothing misplaced), no position twice, and the real positions are
/// exactly those at least one leg received (nothing missed).
fn assert_frame_exact(out: &Path, summary: &PairSummary, tp: &Value, tq: &Value) {
    let flows = |t: &Value| t["flows"].as_array().unwrap().clone();
    for m in &summary.merged {
        let pt = summary
            .primary
            .tracks
            .iter()
            .find(|t| t.participant == m.participant)
            .unwrap();
        let fp = flows(tp)
            .into_iter()
            .find(|f| f["src"] == pt.flow.src.to_string().as_str())
            .unwrap();
        let fq = flows(tq)
            .into_iter()
            .find(|f| f["participant"] == fp["participant"])
            .unwrap();
        let ctx = format!("{} ({})", m.participant, fp["participant"]);
        let (pp, pq) = (
            fp["packets"].as_array().unwrap(),
            fq["packets"].as_array().unwrap(),
        );
        let on = |v: &Value| v["on_wire"].as_bool().unwrap();
        // The merged track's first slot in truth frames: the primary's first received frame,
        // moved back by however much earlier the merged track starts.
        let p_start = summary.primary.call_start.0 as f64 / 1000.0 + pt.start_ms;
        let lead = (p_start - m.start_unix_ms) / 20.0;
        assert!((lead - lead.round()).abs() < 1e-6, "{ctx}: lead {lead}");
        let first = pp.iter().position(on).unwrap() as i64 - lead.round() as i64;
        let any = |i: usize| on(&pp[i]) || on(&pq[i]);
        let first_any = (0..pp.len()).find(|&i| any(i)).unwrap() as i64;
        let last_any = (0..pp.len()).rev().find(|&i| any(i)).unwrap() as i64;
        assert_eq!(
            first, first_any,
            "{ctx}: merged track starts at the earlier leg"
        );

        let file =
            std::fs::File::open(out.join("merged").join(format!("{}.ogg", m.participant))).unwrap();
        let mut r = ogg::PacketReader::new(std::io::BufReader::new(file));
        let head = r.read_packet_expected().unwrap();
        let channels = head.data[9];
        r.read_packet_expected().unwrap();
        let mut seen = vec![false; pp.len()];
        let mut pos = 0u64;
        while let Some(p) = r.read_packet().unwrap() {
            let n = media_core::opus::packet_samples_48k(&p.data).unwrap();
            if !media_core::merge::is_silence(&p.data, n, channels) {
                assert_eq!(pos % 960, 0, "{ctx}: packet off the 20 ms grid at {pos}");
                let idx = (first + (pos / 960) as i64) as usize;
                let fnv = format!("{:016x}", media_core::merge::fnv1a64(&p.data));
                assert_eq!(
                    fnv,
                    pp[idx]["fnv"].as_str().unwrap(),
                    "{ctx}: frame {idx} misplaced"
                );
                assert!(!seen[idx], "{ctx}: frame {idx} twice");
                seen[idx] = true;
            }
            pos += u64::from(n);
        }
        assert_eq!(
            pos,
            (last_any - first + 1) as u64 * 960,
            "{ctx}: merged length"
        );
        for i in first_any..=last_any {
            let i = i as usize;
            assert_eq!(seen[i], any(i), "{ctx}: frame {i}");
        }
    }
}

#[test]
fn dual_legs_merge_into_one_recording() {
    let (Some(primary), Some(paired)) = (
        generated("dual-primary.pcap"),
        generated("dual-paired.pcap"),
    ) else {
        return;
    };
    let (tp, tq) = (truth_of(&primary), truth_of(&paired));
    let (_tmp, out, summary) = pair(primary, paired, "dual", Some("participant-1"));
    assert!(summary.problems.is_empty(), "{:?}", summary.problems);
    assert_eq!(summary.merged.len(), 2);
    assert_frame_exact(&out, &summary, &tp, &tq);
    // Both legs' tracks carry RTCP sender reports, and each counts every SR on its flow.
    for (leg, truth) in [(&summary.primary, &tp), (&summary.paired, &tq)] {
        for t in &leg.tracks {
            let f = truth["flows"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["src"] == t.flow.src.to_string().as_str())
                .unwrap();
            assert_eq!(
                t.stats.rtcp,
                f["rtcp"].as_u64().unwrap(),
                "{}",
                t.participant
            );
            assert_eq!(t.stats.sender_reports, t.stats.rtcp);
            assert!(
                t.stats.sr_anchor.is_some(),
                "{}: no SR anchor",
                t.participant
            );
        }
    }
    for leg in ["primary", "paired", "merged"] {
        for f in [
            "meta.json",
            "segments.json",
            "mixed.ogg",
            "participant-1.ogg",
            "participant-2.ogg",
        ] {
            assert!(out.join(leg).join(f).exists(), "{leg}/{f}");
        }
        opusinfo_clean(&out.join(leg).join("mixed.ogg"));
    }
    for m in &summary.merged {
        assert!(m.paired_with.is_some(), "{} not paired", m.participant);
        assert_eq!(m.coarse, Some(CoarseAlignment::RtcpSr), "{}", m.participant);
        let s = &m.stats;
        let total = s.frames_primary + s.frames_paired + s.frames_lost_both;
        // The primary lost 10 s (500 frames) to its outage plus 5%; the paired leg fills them.
        assert!(s.frames_paired >= 450, "{}: {s:?}", m.participant);
        // What both lost: the paired leg's 5% inside the primary's outage, and 5% x 5%
        // elsewhere: about 3% of the frames; far less than either leg alone.
        assert!(
            (s.frames_lost_both as f64) < 0.035 * total as f64,
            "{}: {s:?}",
            m.participant
        );
        assert!(
            (s.offset_ms - 800.0).abs() < 60.0,
            "{}: offset {}",
            m.participant,
            s.offset_ms
        );
        opusinfo_clean(&out.join("merged").join(format!("{}.ogg", m.participant)));
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("merged/meta.json")).unwrap()).unwrap();
    assert_eq!(meta["double_recording"], "pro");
    assert_eq!(meta["tracks"].as_array().unwrap().len(), 2);
    for t in meta["tracks"].as_array().unwrap() {
        assert_eq!(t["alignment"]["coarse_from"], "rtcp-sr");
    }
    let leg_meta: Value =
        serde_json::from_slice(&std::fs::read(out.join("paired/meta.json")).unwrap()).unwrap();
    for t in leg_meta["tracks"].as_array().unwrap() {
        assert!(t["sr_anchor"]["ntp_unix_ms"].as_f64().unwrap() > 1.7e12);
        assert!(t["sr_anchor"]["track_ms"].as_f64().is_some());
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn sender_reports_align_a_paired_host_clock_seconds_off() {
    let (Some(primary), Some(paired)) = (
        generated("dual-primary.pcap"),
        generated("dual-skewed-paired.pcap"),
    ) else {
        return;
    };
    let (tp, tq) = (truth_of(&primary), truth_of(&paired));
    let skew = tq["clock_offset_ms"].as_f64().unwrap();
    assert!(
        skew > 2000.0,
        "the leg must be off by more than the content search"
    );
    let (_tmp, out, summary) = pair(primary, paired, "skewed", None);
    assert!(summary.problems.is_empty(), "{:?}", summary.problems);
    assert_eq!(summary.merged.len(), 2);
    for m in &summary.merged {
        assert!(m.paired_with.is_some(), "{} not paired", m.participant);
        assert_eq!(m.coarse, Some(CoarseAlignment::RtcpSr), "{}", m.participant);
        let s = &m.stats;
        // Reported as the hosts' clock difference, found by content once the SRs placed it.
        assert!(
            (s.offset_ms - skew).abs() < 60.0,
            "{}: offset {}",
            m.participant,
            s.offset_ms
        );
        assert!(s.frames_paired >= 450, "{}: {s:?}", m.participant);
        assert!(s.matched_frames >= 100, "{}: {s:?}", m.participant);
    }
    assert_frame_exact(&out, &summary, &tp, &tq);
    let meta: Value =
        serde_json::from_slice(&std::fs::read(out.join("merged/meta.json")).unwrap()).unwrap();
    for t in meta["tracks"].as_array().unwrap() {
        assert_eq!(t["alignment"]["coarse_from"], "rtcp-sr");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_leg_of_another_call_is_rejected() {
    let (Some(primary), Some(paired)) = (
        generated("dual-primary.pcap"),
        generated("dual-foreign-paired.pcap"),
    ) else {
        return;
    };
    let (_tmp, out, summary) = pair(primary, paired, "foreign", None);
    assert!(summary.merged.is_empty());
    assert!(
        summary.problems.iter().any(|p| p.contains("another call")),
        "{:?}",
        summary.problems
    );
    assert!(!out.join("merged").exists());
    // Both legs are still recorded on their own.
    assert!(out.join("primary/participant-1.ogg").exists());
    assert!(out.join("paired/participant-1.ogg").exists());
    let _ = std::fs::remove_dir_all(&out);
}
