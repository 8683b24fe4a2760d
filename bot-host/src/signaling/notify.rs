//! Graph `commsNotifications` as the platform posts them to the webhook.
//!
//! Every type is tolerant: unknown fields are ignored and every field the platform may omit is
//! optional, because the platform adds fields over time and omits others depending on the call.
//! A body that is not JSON, or not an envelope, is a [`NotificationError`]; one notification
//! whose `resourceData` has the wrong shape is reported by [`Envelope::parse`] per item, so
//! that it cannot hide the other notifications of the same body.

use serde::{Deserialize, Deserializer};
use std::time::{Duration, SystemTime};

/// Why a webhook body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    /// The body is not JSON, or not a `commsNotifications` envelope.
    #[error("malformed notification body: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The body is JSON but not an object.
    #[error("notification body is not a JSON object")]
    NotAnObject,
    /// The envelope names another `@odata.type`.
    #[error("not a commsNotifications envelope: @odata.type {0:?}")]
    NotAnEnvelope(String),
}

/// Why one notification of an envelope was skipped.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    /// The notification's fields have the wrong types.
    #[error("notification {index}: {source}")]
    Malformed {
        /// Position in the envelope's `value`.
        index: usize,
        /// What serde found wrong.
        source: serde_json::Error,
    },
    /// Neither `resourceUrl` nor `resourceData.id` names a call.
    #[error("notification {index}: no call id in resourceUrl or resourceData")]
    NoCallId {
        /// Position in the envelope's `value`.
        index: usize,
    },
}

/// The webhook body: `{"@odata.type":"#microsoft.graph.commsNotifications","value":[...]}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawEnvelope {
    /// `#microsoft.graph.commsNotifications` (absent is accepted).
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
    /// The notifications, kept raw so that one bad item does not reject the rest.
    #[serde(default)]
    pub value: Vec<serde_json::Value>,
}

/// A parsed webhook body: the notifications that could be read and the ones that could not.
#[derive(Debug)]
pub struct Envelope {
    /// Readable notifications, in body order.
    pub notifications: Vec<Notification>,
    /// Notifications skipped, with why.
    pub skipped: Vec<ItemError>,
}

impl Envelope {
    /// Parses a webhook body.
    pub fn parse(body: &[u8]) -> Result<Self, NotificationError> {
        // serde accepts a JSON array for a struct (as a tuple); an envelope is an object.
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|&b| b != b'{') {
            serde_json::from_slice::<serde::de::IgnoredAny>(body)?;
            return Err(NotificationError::NotAnObject);
        }
        let raw: RawEnvelope = serde_json::from_slice(body)?;
        if let Some(t) = &raw.odata_type {
            if !t.is_empty() && !t.ends_with("commsNotifications") {
                return Err(NotificationError::NotAnEnvelope(t.clone()));
            }
        }
        let mut notifications = Vec::with_capacity(raw.value.len());
        let mut skipped = Vec::new();
        for (index, item) in raw.value.into_iter().enumerate() {
            match Notification::from_value(item) {
                Ok(Some(n)) => notifications.push(n),
                Ok(None) => skipped.push(ItemError::NoCallId { index }),
                Err(source) => skipped.push(ItemError::Malformed { index, source }),
            }
        }
        Ok(Envelope {
            notifications,
            skipped,
        })
    }
}

/// `changeType` of a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeType {
    /// A new call (the invitation) or participants that joined.
    Created,
    /// A state change, or the roster.
    Updated,
    /// The call ended, or participants left.
    Deleted,
    /// Anything newer than this code.
    #[serde(other)]
    Unknown,
}

/// One notification, its resource classified.
#[derive(Debug, Clone)]
pub struct Notification {
    /// What happened to the resource.
    pub change_type: ChangeType,
    /// The call the notification is about.
    pub call_id: String,
    /// What the notification carries.
    pub resource: Resource,
}

