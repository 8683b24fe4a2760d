//! `bot-host simulate` against a fake bot-host that answers per docs/live.md and checks the
//! media it receives (SRTP with the offer's key, SSRCs = roster MSIs).
//!
//! The fake is test code: it records every call it answers, seals on the call's end (a
//! `deleted`, an empty roster, or no media for a while) unless told not to, and answers
//! inactive for the policy users it is told not to record.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bot_host::simulate::notify::{self, LegIds, NoteKind, Recipient, Role};
use bot_host::simulate::scenario::{self, Expect, Identity, LegKind};
use bot_host::simulate::{sdp, simulate, Pacing, SimulateOptions};
use media_core::sdes::parse_crypto_attribute;
use media_core::srtp::SrtpSession;
use serde_json::{json, Value};
use tokio::net::UdpSocket;

#[derive(Clone, Default)]
struct FakeConfig {
    role: &'static str,
    answer_delay: Duration,
    seal: bool,
    inactive_users: HashSet<String>,
    reject_users: HashSet<String>,
}

#[derive(Default)]
struct FakeCall {
    state: String,
    recording: String,
    offer_from: Option<SocketAddr>,
    srtp: Option<SrtpSession>,
    key_line: String,
    roster_msis: BTreeSet<u32>,
    packets: BTreeMap<u32, u64>,
    undecryptable: u64,
    payload_types: BTreeSet<u8>,
    invited_at: Option<Instant>,
    first_media: Option<Instant>,
    last_media: Option<Instant>,
}

#[derive(Default)]
struct FakeState {
    calls: HashMap<String, FakeCall>,
    log: Vec<Value>,
    unknown_source: u64,
}

struct Fake {
    http: SocketAddr,
    state: Arc<Mutex<FakeState>>,
}

impl Fake {
    fn url(&self) -> String {
        format!("http://{}", self.http)
    }
}

type Shared = (FakeConfig, Arc<Mutex<FakeState>>, SocketAddr);

async fn start_fake(cfg: FakeConfig) -> Fake {
    let state = Arc::new(Mutex::new(FakeState::default()));
    let media = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let media_addr = media.local_addr().unwrap();
    let shared: Shared = (cfg, state.clone(), media_addr);
    let app = Router::new()
        .route("/api/info", get(info))
        .route("/api/calls", post(notification))
        .route("/api/calls/{id}", get(call_status))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    tokio::spawn(receive_media(media, state.clone()));
    tokio::spawn(media_timeout(shared));
    Fake { http, state }
}

async fn info(State((cfg, _, media)): State<Shared>) -> Json<Value> {
    Json(json!({"role": cfg.role, "media": media.to_string(), "http": "127.0.0.1:0"}))
}

async fn notification(
    State((cfg, state, media)): State<Shared>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut answers = Vec::new();
    let notes = body["value"].as_array().cloned().unwrap_or_default();
    let mut delay = false;
    {
        let mut st = state.lock().unwrap();
        st.log.push(body.clone());
        for n in notes {
            let url = n["resourceUrl"].as_str().unwrap_or_default();
            let id = url
                .trim_start_matches("/communications/calls/")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            let data = &n["resourceData"];
            if url.ends_with("/participants") {
                let list = data.as_array().cloned().unwrap_or_default();
                let call = st.calls.entry(id).or_default();
                for p in &list {
                    for s in p["mediaStreams"].as_array().into_iter().flatten() {
                        if let Some(msi) = s["sourceId"].as_str().and_then(|m| m.parse().ok()) {
                            call.roster_msis.insert(msi);
                        }
                    }
                }
                if list.is_empty() && call.recording == "recording" && cfg.seal {
                    call.recording = "sealed".into();
                    call.state = "terminated".into();
                }
                continue;
            }
            match n["changeType"].as_str() {
                Some("created") => {
                    let offer = data["mediaConfig"]["blob"].as_str().unwrap_or_default();
                    let (from, key_line) = parse_offer(offer);
                    let srtp = parse_crypto_attribute(&key_line)
                        .ok()
                        .map(|c| SrtpSession::new(c.key));
                    let policy = data["applicationMetadata"]["botData"]["user"]["policyHolderId"]
                        .as_str()
                        .unwrap_or_default();
                    if cfg.reject_users.contains(policy) {
                        let call = st.calls.entry(id.clone()).or_default();
                        call.state = "terminated".into();
                        call.recording = "none".into();
                        answers.push(
                            json!({"callId": id, "action": "reject", "reason": "no profile"}),
                        );
                        continue;
                    }
                    let record = !cfg.inactive_users.contains(policy);
                    let call = st.calls.entry(id.clone()).or_default();
                    call.state = "incoming".into();
                    call.invited_at = Some(Instant::now());
                    call.recording = if record { "recording" } else { "none" }.into();
                    call.offer_from = Some(from);
                    call.srtp = srtp;
                    call.key_line = key_line;
                    let dir = if record { "recvonly" } else { "inactive" };
                    let answer = format!(
                        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/SAVP 111\r\na={dir}\r\n",
                        media.port()
                    );
                    answers.push(json!({"callId": id, "action": "answer",
                                        "mediaConfig": {"blob": answer}}));
                    delay = true;
                }
                Some("deleted") => {
                    let call = st.calls.entry(id).or_default();
                    call.state = "terminated".into();
                    if call.recording == "recording" && cfg.seal {
                        call.recording = "sealed".into();
                    }
                }
                Some("updated") => {
                    let call = st.calls.entry(id).or_default();
                    if let Some(s) = data["state"].as_str() {
                        if call.state != "terminated" {
                            call.state = s.into();
                        }
                    }
                }
                _ => {
                    return (
                        StatusCode::BAD_REQUEST,
                        Json(json!({"error": "changeType"})),
                    )
                }
            }
        }
    }
    if delay {
        tokio::time::sleep(cfg.answer_delay).await;
    }
    (StatusCode::OK, Json(json!({"value": answers})))
}

