//! `bot-host serve` end to end over loopback: each test starts the hosts it needs in-process
//! (`Host::start`, ports 0, a temporary data directory), drives them with the simulator and
//! raw HTTP/UDP, checks what lands on disk and in the metadata store, and shuts them down.

use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use audiopus::coder::Decoder;
use audiopus::{Channels, SampleRate};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use bot_host::host::{Host, HostConfig};
use bot_host::simulate::notify::{self, LegIds, Recipient, Role};
use bot_host::simulate::scenario::{self, Codec, Leg, Scenario};
use bot_host::simulate::{sdp, simulate, Pacing, SimReport, SimulateOptions};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

fn sim_profiles() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/sim-profiles.toml"))
}

fn config(data: &Path) -> HostConfig {
    HostConfig {
        data_dir: data.to_path_buf(),
        profiles: Some(sim_profiles()),
        // The `media-stops` scenario ends by the media time-out; keep it short.
        media_timeout_secs: 2,
        ..HostConfig::default()
    }
}

fn url(host: &Host) -> String {
    format!("http://{}", host.http_addr())
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

fn fast(to: String, scenarios: &[&str]) -> SimulateOptions {
    let mut o = SimulateOptions::new(to);
    o.pacing = Pacing::Fast;
    o.scenarios = scenarios.iter().map(|s| s.to_string()).collect();
    o.seal_timeout = Duration::from_secs(20);
    o
}

fn assert_all_ok(report: &SimReport) {
    assert_eq!(report.failures(), 0, "simulator report:\n{report}");
}

/// Decodes every audio packet of an Ogg Opus file with libopus; returns the playable
/// duration in ms (samples after pre-skip).
fn decoded_ms(path: &Path) -> f64 {
    let mut r = ogg::PacketReader::new(std::io::BufReader::new(File::open(path).unwrap()));
    let head = r.read_packet().unwrap().expect("OpusHead");
    assert_eq!(&head.data[..8], b"OpusHead", "{}", path.display());
    let channels = head.data[9];
    let pre_skip = u16::from_le_bytes([head.data[10], head.data[11]]) as usize;
    let tags = r.read_packet().unwrap().expect("OpusTags");
    assert_eq!(&tags.data[..8], b"OpusTags", "{}", path.display());
    let ch = if channels == 2 {
        Channels::Stereo
    } else {
        Channels::Mono
    };
    let mut dec = Decoder::new(SampleRate::Hz48000, ch).unwrap();
    let mut buf = vec![0i16; 5760 * usize::from(channels)];
    let mut samples = 0usize;
    while let Some(p) = r
        .read_packet()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    {
        samples += dec
            .decode(Some(p.data.as_slice()), &mut buf[..], false)
            .unwrap_or_else(|e| panic!("{}: libopus refuses a packet: {e}", path.display()));
    }
    samples.saturating_sub(pre_skip) as f64 / 48.0
}

/// The manifest lists exactly the other files of the directory, with their true size and
/// SHA-256.
fn check_manifest(dir: &Path) {
    let manifest = read_json(&dir.join("manifest.json"));
    assert_eq!(manifest["algorithm"], "sha256");
    let listed = manifest["files"].as_array().expect("files");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "manifest.json")
        .collect();
    on_disk.sort();
    let names: Vec<String> = listed
        .iter()
        .map(|f| f["file"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, on_disk, "{}: manifest vs directory", dir.display());
    for f in listed {
        let bytes = std::fs::read(dir.join(f["file"].as_str().unwrap())).unwrap();
        assert_eq!(f["size"].as_u64(), Some(bytes.len() as u64), "{f}");
        let hex: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            f["sha256"].as_str(),
            Some(hex.as_str()),
            "{}: {f}",
            dir.display()
        );
    }
}

/// Leg time (ms) of a speaker's first and last frame and the number of frames, as the
/// simulator sends them (one per 20 ms while the participant has something to say; in fast
/// mode from leg time 0, in real time from the answer, which precedes every first word).
fn frame_span(leg: &Leg, msi: u32) -> Option<(u64, u64, u64)> {
    let p = leg.participants.iter().find(|p| p.msi == msi)?;
    let frames: Vec<u64> = (0..leg.end_ms)
        .step_by(20)
        .filter(|&t| p.frame_at(t).is_some())
        .collect();
    Some((*frames.first()?, *frames.last()?, frames.len() as u64))
}

