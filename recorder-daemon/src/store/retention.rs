//! The SQLite side of retention, legal hold history and user deletion/export (docs/retention.md).
//! Each function runs on a connection or transaction the caller holds; the `Store` impl in
//! `sqlite.rs` only locks and delegates.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::*;
use crate::model::fmt_time;

fn parse_time(s: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Db(format!("stored time {s:?}: {e}")))
}

/// See [`Store::set_legal_hold`].
pub fn set_legal_hold(
    tx: &Transaction<'_>,
    oid: &str,
    on: bool,
    by: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let current: Option<i64> = tx
        .query_row("SELECT legal_hold FROM users WHERE oid = ?", [oid], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(current) = current else {
        return Err(StoreError::NotFound(format!("user {oid}")));
    };
    if (current != 0) == on {
        return Ok(());
    }
    tx.execute(
        "UPDATE users SET legal_hold = ? WHERE oid = ?",
        params![on as i64, oid],
    )?;
    tx.execute(
        "INSERT INTO legal_hold_events (oid, hold_on, at, by) VALUES (?, ?, ?, ?)",
        params![oid, on as i64, fmt_time(&at), by],
    )?;
    Ok(())
}

/// See [`Store::legal_hold_events`].
pub fn hold_events(conn: &Connection, oid: &str) -> StoreResult<Vec<HoldEvent>> {
    let mut st = conn.prepare_cached(
        "SELECT oid, hold_on, at, by FROM legal_hold_events WHERE oid = ? ORDER BY at, id",
    )?;
    let rows = st
        .query_map([oid], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(oid, on, at, by)| {
            Ok(HoldEvent {
                oid,
                on: on != 0,
                at: parse_time(&at)?,
                by,
            })
        })
        .collect()
}

/// See [`Store::pending_deletions`].
pub fn pending_deletions(
    conn: &Connection,
    after: i64,
    limit: u32,
) -> StoreResult<Vec<DeletionRequest>> {
    let mut st = conn.prepare_cached(
        "SELECT id, interaction_id, scope, authorized_by, note, requested_by, requested_at \
         FROM deletion_requests WHERE executed_at IS NULL AND id > ? ORDER BY id LIMIT ?",
    )?;
    let rows = st
        .query_map(params![after, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(
            |(id, iid, scope, authorized_by, note, requested_by, requested_at)| {
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
                    interaction_id: iid,
                    scope,
                    authorized_by,
                    note,
                    requested_by,
                    requested_at,
                })
            },
        )
        .collect()
}

/// See [`Store::expired`].
pub fn expired(
    conn: &Connection,
    now: DateTime<Utc>,
    after: Option<&ExpiryCursor>,
    limit: u32,
    with_deleted_media: bool,
) -> StoreResult<Vec<ExpiryCursor>> {
    // Keyset on (expiration, id) over the expiration index: each batch starts where the last
    // ended, so a million expired calls cost a million index steps, not a sort per batch.
    let (exp, id) = after
        .map(|c| (c.expiration.clone(), c.id))
        .unwrap_or_default();
    let mut st = conn.prepare_cached(
        "SELECT expiration, id FROM interactions \
         WHERE expiration IS NOT NULL AND expiration <= ?1 AND (expiration, id) > (?2, ?3) \
         AND (?4 OR media_status <> 'Deleted') \
         ORDER BY expiration, id LIMIT ?5",
    )?;
    let v = st
        .query_map(
            params![fmt_time(&now), exp, id, with_deleted_media, limit],
            |r| {
                Ok(ExpiryCursor {
                    expiration: r.get(0)?,
                    id: r.get(1)?,
                })
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(v)
}

/// See [`Store::retention_item`].
pub fn retention_item(conn: &Connection, id: i64) -> StoreResult<Option<RetentionItem>> {
    let row: Option<(String, Option<String>, String)> = conn
        .prepare_cached(
            "SELECT start_time, expiration, media_status FROM interactions WHERE id = ?",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((start, expiration, status)) = row else {
        return Ok(None);
    };
    let start_time = parse_time(&start)?;
    let mut legs = Vec::new();
    {
        let mut st = conn.prepare_cached(
            "SELECT recording_id, media_status, media_path, body FROM legs WHERE interaction_id = ? ORDER BY id",
        )?;
        let mut rows = st.query([id])?;
        while let Some(r) = rows.next()? {
            let st: String = r.get(1)?;
            let body: String = r.get(3)?;
            legs.push(LegMedia::from_row(r.get(0)?, &st, r.get(2)?, &body)?);
        }
    }
    // A user removed from the directory keeps their hold history: the calls a past hold
    // extended stay extended after the user is gone.
    let mut targets: Vec<TargetHold> = Vec::new();
    {
        let mut st = conn.prepare_cached(
            "SELECT COALESCE(u.oid, t.oid), COALESCE(u.upn, t.upn), COALESCE(u.legal_hold, 0) \
             FROM interaction_targets t LEFT JOIN users u ON (u.oid = t.oid OR lower(u.upn) = t.upn) \
             WHERE t.interaction_id = ?",
        )?;
        let rows = st
            .query_map([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for (oid, upn, hold) in rows {
            if let Some(t) = targets.iter_mut().find(|t| t.oid == oid) {
                t.on_hold |= hold != 0;
                continue;
            }
            let events = if oid.is_empty() {
                Vec::new()
            } else {
                hold_events(conn, &oid)?
            };
            targets.push(TargetHold {
                oid,
                upn,
                on_hold: hold != 0,
                events,
            });
        }
    }
    Ok(Some(RetentionItem {
        id,
        start_time,
        expiration: expiration.as_deref().map(parse_time).transpose()?,
        media_status: MediaStatus::parse(&status).unwrap_or(MediaStatus::Unavailable),
        legs,
        targets,
    }))
}

/// The database half of [`Store::retention_apply`] (the caller appends the audit entry in the
/// same transaction).
pub fn apply(tx: &Transaction<'_>, id: i64, change: RetentionChange) -> StoreResult<()> {
    let exists = tx
        .query_row("SELECT 1 FROM interactions WHERE id = ?", [id], |_| Ok(()))
        .optional()?
        .is_some();
    if !exists {
        return Err(StoreError::NotFound(format!("interaction {id}")));
    }
    match change {
        RetentionChange::MediaDeleted { request } => {
            let deleted = MediaStatus::Deleted.as_str();
            tx.execute(
                "UPDATE interactions SET media_status = ?, updated_at = ? WHERE id = ?",
                params![deleted, fmt_time(&Utc::now()), id],
            )?;
            tx.execute(
                "UPDATE legs SET media_status = ? WHERE interaction_id = ?",
                params![deleted, id],
            )?;
            if let Some(r) = request {
                tx.execute(
                    "UPDATE deletion_requests SET executed_at = ? WHERE id = ? AND interaction_id = ?",
                    params![fmt_time(&Utc::now()), r, id],
                )?;
            }
        }
        RetentionChange::InteractionDeleted => {
            // FTS5 tables are outside the foreign-key cascade; notes_fts follows its trigger.
            tx.execute("DELETE FROM party_trgm WHERE rowid = ?", [id])?;
            tx.execute("DELETE FROM notes WHERE interaction_id = ?", [id])?;
            tx.execute("DELETE FROM interactions WHERE id = ?", [id])?;
        }
    }
    Ok(())
}

/// See [`Store::delete_user`].
pub fn delete_user(tx: &Transaction<'_>, oid: &str) -> StoreResult<()> {
    let hold: Option<i64> = tx
        .query_row("SELECT legal_hold FROM users WHERE oid = ?", [oid], |r| {
            r.get(0)
        })
        .optional()?;
    match hold {
        None => return Err(StoreError::NotFound(format!("user {oid}"))),
        Some(h) if h != 0 => {
            return Err(StoreError::Conflict(format!(
                "user {oid} is on legal hold: release the hold first"
            )))
        }
        Some(_) => {}
    }
    tx.execute("DELETE FROM group_members WHERE oid = ?", [oid])?;
    tx.execute("DELETE FROM saved_searches WHERE owner_oid = ?", [oid])?;
    tx.execute("DELETE FROM users WHERE oid = ?", [oid])?;
    Ok(())
}

/// See [`Store::export_user`].
pub fn export_user(conn: &Connection, oid: &str) -> StoreResult<UserExport> {
    let user = conn
        .query_row(
            "SELECT oid, upn, display_name, recording_profile, legal_hold FROM users WHERE oid = ?",
            [oid],
            |r| {
                Ok(User {
                    oid: r.get(0)?,
                    upn: r.get(1)?,
                    display_name: r.get(2)?,
                    groups: Vec::new(),
                    recording_profile: r.get(3)?,
                    legal_hold: r.get::<_, i64>(4)? != 0,
                })
            },
        )
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("user {oid}")))?;
    let mut user = user;
    user.groups = conn
        .prepare("SELECT group_id FROM group_members WHERE oid = ? ORDER BY group_id")?
        .query_map([oid], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    let upn = user.upn.to_lowercase();
    let mut interactions: Vec<InteractionRef> = conn
        .prepare(
            "SELECT id, start_time, media_status, expiration FROM interactions WHERE id IN \
             (SELECT interaction_id FROM interaction_targets WHERE oid = ?1 \
              UNION SELECT interaction_id FROM interaction_targets WHERE upn = ?2) ORDER BY start_time, id",
        )?
        .query_map(params![oid, upn], |r| {
            Ok(InteractionRef {
                id: r.get(0)?,
                start_time: r.get(1)?,
                media_status: r.get(2)?,
                expiration: r.get(3)?,
                recordings: Vec::new(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    {
        let mut st = conn
            .prepare_cached("SELECT recording_id FROM legs WHERE interaction_id = ? ORDER BY id")?;
        for i in &mut interactions {
            i.recordings = st
                .query_map([i.id], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
        }
    }
    let notes = conn
        .prepare(
            "SELECT interaction_id, id, created_at FROM notes WHERE author_oid = ? ORDER BY id",
        )?
        .query_map([oid], |r| {
            Ok(NoteRef {
                interaction_id: r.get(0)?,
                note_id: r.get(1)?,
                created_at: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let saved_searches = conn
        .prepare(
            "SELECT id, name, query, created_at FROM saved_searches WHERE owner_oid = ? ORDER BY name",
        )?
        .query_map([oid], |r| {
            Ok(SavedSearch {
                id: r.get(0)?,
                name: r.get(1)?,
                query: r.get(2)?,
                created_at: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(UserExport {
        legal_hold_events: hold_events(conn, oid)?,
        user,
        interactions,
        notes,
        saved_searches,
    })
}
