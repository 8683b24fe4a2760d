//! The signaling core driven with notification bodies shaped like the platform's (see
//! shared/teams-calls.md and docs/live.md): every call type, forks, transfers, meetings with
//! many targeted users, roster-only endings, missing terminations, bad input.

use std::time::{Duration, SystemTime};

use bot_host::signaling::control::{CallControl, LocalCallControl, WebhookAction};
use bot_host::signaling::interaction::EndReason;
use bot_host::signaling::{
    BotRole, CallType, Command, Direction, Interaction, MediaStatus, Profiles, RecordingStatus,
    ReleaseCause, Signaling,
};
use serde_json::{json, Value};

const TENANT: &str = "tenant-contoso";
const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/SAVP 111\r\na=rtpmap:111 opus/48000/2\r\na=sendonly\r\n";

/// 2026-03-02 10:00:00 UTC, a Monday.
fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_772_445_600)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn user(id: &str, name: &str, tenant: &str) -> Value {
    json!({"user": {"id": id, "displayName": name, "tenantId": tenant}})
}

fn phone(number: &str) -> Value {
    json!({"phone": {"id": number}})
}

fn envelope(items: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "@odata.type": "#microsoft.graph.commsNotifications",
        "value": items
    }))
    .unwrap()
}

/// An invitation: the policy user `policy` (id) with `method` Caller/Callee/DialIn.
struct Invite {
    call_id: String,
    policy: String,
    method: &'static str,
    source: Value,
    targets: Vec<Value>,
    chain: Option<String>,
    thread: Option<String>,
    organizer_tenant: Option<String>,
    context: Value,
    offer: bool,
}

impl Invite {
    fn p2p(call_id: &str, policy: &str, method: &'static str, other: Value) -> Self {
        let me = user(policy, &format!("{policy} name"), TENANT);
        let (source, targets) = if method == "Caller" {
            (me, vec![other])
        } else {
            (other, vec![me])
        };
        Invite {
            call_id: call_id.into(),
            policy: policy.into(),
            method,
            source,
            targets,
            chain: Some(format!("chain-{call_id}")),
            thread: None,
            organizer_tenant: None,
            context: json!({}),
            offer: true,
        }
    }

    fn meeting(call_id: &str, policy: &str, thread: &str) -> Self {
        Invite {
            call_id: call_id.into(),
            policy: policy.into(),
            method: "DialIn",
            source: user("organizer", "Organizer", TENANT),
            targets: vec![user(policy, &format!("{policy} name"), TENANT)],
            chain: Some(format!("chain-{thread}")),
            thread: Some(thread.into()),
            organizer_tenant: Some(TENANT.into()),
            context: json!({}),
            offer: true,
        }
    }

    fn chain(mut self, chain: &str) -> Self {
        self.chain = Some(chain.into());
        self
    }

    fn json(&self) -> Value {
        let mut call = json!({
            "@odata.type": "#microsoft.graph.call",
            "id": self.call_id,
            "state": "incoming",
            "direction": "incoming",
            "tenantId": TENANT,
            "myParticipantId": format!("bot-{}", self.call_id),
            "source": {"identity": self.source},
            "targets": self.targets.iter().map(|t| json!({"identity": t})).collect::<Vec<_>>(),
            "incomingContext": self.context,
            "applicationMetadata": {"botData": {
                "user": {"participationMethod": self.method, "policyHolderId": self.policy,
                         "policyHolderTenantId": TENANT},
                "inviteReasons": ["ComplianceRecording"],
                "policyIdentifier": "policy-1",
                "pairedRecorders": [{"id": "paired-app", "participantId": "pp-1"}],
                "isMultiParty": self.thread.is_some()
            }},
        });
        if let Some(c) = &self.chain {
            call["callChainId"] = json!(c);
        }
        if let Some(t) = &self.thread {
            call["chatInfo"] = json!({"threadId": t});
            call["meetingInfo"] = json!({
                "@odata.type": "#microsoft.graph.organizerMeetingInfo",
                "organizer": user("organizer", "Organizer", self.organizer_tenant.as_deref().unwrap_or(TENANT))
            });
        }
        if self.offer {
            call["mediaConfig"] =
                json!({"@odata.type": "#microsoft.graph.appHostedMediaConfig", "blob": OFFER});
        }
        json!({"changeType": "created", "resourceUrl": format!("/communications/calls/{}", self.call_id),
               "resourceData": call})
    }

    fn body(&self) -> Vec<u8> {
        envelope(vec![self.json()])
    }
}

fn state(call_id: &str, state: &str) -> Value {
    json!({"changeType": "updated", "resourceUrl": format!("/communications/calls/{call_id}"),
           "resourceData": {"@odata.type": "#microsoft.graph.call", "id": call_id, "state": state}})
}

fn terminated(call_id: &str, code: i64, subcode: i64) -> Value {
    json!({"changeType": "deleted", "resourceUrl": format!("/communications/calls/{call_id}"),
           "resourceData": {"@odata.type": "#microsoft.graph.call", "id": call_id, "state": "terminated",
             "resultInfo": {"code": code, "subcode": subcode, "message": "ended"}}})
}

fn participant(id: &str, identity: Value, msi: u32, muted: bool, lobby: bool) -> Value {
    json!({"@odata.type": "#microsoft.graph.participant", "id": id,
           "info": {"identity": identity},
           "mediaStreams": [{"mediaType": "audio", "sourceId": msi.to_string(), "direction": "sendReceive", "serverMuted": false}],
           "isMuted": muted, "isInLobby": lobby})
}

fn roster(call_id: &str, change: &str, parts: Vec<Value>) -> Value {
    json!({"changeType": change, "resourceUrl": format!("/communications/calls/{call_id}/participants"),
           "resourceData": parts})
}

fn send(s: &mut Signaling, items: Vec<Value>, at: SystemTime) -> Vec<Command> {
    s.handle_notifications(&envelope(items), at)
        .expect("body accepted")
}

fn default_bot() -> Signaling {
    Signaling::new(Profiles::embedded_default(), BotRole::Primary)
}

