//! The catalogue of simulated calls: who is in them, what the platform posts when, who speaks,
//! how the network treats the media, and what the recording profiles in
//! `bot-host/sim-profiles.toml` say should happen.
//!
//! All times are milliseconds relative to the start of the scenario (legs) or of the leg
//! (everything inside a leg). The identities match the users, tenants and queue listed in
//! `sim-profiles.toml`; a test checks that the two stay in step.

use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use chrono_tz::Tz;

/// The tenant of every policy user (contoso).
pub const HOME_TENANT: &str = "5f2b7c3e-1a4d-4e8b-9c6f-2d3e4f5a6b7c";
/// A federated tenant (fabrikam).
pub const FEDERATED_TENANT: &str = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d";
/// The call queue's application instance, listed in the Support profile's `queue_ids`.
pub const SALES_QUEUE_ID: &str = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d";

/// A Graph `identitySet`: who a participant is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A directory user (`identity.user`).
    User {
        /// AAD object id.
        id: String,
        /// Display name.
        display_name: String,
        /// The user's tenant.
        tenant_id: String,
        /// UPN, for reports (not part of the Graph identity).
        upn: String,
    },
    /// A PSTN party (`identity.phone`), E.164 with `+`.
    Phone {
        /// `+` and digits.
        e164: String,
    },
    /// A meeting guest (`identity.guest`).
    Guest {
        /// Guest id.
        id: String,
        /// Name the guest typed.
        display_name: String,
    },
    /// A call queue or auto attendant (`identity.applicationInstance`).
    ApplicationInstance {
        /// Application instance id.
        id: String,
        /// Display name.
        display_name: String,
    },
}

impl Identity {
    /// A short label for reports.
    pub fn label(&self) -> &str {
        match self {
            Identity::User { upn, .. } => upn,
            Identity::Phone { e164 } => e164,
            Identity::Guest { display_name, .. } => display_name,
            Identity::ApplicationInstance { display_name, .. } => display_name,
        }
    }

    /// The tenant, for directory users.
    pub fn tenant_id(&self) -> Option<&str> {
        match self {
            Identity::User { tenant_id, .. } => Some(tenant_id),
            _ => None,
        }
    }

    /// The id Graph would put in `otherSideUser.id` / `policyHolderId`.
    pub fn id(&self) -> &str {
        match self {
            Identity::User { id, .. } => id,
            Identity::Phone { e164 } => e164,
            Identity::Guest { id, .. } => id,
            Identity::ApplicationInstance { id, .. } => id,
        }
    }
}

fn user(n: u32, name: &str, upn: &str, tenant: &str) -> Identity {
    Identity::User {
        id: format!(
            "{n:08x}-7c1e-4d2a-9b3f-{:012x}",
            0x5eed_0000_u64 + u64::from(n)
        ),
        display_name: name.into(),
        tenant_id: tenant.into(),
        upn: upn.into(),
    }
}

