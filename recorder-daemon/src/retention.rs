//! The retention cycle (docs/retention.md): executes pending deletion requests, deletes the
//! media (and, if configured, the metadata) of interactions past their expiration, and keeps
//! what legal hold protects. `now` is an argument, so the whole rule is testable without
//! waiting; `serve` calls [`Retention::run_cycle`] on a timer and `POST /api/v1/retention/run`
//! and `recorder-daemon retention run-once` call it on demand.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::{advance_anchor, NewAudit};
use crate::model::{fmt_time, MediaStatus};
use crate::storage::Storages;
use crate::store::{
    DeletionRequest, DeletionScope, ExpiryCursor, HoldEvent, RetentionChange, RetentionItem, Store,
    StoreError, TargetHold,
};

/// Why a cycle stopped. Storage failures are not errors of the cycle: they are counted in the
/// report and the item waits for the next cycle.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// The store failed (the cycle stops; the next one starts over).
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A blocking task could not be joined.
    #[error("store task: {0}")]
    Task(String),
    /// The audit anchor could not be written.
    #[error("audit anchor: {0}")]
    Anchor(#[from] std::io::Error),
}

/// The `[retention]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Time between cycles (`90s`, `15m`, `24h`, `7d`). Default daily.
    pub interval: String,
    /// Time of day (UTC, `HH:MM`) of the first cycle; later ones follow every `interval`.
    /// Without it the first cycle runs at start-up.
    pub time_of_day: Option<String>,
    /// Rows read per store query and so the most items one query holds in memory.
    pub batch_size: u32,
    /// Expiry deletes the interaction's metadata as well as its media (default: metadata kept,
    /// media status `Deleted`).
    pub delete_metadata_on_expiry: bool,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            interval: "24h".into(),
            time_of_day: None,
            batch_size: 500,
            delete_metadata_on_expiry: false,
        }
    }
}

impl RetentionConfig {
    /// The interval and time of day, checked.
    pub fn schedule(&self) -> Result<Schedule, String> {
        let interval = crate::auth::parse_duration(&self.interval)
            .map_err(|e| format!("retention.interval: {e}"))?;
        if interval < StdDuration::from_secs(1) {
            return Err("retention.interval must be at least 1s".into());
        }
        let time_of_day = self
            .time_of_day
            .as_deref()
            .map(|t| {
                NaiveTime::parse_from_str(t, "%H:%M")
                    .map_err(|_| format!("retention.time_of_day {t:?} is not HH:MM"))
            })
            .transpose()?;
        if self.batch_size == 0 || self.batch_size > 100_000 {
            return Err("retention.batch_size must be 1..100000".into());
        }
        Ok(Schedule {
            interval: Duration::from_std(interval).map_err(|e| e.to_string())?,
            time_of_day,
        })
    }
}

/// When cycles run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Between cycles.
    pub interval: Duration,
    /// First cycle at this time of day (UTC).
    pub time_of_day: Option<NaiveTime>,
}

impl Schedule {
    /// The first cycle after start-up at `now`.
    pub fn first(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self.time_of_day {
            None => now,
            Some(t) => {
                let today = now.date_naive().and_time(t).and_utc();
                if today >= now {
                    today
                } else {
                    today + Duration::days(1)
                }
            }
        }
    }
}

/// What one cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CycleReport {
    /// The cycle's `now`.
    pub now: String,
    /// Deletion requests executed.
    pub requests_executed: u64,
    /// Deletion requests left pending because a recorded user is on legal hold.
    pub requests_on_hold: u64,
    /// Interactions whose media was deleted at expiry (metadata kept).
    pub expired_media_deleted: u64,
    /// Interactions deleted entirely at expiry (`delete_metadata_on_expiry`).
    pub expired_deleted: u64,
    /// Expired interactions kept because a recorded user is on legal hold now.
    pub kept_on_hold: u64,
    /// Expired interactions kept because a past legal hold moved their expiry later.
    pub kept_after_hold: u64,
    /// Items left for a later cycle because a leg is still recording or not yet uploaded.
    pub deferred: u64,
    /// Items left for the next cycle because a storage failed (nothing marked).
    pub storage_failures: u64,
    /// Objects deleted from storage.
    pub objects_deleted: u64,
    /// The first problems met (at most 50), for the operator.
    pub problems: Vec<String>,
}