/// Everything a sealed recording must be; `leg` is the scenario leg that recorded it.
fn check_recording(dir: &Path, scenario: &Scenario, leg: &Leg, realtime: bool) {
    let what = format!("{} ({})", dir.display(), scenario.name);
    check_manifest(dir);
    let meta = read_json(&dir.join("meta.json"));
    assert_eq!(meta["status"], "complete", "{what}");
    assert!(meta["started_at"].is_string(), "{what}: started_at");

    let segments = read_json(&dir.join("segments.json"));
    let segments = segments.as_array().expect("segments.json is an array");
    for s in segments {
        let (a, b) = (
            s["start_ms"].as_f64().unwrap(),
            s["end_ms"].as_f64().unwrap(),
        );
        assert!(
            s["participant"].is_string() && a >= 0.0 && b > a,
            "{what}: {s}"
        );
    }

    let tracks = meta["tracks"].as_array().expect("tracks");
    let mut longest_end = 0.0f64;
    let mut audible = 0;
    for t in tracks {
        let Some(file) = t["file"].as_str() else {
            continue;
        };
        audible += 1;
        let msi = t["msi"].as_u64().unwrap() as u32;
        assert_eq!(file, format!("{msi}.ogg"), "{what}");
        let ms = decoded_ms(&dir.join(file));
        assert!(ms > 0.0, "{what}: {file} is empty");
        // What the recorder says it wrote is what libopus finds in the file.
        let claimed = t["duration_ms"].as_f64().unwrap();
        assert!(
            (ms - claimed).abs() <= 1.0,
            "{what}: {file} decodes to {ms} ms, meta says {claimed}"
        );
        // What the simulator sent of this speaker: `frames` frames between its first and
        // last frame (`span`). Gaps are filled so that file time is call time, but only as
        // far as the arrival clock confirms the RTP clock (media_core::timeline): in fast mode
        // a talk pause arrives at once, the RTP jump is taken for a timestamp reset and the
        // pause collapses. So in fast mode the file holds every frame and never outlasts the
        // span; in real time it lasts the span.
        let (first, last, frames) = frame_span(leg, msi)
            .unwrap_or_else(|| panic!("{what}: track {msi} is no speaker of the scenario"));
        let span = (last - first + 20) as f64;
        let audio = (frames * 20) as f64;
        let clean = scenario.impairments == scenario::Impairments::default();
        let written = t["packets"]["written"].as_u64().unwrap();
        if clean {
            assert_eq!(
                written, frames,
                "{what}: {file} frames written vs sent: {t}"
            );
        } else {
            assert!(written <= frames && written > 0, "{what}: {file}: {t}");
        }
        // Every written frame is 20 ms of the file.
        let least = (written * 20) as f64 - 100.0;
        assert!(
            ms <= span + 100.0 && ms >= least,
            "{what}: {file} lasts {ms} ms; the simulator sent {audio} ms of frames over {span} ms: {t}"
        );
        if realtime {
            assert!(
                (ms - span).abs() <= 100.0,
                "{what}: {file} lasts {ms} ms, the speaker's span was {span} ms: {t}"
            );
        }
        longest_end = longest_end.max(t["start_ms"].as_f64().unwrap() + ms);
    }
    assert!(audible > 0, "{what}: no track with audio");
    let mixed = decoded_ms(&dir.join("mixed.ogg"));
    // The mix encodes whole 20 ms frames: allow one frame of rounding.
    assert!(
        mixed + 20.0 >= longest_end,
        "{what}: mixed.ogg lasts {mixed} ms, the tracks reach {longest_end} ms"
    );
}

fn scenario_named(name: &str) -> Scenario {
    scenario::catalogue()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap()
}

async fn metrics(c: &reqwest::Client, base: &str) -> HashMap<String, f64> {
    let text = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    parse_metrics(&text)
}

/// Prometheus text format: `name{labels} value` per sample; `# HELP`/`# TYPE` lines must
/// name a metric and every sample line must parse.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut w = rest.split_whitespace();
            let kind = w.next().unwrap();
            assert!(
                kind == "HELP" || kind == "TYPE",
                "bad comment line {line:?}"
            );
            assert!(w.next().is_some(), "{line:?} names no metric");
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(
            out.insert(series.to_string(), v).is_none(),
            "duplicate series {series}"
        );
    }
    out
}

fn get(m: &HashMap<String, f64>, series: &str) -> f64 {
    *m.get(series)
        .unwrap_or_else(|| panic!("no series {series} in /metrics"))
}

