//! Interactions in PostgreSQL: ingest (legs, pairing), search, detail, deletion requests,
//! tags and notes. The SQL mirrors `store/sqlite.rs` statement by statement; where the two
//! engines differ (trigram and word search, NULL ordering, id generation) the comments say how
//! the behaviour is kept the same.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use postgres::types::ToSql;
use postgres::{GenericClient, Row, Statement};

use super::{unique_violation, Args};
use crate::model::{
    fmt_time, playable_legs, BotRole, InteractionDetail, InteractionSummary, Leg, LegUpdate,
    MediaStatus, MergeInfo, MergeState, Note, Tag,
};
use crate::rbac::Scope;
use crate::store::sqlite::{
    aggregate_status, like_escape, now, page_bounds, party_cols, PAIR_WINDOW_SECS, SORT_COLUMNS,
    SUMMARY_COLUMNS,
};
use crate::store::{
    capped_total, Actor, DeletionRequest, DeletionScope, Page, SearchQuery, StoreError,
    StoreResult, UpsertOutcome, TOTAL_CAP,
};

/// Namespace (first key) of the advisory locks that serialise the ingest of one pairing key
/// across connections and daemons: the two legs of a Pro call arrive at about the same time,
/// and without the lock both could create an interaction instead of pairing.
const PAIRING_LOCK_SPACE: i32 = 1;

/// The words of a note or of a notes search, as SQLite's FTS5 `unicode61` tokenizer sees them:
/// runs of letters and digits, case-folded, diacritics removed, so that the PostgreSQL and
/// SQLite stores find the same notes. (PostgreSQL's own `to_tsvector` parser keeps e-mail
/// addresses, host names and hyphenated words whole, which FTS5 splits.)
pub fn note_words(text: &str) -> Vec<String> {
    use unicode_normalization::char::is_combining_mark;
    use unicode_normalization::UnicodeNormalization;
    let words: BTreeSet<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.nfd()
                .filter(|c| !is_combining_mark(*c))
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect();
    words.into_iter().collect()
}

fn contains(s: &str) -> String {
    format!("%{}%", like_escape(s))
}

/// The party rules: `*Bill` a name containing Bill, `732*` a number starting with 732, `732`
/// a number containing 732. `ILIKE` on a `"C"` column folds ASCII case only, as SQLite's
/// `LIKE` (and FTS5 trigrams) do; the pg_trgm GIN indexes serve all three forms.
fn party_rule(label_col: &str, key_col: &str, rule: &str, a: &mut Args) -> String {
    if let Some(name) = rule.strip_prefix('*') {
        format!("{label_col} ILIKE {} ESCAPE '\\'", a.push(contains(name)))
    } else if let Some(prefix) = rule.strip_suffix('*') {
        format!(
            "{key_col} ILIKE {} ESCAPE '\\'",
            a.push(format!("{}%", like_escape(prefix)))
        )
    } else {
        format!("{key_col} ILIKE {} ESCAPE '\\'", a.push(contains(rule)))
    }
}

/// Appends the `scope` restriction.
fn scope_clause(scope: &Scope, wh: &mut Vec<String>, a: &mut Args) {
    match scope {
        Scope::All => {}
        Scope::Nothing => wh.push("false".into()),
        Scope::Users { oids, upns } => {
            let mut sel = Vec::new();
            if !oids.is_empty() {
                sel.push(format!(
                    "SELECT interaction_id FROM interaction_targets WHERE oid = ANY({})",
                    a.push(oids.iter().cloned().collect::<Vec<_>>())
                ));
            }
            if !upns.is_empty() {
                let upns: Vec<String> = upns.iter().map(|s| s.to_lowercase()).collect();
                sel.push(format!(
                    "SELECT interaction_id FROM interaction_targets WHERE upn = ANY({})",
                    a.push(upns)
                ));
            }
            if sel.is_empty() {
                wh.push("false".into());
            } else {
                wh.push(format!("i.id IN ({})", sel.join(" UNION ")));
            }
        }
    }
}