/// The resource a notification carries.
#[derive(Debug, Clone)]
pub enum Resource {
    /// A `#microsoft.graph.call`.
    Call(Box<CallResource>),
    /// A list of `#microsoft.graph.participant` (the roster or a change to it).
    Participants(Vec<ParticipantResource>),
    /// A single participant addressed by `.../participants/{id}` with no data (a removal).
    ParticipantRef(String),
    /// Something this code does not act on (kept so that it can be logged).
    Other(Option<String>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawNotification {
    #[serde(default)]
    change_type: Option<ChangeType>,
    #[serde(default)]
    resource_url: Option<String>,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    resource_data: Option<serde_json::Value>,
}

impl Notification {
    fn from_value(v: serde_json::Value) -> Result<Option<Self>, serde_json::Error> {
        let raw: RawNotification = serde_json::from_value(v)?;
        let url = raw.resource_url.or(raw.resource).unwrap_or_default();
        let path = ResourcePath::parse(&url);
        let change_type = raw.change_type.unwrap_or(ChangeType::Unknown);
        let data = raw.resource_data.unwrap_or(serde_json::Value::Null);
        let is_participants = path.participants
            || data.is_array()
            || odata_type(&data).is_some_and(|t| t.ends_with(".participant"));
        let (resource, data_call_id) = if is_participants {
            let list = match data {
                serde_json::Value::Array(items) => items
                    .into_iter()
                    .map(serde_json::from_value)
                    .collect::<Result<Vec<ParticipantResource>, _>>(
                )?,
                serde_json::Value::Null => Vec::new(),
                one => vec![serde_json::from_value(one)?],
            };
            match (&path.participant_id, list.is_empty()) {
                (Some(id), true) => (Resource::ParticipantRef(id.clone()), None),
                _ => (Resource::Participants(list), None),
            }
        } else if data.is_null() {
            (Resource::Other(None), None)
        } else if odata_type(&data).is_none_or(|t| t.ends_with(".call")) {
            let call: CallResource = serde_json::from_value(data)?;
            let id = call.id.clone();
            (Resource::Call(Box::new(call)), id)
        } else {
            (Resource::Other(odata_type(&data).map(str::to_owned)), None)
        };
        let Some(call_id) = path.call_id.or(data_call_id).filter(|id| !id.is_empty()) else {
            return Ok(None);
        };
        Ok(Some(Notification {
            change_type,
            call_id,
            resource,
        }))
    }
}

fn odata_type(v: &serde_json::Value) -> Option<&str> {
    v.get("@odata.type").and_then(|t| t.as_str())
}

/// The call (and participant) named by a `resourceUrl` such as
/// `/communications/calls/{id}/participants/{pid}` (the `/app/calls/...` form is accepted too).
#[derive(Debug, Default, PartialEq, Eq)]
struct ResourcePath {
    call_id: Option<String>,
    participants: bool,
    participant_id: Option<String>,
}

impl ResourcePath {
    fn parse(url: &str) -> Self {
        let path = url.split(['?', '#']).next().unwrap_or("");
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut out = ResourcePath::default();
        if let Some(i) = segs.iter().position(|s| s.eq_ignore_ascii_case("calls")) {
            out.call_id = segs.get(i + 1).map(|s| s.to_string());
            if segs
                .get(i + 2)
                .is_some_and(|s| s.eq_ignore_ascii_case("participants"))
            {
                out.participants = true;
                out.participant_id = segs.get(i + 3).map(|s| s.to_string());
            }
        }
        out
    }
}

/// A `#microsoft.graph.call` resource (the fields a recorder uses).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CallResource {
    /// The call id (the bot's leg).
    pub id: Option<String>,
    /// `incoming`, `establishing`, `established`, ... `terminated`.
    pub state: Option<CallState>,
    /// From the bot's side: a policy invitation is `incoming`.
    pub direction: Option<String>,
    /// The tenant of the call.
    pub tenant_id: Option<String>,
    /// Links the legs of a forked or transferred call.
    pub call_chain_id: Option<String>,
    /// The bot's own participant id.
    pub my_participant_id: Option<String>,
    /// The caller.
    pub source: Option<ParticipantInfo>,
    /// The callees.
    pub targets: Vec<ParticipantInfo>,
    /// Present for meetings.
    pub meeting_info: Option<MeetingInfo>,
    /// The chat thread (`19:meeting_...@thread.v2` for a meeting).
    pub chat_info: Option<ChatInfo>,
    /// Who the call is on behalf of, who transferred it.
    pub incoming_context: Option<IncomingContext>,
    /// The compliance-recording context (an object, or a JSON string holding one).
    #[serde(deserialize_with = "app_metadata")]
    pub application_metadata: Option<ApplicationMetadata>,
    /// Why the call ended.
    pub result_info: Option<ResultInfo>,
    /// The forwarder's SDP offer (`blob`), see docs/live.md.
    pub media_config: Option<MediaConfig>,
}

/// Call states; anything unknown is kept as [`CallState::Unknown`] and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CallState {
    /// The invitation.
    Incoming,
    /// Answered, media being set up.
    Establishing,
    /// In the call.
    Established,
    /// On hold.
    Hold,
    /// Being transferred.
    Transferring,
    /// Transfer accepted by the transfer target.
    TransferAccepted,
    /// Being redirected.
    Redirecting,
    /// Ending.
    Terminating,
    /// Ended.
    Terminated,
    /// A state this code does not know.
    #[serde(other)]
    Unknown,
}

