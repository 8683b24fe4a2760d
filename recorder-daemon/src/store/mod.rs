//! The metadata store behind a trait, so that PostgreSQL can follow SQLite (DESIGN.md,
//! "Defaults and scale"). Methods are synchronous: the HTTP layer calls them on the blocking
//! pool. Every query is parameterised; text from a request never reaches SQL text.

pub mod activity;
#[cfg(test)]
mod conformance;
pub mod postgres;
pub mod retention;
pub mod schema;
pub mod sqlite;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEntry, AuditQuery, NewAudit};
use crate::model::{
    CallType, Direction, InteractionDetail, InteractionSummary, LegUpdate, MediaStatus, Note,
    ReleaseCause, Tag,
};
use crate::rbac::{AccessProfile, Scope};

/// What went wrong in the store. `Db` is the only one that is not the caller's fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such item (or not visible to the caller).
    #[error("{0} not found")]
    NotFound(String),
    /// A uniqueness or state conflict.
    #[error("{0}")]
    Conflict(String),
    /// A value the store refuses.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error("database: {0}")]
    Db(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

impl From<::postgres::Error> for StoreError {
    fn from(e: ::postgres::Error) -> Self {
        // The client's own text for a server error is only "db error".
        StoreError::Db(match e.as_db_error() {
            Some(d) => format!("{} ({})", d.message(), d.code().code()),
            None => e.to_string(),
        })
    }
}

/// The store `cfg` names: PostgreSQL when `database_url` is set, else SQLite in the data
/// directory.
pub fn open(cfg: &crate::config::Config) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    use anyhow::Context;
    if let Some(url) = &cfg.database_url {
        let s = postgres::PgStore::connect(url).context("connecting to PostgreSQL")?;
        if !s.has_trigram_indexes() {
            eprintln!("store: pg_trgm is not available; party and participant searches scan");
        }
        return Ok(std::sync::Arc::new(s));
    }
    let s = sqlite::SqliteStore::open(&cfg.db_path())
        .with_context(|| format!("opening {}", cfg.db_path().display()))?;
    Ok(std::sync::Arc::new(s))
}

/// Shorthand.
pub type StoreResult<T> = Result<T, StoreError>;

/// Who does something, for notes and saved searches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// Object id.
    pub oid: String,
    /// UPN.
    pub upn: String,
}

/// The result of posting one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpsertOutcome {
    /// The interaction the leg belongs to.
    pub interaction_id: i64,
    /// A new interaction was created.
    pub created_interaction: bool,
    /// The leg (recording id) was new.
    pub created_leg: bool,
}

/// Columns a search may sort on (API name -> SQL column, see `sqlite::SORT_COLUMNS`).
pub const DEFAULT_SORT: &str = "startTime";

/// A search over interactions: every filter optional and combinable (AND between filters,
/// OR within a list-valued filter).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Media status in.
    pub media_status: Vec<MediaStatus>,
    /// A target user is one of these (object id or UPN).
    pub users: Vec<String>,
    /// A target user is a member of one of these groups.
    pub groups: Vec<String>,
    /// Start time at or after.
    pub from: Option<DateTime<Utc>>,
    /// Start time before.
    pub to: Option<DateTime<Utc>>,
    /// Start time of day (UTC, `HH:MM`) at or after.
    pub time_from: Option<String>,
    /// Start time of day (UTC, `HH:MM`) before.
    pub time_to: Option<String>,
    /// Direction in.
    pub direction: Vec<Direction>,
    /// Carries one of these tags (names).
    pub tags: Vec<String>,
    /// Called party rule (`732`, `732*`, `*Bill`).
    pub called: Option<String>,
    /// Calling party rule.
    pub calling: Option<String>,
    /// Answering party rule.
    pub answered: Option<String>,
    /// A participant whose name, UPN or number contains this.
    pub participant: Option<String>,
    /// Call type in.
    pub call_type: Vec<CallType>,
    /// Release cause in.
    pub release_cause: Vec<ReleaseCause>,
    /// A note holds all these words (whole words).
    pub notes: Option<String>,
    /// Only these interactions (a selection).
    pub ids: Vec<i64>,
    /// Sort column (API name).
    pub sort: String,
    /// Descending order.
    pub descending: bool,
    /// 1-based page.
    pub page: u32,
    /// Rows per page.
    pub page_size: u32,
}

