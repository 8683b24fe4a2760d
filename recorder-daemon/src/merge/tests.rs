//! The merge task end to end: two sealed legs written by bot-host's spool code from real Opus
//! audio, uploaded by the uploader to a local storage, merged, served as `?leg=merged` (whole,
//! Range, segments), cut to a late joiner's window, and deleted with the legs by retention.
//! Then a paired leg of another call (refused, visible in the detail, primary served instead)
//! and a storage outage (left pending).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use bot_host::live::spool::{SealTrack, Spool};
use media_core::ogg::{OggOpusWriter, OpusHead};
use media_core::transcode::{AudioFormat, Transcoder};

use super::*;
use crate::auth::{now_secs, Claims, TokenKeys};
use crate::storage::local::LocalStorage;
use crate::storage::memory::MemoryStorage;
use crate::store::sqlite::SqliteStore;
use crate::store::{Actor, DeletionScope};

const T0: &str = "2026-11-26T10:00:00Z";
/// Frames of 20 ms.
const A_FRAMES: usize = 150; // participant A: 0 .. 3 s
const B_START_MS: f64 = 1500.0; // participant B joins late: 1.5 s .. 3.5 s
const B_FRAMES: usize = 100;

fn t(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(T0)
        .unwrap()
        .with_timezone(&chrono::Utc)
        + chrono::Duration::milliseconds(ms)
}

/// Speech-like audio: noise shaped by a syllable envelope, so that every 20 ms Opus frame is
/// distinct (the merge aligns the legs by content). `seed` makes another call's audio.
fn opus_frames(frames: usize, seed: u32) -> (Vec<Vec<u8>>, u16) {
    let mut tc = Transcoder::new(AudioFormat::L16 {
        rate: 16_000,
        channels: 1,
    })
    .unwrap();
    let mut out = Vec::new();
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    for f in 0..frames {
        let mut payload = Vec::with_capacity(640);
        for i in 0..320 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let n = (x % 2000) as f64 - 1000.0;
            let s = (f * 320 + i) as f64 / 16_000.0;
            let env = 0.5 + 0.5 * (s * 2.0 * std::f64::consts::PI * 3.0).sin();
            let tone = (s * 2.0 * std::f64::consts::PI * (180.0 + seed as f64)).sin() * 6000.0;
            let v = ((n * 4.0 + tone) * env) as i16;
            payload.extend_from_slice(&v.to_be_bytes());
        }
        tc.push(&payload, |p, _| out.push(p.to_vec()));
    }
    (out, tc.pre_skip())
}

fn ogg(frames: &[Vec<u8>], pre_skip: u16, who: &str) -> Vec<u8> {
    let head = OpusHead {
        channels: 1,
        pre_skip,
        input_sample_rate: 16_000,
        output_gain: 0,
    };
    let mut w = OggOpusWriter::new(7, head, &[("PARTICIPANT", who)]);
    for f in frames {
        w.write_packet(f, 960);
    }
    w.finish();
    std::mem::take(w.output())
}

fn participant(id: &str, name: &str, msi: u32, join: i64, leave: Option<i64>) -> Value {
    let mut p = json!({
        "participantId": id,
        "party": {"kind": "user", "displayName": name},
        "msi": msi,
        "joinTime": crate::model::fmt_time(&t(join)),
    });
    if let Some(l) = leave {
        p["leaveTime"] = json!(crate::model::fmt_time(&t(l)));
    }
    p
}

