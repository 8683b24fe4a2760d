//! The data the store speaks: the interaction metadata bot-host posts (docs/live.md,
//! "Interaction metadata"), and what the API returns. Every input type refuses unknown fields,
//! so a typo in a client is an error instead of silently lost data.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// A party of the call (`party.kind`: user, phone, guest, application, applicationInstance,
/// unknown).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Party {
    /// Kind of identity.
    pub kind: String,
    /// Object id or phone number as the platform gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// UPN when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    /// Tenant when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Phone digits without `+`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}

impl Party {
    /// What the product shows for a party: display name, else UPN, number, id.
    pub fn label(&self) -> String {
        self.display_name
            .clone()
            .or_else(|| self.upn.clone())
            .or_else(|| self.number.clone())
            .or_else(|| self.id.clone())
            .unwrap_or_default()
    }

    /// What the number wildcards (`732`, `732*`) match: number, else UPN, else id.
    pub fn key(&self) -> String {
        self.number
            .clone()
            .or_else(|| self.upn.clone())
            .or_else(|| self.id.clone())
            .unwrap_or_default()
    }
}

/// A roster entry of the recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Participant {
    /// The platform's participant id.
    pub participant_id: String,
    /// Who.
    pub party: Party,
    /// Audio MSI (= SSRC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msi: Option<u32>,
    /// Muted.
    #[serde(default)]
    pub muted: bool,
    /// In the lobby.
    #[serde(default)]
    pub in_lobby: bool,
    /// External to the tenant.
    #[serde(default)]
    pub external: bool,
    /// First seen in the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_time: Option<DateTime<Utc>>,
    /// Left the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leave_time: Option<DateTime<Utc>>,
}

/// `resultInfo` of the termination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResultInfo {
    /// SIP-like code.
    #[serde(default)]
    pub code: i64,
    /// Platform subcode.
    #[serde(default)]
    pub subcode: i64,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A paired recorder named by the invitation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PairedRecorder {
    /// Application id.
    #[serde(default)]
    pub id: Option<String>,
    /// Participant id in the call.
    #[serde(default)]
    pub participant_id: Option<String>,
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $($(#[$vm])* #[serde(rename = $s)] $v),+ }
        #[allow(dead_code)]
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            /// The wire (and database) spelling.
            pub fn as_str(self) -> &'static str { match self { $($name::$v => $s),+ } }
            /// Parses the wire spelling.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$v),)+ _ => None }
            }
        }
    };
}

string_enum!(
    /// Which bot of a pair posted a leg.
    BotRole { Primary = "primary", Paired = "paired" }
);
string_enum!(
    /// Call direction; `None` for meetings.
    Direction { Incoming = "Incoming", Outgoing = "Outgoing", None = "None" }
);
string_enum!(
    /// The product's call types.
    CallType {
        InternalP2p = "Internal p2p",
        ExternalP2p = "External p2p",
        PstnP2p = "PSTN p2p",
        InternalMeeting = "Internal Meeting",
        ExternalMeeting = "External Meeting",
        InternalMeetingWithExternal = "Internal Meeting with External Participants",
        QueueCall = "Queue Call",
    }
);
string_enum!(
    /// Why the call ended.
    ReleaseCause {
        Normal = "Normal",
        Failure = "Failure",
        Missed = "Missed",
        Abandoned = "Abandoned",
        Transferred = "Transferred",
    }
);
string_enum!(
    /// What ended the bot's call.
    EndReason {
        Terminated = "terminated",
        Roster = "roster",
        MediaTimeout = "mediaTimeout",
        IdleTimeout = "idleTimeout",
        KeepAliveFailed = "keepAliveFailed",
        Shutdown = "shutdown",
    }
);
string_enum!(
    /// Media audio status. bot-host sends the first five; `Deleted` is the store's.
    MediaStatus {
        Recording = "Recording",
        Pending = "Pending",
        Available = "Available",
        Failed = "Failed",
        Unavailable = "Unavailable",
        Deleted = "Deleted",
    }
);

impl MediaStatus {
    /// Where the status stands in a leg's life: Recording -> Pending -> Failed/Unavailable ->
    /// Available -> Deleted. Available outranks Failed because a recording that reached
    /// storage verified is there whatever a bot said before.
    fn rank(self) -> u8 {
        match self {
            MediaStatus::Recording => 0,
            MediaStatus::Pending => 1,
            MediaStatus::Failed | MediaStatus::Unavailable => 2,
            MediaStatus::Available => 3,
            MediaStatus::Deleted => 4,
        }
    }

    /// The status after an update saying `new` to a leg at `self`: media status only moves
    /// forward, so a late, retried bot-host post (Pending, Recording) cannot move a leg the
    /// uploader made Available back.
    pub fn advance(self, new: MediaStatus) -> MediaStatus {
        if new.rank() >= self.rank() {
            new
        } else {
            self
        }
    }
}