fn sealed_dirs(data: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data.join("spool/sealed"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------
// 1. The whole catalogue
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_whole_catalogue_records_as_the_profiles_say_and_every_recording_checks_out() {
    let data = tempfile::tempdir().unwrap();
    let host = Host::start(config(data.path())).await.unwrap();
    let report = simulate(fast(url(&host), &[])).await.unwrap();
    assert_all_ok(&report);

    let catalogue = scenario::catalogue();
    let mut checked = 0;
    for l in &report.legs {
        let Some(path) = &l.sealed_path else { continue };
        let s = catalogue.iter().find(|s| s.name == l.scenario).unwrap();
        check_recording(Path::new(path), s, &s.legs[l.leg], false);
        checked += 1;
    }
    // The call list a reconciler reads: every recorded leg's call is there, ended, with its
    // sealed recording, in invitation order.
    let list: Value = client()
        .get(format!("{}/api/calls", url(&host)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["role"], "primary");
    let calls = list["calls"].as_array().unwrap();
    let recorded: Vec<&Value> = calls
        .iter()
        .filter(|c| c["answer"] == "recording")
        .collect();
    assert_eq!(recorded.len(), checked, "{list:#}");
    for c in &recorded {
        assert_eq!(c["recording"], "sealed", "{c:#}");
        assert!(c["endedAt"].as_str().unwrap() >= c["invitedAt"].as_str().unwrap());
    }
    let invited: Vec<&str> = calls
        .iter()
        .map(|c| c["invitedAt"].as_str().unwrap())
        .collect();
    assert!(invited.windows(2).all(|w| w[0] <= w[1]));
    // Every recording on disk is one the simulator was told about.
    host.shutdown().await.unwrap();
    let on_disk = sealed_dirs(data.path());
    assert_eq!(on_disk.len(), checked, "sealed: {on_disk:?}");
    let expected = report.legs.iter().filter(|l| l.expected).count();
    assert_eq!(checked, expected);
    assert!(checked > 10, "only {checked} recordings");
}

// ---------------------------------------------------------------------------------------
// 2. Paired recording and the offline merge
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paired_hosts_both_seal_and_the_merge_loses_less_than_either_leg() {
    let (d1, d2, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let primary = Host::start(config(d1.path())).await.unwrap();
    let paired = Host::start(HostConfig {
        role: "paired".into(),
        ..config(d2.path())
    })
    .await
    .unwrap();
    // Real time: in fast mode talk pauses collapse on each leg's time line (see
    // `check_recording`), at slightly different frames on the two legs, and the merge then
    // loses a few more frames around each pause than the legs' common losses.
    let mut o = fast(url(&primary), &["internal-p2p-in"]);
    o.pacing = Pacing::Realtime;
    o.paired_to = Some(url(&paired));
    o.loss_pct = Some(10.0);
    o.seed = 7;
    let report = simulate(o).await.unwrap();
    assert_all_ok(&report);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let path_of = |role: Role| {
        let l = report.legs.iter().find(|l| l.role == role).unwrap();
        PathBuf::from(l.sealed_path.clone().expect("sealed"))
    };
    let (p_dir, q_dir) = (path_of(Role::Primary), path_of(Role::Paired));
    let (pm, qm) = (
        read_json(&p_dir.join("meta.json")),
        read_json(&q_dir.join("meta.json")),
    );
    check_manifest(&p_dir);
    check_manifest(&q_dir);
    for (m, role) in [(&pm, "primary"), (&qm, "paired")] {
        assert_eq!(m["status"], "complete");
        let i = &m["interaction"];
        assert_eq!(i["botRole"], role, "{i}");
        assert_eq!(i["doubleRecordingType"], "Pro", "{i}");
        let rec = i["pairedRecorders"].as_array().expect("pairedRecorders");
        assert!(!rec.is_empty() && rec[0]["id"].is_string(), "{i}");
    }
    // The same call, recognisably, in both legs.
    assert_eq!(pm["interaction"]["callId"], qm["interaction"]["callId"]);
    assert_eq!(
        pm["interaction"]["pairingKey"],
        qm["interaction"]["pairingKey"]
    );
    assert_ne!(
        pm["interaction"]["pairedRecorders"][0]["id"],
        qm["interaction"]["pairedRecorders"][0]["id"],
        "each leg names the other recorder"
    );

    let merged_dir = out.path().join("merged");
    let merged = bot_host::pair::merge_sealed(&p_dir, &q_dir, &merged_dir).unwrap();
    let leg = &scenario_named("internal-p2p-in").legs[0];
    let written = |m: &Value, file: &str| {
        m["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["file"] == file)
            .map(|t| t["packets"]["written"].as_u64().unwrap())
            .unwrap_or(0)
    };
    assert_eq!(merged.tracks.len(), leg.speakers().count());
    for t in &merged.tracks {
        assert_eq!(t.from, "primary+paired", "{}", t.file);
        let msi: u32 = t.file.trim_end_matches(".ogg").parse().unwrap();
        let (_, _, sent) = frame_span(leg, msi).unwrap();
        let (wp, wq) = (written(&pm, &t.file), written(&qm, &t.file));
        let wm = t.stats.frames_primary + t.stats.frames_paired;
        let (lp, lq, lm) = (
            sent.saturating_sub(wp),
            sent.saturating_sub(wq),
            sent.saturating_sub(wm),
        );
        eprintln!(
            "{}: {sent} frames sent; lost by primary {lp}, paired {lq}, merged {lm}",
            t.file
        );
        assert!(wm <= sent, "{}: merged {wm} frames of {sent} sent", t.file);
        assert!(lp > 0 && lq > 0, "10% loss lost nothing? {lp} {lq}");
        assert!(
            lm < lp.min(lq),
            "{}: merged lost {lm}, primary {lp}, paired {lq} (of {sent})",
            t.file
        );
        // Independent 10% losses: both legs lose about 1% of the frames; the loss pattern is
        // fixed by the seed, so this bound is not a matter of luck.
        assert!(
            lm <= sent / 50,
            "{}: merged lost {lm} of {sent}, more than the legs' common losses",
            t.file
        );
        assert!(t.stats.matched_frames > 0, "{}: aligned by content", t.file);
        let ms = decoded_ms(&merged_dir.join(&t.file));
        assert!(ms > 0.0);
    }
    assert!(decoded_ms(&merged_dir.join("mixed.ogg")) > 0.0);
    assert!(read_json(&merged_dir.join("segments.json")).is_array());
    primary.shutdown().await.unwrap();
    paired.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// 3. Metadata store outage
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct StoreState {
    accepted: Vec<Value>,
    refused: u64,
}

/// A metadata store that answers 503 until `down_until`, then 200, recording what it accepts.
async fn start_store(down_for: Duration) -> (String, Arc<Mutex<StoreState>>) {
    let state = Arc::new(Mutex::new(StoreState::default()));
    let up_at = Instant::now() + down_for;
    let st = state.clone();
    let app = Router::new().route(
        "/api/v1/interactions",
        post(move |body: axum::body::Bytes| {
            let st = st.clone();
            async move {
                let mut s = st.lock().unwrap();
                if Instant::now() < up_at {
                    s.refused += 1;
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                s.accepted.push(serde_json::from_slice(&body).unwrap());
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/api/v1/interactions"), state)
}

fn outbox_files(data: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data.join("outbox"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_outage_never_stops_recording_and_the_updates_arrive_in_order() {
    // Store A is down for the first 3 s of an 8 s real-time call, then recovers; store B is
    // down for the whole test.
    let (a_url, a_state) = start_store(Duration::from_secs(3)).await;
    let (b_url, b_state) = start_store(Duration::from_secs(3600)).await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let host_a = Host::start(HostConfig {
        store_url: Some(a_url),
        ..config(da.path())
    })
    .await
    .unwrap();
    let host_b = Host::start(HostConfig {
        store_url: Some(b_url),
        ..config(db.path())
    })
    .await
    .unwrap();

    let mut realtime = SimulateOptions::new(url(&host_a));
    realtime.scenarios = vec!["internal-p2p-in".into()];
    realtime.seal_timeout = Duration::from_secs(20);
    let (ra, rb) = tokio::join!(
        simulate(realtime),
        simulate(fast(url(&host_b), &["internal-p2p-in"]))
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_all_ok(&ra);
    assert_all_ok(&rb);
    for r in [&ra, &rb] {
        let dir = PathBuf::from(r.legs[0].sealed_path.clone().unwrap());
        assert_eq!(read_json(&dir.join("meta.json"))["status"], "complete");
        check_manifest(&dir);
    }
    // The real-time call is time-true: each track lasts its speaker's span, pauses included.
    let s = scenario_named("internal-p2p-in");
    check_recording(
        Path::new(ra.legs[0].sealed_path.as_ref().unwrap()),
        &s,
        &s.legs[0],
        true,
    );
    let call_id = ra.legs[0].call_id.clone();

    // Store A: every update arrives once it is back, the final one last.
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let m = metrics(&c, &url(&host_a)).await;
        if get(&m, "bothost_metadata_pending") == 0.0
            && a_state
                .lock()
                .unwrap()
                .accepted
                .iter()
                .any(|v| v["releaseTime"].is_string())
        {
            assert!(get(&m, "bothost_metadata_failed_attempts_total") > 0.0);
            assert_eq!(
                get(&m, "bothost_metadata_posted_total") as usize,
                a_state.lock().unwrap().accepted.len()
            );
            break;
        }
        assert!(Instant::now() < deadline, "store A never caught up: {m:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    {
        let s = a_state.lock().unwrap();
        assert!(s.refused > 0, "the outage was not seen");
        let got = &s.accepted;
        assert!(got.len() >= 2, "{got:?}");
        assert!(
            got.iter().all(|v| v["callId"] == call_id.as_str()),
            "{got:?}"
        );
        // In order: the creation first (not yet answered or released), the release only in
        // the final update, and that final update says the media waits for upload.
        assert!(got[0]["releaseTime"].is_null(), "first: {}", got[0]);
        let last = got.last().unwrap();
        assert!(last["releaseTime"].is_string(), "last: {last}");
        assert_eq!(last["mediaStatus"], "Pending", "last: {last}");
        for v in &got[..got.len() - 1] {
            assert!(v["releaseTime"].is_null(), "a release before the end: {v}");
        }
        // Once answered, an update never forgets it (no older state overtakes a newer one).
        let answered = got.iter().position(|v| v["answeredTime"].is_string());
        let answered = answered.expect("an update with answeredTime");
        assert!(got[answered..]
            .iter()
            .all(|v| v["answeredTime"].is_string()));
    }
    assert!(outbox_files(da.path()).is_empty());

    // Store B: nothing accepted, everything still in the outbox, in order.
    assert!(b_state.lock().unwrap().accepted.is_empty());
    let files = outbox_files(db.path());
    assert!(files.len() >= 2, "outbox: {files:?}");
    let mut bodies: Vec<(PathBuf, Value)> = files
        .into_iter()
        .map(|p| (p.clone(), read_json(&p)))
        .collect();
    bodies.sort_by(|a, b| a.0.cmp(&b.0));
    let last = &bodies.last().unwrap().1;
    assert_eq!(last["mediaStatus"], "Pending", "{last}");
    assert!(last["releaseTime"].is_string());
    let mb = metrics(&c, &url(&host_b)).await;
    assert_eq!(get(&mb, "bothost_metadata_pending") as usize, bodies.len());
    host_a.shutdown().await.unwrap();
    host_b.shutdown().await.unwrap();
    // Nothing is lost by stopping: the outbox stays for the next run.
    assert_eq!(outbox_files(db.path()).len(), bodies.len());
}

// ---------------------------------------------------------------------------------------
// 4. Malformed input, junk media, and 5. /metrics
// ---------------------------------------------------------------------------------------

fn ids() -> LegIds {
    let u = || uuid_like();
    LegIds {
        call_id: u(),
        chain_id: u(),
        thread_id: None,
        policy_participant_id: u(),
        other_participant_id: u(),
    }
}

fn uuid_like() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn primary_to() -> Recipient {
    Recipient {
        role: Role::Primary,
        paired: false,
    }
}

/// An offer from `from`: SRTP as the simulator makes it, optionally stripped of its key
/// (`a=crypto`) and optionally turned into plain RTP.
fn offer(from: SocketAddr, strip_key: bool, plain: bool) -> String {
    let mut s = sdp::offer(from, Codec::Opus, &[7u8; 30], 1);
    if strip_key {
        s = s
            .lines()
            .filter(|l| !l.starts_with("a=crypto"))
            .map(|l| format!("{l}\r\n"))
            .collect();
    }
    if plain {
        s = s.replace("RTP/SAVP", "RTP/AVP");
    }
    s
}

async fn post_json(
    c: &reqwest::Client,
    base: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, String) {
    let r = c
        .post(format!("{base}/api/calls"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 111];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xfc, 0xff, 0xfe]); // an Opus TOC and a little payload
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn junk_on_every_input_is_refused_or_counted_and_a_concurrent_call_still_records() {
    let data = tempfile::tempdir().unwrap();
    let host = Host::start(config(data.path())).await.unwrap();
    let base = url(&host);
    let c = client();
    let before = metrics(&c, &base).await;

    // A call whose source we own, plain RTP, to flood with SSRCs nobody announced.
    let flood = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let junk_leg = scenario_named("internal-p2p-in").legs[0].clone();
    let junk_ids = ids();
    let (status, body) = post_json(
        &c,
        &base,
        notify::incoming_call(
            &junk_leg,
            &junk_ids,
            primary_to(),
            &offer(flood.local_addr().unwrap(), true, true),
        )
        .to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["value"][0]["action"], "answer", "{answer}");
    let stranger = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();

    // The normal call runs through the simulator while the junk flies.
    let sim = tokio::spawn(simulate(fast(base.clone(), &["internal-p2p-in"])));
    let media = host.media_addr();
    let junk = async {
        let mut answers = Vec::new();
        let bad_bodies: Vec<String> = vec![
            "garbage".into(),
            String::new(),
            "{".into(),
            "[1,2,3]".into(),
            "null".into(),
            json!({"value": "not a list"}).to_string(),
            json!({"value": [1, "x", null, {"changeType": 5}]}).to_string(),
            json!({"value": [{"changeType": "updated", "resourceUrl": "/communications/calls/no-such-call",
                               "resourceData": {"state": "established"}}]})
            .to_string(),
            json!({"value": [{"changeType": "deleted", "resourceUrl": "/communications/calls/no-such-call"}]})
                .to_string(),
            json!({"value": [{"changeType": "updated", "resourceUrl": "/communications/calls/no-such-call/participants",
                               "resourceData": [{"id": 3}]}]})
            .to_string(),
            "\u{0}\u{1}\u{2}".into(),
        ];
        for round in 0..20u16 {
            for b in &bad_bodies {
                let (s, text) = post_json(&c, &base, b.clone()).await;
                answers.push((b.clone(), s, text));
            }
            // Unknown source: a socket no offer names.
            for i in 0..50u16 {
                stranger
                    .send_to(&rtp(0xdead_0000, round * 50 + i), media)
                    .await
                    .unwrap();
            }
            // Unknown SSRCs from the junk call's own source: more than the per-call track
            // limit, so the tail is dropped and counted.
            for i in 0..10u32 {
                let ssrc = 0x1000_0000 + u32::from(round) * 10 + i;
                flood.send_to(&rtp(ssrc, round), media).await.unwrap();
            }
            // Runts.
            flood.send_to(&[0x80, 0x00], media).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        answers
    };
    let answers = junk.await;
    for (body, status, text) in &answers {
        assert!(
            *status == 400 || *status == 200,
            "{body:?} got {status}: {text}"
        );
        let v: Value = serde_json::from_str(text)
            .unwrap_or_else(|_| panic!("{body:?}: answer is not JSON: {text}"));
        if *status == 400 {
            assert!(v["error"].is_string(), "{body:?}: {v}");
        } else {
            // A good envelope with junk items: nothing to answer.
            assert_eq!(v["value"], json!([]), "{body:?}: {v}");
        }
    }
    // Not JSON at all must be refused as such.
    for bad in ["garbage", "", "{", "null", "[1,2,3]"] {
        let s = answers.iter().find(|a| a.0 == bad).unwrap().1;
        assert_eq!(s, 400, "{bad:?}");
    }

    // An SRTP offer without a key: a call to record with nothing to decrypt is rejected.
    let savp = post_json(
        &c,
        &base,
        notify::incoming_call(
            &junk_leg,
            &ids(),
            primary_to(),
            &offer("127.0.0.1:4".parse().unwrap(), true, false),
        )
        .to_string(),
    )
    .await;
    assert_eq!(savp.0, 200, "{}", savp.1);
    let v: Value = serde_json::from_str(&savp.1).unwrap();
    assert_eq!(v["value"][0]["action"], "reject", "{v}");
    assert!(
        v["value"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("a=crypto"),
        "{v}"
    );
    // Unknown call status: 404 with a JSON error.
    let r = c
        .get(format!("{base}/api/calls/no-such-call"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.unwrap()["error"].is_string());

    let report = sim.await.unwrap().unwrap();
    assert_all_ok(&report);
    let sealed = PathBuf::from(report.legs[0].sealed_path.clone().unwrap());
    let s = scenario_named("internal-p2p-in");
    check_recording(&sealed, &s, &s.legs[0], false);
    let meta = read_json(&sealed.join("meta.json"));
    assert_eq!(meta["drops"]["unknown_ssrc"], 0, "the normal call saw junk");

    // 5. /metrics: the required series, and they moved.
    let after = metrics(&c, &base).await;
    let moved = |s: &str| get(&after, s) > get(&before, s);
    assert!(moved("bothost_media_packets_total"));
    assert!(moved("bothost_media_bytes_total"));
    assert!(
        get(
            &after,
            "bothost_media_drops_total{reason=\"unknown_source\"}"
        ) >= 1000.0
    );
    assert!(moved("bothost_media_drops_total{reason=\"unknown_ssrc\"}"));
    assert!(moved("bothost_media_drops_total{reason=\"runt\"}"));
    assert_eq!(
        get(&after, "bothost_media_drops_total{reason=\"queue_full\"}"),
        0.0
    );
    assert!(get(&after, "bothost_webhook_malformed_total") >= 100.0);
    assert!(moved("bothost_media_packet_processing_seconds_count"));
    assert!(moved("bothost_media_packet_processing_seconds_sum"));
    assert_eq!(
        get(
            &after,
            "bothost_media_packet_processing_seconds_bucket{le=\"+Inf\"}"
        ),
        get(&after, "bothost_media_packet_processing_seconds_count")
    );
    assert!(after
        .keys()
        .any(|k| k.starts_with("bothost_media_queue_depth{worker=")));
    assert!(moved("bothost_spool_bytes"));
    assert!(moved("bothost_media_recordings_sealed_total"));
    // The junk call is still up: one active call, one live call more than before.
    assert_eq!(get(&after, "bothost_media_active_calls"), 1.0);
    assert!(get(&after, "bothost_recordings_active") >= 1.0);

    // End the junk call: it seals too, with its unannounced tracks (at most the limit).
    let (s, _) = post_json(
        &c,
        &base,
        notify::terminated(&junk_ids.call_id, 200, 4097, "bye").to_string(),
    )
    .await;
    assert_eq!(s, 200);
    host.shutdown().await.unwrap();
    let sealed = sealed_dirs(data.path());
    let junk_dir = sealed
        .iter()
        .find(|d| read_json(&d.join("meta.json"))["call_id"] == junk_ids.call_id.as_str())
        .unwrap_or_else(|| {
            let ids: Vec<Value> = sealed
                .iter()
                .map(|d| read_json(&d.join("meta.json"))["call_id"].clone())
                .collect();
            panic!("the junk call {} is not sealed: {ids:?}", junk_ids.call_id)
        });
    let jm = read_json(&junk_dir.join("meta.json"));
    assert!(
        jm["drops"]["unknown_ssrc"].as_u64().unwrap() > 0,
        "{}",
        jm["drops"]
    );
    assert!(jm["tracks"].as_array().unwrap().len() <= 64);
    check_manifest(junk_dir);
}

// ---------------------------------------------------------------------------------------
// 6. Profile reload
// ---------------------------------------------------------------------------------------

const ONLY_ALICE: &str = r#"
[[profile]]
name = "Traders"
users = ["00000001-7c1e-4d2a-9b3f-00005eed0001"]
[profile.call_types]
internal_p2p = "both"
"#;

const NOBODY: &str = r#"
[[profile]]
name = "Nobody"
users = ["00000009-7c1e-4d2a-9b3f-00005eed0009"]
"#;

/// Invites Alice to a fresh internal call and ends it: (answered recvonly?, decision.record,
/// decision.profile). Each invitation offers its own source address, so a new call never finds
/// the previous one's route still held by the media plane.
async fn decide(
    c: &reqwest::Client,
    base: &str,
    port: &std::sync::atomic::AtomicU16,
) -> (Option<bool>, Value, Value) {
    let leg = scenario_named("internal-p2p-in").legs[0].clone(); // Alice is called
    let ids = ids();
    let from = SocketAddr::from((
        [127, 0, 0, 1],
        port.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    ));
    let (s, body) = post_json(
        c,
        base,
        notify::incoming_call(&leg, &ids, primary_to(), &offer(from, false, false)).to_string(),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let a: Value = serde_json::from_str(&body).unwrap();
    let st: Value = c
        .get(format!("{base}/api/calls/{}", ids.call_id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    post_json(
        c,
        base,
        notify::terminated(&ids.call_id, 200, 4097, "bye").to_string(),
    )
    .await;
    (
        a["value"][0]["mediaConfig"]["blob"]
            .as_str()
            .map(|b| b.contains("a=recvonly")),
        st["decision"]["record"].clone(),
        st["decision"]["profile"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_from_the_store_override_the_local_file_and_survive_its_outage() {
    // A stand-in for the store's profile file: its answer is set by the test.
    #[derive(Clone, Default)]
    struct Fake(Arc<Mutex<(u16, String)>>);
    let fake = Fake::default();
    let app = axum::Router::new()
        .route(
            "/api/v1/recording-profiles/file",
            axum::routing::get(
                |axum::extract::State(f): axum::extract::State<Fake>| async move {
                    let (code, body) = f.0.lock().unwrap().clone();
                    (axum::http::StatusCode::from_u16(code).unwrap(), body)
                },
            ),
        )
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let store = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let set = |code: u16, toml_text: &str| {
        let v: Value = toml::from_str(toml_text).unwrap();
        *fake.0.lock().unwrap() = (code, v.to_string());
    };

    let data = tempfile::tempdir().unwrap();
    let profiles = data.path().join("profiles.toml");
    std::fs::write(&profiles, NOBODY).unwrap();
    let cfg = HostConfig {
        profiles: Some(profiles.clone()),
        profiles_url: Some(format!(
            "http://{store}/api/v1/recording-profiles/file?ingestKey=k"
        )),
        profiles_refresh_secs: 3600,
        ..config(data.path())
    };
    set(200, ONLY_ALICE);
    let host = Host::start(cfg.clone()).await.unwrap();
    let (c, base) = (client(), url(&host));
    let port = std::sync::atomic::AtomicU16::new(21_000);
    let reload = || async {
        c.post(format!("{base}/api/profiles/reload"))
            .send()
            .await
            .unwrap()
            .status()
    };
    // The store's set wins over the local file (Alice recorded although the file says nobody).
    assert_eq!(reload().await, 200);
    assert_eq!(
        decide(&c, &base, &port).await,
        (Some(true), json!(true), json!("Traders"))
    );
    // Store down or sending a set bot-host refuses: an error, and the set in force stays.
    set(503, ONLY_ALICE);
    assert_eq!(reload().await, 422);
    *fake.0.lock().unwrap() = (
        200,
        r#"{"profile":[{"name":"X","users":["*"],"typo":1}]}"#.into(),
    );
    assert_eq!(reload().await, 422);
    assert_eq!(decide(&c, &base, &port).await.1, json!(true));
    host.shutdown().await.unwrap();

    // Restarted while the store is down: the store's last set, from the cache.
    set(503, ONLY_ALICE);
    let host = Host::start(cfg.clone()).await.unwrap();
    let base = url(&host);
    assert_eq!(
        decide(&c, &base, &port).await,
        (Some(true), json!(true), json!("Traders"))
    );
    // The store holds no profile any more: the local file is in force again.
    *fake.0.lock().unwrap() = (404, String::new());
    assert_eq!(
        c.post(format!("{base}/api/profiles/reload"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(decide(&c, &base, &port).await.1, json!(false));
    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_reload_changes_the_next_decision_and_a_broken_file_changes_nothing() {
    let data = tempfile::tempdir().unwrap();
    let profiles = data.path().join("profiles.toml");
    std::fs::write(&profiles, ONLY_ALICE).unwrap();
    let host = Host::start(HostConfig {
        profiles: Some(profiles.clone()),
        ..config(data.path())
    })
    .await
    .unwrap();
    let base = url(&host);
    let c = client();
    let port = std::sync::atomic::AtomicU16::new(20_000);
    let decide = || decide(&c, &base, &port);
    assert_eq!(decide().await, (Some(true), json!(true), json!("Traders")));

    // Alice leaves every profile: the next call is answered inactive and not recorded.
    std::fs::write(&profiles, NOBODY).unwrap();
    let r = c
        .post(format!("{base}/api/profiles/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (recv, record, _) = decide().await;
    assert_eq!((recv, record), (Some(false), json!(false)));

    // A broken file: 422, and the previous profiles (Nobody) stay in force.
    for broken in [
        "[[profile]]\nname = \"X\"\nusers = [\"*\"]\ntypo_key = 1\n",
        "this is not toml",
        // Alice in two profiles: a conflict is a load error.
        &format!("{ONLY_ALICE}\n[[profile]]\nname = \"Again\"\nusers = [\"00000001-7c1e-4d2a-9b3f-00005eed0001\"]\n"),
    ] {
        std::fs::write(&profiles, broken).unwrap();
        let r = c.post(format!("{base}/api/profiles/reload")).send().await.unwrap();
        assert_eq!(r.status(), 422, "{broken}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].is_string(), "{v}");
        let (recv, record, _) = decide().await;
        assert_eq!((recv, record), (Some(false), json!(false)), "after {broken:?}");
    }
    // And the host's own method agrees.
    assert!(host.reload_profiles().await.is_err());
    std::fs::write(&profiles, ONLY_ALICE).unwrap();
    host.reload_profiles().await.unwrap();
    assert_eq!(decide().await, (Some(true), json!(true), json!("Traders")));
    host.shutdown().await.unwrap();
}
