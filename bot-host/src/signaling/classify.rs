//! Call facts from an invitation: who the policy user is, who the other side is, the call type
//! and the policy user's direction.
//!
//! The bot's own call is always `incoming` (the bot is invited), so the policy user's direction
//! comes from `botData.user.participationMethod` (Caller = outgoing, Callee = incoming, DialIn =
//! meeting); `direction` on the call is used only when `botData` is missing.

use serde::Serialize;

use super::interaction::{CallType, Direction, Party};
use super::notify::{CallResource, Identity, IdentitySet, PairedRecorderRef};

/// Peer-to-peer or meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CallKind {
    /// A 1:1 call.
    P2p,
    /// A meeting (conference).
    Meeting,
}

/// Where the other side is, relative to the policy user's tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Reach {
    /// Same tenant.
    Internal,
    /// Another tenant (federated) or a guest.
    External,
    /// A telephone number.
    Pstn,
}

/// What an invitation says about the call, as policy needs it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallFacts {
    /// The bot call id.
    pub call_id: String,
    /// Links forked and transferred legs.
    pub call_chain_id: Option<String>,
    /// The call's tenant.
    pub tenant_id: Option<String>,
    /// The policy user (the one whose policy invited the bot).
    pub policy_user: Option<Party>,
    /// The policy user's tenant (`policyHolderTenantId`, else the call's tenant).
    pub policy_tenant: Option<String>,
    /// 1:1 or meeting.
    pub kind: CallKind,
    /// The policy user's direction.
    pub direction: Direction,
    /// The other party of a 1:1 call.
    pub other_side: Option<Party>,
    /// Internal, external or PSTN (the other side of a 1:1; the organizer of a meeting).
    pub reach: Reach,
    /// The product's call type at invitation time.
    pub call_type: CallType,
    /// The call queue (application instance) the call came through.
    pub queue: Option<Party>,
    /// On whose behalf the call came (the queue, or a delegator).
    pub on_behalf_of: Option<Party>,
    /// Who transferred the call to the policy user.
    pub transferor: Option<Party>,
    /// The caller.
    pub calling_party: Option<Party>,
    /// The callee.
    pub called_party: Option<Party>,
    /// The other side's number, digits without `+`, for PSTN calls.
    pub pstn_number: Option<String>,
    /// The meeting's chat thread.
    pub thread_id: Option<String>,
    /// The bot's own participant id (left out of the recorded roster).
    pub my_participant_id: Option<String>,
    /// The paired recorders of the invitation.
    pub paired_recorders: Vec<PairedRecorderRef>,
    /// How the facts were found, when something had to be guessed (for the decision log).
    pub notes: Vec<String>,
}

/// The party an identity set describes (the first kind present, the most specific first).
pub fn party_of(set: &IdentitySet) -> Option<Party> {
    let pick = |kind: &str, id: &Identity| Party {
        kind: kind.to_string(),
        id: id.id.clone(),
        display_name: id.display_name.clone(),
        upn: id.user_principal_name.clone(),
        tenant_id: id.tenant_id.clone(),
        number: if kind == "phone" {
            id.id.as_deref().map(digits)
        } else {
            None
        },
    };
    if let Some(i) = &set.user {
        Some(pick("user", i))
    } else if let Some(i) = &set.phone {
        Some(pick("phone", i))
    } else if let Some(i) = &set.guest {
        Some(pick("guest", i))
    } else if let Some(i) = &set.application_instance {
        Some(pick("applicationInstance", i))
    } else {
        set.application.as_ref().map(|i| pick("application", i))
    }
}

/// Digits of a phone number: `+44 20 7123-4567` -> `442071234567`; a `tel:` prefix is dropped.
pub fn digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

/// Whether `party` is outside `tenant`: guests and phones always are; users of another tenant
/// are; a user with no tenant id is taken as internal (the platform omits it for its own).
pub fn is_external(party: &Party, tenant: Option<&str>) -> bool {
    match party.kind.as_str() {
        "guest" | "phone" => true,
        "user" => match (party.tenant_id.as_deref(), tenant) {
            (Some(a), Some(b)) => !a.eq_ignore_ascii_case(b),
            _ => false,
        },
        _ => false,
    }
}

