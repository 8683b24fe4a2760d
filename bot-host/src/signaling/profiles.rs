//! Recording profiles (docs/live.md, "Recording profiles") and the per-call decision.
//!
//! A profile is validated once at load: queue ids, number filters (compiled regexes), time
//! zone, days and hours, and every user's single assignment. [`Profiles::decide`] then only
//! looks things up, so a decision costs microseconds on the webhook path.

use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;

use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::classify::{CallFacts, CallKind, Reach};
use super::interaction::{CallType, Direction};

/// Longest `queue_ids` string accepted (the product's limit).
pub const MAX_QUEUE_IDS_LEN: usize = 2048;

/// Why a profile file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Neither `.toml` nor `.json`.
    #[error("{0}: profile files end in .toml or .json")]
    UnknownFormat(String),
    /// TOML syntax or schema error.
    #[error("profiles (TOML): {0}")]
    Toml(#[from] toml::de::Error),
    /// JSON syntax or schema error.
    #[error("profiles (JSON): {0}")]
    Json(#[from] serde_json::Error),
    /// No profile at all.
    #[error("no recording profile defined")]
    Empty,
    /// Two profiles share a name, or a name is empty.
    #[error("profile name {0:?} is empty or used twice")]
    BadName(String),
    /// Users assigned to more than one profile.
    #[error("users in more than one recording profile: {}", .0.iter().map(|c| format!("{} in {}", c.user, c.profiles.join(", "))).collect::<Vec<_>>().join("; "))]
    Conflict(Vec<UserConflict>),
    /// `queue_ids` longer than [`MAX_QUEUE_IDS_LEN`].
    #[error("profile {profile}: queue_ids is {len} characters, at most {MAX_QUEUE_IDS_LEN}")]
    QueueIdsTooLong {
        /// The profile.
        profile: String,
        /// Its length.
        len: usize,
    },
    /// A number filter item that is neither a number nor a valid regex.
    #[error("profile {profile}: number filter item {item:?}: {reason}")]
    BadNumber {
        /// The profile.
        profile: String,
        /// The item.
        item: String,
        /// What is wrong.
        reason: String,
    },
    /// An unknown IANA time zone.
    #[error("profile {profile}: unknown time zone {zone:?}")]
    BadTimeZone {
        /// The profile.
        profile: String,
        /// The zone.
        zone: String,
    },
    /// An unknown week day.
    #[error("profile {profile}: unknown day {day:?} (Mon..Sun)")]
    BadDay {
        /// The profile.
        profile: String,
        /// The day.
        day: String,
    },
    /// Hours out of range or an empty range.
    #[error(
        "profile {profile}: hours {start}..{end} (0 <= start <= 23, 1 <= end <= 24, start != end)"
    )]
    BadHours {
        /// The profile.
        profile: String,
        /// start_hour.
        start: u32,
        /// end_hour.
        end: u32,
    },
}

/// One user assigned to several profiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserConflict {
    /// The user as written (lower-cased).
    pub user: String,
    /// The profiles naming it.
    pub profiles: Vec<String>,
}

/// The decision for one call, logged and reported by `GET /api/calls/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Record it.
    pub record: bool,
    /// The profile of the policy user, if any.
    pub profile: Option<String>,
    /// Why, in words.
    pub reason: String,
}

/// p2p call-type setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum P2pMode {
    /// Never.
    None,
    /// Calls the user receives.
    Incoming,
    /// Calls the user makes.
    Outgoing,
    /// Both.
    #[default]
    Both,
}

impl P2pMode {
    fn allows(self, d: Direction) -> bool {
        matches!(
            (self, d),
            (P2pMode::Both, _)
                | (P2pMode::Incoming, Direction::Incoming)
                | (P2pMode::Outgoing, Direction::Outgoing)
        )
    }
}

/// Recording notification mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NotificationMode {
    /// Announce the recording.
    #[default]
    Announce,
    /// No notification.
    Silent,
    /// A beep.
    Beep,
}

impl NotificationMode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationMode::Announce => "announce",
            NotificationMode::Silent => "silent",
            NotificationMode::Beep => "beep",
        }
    }
}

/// Allow or block list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterMode {
    /// Record only matches.
    Allow,
    /// Record all but matches.
    Block,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(alias = "profiles")]
    profile: Vec<ProfileSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileSpec {
    name: String,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default = "default_retention")]
    retention_days: u32,
    #[serde(default = "default_storage")]
    storage: String,
    #[serde(default)]
    double_recording: bool,
    #[serde(default)]
    notification: NotificationMode,
    #[serde(default)]
    call_types: CallTypesSpec,
    #[serde(default)]
    received_numbers: Option<NumberFilterSpec>,
    #[serde(default)]
    made_numbers: Option<NumberFilterSpec>,
    #[serde(default)]
    time_range: Option<TimeRangeSpec>,
}