fn build_where(q: &SearchQuery, scope: &Scope, a: &mut Args) -> StoreResult<String> {
    let mut wh: Vec<String> = Vec::new();
    scope_clause(scope, &mut wh, a);
    let text_in = |col: &str, vals: Vec<&'static str>, wh: &mut Vec<String>, a: &mut Args| {
        if !vals.is_empty() {
            let vals: Vec<String> = vals.into_iter().map(String::from).collect();
            wh.push(format!("{col} = ANY({})", a.push(vals)));
        }
    };
    text_in(
        "i.media_status",
        q.media_status.iter().map(|s| s.as_str()).collect(),
        &mut wh,
        a,
    );
    text_in(
        "i.direction",
        q.direction.iter().map(|s| s.as_str()).collect(),
        &mut wh,
        a,
    );
    text_in(
        "i.call_type",
        q.call_type.iter().map(|s| s.as_str()).collect(),
        &mut wh,
        a,
    );
    text_in(
        "i.release_cause",
        q.release_cause.iter().map(|s| s.as_str()).collect(),
        &mut wh,
        a,
    );
    if !q.ids.is_empty() {
        wh.push(format!("i.id = ANY({})", a.push(q.ids.clone())));
    }
    if !q.users.is_empty() {
        let oids = a.push(q.users.clone());
        let upns = a.push(q.users.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>());
        wh.push(format!(
            "i.id IN (SELECT interaction_id FROM interaction_targets WHERE oid = ANY({oids}) \
             UNION SELECT interaction_id FROM interaction_targets WHERE upn = ANY({upns}))"
        ));
    }
    if !q.groups.is_empty() {
        let g = a.push(q.groups.clone());
        wh.push(format!(
            "EXISTS (SELECT 1 FROM interaction_targets t WHERE t.interaction_id = i.id AND \
             (t.oid IN (SELECT oid FROM group_members WHERE group_id = ANY({g})) OR \
              t.upn IN (SELECT lower(u.upn) FROM users u JOIN group_members gm ON gm.oid = u.oid WHERE gm.group_id = ANY({g}))))"
        ));
    }
    if let Some(f) = &q.from {
        wh.push(format!("i.start_time >= {}", a.push(fmt_time(f))));
    }
    if let Some(t) = &q.to {
        wh.push(format!("i.start_time < {}", a.push(fmt_time(t))));
    }
    // Stored times are `YYYY-MM-DDTHH:MM:SS.sssZ`: characters 12..16 are the time of day.
    if let Some(t) = &q.time_from {
        wh.push(format!(
            "substr(i.start_time, 12, 5) >= {}",
            a.push(t.clone())
        ));
    }
    if let Some(t) = &q.time_to {
        wh.push(format!(
            "substr(i.start_time, 12, 5) < {}",
            a.push(t.clone())
        ));
    }
    if !q.tags.is_empty() {
        wh.push(format!(
            "EXISTS (SELECT 1 FROM interaction_tags it WHERE it.interaction_id = i.id AND \
             it.tag_id IN (SELECT id FROM tags WHERE name = ANY({})))",
            a.push(q.tags.clone())
        ));
    }
    if let Some(r) = &q.called {
        wh.push(party_rule("i.called_party", "i.called_party_key", r, a));
    }
    if let Some(r) = &q.calling {
        wh.push(party_rule("i.calling_party", "i.calling_party_key", r, a));
    }
    if let Some(r) = &q.answered {
        wh.push(party_rule("i.answered_by", "i.answered_by_key", r, a));
    }
    if let Some(s) = &q.participant {
        let p = a.push(contains(s));
        wh.push(format!(
            "EXISTS (SELECT 1 FROM interaction_participants ip WHERE ip.interaction_id = i.id AND \
             (ip.display_name ILIKE {p} ESCAPE '\\' OR ip.upn ILIKE {p} ESCAPE '\\' OR ip.number ILIKE {p} ESCAPE '\\'))"
        ));
    }
    if let Some(n) = &q.notes {
        let words = note_words(n);
        if words.is_empty() {
            return Err(StoreError::Invalid("notes: no word to look for".into()));
        }
        wh.push(format!(
            "i.id IN (SELECT n.interaction_id FROM notes n WHERE n.words @> {})",
            a.push(words)
        ));
    }
    Ok(if wh.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", wh.join(" AND "))
    })
}

fn summary_from_row(r: &Row) -> Result<InteractionSummary, postgres::Error> {
    Ok(InteractionSummary {
        id: r.try_get(0)?,
        pairing_key: r.try_get(1)?,
        call_id: r.try_get(2)?,
        target_display_name: r.try_get(3)?,
        target_upn: r.try_get(4)?,
        on_behalf_of: r.try_get(5)?,
        transferred_by: r.try_get(6)?,
        transferred_to: r.try_get(7)?,
        called_party: r.try_get(8)?,
        calling_party: r.try_get(9)?,
        answered_by: r.try_get(10)?,
        answered_time: r.try_get(11)?,
        start_time: r.try_get(12)?,
        release_time: r.try_get(13)?,
        sip_call_id: r.try_get(14)?,
        sys_call_id: r.try_get(15)?,
        direction: r.try_get(16)?,
        call_type: r.try_get(17)?,
        release_cause: r.try_get(18)?,
        media_status: r.try_get(19)?,
        expiration: r.try_get(20)?,
        queue_name: r.try_get(21)?,
        double_recording_type: r.try_get(22)?,
        paired_call: r.try_get(23)?,
        profile: r.try_get(24)?,
        wait_time_ms: r.try_get(25)?,
        hold_time_ms: r.try_get(26)?,
        participants: Vec::new(),
        tags: Vec::new(),
        notes: Vec::new(),
    })
}