fn parse_offer(sdp: &str) -> (SocketAddr, String) {
    let ip = sdp
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .expect("offer has c=");
    let port = sdp
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|m| m.split(' ').next())
        .expect("offer has m=audio");
    let key = sdp
        .lines()
        .find(|l| l.starts_with("a=crypto:"))
        .unwrap_or_default();
    (
        format!("{}:{}", ip.trim(), port).parse().unwrap(),
        key.to_string(),
    )
}

async fn call_status(
    State((_, state, _)): State<Shared>,
    Path(id): Path<String>,
) -> (StatusCode, Json<Value>) {
    let st = state.lock().unwrap();
    match st.calls.get(&id) {
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "unknown call"})),
        ),
        Some(c) => (
            StatusCode::OK,
            Json(
                json!({"callId": id, "state": c.state, "recording": c.recording,
                        "decision": {"record": c.recording != "none", "profile": "fake", "reason": "test"},
                        "sealedPath": (c.recording == "sealed").then(|| format!("/fake/sealed/{id}"))}),
            ),
        ),
    }
}

async fn receive_media(socket: UdpSocket, state: Arc<Mutex<FakeState>>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let mut st = state.lock().unwrap();
        let Some(call) = st.calls.values_mut().find(|c| c.offer_from == Some(from)) else {
            st.unknown_source += 1;
            continue;
        };
        call.last_media = Some(Instant::now());
        call.first_media.get_or_insert(Instant::now());
        let packet = &mut buf[..n];
        let Some(srtp) = call.srtp.as_mut() else {
            call.undecryptable += 1;
            continue;
        };
        match srtp.unprotect_rtp(packet) {
            Ok(len) => {
                let rtp = media_core::rtp::RtpPacket::parse(&packet[..len]).unwrap();
                assert!(rtp.audio_level(1).is_some(), "audio level extension id 1");
                *call.packets.entry(rtp.ssrc).or_default() += 1;
                call.payload_types.insert(rtp.payload_type);
            }
            Err(_) => call.undecryptable += 1,
        }
    }
}

/// Seals recordings whose media stopped without a termination (missing-termination).
async fn media_timeout((cfg, state, _): Shared) {
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut st = state.lock().unwrap();
        for c in st.calls.values_mut() {
            if cfg.seal
                && c.recording == "recording"
                && c.last_media
                    .is_some_and(|t| t.elapsed() > Duration::from_millis(400))
            {
                c.recording = "sealed".into();
                c.state = "terminated".into();
            }
        }
    }
}

fn fast(to: &Fake, scenarios: &[&str]) -> SimulateOptions {
    let mut o = SimulateOptions::new(to.url());
    o.pacing = Pacing::Fast;
    o.scenarios = scenarios.iter().map(|s| s.to_string()).collect();
    o.seal_timeout = Duration::from_secs(5);
    // The fake decrypts in an unoptimised test build: well within what it keeps up with.
    o.fast_rate = 5_000;
    o
}