/// The recording started by the commands, if any (exactly one answer expected).
fn started(cmds: &[Command]) -> Option<&bot_host::signaling::RecordingStart> {
    let answers: Vec<_> = cmds
        .iter()
        .filter_map(|c| match c {
            Command::Answer { record, .. } => Some(record.as_ref()),
            _ => None,
        })
        .collect();
    assert_eq!(answers.len(), 1, "one answer expected: {cmds:#?}");
    answers[0]
}

fn stop(cmds: &[Command]) -> Option<&Interaction> {
    cmds.iter().find_map(|c| match c {
        Command::StopRecording { interaction, .. } => Some(interaction),
        _ => None,
    })
}

fn count_starts(cmds: &[Command]) -> usize {
    cmds.iter()
        .filter(|c| {
            matches!(
                c,
                Command::Answer {
                    record: Some(_),
                    ..
                }
            )
        })
        .count()
}

#[test]
fn every_call_type_and_direction() {
    let fed = || user("fed-user", "Federated", "tenant-fabrikam");
    let internal = || user("bob", "Bob", TENANT);
    let cases: Vec<(Invite, CallType, Direction)> = vec![
        (
            Invite::p2p("c1", "alice", "Callee", internal()),
            CallType::InternalP2p,
            Direction::Incoming,
        ),
        (
            Invite::p2p("c2", "alice", "Caller", internal()),
            CallType::InternalP2p,
            Direction::Outgoing,
        ),
        (
            Invite::p2p("c3", "alice", "Callee", fed()),
            CallType::ExternalP2p,
            Direction::Incoming,
        ),
        (
            Invite::p2p("c4", "alice", "Caller", fed()),
            CallType::ExternalP2p,
            Direction::Outgoing,
        ),
        (
            Invite::p2p(
                "c5",
                "alice",
                "Callee",
                json!({"guest": {"id": "g", "displayName": "Guest"}}),
            ),
            CallType::ExternalP2p,
            Direction::Incoming,
        ),
        (
            Invite::p2p("c6", "alice", "Callee", phone("+441234")),
            CallType::PstnP2p,
            Direction::Incoming,
        ),
        (
            Invite::p2p("c7", "alice", "Caller", phone("+441234")),
            CallType::PstnP2p,
            Direction::Outgoing,
        ),
        (
            Invite::meeting("c8", "alice", "19:meeting_a@thread.v2"),
            CallType::InternalMeeting,
            Direction::None,
        ),
        (
            Invite {
                organizer_tenant: Some("tenant-fabrikam".into()),
                ..Invite::meeting("c9", "alice", "19:meeting_b@thread.v2")
            },
            CallType::ExternalMeeting,
            Direction::None,
        ),
        (
            Invite {
                context: json!({"onBehalfOf": {"applicationInstance": {"id": "queue-1", "displayName": "Sales queue"}}}),
                ..Invite::p2p("c10", "alice", "Callee", phone("+15550001"))
            },
            CallType::QueueCall,
            Direction::Incoming,
        ),
    ];
    let mut s = default_bot();
    for (inv, ty, dir) in cases {
        let cmds = s.handle_notifications(&inv.body(), t0()).unwrap();
        let rec =
            started(&cmds).unwrap_or_else(|| panic!("{} not recorded: {cmds:?}", inv.call_id));
        assert_eq!(rec.interaction.call_type, ty, "{}", inv.call_id);
        assert_eq!(rec.interaction.direction, dir, "{}", inv.call_id);
        assert_eq!(rec.profile, "default");
        assert_eq!(rec.interaction.double_recording_type, "Essentials");
        assert_eq!(rec.interaction.media_status, MediaStatus::Recording);
        let st = s.call_status(&inv.call_id).unwrap();
        assert!(st.decision.record);
        assert!(
            st.decision.reason.contains(ty.as_str()),
            "{}",
            st.decision.reason
        );
        assert_eq!(st.recording_id.as_deref(), Some(rec.recording_id.as_str()));
        if ty == CallType::QueueCall {
            assert_eq!(rec.interaction.queue_id.as_deref(), Some("queue-1"));
            assert_eq!(rec.interaction.queue_name.as_deref(), Some("Sales queue"));
        }
    }
    assert_eq!(s.active_recordings(), 10);
}