/// One leg's metadata as bot-host posts it to `POST /api/v1/interactions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LegUpdate {
    /// Bot call carrying the media.
    pub call_id: String,
    /// The recording (spool directory name); the idempotency key.
    pub recording_id: String,
    /// This host's role.
    pub bot_role: BotRole,
    /// Same on both bots of a pair.
    pub pairing_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub call_chain_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub thread_id: Option<String>,
    /// The policy users recorded.
    #[serde(default)]
    pub targets: Vec<Party>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub on_behalf_of: Option<Party>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub transferred_by: Option<Party>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub transferred_to: Option<Party>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub transferred_from_recording: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub transferred_to_recording: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub calling_party: Option<Party>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub called_party: Option<Party>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub answered_by: Option<Party>,
    /// Invitation arrival.
    pub start_time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub answered_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub release_time: Option<DateTime<Utc>>,
    #[allow(missing_docs)]
    pub direction: Direction,
    #[allow(missing_docs)]
    pub call_type: CallType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub release_cause: Option<ReleaseCause>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub end_reason: Option<EndReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub result_info: Option<ResultInfo>,
    #[serde(default)]
    #[allow(missing_docs)]
    pub participants: Vec<Participant>,
    #[serde(default)]
    #[allow(missing_docs)]
    pub profile: String,
    #[serde(default)]
    #[allow(missing_docs)]
    pub retention_days: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub expiration: Option<DateTime<Utc>>,
    #[serde(default)]
    #[allow(missing_docs)]
    pub storage: String,
    /// `Essentials` or `Pro`.
    #[serde(default)]
    pub double_recording_type: String,
    #[serde(default)]
    #[allow(missing_docs)]
    pub notification: String,
    #[serde(default)]
    #[allow(missing_docs)]
    pub paired_recorders: Vec<PairedRecorder>,
    #[allow(missing_docs)]
    pub media_status: MediaStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub queue_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub queue_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub sip_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub sys_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub wait_time_ms: Option<u64>,
    #[serde(default)]
    #[allow(missing_docs)]
    pub hold_time_ms: u64,
    /// The sealed recording directory, relative to the configured storage root. bot-host does
    /// not send it yet; issue 6's uploader sets it once storage holds a verified copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_path: Option<String>,
    /// The recording was cut short: bot-host recovered it from `active/` after a crash, or a
    /// write failed (sealed `meta.json` says `"status": "partial"`). Its media ends where the
    /// bot stopped writing, so a reviewer must not take silence after that point as the call's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// The longest retention a leg may ask for: 100 years.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

impl LegUpdate {
    /// Refuses values that would make no sense stored (bounded sizes, relative media path).
    pub fn validate(&self) -> Result<(), String> {
        let text = |name: &str, v: &str, max: usize| {
            if v.is_empty() || v.len() > max {
                Err(format!("{name} must be 1..{max} characters"))
            } else {
                Ok(())
            }
        };
        text("callId", &self.call_id, 512)?;
        text("recordingId", &self.recording_id, 512)?;
        text("pairingKey", &self.pairing_key, 1024)?;
        if self.participants.len() > 10_000 || self.targets.len() > 1_000 {
            return Err("too many participants or targets".into());
        }
        if let Some(p) = &self.media_path {
            crate::media::check_relative(p).map_err(|e| format!("mediaPath: {e}"))?;
        }
        if self.retention_days > MAX_RETENTION_DAYS {
            return Err(format!(
                "retentionDays must be at most {MAX_RETENTION_DAYS} (100 years)"
            ));
        }
        Ok(())
    }

    /// When this leg's media expires: its explicit expiration, else its start plus its
    /// retention days; `None` without either, or when the sum leaves the calendar (a leg
    /// stored before validation bounded the days must not take the store down).
    pub fn expiry(&self) -> Option<DateTime<Utc>> {
        self.expiration.or_else(|| {
            (self.retention_days > 0).then_some(())?;
            self.start_time
                .checked_add_signed(chrono::Duration::days(i64::from(self.retention_days)))
        })
    }
}

/// Formats a time the way the store keeps it: RFC 3339 UTC with milliseconds, which sorts
/// lexically in time order.
pub fn fmt_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A tag defined by administrators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tag {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Description.
    pub description: String,
}

/// A note on an interaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    /// Id.
    pub id: i64,
    /// The interaction.
    pub interaction_id: i64,
    /// Author's object id.
    pub author_oid: String,
    /// Author's UPN.
    pub author_upn: String,
    /// When written (RFC 3339).
    pub created_at: String,
    /// Text.
    pub text: String,
}