/// An interaction search counts its matches up to this many and no further: counting every
/// match of a broad search (a common word in the notes) costs more than finding its first
/// page. Beyond it the total is a lower bound ([`Page::total_is_lower_bound`]).
pub const TOTAL_CAP: u64 = 1_000;

/// One page of results.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// Matching rows in all, or at least that many when `total_is_lower_bound`.
    pub total: u64,
    /// `total` is a lower bound: the count stopped at [`TOTAL_CAP`] (or at the rows up to this
    /// page, when deeper). Only interaction searches stop counting.
    pub total_is_lower_bound: bool,
    /// This page (1-based).
    pub page: u32,
    /// Page size.
    pub page_size: u32,
    /// The rows.
    pub items: Vec<T>,
}

/// The total of an interaction search's page from `counted`, the matches counted with the
/// count stopped after `TOTAL_CAP + 1`, the page's `offset` and its number of `items`:
/// `(total, total_is_lower_bound)`. A short page beyond the cap tells the exact total.
pub(crate) fn capped_total(counted: u64, offset: i64, items: usize, size: u32) -> (u64, bool) {
    if counted <= TOTAL_CAP {
        return (counted, false);
    }
    if items == 0 {
        // Past the end: the offset says nothing about how many rows there are.
        return (TOTAL_CAP, true);
    }
    let seen = offset.max(0) as u64 + items as u64;
    if items < size as usize {
        return (seen, false);
    }
    (seen.max(TOTAL_CAP), true)
}

/// A directory import shaped like Entra ID's `/users` and `/groups/{id}/members`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectoryImport {
    /// Users.
    #[serde(default)]
    pub users: Vec<DirectoryUser>,
    /// Groups with their members.
    #[serde(default)]
    pub groups: Vec<DirectoryGroup>,
}

/// An Entra-like user.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectoryUser {
    /// Object id.
    pub id: String,
    /// UPN.
    pub user_principal_name: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Recording profile name.
    #[serde(default)]
    pub recording_profile: Option<String>,
}

/// An Entra-like group.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectoryGroup {
    /// Object id.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Members (`{"@odata.type": "#microsoft.graph.user", "id": ...}`).
    #[serde(default)]
    pub members: Vec<DirectoryMember>,
}

/// A group member reference.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryMember {
    /// Object id.
    pub id: String,
    /// Graph type: accepted so that a Graph `members` export imports as it is; not used.
    #[allow(dead_code)]
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
}

/// A user as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Object id.
    pub oid: String,
    /// UPN.
    pub upn: String,
    /// Display name.
    pub display_name: String,
    /// Group ids.
    pub groups: Vec<String>,
    /// Recording profile.
    pub recording_profile: Option<String>,
    /// On legal hold.
    pub legal_hold: bool,
}

/// A saved search of one user: a name and the query string of `GET /interactions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedSearch {
    /// Id.
    pub id: i64,
    /// Name, unique per user.
    pub name: String,
    /// The search's query string.
    pub query: String,
    /// Created.
    pub created_at: String,
}

/// A recording profile as the store keeps it: bot-host's profile object (docs/live.md,
/// "Recording profiles"), with who changed it last.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingProfileRow {
    /// The profile's name (unique, case-insensitive).
    pub name: String,
    /// The profile object, in bot-host's profile file format.
    pub profile: serde_json::Value,
    /// Last change.
    pub updated_at: String,
    /// UPN of who made it.
    pub updated_by: String,
}

/// What a deletion removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeletionScope {
    /// The interaction's metadata and its media.
    MetadataAndMedia,
    /// The media only; the metadata stays (media status Deleted).
    MediaOnly,
}

impl DeletionScope {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionScope::MetadataAndMedia => "metadataAndMedia",
            DeletionScope::MediaOnly => "mediaOnly",
        }
    }
}

/// A recorded deletion request, executed by the next retention cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletionRequest {
    /// Id.
    pub id: i64,
    /// The interaction.
    pub interaction_id: i64,
    /// What goes.
    pub scope: DeletionScope,
    /// Who authorised it (free text, e.g. the data protection officer).
    pub authorized_by: String,
    /// Why.
    pub note: String,
    /// Who asked (UPN).
    pub requested_by: String,
    /// When.
    pub requested_at: String,
}