impl CallFacts {
    /// Reads the facts of an invitation.
    pub fn from_call(call_id: &str, call: &CallResource) -> Self {
        let mut notes = Vec::new();
        let bot = call
            .application_metadata
            .as_ref()
            .and_then(|m| m.bot_data.as_ref());
        let bot_user = bot.and_then(|b| b.user.as_ref());
        let method = bot_user
            .and_then(|u| u.participation_method.as_deref())
            .map(str::to_ascii_lowercase);
        let thread_id = call
            .chat_info
            .as_ref()
            .and_then(|c| c.thread_id.clone())
            .filter(|t| !t.is_empty());

        let kind = match method.as_deref() {
            Some("dialin") => CallKind::Meeting,
            Some("caller") | Some("callee") => CallKind::P2p,
            _ => {
                // Without botData, a meeting shows by its meeting info or its meeting thread;
                // a 1:1 call may have a chat thread too, so a thread alone is not enough.
                let meeting_thread = thread_id.as_deref().is_some_and(|t| t.contains("meeting_"));
                if call.meeting_info.is_some() || meeting_thread {
                    CallKind::Meeting
                } else {
                    CallKind::P2p
                }
            }
        };

        let source = call
            .source
            .as_ref()
            .and_then(|s| s.identity.as_ref())
            .and_then(party_of);
        let targets: Vec<Party> = call
            .targets
            .iter()
            .filter_map(|t| t.identity.as_ref().and_then(party_of))
            .collect();

        let direction = match (kind, method.as_deref()) {
            (CallKind::Meeting, _) => Direction::None,
            (_, Some("caller")) => Direction::Outgoing,
            (_, Some("callee")) => Direction::Incoming,
            _ => {
                notes.push("no participationMethod: direction taken from the call".into());
                match call.direction.as_deref() {
                    Some(d) if d.eq_ignore_ascii_case("outgoing") => Direction::Outgoing,
                    _ => Direction::Incoming,
                }
            }
        };

        // The policy user: botData names it by id; its name and UPN come from the matching
        // source/target identity when there is one.
        let policy_user = match bot_user.and_then(|u| u.policy_holder_id.clone()) {
            Some(id) => {
                let seen = source
                    .iter()
                    .chain(targets.iter())
                    .find(|p| p.id.as_deref().is_some_and(|i| i.eq_ignore_ascii_case(&id)));
                let mut p = seen.cloned().unwrap_or_else(|| Party {
                    kind: "user".into(),
                    id: Some(id.clone()),
                    ..Party::default()
                });
                let u = bot_user.expect("policy holder id came from bot_user");
                if p.upn.is_none() {
                    p.upn = u.user_principal_name.clone();
                }
                if p.display_name.is_none() {
                    p.display_name = u.display_name.clone();
                }
                if p.tenant_id.is_none() {
                    p.tenant_id = u.policy_holder_tenant_id.clone();
                }
                Some(p)
            }
            None => {
                notes.push(
                    "no botData.user.policyHolderId: policy user guessed from source/targets"
                        .into(),
                );
                match direction {
                    Direction::Outgoing => source.clone(),
                    _ => targets.iter().find(|t| t.kind == "user").cloned(),
                }
            }
        };
        let policy_tenant = bot_user
            .and_then(|u| u.policy_holder_tenant_id.clone())
            .or_else(|| policy_user.as_ref().and_then(|p| p.tenant_id.clone()))
            .or_else(|| call.tenant_id.clone());

        let is_policy = |p: &Party| policy_user.as_ref().is_some_and(|u| u.same_as(p));
        let other_side = match kind {
            CallKind::Meeting => None,
            CallKind::P2p => {
                let from_parties = source
                    .iter()
                    .chain(targets.iter())
                    .find(|p| !is_policy(p) && p.kind != "application")
                    .cloned();
                let from_bot = bot.and_then(|b| b.other_side_user.as_ref()).map(|o| Party {
                    kind: "user".into(),
                    id: o.policy_holder_id.clone(),
                    tenant_id: o.policy_holder_tenant_id.clone(),
                    upn: o.user_principal_name.clone(),
                    display_name: o.display_name.clone(),
                    number: None,
                });
                match (from_parties, from_bot) {
                    (Some(mut p), Some(b)) => {
                        if p.tenant_id.is_none() && p.kind == "user" {
                            p.tenant_id = b.tenant_id;
                        }
                        Some(p)
                    }
                    (p, b) => p.or(b),
                }
            }
        };

        let ctx = call.incoming_context.as_ref();
        let on_behalf_of = ctx.and_then(|c| c.on_behalf_of.as_ref()).and_then(party_of);
        let transferor = ctx.and_then(|c| c.transferor.as_ref()).and_then(party_of);
        let queue = ctx
            .and_then(|c| c.on_behalf_of.as_ref())
            .and_then(|s| s.application_instance.as_ref())
            .map(|i| Party {
                kind: "applicationInstance".into(),
                id: i.id.clone(),
                display_name: i.display_name.clone(),
                tenant_id: i.tenant_id.clone(),
                ..Party::default()
            })
            .filter(|q| q.id.as_deref().is_some_and(|id| !id.is_empty()));

        let organizer = call
            .meeting_info
            .as_ref()
            .and_then(|m| m.organizer.as_ref())
            .and_then(party_of);
        let reach = match kind {
            CallKind::P2p => match &other_side {
                Some(p) if p.kind == "phone" => Reach::Pstn,
                Some(p) if is_external(p, policy_tenant.as_deref()) => Reach::External,
                Some(_) => Reach::Internal,
                None => {
                    notes.push("no other side found: taken as internal".into());
                    Reach::Internal
                }
            },
            CallKind::Meeting => match &organizer {
                Some(o) if is_external(o, policy_tenant.as_deref()) => Reach::External,
                _ => Reach::Internal,
            },
        };
        let call_type = match (kind, reach) {
            _ if queue.is_some() && kind == CallKind::P2p => CallType::QueueCall,
            (CallKind::P2p, Reach::Internal) => CallType::InternalP2p,
            (CallKind::P2p, Reach::External) => CallType::ExternalP2p,
            (CallKind::P2p, Reach::Pstn) => CallType::PstnP2p,
            (CallKind::Meeting, Reach::External) => CallType::ExternalMeeting,
            (CallKind::Meeting, _) => CallType::InternalMeeting,
        };
        let (calling_party, called_party) = match direction {
            Direction::Outgoing => (policy_user.clone(), other_side.clone()),
            Direction::Incoming => (other_side.clone(), policy_user.clone()),
            Direction::None => (organizer.clone(), None),
        };
        let pstn_number = match reach {
            Reach::Pstn => other_side.as_ref().and_then(|p| p.number.clone()),
            _ => None,
        };
        CallFacts {
            call_id: call_id.to_string(),
            call_chain_id: call.call_chain_id.clone().filter(|c| !c.is_empty()),
            tenant_id: call.tenant_id.clone(),
            policy_user,
            policy_tenant,
            kind,
            direction,
            other_side,
            reach,
            call_type,
            queue,
            on_behalf_of,
            transferor,
            calling_party,
            called_party,
            pstn_number,
            thread_id,
            my_participant_id: call.my_participant_id.clone().filter(|p| !p.is_empty()),
            paired_recorders: bot.map(|b| b.paired_recorders.clone()).unwrap_or_default(),
            notes,
        }
    }

