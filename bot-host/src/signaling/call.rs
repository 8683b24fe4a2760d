//! The per-call state machine and the registry of every call the bot was invited to.
//!
//! [`Signaling`] turns webhook bodies, media time-outs and clock ticks into [`Command`]s. It
//! keeps three relations the platform does not give directly:
//!
//! - a *recording* may be fed by several bot calls: the first invitation of a meeting for a
//!   recording profile owns it (answered with media), later invitations of the same meeting and
//!   profile are *members* (answered inactive, their users added to the targets);
//! - calls with the same `callChainId` are legs of one conversation: a second invitation for the
//!   same policy user while the first is up is a *fork* (answered inactive, never a second
//!   recording); a leg with a transferor, or after a leg that was transferring, is a *transfer*
//!   and the two recordings name each other;
//! - a call ends by its `terminated` notification, or, when that never comes, by the roster
//!   emptying, a media time-out, a keep-alive failure or silence for too long.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::classify::{is_external, party_of, CallFacts, CallKind};
use super::control::RecordingStatus;
use super::interaction::{
    BotRole, CallType, Direction, EndReason, Interaction, MediaStatus, Participant, Party,
    ReleaseCause,
};
use super::notify::{
    CallResource, CallState, ChangeType, Envelope, NotificationError, ParticipantResource,
    Resource, ResultInfo,
};
use super::profiles::{Decision, Profiles};

/// Timers of the state machine.
#[derive(Debug, Clone)]
pub struct SignalingConfig {
    /// Keep-alive period (the platform drops a call after 45 minutes without one; 15 is the
    /// recommendation).
    pub keep_alive_interval: Duration,
    /// An answered call that is not established within this is ended.
    pub setup_timeout: Duration,
    /// An established call with no notification for this long is ended. Long because a quiet
    /// two-party call gets no notification at all; the media time-out is the quick signal.
    pub idle_timeout: Duration,
    /// Ended calls stay known this long: `GET /api/calls/{id}` answers, late notifications are
    /// recognised, and a transfer's new leg can still link to the old one.
    pub ended_retention: Duration,
}

impl Default for SignalingConfig {
    fn default() -> Self {
        SignalingConfig {
            keep_alive_interval: Duration::from_secs(15 * 60),
            setup_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(6 * 3600),
            ended_retention: Duration::from_secs(15 * 60),
        }
    }
}

/// What the host must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Answer the invitation. `record: None` = answer inactive (not recorded by this call).
    Answer {
        /// The bot call.
        call_id: String,
        /// The forwarder's SDP offer.
        offer_sdp: Option<String>,
        /// Start this recording (open the spool directory, open the call on the media plane).
        record: Option<RecordingStart>,
    },
    /// Reject the invitation.
    Reject {
        /// The bot call.
        call_id: String,
        /// Why.
        reason: String,
    },
    /// Report the recording status to the platform.
    UpdateRecordingStatus {
        /// The bot call.
        call_id: String,
        /// The status.
        status: RecordingStatus,
    },
    /// The recording's current roster (MSI -> name, muted, lobby, join/leave).
    Roster {
        /// The recording.
        recording_id: String,
        /// Everyone seen so far, in order of first appearance.
        participants: Vec<Participant>,
    },
    /// Post or update the recording's metadata (also after [`Command::StopRecording`], when a
    /// later leg of a transfer links to it).
    Interaction {
        /// The recording.
        recording_id: String,
        /// The record.
        interaction: Interaction,
    },
    /// The call ended: seal the recording with this final metadata.
    StopRecording {
        /// The recording.
        recording_id: String,
        /// The record.
        interaction: Interaction,
    },
    /// Send a keep-alive for the call.
    KeepAlive {
        /// The bot call.
        call_id: String,
    },
    /// Leave the call at the platform (it ended without a termination notification).
    Hangup {
        /// The bot call.
        call_id: String,
    },
}

/// A recording to start, carried by an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingStart {
    /// Spool directory name.
    pub recording_id: String,
    /// The deciding profile.
    pub profile: String,
    /// Retention.
    pub retention_days: u32,
    /// Storage friendly name.
    pub storage: String,
    /// Pro (paired) recording.
    pub double_recording: bool,
    /// The initial metadata.
    pub interaction: Interaction,
}

/// What `GET /api/calls/{id}` reports, less `recording`/`sealedPath` which the host fills.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallStatus {
    /// The bot call.
    pub call_id: String,
    /// `incoming`, `establishing`, `established` or `terminated`.
    pub state: &'static str,
    /// The recording decision.
    pub decision: Decision,
    /// The recording this call feeds (its own, or the meeting's it joined as a member).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording_id: Option<String>,
    /// How the call was answered: `recording`, `inactive` or `rejected`.
    pub answer: &'static str,
    /// For a forked duplicate: the call that is recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
    /// Set once the call ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_cause: Option<ReleaseCause>,
    /// What ended the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    /// When the invitation arrived (the bot answers in the same webhook exchange).
    pub invited_at: chrono::DateTime<chrono::Utc>,
    /// When the call was established (the first `established` or later state), once it was:
    /// what the fault drill measures Active Calls' delay from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the call ended, once it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Role {
    /// Answered with media; owns the recording.
    Owner(String),
    /// A later invitation of a meeting already recorded for the profile: answered inactive.
    Member(String),
    /// A forked duplicate of a call with the same chain and policy user: answered inactive.
    Duplicate(String),
    /// Answered inactive: policy says no.
    NotRecorded,
    /// Rejected.
    Rejected,
}

#[derive(Debug)]
struct Call {
    facts: CallFacts,
    decision: Decision,
    role: Role,
    state: CallState,
    invited_at: SystemTime,
    answered_at: Option<SystemTime>,
    ended_at: Option<SystemTime>,
    last_notification: SystemTime,
    next_keep_alive: SystemTime,
    hold_since: Option<SystemTime>,
    hold_total: Duration,
    /// Seen in `transferring`/`transferAccepted`, or a later leg linked to it.
    transferred: bool,
    release_cause: Option<ReleaseCause>,
    end_reason: Option<EndReason>,
}

