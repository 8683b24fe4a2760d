//! Retention, legal hold history, user deletion and export, alarms and the system activity
//! log in PostgreSQL (the counterparts of `store/retention.rs` and `store/activity.rs`).

use chrono::{DateTime, Utc};
use postgres::{GenericClient, Row};

use super::admin::user_from_row;
use crate::model::{fmt_time, MediaStatus};
use crate::store::activity::{Activity, Alarm, NewAlarm};
use crate::store::sqlite::now;
use crate::store::{
    DeletionRequest, DeletionScope, ExpiryCursor, HoldEvent, InteractionRef, LegMedia, NoteRef,
    Page, RetentionChange, RetentionItem, SavedSearch, StoreError, StoreResult, TargetHold,
    UserExport,
};

fn parse_time(s: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Db(format!("stored time {s:?}: {e}")))
}

/// See [`crate::store::Store::set_legal_hold`].
pub fn set_legal_hold(
    tx: &mut impl GenericClient,
    oid: &str,
    on: bool,
    by: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    // FOR UPDATE: two administrators flipping the same hold at once record two events in the
    // order they applied, never two identical ones.
    let Some(r) = tx.query_opt(
        "SELECT legal_hold FROM users WHERE oid = $1 FOR UPDATE",
        &[&oid],
    )?
    else {
        return Err(StoreError::NotFound(format!("user {oid}")));
    };
    let current: bool = r.try_get(0)?;
    if current == on {
        return Ok(());
    }
    tx.execute(
        "UPDATE users SET legal_hold = $1 WHERE oid = $2",
        &[&on, &oid],
    )?;
    tx.execute(
        "INSERT INTO legal_hold_events (oid, hold_on, at, by) VALUES ($1, $2, $3, $4)",
        &[&oid, &on, &fmt_time(&at), &by],
    )?;
    Ok(())
}

fn hold_events(c: &mut impl GenericClient, oid: &str) -> StoreResult<Vec<HoldEvent>> {
    c.query(
        "SELECT oid, hold_on, at, by FROM legal_hold_events WHERE oid = $1 ORDER BY at, id",
        &[&oid],
    )?
    .iter()
    .map(|r| {
        let at: String = r.try_get(2)?;
        Ok(HoldEvent {
            oid: r.try_get(0)?,
            on: r.try_get(1)?,
            at: parse_time(&at)?,
            by: r.try_get(3)?,
        })
    })
    .collect()
}

/// See [`crate::store::Store::pending_deletions`].
pub fn pending_deletions(
    c: &mut impl GenericClient,
    after: i64,
    limit: u32,
) -> StoreResult<Vec<DeletionRequest>> {
    c.query(
        "SELECT id, interaction_id, scope, authorized_by, note, requested_by, requested_at \
         FROM deletion_requests WHERE executed_at IS NULL AND id > $1 ORDER BY id LIMIT $2",
        &[&after, &i64::from(limit)],
    )?
    .iter()
    .map(|r| {
        let id: i64 = r.try_get(0)?;
        let scope: String = r.try_get(2)?;
        let scope = match scope.as_str() {
            "metadataAndMedia" => DeletionScope::MetadataAndMedia,
            "mediaOnly" => DeletionScope::MediaOnly,
            other => {
                return Err(StoreError::Db(format!(
                    "deletion request {id}: unknown scope {other:?}"
                )))
            }
        };
        Ok(DeletionRequest {
            id,
            interaction_id: r.try_get(1)?,
            scope,
            authorized_by: r.try_get(3)?,
            note: r.try_get(4)?,
            requested_by: r.try_get(5)?,
            requested_at: r.try_get(6)?,
        })
    })
    .collect()
}