#[test]
fn p2p_lifecycle_with_roster_and_metadata() {
    let mut s = default_bot();
    let inv = Invite::p2p("call-1", "alice", "Callee", user("bob", "Bob", TENANT));
    let cmds = s.handle_notifications(&inv.body(), t0()).unwrap();
    let rec = started(&cmds).unwrap().clone();
    let Command::Answer { offer_sdp, .. } = &cmds[0] else {
        panic!()
    };
    assert_eq!(offer_sdp.as_deref(), Some(OFFER));
    assert_eq!(
        rec.interaction
            .calling_party
            .as_ref()
            .unwrap()
            .display_name
            .as_deref(),
        Some("Bob")
    );
    assert_eq!(
        rec.interaction.called_party.as_ref().unwrap().id.as_deref(),
        Some("alice")
    );
    assert_eq!(rec.interaction.pairing_key, "chain:chain-call-1/alice");
    assert_eq!(rec.interaction.paired_recorders.len(), 1);

    let cmds = send(
        &mut s,
        vec![
            state("call-1", "establishing"),
            state("call-1", "established"),
        ],
        t0() + secs(2),
    );
    assert!(cmds.contains(&Command::UpdateRecordingStatus {
        call_id: "call-1".into(),
        status: RecordingStatus::Recording
    }));
    let upd = cmds
        .iter()
        .find_map(|c| match c {
            Command::Interaction { interaction, .. } => Some(interaction),
            _ => None,
        })
        .unwrap();
    assert_eq!(upd.media_status, MediaStatus::Recording);
    assert_eq!(upd.wait_time_ms, Some(2000));
    assert_eq!(
        upd.answered_by.as_ref().unwrap().id.as_deref(),
        Some("alice")
    );

    let cmds = send(
        &mut s,
        vec![roster(
            "call-1",
            "updated",
            vec![
                participant("p-alice", user("alice", "Alice", TENANT), 11, false, false),
                participant("p-bob", user("bob", "Bob", TENANT), 12, true, false),
                // This bot itself (myParticipantId) is left out; the paired recorder is kept.
                participant(
                    "bot-call-1",
                    json!({"application": {"id": "bot-app"}}),
                    13,
                    false,
                    false,
                ),
                participant(
                    "pp-1",
                    json!({"application": {"id": "paired-app"}}),
                    14,
                    false,
                    false,
                ),
            ],
        )],
        t0() + secs(3),
    );
    let Some(Command::Roster {
        participants,
        recording_id,
    }) = cmds.last()
    else {
        panic!("{cmds:?}")
    };
    assert_eq!(recording_id, &rec.recording_id);
    assert_eq!(participants.len(), 3);
    assert_eq!(participants[2].party.kind, "application");
    assert_eq!(participants[2].party.id.as_deref(), Some("paired-app"));
    assert_eq!(participants[1].msi, Some(12));
    assert!(participants[1].muted);
    assert!(participants[0].join_time.is_some());

    // A hold of 30 s, then the peer leaves.
    send(&mut s, vec![state("call-1", "hold")], t0() + secs(10));
    send(
        &mut s,
        vec![state("call-1", "established")],
        t0() + secs(40),
    );
    let cmds = send(
        &mut s,
        vec![terminated("call-1", 200, 4097)],
        t0() + secs(60),
    );
    let fin = stop(&cmds).expect("sealed");
    assert_eq!(fin.release_cause, Some(ReleaseCause::Normal));
    assert_eq!(fin.end_reason, Some(EndReason::Terminated));
    assert_eq!(fin.hold_time_ms, 30_000);
    assert_eq!(fin.result_info.as_ref().unwrap().subcode, 4097);
    assert!(fin.participants.iter().all(|p| p.leave_time.is_some()));
    let json = serde_json::to_value(fin).unwrap();
    assert_eq!(json["callType"], "Internal p2p");
    assert_eq!(json["releaseCause"], "Normal");
    assert_eq!(json["startTime"], "2026-03-02T10:00:00Z");
    assert_eq!(json["releaseTime"], "2026-03-02T10:01:00Z");
    assert_eq!(json["expiration"], "2027-03-02T10:00:00Z");
    assert_eq!(json["participants"][1]["msi"], 12);
    assert_eq!(s.call_status("call-1").unwrap().state, "terminated");
    assert_eq!(s.active_recordings(), 0);
}

#[test]
fn out_of_order_states_never_go_backwards() {
    let mut s = default_bot();
    s.handle_notifications(
        &Invite::p2p("c", "alice", "Callee", phone("+4411")).body(),
        t0(),
    )
    .unwrap();
    let cmds = send(&mut s, vec![state("c", "established")], t0() + secs(1));
    assert_eq!(s.call_status("c").unwrap().state, "established");
    assert!(cmds
        .iter()
        .any(|c| matches!(c, Command::UpdateRecordingStatus { .. })));
    // establishing after established: ignored, no second status report.
    let cmds = send(&mut s, vec![state("c", "establishing")], t0() + secs(2));
    assert!(cmds.is_empty(), "{cmds:?}");
    assert_eq!(s.call_status("c").unwrap().state, "established");
    // An unknown state is ignored too.
    assert!(send(&mut s, vec![state("c", "someNewState")], t0() + secs(3)).is_empty());
    let cmds = send(&mut s, vec![terminated("c", 200, 540000)], t0() + secs(4));
    assert_eq!(
        stop(&cmds).unwrap().release_cause,
        Some(ReleaseCause::Normal)
    );
    // Late updates after the end change nothing.
    assert!(send(
        &mut s,
        vec![state("c", "established"), terminated("c", 200, 1)],
        t0() + secs(5)
    )
    .is_empty());
    assert_eq!(s.call_status("c").unwrap().state, "terminated");
}

#[test]
fn release_causes() {
    let mut s = default_bot();
    let cases = [
        ("missed", "Callee", None, 200, 5001, ReleaseCause::Missed),
        ("abandoned", "Caller", None, 487, 0, ReleaseCause::Abandoned),
        (
            "failure-early",
            "Callee",
            None,
            408,
            1106,
            ReleaseCause::Failure,
        ),
        (
            "failure",
            "Callee",
            Some("established"),
            500,
            1005,
            ReleaseCause::Failure,
        ),
        (
            "transferred",
            "Callee",
            Some("established"),
            200,
            7015,
            ReleaseCause::Transferred,
        ),
        (
            "normal",
            "Caller",
            Some("established"),
            200,
            5001,
            ReleaseCause::Normal,
        ),
    ];
    for (id, method, st, code, sub, cause) in cases {
        s.handle_notifications(
            &Invite::p2p(id, "alice", method, user("bob", "Bob", TENANT)).body(),
            t0(),
        )
        .unwrap();
        if let Some(st) = st {
            send(&mut s, vec![state(id, st)], t0() + secs(1));
        }
        let cmds = send(&mut s, vec![terminated(id, code, sub)], t0() + secs(5));
        let fin = stop(&cmds).unwrap();
        assert_eq!(fin.release_cause, Some(cause), "{id}");
        let expected_media = if st.is_some() {
            MediaStatus::Recording
        } else {
            MediaStatus::Unavailable
        };
        assert_eq!(fin.media_status, expected_media, "{id}");
        assert_eq!(s.call_status(id).unwrap().release_cause, Some(cause));
    }
}