fn default_retention() -> u32 {
    365
}
fn default_storage() -> String {
    "local".into()
}
fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallTypesSpec {
    #[serde(default)]
    internal_p2p: P2pMode,
    #[serde(default)]
    external_p2p: P2pMode,
    #[serde(default)]
    pstn_p2p: P2pMode,
    #[serde(default = "yes")]
    internal_meeting: bool,
    #[serde(default = "yes")]
    external_meeting: bool,
    #[serde(default)]
    queue_ids: Option<String>,
}

impl Default for CallTypesSpec {
    fn default() -> Self {
        CallTypesSpec {
            internal_p2p: P2pMode::Both,
            external_p2p: P2pMode::Both,
            pstn_p2p: P2pMode::Both,
            internal_meeting: true,
            external_meeting: true,
            queue_ids: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NumberFilterSpec {
    mode: FilterMode,
    #[serde(default)]
    list: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeRangeSpec {
    #[serde(default = "utc")]
    time_zone: String,
    #[serde(default)]
    days: Option<Vec<String>>,
    #[serde(default)]
    start_hour: u32,
    #[serde(default = "day_end")]
    end_hour: u32,
}

fn utc() -> String {
    "UTC".into()
}
fn day_end() -> u32 {
    24
}

/// A validated recording profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Unique name.
    pub name: String,
    /// Users (UPN or object id, lower-cased); `*` = every user not named elsewhere.
    pub users: Vec<String>,
    /// Retention.
    pub retention_days: u32,
    /// Storage friendly name.
    pub storage: String,
    /// Pro (paired bots) when true, Essentials when false.
    pub double_recording: bool,
    /// Recording notification mode.
    pub notification: NotificationMode,
    internal_p2p: P2pMode,
    external_p2p: P2pMode,
    pstn_p2p: P2pMode,
    internal_meeting: bool,
    external_meeting: bool,
    /// None = every queue call; Some(empty) = none.
    queue_ids: Option<Vec<String>>,
    received: Option<NumberFilter>,
    made: Option<NumberFilter>,
    time_range: Option<TimeRange>,
}

#[derive(Debug, Clone)]
struct NumberFilter {
    mode: FilterMode,
    numbers: Vec<String>,
    patterns: Vec<Regex>,
    source: String,
}

impl NumberFilter {
    fn parse(profile: &str, spec: &NumberFilterSpec) -> Result<Self, ProfileError> {
        let mut numbers = Vec::new();
        let mut patterns = Vec::new();
        let bad = |item: &str, reason: &str| ProfileError::BadNumber {
            profile: profile.into(),
            item: item.into(),
            reason: reason.into(),
        };
        for item in spec
            .list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            if item.starts_with('+') {
                return Err(bad(item, "numbers are written without '+'"));
            }
            if item.chars().all(|c| c.is_ascii_digit()) {
                numbers.push(item.to_string());
            } else if item.chars().any(|c| "\\.^$*+?()[]{}|".contains(c)) {
                // Anchored so that a pattern is matched against the whole number, whether or
                // not its author wrote ^...$.
                let re = Regex::new(&format!("^(?:{item})$"))
                    .map_err(|e| bad(item, &format!("invalid regular expression: {e}")))?;
                patterns.push(re);
            } else {
                return Err(bad(item, "neither digits nor a regular expression"));
            }
        }
        Ok(NumberFilter {
            mode: spec.mode,
            numbers,
            patterns,
            source: spec.list.clone(),
        })
    }

    fn matches(&self, number: &str) -> bool {
        self.numbers.iter().any(|n| n == number) || self.patterns.iter().any(|r| r.is_match(number))
    }
}

#[derive(Debug, Clone)]
struct TimeRange {
    zone: Tz,
    /// Bit i = weekday with `num_days_from_monday() == i`.
    days: u8,
    start: u32,
    end: u32,
}

impl TimeRange {
    fn parse(profile: &str, spec: &TimeRangeSpec) -> Result<Self, ProfileError> {
        let zone: Tz = spec
            .time_zone
            .parse()
            .map_err(|_| ProfileError::BadTimeZone {
                profile: profile.into(),
                zone: spec.time_zone.clone(),
            })?;
        let days = match &spec.days {
            None => 0x7f,
            Some(list) => {
                let mut bits = 0u8;
                for d in list {
                    let wd: Weekday = d.trim().parse().map_err(|_| ProfileError::BadDay {
                        profile: profile.into(),
                        day: d.clone(),
                    })?;
                    bits |= 1 << wd.num_days_from_monday();
                }
                bits
            }
        };
        let (start, end) = (spec.start_hour, spec.end_hour);
        if start > 23 || !(1..=24).contains(&end) || start == end {
            return Err(ProfileError::BadHours {
                profile: profile.into(),
                start,
                end,
            });
        }
        Ok(TimeRange {
            zone,
            days,
            start,
            end,
        })
    }

    /// Whether `at` is in the range, and the local time it was judged by. A range with
    /// start > end runs over midnight and belongs to the day it starts on.
    fn contains(&self, at: DateTime<Utc>) -> (bool, String) {
        let local = at.with_timezone(&self.zone);
        let hour = local.hour();
        let day_ok = |wd: Weekday| self.days & (1 << wd.num_days_from_monday()) != 0;
        let inside = if self.start < self.end {
            day_ok(local.weekday()) && hour >= self.start && hour < self.end
        } else {
            (hour >= self.start && day_ok(local.weekday()))
                || (hour < self.end && day_ok(local.weekday().pred()))
        };
        (
            inside,
            format!("{} {}", local.format("%a %H:%M"), self.zone.name()),
        )
    }
}

impl Profile {
    fn from_spec(spec: ProfileSpec) -> Result<Self, ProfileError> {
        let name = spec.name.trim().to_string();
        if name.is_empty() {
            return Err(ProfileError::BadName(spec.name));
        }
        let queue_ids = match &spec.call_types.queue_ids {
            None => None,
            Some(s) if s.len() > MAX_QUEUE_IDS_LEN => {
                return Err(ProfileError::QueueIdsTooLong {
                    profile: name,
                    len: s.len(),
                })
            }
            Some(s) => Some(
                s.split(',')
                    .map(|id| id.trim().to_ascii_lowercase())
                    .filter(|id| !id.is_empty())
                    .collect(),
            ),
        };
        let received = spec
            .received_numbers
            .as_ref()
            .map(|f| NumberFilter::parse(&name, f))
            .transpose()?;
        let made = spec
            .made_numbers
            .as_ref()
            .map(|f| NumberFilter::parse(&name, f))
            .transpose()?;
        let time_range = spec
            .time_range
            .as_ref()
            .map(|t| TimeRange::parse(&name, t))
            .transpose()?;
        Ok(Profile {
            users: spec
                .users
                .iter()
                .map(|u| u.trim().to_ascii_lowercase())
                .filter(|u| !u.is_empty())
                .collect(),
            retention_days: spec.retention_days,
            storage: spec.storage,
            double_recording: spec.double_recording,
            notification: spec.notification,
            internal_p2p: spec.call_types.internal_p2p,
            external_p2p: spec.call_types.external_p2p,
            pstn_p2p: spec.call_types.pstn_p2p,
            internal_meeting: spec.call_types.internal_meeting,
            external_meeting: spec.call_types.external_meeting,
            queue_ids,
            received,
            made,
            time_range,
            name,
        })
    }

    /// Whether the call type and direction are recorded, and why.
    fn call_type_rule(&self, facts: &CallFacts) -> (bool, String) {
        if facts.call_type == CallType::QueueCall {
            let id = facts
                .queue
                .as_ref()
                .and_then(|q| q.id.as_deref())
                .unwrap_or("")
                .to_ascii_lowercase();
            return match &self.queue_ids {
                None => (true, format!("queue call via {id} (every queue recorded)")),
                Some(ids) if ids.contains(&id) => {
                    (true, format!("queue call via {id} (in queue_ids)"))
                }
                Some(_) => (false, format!("queue call via {id}, not in queue_ids")),
            };
        }
        match facts.kind {
            CallKind::Meeting => {
                let (on, what) = match facts.reach {
                    Reach::External => (self.external_meeting, "external_meeting"),
                    _ => (self.internal_meeting, "internal_meeting"),
                };
                let verdict = if on { "recorded" } else { "off" };
                (
                    on,
                    format!("{} ({what} {verdict})", facts.call_type.as_str()),
                )
            }
            CallKind::P2p => {
                let (mode, key) = match facts.reach {
                    Reach::Internal => (self.internal_p2p, "internal_p2p"),
                    Reach::External => (self.external_p2p, "external_p2p"),
                    Reach::Pstn => (self.pstn_p2p, "pstn_p2p"),
                };
                let on = mode.allows(facts.direction);
                let mode_s = format!("{mode:?}").to_ascii_lowercase();
                (
                    on,
                    format!(
                        "{} {:?} ({key} = {mode_s})",
                        facts.call_type.as_str(),
                        facts.direction
                    ),
                )
            }
        }
    }

    /// Number filters: PSTN calls only; received for incoming, made for outgoing.
    fn number_rule(&self, facts: &CallFacts) -> Option<(bool, String)> {
        let number = facts.pstn_number.as_deref()?;
        let (filter, which) = match facts.direction {
            Direction::Incoming => (self.received.as_ref()?, "received_numbers"),
            Direction::Outgoing => (self.made.as_ref()?, "made_numbers"),
            Direction::None => return None,
        };
        let hit = filter.matches(number);
        let (ok, verdict) = match (filter.mode, hit) {
            (FilterMode::Allow, true) => (true, "in allow list"),
            (FilterMode::Allow, false) => (false, "not in allow list"),
            (FilterMode::Block, true) => (false, "in block list"),
            (FilterMode::Block, false) => (true, "not in block list"),
        };
        Some((
            ok,
            format!(
                "number {number} {verdict} {which} [{}]",
                filter.source.trim()
            ),
        ))
    }
}

/// The loaded profiles and the user index.
#[derive(Debug, Clone)]
pub struct Profiles {
    profiles: Vec<Profile>,
    by_user: HashMap<String, usize>,
    wildcard: Option<usize>,
}

/// The embedded default: one profile for everyone, every call type, 24/7.
const EMBEDDED_DEFAULT: &str = r#"
[[profile]]
name = "default"
users = ["*"]
retention_days = 365
storage = "local"
double_recording = false
notification = "announce"
"#;

impl Profiles {
    /// The embedded default (docs/live.md): profile `default`, every user, every call type,
    /// 24/7, 365 days, storage `local`, Essentials.
    pub fn embedded_default() -> Self {
        Self::from_toml_str(EMBEDDED_DEFAULT).expect("the embedded default profile is valid")
    }

    /// Loads `path`, TOML or JSON by extension.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("toml") => Self::from_toml_str(&text),
            Some("json") => Self::from_json_str(&text),
            _ => Err(ProfileError::UnknownFormat(path.display().to_string())),
        }
    }