/// Fills participants, tags and notes of a page of rows.
fn fill_lists(c: &mut impl GenericClient, rows: &mut [InteractionSummary]) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let index: HashMap<i64, usize> = rows.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
    let lists = [
        "SELECT interaction_id, CASE WHEN display_name <> '' THEN display_name WHEN upn <> '' THEN upn ELSE number END \
         FROM interaction_participants WHERE interaction_id = ANY($1) ORDER BY id",
        // lower() of a "C" text folds ASCII only: SQLite's NOCASE order.
        "SELECT it.interaction_id, t.name FROM interaction_tags it JOIN tags t ON t.id = it.tag_id \
         WHERE it.interaction_id = ANY($1) ORDER BY lower(t.name), t.id",
        "SELECT interaction_id, text FROM notes WHERE interaction_id = ANY($1) ORDER BY id",
    ];
    for (which, sql) in lists.iter().enumerate() {
        for r in c.query(*sql, &[&ids])? {
            let id: i64 = r.try_get(0)?;
            let v: String = r.try_get(1)?;
            if let Some(&i) = index.get(&id) {
                match which {
                    0 => rows[i].participants.push(v),
                    1 => rows[i].tags.push(v),
                    _ => rows[i].notes.push(v),
                }
            }
        }
    }
    Ok(())
}

fn parse_leg(body: &str) -> StoreResult<LegUpdate> {
    serde_json::from_str(body).map_err(|e| StoreError::Db(e.to_string()))
}