impl CycleReport {
    fn problem(&mut self, p: String) {
        eprintln!("recorder-daemon: retention: {p}");
        if self.problems.len() < 50 {
            self.problems.push(p);
        }
    }
}

/// When an interaction may go under the legal hold rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// From this instant.
    At(DateTime<Utc>),
    /// Not while a hold that began before the expiry is still on.
    Held,
}

/// The hold intervals `[on, off)` of the targets, merged; `None` as end: still on.
fn hold_intervals(targets: &[TargetHold]) -> Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    let mut v: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = Vec::new();
    for t in targets {
        let mut open: Option<DateTime<Utc>> = None;
        let mut events: Vec<&HoldEvent> = t.events.iter().collect();
        events.sort_by_key(|e| e.at);
        for e in events {
            match (e.on, open) {
                (true, None) => open = Some(e.at),
                (false, Some(a)) => {
                    v.push((a, Some(e.at)));
                    open = None;
                }
                _ => {}
            }
        }
        if let Some(a) = open {
            v.push((a, None));
        } else if t.on_hold {
            // On hold with no history of it: the hold is taken as having always been on.
            v.push((DateTime::<Utc>::MIN_UTC, None));
        }
    }
    v.sort_by_key(|(a, _)| *a);
    let mut merged: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = Vec::new();
    for (a, b) in v {
        match merged.last_mut() {
            Some((_, end)) if end.is_none_or(|e| a <= e) => {
                *end = match (*end, b) {
                    (Some(x), Some(y)) => Some(x.max(y)),
                    _ => None,
                };
            }
            _ => merged.push((a, b)),
        }
    }
    merged
}

/// The legal hold rule: the retention clock of a call stops while one of its recorded users is
/// on hold. A call started at `start` with normal expiration `expiration` has a retention of
/// `expiration - start`; it expires once that much time has passed outside holds since the
/// start. A hold that begins after the normal expiration changes nothing.
pub fn effective_expiry(
    start: DateTime<Utc>,
    expiration: DateTime<Utc>,
    targets: &[TargetHold],
) -> Expiry {
    let mut t = start;
    let mut remaining = (expiration - start).max(Duration::zero());
    for (a, b) in hold_intervals(targets) {
        if b.is_some_and(|b| b <= t) {
            continue;
        }
        let a = a.max(t);
        if t + remaining <= a {
            return Expiry::At(t + remaining);
        }
        remaining -= a - t;
        match b {
            None => return Expiry::Held,
            Some(b) => t = b,
        }
    }
    Expiry::At(t + remaining)
}

/// The retention cycle over a store and the storages.
pub struct Retention {
    store: Arc<dyn Store>,
    storages: Storages,
    audit_anchor: Option<PathBuf>,
    batch_size: u32,
    delete_metadata_on_expiry: bool,
    /// One cycle at a time: the timer and the API may ask at once.
    running: tokio::sync::Mutex<()>,
    /// The newest audit entry of the cycle not yet in the anchor. The anchor moves once per
    /// batch: a file write per deletion cost more than the deletion, and an anchor that lags
    /// by at most one batch still names a valid entry of the chain.
    unanchored: std::sync::Mutex<Option<crate::audit::AuditEntry>>,
}

/// What to do with one item once its media is gone.
struct Action {
    change: RetentionChange,
    description: String,
}

impl Retention {
    /// A cycle over `store` and `storages`; audit entries move the anchor at `audit_anchor`.
    pub fn new(
        store: Arc<dyn Store>,
        storages: Storages,
        audit_anchor: Option<PathBuf>,
        cfg: &RetentionConfig,
    ) -> Self {
        Self {
            store,
            storages,
            audit_anchor,
            batch_size: cfg.batch_size.max(1),
            delete_metadata_on_expiry: cfg.delete_metadata_on_expiry,
            running: tokio::sync::Mutex::new(()),
            unanchored: std::sync::Mutex::new(None),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, RetentionError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| RetentionError::Task(e.to_string()))?
            .map_err(RetentionError::from)
    }