/// Alice, a trader (profile Traders).
pub fn alice() -> Identity {
    user(1, "Alice Archer", "alice@contoso.example", HOME_TENANT)
}
/// Bob, a trader (profile Traders).
pub fn bob() -> Identity {
    user(2, "Bob Baker", "bob@contoso.example", HOME_TENANT)
}
/// Carol, a support agent answering the sales queue (profile Support).
pub fn carol() -> Identity {
    user(3, "Carol Chen", "carol@contoso.example", HOME_TENANT)
}
/// Dave, recorded only in his night-shift hours (profile NightShift).
pub fn dave() -> Identity {
    user(4, "Dave Dunn", "dave@contoso.example", HOME_TENANT)
}
/// Erin, in legal (profile Legal).
pub fn erin() -> Identity {
    user(5, "Erin Evans", "erin@contoso.example", HOME_TENANT)
}
/// Grace, an internal colleague who is not a policy user.
pub fn grace() -> Identity {
    user(7, "Grace Green", "grace@contoso.example", HOME_TENANT)
}
/// Mallory: invited by policy but in no recording profile.
pub fn mallory() -> Identity {
    user(8, "Mallory Moss", "mallory@contoso.example", HOME_TENANT)
}
/// Frank, a user of the federated tenant.
pub fn frank() -> Identity {
    user(
        0xf1,
        "Frank Fischer (Fabrikam)",
        "frank@fabrikam.example",
        FEDERATED_TENANT,
    )
}
/// A meeting guest.
pub fn guest() -> Identity {
    Identity::Guest {
        id: "guest-3c9e51f0".into(),
        display_name: "Visitor (Guest)".into(),
    }
}
/// A PSTN party.
pub fn phone(e164: &str) -> Identity {
    Identity::Phone { e164: e164.into() }
}
/// The sales call queue.
pub fn sales_queue() -> Identity {
    Identity::ApplicationInstance {
        id: SALES_QUEUE_ID.into(),
        display_name: "Sales Queue".into(),
    }
}

/// A time span `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Start, inclusive.
    pub start_ms: u64,
    /// End, exclusive.
    pub end_ms: u64,
}

impl Span {
    /// Whether `t_ms` falls inside.
    pub fn contains(&self, t_ms: u64) -> bool {
        (self.start_ms..self.end_ms).contains(&t_ms)
    }
}

const fn span(start_ms: u64, end_ms: u64) -> Span {
    Span { start_ms, end_ms }
}

/// Which fixture a speaker talks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wav {
    /// `fixtures/calls/speech.A.wav`.
    A,
    /// `fixtures/calls/speech.B.wav`.
    B,
}

/// What a participant says: the fixture, where in it they start, and when they talk.
#[derive(Debug, Clone)]
pub struct Speech {
    /// The fixture.
    pub wav: Wav,
    /// Position in the fixture (looped) at leg time 0.
    pub offset_ms: u64,
    /// Talk spurts (leg time).
    pub spans: Vec<Span>,
}

/// A participant of a leg's roster.
#[derive(Debug, Clone)]
pub struct Participant {
    /// Who.
    pub identity: Identity,
    /// Media source id of their audio stream = the RTP SSRC.
    pub msi: u32,
    /// When they appear in the roster.
    pub joined_ms: u64,
    /// When they leave the roster.
    pub left_ms: Option<u64>,
    /// Waiting in the lobby until then: in the roster with `isInLobby`, no media.
    pub lobby_until_ms: Option<u64>,
    /// Muted: the platform sends silence frames for them.
    pub muted: Vec<Span>,
    /// What they say, if anything.
    pub speech: Option<Speech>,
}

/// What the media stream of a participant carries in one 20 ms frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Fixture audio at this position (ms into the looped fixture).
    Speech {
        /// The fixture.
        wav: Wav,
        /// Position in it.
        pos_ms: u64,
    },
    /// A silence frame (muted).
    Silence,
}

impl Participant {
    fn new(identity: Identity, msi: u32) -> Self {
        Participant {
            identity,
            msi,
            joined_ms: 0,
            left_ms: None,
            lobby_until_ms: None,
            muted: Vec::new(),
            speech: None,
        }
    }

    fn speaks(mut self, wav: Wav, offset_ms: u64, spans: &[Span]) -> Self {
        self.speech = Some(Speech {
            wav,
            offset_ms,
            spans: spans.to_vec(),
        });
        self
    }

    fn joins(mut self, at_ms: u64) -> Self {
        self.joined_ms = at_ms;
        self
    }

    fn leaves(mut self, at_ms: u64) -> Self {
        self.left_ms = Some(at_ms);
        self
    }

    fn mutes(mut self, during: Span) -> Self {
        self.muted.push(during);
        self
    }

    fn lobby_until(mut self, at_ms: u64) -> Self {
        self.lobby_until_ms = Some(at_ms);
        self
    }