#[test]
fn forked_duplicate_invitation_is_recorded_once() {
    let mut s = default_bot();
    let first = Invite::p2p("leg-a", "alice", "Callee", phone("+4420")).chain("chain-x");
    let second = Invite::p2p("leg-b", "alice", "Callee", phone("+4420")).chain("chain-x");
    let c1 = s.handle_notifications(&first.body(), t0()).unwrap();
    let c2 = s
        .handle_notifications(&second.body(), t0() + secs(1))
        .unwrap();
    assert_eq!(count_starts(&c1) + count_starts(&c2), 1);
    assert!(started(&c2).is_none(), "second leg answered inactive");
    let st = s.call_status("leg-b").unwrap();
    assert_eq!(st.duplicate_of.as_deref(), Some("leg-a"));
    assert_eq!(st.answer, "inactive");
    assert!(!st.decision.record);
    assert!(
        st.decision.reason.contains("forked duplicate"),
        "{}",
        st.decision.reason
    );
    // The fork ends quickly; the recorded leg is untouched.
    let cmds = send(
        &mut s,
        vec![state("leg-a", "established"), terminated("leg-b", 487, 0)],
        t0() + secs(2),
    );
    assert!(stop(&cmds).is_none());
    assert_eq!(s.active_recordings(), 1);
    let cmds = send(
        &mut s,
        vec![terminated("leg-a", 200, 4097)],
        t0() + secs(30),
    );
    assert_eq!(
        stop(&cmds).unwrap().release_cause,
        Some(ReleaseCause::Normal)
    );
    // Another user's invitation on the same chain (e.g. a group ring) is its own recording.
    let carol = Invite::p2p("leg-c", "carol", "Callee", phone("+4420")).chain("chain-y");
    let carol2 = Invite::p2p("leg-d", "dave", "Callee", phone("+4420")).chain("chain-y");
    assert_eq!(
        count_starts(&s.handle_notifications(&carol.body(), t0()).unwrap()),
        1
    );
    assert_eq!(
        count_starts(&s.handle_notifications(&carol2.body(), t0()).unwrap()),
        1
    );
}

#[test]
fn transfer_linked_by_call_chain_id() {
    let mut s = default_bot();
    // Alice (policy) takes a PSTN call, then transfers it to Carol (policy).
    let a = Invite::p2p("leg-alice", "alice", "Callee", phone("+4420")).chain("chain-t");
    let a_rec = started(&s.handle_notifications(&a.body(), t0()).unwrap())
        .unwrap()
        .recording_id
        .clone();
    send(
        &mut s,
        vec![state("leg-alice", "established")],
        t0() + secs(1),
    );
    send(
        &mut s,
        vec![state("leg-alice", "transferring")],
        t0() + secs(60),
    );
    let mut c = Invite::p2p("leg-carol", "carol", "Callee", phone("+4420")).chain("chain-t");
    c.context = json!({"transferor": user("alice", "Alice", TENANT)});
    let cmds = s.handle_notifications(&c.body(), t0() + secs(61)).unwrap();
    let c_rec = started(&cmds)
        .expect("the new leg is recorded")
        .recording_id
        .clone();
    assert_ne!(a_rec, c_rec);
    let new_meta = s.interaction(&c_rec).unwrap();
    assert_eq!(
        new_meta.transferred_by.as_ref().unwrap().id.as_deref(),
        Some("alice")
    );
    assert_eq!(
        new_meta.transferred_from_recording.as_deref(),
        Some(a_rec.as_str())
    );
    assert_eq!(new_meta.call_chain_id.as_deref(), Some("chain-t"));
    let cmds = send(
        &mut s,
        vec![terminated("leg-alice", 200, 7015)],
        t0() + secs(62),
    );
    let old = stop(&cmds).unwrap();
    assert_eq!(old.release_cause, Some(ReleaseCause::Transferred));
    assert_eq!(
        old.transferred_to.as_ref().unwrap().id.as_deref(),
        Some("carol")
    );
    assert_eq!(
        old.transferred_to_recording.as_deref(),
        Some(c_rec.as_str())
    );
}

#[test]
fn transfer_after_the_old_leg_ended_updates_its_metadata() {
    let mut s = default_bot();
    let a = Invite::p2p("l1", "alice", "Callee", user("bob", "Bob", TENANT)).chain("chain-u");
    let a_rec = started(&s.handle_notifications(&a.body(), t0()).unwrap())
        .unwrap()
        .recording_id
        .clone();
    send(&mut s, vec![state("l1", "established")], t0() + secs(1));
    // The platform ends the old leg as a completed transfer before the new leg is invited, and
    // the new leg names no transferor.
    let cmds = send(&mut s, vec![terminated("l1", 200, 7015)], t0() + secs(20));
    assert_eq!(
        stop(&cmds).unwrap().release_cause,
        Some(ReleaseCause::Transferred)
    );
    let c = Invite::p2p("l2", "carol", "Callee", user("bob", "Bob", TENANT)).chain("chain-u");
    let cmds = s.handle_notifications(&c.body(), t0() + secs(21)).unwrap();
    let update = cmds
        .iter()
        .find_map(|c| match c {
            Command::Interaction {
                recording_id,
                interaction,
            } if *recording_id == a_rec => Some(interaction),
            _ => None,
        })
        .expect("old leg's metadata updated");
    assert_eq!(
        update.transferred_to.as_ref().unwrap().id.as_deref(),
        Some("carol")
    );
    assert_eq!(update.release_cause, Some(ReleaseCause::Transferred));
    let new_rec = started(&cmds).unwrap();
    assert_eq!(
        s.interaction(&new_rec.recording_id)
            .unwrap()
            .transferred_by
            .as_ref()
            .unwrap()
            .id
            .as_deref(),
        Some("alice")
    );
}

fn two_profiles() -> Profiles {
    Profiles::from_toml_str(
        r#"
[[profile]]
name = "Traders"
users = ["u1", "u2", "u3"]
double_recording = true
[[profile]]
name = "Sales"
users = ["u4", "u5"]
"#,
    )
    .unwrap()
}

#[test]
fn meeting_with_five_targeted_users_in_one_profile_is_one_recording() {
    let mut s = default_bot();
    let thread = "19:meeting_big@thread.v2";
    let mut all = Vec::new();
    for i in 1..=5 {
        let cmds = s
            .handle_notifications(
                &Invite::meeting(&format!("m{i}"), &format!("u{i}"), thread).body(),
                t0() + secs(i),
            )
            .unwrap();
        all.extend(cmds);
    }
    assert_eq!(count_starts(&all), 1);
    let answers = all
        .iter()
        .filter(|c| matches!(c, Command::Answer { .. }))
        .count();
    assert_eq!(answers, 5, "every invitation is answered");
    let rec_id = s.call_status("m1").unwrap().recording_id.unwrap();
    for i in 2..=5 {
        let st = s.call_status(&format!("m{i}")).unwrap();
        assert_eq!(st.recording_id.as_deref(), Some(rec_id.as_str()));
        assert_eq!(st.answer, "inactive");
        assert!(st.decision.record);
        assert!(
            st.decision.reason.contains("already recorded"),
            "{}",
            st.decision.reason
        );
    }
    let meta = s.interaction(&rec_id).unwrap();
    assert_eq!(meta.targets.len(), 5);
    assert_eq!(meta.pairing_key, format!("meeting:{thread}/default"));
    // Every user's bot call reports recording once established.
    let cmds = send(
        &mut s,
        (1..=5)
            .map(|i| state(&format!("m{i}"), "established"))
            .collect(),
        t0() + secs(10),
    );
    let reports = cmds
        .iter()
        .filter(|c| {
            matches!(
                c,
                Command::UpdateRecordingStatus {
                    status: RecordingStatus::Recording,
                    ..
                }
            )
        })
        .count();
    assert_eq!(reports, 5);
}