/// One change of a user's legal hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldEvent {
    /// The user's object id.
    pub oid: String,
    /// Put on hold (`true`) or released.
    pub on: bool,
    /// When.
    pub at: DateTime<Utc>,
    /// Who (UPN, or `migration` for holds that predate the history).
    pub by: String,
}

/// Position of the retention cycle's walk over expired interactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryCursor {
    /// The stored expiration (RFC 3339, as kept).
    pub expiration: String,
    /// The interaction.
    pub id: i64,
}

/// Where one leg's media lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegMedia {
    /// The recording id.
    pub recording_id: String,
    /// The storage's friendly name from the leg's metadata (empty when bot-host sent none).
    pub storage: String,
    /// The media path: the one the uploader recorded, else the conventional
    /// `<yyyy>/<mm>/<dd>/<recording id>` from the leg's start.
    pub media_path: String,
    /// The leg's media status.
    pub media_status: MediaStatus,
}

impl LegMedia {
    /// From a `legs` row: recording id, media status, media path and the posted JSON body
    /// (both backends store legs alike).
    pub fn from_row(
        recording_id: String,
        status: &str,
        path: Option<String>,
        body: &str,
    ) -> StoreResult<Self> {
        let leg: LegUpdate =
            serde_json::from_str(body).map_err(|e| StoreError::Db(e.to_string()))?;
        Ok(LegMedia {
            media_path: path
                .unwrap_or_else(|| crate::storage::media_path(&leg.start_time, &recording_id)),
            recording_id,
            storage: leg.storage,
            media_status: MediaStatus::parse(status).unwrap_or(MediaStatus::Unavailable),
        })
    }
}

/// A recorded user of an interaction with their legal hold state and history (also for users
/// no longer in the directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHold {
    /// Object id (from the directory when the user is known by UPN only).
    pub oid: String,
    /// UPN.
    pub upn: String,
    /// On hold now.
    pub on_hold: bool,
    /// Hold history, oldest first.
    pub events: Vec<HoldEvent>,
}

/// What the retention cycle knows about one interaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionItem {
    /// The interaction.
    pub id: i64,
    /// Call start.
    pub start_time: DateTime<Utc>,
    /// Normal expiration (the longest among its legs), `None`: kept without limit.
    pub expiration: Option<DateTime<Utc>>,
    /// Aggregate media status.
    pub media_status: MediaStatus,
    /// Its legs' media.
    pub legs: Vec<LegMedia>,
    /// Its recorded users.
    pub targets: Vec<TargetHold>,
}

/// A retention decision applied to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionChange {
    /// The media is gone from storage: media status `Deleted` on the interaction and its legs;
    /// the deletion request, if any, is marked executed.
    MediaDeleted {
        /// The executed request.
        request: Option<i64>,
    },
    /// The media is gone and the interaction's rows go too (legs, targets, participants,
    /// tags, notes, its deletion requests, its party search row).
    InteractionDeleted,
}

/// `GET /api/v1/users/{oid}/export`: a user and the references of their data.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserExport {
    /// The directory entry.
    pub user: User,
    /// Legal hold history.
    pub legal_hold_events: Vec<HoldEvent>,
    /// The calls the user was recorded in.
    pub interactions: Vec<InteractionRef>,
    /// Notes the user wrote: (interaction id, note id).
    pub notes: Vec<NoteRef>,
    /// The user's saved searches.
    pub saved_searches: Vec<SavedSearch>,
}

/// A reference to a call in a user export.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InteractionRef {
    /// Interaction id.
    pub id: i64,
    /// Start time.
    pub start_time: String,
    /// Media status.
    pub media_status: String,
    /// Expiration.
    pub expiration: Option<String>,
    /// The recordings (legs) and where their media lives.
    pub recordings: Vec<String>,
}

/// A reference to a note in a user export.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NoteRef {
    /// Interaction id.
    pub interaction_id: i64,
    /// Note id.
    pub note_id: i64,
    /// When written.
    pub created_at: String,
}