fn sealing() -> FakeConfig {
    FakeConfig {
        role: "primary",
        seal: true,
        ..FakeConfig::default()
    }
}

#[test]
fn every_scenario_notification_has_the_contract_fields() {
    let ids = LegIds {
        call_id: "2f1a0b00-0000-4000-8000-0000000000aa".into(),
        chain_id: "2f1a0b00-0000-4000-8000-0000000000cc".into(),
        thread_id: Some("19:meeting_abc@thread.v2".into()),
        policy_participant_id: "p-policy".into(),
        other_participant_id: "p-other".into(),
    };
    for s in scenario::catalogue() {
        for leg in &s.legs {
            let offer = sdp::offer("127.0.0.1:41000".parse().unwrap(), s.codec, &[9; 30], 5);
            let to = Recipient {
                role: Role::Primary,
                paired: true,
            };
            let notes = notify::leg_timeline(leg, &ids, to, &offer);
            assert_eq!(notes[0].kind, NoteKind::Incoming, "{}", s.name);
            let mut saw_end = false;
            for note in &notes {
                // Survives a trip through text, as it would on the wire.
                let text = serde_json::to_string(&note.body).unwrap();
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["@odata.type"], "#microsoft.graph.commsNotifications");
                let n = &v["value"][0];
                assert!(n["resourceUrl"]
                    .as_str()
                    .unwrap()
                    .starts_with("/communications/calls/2f1a0b00"));
                let data = &n["resourceData"];
                match note.kind {
                    NoteKind::Incoming => {
                        assert_eq!(n["changeType"], "created");
                        assert_eq!(data["@odata.type"], "#microsoft.graph.call");
                        assert_eq!(data["state"], "incoming");
                        assert_eq!(data["id"], ids.call_id.as_str());
                        assert_eq!(data["callChainId"], ids.chain_id.as_str());
                        let blob = data["mediaConfig"]["blob"].as_str().unwrap();
                        assert_eq!(
                            data["mediaConfig"]["@odata.type"],
                            "#microsoft.graph.appHostedMediaConfig"
                        );
                        assert!(blob.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"));
                        assert!(blob.contains("m=audio 41000 "));
                        assert!(blob.contains("a=sendonly"));
                        let bot = &data["applicationMetadata"]["botData"];
                        assert_eq!(bot["user"]["policyHolderId"], leg.policy_user.id());
                        assert_eq!(bot["inviteReasons"][0], "ComplianceRecording");
                        assert_eq!(bot["pairedRecorders"][0]["id"], notify::PAIRED_BOT_APP_ID);
                        assert!(data["source"]["identity"]["@odata.type"]
                            .as_str()
                            .unwrap()
                            .ends_with("identitySet"));
                        match &leg.kind {
                            LegKind::Meeting { .. } => {
                                assert_eq!(bot["user"]["participationMethod"], "DialIn");
                                assert_eq!(
                                    data["chatInfo"]["threadId"],
                                    "19:meeting_abc@thread.v2"
                                );
                                assert!(data["meetingInfo"]["organizer"].is_object());
                            }
                            LegKind::P2p { other, .. } => {
                                assert!(data.get("chatInfo").is_none());
                                assert_eq!(bot["otherSideUser"]["id"], other.id());
                                if let Identity::Phone { e164 } = other {
                                    assert!(e164.starts_with('+'));
                                    assert!(e164[1..].bytes().all(|b| b.is_ascii_digit()));
                                }
                            }
                        }
                        let ctx = &data["incomingContext"];
                        assert_eq!(ctx["observedParticipantId"], "p-policy");
                        if let Some(q) = &leg.on_behalf_of {
                            assert_eq!(ctx["onBehalfOf"]["applicationInstance"]["id"], q.id());
                        }
                        if leg.transferor.is_some() {
                            assert!(ctx["transferor"]["user"]["id"].is_string());
                        }
                    }
                    NoteKind::State => {
                        assert_eq!(n["changeType"], "updated");
                        assert!(data["state"].is_string());
                    }
                    NoteKind::Roster => {
                        assert_eq!(n["changeType"], "updated");
                        assert!(n["resourceUrl"]
                            .as_str()
                            .unwrap()
                            .ends_with("/participants"));
                        let list = data.as_array().unwrap();
                        if list.is_empty() {
                            saw_end = true;
                        }
                        for p in list {
                            assert_eq!(p["@odata.type"], "#microsoft.graph.participant");
                            let msi: u32 = p["mediaStreams"][0]["sourceId"]
                                .as_str()
                                .unwrap()
                                .parse()
                                .unwrap();
                            assert!(leg.participants.iter().any(|q| q.msi == msi));
                            assert!(p["isMuted"].is_boolean() && p["isInLobby"].is_boolean());
                        }
                    }
                    NoteKind::Terminated => {
                        assert_eq!(n["changeType"], "deleted");
                        assert_eq!(data["state"], "terminated");
                        assert!(data["resultInfo"]["code"].is_u64());
                        saw_end = true;
                    }
                }
            }
            assert_eq!(
                saw_end,
                leg.end != scenario::End::MediaStops,
                "{}: the end shows as the scenario says",
                s.name
            );
        }
    }
}