    /// Whether they are in the roster at `t_ms`.
    pub fn present(&self, t_ms: u64) -> bool {
        t_ms >= self.joined_ms && self.left_ms.is_none_or(|l| t_ms < l)
    }

    /// Whether they wait in the lobby at `t_ms`.
    pub fn in_lobby(&self, t_ms: u64) -> bool {
        self.lobby_until_ms.is_some_and(|l| t_ms < l)
    }

    /// Whether they are muted at `t_ms`.
    pub fn is_muted(&self, t_ms: u64) -> bool {
        self.muted.iter().any(|s| s.contains(t_ms))
    }

    /// What their stream carries in the frame starting at `t_ms`; `None` = no packet (not in
    /// the call, in the lobby, or not talking).
    pub fn frame_at(&self, t_ms: u64) -> Option<FrameKind> {
        if !self.present(t_ms) || self.in_lobby(t_ms) {
            return None;
        }
        if self.is_muted(t_ms) {
            return Some(FrameKind::Silence);
        }
        let speech = self.speech.as_ref()?;
        speech
            .spans
            .iter()
            .any(|s| s.contains(t_ms))
            .then_some(FrameKind::Speech {
                wav: speech.wav,
                pos_ms: speech.offset_ms + t_ms,
            })
    }

    /// The times at which their roster entry changes.
    fn change_times(&self) -> impl Iterator<Item = u64> + '_ {
        [Some(self.joined_ms), self.left_ms, self.lobby_until_ms]
            .into_iter()
            .flatten()
            .chain(self.muted.iter().flat_map(|s| [s.start_ms, s.end_ms]))
    }
}

/// The policy user's side of a peer-to-peer call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The policy user is called (`participationMethod: Callee`).
    Incoming,
    /// The policy user calls (`participationMethod: Caller`).
    Outgoing,
}

/// Peer-to-peer call or meeting.
#[derive(Debug, Clone)]
pub enum LegKind {
    /// A 1:1 call.
    P2p {
        /// The policy user's side.
        direction: Direction,
        /// The other party.
        other: Identity,
    },
    /// A meeting (`participationMethod: DialIn`, `chatInfo.threadId`); all meeting legs of a
    /// scenario are in the same meeting.
    Meeting {
        /// The organizer (their tenant makes the meeting internal or external).
        organizer: Identity,
    },
}

/// How a leg ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// A `deleted` notification, `state: terminated`, with this result.
    Deleted {
        /// resultInfo.code.
        code: u16,
        /// resultInfo.subcode.
        subcode: u32,
        /// resultInfo.message.
        message: &'static str,
    },
    /// Only a roster update that leaves nobody in the meeting (no `deleted`).
    RosterEmpty,
    /// Nothing: the media just stops (missing termination).
    MediaStops,
}

/// A recording time range of a profile, to work out the expectation at run time.
#[derive(Debug, Clone)]
pub struct TimeRange {
    /// IANA zone.
    pub time_zone: Tz,
    /// Week days.
    pub days: Vec<Weekday>,
    /// First hour, inclusive.
    pub start_hour: u32,
    /// Last hour, exclusive.
    pub end_hour: u32,
}

impl TimeRange {
    /// Whether `now` is inside the range.
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.time_zone);
        self.days.contains(&local.weekday())
            && (self.start_hour..self.end_hour).contains(&local.hour())
    }
}