/// The outcome of a leg merge, recorded by [`Store::merge_finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The merged recording is stored.
    Done {
        /// The storage holding it.
        storage: String,
        /// Its media path.
        media_path: String,
        /// When it was stored.
        at: DateTime<Utc>,
    },
    /// The legs cannot be merged; not retried.
    Failed {
        /// Why.
        error: String,
    },
}

/// The metadata store.
pub trait Store: Send + Sync {
    /// Creates or updates the leg `leg.recording_id`, attaching it to its interaction.
    fn upsert_leg(&self, leg: &LegUpdate) -> StoreResult<UpsertOutcome>;
    /// Upserts several legs in one transaction, all or nothing (bulk loads; fewer commits).
    fn upsert_legs(&self, legs: &[LegUpdate]) -> StoreResult<Vec<UpsertOutcome>>;
    /// Searches within `scope`.
    fn search(&self, q: &SearchQuery, scope: &Scope) -> StoreResult<Page<InteractionSummary>>;
    /// One interaction, `None` when absent or outside `scope`.
    fn get(&self, id: i64, scope: &Scope) -> StoreResult<Option<InteractionDetail>>;

    /// Records a deletion request for a visible interaction. Refused (`Conflict`) while one of
    /// its recorded users is on legal hold or a request is already pending.
    fn request_deletion(
        &self,
        id: i64,
        scope: DeletionScope,
        authorized_by: &str,
        note: &str,
        by: &Actor,
        visible_to: &Scope,
    ) -> StoreResult<DeletionRequest>;

    /// Every tag.
    fn tags(&self) -> StoreResult<Vec<Tag>>;
    /// Creates a tag (unique name).
    fn create_tag(&self, name: &str, description: &str) -> StoreResult<Tag>;
    /// Renames or redescribes a tag.
    fn update_tag(&self, id: i64, name: &str, description: &str) -> StoreResult<Tag>;
    /// Deletes a tag (and its assignments).
    fn delete_tag(&self, id: i64) -> StoreResult<()>;
    /// Replaces the tags of every interaction of `ids` by `tag_ids`; all or nothing: an
    /// interaction outside `scope` or an unknown tag changes nothing.
    fn set_tags(&self, ids: &[i64], tag_ids: &[i64], scope: &Scope) -> StoreResult<()>;

    /// Adds a note to a visible interaction.
    fn add_note(&self, id: i64, author: &Actor, text: &str, scope: &Scope) -> StoreResult<Note>;
    /// A note of a visible interaction.
    fn note(&self, id: i64, note_id: i64, scope: &Scope) -> StoreResult<Option<Note>>;
    /// Deletes a note.
    fn delete_note(&self, id: i64, note_id: i64) -> StoreResult<()>;

    /// Replaces the directory's users and groups by `d` (users missing from it are kept, with
    /// no groups, because their calls stay until their retention ends).
    fn import_directory(&self, d: &DirectoryImport) -> StoreResult<(usize, usize)>;
    /// Every user.
    fn users(&self) -> StoreResult<Vec<User>>;
    /// The groups of a user (directory membership).
    fn user_groups(&self, oid: &str) -> StoreResult<Vec<String>>;
    /// Object ids and UPNs of the members of `groups`.
    fn group_members(&self, groups: &[String]) -> StoreResult<(Vec<String>, Vec<String>)>;
    /// Sets a user's legal hold and records the change (who, when) in the hold history the
    /// retention rule reads. Setting the state a user already has records nothing.
    fn set_legal_hold(&self, oid: &str, on: bool, by: &str, at: DateTime<Utc>) -> StoreResult<()>;
    /// Removes a user from the directory (groups, access through groups). Their calls and
    /// hold history stay: calls are kept until their retention ends. `NotFound` when unknown;
    /// `Conflict` while the user is on legal hold (releasing the hold is a deliberate step).
    fn delete_user(&self, oid: &str) -> StoreResult<()>;
    /// Everything the store holds about a user: directory entry, hold history, and references
    /// (ids, times, media status, expiration) of the calls they were recorded in.
    fn export_user(&self, oid: &str) -> StoreResult<UserExport>;