    /// Runs one cycle as of `now`: deletion requests first, then expirations.
    pub async fn run_cycle(&self, now: DateTime<Utc>) -> Result<CycleReport, RetentionError> {
        let _one = self.running.lock().await;
        let mut report = CycleReport {
            now: fmt_time(&now),
            ..Default::default()
        };
        let limit = self.batch_size;
        let mut after = 0;
        loop {
            let batch = self.run(move |s| s.pending_deletions(after, limit)).await?;
            let Some(last) = batch.last() else { break };
            after = last.id;
            for req in batch {
                let r = self.execute_request(req, &mut report).await;
                if r.is_err() {
                    self.anchor().await?;
                }
                r?;
            }
            self.anchor().await?;
        }
        let mut cursor: Option<ExpiryCursor> = None;
        let with_deleted = self.delete_metadata_on_expiry;
        loop {
            let c = cursor.clone();
            let batch = self
                .run(move |s| s.expired(now, c.as_ref(), limit, with_deleted))
                .await?;
            let Some(last) = batch.last() else { break };
            cursor = Some(last.clone());
            for c in batch {
                let r = self.expire(c.id, now, &mut report).await;
                if r.is_err() {
                    self.anchor().await?;
                }
                r?;
            }
            self.anchor().await?;
        }
        Ok(report)
    }

    /// Moves the anchor to the cycle's newest audit entry.
    async fn anchor(&self) -> Result<(), RetentionError> {
        let entry = self
            .unanchored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let (Some(path), Some(e)) = (self.audit_anchor.clone(), entry) {
            tokio::task::spawn_blocking(move || advance_anchor(&path, &e))
                .await
                .map_err(|e| RetentionError::Task(e.to_string()))??;
        }
        Ok(())
    }

    async fn item(&self, id: i64) -> Result<Option<RetentionItem>, RetentionError> {
        self.run(move |s| s.retention_item(id)).await
    }

    async fn execute_request(
        &self,
        req: DeletionRequest,
        report: &mut CycleReport,
    ) -> Result<(), RetentionError> {
        let Some(item) = self.item(req.interaction_id).await? else {
            return Ok(());
        };
        if let Some(t) = item.targets.iter().find(|t| t.on_hold) {
            report.requests_on_hold += 1;
            report.problem(format!(
                "deletion request {} of interaction {} waits: {} is on legal hold",
                req.id, item.id, t.upn
            ));
            return Ok(());
        }
        if self.not_in_storage_yet(&item, report) {
            return Ok(());
        }
        let what = match req.scope {
            DeletionScope::MetadataAndMedia => "metadata and media deleted",
            DeletionScope::MediaOnly => "media deleted",
        };
        let action = Action {
            change: match req.scope {
                DeletionScope::MetadataAndMedia => RetentionChange::InteractionDeleted,
                DeletionScope::MediaOnly => RetentionChange::MediaDeleted {
                    request: Some(req.id),
                },
            },
            description: format!(
                "{what} by deletion request {} ({}) of {} authorized by {}: {}",
                req.id,
                req.scope.as_str(),
                req.requested_by,
                req.authorized_by,
                req.note
            ),
        };
        if self.delete_and_apply(&item, action, report).await? {
            report.requests_executed += 1;
        }
        Ok(())
    }

    async fn expire(
        &self,
        id: i64,
        now: DateTime<Utc>,
        report: &mut CycleReport,
    ) -> Result<(), RetentionError> {
        let Some(item) = self.item(id).await? else {
            return Ok(());
        };
        let Some(expiration) = item.expiration else {
            return Ok(());
        };
        if item.targets.iter().any(|t| t.on_hold) {
            report.kept_on_hold += 1;
            return Ok(());
        }
        let effective = match effective_expiry(item.start_time, expiration, &item.targets) {
            Expiry::Held => {
                report.kept_on_hold += 1;
                return Ok(());
            }
            Expiry::At(t) if t > now => {
                report.kept_after_hold += 1;
                return Ok(());
            }
            Expiry::At(t) => t,
        };
        let media_gone = item.media_status == MediaStatus::Deleted;
        if media_gone && !self.delete_metadata_on_expiry {
            return Ok(());
        }
        if self.not_in_storage_yet(&item, report) {
            return Ok(());
        }
        let why = if effective == expiration {
            format!("retention ended {}", fmt_time(&expiration))
        } else {
            format!(
                "retention ended {} (legal hold moved it from {})",
                fmt_time(&effective),
                fmt_time(&expiration)
            )
        };
        let (change, what) = if self.delete_metadata_on_expiry {
            (
                RetentionChange::InteractionDeleted,
                "metadata and media deleted",
            )
        } else {
            (
                RetentionChange::MediaDeleted { request: None },
                "media deleted",
            )
        };
        let action = Action {
            change,
            description: format!("{what} at expiry: {why}"),
        };
        if self.delete_and_apply(&item, action, report).await? {
            match change {
                RetentionChange::InteractionDeleted => report.expired_deleted += 1,
                RetentionChange::MediaDeleted { .. } => report.expired_media_deleted += 1,
            }
        }
        Ok(())
    }