/// What the profiles say should happen to a leg.
#[derive(Debug, Clone)]
pub enum Expect {
    /// Recorded and sealed.
    Recorded,
    /// Not recorded (answered inactive, rejected): `recording` stays `none`.
    NotRecorded(&'static str),
    /// Recorded only if the call starts inside the range.
    InTimeRange(TimeRange),
}

impl Expect {
    /// The expectation for a call starting at `now`, with the reason.
    pub fn at(&self, now: DateTime<Utc>) -> (bool, String) {
        match self {
            Expect::Recorded => (true, "profile records it".into()),
            Expect::NotRecorded(why) => (false, (*why).into()),
            Expect::InTimeRange(r) => {
                let local = now.with_timezone(&r.time_zone);
                let inside = r.contains(now);
                (
                    inside,
                    format!(
                        "{} {} in {} is {} the time range",
                        local.weekday(),
                        local.format("%H:%M"),
                        r.time_zone,
                        if inside { "inside" } else { "outside" }
                    ),
                )
            }
        }
    }
}

/// One invitation of the bot: one call id.
#[derive(Debug, Clone)]
pub struct Leg {
    /// When the incoming call is posted, relative to the scenario start.
    pub start_ms: u64,
    /// The user the compliance policy invites the bot for.
    pub policy_user: Identity,
    /// P2p or meeting.
    pub kind: LegKind,
    /// `incomingContext.onBehalfOf` (call queue).
    pub on_behalf_of: Option<Identity>,
    /// `incomingContext.transferor`.
    pub transferor: Option<Identity>,
    /// Legs of a scenario with the same chain number share a `callChainId`.
    pub chain: u8,
    /// State updates (`establishing`, `established`, ...) after the invitation, leg time.
    pub states: Vec<(u64, &'static str)>,
    /// First roster update; roster changes before it are folded into it.
    pub roster_at_ms: u64,
    /// The roster.
    pub participants: Vec<Participant>,
    /// When the leg ends (and the media stops), leg time.
    pub end_ms: u64,
    /// How the end shows.
    pub end: End,
    /// The expected outcome under `sim-profiles.toml`.
    pub expect: Expect,
}

impl Leg {
    /// Times of roster updates (the first roster, then every change), each below `end_ms`.
    pub fn roster_times(&self) -> Vec<u64> {
        let mut times: Vec<u64> = self
            .participants
            .iter()
            .flat_map(Participant::change_times)
            .map(|t| t.max(self.roster_at_ms))
            .chain([self.roster_at_ms])
            .filter(|&t| t < self.end_ms)
            .collect();
        times.sort_unstable();
        times.dedup();
        times
    }

    /// The participants that send a stream (speak or get muted).
    pub fn speakers(&self) -> impl Iterator<Item = &Participant> {
        self.participants
            .iter()
            .filter(|p| p.speech.is_some() || !p.muted.is_empty())
    }

    /// The largest number of streams sending at once.
    pub fn max_simultaneous_speakers(&self) -> usize {
        (0..self.end_ms)
            .step_by(20)
            .map(|t| {
                self.participants
                    .iter()
                    .filter(|p| p.frame_at(t).is_some())
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    /// Whether this is a meeting leg.
    pub fn is_meeting(&self) -> bool {
        matches!(self.kind, LegKind::Meeting { .. })
    }
}

/// Audio codec of a scenario's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Opus, 48 kHz clock, 20 ms frames, payload type 111.
    Opus,
    /// Linear 16-bit PCM, 16 kHz, big-endian (RFC 3551), payload type 96.
    L16,
}

impl Codec {
    /// RTP payload type used in the offer.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Opus => 111,
            Codec::L16 => 96,
        }
    }
    /// `a=rtpmap` encoding.
    pub fn rtpmap(self) -> &'static str {
        match self {
            Codec::Opus => "opus/48000/2",
            Codec::L16 => "L16/16000",
        }
    }
    /// RTP timestamp units per 20 ms frame.
    pub fn ts_per_frame(self) -> u32 {
        match self {
            Codec::Opus => 960,
            Codec::L16 => 320,
        }
    }
}

/// Network impairments applied to each packet by a seeded RNG.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Impairments {
    /// Packets dropped, percent.
    pub loss_pct: f64,
    /// Packets held back behind the next one, percent.
    pub reorder_pct: f64,
    /// Extra delay, uniform in `0..=jitter_ms`.
    pub jitter_ms: u32,
    /// Every packet of this window (leg time) is dropped.
    pub outage: Option<Span>,
}