#[test]
fn sim_profiles_match_the_scenarios() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/sim-profiles.toml")).unwrap();
    let doc: toml::Value = toml::from_str(&text).unwrap();
    let profiles = doc["profile"].as_array().unwrap();
    let profile_of = |id: &str| -> Vec<&str> {
        profiles
            .iter()
            .filter(|p| {
                p["users"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|u| u.as_str() == Some(id))
            })
            .map(|p| p["name"].as_str().unwrap())
            .collect()
    };
    for s in scenario::catalogue() {
        for leg in &s.legs {
            let in_profiles = profile_of(leg.policy_user.id());
            assert!(in_profiles.len() <= 1, "{}: a user in two profiles", s.name);
            match &leg.expect {
                Expect::Recorded | Expect::InTimeRange(_) => {
                    assert_eq!(
                        in_profiles.len(),
                        1,
                        "{}: recorded user has a profile",
                        s.name
                    )
                }
                Expect::NotRecorded(_) => {}
            }
        }
    }
    assert!(profile_of(scenario::mallory().id()).is_empty());
    let night = profiles
        .iter()
        .find(|p| p["name"].as_str() == Some("NightShift"))
        .unwrap();
    let r = scenario::night_shift_range();
    let tr = &night["time_range"];
    assert_eq!(tr["time_zone"].as_str(), Some(r.time_zone.name()));
    assert_eq!(tr["start_hour"].as_integer(), Some(i64::from(r.start_hour)));
    assert_eq!(tr["end_hour"].as_integer(), Some(i64::from(r.end_hour)));
    assert_eq!(tr["days"].as_array().unwrap().len(), r.days.len());
    let support = profiles
        .iter()
        .find(|p| p["name"].as_str() == Some("Support"))
        .unwrap();
    assert_eq!(
        support["call_types"]["queue_ids"].as_str(),
        Some(scenario::SALES_QUEUE_ID)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_is_srtp_with_the_offers_key_and_roster_ssrcs() {
    let fake = start_fake(sealing()).await;
    let report = simulate(fast(&fake, &["internal-meeting", "pstn-in"]))
        .await
        .unwrap();
    assert_eq!(report.failures(), 0, "{report}");
    let st = fake.state.lock().unwrap();
    assert_eq!(
        st.unknown_source, 0,
        "packets come from the offer's address"
    );
    let catalogue = scenario::catalogue();
    for leg in &report.legs {
        let call = &st.calls[&leg.call_id];
        assert_eq!(call.undecryptable, 0, "{}", leg.scenario);
        assert!(call
            .key_line
            .starts_with("a=crypto:1 AES_CM_128_HMAC_SHA1_80"));
        let speakers: BTreeSet<u32> = catalogue
            .iter()
            .find(|s| s.name == leg.scenario)
            .unwrap()
            .legs[leg.leg]
            .speakers()
            .map(|p| p.msi)
            .collect();
        let ssrcs: BTreeSet<u32> = call.packets.keys().copied().collect();
        assert_eq!(ssrcs, speakers, "{}: SSRC = MSI", leg.scenario);
        assert!(ssrcs.is_subset(&call.roster_msis), "{}", leg.scenario);
        let received: u64 = call.packets.values().sum();
        assert_eq!(
            received, leg.media.sent,
            "{}: loopback loses nothing",
            leg.scenario
        );
        assert!(leg.media.sent > 300);
        let pt = if leg.scenario == "pstn-in" { 96 } else { 111 };
        assert_eq!(call.payload_types, BTreeSet::from([pt]));
    }
    // Every leg's key is its own.
    let keys: BTreeSet<&str> = st.calls.values().map(|c| c.key_line.as_str()).collect();
    assert_eq!(keys.len(), st.calls.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_percent_loss_gives_five_percent_fewer_packets() {
    let fake = start_fake(sealing()).await;
    let received = |report: &bot_host::simulate::SimReport| -> u64 {
        let st = fake.state.lock().unwrap();
        report
            .legs
            .iter()
            .map(|l| st.calls[&l.call_id].packets.values().sum::<u64>())
            .sum()
    };
    let mut clean = fast(&fake, &["internal-p2p-in"]);
    clean.calls = Some(4);
    clean.loss_pct = Some(0.0);
    let base = simulate(clean.clone()).await.unwrap();
    let mut lossy = clean;
    lossy.loss_pct = Some(5.0);
    let impaired = simulate(lossy).await.unwrap();
    assert_eq!(base.failures() + impaired.failures(), 0);
    let (a, b) = (received(&base), received(&impaired));
    let loss = 1.0 - b as f64 / a as f64;
    assert!((0.03..0.07).contains(&loss), "{a} vs {b}: {loss}");
    let reported: u64 = impaired.legs.iter().map(|l| l.media.lost).sum();
    assert_eq!(a - b, reported);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_answer_fails_the_call_with_408_1106() {
    let fake = start_fake(FakeConfig {
        answer_delay: Duration::from_millis(400),
        ..sealing()
    })
    .await;
    let mut o = fast(&fake, &["internal-p2p-in"]);
    o.answer_deadline = Duration::from_millis(150);
    let report = simulate(o).await.unwrap();
    assert_eq!(report.failures(), 1, "{report}");
    let leg = &report.legs[0];
    assert!(leg.deadline_missed);
    assert!(leg.answer_latency.unwrap() >= Duration::from_millis(150));
    assert_eq!(leg.media.sent, 0);
    assert!(report.to_string().contains("408/1106"));
    let st = fake.state.lock().unwrap();
    let ended = st.log.iter().any(|b| {
        let n = &b["value"][0];
        n["changeType"] == "deleted"
            && n["resourceData"]["id"] == leg.call_id.as_str()
            && n["resourceData"]["resultInfo"]["code"] == 408
            && n["resourceData"]["resultInfo"]["subcode"] == 1106
    });
    assert!(ended, "the platform ends the call 408/1106");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_the_bot_does_not_seal_is_a_failure() {
    let fake = start_fake(FakeConfig {
        seal: false,
        ..sealing()
    })
    .await;
    let mut o = fast(&fake, &["internal-p2p-out"]);
    o.seal_timeout = Duration::from_millis(500);
    let report = simulate(o).await.unwrap();
    assert_eq!(report.failures(), 1, "{report}");
    assert!(report.legs[0].observed.starts_with("not settled"));
    assert!(!report.legs[0].recorded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_a_call_the_profile_excludes_is_a_failure_and_inactive_gets_no_media() {
    // The fake records everybody: pstn-in-blocked must then fail.
    let fake = start_fake(sealing()).await;
    let report = simulate(fast(&fake, &["pstn-in-blocked"])).await.unwrap();
    assert_eq!(report.failures(), 1, "{report}");
    assert!(report.legs[0].recorded && !report.legs[0].expected);

    // A fake that answers inactive for mallory: nothing sent, and that is right.
    let fake = start_fake(FakeConfig {
        inactive_users: HashSet::from([scenario::mallory().id().to_string()]),
        ..sealing()
    })
    .await;
    let report = simulate(fast(&fake, &["unprofiled-user"])).await.unwrap();
    assert_eq!(report.failures(), 0, "{report}");
    assert_eq!(report.legs[0].media.sent, 0);
    assert_eq!(report.legs[0].observed, "answered inactive, none");

    // A fake that rejects mallory's calls: no media either, and right too.
    let fake = start_fake(FakeConfig {
        reject_users: HashSet::from([scenario::mallory().id().to_string()]),
        ..sealing()
    })
    .await;
    let report = simulate(fast(&fake, &["unprofiled-user"])).await.unwrap();
    assert_eq!(report.failures(), 0, "{report}");
    assert_eq!(report.legs[0].media.sent, 0);
    assert_eq!(report.legs[0].observed, "rejected, none");
    let st = fake.state.lock().unwrap();
    let notes = st.log.len();
    assert_eq!(notes, 1, "nothing posted after a rejection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paired_bots_get_the_same_calls_with_their_own_keys() {
    let primary = start_fake(sealing()).await;
    let paired = start_fake(FakeConfig {
        role: "paired",
        ..sealing()
    })
    .await;
    let mut o = fast(
        &primary,
        &["transfer", "meeting-ends-by-roster", "missing-termination"],
    );
    o.paired_to = Some(paired.url());
    // The fakes record every call on both bots, as bots whose every profile is "Pro" would.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    o.profiles = dir.join("pro.toml");
    std::fs::write(
        &o.profiles,
        "[[profile]]\nname = \"all\"\nusers = [\"*\"]\ndouble_recording = true\n",
    )
    .unwrap();
    let report = simulate(o).await.unwrap();
    assert_eq!(report.failures(), 0, "{report}");
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(report.legs.len(), 2 * 4);
    let (a, b) = (primary.state.lock().unwrap(), paired.state.lock().unwrap());
    for leg in &report.legs {
        let (x, y) = (&a.calls[&leg.call_id], &b.calls[&leg.call_id]);
        assert_ne!(x.key_line, y.key_line);
        assert_eq!(x.recording, "sealed");
        assert_eq!(y.recording, "sealed");
    }
    // The transfer's two legs share a callChainId, and the second names the transferor.
    let created: Vec<&Value> = a
        .log
        .iter()
        .map(|b| &b["value"][0])
        .filter(|n| n["changeType"] == "created")
        .collect();
    let transfer: Vec<&&Value> = created
        .iter()
        .filter(|n| {
            n["resourceData"]["applicationMetadata"]["botData"]["otherSideUser"]["id"]
                == "+442071234567"
        })
        .collect();
    assert_eq!(transfer.len(), 2);
    assert_eq!(
        transfer[0]["resourceData"]["callChainId"],
        transfer[1]["resourceData"]["callChainId"]
    );
    assert_eq!(
        created[0]["resourceData"]["applicationMetadata"]["botData"]["pairedRecorders"][0]["id"],
        notify::PAIRED_BOT_APP_ID
    );
    let paired_created = b
        .log
        .iter()
        .map(|b| &b["value"][0])
        .find(|n| n["changeType"] == "created")
        .unwrap();
    assert_eq!(
        paired_created["resourceData"]["applicationMetadata"]["botData"]["pairedRecorders"][0]
            ["id"],
        notify::PRIMARY_BOT_APP_ID
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_sends_the_frames_at_their_times() {
    let fake = start_fake(sealing()).await;
    let mut o = SimulateOptions::new(fake.url());
    o.scenarios = vec!["internal-p2p-in".into()];
    o.seal_timeout = Duration::from_secs(5);
    let report = simulate(o).await.unwrap();
    assert_eq!(report.failures(), 0, "{report}");
    let st = fake.state.lock().unwrap();
    let call = &st.calls[&report.legs[0].call_id];
    // Speech from 0.6 s to 7.6 s of the call: 7 s between the first and the last frame.
    let span = call.last_media.unwrap() - call.first_media.unwrap();
    assert!(
        (6.9..7.2).contains(&span.as_secs_f64()),
        "media spans {span:?}"
    );
    let first = call.first_media.unwrap() - call.invited_at.unwrap();
    assert!(
        (0.55..0.9).contains(&first.as_secs_f64()),
        "first frame at {first:?}"
    );
    // 150 + 110 frames of alice, 110 of grace.
    assert_eq!(call.packets.values().sum::<u64>(), 370);
    assert!(report.legs[0].answer_latency.unwrap() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_catalogue_plays_and_only_excluded_calls_fail_against_a_record_all_bot() {
    // The fake records every call it is offered, so exactly the legs the profiles exclude
    // fail; everything else (every timeline, leg ordering, roster-only and media-timeout ends)
    // must come out sealed.
    let fake = start_fake(sealing()).await;
    let mut o = fast(&fake, &[]);
    o.concurrency = 4;
    let report = simulate(o).await.unwrap();
    assert_eq!(report.legs.len(), 26, "{report}");
    for leg in &report.legs {
        assert!(leg.errors.is_empty(), "{report}");
        assert!(leg.recorded, "{}: {}", leg.scenario, leg.observed);
        assert_eq!(leg.ok(), leg.expected, "{}", leg.scenario);
    }
    let st = fake.state.lock().unwrap();
    assert_eq!(st.unknown_source, 0);
    assert!(st.calls.values().all(|c| c.undecryptable == 0));
}