/// Rewrites the interaction's columns, targets and participants from its legs.
fn recompute(tx: &mut impl GenericClient, px: &mut Prepared, id: i64) -> StoreResult<()> {
    let mut legs: Vec<(BotRole, LegUpdate)> = Vec::new();
    for r in px.query(
        tx,
        "SELECT bot_role, body FROM legs WHERE interaction_id = $1 ORDER BY id",
        &[&id],
    )? {
        let role: String = r.try_get(0)?;
        let body: String = r.try_get(1)?;
        legs.push((
            BotRole::parse(&role).unwrap_or(BotRole::Primary),
            parse_leg(&body)?,
        ));
    }
    let Some(rep) = legs
        .iter()
        .find(|(r, _)| *r == BotRole::Primary)
        .or(legs.first())
        .map(|(_, l)| l.clone())
    else {
        return Ok(());
    };
    let paired_call = legs
        .iter()
        .find(|(r, _)| *r == BotRole::Paired)
        .map(|(_, l)| l.call_id.clone())
        .unwrap_or_default();
    let current: String = px
        .query_one(
            tx,
            "SELECT media_status FROM interactions WHERE id = $1",
            &[&id],
        )?
        .try_get(0)?;
    // Deletion is the store's decision; a late update from a bot does not undo it.
    let status = if current == MediaStatus::Deleted.as_str() {
        MediaStatus::Deleted
    } else {
        aggregate_status(&legs)
    };
    let target = rep.targets.first().cloned().unwrap_or_default();
    let (called, called_key) = party_cols(&rep.called_party);
    let (calling, calling_key) = party_cols(&rep.calling_party);
    let (answered, answered_key) = party_cols(&rep.answered_by);
    // The longest retention any leg carries (see sqlite.rs).
    let expiration = legs
        .iter()
        .filter_map(|(_, l)| l.expiry())
        .max()
        .map(|t| fmt_time(&t));
    px.execute(
        tx,
        "UPDATE interactions SET call_id = $1, target_display_name = $2, target_upn = $3, \
         on_behalf_of = $4, transferred_by = $5, transferred_to = $6, called_party = $7, \
         called_party_key = $8, calling_party = $9, calling_party_key = $10, answered_by = $11, \
         answered_by_key = $12, answered_time = $13, start_time = $14, release_time = $15, \
         sip_call_id = $16, sys_call_id = $17, direction = $18, call_type = $19, \
         release_cause = $20, media_status = $21, expiration = $22, queue_name = $23, \
         double_recording_type = $24, paired_call = $25, profile = $26, wait_time_ms = $27, \
         hold_time_ms = $28, updated_at = $29 WHERE id = $30",
        &[
            &rep.call_id,
            &target.display_name.clone().unwrap_or_default(),
            &target.upn.clone().unwrap_or_default(),
            &party_cols(&rep.on_behalf_of).0,
            &party_cols(&rep.transferred_by).0,
            &party_cols(&rep.transferred_to).0,
            &called,
            &called_key,
            &calling,
            &calling_key,
            &answered,
            &answered_key,
            &rep.answered_time.as_ref().map(fmt_time),
            &fmt_time(&rep.start_time),
            &rep.release_time.as_ref().map(fmt_time),
            &rep.sip_call_id.clone().unwrap_or_default(),
            &rep.sys_call_id.clone().unwrap_or_default(),
            &rep.direction.as_str(),
            &rep.call_type.as_str(),
            &rep.release_cause.map(|c| c.as_str()).unwrap_or(""),
            &status.as_str(),
            &expiration,
            &rep.queue_name.clone().unwrap_or_default(),
            &rep.double_recording_type,
            &paired_call,
            &rep.profile,
            &rep.wait_time_ms.map(|v| v.min(i64::MAX as u64) as i64),
            &(rep.hold_time_ms.min(i64::MAX as u64) as i64),
            &now(),
            &id,
        ],
    )?;
    // Both legs stored: queue the merge once (see sqlite.rs).
    let available = |role: BotRole| {
        legs.iter()
            .any(|(r, l)| *r == role && l.media_status == MediaStatus::Available)
    };
    if status != MediaStatus::Deleted && available(BotRole::Primary) && available(BotRole::Paired) {
        px.execute(
            tx,
            "UPDATE interactions SET merge_state = 'pending' WHERE id = $1 AND merge_state = ''",
            &[&id],
        )?;
    }
    px.execute(
        tx,
        "DELETE FROM interaction_targets WHERE interaction_id = $1",
        &[&id],
    )?;
    for t in &rep.targets {
        px.execute(
            tx,
            "INSERT INTO interaction_targets (interaction_id, oid, upn) VALUES ($1, $2, $3)",
            &[
                &id,
                &t.id.clone().unwrap_or_default(),
                &t.upn.clone().unwrap_or_default().to_lowercase(),
            ],
        )?;
    }
    px.execute(
        tx,
        "DELETE FROM interaction_participants WHERE interaction_id = $1",
        &[&id],
    )?;
    for p in &rep.participants {
        px.execute(tx,
            "INSERT INTO interaction_participants (interaction_id, participant_id, kind, display_name, upn, number, join_time, leave_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &id,
                &p.participant_id,
                &p.party.kind,
                &p.party.display_name.clone().unwrap_or_default(),
                &p.party.upn.clone().unwrap_or_default(),
                &p.party.number.clone().unwrap_or_default(),
                &p.join_time.as_ref().map(fmt_time),
                &p.leave_time.as_ref().map(fmt_time),
            ],
        )?;
    }
    Ok(())
}

/// Whether interaction `id` exists within `scope`.
pub fn visible(c: &mut impl GenericClient, id: i64, scope: &Scope) -> StoreResult<bool> {
    let mut a = Args::default();
    let mut wh = vec![format!("i.id = {}", a.push(id))];
    scope_clause(scope, &mut wh, &mut a);
    let sql = format!("SELECT 1 FROM interactions i WHERE {}", wh.join(" AND "));
    Ok(c.query_opt(&sql, &a.refs())?.is_some())
}

fn note_from_row(r: &Row) -> Result<Note, postgres::Error> {
    Ok(Note {
        id: r.try_get(0)?,
        interaction_id: r.try_get(1)?,
        author_oid: r.try_get(2)?,
        author_upn: r.try_get(3)?,
        created_at: r.try_get(4)?,
        text: r.try_get(5)?,
    })
}

fn tag_from_row(r: &Row) -> Result<Tag, postgres::Error> {
    Ok(Tag {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        description: r.try_get(2)?,
    })
}

/// Takes the ingest locks of `legs`' pairing keys in one statement, in the order of their
/// lock keys, so that two batches sharing keys wait for each other instead of deadlocking.
pub fn lock_pairing_keys<'a>(
    tx: &mut impl GenericClient,
    legs: impl IntoIterator<Item = &'a LegUpdate>,
) -> StoreResult<()> {
    let keys: Vec<String> = legs
        .into_iter()
        .map(|l| l.pairing_key.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, h) FROM \
         (SELECT DISTINCT hashtext(k) AS h FROM unnest($2::text[]) AS k ORDER BY h) AS locks",
        &[&PAIRING_LOCK_SPACE, &keys],
    )?;
    Ok(())
}

