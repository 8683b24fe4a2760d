//! Graph-style call notifications, as the platform posts them to a recording bot's callback
//! (`../shared/teams-calls.md`): the `commsNotifications` envelope around `#microsoft.graph.call`
//! and `#microsoft.graph.participant` resources.

use serde_json::{json, Value};

use super::scenario::{Direction, End, Identity, Leg, LegKind};

/// Application id of the primary recording bot.
pub const PRIMARY_BOT_APP_ID: &str = "c0a1e5d2-7b3f-4f6e-9d1c-5a2b3c4d5e01";
/// Application id of the paired recording bot.
pub const PAIRED_BOT_APP_ID: &str = "c0a1e5d2-7b3f-4f6e-9d1c-5a2b3c4d5e02";
/// The compliance recording policy the invitations name.
pub const POLICY_IDENTIFIER: &str = "Tag:ComplianceRecording-Sim";

/// Which of the two recorders a notification goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The primary bot (`--to`).
    Primary,
    /// The paired bot (`--paired-to`).
    Paired,
}

impl Role {
    /// `primary` / `paired`, as in `GET /api/info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Paired => "paired",
        }
    }

    fn app_id(self) -> &'static str {
        match self {
            Role::Primary => PRIMARY_BOT_APP_ID,
            Role::Paired => PAIRED_BOT_APP_ID,
        }
    }

    fn partner(self) -> Role {
        match self {
            Role::Primary => Role::Paired,
            Role::Paired => Role::Primary,
        }
    }
}

/// The ids one leg carries: the same for both recorders of a pair.
#[derive(Debug, Clone)]
pub struct LegIds {
    /// Graph call id.
    pub call_id: String,
    /// `callChainId`.
    pub chain_id: String,
    /// `chatInfo.threadId` of a meeting.
    pub thread_id: Option<String>,
    /// The policy user's participant id in the call.
    pub policy_participant_id: String,
    /// The other side's participant id (p2p).
    pub other_participant_id: String,
}

/// The recorder a notification goes to and whether the call has a paired recorder.
#[derive(Debug, Clone, Copy)]
pub struct Recipient {
    /// This recorder's role.
    pub role: Role,
    /// Whether both recorders are invited ("Pro").
    pub paired: bool,
}

impl Recipient {
    fn my_participant_id(self, ids: &LegIds) -> String {
        // One participant id per recorder per call, stable so that both roles can be told apart.
        format!(
            "{}-{}",
            self.role.as_str(),
            &ids.call_id[..8.min(ids.call_id.len())]
        )
    }
}

/// Kind of a timed notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// `created`, state incoming, with the SDP offer: the bot answers in the response.
    Incoming,
    /// `updated` call state.
    State,
    /// `updated` participants (roster).
    Roster,
    /// `deleted`, state terminated.
    Terminated,
}

/// A notification due at a leg time.
#[derive(Debug, Clone)]
pub struct TimedNote {
    /// Leg time.
    pub at_ms: u64,
    /// What it is.
    pub kind: NoteKind,
    /// The whole `commsNotifications` envelope.
    pub body: Value,
}

/// A Graph `identitySet`.
pub fn identity_set(identity: &Identity) -> Value {
    let (key, inner) = match identity {
        Identity::User {
            id,
            display_name,
            tenant_id,
            ..
        } => (
            "user",
            json!({"@odata.type": "#microsoft.graph.identity", "id": id,
                   "displayName": display_name, "tenantId": tenant_id}),
        ),
        Identity::Phone { e164 } => (
            "phone",
            json!({"@odata.type": "#microsoft.graph.identity", "id": e164}),
        ),
        Identity::Guest { id, display_name } => (
            "guest",
            json!({"@odata.type": "#microsoft.graph.identity", "id": id,
                   "displayName": display_name}),
        ),
        Identity::ApplicationInstance { id, display_name } => (
            "applicationInstance",
            json!({"@odata.type": "#microsoft.graph.identity", "id": id,
                   "displayName": display_name}),
        ),
    };
    json!({"@odata.type": "#microsoft.graph.identitySet", key: inner})
}

