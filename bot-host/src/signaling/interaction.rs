//! The interaction metadata record of one recording, as far as signaling knows it.
//!
//! Serialized as camelCase JSON (see docs/live.md, "Interaction metadata"); the host posts it to
//! the metadata store or writes it next to the recording, and fills what only it knows (media
//! status after sealing, segments).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::notify::{PairedRecorderRef, ResultInfo};

/// Which bot of a pair this host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum BotRole {
    /// The first (or only) recorder.
    #[default]
    Primary,
    /// The second recorder of a "Pro" pair.
    Paired,
}

/// The policy user's direction of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// The policy user receives the call.
    Incoming,
    /// The policy user makes the call.
    Outgoing,
    /// Meetings (conferences) have no direction.
    None,
}

/// The product's call types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CallType {
    /// Both parties in the policy user's tenant.
    #[serde(rename = "Internal p2p")]
    InternalP2p,
    /// The other party is federated (another tenant) or a guest.
    #[serde(rename = "External p2p")]
    ExternalP2p,
    /// The other party is a telephone number.
    #[serde(rename = "PSTN p2p")]
    PstnP2p,
    /// A meeting organised in the policy user's tenant.
    #[serde(rename = "Internal Meeting")]
    InternalMeeting,
    /// A meeting organised by another tenant.
    #[serde(rename = "External Meeting")]
    ExternalMeeting,
    /// An internal meeting that external, guest or PSTN participants joined.
    #[serde(rename = "Internal Meeting with External Participants")]
    InternalMeetingWithExternalParticipants,
    /// A call delivered on behalf of a call queue.
    #[serde(rename = "Queue Call")]
    QueueCall,
}

impl CallType {
    /// The product's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            CallType::InternalP2p => "Internal p2p",
            CallType::ExternalP2p => "External p2p",
            CallType::PstnP2p => "PSTN p2p",
            CallType::InternalMeeting => "Internal Meeting",
            CallType::ExternalMeeting => "External Meeting",
            CallType::InternalMeetingWithExternalParticipants => {
                "Internal Meeting with External Participants"
            }
            CallType::QueueCall => "Queue Call",
        }
    }
}

/// Why the call ended, in the product's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReleaseCause {
    /// Ended after it was established.
    Normal,
    /// Ended by an error (4xx/5xx, keep-alive failure).
    Failure,
    /// The policy user received the call and it ended before it was answered.
    Missed,
    /// Ended before it was answered, from the calling side (or a meeting never joined).
    Abandoned,
    /// Ended by a completed transfer (200/7015), or linked to a later leg by `callChainId`.
    Transferred,
}

/// Media status of the recording as signaling knows it; the host moves it to `Available` or
/// `Failed` after sealing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MediaStatus {
    /// Sealed, waiting for the uploader's verified copy (set by the host after the seal).
    Pending,
    /// Answered (the recording is open) or established: media is being recorded.
    Recording,
    /// Sealed and stored.
    Available,
    /// Recording broke.
    Failed,
    /// Never established: no media.
    Unavailable,
}

/// How the call ended, beyond the release cause: what signaling saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EndReason {
    /// A `terminated` notification.
    Terminated,
    /// The roster emptied or lost every policy user (meetings that end only by roster).
    Roster,
    /// The media plane saw no media for too long and no termination arrived.
    MediaTimeout,
    /// No notification for too long.
    IdleTimeout,
    /// The host's keep-alive was refused.
    KeepAliveFailed,
    /// The host shut down.
    Shutdown,
}

/// A party of the call (caller, callee, target, transferor, queue, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Party {
    /// `user`, `phone`, `guest`, `application` or `applicationInstance`.
    pub kind: String,
    /// Object id or phone number as the platform gave it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Display name (may be missing for guests and non-directory identities).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// UPN when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    /// Tenant when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// For phones: the digits without `+`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}

impl Party {
    /// A name for logs and fallbacks: display name, else UPN, else number, else id.
    pub fn label(&self) -> String {
        self.display_name
            .clone()
            .or_else(|| self.upn.clone())
            .or_else(|| self.number.clone())
            .or_else(|| self.id.clone())
            .unwrap_or_else(|| format!("unknown {}", self.kind))
    }

