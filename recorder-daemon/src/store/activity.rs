//! Alarms and the system activity log in SQLite (the `alarms` and `system_activity` tables).
//! Kept apart from `sqlite.rs` so that the store's interaction code and this stay separate.

use chrono::{SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::{Page, StoreResult};

/// An alarm to raise (docs/storage.md, "Alarms").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlarm {
    /// Name, e.g. `ConnectionFailed`.
    pub name: String,
    /// SNMP OID of the alarm.
    pub oid: String,
    /// `<tenant>/<storage>` (or `<tenant>/<spool entry>`).
    pub source: String,
    /// `critical`, `major`, `minor`, `warning`.
    pub severity: String,
    /// What happened.
    pub text: String,
    /// What the operator should do.
    pub corrective_action: String,
}

/// An alarm as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alarm {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// SNMP OID.
    pub oid: String,
    /// Source.
    pub source: String,
    /// Severity.
    pub severity: String,
    /// Text.
    pub text: String,
    /// Corrective action.
    pub corrective_action: String,
    /// Raised (RFC 3339).
    pub raised_at: String,
    /// Cleared (RFC 3339), `None` while active.
    pub cleared_at: Option<String>,
}

/// One line of the system activity log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    /// Id (increasing).
    pub id: i64,
    /// When (RFC 3339).
    pub at: String,
    /// `alarmRaised`, `alarmCleared`, `recordingRejected`, ...
    pub kind: String,
    /// Source (`<tenant>/<storage>`, a spool entry, ...).
    pub source: String,
    /// Text.
    pub text: String,
    /// The alarm the event belongs to.
    pub alarm_id: Option<i64>,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

const ALARM_COLS: &str =
    "id, name, oid, source, severity, text, corrective_action, raised_at, cleared_at";

fn alarm_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Alarm> {
    Ok(Alarm {
        id: r.get(0)?,
        name: r.get(1)?,
        oid: r.get(2)?,
        source: r.get(3)?,
        severity: r.get(4)?,
        text: r.get(5)?,
        corrective_action: r.get(6)?,
        raised_at: r.get(7)?,
        cleared_at: r.get(8)?,
    })
}

/// See [`super::Store::alarm_raise`].
pub fn raise(conn: &mut Connection, a: &NewAlarm) -> StoreResult<Option<Alarm>> {
    let tx = conn.transaction()?;
    let active: Option<i64> = tx
        .query_row(
            "SELECT id FROM alarms WHERE name = ? AND source = ? AND cleared_at IS NULL",
            params![a.name, a.source],
            |r| r.get(0),
        )
        .optional()?;
    if active.is_some() {
        return Ok(None);
    }
    let at = now();
    tx.execute(
        "INSERT INTO alarms (name, oid, source, severity, text, corrective_action, raised_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        params![
            a.name,
            a.oid,
            a.source,
            a.severity,
            a.text,
            a.corrective_action,
            at
        ],
    )?;
    let id = tx.last_insert_rowid();
    append(
        &tx,
        "alarmRaised",
        &a.source,
        &format!("{} ({}): {}", a.name, a.severity, a.text),
        Some(id),
    )?;
    let alarm = tx.query_row(
        &format!("SELECT {ALARM_COLS} FROM alarms WHERE id = ?"),
        [id],
        alarm_row,
    )?;
    tx.commit()?;
    Ok(Some(alarm))
}

/// See [`super::Store::alarm_clear`].
pub fn clear(conn: &mut Connection, name: &str, source: &str) -> StoreResult<Option<Alarm>> {
    let tx = conn.transaction()?;
    let Some(mut alarm) = tx
        .query_row(
            &format!(
                "SELECT {ALARM_COLS} FROM alarms WHERE name = ? AND source = ? AND cleared_at IS NULL"
            ),
            params![name, source],
            alarm_row,
        )
        .optional()?
    else {
        return Ok(None);
    };
    let at = now();
    tx.execute(
        "UPDATE alarms SET cleared_at = ? WHERE id = ?",
        params![at, alarm.id],
    )?;
    append(
        &tx,
        "alarmCleared",
        source,
        &format!("{name} cleared"),
        Some(alarm.id),
    )?;
    tx.commit()?;
    alarm.cleared_at = Some(at);
    Ok(Some(alarm))
}

/// See [`super::Store::alarms_active`].
pub fn active(conn: &Connection) -> StoreResult<Vec<Alarm>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {ALARM_COLS} FROM alarms WHERE cleared_at IS NULL ORDER BY id"
    ))?;
    let rows = st.query_map([], alarm_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// See [`super::Store::activity_append`].
pub fn append(
    conn: &Connection,
    kind: &str,
    source: &str,
    text: &str,
    alarm_id: Option<i64>,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO system_activity (at, kind, source, text, alarm_id) VALUES (?, ?, ?, ?, ?)",
    )?
    .execute(params![now(), kind, source, text, alarm_id])?;
    Ok(())
}

/// See [`super::Store::activity`].
pub fn page(conn: &Connection, page: u32, page_size: u32) -> StoreResult<Page<Activity>> {
    let page = page.max(1);
    let size = page_size.clamp(1, 1000);
    let total: i64 = conn.query_row("SELECT COUNT(*) FROM system_activity", [], |r| r.get(0))?;
    let mut st = conn.prepare_cached(
        "SELECT id, at, kind, source, text, alarm_id FROM system_activity \
         ORDER BY id DESC LIMIT ? OFFSET ?",
    )?;
    let items = st
        .query_map(params![size, (page as i64 - 1) * size as i64], |r| {
            Ok(Activity {
                id: r.get(0)?,
                at: r.get(1)?,
                kind: r.get(2)?,
                source: r.get(3)?,
                text: r.get(4)?,
                alarm_id: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(Page {
        total: total as u64,
        total_is_lower_bound: false,
        page,
        page_size: size,
        items,
    })
}