#[test]
fn meeting_with_users_in_two_profiles_is_two_recordings() {
    let mut s = Signaling::new(two_profiles(), BotRole::Primary);
    let thread = "19:meeting_two@thread.v2";
    let mut all = Vec::new();
    for i in 1..=5 {
        all.extend(
            s.handle_notifications(
                &Invite::meeting(&format!("m{i}"), &format!("u{i}"), thread).body(),
                t0(),
            )
            .unwrap(),
        );
    }
    let starts: Vec<_> = all
        .iter()
        .filter_map(|c| match c {
            Command::Answer {
                record: Some(r), ..
            } => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[0].profile, "Traders");
    assert_eq!(starts[1].profile, "Sales");
    assert!(starts[0].double_recording && !starts[1].double_recording);
    assert_eq!(
        s.interaction(&starts[0].recording_id)
            .unwrap()
            .targets
            .len(),
        3
    );
    assert_eq!(
        s.interaction(&starts[1].recording_id)
            .unwrap()
            .targets
            .len(),
        2
    );
}

#[test]
fn meeting_ends_by_roster_update_only() {
    let mut s = default_bot();
    let thread = "19:meeting_r@thread.v2";
    let rec_id = started(
        &s.handle_notifications(&Invite::meeting("m1", "u1", thread).body(), t0())
            .unwrap(),
    )
    .unwrap()
    .recording_id
    .clone();
    s.handle_notifications(&Invite::meeting("m2", "u2", thread).body(), t0())
        .unwrap();
    send(
        &mut s,
        vec![state("m1", "established"), state("m2", "established")],
        t0() + secs(1),
    );
    let guest = json!({"guest": {"id": "g1", "displayName": "Visitor"}});
    let full = |ps: Vec<Value>| roster("m1", "updated", ps);
    // u1, u2 and a guest waiting in the lobby.
    let cmds = send(
        &mut s,
        vec![full(vec![
            participant("p1", user("u1", "U1", TENANT), 1, false, false),
            participant("p2", user("u2", "U2", TENANT), 2, false, false),
            participant("pg", guest.clone(), 3, false, true),
        ])],
        t0() + secs(2),
    );
    let Some(Command::Roster { participants, .. }) = cmds.last() else {
        panic!()
    };
    assert!(participants[2].in_lobby && participants[2].join_time.is_none());
    assert_eq!(
        s.interaction(&rec_id).unwrap().call_type,
        CallType::InternalMeeting
    );
    // The member call's roster (same meeting) is not processed a second time.
    assert!(send(
        &mut s,
        vec![roster("m2", "updated", vec![])],
        t0() + secs(2)
    )
    .is_empty());
    // The guest is admitted and muted; u2 leaves (absent from the full roster).
    let cmds = send(
        &mut s,
        vec![full(vec![
            participant("p1", user("u1", "U1", TENANT), 1, false, false),
            participant("pg", guest.clone(), 3, true, false),
        ])],
        t0() + secs(30),
    );
    assert!(cmds
        .iter()
        .any(|c| matches!(c, Command::Interaction { interaction, .. }
        if interaction.call_type == CallType::InternalMeetingWithExternalParticipants)));
    let meta = s.interaction(&rec_id).unwrap();
    let p2 = &meta.participants[1];
    assert_eq!(p2.leave_time.map(|t| t.timestamp()), Some(1_772_445_630));
    let pg = &meta.participants[2];
    assert!(pg.muted && !pg.in_lobby && pg.external);
    assert_eq!(pg.join_time.map(|t| t.timestamp()), Some(1_772_445_630));
    // The meeting ends: an empty full roster, no termination ever comes.
    let cmds = send(&mut s, vec![full(vec![])], t0() + secs(90));
    let fin = stop(&cmds).expect("sealed by roster");
    assert_eq!(fin.end_reason, Some(EndReason::Roster));
    assert_eq!(fin.release_cause, Some(ReleaseCause::Normal));
    assert_eq!(
        fin.call_type,
        CallType::InternalMeetingWithExternalParticipants
    );
    for id in ["m1", "m2"] {
        assert!(
            cmds.contains(&Command::Hangup { call_id: id.into() }),
            "{id}: {cmds:?}"
        );
        assert_eq!(s.call_status(id).unwrap().state, "terminated");
    }
    // A later invitation to the same meeting starts a new recording.
    let again = s
        .handle_notifications(
            &Invite::meeting("m3", "u3", thread).body(),
            t0() + secs(100),
        )
        .unwrap();
    assert_eq!(count_starts(&again), 1);
}

#[test]
fn meeting_ends_when_every_participant_is_removed() {
    let mut s = default_bot();
    s.handle_notifications(
        &Invite::meeting("m1", "u1", "19:meeting_d@thread.v2").body(),
        t0(),
    )
    .unwrap();
    send(
        &mut s,
        vec![roster(
            "m1",
            "created",
            vec![
                participant("p1", user("u1", "U1", TENANT), 1, false, false),
                participant("p2", phone("+4420"), 2, false, false),
            ],
        )],
        t0() + secs(1),
    );
    // Removals one at a time: by list, then by participant URL.
    let cmds = send(
        &mut s,
        vec![roster("m1", "deleted", vec![json!({"id": "p2"})])],
        t0() + secs(5),
    );
    assert!(stop(&cmds).is_none(), "u1 still in: {cmds:?}");
    let cmds = send(
        &mut s,
        vec![
            json!({"changeType": "deleted", "resourceUrl": "/communications/calls/m1/participants/p1"}),
        ],
        t0() + secs(6),
    );
    let fin = stop(&cmds).expect("sealed");
    assert_eq!(fin.end_reason, Some(EndReason::Roster));
    // Never established: no media was recorded.
    assert_eq!(fin.media_status, MediaStatus::Unavailable);
}

#[test]
fn missing_termination_ends_on_media_timeout() {
    let mut s = default_bot();
    let rec = started(
        &s.handle_notifications(
            &Invite::p2p("c", "alice", "Callee", phone("+1")).body(),
            t0(),
        )
        .unwrap(),
    )
    .unwrap()
    .recording_id
    .clone();
    send(&mut s, vec![state("c", "established")], t0() + secs(1));
    let cmds = s.media_timeout("c", t0() + secs(600));
    let fin = stop(&cmds).unwrap();
    assert_eq!(fin.recording_id, rec);
    assert_eq!(fin.end_reason, Some(EndReason::MediaTimeout));
    assert_eq!(fin.release_cause, Some(ReleaseCause::Normal));
    assert!(cmds.contains(&Command::Hangup {
        call_id: "c".into()
    }));
    // Repeated or late signals change nothing.
    assert!(s.media_timeout("c", t0() + secs(601)).is_empty());
    assert!(s.media_timeout("nope", t0()).is_empty());
    assert!(send(&mut s, vec![terminated("c", 200, 4097)], t0() + secs(602)).is_empty());
}

#[test]
fn keep_alive_every_15_minutes_and_idle_end() {
    let mut s = default_bot();
    s.handle_notifications(
        &Invite::p2p("c", "alice", "Callee", phone("+1")).body(),
        t0(),
    )
    .unwrap();
    send(&mut s, vec![state("c", "established")], t0());
    let mut keep_alives = Vec::new();
    let mut now = t0();
    // Six hours of a quiet call, driven by poll_timeout like the host does.
    let mut stopped = None;
    while let Some(next) = s.poll_timeout() {
        if next > t0() + secs(7 * 3600) {
            break;
        }
        assert!(next >= now, "time moves forward");
        now = next;
        for c in s.handle_timeout(now) {
            match c {
                Command::KeepAlive { call_id } => {
                    assert_eq!(call_id, "c");
                    keep_alives.push(now.duration_since(t0()).unwrap().as_secs());
                }
                Command::StopRecording { interaction, .. } => stopped = Some((now, interaction)),
                _ => {}
            }
        }
        if stopped.is_some() {
            break;
        }
    }
    assert_eq!(&keep_alives[..3], &[900, 1800, 2700]);
    assert!(keep_alives.windows(2).all(|w| w[1] - w[0] == 900));
    let (at, fin) = stopped.expect("idle call ended");
    assert_eq!(at, t0() + secs(6 * 3600));
    assert_eq!(fin.end_reason, Some(EndReason::IdleTimeout));
}

/// The store's order of a leg's media status (recorder-daemon `MediaStatus::advance`): it only
/// moves forward, so a post that goes back is ignored there.
fn store_rank(m: MediaStatus) -> u8 {
    match m {
        MediaStatus::Recording => 0,
        MediaStatus::Pending => 1,
        MediaStatus::Failed | MediaStatus::Unavailable => 2,
        MediaStatus::Available => 3,
    }
}

/// Every media status a call's recording posts, in order: the answer's, then each update's.
fn posted_statuses(cmds: &[Command]) -> Vec<MediaStatus> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Answer {
                record: Some(r), ..
            } => Some(r.interaction.media_status),
            Command::Interaction { interaction, .. }
            | Command::StopRecording { interaction, .. } => Some(interaction.media_status),
            _ => None,
        })
        .collect()
}

