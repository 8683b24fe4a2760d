//! Directory, access and recording profiles, saved searches and the audit trail in
//! PostgreSQL (the counterparts of the same methods in `store/sqlite.rs`).

use std::collections::{BTreeSet, HashMap};

use postgres::{GenericClient, Row};

use super::{unique_violation, Args};
use crate::audit::{AuditEntry, AuditQuery, NewAudit, GENESIS};
use crate::rbac::AccessProfile;
use crate::store::sqlite::{like_escape, now, page_bounds};
use crate::store::{
    DirectoryImport, Page, RecordingProfileRow, SavedSearch, StoreError, StoreResult, User,
};

/// Advisory lock (namespace, key) held while appending to the audit chain: each entry's id and
/// previous hash come from the last entry, so appends from several connections (or daemons)
/// must take turns, as they do behind SQLite's single connection.
const AUDIT_LOCK: (i32, i32) = (2, 0);

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Db(e.to_string())
}

/// See [`crate::store::Store::import_directory`].
pub fn import_directory(
    tx: &mut impl GenericClient,
    d: &DirectoryImport,
) -> StoreResult<(usize, usize)> {
    for u in &d.users {
        tx.execute(
            "INSERT INTO users (oid, upn, display_name, recording_profile) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (oid) DO UPDATE SET upn = excluded.upn, display_name = excluded.display_name, \
             recording_profile = excluded.recording_profile",
            &[
                &u.id,
                &u.user_principal_name,
                &u.display_name.clone().unwrap_or_default(),
                &u.recording_profile,
            ],
        )?;
    }
    tx.execute("DELETE FROM group_members", &[])?;
    tx.execute("DELETE FROM groups", &[])?;
    for g in &d.groups {
        tx.execute(
            "INSERT INTO groups (id, display_name) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name",
            &[&g.id, &g.display_name.clone().unwrap_or_default()],
        )?;
        for m in &g.members {
            tx.execute(
                "INSERT INTO group_members (group_id, oid) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&g.id, &m.id],
            )?;
        }
    }
    Ok((d.users.len(), d.groups.len()))
}

/// A `users` row: oid, upn, display_name, recording_profile, legal_hold.
pub fn user_from_row(r: &Row) -> Result<User, postgres::Error> {
    Ok(User {
        oid: r.try_get(0)?,
        upn: r.try_get(1)?,
        display_name: r.try_get(2)?,
        groups: Vec::new(),
        recording_profile: r.try_get(3)?,
        legal_hold: r.try_get(4)?,
    })
}