/// One simulated call situation.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Unique name (`--scenario`).
    pub name: &'static str,
    /// What it exercises.
    pub about: &'static str,
    /// Payload of every stream.
    pub codec: Codec,
    /// Network impairments on every stream.
    pub impairments: Impairments,
    /// The invitations.
    pub legs: Vec<Leg>,
}

impl Scenario {
    /// Scenario length: the end of its last leg.
    pub fn duration_ms(&self) -> u64 {
        self.legs
            .iter()
            .map(|l| l.start_ms + l.end_ms)
            .max()
            .unwrap_or(0)
    }
}

const PEER_LEFT: End = End::Deleted {
    code: 200,
    subcode: 4097,
    message: "Call ended: peer left",
};
const CONVERSATION_ENDED: End = End::Deleted {
    code: 200,
    subcode: 5001,
    message: "Call ended: conversation ended",
};
const PSTN_HANGUP: End = End::Deleted {
    code: 200,
    subcode: 540000,
    message: "Call ended: PSTN party hung up",
};

/// A two-party call: the policy user (MSI 1001, speech A) and the other side (MSI 2002,
/// speech B) talk in turns with an overlap; ends after 8 s.
fn p2p(policy: Identity, other: Identity, direction: Direction) -> Leg {
    Leg {
        start_ms: 0,
        policy_user: policy.clone(),
        kind: LegKind::P2p {
            direction,
            other: other.clone(),
        },
        on_behalf_of: None,
        transferor: None,
        chain: 0,
        states: vec![(200, "establishing"), (400, "established")],
        roster_at_ms: 500,
        participants: vec![
            Participant::new(policy, 1001).speaks(Wav::A, 0, &[span(600, 3600), span(5400, 7600)]),
            Participant::new(other, 2002).speaks(Wav::B, 0, &[span(3400, 5600)]),
        ],
        end_ms: 8000,
        end: PEER_LEFT,
        expect: Expect::Recorded,
    }
}

/// A meeting leg for `policy` in a meeting organised by `organizer`, with `others` besides
/// the policy user (who speaks A from 1 s to 4 s).
fn meeting(policy: Identity, organizer: Identity, others: Vec<Participant>) -> Leg {
    let mut participants = vec![Participant::new(policy.clone(), 3001).speaks(
        Wav::A,
        2000,
        &[span(1000, 4000), span(7000, 8500)],
    )];
    participants.extend(others);
    Leg {
        start_ms: 0,
        policy_user: policy,
        kind: LegKind::Meeting { organizer },
        on_behalf_of: None,
        transferor: None,
        chain: 0,
        states: vec![(200, "establishing"), (400, "established")],
        roster_at_ms: 500,
        participants,
        end_ms: 10_000,
        end: CONVERSATION_ENDED,
        expect: Expect::Recorded,
    }
}

/// The NightShift profile's time range, for the time-range scenario (must match
/// `sim-profiles.toml`).
pub fn night_shift_range() -> TimeRange {
    TimeRange {
        time_zone: chrono_tz::Pacific::Auckland,
        days: vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ],
        start_hour: 0,
        end_hour: 6,
    }
}