    /// Same party: same id (case-insensitive), or same UPN.
    pub fn same_as(&self, other: &Party) -> bool {
        let eq = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        };
        eq(&self.id, &other.id) || eq(&self.upn, &other.upn)
    }
}

/// A participant of the recording, from roster updates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    /// The platform's participant id.
    pub participant_id: String,
    /// Who.
    pub party: Party,
    /// Audio MSI = SSRC of the speaker's RTP stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msi: Option<u32>,
    /// Muted (self or server).
    pub muted: bool,
    /// Waiting in the lobby: not joined yet.
    pub in_lobby: bool,
    /// In another tenant, a guest or a phone.
    pub external: bool,
    /// When the participant was first seen in the call (not in the lobby).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_time: Option<DateTime<Utc>>,
    /// When the participant left (removed from the roster); cleared on rejoin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leave_time: Option<DateTime<Utc>>,
}

/// A recorded paired bot, as the invitation lists it.
pub type PairedRecorder = PairedRecorderRef;

/// The interaction record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interaction {
    /// The bot call that carries the recording's media.
    pub call_id: String,
    /// The recording (spool directory name).
    pub recording_id: String,
    /// This host's role.
    pub bot_role: BotRole,
    /// Same on both bots of a pair and on every leg of a transferred call: `chain:<callChainId>`
    /// or `meeting:<threadId>`, followed by `/<profile>` for meetings or `/<policy user id>`.
    pub pairing_key: String,
    /// Links the legs of a forked or transferred call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_chain_id: Option<String>,
    /// Tenant of the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Meeting chat thread.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// The policy users recorded (several for a meeting recorded once per profile).
    pub targets: Vec<Party>,
    /// On whose behalf the call came (call queue, delegator).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<Party>,
    /// Who transferred this leg to the policy user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transferred_by: Option<Party>,
    /// Whom this leg was transferred to (the next leg's policy user).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transferred_to: Option<Party>,
    /// The recording id of the previous leg of a transfer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transferred_from_recording: Option<String>,
    /// The recording id of the next leg of a transfer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transferred_to_recording: Option<String>,
    /// Caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calling_party: Option<Party>,
    /// Callee.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub called_party: Option<Party>,
    /// Who answered (p2p, once established).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<Party>,
    /// The invitation's arrival.
    pub start_time: DateTime<Utc>,
    /// When the call was established.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_time: Option<DateTime<Utc>>,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_time: Option<DateTime<Utc>>,
    /// Incoming / Outgoing / None (meetings).
    pub direction: Direction,
    /// The product's call type.
    pub call_type: CallType,
    /// Set when the call ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_cause: Option<ReleaseCause>,
    /// What ended it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    /// The platform's `resultInfo` of the termination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_info: Option<ResultInfo>,
    /// Everyone seen in the roster.
    pub participants: Vec<Participant>,
    /// The recording profile that decided to record.
    pub profile: String,
    /// Retention of the recording.
    pub retention_days: u32,
    /// Start time + retention.
    pub expiration: DateTime<Utc>,
    /// Storage friendly name.
    pub storage: String,
    /// `Essentials` (single bot) or `Pro` (paired bots).
    pub double_recording_type: String,
    /// Recording notification mode of the profile.
    pub notification: String,
    /// The paired recorders named by the invitation.
    pub paired_recorders: Vec<PairedRecorder>,
    /// Media status as signaling knows it.
    pub media_status: MediaStatus,
    /// Call queue (application instance) id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<String>,
    /// Call queue name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_name: Option<String>,
    /// SIP Call-ID, when a notification carries one (Graph's do not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip_call_id: Option<String>,
    /// The platform's system call id: the bot call id of the recording's first leg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sys_call_id: Option<String>,
    /// Invitation to establishment, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_time_ms: Option<u64>,
    /// Total time on hold, milliseconds.
    pub hold_time_ms: u64,
}