/// See [`crate::store::Store::users`].
pub fn users(c: &mut impl GenericClient) -> StoreResult<Vec<User>> {
    let mut users = c
        .query(
            "SELECT oid, upn, display_name, recording_profile, legal_hold FROM users ORDER BY upn",
            &[],
        )?
        .iter()
        .map(user_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let mut by_oid: HashMap<String, Vec<String>> = HashMap::new();
    for r in c.query(
        "SELECT oid, group_id FROM group_members ORDER BY group_id",
        &[],
    )? {
        by_oid.entry(r.try_get(0)?).or_default().push(r.try_get(1)?);
    }
    for u in &mut users {
        u.groups = by_oid.remove(&u.oid).unwrap_or_default();
    }
    Ok(users)
}

/// See [`crate::store::Store::user_groups`].
pub fn user_groups(c: &mut impl GenericClient, oid: &str) -> StoreResult<Vec<String>> {
    c.query(
        "SELECT group_id FROM group_members WHERE oid = $1 ORDER BY group_id",
        &[&oid],
    )?
    .iter()
    .map(|r| r.try_get(0).map_err(Into::into))
    .collect()
}

/// See [`crate::store::Store::group_members`].
pub fn group_members(
    c: &mut impl GenericClient,
    groups: &[String],
) -> StoreResult<(Vec<String>, Vec<String>)> {
    if groups.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut oids = BTreeSet::new();
    let mut upns = BTreeSet::new();
    for r in c.query(
        "SELECT gm.oid, COALESCE(u.upn, '') FROM group_members gm LEFT JOIN users u ON u.oid = gm.oid \
         WHERE gm.group_id = ANY($1)",
        &[&groups],
    )? {
        oids.insert(r.try_get::<_, String>(0)?);
        let upn: String = r.try_get(1)?;
        if !upn.is_empty() {
            upns.insert(upn.to_lowercase());
        }
    }
    Ok((oids.into_iter().collect(), upns.into_iter().collect()))
}

/// See [`crate::store::Store::access_profiles`].
pub fn access_profiles(c: &mut impl GenericClient) -> StoreResult<Vec<AccessProfile>> {
    let mut out = Vec::new();
    for r in c.query(
        "SELECT id, body FROM access_profiles ORDER BY lower(name), id",
        &[],
    )? {
        let body: String = r.try_get(1)?;
        let mut p: AccessProfile = serde_json::from_str(&body).map_err(json_err)?;
        p.id = r.try_get(0)?;
        out.push(p);
    }
    Ok(out)
}

/// See [`crate::store::Store::put_access_profile`].
pub fn put_access_profile(
    c: &mut impl GenericClient,
    p: &AccessProfile,
) -> StoreResult<AccessProfile> {
    let body = serde_json::to_string(p).map_err(json_err)?;
    let r = if p.id == 0 {
        c.query_opt(
            "INSERT INTO access_profiles (name, body) VALUES ($1, $2) RETURNING id",
            &[&p.name, &body],
        )
    } else {
        c.query_opt(
            "UPDATE access_profiles SET name = $1, body = $2 WHERE id = $3 RETURNING id",
            &[&p.name, &body, &p.id],
        )
    };
    match r {
        Ok(None) => Err(StoreError::NotFound(format!("access profile {}", p.id))),
        Ok(Some(row)) => {
            let mut out = p.clone();
            out.id = row.try_get(0)?;
            Ok(out)
        }
        Err(e) if unique_violation(&e) => Err(StoreError::Conflict(format!(
            "access profile {:?} exists",
            p.name
        ))),
        Err(e) => Err(e.into()),
    }
}

/// See [`crate::store::Store::delete_access_profile`].
pub fn delete_access_profile(c: &mut impl GenericClient, id: i64) -> StoreResult<()> {
    match c.execute("DELETE FROM access_profiles WHERE id = $1", &[&id])? {
        0 => Err(StoreError::NotFound(format!("access profile {id}"))),
        _ => Ok(()),
    }
}

/// See [`crate::store::Store::recording_profiles`].
pub fn recording_profiles(c: &mut impl GenericClient) -> StoreResult<Vec<RecordingProfileRow>> {
    let mut out = Vec::new();
    for r in c.query(
        "SELECT name, body, updated_at, updated_by FROM recording_profiles ORDER BY lower(name), name",
        &[],
    )? {
        let body: String = r.try_get(1)?;
        out.push(RecordingProfileRow {
            name: r.try_get(0)?,
            profile: serde_json::from_str(&body).map_err(json_err)?,
            updated_at: r.try_get(2)?,
            updated_by: r.try_get(3)?,
        });
    }
    Ok(out)
}

/// See [`crate::store::Store::replace_recording_profiles`].
pub fn replace_recording_profiles(
    tx: &mut impl GenericClient,
    set: &[RecordingProfileRow],
) -> StoreResult<()> {
    tx.execute("DELETE FROM recording_profiles", &[])?;
    for p in set {
        let body = serde_json::to_string(&p.profile).map_err(json_err)?;
        tx.execute(
            "INSERT INTO recording_profiles (name, body, updated_at, updated_by) VALUES ($1, $2, $3, $4)",
            &[&p.name, &body, &p.updated_at, &p.updated_by],
        )?;
    }
    Ok(())
}

fn saved_from_row(r: &Row) -> Result<SavedSearch, postgres::Error> {
    Ok(SavedSearch {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        query: r.try_get(2)?,
        created_at: r.try_get(3)?,
    })
}

/// See [`crate::store::Store::saved_searches`].
pub fn saved_searches(c: &mut impl GenericClient, owner: &str) -> StoreResult<Vec<SavedSearch>> {
    Ok(c.query(
        "SELECT id, name, query, created_at FROM saved_searches WHERE owner_oid = $1 ORDER BY name",
        &[&owner],
    )?
    .iter()
    .map(saved_from_row)
    .collect::<Result<Vec<_>, _>>()?)
}

/// See [`crate::store::Store::save_search`].
pub fn save_search(
    c: &mut impl GenericClient,
    owner: &str,
    name: &str,
    query: &str,
) -> StoreResult<SavedSearch> {
    let at = now();
    match c.query_one(
        "INSERT INTO saved_searches (owner_oid, name, query, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        &[&owner, &name, &query, &at],
    ) {
        Ok(r) => Ok(SavedSearch {
            id: r.try_get(0)?,
            name: name.into(),
            query: query.into(),
            created_at: at,
        }),
        Err(e) if unique_violation(&e) => Err(StoreError::Conflict(format!(
            "saved search {name:?} exists"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// See [`crate::store::Store::delete_saved_search`].
pub fn delete_saved_search(c: &mut impl GenericClient, owner: &str, id: i64) -> StoreResult<()> {
    match c.execute(
        "DELETE FROM saved_searches WHERE id = $1 AND owner_oid = $2",
        &[&id, &owner],
    )? {
        0 => Err(StoreError::NotFound(format!("saved search {id}"))),
        _ => Ok(()),
    }
}

const AUDIT_COLS: &str =
    "id, at, user_oid, user_upn, action, item_type, item, description, prev_hash, hash";

fn audit_from_row(r: &Row) -> Result<AuditEntry, postgres::Error> {
    Ok(AuditEntry {
        id: r.try_get(0)?,
        at: r.try_get(1)?,
        user_oid: r.try_get(2)?,
        user_upn: r.try_get(3)?,
        action: r.try_get(4)?,
        item_type: r.try_get(5)?,
        item: r.try_get(6)?,
        description: r.try_get(7)?,
        prev_hash: r.try_get(8)?,
        hash: r.try_get(9)?,
    })
}

/// Appends `e` to the audit chain inside `tx` (see [`crate::store::Store::audit_append`]).
/// The entry is built and hashed exactly as the SQLite store does (`AuditEntry::compute_hash`
/// over the same strings), so `audit verify` reads either store the same way.
pub fn append_audit(tx: &mut impl GenericClient, e: &NewAudit) -> StoreResult<AuditEntry> {
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&AUDIT_LOCK.0, &AUDIT_LOCK.1],
    )?;
    let last = tx.query_opt("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1", &[])?;
    let (id, prev) = match last {
        Some(r) => (r.try_get::<_, i64>(0)? + 1, r.try_get::<_, String>(1)?),
        None => (1, GENESIS.to_string()),
    };
    let mut entry = AuditEntry {
        id,
        at: now(),
        user_oid: e.user_oid.clone(),
        user_upn: e.user_upn.clone(),
        action: e.action.to_string(),
        item_type: e.item_type.to_string(),
        item: e.item.clone(),
        description: e.description.clone(),
        prev_hash: prev,
        hash: String::new(),
    };
    entry.hash = entry.compute_hash();
    tx.execute(
        &format!(
            "INSERT INTO audit ({AUDIT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ),
        &[
            &entry.id,
            &entry.at,
            &entry.user_oid,
            &entry.user_upn,
            &entry.action,
            &entry.item_type,
            &entry.item,
            &entry.description,
            &entry.prev_hash,
            &entry.hash,
        ],
    )?;
    Ok(entry)
}

fn contains(s: &str) -> String {
    format!("%{}%", like_escape(s))
}

/// See [`crate::store::Store::audit_search`].
pub fn audit_search(c: &mut impl GenericClient, q: &AuditQuery) -> StoreResult<Page<AuditEntry>> {
    let mut a = Args::default();
    let mut wh = Vec::new();
    if let Some(f) = &q.from {
        wh.push(format!("at >= {}", a.push(f.clone())));
    }
    if let Some(t) = &q.to {
        wh.push(format!("at < {}", a.push(t.clone())));
    }
    if let Some(n) = &q.name {
        let p = a.push(contains(n));
        wh.push(format!(
            "(user_upn ILIKE {p} ESCAPE '\\' OR user_oid ILIKE {p} ESCAPE '\\')"
        ));
    }
    if let Some(x) = &q.action {
        wh.push(format!("action = {}", a.push(x.clone())));
    }
    if let Some(i) = &q.item {
        wh.push(format!("item = {}", a.push(i.clone())));
    }
    if let Some(t) = &q.text {
        wh.push(format!(
            "description ILIKE {} ESCAPE '\\'",
            a.push(contains(t))
        ));
    }
    let wh = if wh.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", wh.join(" AND "))
    };
    let (page, size, offset) = page_bounds(q.page, q.page_size);
    let total: i64 = c
        .query_one(&format!("SELECT COUNT(*) FROM audit {wh}"), &a.refs())?
        .try_get(0)?;
    let items = c
        .query(
            &format!(
                "SELECT {AUDIT_COLS} FROM audit {wh} ORDER BY id DESC LIMIT {size} OFFSET {offset}"
            ),
            &a.refs(),
        )?
        .iter()
        .map(audit_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page {
        total: total as u64,
        total_is_lower_bound: false,
        page,
        page_size: size,
        items,
    })
}

/// See [`crate::store::Store::audit_all`].
pub fn audit_all(c: &mut impl GenericClient) -> StoreResult<Vec<AuditEntry>> {
    Ok(
        c.query(&format!("SELECT {AUDIT_COLS} FROM audit ORDER BY id"), &[])?
            .iter()
            .map(audit_from_row)
            .collect::<Result<Vec<_>, _>>()?,
    )
}