/// Every scenario, in a fixed order (the default mix cycles through them).
pub fn catalogue() -> Vec<Scenario> {
    let mut out = Vec::new();
    let mut add = |name, about, codec, impairments, legs| {
        out.push(Scenario {
            name,
            about,
            codec,
            impairments,
            legs,
        })
    };
    let clean = Impairments::default();

    add(
        "internal-p2p-in",
        "internal peer-to-peer call to a trader",
        Codec::Opus,
        clean,
        vec![p2p(alice(), grace(), Direction::Incoming)],
    );
    add(
        "internal-p2p-out",
        "internal peer-to-peer call made by a trader, 2% loss and 20 ms jitter",
        Codec::Opus,
        Impairments {
            loss_pct: 2.0,
            jitter_ms: 20,
            ..clean
        },
        vec![p2p(bob(), grace(), Direction::Outgoing)],
    );
    add(
        "external-p2p-in",
        "federated (other tenant) caller; Traders record external incoming",
        Codec::Opus,
        Impairments {
            reorder_pct: 3.0,
            ..clean
        },
        vec![p2p(alice(), frank(), Direction::Incoming)],
    );
    add(
        "external-p2p-out",
        "federated callee; Traders record external calls only incoming",
        Codec::Opus,
        clean,
        vec![Leg {
            expect: Expect::NotRecorded("Traders: external_p2p = incoming"),
            ..p2p(alice(), frank(), Direction::Outgoing)
        }],
    );
    add(
        "pstn-in",
        "PSTN caller from a London number, 16 kHz PCM as from the media SDK",
        Codec::L16,
        Impairments {
            loss_pct: 1.0,
            ..clean
        },
        vec![Leg {
            end: PSTN_HANGUP,
            ..p2p(alice(), phone("+442071234567"), Direction::Incoming)
        }],
    );
    add(
        "pstn-in-blocked",
        "PSTN caller on a toll-free number the Traders' received-numbers regex blocks",
        Codec::L16,
        clean,
        vec![Leg {
            end: PSTN_HANGUP,
            expect: Expect::NotRecorded("Traders: received number matches ^1800\\d+$ (block)"),
            ..p2p(alice(), phone("+18005550199"), Direction::Incoming)
        }],
    );
    add(
        "pstn-out",
        "PSTN call made to a UK number (Traders' made-numbers allow 44.*)",
        Codec::Opus,
        clean,
        vec![p2p(bob(), phone("+447700900123"), Direction::Outgoing)],
    );
    add(
        "pstn-out-not-allowed",
        "PSTN call made to a US number, not on the Traders' made-numbers allow list",
        Codec::Opus,
        clean,
        vec![Leg {
            expect: Expect::NotRecorded("Traders: made number not in allow list 44.*"),
            ..p2p(bob(), phone("+12125550100"), Direction::Outgoing)
        }],
    );
    add(
        "guest-meeting",
        "internal meeting with a guest (identity.guest, no directory name)",
        Codec::Opus,
        clean,
        vec![meeting(
            erin(),
            erin(),
            vec![Participant::new(guest(), 3100)
                .joins(800)
                .speaks(Wav::B, 0, &[span(3800, 7200)])],
        )],
    );
    add(
        "internal-meeting",
        "internal meeting, four speakers at once at times, 3% loss, 40 ms jitter",
        Codec::Opus,
        Impairments {
            loss_pct: 3.0,
            jitter_ms: 40,
            reorder_pct: 1.0,
            ..clean
        },
        vec![meeting(
            alice(),
            grace(),
            vec![
                Participant::new(grace(), 3002).speaks(Wav::B, 0, &[span(2500, 6000)]),
                Participant::new(bob(), 3003).speaks(Wav::A, 6000, &[span(3000, 5000)]),
                Participant::new(frank(), 3004).joins(1500).speaks(
                    Wav::B,
                    5000,
                    &[span(3500, 8000)],
                ),
                // Joins and never speaks: a roster entry without a stream.
                Participant::new(carol(), 3005).joins(2000).leaves(9000),
            ],
        )],
    );
    add(
        "external-meeting",
        "meeting organised in the federated tenant",
        Codec::Opus,
        clean,
        vec![meeting(
            alice(),
            frank(),
            vec![Participant::new(frank(), 3002).speaks(Wav::B, 0, &[span(3500, 7000)])],
        )],
    );
    let shared_roster = || {
        vec![
            Participant::new(bob(), 3002).speaks(Wav::B, 0, &[span(3500, 6500)]),
            Participant::new(erin(), 3003).speaks(Wav::B, 4000, &[span(6500, 9000)]),
        ]
    };
    add(
        "meeting-many-targeted",
        "one meeting, three policy users invited (same chatInfo.threadId): recorded once per profile",
        Codec::Opus,
        clean,
        vec![
            meeting(alice(), grace(), shared_roster()),
            Leg {
                start_ms: 150,
                chain: 1,
                expect: Expect::NotRecorded(
                    "meeting already recorded for profile Traders (answered inactive)",
                ),
                ..meeting(bob(), grace(), shared_roster())
            },
            Leg {
                start_ms: 300,
                chain: 2,
                ..meeting(erin(), grace(), shared_roster())
            },
        ],
    );
    add(
        "queue-call",
        "PSTN caller through the sales call queue (onBehalfOf applicationInstance in Support's queue_ids)",
        Codec::L16,
        clean,
        vec![Leg {
            on_behalf_of: Some(sales_queue()),
            end: PSTN_HANGUP,
            ..p2p(carol(), phone("+442079460000"), Direction::Incoming)
        }],
    );
    add(
        "transfer",
        "alice takes a call and transfers it to bob: 200/7015, then a new call with the same callChainId",
        Codec::Opus,
        clean,
        vec![
            Leg {
                end_ms: 5000,
                end: End::Deleted {
                    code: 200,
                    subcode: 7015,
                    message: "Call ended: transfer completed",
                },
                ..p2p(alice(), phone("+442071234567"), Direction::Incoming)
            },
            Leg {
                start_ms: 5200,
                transferor: Some(alice()),
                end: PSTN_HANGUP,
                ..p2p(bob(), phone("+442071234567"), Direction::Incoming)
            },
        ],
    );
    add(
        "forked-duplicate",
        "a second, forked invitation for the same user and callChainId that ends after 1.5 s",
        Codec::Opus,
        clean,
        vec![
            p2p(bob(), grace(), Direction::Incoming),
            Leg {
                start_ms: 100,
                states: vec![],
                end_ms: 1500,
                end: End::Deleted {
                    code: 487,
                    subcode: 0,
                    message: "Call canceled: answered on another endpoint",
                },
                expect: Expect::NotRecorded("forked duplicate of a call already recorded"),
                ..p2p(bob(), grace(), Direction::Incoming)
            },
        ],
    );
    add(
        "out-of-order",
        "established arrives before establishing",
        Codec::Opus,
        clean,
        vec![Leg {
            states: vec![(300, "established"), (350, "establishing")],
            ..p2p(alice(), grace(), Direction::Incoming)
        }],
    );
    add(
        "meeting-roster",
        "joins, leaves and mutes (silence frames while muted), a 1 s media outage",
        Codec::Opus,
        Impairments {
            outage: Some(span(4500, 5500)),
            ..clean
        },
        vec![Leg {
            participants: vec![
                Participant::new(erin(), 3001)
                    .speaks(Wav::A, 0, &[span(800, 3000), span(6000, 9000)])
                    .mutes(span(3000, 6000)),
                Participant::new(grace(), 3002)
                    .joins(1200)
                    .leaves(7000)
                    .speaks(Wav::B, 0, &[span(2500, 6500)])
                    .mutes(span(3200, 4000)),
                Participant::new(bob(), 3003)
                    .joins(6500)
                    .speaks(Wav::B, 6000, &[span(7000, 9500)]),
            ],
            ..meeting(erin(), erin(), vec![])
        }],
    );
    add(
        "lobby",
        "an external participant waits in the lobby, then is admitted and speaks",
        Codec::Opus,
        clean,
        vec![meeting(
            alice(),
            alice(),
            vec![Participant::new(frank(), 3002)
                .joins(700)
                .lobby_until(3000)
                .speaks(Wav::B, 0, &[span(1000, 2500), span(3500, 7000)])],
        )],
    );
    add(
        "meeting-ends-by-roster",
        "the meeting's end shows only as a roster update with nobody left (no deleted)",
        Codec::Opus,
        clean,
        vec![Leg {
            end: End::RosterEmpty,
            ..meeting(
                erin(),
                grace(),
                vec![Participant::new(grace(), 3002).speaks(Wav::B, 0, &[span(3500, 7000)])],
            )
        }],
    );
    add(
        "missing-termination",
        "no terminated notification: the media just stops",
        Codec::Opus,
        clean,
        vec![Leg {
            end: End::MediaStops,
            ..p2p(alice(), grace(), Direction::Incoming)
        }],
    );
    add(
        "time-range",
        "dave's calls are recorded only 00:00-06:00 Mon-Fri in Pacific/Auckland",
        Codec::Opus,
        clean,
        vec![Leg {
            expect: Expect::InTimeRange(night_shift_range()),
            ..p2p(dave(), grace(), Direction::Incoming)
        }],
    );
    add(
        "unprofiled-user",
        "policy invites the bot for a user in no recording profile",
        Codec::Opus,
        clean,
        vec![Leg {
            expect: Expect::NotRecorded("user in no recording profile (answered inactive)"),
            ..p2p(mallory(), grace(), Direction::Incoming)
        }],
    );
    out
}