    /// A short description for logs: `PSTN p2p Incoming from 4420...`.
    pub fn summary(&self) -> String {
        let who = self
            .policy_user
            .as_ref()
            .map(Party::label)
            .unwrap_or_else(|| "no policy user".into());
        match self.kind {
            CallKind::Meeting => format!("{} of {}", self.call_type.as_str(), who),
            CallKind::P2p => format!(
                "{} {:?} of {} with {}",
                self.call_type.as_str(),
                self.direction,
                who,
                self.other_side
                    .as_ref()
                    .map(Party::label)
                    .unwrap_or_else(|| "unknown".into())
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts(v: serde_json::Value) -> CallFacts {
        let call: CallResource = serde_json::from_value(v).unwrap();
        CallFacts::from_call("c1", &call)
    }

    fn bot(method: &str) -> serde_json::Value {
        json!({"botData":{"user":{"participationMethod":method,"policyHolderId":"alice-id",
            "policyHolderTenantId":"t1"}}})
    }

    #[test]
    fn internal_incoming() {
        let f = facts(json!({"id":"c1","state":"incoming","tenantId":"t1",
            "source":{"identity":{"user":{"id":"bob-id","displayName":"Bob","tenantId":"t1"}}},
            "targets":[{"identity":{"user":{"id":"alice-id","displayName":"Alice","tenantId":"t1"}}}],
            "applicationMetadata":bot("Callee")}));
        assert_eq!(f.kind, CallKind::P2p);
        assert_eq!(f.direction, Direction::Incoming);
        assert_eq!(f.call_type, CallType::InternalP2p);
        assert_eq!(
            f.calling_party.unwrap().display_name.as_deref(),
            Some("Bob")
        );
        assert_eq!(
            f.called_party.unwrap().display_name.as_deref(),
            Some("Alice")
        );
    }

    #[test]
    fn external_outgoing_and_guest() {
        let f = facts(json!({"tenantId":"t1",
            "source":{"identity":{"user":{"id":"alice-id","tenantId":"t1"}}},
            "targets":[{"identity":{"user":{"id":"fed-id","tenantId":"t2"}}}],
            "applicationMetadata":bot("Caller")}));
        assert_eq!(f.direction, Direction::Outgoing);
        assert_eq!(f.call_type, CallType::ExternalP2p);
        let f = facts(json!({"tenantId":"t1",
            "source":{"identity":{"guest":{"id":"g1","displayName":"Visitor"}}},
            "targets":[{"identity":{"user":{"id":"alice-id","tenantId":"t1"}}}],
            "applicationMetadata":bot("Callee")}));
        assert_eq!(f.call_type, CallType::ExternalP2p);
    }

    #[test]
    fn other_side_tenant_from_bot_data() {
        let f = facts(json!({"tenantId":"t1",
            "source":{"identity":{"user":{"id":"fed-id"}}},
            "targets":[{"identity":{"user":{"id":"alice-id"}}}],
            "applicationMetadata":{"botData":{"user":{"participationMethod":"Callee",
                "policyHolderId":"alice-id","policyHolderTenantId":"t1"},
                "otherSideUser":{"id":"fed-id","tenantId":"t9"}}}}));
        assert_eq!(f.call_type, CallType::ExternalP2p);
    }

    #[test]
    fn pstn_digits() {
        let f = facts(json!({"tenantId":"t1",
            "source":{"identity":{"phone":{"id":"+44 20 7123 4567"}}},
            "targets":[{"identity":{"user":{"id":"alice-id","tenantId":"t1"}}}],
            "applicationMetadata":bot("Callee")}));
        assert_eq!(f.call_type, CallType::PstnP2p);
        assert_eq!(f.pstn_number.as_deref(), Some("442071234567"));
    }

    #[test]
    fn meetings() {
        let f = facts(
            json!({"tenantId":"t1","chatInfo":{"threadId":"19:meeting_abc@thread.v2"},
            "meetingInfo":{"organizer":{"user":{"id":"o","tenantId":"t1"}}},
            "applicationMetadata":bot("DialIn")}),
        );
        assert_eq!((f.kind, f.direction), (CallKind::Meeting, Direction::None));
        assert_eq!(f.call_type, CallType::InternalMeeting);
        let f = facts(
            json!({"tenantId":"t1","chatInfo":{"threadId":"19:meeting_abc@thread.v2"},
            "meetingInfo":{"organizer":{"user":{"id":"o","tenantId":"t7"}}},
            "applicationMetadata":bot("DialIn")}),
        );
        assert_eq!(f.call_type, CallType::ExternalMeeting);
        // No botData: the meeting thread alone tells a meeting.
        let f = facts(json!({"chatInfo":{"threadId":"19:meeting_x@thread.v2"}}));
        assert_eq!(f.kind, CallKind::Meeting);
        let f = facts(json!({"chatInfo":{"threadId":"19:abc@unq.gbl.spaces"}}));
        assert_eq!(f.kind, CallKind::P2p);
    }

    #[test]
    fn queue_call_and_transferor() {
        let f = facts(json!({"tenantId":"t1",
            "source":{"identity":{"phone":{"id":"+15551234"}}},
            "targets":[{"identity":{"user":{"id":"alice-id","tenantId":"t1"}}}],
            "incomingContext":{"onBehalfOf":{"applicationInstance":{"id":"q-1","displayName":"Support"}},
                "transferor":{"user":{"id":"aa","displayName":"Auto attendant"}}},
            "applicationMetadata":bot("Callee")}));
        assert_eq!(f.call_type, CallType::QueueCall);
        assert_eq!(f.queue.as_ref().unwrap().id.as_deref(), Some("q-1"));
        assert_eq!(
            f.transferor.unwrap().display_name.as_deref(),
            Some("Auto attendant")
        );
        assert_eq!(f.pstn_number.as_deref(), Some("15551234"));
    }

    #[test]
    fn nothing_known_is_not_a_panic() {
        let f = facts(json!({}));
        assert!(f.policy_user.is_none());
        assert_eq!(f.call_type, CallType::InternalP2p);
        assert!(!f.notes.is_empty());
    }
}