impl Call {
    fn live(&self) -> bool {
        self.ended_at.is_none()
    }

    fn recording_id(&self) -> Option<&str> {
        match &self.role {
            Role::Owner(r) | Role::Member(r) => Some(r),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Recording {
    owner: String,
    members: Vec<String>,
    meeting_key: Option<(String, String)>,
    interaction: Interaction,
    participant_index: HashMap<String, usize>,
    seen_human: bool,
    /// Targets seen in the roster (so that "every target left" means something).
    seen_target: bool,
    ended: bool,
    ended_at: Option<SystemTime>,
}

/// The signaling core: every call of this bot, its recordings, and the profiles deciding them.
#[derive(Debug)]
pub struct Signaling {
    profiles: Profiles,
    role: BotRole,
    config: SignalingConfig,
    calls: HashMap<String, Call>,
    recordings: HashMap<String, Recording>,
    meetings: HashMap<(String, String), String>,
    chains: HashMap<String, Vec<String>>,
    /// Notifications for calls this bot does not know (logged and dropped).
    pub unknown_call_notifications: u64,
    /// Notifications that could not be read (malformed items).
    pub malformed_notifications: u64,
}

fn utc(t: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(t)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn state_name(s: CallState) -> &'static str {
    match s.rank() {
        0 => "incoming",
        1 => "establishing",
        2 | 3 => "established",
        _ => "terminated",
    }
}

/// A directory-safe form of a call id.
fn sanitize(id: &str) -> String {
    id.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Signaling {
    /// A registry deciding with `profiles`, for a bot of `role`, with the default timers.
    pub fn new(profiles: Profiles, role: BotRole) -> Self {
        Self::with_config(profiles, role, SignalingConfig::default())
    }

    /// Same, with explicit timers.
    pub fn with_config(profiles: Profiles, role: BotRole, config: SignalingConfig) -> Self {
        Signaling {
            profiles,
            role,
            config,
            calls: HashMap::new(),
            recordings: HashMap::new(),
            meetings: HashMap::new(),
            chains: HashMap::new(),
            unknown_call_notifications: 0,
            malformed_notifications: 0,
        }
    }

    /// Replaces the profiles; calls already decided keep their decision.
    pub fn replace_profiles(&mut self, profiles: Profiles) {
        tracing::info!(
            profiles = profiles.profiles().len(),
            "recording profiles replaced"
        );
        self.profiles = profiles;
    }

    /// The profiles in force.
    pub fn profiles(&self) -> &Profiles {
        &self.profiles
    }

    /// Number of calls not ended.
    pub fn live_calls(&self) -> usize {
        self.calls.values().filter(|c| c.live()).count()
    }

    /// Number of recordings not ended.
    pub fn active_recordings(&self) -> usize {
        self.recordings.values().filter(|r| !r.ended).count()
    }

    /// One webhook body. Returns commands for the host to execute, in order.
    pub fn handle_notifications(
        &mut self,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Vec<Command>, NotificationError> {
        let env = Envelope::parse(body).inspect_err(|e| {
            tracing::warn!(error = %e, "webhook body refused");
        })?;
        for e in &env.skipped {
            self.malformed_notifications += 1;
            tracing::warn!(error = %e, "notification skipped");
        }
        let mut out = Vec::new();
        for n in env.notifications {
            match n.resource {
                Resource::Call(call) => {
                    self.on_call(n.change_type, &n.call_id, &call, now, &mut out)
                }
                Resource::Participants(list) => {
                    self.on_roster(n.change_type, &n.call_id, &list, now, &mut out)
                }
                Resource::ParticipantRef(pid) => {
                    if n.change_type == ChangeType::Deleted {
                        self.on_participant_removed(&n.call_id, &pid, now, &mut out)
                    }
                }
                Resource::Other(kind) => {
                    tracing::debug!(call_id = %n.call_id, ?kind, "notification resource not used")
                }
            }
        }
        Ok(out)
    }

    fn on_call(
        &mut self,
        change: ChangeType,
        call_id: &str,
        res: &CallResource,
        now: SystemTime,
        out: &mut Vec<Command>,
    ) {
        let known = self.calls.contains_key(call_id);
        let state = match (change, res.state) {
            (ChangeType::Deleted, _) => Some(CallState::Terminated),
            (_, s) => s,
        };
        if !known {
            if change == ChangeType::Created || state == Some(CallState::Incoming) {
                self.invitation(call_id, res, now, out);
            } else {
                self.unknown_call_notifications += 1;
                tracing::warn!(call_id, ?state, "notification for an unknown call ignored");
            }
            return;
        }
        let Some(state) = state else {
            if let Some(c) = self.calls.get_mut(call_id) {
                c.last_notification = now;
            }
            return;
        };
        if state == CallState::Incoming {
            tracing::debug!(call_id, "repeated invitation ignored");
            return;
        }
        self.on_state(call_id, state, res.result_info.clone(), now, out);
    }

    fn invitation(
        &mut self,
        call_id: &str,
        res: &CallResource,
        now: SystemTime,
        out: &mut Vec<Command>,
    ) {
        let facts = CallFacts::from_call(call_id, res);
        let mut decision = self.profiles.decide(&facts, now);
        for note in &facts.notes {
            tracing::debug!(call_id, note = %note, "call facts");
        }
        if decision.record && self.role == BotRole::Paired {
            let pro = decision
                .profile
                .as_deref()
                .and_then(|p| self.profiles.get(p))
                .is_some_and(|p| p.double_recording);
            if !pro {
                decision.record = false;
                decision
                    .reason
                    .push_str("; Essentials profile: the paired bot does not record");
            }
        }
        let offer = res
            .media_config
            .as_ref()
            .and_then(|m| m.blob.clone())
            .filter(|b| !b.trim().is_empty());

        let fork_of = self.fork_of(&facts);
        let transfer_from = if fork_of.is_none() {
            self.transfer_from(&facts)
        } else {
            None
        };

        let mut role = Role::NotRecorded;
        let mut answer_record = None;
        if let Some(orig) = &fork_of {
            decision.record = false;
            decision.reason = format!(
                "{}; forked duplicate of call {orig} (same callChainId and policy user): answered inactive",
                decision.reason
            );
            role = Role::Duplicate(orig.clone());
        } else if decision.record {
            let profile = decision.profile.clone().unwrap_or_default();
            let meeting_key = match (facts.kind, &facts.thread_id) {
                (CallKind::Meeting, Some(t)) => Some((t.clone(), profile.clone())),
                _ => None,
            };
            let shared = meeting_key
                .as_ref()
                .and_then(|k| self.meetings.get(k))
                .cloned();
            if let Some(rec_id) = shared {
                decision.reason = format!(
                    "{}; meeting already recorded for profile {profile} by recording {rec_id}: answered inactive, user added to its targets",
                    decision.reason
                );
                self.add_target(&rec_id, call_id, &facts, out);
                role = Role::Member(rec_id);
            } else if offer.is_none() {
                decision.record = false;
                decision.reason = format!(
                    "{}; rejected: the invitation carries no media offer (mediaConfig.blob)",
                    decision.reason
                );
                role = Role::Rejected;
            } else {
                let start = self.start_recording(call_id, &facts, &profile, meeting_key, now);
                role = Role::Owner(start.recording_id.clone());
                answer_record = Some(start);
            }
        }

        tracing::info!(
            call_id,
            record = decision.record,
            profile = decision.profile.as_deref().unwrap_or("-"),
            reason = %decision.reason,
            "recording decision"
        );
        match &role {
            Role::Rejected => out.push(Command::Reject {
                call_id: call_id.to_string(),
                reason: decision.reason.clone(),
            }),
            _ => out.push(Command::Answer {
                call_id: call_id.to_string(),
                offer_sdp: offer,
                record: answer_record,
            }),
        }
        if let Some(chain) = &facts.call_chain_id {
            self.chains
                .entry(chain.clone())
                .or_default()
                .push(call_id.to_string());
        }
        let call = Call {
            facts,
            decision,
            role,
            state: CallState::Incoming,
            invited_at: now,
            answered_at: None,
            ended_at: None,
            last_notification: now,
            next_keep_alive: now + self.config.keep_alive_interval,
            hold_since: None,
            hold_total: Duration::ZERO,
            transferred: false,
            release_cause: None,
            end_reason: None,
        };
        let rejected = call.role == Role::Rejected;
        self.calls.insert(call_id.to_string(), call);
        if rejected {
            self.end_call(call_id, EndReason::Terminated, None, now, out);
        }
        if let Some(prev) = transfer_from {
            self.link_transfer(&prev, call_id, out);
        }
    }

    /// A live earlier call of the same chain and policy user, not being transferred: this
    /// invitation is a fork of it.
    fn fork_of(&self, facts: &CallFacts) -> Option<String> {
        let chain = facts.call_chain_id.as_ref()?;
        let user = facts.policy_user.as_ref()?;
        if facts.transferor.is_some() || facts.kind != CallKind::P2p {
            return None;
        }
        self.chains.get(chain)?.iter().find_map(|id| {
            let c = self.calls.get(id)?;
            let same_user = c
                .facts
                .policy_user
                .as_ref()
                .is_some_and(|u| u.same_as(user));
            let primary = matches!(c.role, Role::Owner(_) | Role::NotRecorded | Role::Rejected);
            (c.live() && same_user && primary && !c.transferred).then(|| id.clone())
        })
    }

    /// The latest earlier leg of the chain this invitation is a transfer from: it names a
    /// transferor, or the earlier leg was transferring or ended by a transfer.
    fn transfer_from(&self, facts: &CallFacts) -> Option<String> {
        let chain = facts.call_chain_id.as_ref()?;
        self.chains.get(chain)?.iter().rev().find_map(|id| {
            let c = self.calls.get(id)?;
            if matches!(c.role, Role::Duplicate(_)) {
                return None;
            }
            let linked = facts.transferor.is_some()
                || c.transferred
                || c.release_cause == Some(ReleaseCause::Transferred);
            linked.then(|| id.clone())
        })
    }

    fn link_transfer(&mut self, prev_id: &str, new_id: &str, out: &mut Vec<Command>) {
        let (new_user, new_rec, transferor) = {
            let n = &self.calls[new_id];
            (
                n.facts.policy_user.clone(),
                n.recording_id().map(str::to_owned),
                n.facts.transferor.clone(),
            )
        };
        let (prev_user, prev_rec, prev_live) = {
            let p = self.calls.get_mut(prev_id).expect("prev leg is registered");
            p.transferred = true;
            if !p.live() && p.release_cause != Some(ReleaseCause::Transferred) {
                p.release_cause = Some(ReleaseCause::Transferred);
            }
            (
                p.facts.policy_user.clone(),
                p.recording_id().map(str::to_owned),
                p.live(),
            )
        };
        tracing::info!(
            call_id = new_id,
            from_call = prev_id,
            "transfer linked by callChainId"
        );
        if let Some(rec) = prev_rec.as_ref().and_then(|r| self.recordings.get_mut(r)) {
            rec.interaction.transferred_to = new_user;
            rec.interaction.transferred_to_recording = new_rec.clone();
            if !prev_live {
                rec.interaction.release_cause = Some(ReleaseCause::Transferred);
            }
            out.push(Command::Interaction {
                recording_id: rec.interaction.recording_id.clone(),
                interaction: rec.interaction.clone(),
            });
        }
        if let Some(rec) = new_rec.as_ref().and_then(|r| self.recordings.get_mut(r)) {
            if rec.owner == new_id {
                rec.interaction.transferred_by = transferor.or(prev_user);
                rec.interaction.transferred_from_recording = prev_rec;
                out.push(Command::Interaction {
                    recording_id: rec.interaction.recording_id.clone(),
                    interaction: rec.interaction.clone(),
                });
            }
        }
    }

    fn start_recording(
        &mut self,
        call_id: &str,
        facts: &CallFacts,
        profile_name: &str,
        meeting_key: Option<(String, String)>,
        now: SystemTime,
    ) -> RecordingStart {
        let profile = self
            .profiles
            .get(profile_name)
            .expect("a recording decision names a loaded profile");
        let t = utc(now);
        // The id names the spool directory and is the store's idempotency key for a leg: the
        // paired bot's legs carry their role, so that two bots given the same call id (a
        // platform replaying one call to both, or the simulator) never post the same id.
        let suffix = match self.role {
            BotRole::Primary => "",
            BotRole::Paired => "-paired",
        };
        let base = format!(
            "{}-{}{suffix}",
            t.format("%Y%m%dT%H%M%SZ"),
            sanitize(call_id)
        );
        let mut recording_id = base.clone();
        let mut n = 1;
        while self.recordings.contains_key(&recording_id) {
            n += 1;
            recording_id = format!("{base}-{n}");
        }
        let user_key = facts
            .policy_user
            .as_ref()
            .and_then(|u| u.id.clone().or(u.upn.clone()))
            .unwrap_or_default();
        let pairing_key = match &meeting_key {
            Some((thread, p)) => format!("meeting:{thread}/{p}"),
            None => format!(
                "chain:{}/{user_key}",
                facts.call_chain_id.as_deref().unwrap_or(call_id)
            ),
        };
        let interaction = Interaction {
            call_id: call_id.to_string(),
            recording_id: recording_id.clone(),
            bot_role: self.role,
            pairing_key,
            call_chain_id: facts.call_chain_id.clone(),
            tenant_id: facts.tenant_id.clone(),
            thread_id: facts.thread_id.clone(),
            targets: facts.policy_user.iter().cloned().collect(),
            on_behalf_of: facts.on_behalf_of.clone(),
            transferred_by: facts.transferor.clone(),
            transferred_to: None,
            transferred_from_recording: None,
            transferred_to_recording: None,
            calling_party: facts.calling_party.clone(),
            called_party: facts.called_party.clone(),
            answered_by: None,
            start_time: t,
            answered_time: None,
            release_time: None,
            direction: facts.direction,
            call_type: facts.call_type,
            release_cause: None,
            end_reason: None,
            result_info: None,
            participants: Vec::new(),
            profile: profile.name.clone(),
            retention_days: profile.retention_days,
            // A retention beyond chrono's range (a typo of many digits) must not panic.
            expiration: t
                .checked_add_signed(chrono::Duration::days(i64::from(profile.retention_days)))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            storage: profile.storage.clone(),
            double_recording_type: if profile.double_recording {
                "Pro"
            } else {
                "Essentials"
            }
            .to_string(),
            notification: profile.notification.as_str().to_string(),
            paired_recorders: facts.paired_recorders.clone(),
            // The answer opens the recording, so the first post already says Recording: the
            // store only moves a leg's status forward (Recording -> Pending -> Available), and
            // a Pending here would pin the leg at Pending, out of Active Calls, for good.
            media_status: MediaStatus::Recording,
            queue_id: facts.queue.as_ref().and_then(|q| q.id.clone()),
            queue_name: facts.queue.as_ref().and_then(|q| q.display_name.clone()),
            sip_call_id: None,
            sys_call_id: Some(call_id.to_string()),
            wait_time_ms: None,
            hold_time_ms: 0,
        };
        let start = RecordingStart {
            recording_id: recording_id.clone(),
            profile: profile.name.clone(),
            retention_days: profile.retention_days,
            storage: profile.storage.clone(),
            double_recording: profile.double_recording,
            interaction: interaction.clone(),
        };
        if let Some(k) = &meeting_key {
            self.meetings.insert(k.clone(), recording_id.clone());
        }
        self.recordings.insert(
            recording_id,
            Recording {
                owner: call_id.to_string(),
                members: Vec::new(),
                meeting_key,
                interaction,
                participant_index: HashMap::new(),
                seen_human: false,
                seen_target: false,
                ended: false,
                ended_at: None,
            },
        );
        start
    }

    fn add_target(
        &mut self,
        rec_id: &str,
        call_id: &str,
        facts: &CallFacts,
        out: &mut Vec<Command>,
    ) {
        let Some(rec) = self.recordings.get_mut(rec_id) else {
            return;
        };
        rec.members.push(call_id.to_string());
        if let Some(u) = &facts.policy_user {
            if !rec.interaction.targets.iter().any(|t| t.same_as(u)) {
                rec.interaction.targets.push(u.clone());
                out.push(Command::Interaction {
                    recording_id: rec_id.to_string(),
                    interaction: rec.interaction.clone(),
                });
            }
        }
    }

    fn on_state(
        &mut self,
        call_id: &str,
        state: CallState,
        result: Option<ResultInfo>,
        now: SystemTime,
        out: &mut Vec<Command>,
    ) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        call.last_notification = now;
        if !call.live() {
            tracing::debug!(call_id, ?state, "state update for an ended call ignored");
            return;
        }
        if state == CallState::Unknown {
            tracing::debug!(call_id, "unknown call state ignored");
            return;
        }
        if state.rank() < call.state.rank() {
            tracing::debug!(call_id, from = ?call.state, to = ?state, "out-of-order state update ignored");
            return;
        }
        if let Some(since) = call.hold_since.take() {
            call.hold_total += now.duration_since(since).unwrap_or_default();
        }
        if state == CallState::Hold {
            call.hold_since = Some(now);
        }
        if matches!(state, CallState::Transferring | CallState::TransferAccepted) {
            call.transferred = true;
        }
        call.state = state;
        if state == CallState::Terminated {
            self.end_call(call_id, EndReason::Terminated, result, now, out);
            return;
        }
        if state.rank() >= 2 && call.answered_at.is_none() {
            call.answered_at = Some(now);
            self.on_established(call_id, now, out);
        }
    }

    fn on_established(&mut self, call_id: &str, now: SystemTime, out: &mut Vec<Command>) {
        let call = &self.calls[call_id];
        let Some(rec_id) = call.recording_id().map(str::to_owned) else {
            return;
        };
        let Some(rec) = self.recordings.get_mut(&rec_id) else {
            return;
        };
        if rec.ended {
            return;
        }
        out.push(Command::UpdateRecordingStatus {
            call_id: call_id.to_string(),
            status: RecordingStatus::Recording,
        });
        if rec.owner != call_id {
            return;
        }
        let i = &mut rec.interaction;
        i.answered_time = Some(utc(now));
        i.media_status = MediaStatus::Recording;
        i.wait_time_ms = Some(ms(now.duration_since(call.invited_at).unwrap_or_default()));
        i.answered_by = match call.facts.direction {
            Direction::Incoming => call.facts.policy_user.clone(),
            Direction::Outgoing => call.facts.other_side.clone(),
            Direction::None => None,
        };
        out.push(Command::Interaction {
            recording_id: rec_id,
            interaction: i.clone(),
        });
    }

    fn release_cause(call: &Call, result: Option<&ResultInfo>, reason: EndReason) -> ReleaseCause {
        if call.transferred || result.is_some_and(|r| r.code == 200 && r.subcode == 7015) {
            return ReleaseCause::Transferred;
        }
        let established = call.answered_at.is_some();
        match reason {
            EndReason::KeepAliveFailed => return ReleaseCause::Failure,
            EndReason::IdleTimeout | EndReason::MediaTimeout if !established => {
                return ReleaseCause::Failure
            }
            _ => {}
        }
        let code = result.map(|r| r.code).unwrap_or(200);
        if !established {
            // The other side declining, being unreachable or cancelling is an unanswered call,
            // not a fault of the recording path.
            if code >= 400 && !matches!(code, 480 | 486 | 487 | 603) {
                return ReleaseCause::Failure;
            }
            return match call.facts.direction {
                Direction::Incoming => ReleaseCause::Missed,
                Direction::Outgoing | Direction::None => ReleaseCause::Abandoned,
            };
        }
        if code >= 400 {
            ReleaseCause::Failure
        } else {
            ReleaseCause::Normal
        }
    }

    fn end_call(
        &mut self,
        call_id: &str,
        reason: EndReason,
        result: Option<ResultInfo>,
        now: SystemTime,
        out: &mut Vec<Command>,
    ) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        if !call.live() {
            return;
        }
        if let Some(since) = call.hold_since.take() {
            call.hold_total += now.duration_since(since).unwrap_or_default();
        }
        call.state = CallState::Terminated;
        call.ended_at = Some(now);
        let cause = Self::release_cause(call, result.as_ref(), reason);
        call.release_cause = Some(cause);
        call.end_reason = Some(reason);
        tracing::info!(call_id, ?cause, ?reason, ?result, "call ended");
        match call.role.clone() {
            Role::Owner(rec_id) => {
                let hold = call.hold_total;
                self.finish_recording(&rec_id, cause, reason, result, hold, now, out)
            }
            Role::Member(rec_id) => {
                if let Some(rec) = self.recordings.get_mut(&rec_id) {
                    rec.members.retain(|m| m != call_id);
                }
            }
            Role::Duplicate(_) | Role::NotRecorded | Role::Rejected => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_recording(
        &mut self,
        rec_id: &str,
        cause: ReleaseCause,
        reason: EndReason,
        result: Option<ResultInfo>,
        hold: Duration,
        now: SystemTime,
        out: &mut Vec<Command>,
    ) {
        let Some(rec) = self.recordings.get_mut(rec_id) else {
            return;
        };
        if rec.ended {
            return;
        }
        rec.ended = true;
        rec.ended_at = Some(now);
        if let Some(k) = &rec.meeting_key {
            if self.meetings.get(k).is_some_and(|r| r == rec_id) {
                self.meetings.remove(k);
            }
        }
        let t = utc(now);
        let i = &mut rec.interaction;
        i.release_time = Some(t);
        i.release_cause = Some(cause);
        i.end_reason = Some(reason);
        i.result_info = result;
        i.hold_time_ms = ms(hold);
        if i.answered_time.is_none() {
            i.media_status = MediaStatus::Unavailable;
        }
        for p in &mut i.participants {
            if p.join_time.is_some() && p.leave_time.is_none() {
                p.leave_time = Some(t);
            }
        }
        if !rec.members.is_empty() {
            tracing::warn!(
                recording_id = rec_id,
                members = rec.members.len(),
                "meeting recording ended with the call that carried its media; other targeted users' calls stay answered inactive"
            );
        }
        out.push(Command::StopRecording {
            recording_id: rec_id.to_string(),
            interaction: i.clone(),
        });
    }

    fn on_roster(
        &mut self,
        change: ChangeType,
        call_id: &str,
        list: &[ParticipantResource],
        now: SystemTime,
        out: &mut Vec<Command>,
    ) {
        let Some(call) = self.calls.get_mut(call_id) else {
            self.unknown_call_notifications += 1;
            tracing::warn!(call_id, "roster for an unknown call ignored");
            return;
        };
        call.last_notification = now;
        // Every member call of a meeting receives the same roster; only the owner's is used, so
        // that a meeting with many targeted users costs one roster update, not one per user.
        let rec_id = match call.role.clone() {
            Role::Owner(rec_id) => rec_id,
            // Not recorded, but the bot's call must still end with the meeting (a meeting may
            // end only by roster): a full roster with nobody but the bot and the lobby in it.
            // The bot is invited while its policy user is in the call, so an empty roster is
            // an end, not a start.
            Role::NotRecorded if change == ChangeType::Updated && call.live() => {
                let me = call.facts.my_participant_id.clone();
                let anyone = list.iter().any(|p| {
                    p.id.as_deref()
                        .is_some_and(|id| !id.is_empty() && me.as_deref() != Some(id))
                        && !p.is_in_lobby.unwrap_or(false)
                });
                if !anyone {
                    tracing::info!(call_id, "roster shows the call is over (not recorded)");
                    self.end_call(call_id, EndReason::Roster, None, now, out);
                    out.push(Command::Hangup {
                        call_id: call_id.to_string(),
                    });
                }
                return;
            }
            _ => return,
        };
        if !call.live() {
            return;
        }
        let policy_tenant = call.facts.policy_tenant.clone();
        let me = call.facts.my_participant_id.clone();
        let Some(rec) = self.recordings.get_mut(&rec_id) else {
            return;
        };
        let t = utc(now);
        let mut present = std::collections::HashSet::new();
        for p in list {
            let Some(pid) = p.id.clone().filter(|id| !id.is_empty()) else {
                tracing::debug!(call_id, "roster entry without id skipped");
                continue;
            };
            if me.as_deref() == Some(pid.as_str()) {
                // The bot itself: not a participant of the recorded conversation.
                continue;
            }
            if change == ChangeType::Deleted {
                Self::leave(rec, &pid, t);
                continue;
            }
            present.insert(pid.clone());
            let party = p
                .info
                .as_ref()
                .and_then(|i| i.identity.as_ref())
                .and_then(party_of)
                .unwrap_or_else(|| Party {
                    kind: "unknown".into(),
                    ..Party::default()
                });
            let in_lobby = p.is_in_lobby.unwrap_or(false);
            let external = is_external(&party, policy_tenant.as_deref());
            let idx = match rec.participant_index.get(&pid) {
                Some(&i) => i,
                None => {
                    rec.interaction.participants.push(Participant {
                        participant_id: pid.clone(),
                        ..Participant::default()
                    });
                    let i = rec.interaction.participants.len() - 1;
                    rec.participant_index.insert(pid.clone(), i);
                    i
                }
            };
            let e = &mut rec.interaction.participants[idx];
            // A later roster may lack the name an earlier one had (guests, non-directory
            // identities): keep the best known.
            if party.display_name.is_none() && e.party.display_name.is_some() {
                let name = e.party.display_name.take();
                e.party = Party {
                    display_name: name,
                    ..party
                };
            } else {
                e.party = party;
            }
            if let Some(msi) = p.audio_msi() {
                e.msi = Some(msi);
            }
            e.muted = p.muted();
            e.in_lobby = in_lobby;
            e.external = external;
            if !in_lobby {
                if e.join_time.is_none() {
                    e.join_time = Some(t);
                }
                if e.leave_time.is_some() {
                    e.leave_time = None;
                }
            }
        }
        if change == ChangeType::Updated {
            // A full roster: whoever is not in it has left.
            for e in &mut rec.interaction.participants {
                if !present.contains(&e.participant_id)
                    && e.join_time.is_some()
                    && e.leave_time.is_none()
                {
                    e.leave_time = Some(t);
                }
            }
        }
        self.after_roster(call_id, &rec_id, now, out);
    }

    fn leave(rec: &mut Recording, pid: &str, t: DateTime<Utc>) {
        if let Some(&i) = rec.participant_index.get(pid) {
            let e = &mut rec.interaction.participants[i];
            if e.leave_time.is_none() {
                // Someone removed from the lobby never joined: no leave time either.
                if e.join_time.is_some() {
                    e.leave_time = Some(t);
                }
                e.in_lobby = false;
            }
        }
    }

    fn on_participant_removed(
        &mut self,
        call_id: &str,
        pid: &str,
        now: SystemTime,
        out: &mut Vec<Command>,
    ) {
        let Some(Role::Owner(rec_id)) = self.calls.get(call_id).map(|c| c.role.clone()) else {
            return;
        };
        if let Some(rec) = self.recordings.get_mut(&rec_id) {
            Self::leave(rec, pid, utc(now));
        }
        self.after_roster(call_id, &rec_id, now, out);
    }

    /// Emits the roster, upgrades the call type when externals joined an internal meeting, and
    /// ends the recording when the roster says the call is over.
    fn after_roster(
        &mut self,
        call_id: &str,
        rec_id: &str,
        now: SystemTime,
        out: &mut Vec<Command>,
    ) {
        let Some(rec) = self.recordings.get_mut(rec_id) else {
            return;
        };
        if rec.ended {
            return;
        }
        let human = |p: &Participant| matches!(p.party.kind.as_str(), "user" | "phone" | "guest");
        let in_call = |p: &Participant| p.join_time.is_some() && p.leave_time.is_none();
        let parts = &rec.interaction.participants;
        let humans_in = parts.iter().filter(|p| human(p) && in_call(p)).count();
        rec.seen_human |= parts.iter().any(|p| human(p) && p.join_time.is_some());
        let targets = &rec.interaction.targets;
        let is_target = |p: &Participant| targets.iter().any(|t| t.same_as(&p.party));
        rec.seen_target |= parts.iter().any(|p| is_target(p) && p.join_time.is_some());
        let targets_in = parts.iter().filter(|p| is_target(p) && in_call(p)).count();

        if rec.interaction.call_type == CallType::InternalMeeting
            && parts.iter().any(|p| p.external && p.join_time.is_some())
        {
            rec.interaction.call_type = CallType::InternalMeetingWithExternalParticipants;
            out.push(Command::Interaction {
                recording_id: rec_id.to_string(),
                interaction: rec.interaction.clone(),
            });
        }
        out.push(Command::Roster {
            recording_id: rec_id.to_string(),
            participants: rec.interaction.participants.clone(),
        });
        let over = (rec.seen_human && humans_in == 0) || (rec.seen_target && targets_in == 0);
        if !over {
            return;
        }
        tracing::info!(
            call_id,
            recording_id = rec_id,
            "roster shows the call is over (no participant or no targeted user left)"
        );
        let members = rec.members.clone();
        self.end_call(call_id, EndReason::Roster, None, now, out);
        out.push(Command::Hangup {
            call_id: call_id.to_string(),
        });
        for m in members {
            self.end_call(&m, EndReason::Roster, None, now, out);
            out.push(Command::Hangup { call_id: m });
        }
    }

    /// The media plane saw no media on `call_id` for too long: the call is taken as ended (the
    /// termination notification never came), sealed, and the bot leaves it.
    pub fn media_timeout(&mut self, call_id: &str, now: SystemTime) -> Vec<Command> {
        let mut out = Vec::new();
        match self.calls.get(call_id) {
            Some(c) if c.live() => {
                tracing::warn!(
                    call_id,
                    "media timed out without a termination: ending the call"
                );
                self.end_call(call_id, EndReason::MediaTimeout, None, now, &mut out);
                out.push(Command::Hangup {
                    call_id: call_id.to_string(),
                });
            }
            Some(_) => tracing::debug!(call_id, "media time-out of an ended call"),
            None => tracing::warn!(call_id, "media time-out of an unknown call"),
        }
        out
    }

    /// The host's keep-alive for `call_id` was refused (the platform no longer knows the call):
    /// the call ends as a failure and is sealed.
    pub fn keep_alive_failed(&mut self, call_id: &str, now: SystemTime) -> Vec<Command> {
        let mut out = Vec::new();
        if self.calls.get(call_id).is_some_and(Call::live) {
            tracing::warn!(call_id, "keep-alive refused: ending the call");
            self.end_call(call_id, EndReason::KeepAliveFailed, None, now, &mut out);
        }
        out
    }

    /// The host cannot record `recording_id` any more (disk full, writer failed): report
    /// `failed` on every call of the recording.
    pub fn recording_failed(&mut self, recording_id: &str) -> Vec<Command> {
        let mut out = Vec::new();
        let Some(rec) = self.recordings.get_mut(recording_id) else {
            return out;
        };
        if rec.interaction.media_status == MediaStatus::Failed {
            return out;
        }
        rec.interaction.media_status = MediaStatus::Failed;
        tracing::warn!(recording_id, "recording failed");
        for c in std::iter::once(&rec.owner).chain(rec.members.iter()) {
            if self.calls.get(c).is_some_and(Call::live) {
                out.push(Command::UpdateRecordingStatus {
                    call_id: c.clone(),
                    status: RecordingStatus::Failed,
                });
            }
        }
        out.push(Command::Interaction {
            recording_id: recording_id.to_string(),
            interaction: rec.interaction.clone(),
        });
        out
    }

    /// The host could not carry out an answer that starts a recording (no capacity, a full
    /// disk, an offer it cannot use) and rejected the invitation instead: the call ends as
    /// rejected, its recording is failed and ended (nothing was opened to seal), and a later
    /// invitation to the same meeting starts afresh instead of joining the failed recording.
    pub fn answer_refused(&mut self, call_id: &str, reason: &str, now: SystemTime) -> Vec<Command> {
        let mut out = Vec::new();
        let Some(call) = self.calls.get_mut(call_id) else {
            return out;
        };
        let Role::Owner(rec_id) = call.role.clone() else {
            return out;
        };
        call.role = Role::Rejected;
        call.decision.record = false;
        call.decision.reason = format!("{}; refused by the host: {reason}", call.decision.reason);
        tracing::warn!(call_id, reason, "answer refused by the host: call rejected");
        out.extend(self.recording_failed(&rec_id));
        if let Some(rec) = self.recordings.get_mut(&rec_id) {
            rec.ended = true;
            rec.ended_at = Some(now);
            if let Some(k) = rec.meeting_key.take() {
                if self.meetings.get(&k).is_some_and(|r| *r == rec_id) {
                    self.meetings.remove(&k);
                }
            }
        }
        self.end_call(call_id, EndReason::Terminated, None, now, &mut out);
        out
    }

    /// Graceful shutdown: every live call is ended and left, every recording sealed.
    pub fn shutdown(&mut self, now: SystemTime) -> Vec<Command> {
        let mut out = Vec::new();
        let mut live: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, c)| c.live())
            .map(|(id, _)| id.clone())
            .collect();
        live.sort();
        for id in live {
            self.end_call(&id, EndReason::Shutdown, None, now, &mut out);
            out.push(Command::Hangup { call_id: id });
        }
        out
    }

    /// Runs the timers due at `now`: keep-alives, set-up and idle time-outs, and forgetting
    /// calls ended long enough ago.
    pub fn handle_timeout(&mut self, now: SystemTime) -> Vec<Command> {
        let mut out = Vec::new();
        let mut due: Vec<(SystemTime, String)> = self
            .calls
            .iter()
            .filter_map(|(id, c)| Some((self.call_deadline(c)?, id.clone())))
            .filter(|(t, _)| *t <= now)
            .collect();
        due.sort();
        for (_, id) in due {
            let Some(c) = self.calls.get_mut(&id) else {
                continue;
            };
            if !c.live() {
                continue;
            }
            let established = c.answered_at.is_some();
            let idle_end = if established {
                c.last_notification + self.config.idle_timeout
            } else {
                c.invited_at + self.config.setup_timeout
            };
            if idle_end <= now {
                tracing::warn!(
                    call_id = %id,
                    established,
                    "no notification for too long: ending the call"
                );
                self.end_call(&id, EndReason::IdleTimeout, None, now, &mut out);
                out.push(Command::Hangup { call_id: id });
                continue;
            }
            if c.next_keep_alive <= now && !matches!(c.role, Role::Rejected) {
                c.next_keep_alive = now + self.config.keep_alive_interval;
                out.push(Command::KeepAlive { call_id: id });
            }
        }
        self.purge(now);
        out
    }

    fn call_deadline(&self, c: &Call) -> Option<SystemTime> {
        if let Some(end) = c.ended_at {
            return Some(end + self.config.ended_retention);
        }
        let idle = if c.answered_at.is_some() {
            c.last_notification + self.config.idle_timeout
        } else {
            c.invited_at + self.config.setup_timeout
        };
        Some(idle.min(c.next_keep_alive))
    }

    fn purge(&mut self, now: SystemTime) {
        let keep = self.config.ended_retention;
        let old: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, c)| c.ended_at.is_some_and(|t| t + keep <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &old {
            if let Some(c) = self.calls.remove(id) {
                if let Some(chain) = &c.facts.call_chain_id {
                    if let Some(v) = self.chains.get_mut(chain) {
                        v.retain(|x| x != id);
                        if v.is_empty() {
                            self.chains.remove(chain);
                        }
                    }
                }
            }
        }
        let calls = &self.calls;
        self.recordings.retain(|_, r| {
            !(r.ended
                && r.ended_at.is_some_and(|t| t + keep <= now)
                && !calls.contains_key(&r.owner))
        });
    }

    /// When [`Signaling::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<SystemTime> {
        self.calls
            .values()
            .filter_map(|c| self.call_deadline(c))
            .min()
    }

    /// Every call the bot still remembers (live ones, and ended ones for
    /// `ended_retention`), oldest invitation first: what a reconciler compares with the store
    /// (`GET /api/calls`).
    pub fn calls(&self) -> Vec<CallStatus> {
        let mut v: Vec<CallStatus> = self
            .calls
            .keys()
            .filter_map(|id| self.call_status(id))
            .collect();
        v.sort_by(|a, b| (a.invited_at, &a.call_id).cmp(&(b.invited_at, &b.call_id)));
        v
    }

    /// What the bot knows of a call (`GET /api/calls/{id}`), `None` for an unknown call.
    pub fn call_status(&self, call_id: &str) -> Option<CallStatus> {
        let c = self.calls.get(call_id)?;
        Some(CallStatus {
            invited_at: c.invited_at.into(),
            answered_at: c.answered_at.map(Into::into),
            ended_at: c.ended_at.map(Into::into),
            call_id: call_id.to_string(),
            state: state_name(c.state),
            decision: c.decision.clone(),
            recording_id: c.recording_id().map(str::to_owned),
            answer: match c.role {
                Role::Owner(_) => "recording",
                Role::Rejected => "rejected",
                _ => "inactive",
            },
            duplicate_of: match &c.role {
                Role::Duplicate(o) => Some(o.clone()),
                _ => None,
            },
            release_cause: c.release_cause,
            end_reason: c.end_reason,
        })
    }

    /// The current metadata of a recording (ended ones stay until purged).
    pub fn interaction(&self, recording_id: &str) -> Option<&Interaction> {
        self.recordings.get(recording_id).map(|r| &r.interaction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signaling::notify::CallResource;

    fn call(direction: &str, answered: bool, transferred: bool) -> Call {
        let res: CallResource = serde_json::from_value(serde_json::json!({
            "applicationMetadata": {"botData": {"user": {"participationMethod": direction, "policyHolderId": "u"}}}
        }))
        .unwrap();
        let t = SystemTime::UNIX_EPOCH;
        Call {
            facts: CallFacts::from_call("c", &res),
            decision: Decision {
                record: true,
                profile: None,
                reason: String::new(),
            },
            role: Role::NotRecorded,
            state: CallState::Incoming,
            invited_at: t,
            answered_at: answered.then_some(t),
            ended_at: None,
            last_notification: t,
            next_keep_alive: t,
            hold_since: None,
            hold_total: Duration::ZERO,
            transferred,
            release_cause: None,
            end_reason: None,
        }
    }

    fn ri(code: i64, subcode: i64) -> Option<ResultInfo> {
        Some(ResultInfo {
            code,
            subcode,
            message: None,
        })
    }

    #[test]
    fn release_cause_table() {
        use EndReason::*;
        use ReleaseCause::*;
        let cases = [
            ("Callee", false, false, ri(200, 5001), Terminated, Missed),
            ("Caller", false, false, ri(200, 5001), Terminated, Abandoned),
            ("DialIn", false, false, None, Roster, Abandoned),
            ("Callee", false, false, ri(480, 10037), Terminated, Missed),
            ("Callee", false, false, ri(408, 1106), Terminated, Failure),
            ("Callee", true, false, ri(410, 301005), Terminated, Failure),
            (
                "Callee",
                true,
                false,
                ri(200, 7015),
                Terminated,
                Transferred,
            ),
            ("Callee", true, true, ri(200, 4097), Terminated, Transferred),
            ("Callee", true, false, ri(200, 4097), Terminated, Normal),
            ("Callee", true, false, None, MediaTimeout, Normal),
            ("Callee", false, false, None, MediaTimeout, Failure),
            ("Callee", false, false, None, IdleTimeout, Failure),
            ("Callee", true, false, None, KeepAliveFailed, Failure),
        ];
        for (dir, answered, transferred, result, reason, want) in cases {
            let c = call(dir, answered, transferred);
            assert_eq!(
                Signaling::release_cause(&c, result.as_ref(), reason),
                want,
                "{dir} answered={answered} {result:?} {reason:?}"
            );
        }
    }

    #[test]
    fn recording_ids_are_directory_safe() {
        assert_eq!(sanitize("abc-DEF_1.2"), "abc-DEF_1.2");
        assert_eq!(sanitize("../x/y z"), ".._x_y_z");
        assert_eq!(sanitize(&"x".repeat(200)).len(), 64);
    }

    #[test]
    fn status_state_names() {
        assert_eq!(state_name(CallState::Incoming), "incoming");
        assert_eq!(state_name(CallState::Establishing), "establishing");
        assert_eq!(state_name(CallState::Hold), "established");
        assert_eq!(state_name(CallState::Terminated), "terminated");
    }
}