/// One leg as returned by the API.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Leg {
    /// The recording id.
    pub recording_id: String,
    /// primary or paired.
    pub bot_role: BotRole,
    /// The bot call id.
    pub call_id: String,
    /// The leg's own media status.
    pub media_status: MediaStatus,
    /// The leg's recording directory under the storage root, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_path: Option<String>,
    /// Last update received.
    pub updated_at: String,
    /// The leg's metadata as last posted.
    pub metadata: LegUpdate,
}

/// The row of a search result and of the CSV export.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct InteractionSummary {
    pub id: i64,
    pub pairing_key: String,
    pub call_id: String,
    pub target_display_name: String,
    pub target_upn: String,
    pub on_behalf_of: String,
    pub transferred_by: String,
    pub transferred_to: String,
    pub called_party: String,
    pub calling_party: String,
    pub answered_by: String,
    pub answered_time: Option<String>,
    pub start_time: String,
    pub release_time: Option<String>,
    pub sip_call_id: String,
    pub sys_call_id: String,
    pub direction: String,
    pub call_type: String,
    pub release_cause: String,
    pub media_status: String,
    pub expiration: Option<String>,
    pub queue_name: String,
    pub double_recording_type: String,
    pub paired_call: String,
    pub profile: String,
    pub wait_time_ms: Option<i64>,
    pub hold_time_ms: i64,
    pub participants: Vec<String>,
    pub tags: Vec<String>,
    pub notes: Vec<String>,
}

string_enum!(
    /// Where the stored merge of a Pro call's two legs stands (docs/storage.md, "Merged
    /// recordings").
    MergeState {
        /// Not a call with two stored legs (yet).
        None = "",
        /// Both legs are Available; the merge task has not stored the merge yet.
        Pending = "pending",
        /// The merged recording is stored.
        Done = "done",
        /// The legs could not be merged (not the same call, not alignable, a leg that does
        /// not verify): `error` says why; both legs stay playable on their own.
        Failed = "failed",
    }
);

/// The merge of an interaction's legs, as the detail shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MergeInfo {
    /// Where it stands.
    pub state: MergeState,
    /// Why it failed (`failed` only), else empty.
    pub error: String,
    /// When the merged recording was stored (`done` only).
    pub merged_at: Option<String>,
    /// Its media path (`<primary leg's media path>/merged`, `done` only).
    pub media_path: Option<String>,
    /// The storage holding it (the primary leg's, `done` only).
    pub storage: Option<String>,
}

impl Default for MergeInfo {
    fn default() -> Self {
        MergeInfo {
            state: MergeState::None,
            error: String::new(),
            merged_at: None,
            media_path: None,
            storage: None,
        }
    }
}

/// The recordings of an interaction a player can offer (`?leg=` values): `merged` when the
/// merged recording is stored, then each leg whose media is stored. Empty once the media is
/// deleted. Every store computes the detail's `playableLegs` with this function.
pub fn playable_legs(media_status: &str, legs: &[Leg], merge: &MergeInfo) -> Vec<&'static str> {
    if media_status == MediaStatus::Deleted.as_str() {
        return Vec::new();
    }
    let mut v = Vec::new();
    if merge.state == MergeState::Done && merge.media_path.is_some() {
        v.push("merged");
    }
    for (role, name) in [(BotRole::Primary, "primary"), (BotRole::Paired, "paired")] {
        if legs
            .iter()
            .any(|l| l.bot_role == role && l.media_path.is_some())
        {
            v.push(name);
        }
    }
    v
}

/// An interaction with everything the store knows.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InteractionDetail {
    /// The search row.
    #[serde(flatten)]
    pub summary: InteractionSummary,
    /// Both legs (one for Essentials).
    pub legs: Vec<Leg>,
    /// Participants of the representative leg (primary when present).
    pub participant_details: Vec<Participant>,
    /// Tags with ids.
    pub tag_details: Vec<Tag>,
    /// Notes, oldest first.
    pub note_details: Vec<Note>,
    /// The merge of the two legs (Pro).
    pub merge: MergeInfo,
    /// What `GET .../media?leg=` can serve, best first ([`playable_legs`]).
    pub playable_legs: Vec<&'static str>,
}

#[cfg(test)]
mod expiry_tests {
    use super::*;

    #[test]
    fn an_expiry_past_the_calendar_is_none_not_a_panic() {
        let mut leg: LegUpdate = serde_json::from_value(serde_json::json!({
            "callId": "c", "recordingId": "r", "botRole": "primary", "pairingKey": "k",
            "startTime": "+262142-01-01T00:00:00Z", "direction": "Incoming",
            "callType": "PSTN p2p", "mediaStatus": "Recording", "retentionDays": 36500,
        }))
        .unwrap();
        assert_eq!(leg.expiry(), None);
        leg.start_time = "2026-01-01T00:00:00Z".parse().unwrap();
        leg.retention_days = 90;
        assert_eq!(
            leg.expiry().unwrap().to_rfc3339(),
            "2026-04-01T00:00:00+00:00"
        );
    }
}