/// See [`crate::store::Store::expired`].
pub fn expired(
    c: &mut impl GenericClient,
    now: DateTime<Utc>,
    after: Option<&ExpiryCursor>,
    limit: u32,
    with_deleted_media: bool,
) -> StoreResult<Vec<ExpiryCursor>> {
    // Keyset on (expiration, id) over the (expiration, id) index, as in SQLite.
    let (exp, id) = after
        .map(|c| (c.expiration.clone(), c.id))
        .unwrap_or_default();
    c.query(
        "SELECT expiration, id FROM interactions \
         WHERE expiration IS NOT NULL AND expiration <= $1 AND (expiration, id) > ($2, $3) \
         AND ($4 OR media_status <> 'Deleted') \
         ORDER BY expiration, id LIMIT $5",
        &[
            &fmt_time(&now),
            &exp,
            &id,
            &with_deleted_media,
            &i64::from(limit),
        ],
    )?
    .iter()
    .map(|r| {
        Ok(ExpiryCursor {
            expiration: r.try_get(0)?,
            id: r.try_get(1)?,
        })
    })
    .collect()
}

/// See [`crate::store::Store::retention_item`].
pub fn retention_item(c: &mut impl GenericClient, id: i64) -> StoreResult<Option<RetentionItem>> {
    let Some(row) = c.query_opt(
        "SELECT start_time, expiration, media_status FROM interactions WHERE id = $1",
        &[&id],
    )?
    else {
        return Ok(None);
    };
    let start: String = row.try_get(0)?;
    let expiration: Option<String> = row.try_get(1)?;
    let status: String = row.try_get(2)?;
    let mut legs = Vec::new();
    for r in c.query(
        "SELECT recording_id, media_status, media_path, body FROM legs WHERE interaction_id = $1 ORDER BY id",
        &[&id],
    )? {
        let st: String = r.try_get(1)?;
        let body: String = r.try_get(3)?;
        legs.push(LegMedia::from_row(r.try_get(0)?, &st, r.try_get(2)?, &body)?);
    }
    // A user removed from the directory keeps their hold history (see store/retention.rs).
    let rows = c.query(
        "SELECT COALESCE(u.oid, t.oid), COALESCE(u.upn, t.upn), COALESCE(u.legal_hold, false) \
         FROM interaction_targets t LEFT JOIN users u ON (u.oid = t.oid OR lower(u.upn) = t.upn) \
         WHERE t.interaction_id = $1",
        &[&id],
    )?;
    let mut targets: Vec<TargetHold> = Vec::new();
    for r in rows {
        let oid: String = r.try_get(0)?;
        let upn: String = r.try_get(1)?;
        let hold: bool = r.try_get(2)?;
        if let Some(t) = targets.iter_mut().find(|t| t.oid == oid) {
            t.on_hold |= hold;
            continue;
        }
        let events = if oid.is_empty() {
            Vec::new()
        } else {
            hold_events(c, &oid)?
        };
        targets.push(TargetHold {
            oid,
            upn,
            on_hold: hold,
            events,
        });
    }
    Ok(Some(RetentionItem {
        id,
        start_time: parse_time(&start)?,
        expiration: expiration.as_deref().map(parse_time).transpose()?,
        media_status: MediaStatus::parse(&status).unwrap_or(MediaStatus::Unavailable),
        legs,
        targets,
    }))
}

/// The database half of [`crate::store::Store::retention_apply`] (the caller appends the
/// audit entry in the same transaction).
pub fn apply(tx: &mut impl GenericClient, id: i64, change: RetentionChange) -> StoreResult<()> {
    if tx
        .query_opt(
            "SELECT 1 FROM interactions WHERE id = $1 FOR UPDATE",
            &[&id],
        )?
        .is_none()
    {
        return Err(StoreError::NotFound(format!("interaction {id}")));
    }
    match change {
        RetentionChange::MediaDeleted { request } => {
            let deleted = MediaStatus::Deleted.as_str();
            tx.execute(
                "UPDATE interactions SET media_status = $1, updated_at = $2 WHERE id = $3",
                &[&deleted, &now(), &id],
            )?;
            tx.execute(
                "UPDATE legs SET media_status = $1 WHERE interaction_id = $2",
                &[&deleted, &id],
            )?;
            if let Some(r) = request {
                tx.execute(
                    "UPDATE deletion_requests SET executed_at = $1 WHERE id = $2 AND interaction_id = $3",
                    &[&now(), &r, &id],
                )?;
            }
        }
        // Legs, targets, participants, tags, notes and deletion requests follow by cascade.
        RetentionChange::InteractionDeleted => {
            tx.execute("DELETE FROM interactions WHERE id = $1", &[&id])?;
        }
    }
    Ok(())
}