    /// Loads the configured profile file; a file that does not exist means the embedded
    /// default (docs/live.md), any other failure is an error (the caller keeps the profiles in
    /// force). The flag says whether the file was read.
    pub fn load_or_embedded(path: &Path) -> Result<(Self, bool), ProfileError> {
        match Self::load(path) {
            Ok(p) => Ok((p, true)),
            Err(ProfileError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                tracing::info!(path = %path.display(), "no profile file: embedded default profile");
                Ok((Self::embedded_default(), false))
            }
            Err(e) => Err(e),
        }
    }

    /// Parses TOML (`[[profile]]` tables).
    pub fn from_toml_str(text: &str) -> Result<Self, ProfileError> {
        Self::build(toml::from_str(text)?)
    }

    /// Parses JSON (`{"profile":[...]}`; `"profiles"` is accepted too).
    pub fn from_json_str(text: &str) -> Result<Self, ProfileError> {
        Self::build(serde_json::from_str(text)?)
    }

    fn build(spec: FileSpec) -> Result<Self, ProfileError> {
        if spec.profile.is_empty() {
            return Err(ProfileError::Empty);
        }
        let profiles = spec
            .profile
            .into_iter()
            .map(Profile::from_spec)
            .collect::<Result<Vec<_>, _>>()?;
        let mut seen_names = std::collections::HashSet::new();
        for p in &profiles {
            if !seen_names.insert(p.name.to_ascii_lowercase()) {
                return Err(ProfileError::BadName(p.name.clone()));
            }
        }
        // Every user (and `*`) with every profile naming it, in file order, so that the error
        // lists all conflicts at once.
        let mut owners: Vec<(String, Vec<usize>)> = Vec::new();
        let mut pos: HashMap<String, usize> = HashMap::new();
        for (i, p) in profiles.iter().enumerate() {
            for u in &p.users {
                let slot = *pos.entry(u.clone()).or_insert_with(|| {
                    owners.push((u.clone(), Vec::new()));
                    owners.len() - 1
                });
                if !owners[slot].1.contains(&i) {
                    owners[slot].1.push(i);
                }
            }
        }
        let conflicts: Vec<UserConflict> = owners
            .iter()
            .filter(|(_, ps)| ps.len() > 1)
            .map(|(u, ps)| UserConflict {
                user: u.clone(),
                profiles: ps.iter().map(|&i| profiles[i].name.clone()).collect(),
            })
            .collect();
        if !conflicts.is_empty() {
            return Err(ProfileError::Conflict(conflicts));
        }
        let mut by_user = HashMap::new();
        let mut wildcard = None;
        for (u, ps) in owners {
            if u == "*" {
                wildcard = Some(ps[0]);
            } else {
                by_user.insert(u, ps[0]);
            }
        }
        Ok(Profiles {
            profiles,
            by_user,
            wildcard,
        })
    }