/// The ingest path's statements, each parsed once per transaction: a batch of 1 000 legs runs
/// the same dozen statements, and parsing each every time doubles the round trips.
#[derive(Default)]
pub struct Prepared(HashMap<&'static str, Statement>);

impl Prepared {
    fn get(
        &mut self,
        c: &mut impl GenericClient,
        sql: &'static str,
    ) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.0.get(sql) {
            return Ok(s.clone());
        }
        let s = c.prepare(sql)?;
        self.0.insert(sql, s.clone());
        Ok(s)
    }

    fn execute(
        &mut self,
        c: &mut impl GenericClient,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let st = self.get(c, sql)?;
        c.execute(&st, params)
    }

    fn query(
        &mut self,
        c: &mut impl GenericClient,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let st = self.get(c, sql)?;
        c.query(&st, params)
    }

    fn query_one(
        &mut self,
        c: &mut impl GenericClient,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, postgres::Error> {
        let st = self.get(c, sql)?;
        c.query_one(&st, params)
    }

    fn query_opt(
        &mut self,
        c: &mut impl GenericClient,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, postgres::Error> {
        let st = self.get(c, sql)?;
        c.query_opt(&st, params)
    }
}

/// Creates or updates one leg inside `tx` (see [`crate::store::Store::upsert_leg`]); the
/// caller holds the leg's pairing-key lock.
pub fn upsert_in(
    tx: &mut impl GenericClient,
    px: &mut Prepared,
    leg: &LegUpdate,
) -> StoreResult<UpsertOutcome> {
    let existing: Option<(i64, String, Option<String>, String)> = px.query_opt(tx,
            "SELECT interaction_id, bot_role, media_path, media_status FROM legs WHERE recording_id = $1",
            &[&leg.recording_id],
        )?
        .map(|r| -> Result<_, postgres::Error> {
            Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))
        })
        .transpose()?;
    // Media status only moves forward (MediaStatus::advance).
    let mut leg = std::borrow::Cow::Borrowed(leg);
    if let Some(old) = existing.as_ref().and_then(|e| MediaStatus::parse(&e.3)) {
        let status = old.advance(leg.media_status);
        if status != leg.media_status {
            leg.to_mut().media_status = status;
        }
    }
    let leg = leg.as_ref();
    let body = serde_json::to_string(leg).map_err(|e| StoreError::Db(e.to_string()))?;
    let outcome = if let Some((iid, role, old_path, _)) = existing {
        if role != leg.bot_role.as_str() {
            return Err(StoreError::Conflict(format!(
                "recording {} was posted as {role}, not {}",
                leg.recording_id,
                leg.bot_role.as_str()
            )));
        }
        // A metadata update without a media path keeps the one the uploader set.
        let path = leg.media_path.clone().or(old_path);
        px.execute(tx,
            "UPDATE legs SET call_id = $1, media_status = $2, media_path = $3, body = $4, updated_at = $5 WHERE recording_id = $6",
            &[&leg.call_id, &leg.media_status.as_str(), &path, &body, &now(), &leg.recording_id],
        )?;
        UpsertOutcome {
            interaction_id: iid,
            created_interaction: false,
            created_leg: false,
        }
    } else {
        let mut best: Option<(i64, i64)> = None;
        for r in px.query(tx,
            "SELECT i.id, i.start_time FROM interactions i WHERE i.pairing_key = $1 AND NOT EXISTS \
             (SELECT 1 FROM legs l WHERE l.interaction_id = i.id AND l.bot_role = $2) ORDER BY i.id",
            &[&leg.pairing_key, &leg.bot_role.as_str()],
        )? {
            let id: i64 = r.try_get(0)?;
            let start: String = r.try_get(1)?;
            let Ok(start) = DateTime::parse_from_rfc3339(&start) else {
                continue;
            };
            let gap = (start.with_timezone(&Utc) - leg.start_time)
                .num_seconds()
                .abs();
            if gap <= PAIR_WINDOW_SECS && best.is_none_or(|(_, g)| gap < g) {
                best = Some((id, gap));
            }
        }
        let (iid, created) = match best {
            Some((id, _)) => (id, false),
            None => {
                let t = now();
                let id: i64 = px.query_one(tx,
                        "INSERT INTO interactions (pairing_key, start_time, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4) RETURNING id",
                        &[&leg.pairing_key, &fmt_time(&leg.start_time), &t, &t],
                    )?
                    .try_get(0)?;
                (id, true)
            }
        };
        let r = px.execute(tx,
            "INSERT INTO legs (interaction_id, recording_id, bot_role, call_id, media_status, media_path, body, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &iid,
                &leg.recording_id,
                &leg.bot_role.as_str(),
                &leg.call_id,
                &leg.media_status.as_str(),
                &leg.media_path,
                &body,
                &now(),
            ],
        );
        match r {
            Ok(_) => {}
            // The same recording posted at once under another pairing key (whose lock this
            // post does not hold): the other post won.
            Err(e) if unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "recording {} was posted concurrently",
                    leg.recording_id
                )))
            }
            Err(e) => return Err(e.into()),
        }
        UpsertOutcome {
            interaction_id: iid,
            created_interaction: created,
            created_leg: true,
        }
    };
    recompute(tx, px, outcome.interaction_id)?;
    Ok(outcome)
}