/// Seals one leg in `<root>/spool` with bot-host's spool writer: tracks A and B (B from
/// `B_START_MS`), `started_at` = T0 + `clock_ms` (the leg's host clock), interaction metadata
/// as bot-host posts it.
fn seal_leg(root: &Path, id: &str, role: &str, clock_ms: i64, seed: u32) -> PathBuf {
    let spool = Spool::new(root).unwrap();
    let dir = spool.create_recording(id).unwrap();
    let (a, pre) = opus_frames(A_FRAMES, seed);
    let (b, _) = opus_frames(B_FRAMES, seed + 1);
    std::fs::write(dir.join("1001.ogg"), ogg(&a, pre, "Alice")).unwrap();
    std::fs::write(dir.join("2002.ogg"), ogg(&b, pre, "Bob")).unwrap();
    // Playable duration: the packets less the encoder delay the pre-skip discards.
    let playable = |n: usize| (n as f64 * 960.0 - f64::from(pre)) / 48.0;
    let track = |name: &str, msi: u32, start_ms: f64, n: usize| SealTrack {
        participant: name.into(),
        msi: Some(msi),
        file: Some(format!("{msi}.ogg")),
        start_ms,
        duration_ms: Some(playable(n)),
        level_segments: None,
        details: json!({"packets": {"written": n}}),
    };
    let interaction = json!({
        "callId": format!("call-{role}"),
        "recordingId": id,
        "botRole": role,
        "pairingKey": "chain:c1/alice",
        "startTime": T0,
        "direction": "None",
        "callType": "Internal Meeting",
        "participants": [
            participant("pa", "Alice", 1001, 0, Some(3000)),
            participant("pb", "Bob", 2002, 1500, Some(3500)),
            {"participantId": "pc", "party": {"kind": "user", "displayName": "Carol"}},
        ],
        "storage": "local",
        "doubleRecordingType": "Pro",
        "retentionDays": 30,
        "mediaStatus": "Pending",
    });
    let meta = json!({
        "call_id": "c1",
        "recording_id": id,
        "started_at": crate::model::fmt_time(&t(clock_ms)),
        "interaction": interaction,
    });
    let sealed = spool
        .seal(
            id,
            &[
                track("Alice", 1001, 0.0, a.len()),
                track("Bob", 2002, B_START_MS, b.len()),
            ],
            meta,
            false,
        )
        .unwrap();
    sealed.path
}

/// Playback duration of an Ogg Opus stream (last granule - pre-skip), 48 kHz samples.
fn duration_48k(bytes: &[u8]) -> u64 {
    let mut r = ogg::PacketReader::new(std::io::Cursor::new(bytes));
    let head = r.read_packet().unwrap().unwrap();
    let pre = u16::from_le_bytes([head.data[10], head.data[11]]) as u64;
    let mut last = 0;
    while let Some(p) = r.read_packet().unwrap() {
        last = p.absgp_page();
    }
    last.saturating_sub(pre)
}

/// `opusinfo` (Debian's opus-tools) has no complaint, when installed.
fn opusinfo_clean(bytes: &[u8]) {
    let Ok(path) = which("opusinfo") else {
        eprintln!("note: opusinfo not installed; decode check skipped");
        return;
    };
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    let out = std::process::Command::new(path)
        .arg(f.path())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        !text.contains("WARNING") && !text.contains("ERROR"),
        "{text}"
    );
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|c| c.is_file())
        })
        .ok_or(())
}

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: Arc<dyn Store>,
    storages: Storages,
    app: axum::Router,
    token: String,
}