fn participant_info(identity: &Identity, participant_id: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.participantInfo",
        "identity": identity_set(identity),
        "participantId": participant_id,
    })
}

/// The envelope around notifications.
pub fn envelope(notifications: Vec<Value>) -> Value {
    json!({"@odata.type": "#microsoft.graph.commsNotifications", "value": notifications})
}

fn call_url(call_id: &str) -> String {
    format!("/communications/calls/{call_id}")
}

/// The incoming-call notification (`created`, `state: incoming`) with the SDP offer in
/// `mediaConfig.blob`.
pub fn incoming_call(leg: &Leg, ids: &LegIds, to: Recipient, offer_sdp: &str) -> Value {
    let policy = &leg.policy_user;
    let policy_info = participant_info(policy, &ids.policy_participant_id);
    let (source, targets, participation, other_side) = match &leg.kind {
        LegKind::P2p { direction, other } => {
            let other_info = participant_info(other, &ids.other_participant_id);
            let (source, target, method, other_method) = match direction {
                Direction::Incoming => (other_info, policy_info, "Callee", "Caller"),
                Direction::Outgoing => (policy_info, other_info, "Caller", "Callee"),
            };
            let mut other_side = json!({"id": other.id(), "participationMethod": other_method});
            if let Some(t) = other.tenant_id() {
                other_side["tenantId"] = json!(t);
            }
            (source, vec![target], method, Some(other_side))
        }
        LegKind::Meeting { .. } => (policy_info, Vec::new(), "DialIn", None),
    };
    let targets: Vec<Value> = targets
        .into_iter()
        .map(|mut t| {
            t["@odata.type"] = json!("#microsoft.graph.invitationParticipantInfo");
            t
        })
        .collect();
    let paired_recorders: Vec<Value> = if to.paired {
        let partner = to.role.partner();
        vec![json!({"id": partner.app_id(),
                    "participantId": format!("{}-{}", partner.as_str(), &ids.call_id[..8.min(ids.call_id.len())])})]
    } else {
        Vec::new()
    };
    let mut bot_data = json!({
        "user": {
            "participationMethod": participation,
            "policyHolderId": policy.id(),
            "policyHolderTenantId": policy.tenant_id().unwrap_or_default(),
        },
        "inviteReasons": ["ComplianceRecording"],
        "policyIdentifier": POLICY_IDENTIFIER,
        "pairedRecorders": paired_recorders,
        "isMultiParty": leg.is_meeting(),
    });
    if let Some(o) = other_side {
        bot_data["otherSideUser"] = o;
    }
    let mut call = json!({
        "@odata.type": "#microsoft.graph.call",
        "id": ids.call_id,
        "state": "incoming",
        "direction": "incoming",
        "tenantId": policy.tenant_id().unwrap_or_default(),
        "callChainId": ids.chain_id,
        "myParticipantId": to.my_participant_id(ids),
        "requestedModalities": ["audio"],
        "source": source,
        "targets": targets,
        "mediaConfig": {"@odata.type": "#microsoft.graph.appHostedMediaConfig", "blob": offer_sdp},
        "incomingContext": {
            "@odata.type": "#microsoft.graph.incomingContext",
            "sourceParticipantId": source_participant_id(leg, ids),
            "observedParticipantId": ids.policy_participant_id,
            "onBehalfOf": leg.on_behalf_of.as_ref().map(identity_set),
            "transferor": leg.transferor.as_ref().map(identity_set),
        },
        "applicationMetadata": {"botData": bot_data},
    });
    if let (LegKind::Meeting { organizer }, Some(thread)) = (&leg.kind, &ids.thread_id) {
        call["chatInfo"] = json!({"@odata.type": "#microsoft.graph.chatInfo",
                                  "threadId": thread, "messageId": "0"});
        call["meetingInfo"] = json!({"@odata.type": "#microsoft.graph.organizerMeetingInfo",
                                     "organizer": identity_set(organizer)});
    }
    envelope(vec![json!({
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "created",
        "resourceUrl": call_url(&ids.call_id),
        "resourceData": call,
    })])
}