impl CallState {
    /// Order used to refuse going backwards when updates arrive out of order; the mid-call
    /// states share one rank so that a call can move between them freely.
    pub fn rank(self) -> u8 {
        match self {
            CallState::Incoming => 0,
            CallState::Establishing => 1,
            CallState::Established
            | CallState::Hold
            | CallState::Transferring
            | CallState::TransferAccepted
            | CallState::Redirecting => 2,
            CallState::Terminating => 3,
            CallState::Terminated => 4,
            CallState::Unknown => 0,
        }
    }
}

/// `identity` of a participant: which kind of party it is.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct IdentitySet {
    /// A directory user.
    pub user: Option<Identity>,
    /// A telephone number (`id` = E.164 with `+`).
    pub phone: Option<Identity>,
    /// A guest (no directory account).
    pub guest: Option<Identity>,
    /// An application (e.g. another bot).
    pub application: Option<Identity>,
    /// An application instance (e.g. a call queue or auto attendant's resource account).
    pub application_instance: Option<Identity>,
}

/// One identity.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct Identity {
    /// Object id, or the phone number.
    pub id: Option<String>,
    /// Display name, often missing for guests and non-directory identities.
    pub display_name: Option<String>,
    /// Tenant of a user.
    pub tenant_id: Option<String>,
    /// UPN when the platform (or forwarder) includes it.
    #[serde(alias = "upn")]
    pub user_principal_name: Option<String>,
}

/// `participantInfo` / `invitationParticipantInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ParticipantInfo {
    /// Who.
    pub identity: Option<IdentitySet>,
    /// The participant id, when given.
    pub participant_id: Option<String>,
}

/// `meetingInfo` (organizer only; the rest is not used).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MeetingInfo {
    /// e.g. `#microsoft.graph.organizerMeetingInfo`.
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
    /// The organizer.
    pub organizer: Option<IdentitySet>,
}

/// `chatInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ChatInfo {
    /// The chat thread; a meeting's is `19:meeting_...@thread.v2`.
    pub thread_id: Option<String>,
    /// Message id.
    pub message_id: Option<String>,
}

/// `incomingContext`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IncomingContext {
    /// Participant that sent the invitation.
    pub source_participant_id: Option<String>,
    /// Participant observed (the policy user).
    pub observed_participant_id: Option<String>,
    /// On whose behalf (a call queue's application instance, a delegator).
    pub on_behalf_of: Option<IdentitySet>,
    /// Who transferred the call.
    pub transferor: Option<IdentitySet>,
}

/// `applicationMetadata`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApplicationMetadata {
    /// The compliance-recording context.
    pub bot_data: Option<BotData>,
}

/// `applicationMetadata.botData`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BotData {
    /// The policy user.
    pub user: Option<BotDataUser>,
    /// The other side of a 1:1 call.
    pub other_side_user: Option<BotDataUser>,
    /// e.g. `ComplianceRecording`.
    pub invite_reasons: Vec<String>,
    /// The compliance policy.
    pub policy_identifier: Option<String>,
    /// The paired recorder(s) invited with this bot.
    pub paired_recorders: Vec<PairedRecorderRef>,
    /// Not reliable for 1:1 detection; kept for the record.
    pub is_multi_party: Option<bool>,
}

/// A user in `botData`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BotDataUser {
    /// `Caller`, `Callee` or `DialIn`.
    pub participation_method: Option<String>,
    /// The policy holder's object id.
    #[serde(alias = "id")]
    pub policy_holder_id: Option<String>,
    /// The policy holder's tenant.
    #[serde(alias = "tenantId")]
    pub policy_holder_tenant_id: Option<String>,
    /// UPN when known.
    #[serde(alias = "upn")]
    pub user_principal_name: Option<String>,
    /// Display name when known.
    pub display_name: Option<String>,
}