    /// Pending deletion requests with an id above `after`, oldest first, at most `limit`.
    fn pending_deletions(&self, after: i64, limit: u32) -> StoreResult<Vec<DeletionRequest>>;
    /// Interactions whose stored expiration is at or before `now`, after the cursor
    /// `(expiration, id)`, in that order, at most `limit`. Those whose media is already deleted
    /// are included only with `with_deleted_media` (metadata deletion on expiry).
    fn expired(
        &self,
        now: DateTime<Utc>,
        after: Option<&ExpiryCursor>,
        limit: u32,
        with_deleted_media: bool,
    ) -> StoreResult<Vec<ExpiryCursor>>;
    /// What the retention cycle needs to decide about one interaction; `None` when gone.
    fn retention_item(&self, id: i64) -> StoreResult<Option<RetentionItem>>;
    /// Applies a retention decision and appends its audit entry in the same transaction, so a
    /// deletion is never done unaudited nor audited undone.
    fn retention_apply(
        &self,
        id: i64,
        change: RetentionChange,
        audit: &NewAudit,
    ) -> StoreResult<AuditEntry>;

    /// Interactions whose leg merge is pending (both legs Available, media not deleted), ids
    /// above `after` in ascending order, at most `limit`. The store sets `pending` itself when
    /// an update makes both legs of an interaction Available and no merge was recorded yet.
    fn merge_pending(&self, after: i64, limit: u32) -> StoreResult<Vec<i64>>;
    /// Records the outcome of the merge of a pending interaction. `Ok(false)`: nothing was
    /// recorded, because the interaction is gone, its media was deleted meanwhile or its merge
    /// is no longer pending (the caller then removes what it stored).
    fn merge_finish(&self, id: i64, outcome: &MergeOutcome) -> StoreResult<bool>;

    /// Every access profile.
    fn access_profiles(&self) -> StoreResult<Vec<AccessProfile>>;
    /// Creates (`id == 0`) or replaces an access profile.
    fn put_access_profile(&self, p: &AccessProfile) -> StoreResult<AccessProfile>;
    /// Deletes an access profile.
    fn delete_access_profile(&self, id: i64) -> StoreResult<()>;

    /// The interaction and media status of the leg `recording_id`, if the store has it (the
    /// reconciler's question).
    fn leg_status(&self, recording_id: &str) -> StoreResult<Option<(i64, MediaStatus)>>;

    /// Every recording profile, by name.
    fn recording_profiles(&self) -> StoreResult<Vec<RecordingProfileRow>>;
    /// Replaces the whole set of recording profiles in one transaction (the caller has
    /// checked the set as a whole: names, user conflicts).
    fn replace_recording_profiles(&self, set: &[RecordingProfileRow]) -> StoreResult<()>;

    /// A user's saved searches.
    fn saved_searches(&self, owner: &str) -> StoreResult<Vec<SavedSearch>>;
    /// Saves a search.
    fn save_search(&self, owner: &str, name: &str, query: &str) -> StoreResult<SavedSearch>;
    /// Deletes one of the owner's saved searches.
    fn delete_saved_search(&self, owner: &str, id: i64) -> StoreResult<()>;

    /// Appends to the audit trail (chained to the previous entry).
    fn audit_append(&self, e: &NewAudit) -> StoreResult<AuditEntry>;
    /// Searches the audit trail.
    fn audit_search(&self, q: &AuditQuery) -> StoreResult<Page<AuditEntry>>;
    /// Every audit entry in order, for verification.
    fn audit_all(&self) -> StoreResult<Vec<AuditEntry>>;

    /// Raises an alarm unless one of that name and source is active: `Some` when raised now
    /// (and logged in the system activity log), `None` when it already was.
    fn alarm_raise(&self, a: &activity::NewAlarm) -> StoreResult<Option<activity::Alarm>>;
    /// Clears the active alarm of that name and source: `Some` when one was active.
    fn alarm_clear(&self, name: &str, source: &str) -> StoreResult<Option<activity::Alarm>>;
    /// The active alarms, oldest first.
    fn alarms_active(&self) -> StoreResult<Vec<activity::Alarm>>;
    /// Appends an event to the system activity log.
    fn activity_append(&self, kind: &str, source: &str, text: &str) -> StoreResult<()>;
    /// The system activity log, newest first.
    fn activity(&self, page: u32, page_size: u32) -> StoreResult<Page<activity::Activity>>;
}