    /// The profiles, in file order.
    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    /// A profile by name.
    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }

    /// The profile of a user, by object id or UPN; a user named nowhere falls to the `*`
    /// profile if there is one.
    pub fn profile_for(&self, ids: &[&str]) -> Option<&Profile> {
        ids.iter()
            .filter_map(|id| self.by_user.get(&id.trim().to_ascii_lowercase()))
            .next()
            .or(self.wildcard.as_ref())
            .map(|&i| &self.profiles[i])
    }

    /// Decides whether a call is recorded and under which profile, with the reason.
    pub fn decide(&self, facts: &CallFacts, now: SystemTime) -> Decision {
        let summary = facts.summary();
        let Some(user) = &facts.policy_user else {
            return Decision {
                record: false,
                profile: None,
                reason: format!("{summary}: the invitation names no policy user"),
            };
        };
        let ids: Vec<&str> = [user.id.as_deref(), user.upn.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let Some(p) = self.profile_for(&ids) else {
            return Decision {
                record: false,
                profile: None,
                reason: format!("{summary}: {} is in no recording profile", user.label()),
            };
        };
        let refuse = |why: String| Decision {
            record: false,
            profile: Some(p.name.clone()),
            reason: format!("{summary}: profile {}: {why}", p.name),
        };
        let mut why = Vec::new();
        let (ok, rule) = p.call_type_rule(facts);
        if !ok {
            return refuse(format!("call type not recorded: {rule}"));
        }
        why.push(rule);
        if let Some((ok, rule)) = p.number_rule(facts) {
            if !ok {
                return refuse(rule);
            }
            why.push(rule);
        }
        match &p.time_range {
            Some(tr) => {
                let (inside, local) = tr.contains(DateTime::<Utc>::from(now));
                if !inside {
                    return refuse(format!("outside recording hours at {local}"));
                }
                why.push(format!("within recording hours at {local}"));
            }
            None => why.push("24/7".into()),
        }
        Decision {
            record: true,
            profile: Some(p.name.clone()),
            reason: format!("{summary}: profile {}: {}", p.name, why.join("; ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signaling::interaction::Party;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> SystemTime {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap().into()
    }

    fn p2p(user: &str, call_type: CallType, reach: Reach, dir: Direction) -> CallFacts {
        let other = Party {
            kind: if reach == Reach::Pstn {
                "phone"
            } else {
                "user"
            }
            .into(),
            id: Some("+442071234567".into()),
            number: (reach == Reach::Pstn).then(|| "442071234567".into()),
            ..Party::default()
        };
        CallFacts {
            call_id: "c".into(),
            call_chain_id: None,
            tenant_id: None,
            policy_user: Some(Party {
                kind: "user".into(),
                id: Some(user.into()),
                ..Party::default()
            }),
            policy_tenant: None,
            kind: CallKind::P2p,
            direction: dir,
            pstn_number: other.number.clone(),
            other_side: Some(other),
            reach,
            call_type,
            queue: None,
            on_behalf_of: None,
            transferor: None,
            calling_party: None,
            called_party: None,
            thread_id: None,
            my_participant_id: None,
            paired_recorders: vec![],
            notes: vec![],
        }
    }

    fn pstn(user: &str, dir: Direction, number: &str) -> CallFacts {
        let mut f = p2p(user, CallType::PstnP2p, Reach::Pstn, dir);
        f.pstn_number = Some(number.into());
        f
    }

    const T: &str = r#"
[[profile]]
name = "Traders"
users = ["alice@contoso.example", "8F1C-ID"]
retention_days = 2555
double_recording = true
[profile.call_types]
internal_p2p = "both"
external_p2p = "incoming"
pstn_p2p = "both"
external_meeting = false
queue_ids = "q-1, Q-2"
[profile.received_numbers]
mode = "block"
list = "4420712345678, ^1800\\d+$"
[profile.made_numbers]
mode = "allow"
list = "44.*"

[[profile]]
name = "Night"
users = ["bob@contoso.example"]
[profile.time_range]
time_zone = "Asia/Tokyo"
days = ["Mon"]
start_hour = 8
end_hour = 9
"#;

    fn mon() -> SystemTime {
        at(2026, 3, 2, 12, 0) // a Monday
    }

    #[test]
    fn embedded_default_records_everything() {
        let p = Profiles::embedded_default();
        let f = p2p(
            "anyone",
            CallType::ExternalP2p,
            Reach::External,
            Direction::Outgoing,
        );
        let d = p.decide(&f, mon());
        assert!(d.record, "{}", d.reason);
        assert_eq!(d.profile.as_deref(), Some("default"));
        assert!(d.reason.contains("24/7"), "{}", d.reason);
    }

    #[test]
    fn user_lookup_is_case_insensitive_by_id_or_upn() {
        let p = Profiles::from_toml_str(T).unwrap();
        assert_eq!(p.profile_for(&["8f1c-id"]).unwrap().name, "Traders");
        assert_eq!(
            p.profile_for(&["x", "ALICE@contoso.example"]).unwrap().name,
            "Traders"
        );
        assert!(p.profile_for(&["carol"]).is_none());
        let d = p.decide(
            &p2p(
                "carol",
                CallType::InternalP2p,
                Reach::Internal,
                Direction::Incoming,
            ),
            mon(),
        );
        assert!(!d.record);
        assert!(d.reason.contains("in no recording profile"), "{}", d.reason);
    }

    #[test]
    fn call_type_and_direction_rules() {
        let p = Profiles::from_toml_str(T).unwrap();
        let ext_in = p2p(
            "8f1c-id",
            CallType::ExternalP2p,
            Reach::External,
            Direction::Incoming,
        );
        let ext_out = p2p(
            "8f1c-id",
            CallType::ExternalP2p,
            Reach::External,
            Direction::Outgoing,
        );
        assert!(p.decide(&ext_in, mon()).record);
        let d = p.decide(&ext_out, mon());
        assert!(!d.record);
        assert!(d.reason.contains("external_p2p = incoming"), "{}", d.reason);
        let mut meeting = p2p(
            "8f1c-id",
            CallType::ExternalMeeting,
            Reach::External,
            Direction::None,
        );
        meeting.kind = CallKind::Meeting;
        meeting.pstn_number = None;
        let d = p.decide(&meeting, mon());
        assert!(
            !d.record && d.reason.contains("external_meeting off"),
            "{}",
            d.reason
        );
        meeting.reach = Reach::Internal;
        meeting.call_type = CallType::InternalMeeting;
        assert!(p.decide(&meeting, mon()).record);
    }

    #[test]
    fn number_filters_with_regexes() {
        let p = Profiles::from_toml_str(T).unwrap();
        // Received: block list with a number and an anchored regex.
        assert!(
            !p.decide(
                &pstn("8f1c-id", Direction::Incoming, "4420712345678"),
                mon()
            )
            .record
        );
        assert!(
            !p.decide(&pstn("8f1c-id", Direction::Incoming, "18005551234"), mon())
                .record
        );
        let d = p.decide(
            &pstn("8f1c-id", Direction::Incoming, "4418005551234"),
            mon(),
        );
        assert!(d.record, "regex must match the whole number: {}", d.reason);
        // Made: allow list "44.*".
        assert!(
            p.decide(&pstn("8f1c-id", Direction::Outgoing, "4420000"), mon())
                .record
        );
        let d = p.decide(&pstn("8f1c-id", Direction::Outgoing, "3344000"), mon());
        assert!(
            !d.record && d.reason.contains("not in allow list"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn number_filter_errors() {
        let with = |list: &str| {
            Profiles::from_toml_str(&format!(
                "[[profile]]\nname=\"a\"\nusers=[\"x\"]\n[profile.received_numbers]\nmode=\"allow\"\nlist=\"{list}\"\n"
            ))
        };
        assert!(matches!(with("+4420"), Err(ProfileError::BadNumber { .. })));
        assert!(matches!(with("44(20"), Err(ProfileError::BadNumber { .. })));
        assert!(matches!(with("44 20"), Err(ProfileError::BadNumber { .. })));
        assert!(with("4420, 1800.*").is_ok());
    }

    #[test]
    fn queue_ids() {
        let p = Profiles::from_toml_str(T).unwrap();
        let mut f = p2p(
            "8f1c-id",
            CallType::QueueCall,
            Reach::Internal,
            Direction::Incoming,
        );
        f.queue = Some(Party {
            kind: "applicationInstance".into(),
            id: Some("q-2".into()),
            ..Party::default()
        });
        assert!(p.decide(&f, mon()).record);
        f.queue.as_mut().unwrap().id = Some("q-3".into());
        let d = p.decide(&f, mon());
        assert!(
            !d.record && d.reason.contains("not in queue_ids"),
            "{}",
            d.reason
        );
        // The default profile (no queue_ids key) records every queue.
        assert!(Profiles::embedded_default().decide(&f, mon()).record);
        // An empty queue_ids records none.
        let none = Profiles::from_toml_str(
            "[[profile]]\nname=\"a\"\nusers=[\"*\"]\n[profile.call_types]\nqueue_ids=\"\"\n",
        )
        .unwrap();
        assert!(!none.decide(&f, mon()).record);
    }

    #[test]
    fn queue_ids_length_limit() {
        let mk = |n: usize| {
            let ids = "a".repeat(n);
            Profiles::from_toml_str(&format!(
                "[[profile]]\nname=\"a\"\nusers=[\"x\"]\n[profile.call_types]\nqueue_ids=\"{ids}\"\n"
            ))
        };
        assert!(mk(2048).is_ok());
        assert!(matches!(
            mk(2049),
            Err(ProfileError::QueueIdsTooLong { len: 2049, .. })
        ));
    }

    #[test]
    fn time_range_across_a_time_zone_boundary() {
        let p = Profiles::from_toml_str(T).unwrap();
        let f = p2p(
            "bob@contoso.example",
            CallType::InternalP2p,
            Reach::Internal,
            Direction::Incoming,
        );
        // Sunday 23:30 UTC is Monday 08:30 in Tokyo: inside Mon 8-9.
        let d = p.decide(&f, at(2026, 3, 1, 23, 30));
        assert!(d.record, "{}", d.reason);
        assert!(d.reason.contains("Mon 08:30 Asia/Tokyo"), "{}", d.reason);
        // Monday 08:30 UTC is Monday 17:30 in Tokyo: outside.
        let d = p.decide(&f, at(2026, 3, 2, 8, 30));
        assert!(
            !d.record && d.reason.contains("outside recording hours"),
            "{}",
            d.reason
        );
        // [start, end): 09:00 Tokyo is out.
        assert!(!p.decide(&f, at(2026, 3, 2, 0, 0)).record);
        assert!(p.decide(&f, at(2026, 3, 1, 23, 59)).record);
    }

    #[test]
    fn time_range_across_dst() {
        let p = Profiles::from_toml_str(
            "[[profile]]\nname=\"uk\"\nusers=[\"*\"]\n[profile.time_range]\ntime_zone=\"Europe/London\"\n\
             days=[\"Mon\",\"Tue\",\"Wed\",\"Thu\",\"Fri\"]\nstart_hour=7\nend_hour=19\n",
        )
        .unwrap();
        let f = p2p(
            "x",
            CallType::InternalP2p,
            Reach::Internal,
            Direction::Incoming,
        );
        // 06:30 UTC: 06:30 GMT on Monday 23 March (out), 07:30 BST on Monday 30 March (in),
        // clocks having gone forward on Sunday 29 March 2026.
        assert!(!p.decide(&f, at(2026, 3, 23, 6, 30)).record);
        assert!(p.decide(&f, at(2026, 3, 30, 6, 30)).record);
        // 18:30 UTC: 18:30 GMT in (before), 19:30 BST out (after).
        assert!(p.decide(&f, at(2026, 3, 23, 18, 30)).record);
        assert!(!p.decide(&f, at(2026, 3, 30, 18, 30)).record);
        // Saturday is off.
        assert!(!p.decide(&f, at(2026, 3, 28, 12, 0)).record);
    }

    #[test]
    fn overnight_range_belongs_to_its_start_day() {
        let p = Profiles::from_toml_str(
            "[[profile]]\nname=\"n\"\nusers=[\"*\"]\n[profile.time_range]\ntime_zone=\"UTC\"\n\
             days=[\"Fri\"]\nstart_hour=22\nend_hour=6\n",
        )
        .unwrap();
        let f = p2p(
            "x",
            CallType::InternalP2p,
            Reach::Internal,
            Direction::Incoming,
        );
        assert!(p.decide(&f, at(2026, 3, 6, 23, 0)).record); // Fri 23:00
        assert!(p.decide(&f, at(2026, 3, 7, 5, 0)).record); // Sat 05:00
        assert!(!p.decide(&f, at(2026, 3, 7, 23, 0)).record); // Sat 23:00
        assert!(!p.decide(&f, at(2026, 3, 6, 5, 0)).record); // Fri 05:00
    }

    #[test]
    fn bad_time_ranges() {
        let with = |tr: &str| {
            Profiles::from_toml_str(&format!(
                "[[profile]]\nname=\"a\"\nusers=[\"x\"]\n[profile.time_range]\n{tr}\n"
            ))
        };
        assert!(matches!(
            with("time_zone=\"Mars/Olympus\""),
            Err(ProfileError::BadTimeZone { .. })
        ));
        assert!(matches!(
            with("days=[\"Funday\"]"),
            Err(ProfileError::BadDay { .. })
        ));
        assert!(matches!(
            with("start_hour=5\nend_hour=5"),
            Err(ProfileError::BadHours { .. })
        ));
        assert!(matches!(
            with("end_hour=25"),
            Err(ProfileError::BadHours { .. })
        ));
        assert!(with("days=[\"monday\",\"TUE\"]").is_ok());
    }

    #[test]
    fn conflicting_assignment_lists_users_and_profiles() {
        let err = Profiles::from_toml_str(
            "[[profile]]\nname=\"A\"\nusers=[\"alice@x\",\"bob@x\",\"carol@x\"]\n\
             [[profile]]\nname=\"B\"\nusers=[\"BOB@x\"]\n\
             [[profile]]\nname=\"C\"\nusers=[\"bob@x\",\"alice@x\"]\n",
        )
        .unwrap_err();
        let ProfileError::Conflict(c) = &err else {
            panic!("{err}")
        };
        assert_eq!(
            c,
            &vec![
                UserConflict {
                    user: "alice@x".into(),
                    profiles: vec!["A".into(), "C".into()]
                },
                UserConflict {
                    user: "bob@x".into(),
                    profiles: vec!["A".into(), "B".into(), "C".into()]
                },
            ]
        );
        let msg = err.to_string();
        assert!(msg.contains("bob@x in A, B, C"), "{msg}");
        // Two wildcard profiles conflict too.
        assert!(matches!(
            Profiles::from_toml_str(
                "[[profile]]\nname=\"A\"\nusers=[\"*\"]\n[[profile]]\nname=\"B\"\nusers=[\"*\"]\n"
            ),
            Err(ProfileError::Conflict(_))
        ));
    }

    #[test]
    fn json_and_file_loading() {
        let json = r#"{"profile":[{"name":"J","users":["*"],"call_types":{"pstn_p2p":"none"},
            "time_range":{"time_zone":"America/New_York"}}]}"#;
        let p = Profiles::from_json_str(json).unwrap();
        assert!(!p.decide(&pstn("x", Direction::Incoming, "1"), mon()).record);
        let dir = std::env::temp_dir().join(format!("profiles-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("p.json"), json).unwrap();
        std::fs::write(dir.join("p.toml"), T).unwrap();
        std::fs::write(dir.join("p.yaml"), T).unwrap();
        assert_eq!(
            Profiles::load(&dir.join("p.json")).unwrap().profiles()[0].name,
            "J"
        );
        assert_eq!(
            Profiles::load(&dir.join("p.toml"))
                .unwrap()
                .profiles()
                .len(),
            2
        );
        assert!(matches!(
            Profiles::load(&dir.join("p.yaml")),
            Err(ProfileError::UnknownFormat(_))
        ));
        assert!(matches!(
            Profiles::load(&dir.join("absent.toml")),
            Err(ProfileError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn schema_errors() {
        assert!(matches!(
            Profiles::from_toml_str("[[profile]]\nname=\"a\"\nusrs=[]\n"),
            Err(ProfileError::Toml(_))
        ));
        assert!(matches!(
            Profiles::from_toml_str("profile = []"),
            Err(ProfileError::Empty)
        ));
        assert!(matches!(
            Profiles::from_toml_str("[[profile]]\nname=\"a\"\n[[profile]]\nname=\"A\"\n"),
            Err(ProfileError::BadName(_))
        ));
        assert!(matches!(
            Profiles::from_json_str("{"),
            Err(ProfileError::Json(_))
        ));
    }
}