/// `pairedRecorders[]`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct PairedRecorderRef {
    /// The paired application's id.
    pub id: Option<String>,
    /// Its participant id in the call.
    pub participant_id: Option<String>,
}

/// `resultInfo`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct ResultInfo {
    /// SIP-like code (200, 408, 480, ...).
    pub code: i64,
    /// Platform subcode (4097, 5001, 7015, ...).
    pub subcode: i64,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `mediaConfig`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MediaConfig {
    /// `#microsoft.graph.appHostedMediaConfig`.
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
    /// The SDP offer.
    pub blob: Option<String>,
}

/// A `#microsoft.graph.participant`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ParticipantResource {
    /// Participant id.
    pub id: Option<String>,
    /// Who.
    pub info: Option<ParticipantInfo>,
    /// The participant's streams; the audio `sourceId` is the MSI (= SSRC).
    pub media_streams: Vec<MediaStream>,
    /// Self-muted.
    pub is_muted: Option<bool>,
    /// Waiting in the lobby (not in the call yet).
    pub is_in_lobby: Option<bool>,
}

impl ParticipantResource {
    /// The audio MSI, if the participant has an audio stream.
    pub fn audio_msi(&self) -> Option<u32> {
        self.media_streams
            .iter()
            .find(|s| s.media_type.as_deref().is_none_or(|t| t == "audio"))
            .and_then(|s| s.source_id)
    }

    /// Muted by self or by the server on its audio stream.
    pub fn muted(&self) -> bool {
        self.is_muted.unwrap_or(false)
            || self
                .media_streams
                .iter()
                .any(|s| s.media_type.as_deref() == Some("audio") && s.server_muted)
    }
}

/// `mediaStreams[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MediaStream {
    /// `audio`, `video`, ...
    pub media_type: Option<String>,
    /// The MSI; Graph sends it as a string, a number is accepted too.
    #[serde(deserialize_with = "msi")]
    pub source_id: Option<u32>,
    /// `sendOnly`, `receiveOnly`, `sendReceive`, `inactive`.
    pub direction: Option<String>,
    /// Muted by the server.
    pub server_muted: bool,
}

fn msi<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Msi {
        N(u64),
        S(String),
        I(i64),
    }
    Ok(match Option::<Msi>::deserialize(d)? {
        None => None,
        Some(Msi::N(n)) => u32::try_from(n).ok(),
        // -1 (0xFFFFFFFF as signed) means "no stream": negative MSIs carry no speaker.
        Some(Msi::I(n)) => u32::try_from(n).ok(),
        Some(Msi::S(s)) => s.trim().parse::<u32>().ok(),
    })
}

fn app_metadata<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ApplicationMetadata>, D::Error> {
    // The platform documents applicationMetadata as a string in some places and sends an object
    // in others; take either, and a string that does not hold the object is no metadata.
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => serde_json::from_str(&s).ok(),
        Some(other) => Some(serde_json::from_value(other).map_err(serde::de::Error::custom)?),
    })
}