fn source_participant_id(leg: &Leg, ids: &LegIds) -> String {
    match &leg.kind {
        LegKind::P2p {
            direction: Direction::Incoming,
            ..
        } => ids.other_participant_id.clone(),
        _ => ids.policy_participant_id.clone(),
    }
}

/// A call state change (`updated`).
pub fn state_update(call_id: &str, state: &str) -> Value {
    envelope(vec![json!({
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "updated",
        "resourceUrl": call_url(call_id),
        "resourceData": {"@odata.type": "#microsoft.graph.call", "id": call_id, "state": state},
    })])
}

/// The end of a call (`deleted`, `state: terminated`, `resultInfo`).
pub fn terminated(call_id: &str, code: u16, subcode: u32, message: &str) -> Value {
    envelope(vec![json!({
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "deleted",
        "resourceUrl": call_url(call_id),
        "resourceData": {
            "@odata.type": "#microsoft.graph.call",
            "id": call_id,
            "state": "terminated",
            "resultInfo": {"@odata.type": "#microsoft.graph.resultInfo",
                           "code": code, "subcode": subcode, "message": message},
        },
    })])
}

/// The full roster at leg time `t_ms` (`updated` on `.../participants`); each participant's
/// audio `mediaStreams[].sourceId` is their MSI.
pub fn roster(leg: &Leg, call_id: &str, t_ms: u64) -> Value {
    let list: Vec<Value> = leg
        .participants
        .iter()
        .filter(|p| p.present(t_ms))
        .map(|p| {
            let pid = format!("{:08x}-{:04x}-4000-8000-{:012x}", p.msi, 0x5a, p.msi);
            json!({
                "@odata.type": "#microsoft.graph.participant",
                "id": pid,
                "info": participant_info(&p.identity, &pid),
                "mediaStreams": [{
                    "@odata.type": "#microsoft.graph.mediaStream",
                    "mediaType": "audio",
                    "sourceId": p.msi.to_string(),
                    "direction": "sendReceive",
                    "serverMuted": false,
                }],
                "isMuted": p.is_muted(t_ms),
                "isInLobby": p.in_lobby(t_ms),
            })
        })
        .collect();
    roster_list(call_id, list)
}

fn roster_list(call_id: &str, list: Vec<Value>) -> Value {
    envelope(vec![json!({
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "updated",
        "resourceUrl": format!("{}/participants", call_url(call_id)),
        "resourceData": list,
    })])
}

/// Every notification of a leg in posting order: the invitation, state changes, roster
/// updates and the end (a `deleted`, an empty roster, or nothing).
pub fn leg_timeline(leg: &Leg, ids: &LegIds, to: Recipient, offer_sdp: &str) -> Vec<TimedNote> {
    let mut notes = vec![TimedNote {
        at_ms: 0,
        kind: NoteKind::Incoming,
        body: incoming_call(leg, ids, to, offer_sdp),
    }];
    for &(at_ms, state) in &leg.states {
        notes.push(TimedNote {
            at_ms,
            kind: NoteKind::State,
            body: state_update(&ids.call_id, state),
        });
    }
    for t in leg.roster_times() {
        notes.push(TimedNote {
            at_ms: t,
            kind: NoteKind::Roster,
            body: roster(leg, &ids.call_id, t),
        });
    }
    match &leg.end {
        End::Deleted {
            code,
            subcode,
            message,
        } => notes.push(TimedNote {
            at_ms: leg.end_ms,
            kind: NoteKind::Terminated,
            body: terminated(&ids.call_id, *code, *subcode, message),
        }),
        End::RosterEmpty => notes.push(TimedNote {
            at_ms: leg.end_ms,
            kind: NoteKind::Roster,
            body: roster_list(&ids.call_id, Vec::new()),
        }),
        End::MediaStops => {}
    }
    // Stable: notes due at the same time keep the order above (state before roster).
    notes.sort_by_key(|n| n.at_ms);
    notes
}