/// See [`crate::store::Store::delete_user`].
pub fn delete_user(tx: &mut impl GenericClient, oid: &str) -> StoreResult<()> {
    let hold: Option<bool> = tx
        .query_opt(
            "SELECT legal_hold FROM users WHERE oid = $1 FOR UPDATE",
            &[&oid],
        )?
        .map(|r| r.try_get(0))
        .transpose()?;
    match hold {
        None => return Err(StoreError::NotFound(format!("user {oid}"))),
        Some(true) => {
            return Err(StoreError::Conflict(format!(
                "user {oid} is on legal hold: release the hold first"
            )))
        }
        Some(false) => {}
    }
    tx.execute("DELETE FROM group_members WHERE oid = $1", &[&oid])?;
    tx.execute("DELETE FROM saved_searches WHERE owner_oid = $1", &[&oid])?;
    tx.execute("DELETE FROM users WHERE oid = $1", &[&oid])?;
    Ok(())
}

/// See [`crate::store::Store::export_user`].
pub fn export_user(c: &mut impl GenericClient, oid: &str) -> StoreResult<UserExport> {
    let mut user = c
        .query_opt(
            "SELECT oid, upn, display_name, recording_profile, legal_hold FROM users WHERE oid = $1",
            &[&oid],
        )?
        .map(|r| user_from_row(&r))
        .transpose()?
        .ok_or_else(|| StoreError::NotFound(format!("user {oid}")))?;
    user.groups = c
        .query(
            "SELECT group_id FROM group_members WHERE oid = $1 ORDER BY group_id",
            &[&oid],
        )?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<Vec<String>, _>>()?;
    let upn = user.upn.to_lowercase();
    let mut interactions = c
        .query(
            "SELECT id, start_time, media_status, expiration FROM interactions WHERE id IN \
             (SELECT interaction_id FROM interaction_targets WHERE oid = $1 \
              UNION SELECT interaction_id FROM interaction_targets WHERE upn = $2) ORDER BY start_time, id",
            &[&oid, &upn],
        )?
        .iter()
        .map(|r| {
            Ok(InteractionRef {
                id: r.try_get(0)?,
                start_time: r.try_get(1)?,
                media_status: r.try_get(2)?,
                expiration: r.try_get(3)?,
                recordings: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>, postgres::Error>>()?;
    for i in &mut interactions {
        i.recordings = c
            .query(
                "SELECT recording_id FROM legs WHERE interaction_id = $1 ORDER BY id",
                &[&i.id],
            )?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<Vec<String>, _>>()?;
    }
    let notes = c
        .query(
            "SELECT interaction_id, id, created_at FROM notes WHERE author_oid = $1 ORDER BY id",
            &[&oid],
        )?
        .iter()
        .map(|r| {
            Ok(NoteRef {
                interaction_id: r.try_get(0)?,
                note_id: r.try_get(1)?,
                created_at: r.try_get(2)?,
            })
        })
        .collect::<Result<Vec<_>, postgres::Error>>()?;
    let saved_searches = c
        .query(
            "SELECT id, name, query, created_at FROM saved_searches WHERE owner_oid = $1 ORDER BY name",
            &[&oid],
        )?
        .iter()
        .map(|r| {
            Ok(SavedSearch {
                id: r.try_get(0)?,
                name: r.try_get(1)?,
                query: r.try_get(2)?,
                created_at: r.try_get(3)?,
            })
        })
        .collect::<Result<Vec<_>, postgres::Error>>()?;
    Ok(UserExport {
        legal_hold_events: hold_events(c, oid)?,
        user,
        interactions,
        notes,
        saved_searches,
    })
}

const ALARM_COLS: &str =
    "id, name, oid, source, severity, text, corrective_action, raised_at, cleared_at";

fn alarm_row(r: &Row) -> Result<Alarm, postgres::Error> {
    Ok(Alarm {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        oid: r.try_get(2)?,
        source: r.try_get(3)?,
        severity: r.try_get(4)?,
        text: r.try_get(5)?,
        corrective_action: r.try_get(6)?,
        raised_at: r.try_get(7)?,
        cleared_at: r.try_get(8)?,
    })
}

/// See [`crate::store::Store::alarm_raise`].
pub fn alarm_raise(tx: &mut impl GenericClient, a: &NewAlarm) -> StoreResult<Option<Alarm>> {
    // The partial unique index on active alarms decides between two daemons raising the same
    // alarm at once: the second inserts nothing.
    let row = tx.query_opt(
        &format!(
            "INSERT INTO alarms (name, oid, source, severity, text, corrective_action, raised_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (name, source) WHERE cleared_at IS NULL DO NOTHING RETURNING {ALARM_COLS}"
        ),
        &[
            &a.name,
            &a.oid,
            &a.source,
            &a.severity,
            &a.text,
            &a.corrective_action,
            &now(),
        ],
    )?;
    let Some(row) = row else {
        return Ok(None);
    };
    let alarm = alarm_row(&row)?;
    activity_append(
        tx,
        "alarmRaised",
        &a.source,
        &format!("{} ({}): {}", a.name, a.severity, a.text),
        Some(alarm.id),
    )?;
    Ok(Some(alarm))
}

/// See [`crate::store::Store::alarm_clear`].
pub fn alarm_clear(
    tx: &mut impl GenericClient,
    name: &str,
    source: &str,
) -> StoreResult<Option<Alarm>> {
    let row = tx.query_opt(
        &format!(
            "UPDATE alarms SET cleared_at = $1 WHERE name = $2 AND source = $3 AND cleared_at IS NULL \
             RETURNING {ALARM_COLS}"
        ),
        &[&now(), &name, &source],
    )?;
    let Some(row) = row else {
        return Ok(None);
    };
    let alarm = alarm_row(&row)?;
    activity_append(
        tx,
        "alarmCleared",
        source,
        &format!("{name} cleared"),
        Some(alarm.id),
    )?;
    Ok(Some(alarm))
}

/// See [`crate::store::Store::alarms_active`].
pub fn alarms_active(c: &mut impl GenericClient) -> StoreResult<Vec<Alarm>> {
    Ok(c.query(
        &format!("SELECT {ALARM_COLS} FROM alarms WHERE cleared_at IS NULL ORDER BY id"),
        &[],
    )?
    .iter()
    .map(alarm_row)
    .collect::<Result<Vec<_>, _>>()?)
}

/// See [`crate::store::Store::activity_append`].
pub fn activity_append(
    c: &mut impl GenericClient,
    kind: &str,
    source: &str,
    text: &str,
    alarm_id: Option<i64>,
) -> StoreResult<()> {
    c.execute(
        "INSERT INTO system_activity (at, kind, source, text, alarm_id) VALUES ($1, $2, $3, $4, $5)",
        &[&now(), &kind, &source, &text, &alarm_id],
    )?;
    Ok(())
}

/// See [`crate::store::Store::activity`].
pub fn activity(
    c: &mut impl GenericClient,
    page: u32,
    page_size: u32,
) -> StoreResult<Page<Activity>> {
    let page = page.max(1);
    let size = page_size.clamp(1, 1000);
    let total: i64 = c
        .query_one("SELECT COUNT(*) FROM system_activity", &[])?
        .try_get(0)?;
    let items = c
        .query(
            "SELECT id, at, kind, source, text, alarm_id FROM system_activity \
             ORDER BY id DESC LIMIT $1 OFFSET $2",
            &[&i64::from(size), &((page as i64 - 1) * size as i64)],
        )?
        .iter()
        .map(|r| {
            Ok(Activity {
                id: r.try_get(0)?,
                at: r.try_get(1)?,
                kind: r.try_get(2)?,
                source: r.try_get(3)?,
                text: r.try_get(4)?,
                alarm_id: r.try_get(5)?,
            })
        })
        .collect::<Result<Vec<_>, postgres::Error>>()?;
    Ok(Page {
        total: total as u64,
        total_is_lower_bound: false,
        page,
        page_size: size,
        items,
    })
}