    /// A leg still recording or waiting for upload has media outside storage that the uploader
    /// would store after we deleted the rest: such an item waits.
    fn not_in_storage_yet(&self, item: &RetentionItem, report: &mut CycleReport) -> bool {
        if item.media_status == MediaStatus::Deleted {
            return false;
        }
        if let Some(l) = item.legs.iter().find(|l| {
            matches!(
                l.media_status,
                MediaStatus::Recording | MediaStatus::Pending
            )
        }) {
            report.deferred += 1;
            report.problem(format!(
                "interaction {} waits: recording {} is {}",
                item.id,
                l.recording_id,
                l.media_status.as_str()
            ));
            return true;
        }
        false
    }

    /// Deletes every object of the item's legs, then applies `action` with its audit entry.
    /// `Ok(false)`: a storage failed; nothing was marked.
    async fn delete_and_apply(
        &self,
        item: &RetentionItem,
        action: Action,
        report: &mut CycleReport,
    ) -> Result<bool, RetentionError> {
        let deleted = if item.media_status == MediaStatus::Deleted {
            0
        } else {
            match self.delete_media(item).await {
                Ok(n) => n,
                Err((n, e)) => {
                    report.objects_deleted += n;
                    report.storage_failures += 1;
                    report.problem(format!(
                        "interaction {} kept for the next cycle: {e}",
                        item.id
                    ));
                    return Ok(false);
                }
            }
        };
        report.objects_deleted += deleted;
        let audit = NewAudit {
            user_oid: "system".into(),
            user_upn: "retention".into(),
            action: "delete",
            item_type: "interaction",
            item: item.id.to_string(),
            description: format!("{}; {deleted} objects deleted", action.description),
        };
        let id = item.id;
        let change = action.change;
        match self
            .run(move |s| s.retention_apply(id, change, &audit))
            .await
        {
            Ok(entry) => {
                *self.unanchored.lock().unwrap_or_else(|p| p.into_inner()) = Some(entry);
                Ok(true)
            }
            // Deleted meanwhile (another cycle, or a request and its expiry in one cycle).
            Err(RetentionError::Store(StoreError::NotFound(_))) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Lists and deletes every object under each leg's media path in the leg's storage and in
    /// every other configured storage (the geo-redundant copy of a Pro recording lives in a
    /// paired storage). Returns the number deleted, or the number deleted before a failure.
    async fn delete_media(&self, item: &RetentionItem) -> Result<u64, (u64, String)> {
        let mut n = 0u64;
        for leg in &item.legs {
            let prefix = format!("{}/", leg.media_path.trim_end_matches('/'));
            let mut names: BTreeSet<String> =
                self.storages.iter().map(|s| s.name().to_string()).collect();
            if !leg.storage.is_empty() {
                names.insert(leg.storage.clone());
            }
            for name in names {
                let Some(storage) = self.storages.get(&name) else {
                    return Err((
                        n,
                        format!(
                            "storage {name:?} of recording {} is not configured",
                            leg.recording_id
                        ),
                    ));
                };
                let objects = storage
                    .list(&prefix)
                    .await
                    .map_err(|e| (n, e.to_string()))?;
                for o in objects {
                    storage
                        .delete(&o.key)
                        .await
                        .map_err(|e| (n, e.to_string()))?;
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// Runs a cycle on `schedule` until the process ends; a failed cycle is logged and the next
    /// one runs on time.
    pub fn spawn(self: Arc<Self>, schedule: Schedule) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut next = schedule.first(Utc::now());
            loop {
                let wait = (next - Utc::now()).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
                let now = Utc::now();
                match self.run_cycle(now).await {
                    Ok(r) => eprintln!(
                        "recorder-daemon: retention cycle: {}",
                        serde_json::to_string(&r).unwrap_or_default()
                    ),
                    Err(e) => eprintln!("recorder-daemon: retention cycle failed: {e}"),
                }
                next += schedule.interval;
                // A cycle longer than the interval (or a suspended host) does not queue a burst
                // of catch-up cycles.
                while next <= Utc::now() {
                    next += schedule.interval;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests;