#[test]
fn media_status_posted_from_the_answer_only_moves_forward_in_the_store() {
    // Found by the fault drill: the answer posted Pending and the establishment Recording,
    // which the store (status only moves forward) kept as Pending, so no call ever showed in
    // Active Calls. The bot answers a call to record with its media plane open: Recording.
    let mut s = default_bot();
    let inv = Invite::p2p("call-1", "alice", "Callee", user("bob", "Bob", TENANT));
    let mut posted = posted_statuses(&s.handle_notifications(&inv.body(), t0()).unwrap());
    assert_eq!(posted, [MediaStatus::Recording]);
    posted.extend(posted_statuses(&send(
        &mut s,
        vec![
            state("call-1", "establishing"),
            state("call-1", "established"),
        ],
        t0() + secs(1),
    )));
    // The establishment is in the bot's call status: what Active Calls' delay is measured from.
    let st = s.call_status("call-1").unwrap();
    assert_eq!(st.answered_at, Some((t0() + secs(1)).into()));
    posted.extend(posted_statuses(&send(
        &mut s,
        vec![terminated("call-1", 200, 4097)],
        t0() + secs(9),
    )));
    assert!(posted.len() >= 3, "{posted:?}");
    assert!(
        posted
            .windows(2)
            .all(|w| store_rank(w[0]) <= store_rank(w[1])),
        "{posted:?}"
    );
    assert_eq!(posted.last(), Some(&MediaStatus::Recording), "{posted:?}");

    // A call answered and never established ends Unavailable: forward from Recording too.
    let mut s = default_bot();
    let inv = Invite::p2p("c", "alice", "Callee", phone("+1"));
    let mut posted = posted_statuses(&s.handle_notifications(&inv.body(), t0()).unwrap());
    posted.extend(posted_statuses(&s.handle_timeout(t0() + secs(120))));
    assert_eq!(posted, [MediaStatus::Recording, MediaStatus::Unavailable]);
}

