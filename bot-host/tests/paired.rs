//! `bot-host replay --paired`: the dual-bot fixture legs recorded, merged and checked; a leg
//! of another call rejected. Needs the generated fixtures (scripts/test.sh makes them).

use std::path::{Path, PathBuf};
use std::process::Command;

use bot_host::pair::{replay_pair, PairOptions, PairSummary};

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

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bot-host-paired-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn pair(
    primary: PathBuf,
    paired: PathBuf,
    name: &str,
    targeted: Option<&str>,
) -> (PathBuf, PairSummary) {
    let out = tempdir(name);
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
    (out, summary)
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

#[test]
fn dual_legs_merge_into_one_recording() {
    let (Some(primary), Some(paired)) = (
        generated("dual-primary.pcap"),
        generated("dual-paired.pcap"),
    ) else {
        return;
    };
    let (out, summary) = pair(primary, paired, "dual", Some("participant-1"));
    assert!(summary.problems.is_empty(), "{:?}", summary.problems);
    assert_eq!(summary.merged.len(), 2);
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
    let (out, summary) = pair(primary, paired, "foreign", None);
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