/// See [`crate::store::Store::search`].
pub fn search(
    c: &mut impl GenericClient,
    q: &SearchQuery,
    scope: &Scope,
) -> StoreResult<Page<InteractionSummary>> {
    let mut a = Args::default();
    let wh = build_where(q, scope, &mut a)?;
    let col = SORT_COLUMNS
        .iter()
        .find(|(k, _)| *k == q.sort)
        .map(|(_, c)| *c)
        .ok_or_else(|| StoreError::Invalid(format!("cannot sort on {:?}", q.sort)))?;
    // SQLite puts NULLs first in ascending order and last in descending order.
    let dir = if q.descending {
        "DESC NULLS LAST"
    } else {
        "ASC NULLS FIRST"
    };
    let id_dir = if q.descending { "DESC" } else { "ASC" };
    let (page, size, offset) = page_bounds(q.page, q.page_size);
    // Counting stops after the cap, as on SQLite (same totals from both backends).
    let counted: i64 = c
        .query_one(
            &format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM interactions i {wh} LIMIT {}) AS capped",
                TOTAL_CAP + 1
            ),
            &a.refs(),
        )?
        .try_get(0)?;
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM interactions i {wh} ORDER BY {col} {dir}, i.id {id_dir} LIMIT {size} OFFSET {offset}"
    );
    let mut items = c
        .query(&sql, &a.refs())?
        .iter()
        .map(summary_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    fill_lists(c, &mut items)?;
    let (total, total_is_lower_bound) = capped_total(counted as u64, offset, items.len(), size);
    Ok(Page {
        total,
        total_is_lower_bound,
        page,
        page_size: size,
        items,
    })
}