/// Looks scenarios up by name; an unknown name is an error listing the known ones.
pub fn select(names: &[String]) -> Result<Vec<Scenario>, String> {
    let all = catalogue();
    if names.is_empty() {
        return Ok(all);
    }
    names
        .iter()
        .map(|n| {
            all.iter().find(|s| s.name == n).cloned().ok_or_else(|| {
                format!(
                    "unknown scenario {n:?}; known: {}",
                    all.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_unique_and_platform_limits_hold() {
        let all = catalogue();
        let mut names: Vec<_> = all.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
        for s in &all {
            for leg in &s.legs {
                assert!(leg.max_simultaneous_speakers() <= 4, "{}", s.name);
                let mut msis: Vec<u32> = leg.participants.iter().map(|p| p.msi).collect();
                msis.sort_unstable();
                msis.dedup();
                assert_eq!(
                    msis.len(),
                    leg.participants.len(),
                    "{}: MSIs unique",
                    s.name
                );
            }
        }
    }

    #[test]
    fn internal_meeting_has_four_speakers_at_once() {
        let s = select(&["internal-meeting".into()]).unwrap();
        assert_eq!(s[0].legs[0].max_simultaneous_speakers(), 4);
    }

    #[test]
    fn muted_participant_sends_silence_and_lobby_sends_nothing() {
        let s = &select(&["meeting-roster".into()]).unwrap()[0];
        let erin = &s.legs[0].participants[0];
        assert_eq!(erin.frame_at(4000), Some(FrameKind::Silence));
        assert!(matches!(
            erin.frame_at(1000),
            Some(FrameKind::Speech { .. })
        ));
        let l = &select(&["lobby".into()]).unwrap()[0];
        let frank = &l.legs[0].participants[1];
        assert_eq!(frank.frame_at(1500), None);
        assert!(frank.frame_at(4000).is_some());
    }

    #[test]
    fn time_range_crosses_the_date_line() {
        let r = night_shift_range();
        // Monday 01:00 in Auckland (NZDT, UTC+13) is Sunday 12:00 UTC.
        let t = DateTime::parse_from_rfc3339("2026-11-29T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(r.contains(t));
        // Sunday 12:00 UTC + 6 h = Monday 07:00 local: outside.
        assert!(!r.contains(t + chrono::Duration::hours(6)));
        // Friday 12:00 UTC = Saturday 01:00 local: not a week day of the range.
        let fri = DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(!r.contains(fri));
    }

    #[test]
    fn unknown_scenario_is_an_error() {
        assert!(select(&["nope".into()])
            .unwrap_err()
            .contains("internal-p2p-in"));
    }
}