/// Fuzz entry: parses `data` as a webhook body and drives a [`super::Signaling`] with it (twice,
/// so that the second pass meets calls the first created), then runs its timers.
pub fn fuzz_notifications(data: &[u8]) {
    use super::{interaction::BotRole, profiles::Profiles, Signaling};
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    let _ = Envelope::parse(data);
    let mut s = Signaling::new(Profiles::embedded_default(), BotRole::Primary);
    let _ = s.handle_notifications(data, t0);
    let _ = s.handle_notifications(data, t0 + Duration::from_secs(1));
    if let Some(t) = s.poll_timeout() {
        let _ = s.handle_timeout(t.max(t0));
    }
    let _ = s.handle_timeout(t0 + Duration::from_secs(3 * 86_400));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_paths() {
        let p = ResourcePath::parse("/communications/calls/abc/participants/p1");
        assert_eq!(p.call_id.as_deref(), Some("abc"));
        assert!(p.participants);
        assert_eq!(p.participant_id.as_deref(), Some("p1"));
        let p = ResourcePath::parse("/app/calls/xyz");
        assert_eq!(p.call_id.as_deref(), Some("xyz"));
        assert!(!p.participants);
        assert_eq!(ResourcePath::parse("nothing"), ResourcePath::default());
    }

    #[test]
    fn incoming_call_with_string_metadata_and_unknown_fields() {
        let body = br##"{"@odata.type":"#microsoft.graph.commsNotifications","value":[{
            "changeType":"created","resourceUrl":"/communications/calls/c1","extra":1,
            "resourceData":{"@odata.type":"#microsoft.graph.call","id":"c1","state":"incoming",
              "newField":{"x":[1,2]},
              "applicationMetadata":"{\"botData\":{\"user\":{\"participationMethod\":\"Callee\",\"policyHolderId\":\"u1\"}}}",
              "mediaConfig":{"blob":"v=0"}}}]}"##;
        let env = Envelope::parse(body).unwrap();
        assert!(env.skipped.is_empty());
        let Resource::Call(c) = &env.notifications[0].resource else {
            panic!("not a call")
        };
        assert_eq!(c.state, Some(CallState::Incoming));
        let user = c.application_metadata.as_ref().unwrap().bot_data.as_ref();
        assert_eq!(
            user.unwrap()
                .user
                .as_ref()
                .unwrap()
                .policy_holder_id
                .as_deref(),
            Some("u1")
        );
        assert_eq!(
            c.media_config.as_ref().unwrap().blob.as_deref(),
            Some("v=0")
        );
    }

    #[test]
    fn participants_with_string_and_number_msi() {
        let body = br##"{"value":[{"changeType":"updated",
            "resourceUrl":"/communications/calls/c1/participants",
            "resourceData":[
              {"@odata.type":"#microsoft.graph.participant","id":"p1",
               "info":{"identity":{"user":{"id":"u1","displayName":"Alice"}}},
               "mediaStreams":[{"mediaType":"audio","sourceId":"17","direction":"sendReceive","serverMuted":false}],
               "isMuted":false,"isInLobby":false},
              {"id":"p2","mediaStreams":[{"mediaType":"audio","sourceId":18,"serverMuted":true}]},
              {"id":"p3","mediaStreams":[{"mediaType":"audio","sourceId":-1}]}]}]}"##;
        let env = Envelope::parse(body).unwrap();
        let Resource::Participants(ps) = &env.notifications[0].resource else {
            panic!("not participants")
        };
        assert_eq!(ps[0].audio_msi(), Some(17));
        assert!(!ps[0].muted());
        assert_eq!(ps[1].audio_msi(), Some(18));
        assert!(ps[1].muted());
        assert_eq!(ps[2].audio_msi(), None);
    }

    #[test]
    fn bad_items_are_skipped_not_fatal() {
        let body = br#"{"value":[
            {"changeType":"updated","resourceUrl":"/communications/calls/c1","resourceData":{"state":42}},
            {"changeType":"updated","resourceData":{"state":"established"}},
            {"changeType":"updated","resourceUrl":"/communications/calls/c2","resourceData":{"state":"established"}}]}"#;
        let env = Envelope::parse(body).unwrap();
        assert_eq!(env.notifications.len(), 1);
        assert_eq!(env.notifications[0].call_id, "c2");
        assert_eq!(env.skipped.len(), 2);
        assert!(matches!(
            env.skipped[0],
            ItemError::Malformed { index: 0, .. }
        ));
        assert!(matches!(env.skipped[1], ItemError::NoCallId { index: 1 }));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for body in [&b""[..], b"{", b"[]", b"{\"value\":3}", b"\xff\xfe"] {
            assert!(Envelope::parse(body).is_err(), "{:?}", body);
        }
        assert!(matches!(
            Envelope::parse(br##"{"@odata.type":"#microsoft.graph.other","value":[]}"##),
            Err(NotificationError::NotAnEnvelope(_))
        ));
    }

    #[test]
    fn unknown_state_is_kept_as_unknown() {
        let body = br#"{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/c1",
            "resourceData":{"state":"someFutureState"}}]}"#;
        let env = Envelope::parse(body).unwrap();
        let Resource::Call(c) = &env.notifications[0].resource else {
            panic!()
        };
        assert_eq!(c.state, Some(CallState::Unknown));
    }
}