/// See [`crate::store::Store::get`].
pub fn get(
    c: &mut impl GenericClient,
    id: i64,
    scope: &Scope,
) -> StoreResult<Option<InteractionDetail>> {
    if !visible(c, id, scope)? {
        return Ok(None);
    }
    let row = c.query_one(
        &format!("SELECT {SUMMARY_COLUMNS} FROM interactions i WHERE i.id = $1"),
        &[&id],
    )?;
    let mut summary = summary_from_row(&row)?;
    fill_lists(c, std::slice::from_mut(&mut summary))?;
    let mut legs = Vec::new();
    for r in c.query(
        "SELECT recording_id, bot_role, call_id, media_status, media_path, updated_at, body \
         FROM legs WHERE interaction_id = $1 ORDER BY bot_role DESC, id",
        &[&id],
    )? {
        let body: String = r.try_get(6)?;
        let role: String = r.try_get(1)?;
        let status: String = r.try_get(3)?;
        legs.push(Leg {
            recording_id: r.try_get(0)?,
            bot_role: BotRole::parse(&role).unwrap_or(BotRole::Primary),
            call_id: r.try_get(2)?,
            media_status: MediaStatus::parse(&status).unwrap_or(MediaStatus::Unavailable),
            media_path: r.try_get(4)?,
            updated_at: r.try_get(5)?,
            metadata: parse_leg(&body)?,
        });
    }
    let participant_details = legs
        .iter()
        .find(|l| l.bot_role == BotRole::Primary)
        .or(legs.first())
        .map(|l| l.metadata.participants.clone())
        .unwrap_or_default();
    let tag_details = c
        .query(
            "SELECT t.id, t.name, t.description FROM interaction_tags it JOIN tags t ON t.id = it.tag_id \
             WHERE it.interaction_id = $1 ORDER BY lower(t.name), t.id",
            &[&id],
        )?
        .iter()
        .map(tag_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let note_details = c
        .query(
            "SELECT id, interaction_id, author_oid, author_upn, created_at, text FROM notes \
             WHERE interaction_id = $1 ORDER BY id",
            &[&id],
        )?
        .iter()
        .map(note_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let r = c.query_one(
        "SELECT merge_state, merge_error, merged_at, merged_path, merged_storage \
         FROM interactions WHERE id = $1",
        &[&id],
    )?;
    let state: String = r.try_get(0)?;
    let merge = MergeInfo {
        state: MergeState::parse(&state).unwrap_or(MergeState::None),
        error: r.try_get(1)?,
        merged_at: r.try_get(2)?,
        media_path: r.try_get(3)?,
        storage: r.try_get(4)?,
    };
    let playable_legs = playable_legs(&summary.media_status, &legs, &merge);
    Ok(Some(InteractionDetail {
        summary,
        legs,
        participant_details,
        tag_details,
        note_details,
        merge,
        playable_legs,
    }))
}

/// See [`crate::store::Store::merge_pending`].
pub fn merge_pending(c: &mut impl GenericClient, after: i64, limit: u32) -> StoreResult<Vec<i64>> {
    let rows = c.query(
        "SELECT id FROM interactions WHERE merge_state = 'pending' AND id > $1 \
         AND media_status <> 'Deleted' ORDER BY id LIMIT $2",
        &[&after, &i64::from(limit)],
    )?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// See [`crate::store::Store::merge_finish`].
pub fn merge_finish(
    c: &mut impl GenericClient,
    id: i64,
    outcome: &crate::store::MergeOutcome,
) -> StoreResult<bool> {
    let n = match outcome {
        crate::store::MergeOutcome::Done {
            storage,
            media_path,
            at,
        } => c.execute(
            "UPDATE interactions SET merge_state = 'done', merged_path = $1, \
             merged_storage = $2, merged_at = $3, merge_error = '' \
             WHERE id = $4 AND merge_state = 'pending' AND media_status <> 'Deleted'",
            &[media_path, storage, &fmt_time(at), &id],
        )?,
        crate::store::MergeOutcome::Failed { error } => c.execute(
            "UPDATE interactions SET merge_state = 'failed', merge_error = $1 \
             WHERE id = $2 AND merge_state = 'pending' AND media_status <> 'Deleted'",
            &[error, &id],
        )?,
    };
    Ok(n == 1)
}

/// See [`crate::store::Store::leg_status`].
pub fn leg_status(
    c: &mut impl GenericClient,
    recording_id: &str,
) -> StoreResult<Option<(i64, MediaStatus)>> {
    let Some(r) = c.query_opt(
        "SELECT interaction_id, media_status FROM legs WHERE recording_id = $1",
        &[&recording_id],
    )?
    else {
        return Ok(None);
    };
    let st: String = r.try_get(1)?;
    let status = MediaStatus::parse(&st)
        .ok_or_else(|| StoreError::Db(format!("leg {recording_id}: media status {st:?}")))?;
    Ok(Some((r.try_get(0)?, status)))
}

/// See [`crate::store::Store::request_deletion`].
pub fn request_deletion(
    tx: &mut impl GenericClient,
    id: i64,
    scope: DeletionScope,
    authorized_by: &str,
    note: &str,
    by: &Actor,
    visible_to: &Scope,
) -> StoreResult<DeletionRequest> {
    if !visible(tx, id, visible_to)? {
        return Err(StoreError::NotFound(format!("interaction {id}")));
    }
    let held = tx.query_opt(
        "SELECT u.upn FROM interaction_targets t JOIN users u \
         ON (u.oid = t.oid OR lower(u.upn) = t.upn) \
         WHERE t.interaction_id = $1 AND u.legal_hold LIMIT 1",
        &[&id],
    )?;
    if let Some(r) = held {
        let upn: String = r.try_get(0)?;
        return Err(StoreError::Conflict(format!(
            "{upn} is on legal hold: the call cannot be deleted"
        )));
    }
    let at = now();
    let r = tx.query_one(
        "INSERT INTO deletion_requests (interaction_id, scope, authorized_by, note, requested_by, requested_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        &[&id, &scope.as_str(), &authorized_by, &note, &by.upn, &at],
    );
    let rid: i64 = match r {
        Ok(r) => r.try_get(0)?,
        Err(e) if unique_violation(&e) => {
            return Err(StoreError::Conflict(format!(
                "a deletion of interaction {id} is already pending"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    Ok(DeletionRequest {
        id: rid,
        interaction_id: id,
        scope,
        authorized_by: authorized_by.into(),
        note: note.into(),
        requested_by: by.upn.clone(),
        requested_at: at,
    })
}

/// See [`crate::store::Store::tags`].
pub fn tags(c: &mut impl GenericClient) -> StoreResult<Vec<Tag>> {
    Ok(c.query(
        "SELECT id, name, description FROM tags ORDER BY lower(name), id",
        &[],
    )?
    .iter()
    .map(tag_from_row)
    .collect::<Result<Vec<_>, _>>()?)
}

/// See [`crate::store::Store::create_tag`].
pub fn create_tag(c: &mut impl GenericClient, name: &str, description: &str) -> StoreResult<Tag> {
    match c.query_one(
        "INSERT INTO tags (name, description) VALUES ($1, $2) RETURNING id",
        &[&name, &description],
    ) {
        Ok(r) => Ok(Tag {
            id: r.try_get(0)?,
            name: name.into(),
            description: description.into(),
        }),
        Err(e) if unique_violation(&e) => Err(StoreError::Conflict(format!("tag {name:?} exists"))),
        Err(e) => Err(e.into()),
    }
}

/// See [`crate::store::Store::update_tag`].
pub fn update_tag(
    c: &mut impl GenericClient,
    id: i64,
    name: &str,
    description: &str,
) -> StoreResult<Tag> {
    match c.execute(
        "UPDATE tags SET name = $1, description = $2 WHERE id = $3",
        &[&name, &description, &id],
    ) {
        Ok(0) => Err(StoreError::NotFound(format!("tag {id}"))),
        Ok(_) => Ok(Tag {
            id,
            name: name.into(),
            description: description.into(),
        }),
        Err(e) if unique_violation(&e) => Err(StoreError::Conflict(format!("tag {name:?} exists"))),
        Err(e) => Err(e.into()),
    }
}

/// See [`crate::store::Store::delete_tag`].
pub fn delete_tag(c: &mut impl GenericClient, id: i64) -> StoreResult<()> {
    match c.execute("DELETE FROM tags WHERE id = $1", &[&id])? {
        0 => Err(StoreError::NotFound(format!("tag {id}"))),
        _ => Ok(()),
    }
}

/// See [`crate::store::Store::set_tags`].
pub fn set_tags(
    tx: &mut impl GenericClient,
    ids: &[i64],
    tag_ids: &[i64],
    scope: &Scope,
) -> StoreResult<()> {
    for &t in tag_ids {
        if tx
            .query_opt("SELECT 1 FROM tags WHERE id = $1", &[&t])?
            .is_none()
        {
            return Err(StoreError::NotFound(format!("tag {t}")));
        }
    }
    for &id in ids {
        if !visible(tx, id, scope)? {
            return Err(StoreError::NotFound(format!("interaction {id}")));
        }
        tx.execute(
            "DELETE FROM interaction_tags WHERE interaction_id = $1",
            &[&id],
        )?;
        for &t in tag_ids {
            tx.execute(
                "INSERT INTO interaction_tags (interaction_id, tag_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&id, &t],
            )?;
        }
    }
    Ok(())
}

/// See [`crate::store::Store::add_note`].
pub fn add_note(
    c: &mut impl GenericClient,
    id: i64,
    author: &Actor,
    text: &str,
    scope: &Scope,
) -> StoreResult<Note> {
    if !visible(c, id, scope)? {
        return Err(StoreError::NotFound(format!("interaction {id}")));
    }
    let at = now();
    let nid: i64 = c
        .query_one(
            "INSERT INTO notes (interaction_id, author_oid, author_upn, created_at, text, words) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[&id, &author.oid, &author.upn, &at, &text, &note_words(text)],
        )?
        .try_get(0)?;
    Ok(Note {
        id: nid,
        interaction_id: id,
        author_oid: author.oid.clone(),
        author_upn: author.upn.clone(),
        created_at: at,
        text: text.into(),
    })
}

/// See [`crate::store::Store::note`].
pub fn note(
    c: &mut impl GenericClient,
    id: i64,
    note_id: i64,
    scope: &Scope,
) -> StoreResult<Option<Note>> {
    if !visible(c, id, scope)? {
        return Ok(None);
    }
    Ok(c.query_opt(
        "SELECT id, interaction_id, author_oid, author_upn, created_at, text FROM notes \
             WHERE id = $1 AND interaction_id = $2",
        &[&note_id, &id],
    )?
    .map(|r| note_from_row(&r))
    .transpose()?)
}

/// See [`crate::store::Store::delete_note`].
pub fn delete_note(c: &mut impl GenericClient, id: i64, note_id: i64) -> StoreResult<()> {
    match c.execute(
        "DELETE FROM notes WHERE id = $1 AND interaction_id = $2",
        &[&note_id, &id],
    )? {
        0 => Err(StoreError::NotFound(format!("note {note_id}"))),
        _ => Ok(()),
    }
}