#[test]
fn answered_call_never_established_ends_after_setup_timeout() {
    let mut s = default_bot();
    s.handle_notifications(
        &Invite::p2p("c", "alice", "Callee", phone("+1")).body(),
        t0(),
    )
    .unwrap();
    assert_eq!(s.poll_timeout(), Some(t0() + secs(120)));
    assert!(s.handle_timeout(t0() + secs(119)).is_empty());
    let cmds = s.handle_timeout(t0() + secs(120));
    let fin = stop(&cmds).unwrap();
    assert_eq!(fin.release_cause, Some(ReleaseCause::Failure));
    // Ended calls are forgotten after the retention period.
    assert!(s.call_status("c").is_some());
    s.handle_timeout(t0() + secs(120 + 15 * 60));
    assert!(s.call_status("c").is_none());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn bad_input_is_an_error_or_ignored_and_other_calls_are_unaffected() {
    let mut s = default_bot();
    let good = Invite::p2p("good", "alice", "Callee", phone("+1"));
    s.handle_notifications(&good.body(), t0()).unwrap();
    for body in [
        &b"not json"[..],
        b"",
        b"[1,2]",
        b"{\"value\": {}}",
        b"{\"value\":[1",
    ] {
        assert!(
            s.handle_notifications(body, t0()).is_err(),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    // Unknown calls, malformed items and items without a call id, mixed with a good update.
    let cmds = send(
        &mut s,
        vec![
            state("ghost", "established"),
            roster("ghost", "updated", vec![]),
            json!({"changeType": "updated", "resourceUrl": "/communications/calls/good", "resourceData": {"state": 7}}),
            json!({"changeType": "updated", "resourceData": {"state": "established"}}),
            json!(42),
            state("good", "established"),
        ],
        t0() + secs(1),
    );
    assert!(cmds.contains(&Command::UpdateRecordingStatus {
        call_id: "good".into(),
        status: RecordingStatus::Recording
    }));
    assert_eq!(s.unknown_call_notifications, 2);
    assert_eq!(s.malformed_notifications, 3);
    assert!(s.call_status("ghost").is_none());
    assert_eq!(s.call_status("good").unwrap().state, "established");
    // A repeated invitation for a known call is not a second answer.
    assert!(s
        .handle_notifications(&good.body(), t0() + secs(2))
        .unwrap()
        .is_empty());
}

#[test]
fn invitation_without_offer_is_rejected_when_it_should_be_recorded() {
    let mut s = default_bot();
    let mut inv = Invite::p2p("c", "alice", "Callee", phone("+1"));
    inv.offer = false;
    let cmds = s.handle_notifications(&inv.body(), t0()).unwrap();
    assert!(
        matches!(&cmds[0], Command::Reject { reason, .. } if reason.contains("no media offer"))
    );
    let st = s.call_status("c").unwrap();
    assert_eq!(st.answer, "rejected");
    assert!(!st.decision.record);
    assert_eq!(s.active_recordings(), 0);
}

#[test]
fn profile_rules_through_signaling() {
    let profiles = Profiles::from_toml_str(
        r#"
[[profile]]
name = "Tokyo desk"
users = ["alice"]
[profile.call_types]
internal_p2p = "none"
queue_ids = "queue-a"
[profile.received_numbers]
mode = "block"
list = "^1800\\d+$"
[profile.time_range]
time_zone = "Asia/Tokyo"
days = ["Mon", "Tue", "Wed", "Thu", "Fri"]
start_hour = 8
end_hour = 18
"#,
    )
    .unwrap();
    let mut s = Signaling::new(profiles, BotRole::Primary);
    // Sunday 23:30 UTC = Monday 08:30 Tokyo: inside.
    let sun_2330 = t0() - secs(10 * 3600 + 30 * 60);
    let rec = |s: &mut Signaling, inv: Invite, at| {
        let cmds = s.handle_notifications(&inv.body(), at).unwrap();
        let id = inv.call_id.clone();
        (
            started(&cmds).is_some(),
            s.call_status(&id).unwrap().decision.reason,
        )
    };
    let (r, why) = rec(
        &mut s,
        Invite::p2p("a", "alice", "Callee", phone("+4420")),
        sun_2330,
    );
    assert!(r, "{why}");
    assert!(why.contains("Mon 08:30 Asia/Tokyo"), "{why}");
    // Sunday 22:30 UTC = Monday 07:30 Tokyo: outside.
    let (r, why) = rec(
        &mut s,
        Invite::p2p("b", "alice", "Callee", phone("+4420")),
        sun_2330 - secs(3600),
    );
    assert!(!r && why.contains("outside recording hours"), "{why}");
    let (r, why) = rec(
        &mut s,
        Invite::p2p("c", "alice", "Callee", phone("+18005550000")),
        sun_2330,
    );
    assert!(!r && why.contains("in block list"), "{why}");
    let (r, why) = rec(
        &mut s,
        Invite::p2p("d", "alice", "Callee", user("bob", "Bob", TENANT)),
        sun_2330,
    );
    assert!(!r && why.contains("internal_p2p = none"), "{why}");
    let queue = |id: &str, q: &str| Invite {
        context: json!({"onBehalfOf": {"applicationInstance": {"id": q}}}),
        ..Invite::p2p(id, "alice", "Callee", phone("+4420"))
    };
    assert!(rec(&mut s, queue("e", "queue-a"), sun_2330).0);
    let (r, why) = rec(&mut s, queue("f", "queue-b"), sun_2330);
    assert!(!r && why.contains("not in queue_ids"), "{why}");
    let (r, why) = rec(
        &mut s,
        Invite::p2p("g", "zed", "Callee", phone("+4420")),
        sun_2330,
    );
    assert!(!r && why.contains("in no recording profile"), "{why}");
    // Not recorded = answered inactive, never rejected.
    assert_eq!(s.call_status("g").unwrap().answer, "inactive");
    // Reloaded profiles decide new calls only.
    s.replace_profiles(Profiles::embedded_default());
    assert!(
        rec(
            &mut s,
            Invite::p2p("h", "zed", "Callee", phone("+4420")),
            sun_2330
        )
        .0
    );
    assert!(!s.call_status("g").unwrap().decision.record);
}

#[test]
fn paired_bot_records_pro_profiles_only() {
    let mut s = Signaling::new(two_profiles(), BotRole::Paired);
    let pro = s
        .handle_notifications(&Invite::p2p("a", "u1", "Callee", phone("+1")).body(), t0())
        .unwrap();
    let r = started(&pro).expect("Pro profile recorded by the paired bot");
    assert_eq!(r.interaction.bot_role, BotRole::Paired);
    assert_eq!(r.interaction.double_recording_type, "Pro");
    let ess = s
        .handle_notifications(&Invite::p2p("b", "u4", "Callee", phone("+1")).body(), t0())
        .unwrap();
    assert!(started(&ess).is_none());
    assert!(s
        .call_status("b")
        .unwrap()
        .decision
        .reason
        .contains("Essentials"));
}

#[test]
fn recording_failure_and_shutdown() {
    let mut s = default_bot();
    let rec = started(
        &s.handle_notifications(
            &Invite::p2p("c", "alice", "Callee", phone("+1")).body(),
            t0(),
        )
        .unwrap(),
    )
    .unwrap()
    .recording_id
    .clone();
    send(&mut s, vec![state("c", "established")], t0());
    let cmds = s.recording_failed(&rec);
    assert!(cmds.contains(&Command::UpdateRecordingStatus {
        call_id: "c".into(),
        status: RecordingStatus::Failed
    }));
    assert!(s.recording_failed(&rec).is_empty(), "reported once");
    s.handle_notifications(&Invite::p2p("d", "bob", "Caller", phone("+1")).body(), t0())
        .unwrap();
    let cmds = s.shutdown(t0() + secs(5));
    assert_eq!(
        cmds.iter()
            .filter(|c| matches!(c, Command::StopRecording { .. }))
            .count(),
        2
    );
    assert_eq!(
        cmds.iter()
            .filter(|c| matches!(c, Command::Hangup { .. }))
            .count(),
        2
    );
    assert_eq!(s.live_calls(), 0);
}

#[test]
fn keep_alive_failure_ends_the_call_as_failure() {
    let mut s = default_bot();
    s.handle_notifications(
        &Invite::p2p("c", "alice", "Callee", phone("+1")).body(),
        t0(),
    )
    .unwrap();
    send(&mut s, vec![state("c", "established")], t0());
    let fin = stop(&s.keep_alive_failed("c", t0() + secs(900)))
        .unwrap()
        .clone();
    assert_eq!(fin.release_cause, Some(ReleaseCause::Failure));
    assert_eq!(fin.end_reason, Some(EndReason::KeepAliveFailed));
}

/// The host's webhook path: commands -> LocalCallControl -> response body.
#[test]
fn webhook_response_through_local_call_control() {
    let mut s = default_bot();
    let mut ctl = LocalCallControl::new();
    let mut no_offer = Invite::p2p("b", "alice", "Callee", phone("+1"));
    no_offer.offer = false;
    let body = envelope(vec![
        Invite::p2p("a", "alice", "Callee", phone("+1")).json(),
        no_offer.json(),
    ]);
    for c in s.handle_notifications(&body, t0()).unwrap() {
        match c {
            Command::Answer {
                call_id, record, ..
            } => {
                let dir = if record.is_some() {
                    "recvonly"
                } else {
                    "inactive"
                };
                ctl.answer(&call_id, &format!("v=0\r\na={dir}\r\n"))
                    .unwrap();
            }
            Command::Reject { call_id, reason } => ctl.reject(&call_id, &reason).unwrap(),
            other => panic!("unexpected {other:?}"),
        }
    }
    let resp = ctl.take_response();
    assert_eq!(resp.value.len(), 2);
    assert!(
        matches!(&resp.value[0], WebhookAction::Answer { call_id, media_config } if call_id == "a" && media_config.blob.contains("recvonly"))
    );
    assert!(matches!(&resp.value[1], WebhookAction::Reject { call_id, .. } if call_id == "b"));
    let v: Value = serde_json::to_value(s.call_status("a").unwrap()).unwrap();
    assert_eq!(v["state"], "incoming");
    assert_eq!(v["decision"]["record"], true);
    assert_eq!(v["decision"]["profile"], "default");
    assert!(v["recordingId"].is_string());
}

#[test]
fn fuzz_entry_survives_hostile_bodies() {
    let inv = Invite::p2p("c", "alice", "Callee", phone("+1")).body();
    let mut bodies: Vec<Vec<u8>> = vec![
        inv.clone(),
        b"{}".to_vec(),
        b"{\"value\":[null,{},[]]}".to_vec(),
    ];
    // Every truncation and a byte flip at every position of a real invitation.
    for i in (0..inv.len()).step_by(7) {
        bodies.push(inv[..i].to_vec());
        let mut b = inv.clone();
        b[i] ^= 0x20;
        bodies.push(b);
    }
    for b in &bodies {
        bot_host::signaling::fuzz_notifications(b);
    }
}

#[test]
fn huge_retention_does_not_overflow() {
    let p = Profiles::from_toml_str(
        "[[profile]]\nname=\"x\"\nusers=[\"*\"]\nretention_days=4294967295\n",
    )
    .unwrap();
    let mut s = Signaling::new(p, BotRole::Primary);
    let cmds = s
        .handle_notifications(
            &Invite::p2p("c", "alice", "Callee", phone("+1")).body(),
            t0(),
        )
        .unwrap();
    let r = started(&cmds).unwrap();
    assert_eq!(r.retention_days, u32::MAX);
    assert!(r.interaction.expiration > r.interaction.start_time);
}

#[test]
fn a_meeting_not_recorded_still_ends_by_roster() {
    // The paired bot of an Essentials profile answers inactive; the meeting ends only by
    // roster, and the bot's call must end with it rather than linger until its idle timeout.
    let mut s = Signaling::new(Profiles::embedded_default(), BotRole::Paired);
    let cmds = s
        .handle_notifications(
            &Invite::meeting("m1", "u1", "19:meeting_x@thread.v2").body(),
            t0(),
        )
        .unwrap();
    assert!(started(&cmds).is_none(), "{cmds:?}");
    send(&mut s, vec![state("m1", "established")], t0() + secs(1));
    let full = |ps: Vec<Value>| roster("m1", "updated", ps);
    let cmds = send(
        &mut s,
        vec![full(vec![participant(
            "p1",
            user("u1", "U1", TENANT),
            1,
            false,
            false,
        )])],
        t0() + secs(2),
    );
    assert!(cmds.is_empty(), "{cmds:?}");
    assert_eq!(s.call_status("m1").unwrap().state, "established");
    let cmds = send(&mut s, vec![full(vec![])], t0() + secs(3));
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::Hangup { call_id } if call_id == "m1")),
        "{cmds:?}"
    );
    assert_eq!(s.call_status("m1").unwrap().state, "terminated");
}