impl Env {
    /// Both legs sealed (the paired one with `paired_seed`'s audio: the primary's seed is the
    /// same call) and uploaded.
    async fn new(paired_seed: u32) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        seal_leg(&root.join("p"), "rec-p", "primary", 0, 1);
        // The paired host's clock is 40 ms ahead of the primary's.
        seal_leg(&root.join("q"), "rec-q", "paired", 40, paired_seed);
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let mut storages = Storages::default();
        storages.insert(Arc::new(
            LocalStorage::open("local", &root.join("storage"), None).unwrap(),
        ));
        let up = crate::upload::Uploader::new(crate::upload::UploaderParts {
            storages: storages.clone(),
            paired: BTreeMap::new(),
            spools: vec![root.join("p/spool"), root.join("q/spool")],
            keep_spool_copy: false,
            cfg: Default::default(),
            alarms: crate::alarms::Alarms::new(store.clone(), "t", None),
            store: store.clone(),
            journal: crate::upload::journal::Journal::open(&root.join("journal.db")).unwrap(),
            health: Arc::default(),
        });
        let r = up.pass().await.unwrap();
        assert_eq!(r.done, 2, "{r:?}");
        let keys = TokenKeys::hs256(&[1; 32], "t");
        let token = keys
            .mint(&Claims {
                oid: "admin-oid".into(),
                upn: "admin@contoso.example".into(),
                tid: "t".into(),
                groups: vec![],
                roles: vec![],
                exp: now_secs() + 600,
                iat: now_secs(),
            })
            .unwrap();
        let state = crate::api::AppState::new(
            store.clone(),
            keys,
            None,
            ["admin@contoso.example".to_string()],
            root.join("storage"),
            None,
            "http://test".into(),
            64 * 1024,
        )
        .with_storages(storages.clone(), Arc::default());
        Env {
            _dir: dir,
            app: crate::api::app(state),
            root,
            store,
            storages,
            token,
        }
    }

    fn merger(&self, storages: Storages) -> Merger {
        Merger::new(self.store.clone(), storages, self.root.join("scratch"))
    }

    async fn get(
        &self,
        uri: &str,
        range: Option<&str>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let mut b = Request::builder()
            .uri(uri)
            .header("authorization", format!("Bearer {}", self.token));
        if let Some(r) = range {
            b = b.header("range", r);
        }
        let r = self
            .app
            .clone()
            .oneshot(b.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        let body = r.into_body().collect().await.unwrap().to_bytes().to_vec();
        (status, headers, body)
    }

    fn detail(&self) -> Value {
        serde_json::to_value(self.store.get(1, &Scope::All).unwrap().unwrap()).unwrap()
    }

    async fn stored(&self, key: &str) -> Vec<u8> {
        let s = self.storages.get("local").unwrap();
        let mut st = s.get(key, None).await.unwrap();
        let mut v = Vec::new();
        while let Some(c) = st.next().await {
            v.extend_from_slice(&c.unwrap());
        }
        v
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stored_legs_merge_serve_cut_and_go_with_retention() {
    let env = Env::new(1).await;
    let d = env.detail();
    assert_eq!(d["merge"]["state"], "pending", "{}", d["merge"]);
    assert_eq!(d["playableLegs"], json!(["primary", "paired"]));
    // Before the merge, `merged` is the primary's recording, and says so.
    let (s, h, _) = env
        .get("/api/v1/interactions/1/media?leg=merged", None)
        .await;
    assert_eq!(
        (s, &h["x-recording-leg"]),
        (StatusCode::OK, &"primary".parse().unwrap())
    );

    let t0 = std::time::Instant::now();
    let r = env.merger(env.storages.clone()).round().await.unwrap();
    eprintln!("merge round: {:?}", t0.elapsed());
    assert_eq!(
        r,
        MergeReport {
            merged: 1,
            failed: 0,
            waiting: 0
        }
    );
    let d = env.detail();
    assert_eq!(d["merge"]["state"], "done", "{}", d["merge"]);
    assert_eq!(d["merge"]["mediaPath"], "2026/11/26/rec-p/merged");
    assert_eq!(d["playableLegs"], json!(["merged", "primary", "paired"]));
    // Nothing left to do.
    let r = env.merger(env.storages.clone()).round().await.unwrap();
    assert_eq!(r, MergeReport::default());
    assert_eq!(
        std::fs::read_dir(env.root.join("scratch")).unwrap().count(),
        0
    );

    // The merged directory verifies like a sealed leg.
    let merged_dir = env.root.join("storage/2026/11/26/rec-p/merged");
    crate::verify::verify_recording(&merged_dir).unwrap();

    let (s, h, merged) = env
        .get("/api/v1/interactions/1/media?leg=merged", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["x-recording-leg"], "merged");
    assert_eq!(
        merged,
        env.stored("2026/11/26/rec-p/merged/mixed.ogg").await
    );
    opusinfo_clean(&merged);
    let primary = env.stored("2026/11/26/rec-p/mixed.ogg").await;
    let (dm, dp) = (duration_48k(&merged), duration_48k(&primary));
    eprintln!("merged {dm} samples, primary {dp} samples");
    assert!(dm.abs_diff(dp) <= 960, "merged {dm} vs primary {dp}");
    assert!(dm.abs_diff(175_000 * 48 / 50) <= 960 * 2, "{dm}"); // 3.5 s
    let (s, h, part) = env
        .get(
            "/api/v1/interactions/1/media?leg=merged",
            Some("bytes=100-1099"),
        )
        .await;
    assert_eq!(s, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        h["content-range"],
        format!("bytes 100-1099/{}", merged.len()).as_str()
    );
    assert_eq!(part, merged[100..1100]);
    let (s, h, body) = env
        .get("/api/v1/interactions/1/segments?leg=merged", None)
        .await;
    assert_eq!(
        (s, &h["x-recording-leg"]),
        (StatusCode::OK, &"merged".parse().unwrap())
    );
    let segs: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(segs["leg"], "merged");
    assert!(!segs["segments"].as_array().unwrap().is_empty(), "{segs}");
    // The legs stay playable on their own.
    let (s, h, _) = env
        .get("/api/v1/interactions/1/media?leg=paired", None)
        .await;
    assert_eq!(
        (s, &h["x-recording-leg"]),
        (StatusCode::OK, &"paired".parse().unwrap())
    );

    // The late joiner's recording: 1.5 s .. 3.5 s of the merged call.
    let t0 = std::time::Instant::now();
    let (s, _, cut) = env
        .get(
            "/api/v1/interactions/1/media?leg=merged&participant=pb&download=true",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&cut));
    eprintln!("participant cut request: {:?}", t0.elapsed());
    opusinfo_clean(&cut);
    let dc = duration_48k(&cut);
    assert!(
        dc.abs_diff(96_000) <= 960,
        "cut lasts {dc} samples, not 2 s"
    );
    let (s, h, part) = env
        .get(
            "/api/v1/interactions/1/media?leg=merged&participant=pb",
            Some("bytes=-500"),
        )
        .await;
    assert_eq!(s, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        h["content-range"],
        format!("bytes {}-{}/{}", cut.len() - 500, cut.len() - 1, cut.len()).as_str()
    );
    assert_eq!(part, cut[cut.len() - 500..]);
    // On the primary leg too (its own time 0).
    let (s, _, cut_p) = env
        .get(
            "/api/v1/interactions/1/media?leg=primary&participant=pb",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(duration_48k(&cut_p).abs_diff(96_000) <= 960);
    // Without join/leave times: the whole recording. Unknown: 404.
    let (s, _, whole) = env
        .get(
            "/api/v1/interactions/1/media?leg=merged&participant=pc",
            None,
        )
        .await;
    assert_eq!((s, whole.len()), (StatusCode::OK, merged.len()));
    let (s, _, _) = env
        .get("/api/v1/interactions/1/media?participant=nobody", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let audit = env
        .store
        .audit_search(&crate::audit::AuditQuery {
            from: None,
            to: None,
            name: None,
            action: Some("download".into()),
            item: None,
            text: None,
            page: 1,
            page_size: 100,
        })
        .unwrap();
    assert!(
        audit
            .items
            .iter()
            .any(|e| e.description
                == "merged leg, participant pb: 1.500 s to 3.500 s of the recording"),
        "{:?}",
        audit.items
    );

    // Retention removes the merge with the legs.
    let admin = Actor {
        oid: "admin-oid".into(),
        upn: "admin@contoso.example".into(),
    };
    env.store
        .request_deletion(
            1,
            DeletionScope::MediaOnly,
            "dpo",
            "test",
            &admin,
            &Scope::All,
        )
        .unwrap();
    let ret = crate::retention::Retention::new(
        env.store.clone(),
        env.storages.clone(),
        None,
        &Default::default(),
    );
    let rep = ret.run_cycle(chrono::Utc::now()).await.unwrap();
    assert_eq!(rep.storage_failures, 0, "{rep:?}");
    let left = env.storages.get("local").unwrap().list("").await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(env.detail()["playableLegs"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paired_leg_of_another_call_is_refused_and_the_primary_served() {
    let env = Env::new(99).await;
    let r = env.merger(env.storages.clone()).round().await.unwrap();
    assert_eq!(
        r,
        MergeReport {
            merged: 0,
            failed: 1,
            waiting: 0
        }
    );
    let d = env.detail();
    assert_eq!(d["merge"]["state"], "failed");
    let why = d["merge"]["error"].as_str().unwrap();
    assert!(
        why.contains("not the same call") || why.contains("aligned"),
        "{why}"
    );
    assert_eq!(d["playableLegs"], json!(["primary", "paired"]));
    let (s, h, _) = env
        .get("/api/v1/interactions/1/media?leg=merged", None)
        .await;
    assert_eq!(
        (s, &h["x-recording-leg"]),
        (StatusCode::OK, &"primary".parse().unwrap())
    );
    // Not retried.
    let r = env.merger(env.storages.clone()).round().await.unwrap();
    assert_eq!(r, MergeReport::default());
    assert!(env
        .storages
        .get("local")
        .unwrap()
        .list("2026/11/26/rec-p/merged/")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_outage_leaves_the_merge_pending() {
    let env = Env::new(1).await;
    // The same objects in a storage that goes down.
    let mem = Arc::new(MemoryStorage::new("local"));
    for o in env.storages.get("local").unwrap().list("").await.unwrap() {
        mem.insert(&o.key, env.stored(&o.key).await);
    }
    mem.set_down(true);
    let mut down = Storages::default();
    down.insert(mem.clone());
    let r = env.merger(down.clone()).round().await.unwrap();
    assert_eq!(
        r,
        MergeReport {
            merged: 0,
            failed: 0,
            waiting: 1
        }
    );
    assert_eq!(env.detail()["merge"]["state"], "pending");
    mem.set_down(false);
    let r = env.merger(down).round().await.unwrap();
    assert_eq!(r.merged, 1);
    assert!(mem
        .keys()
        .iter()
        .any(|k| k == "2026/11/26/rec-p/merged/mixed.ogg"));
    assert_eq!(env.detail()["merge"]["state"], "done");
}
