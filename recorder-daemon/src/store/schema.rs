//! SQLite schema migrations, applied in order; `PRAGMA user_version` records how many ran.
//! A migration is never edited once released: a change is a new entry.

use rusqlite::Connection;

use super::StoreResult;

/// The migrations, oldest first.
pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE interactions (
    id INTEGER PRIMARY KEY,
    pairing_key TEXT NOT NULL,
    call_id TEXT NOT NULL DEFAULT '',
    target_display_name TEXT NOT NULL DEFAULT '',
    target_upn TEXT NOT NULL DEFAULT '',
    on_behalf_of TEXT NOT NULL DEFAULT '',
    transferred_by TEXT NOT NULL DEFAULT '',
    transferred_to TEXT NOT NULL DEFAULT '',
    called_party TEXT NOT NULL DEFAULT '',
    called_party_key TEXT NOT NULL DEFAULT '',
    calling_party TEXT NOT NULL DEFAULT '',
    calling_party_key TEXT NOT NULL DEFAULT '',
    answered_by TEXT NOT NULL DEFAULT '',
    answered_by_key TEXT NOT NULL DEFAULT '',
    answered_time TEXT,
    start_time TEXT NOT NULL,
    release_time TEXT,
    sip_call_id TEXT NOT NULL DEFAULT '',
    sys_call_id TEXT NOT NULL DEFAULT '',
    direction TEXT NOT NULL DEFAULT '',
    call_type TEXT NOT NULL DEFAULT '',
    release_cause TEXT NOT NULL DEFAULT '',
    media_status TEXT NOT NULL DEFAULT '',
    expiration TEXT,
    queue_name TEXT NOT NULL DEFAULT '',
    double_recording_type TEXT NOT NULL DEFAULT '',
    paired_call TEXT NOT NULL DEFAULT '',
    profile TEXT NOT NULL DEFAULT '',
    wait_time_ms INTEGER,
    hold_time_ms INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX interactions_start ON interactions(start_time);
CREATE INDEX interactions_pairing ON interactions(pairing_key);
CREATE INDEX interactions_status ON interactions(media_status, start_time);

CREATE TABLE legs (
    id INTEGER PRIMARY KEY,
    interaction_id INTEGER NOT NULL REFERENCES interactions(id) ON DELETE CASCADE,
    recording_id TEXT NOT NULL UNIQUE,
    bot_role TEXT NOT NULL,
    call_id TEXT NOT NULL,
    media_status TEXT NOT NULL,
    media_path TEXT,
    body TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX legs_interaction ON legs(interaction_id);

CREATE TABLE interaction_targets (
    interaction_id INTEGER NOT NULL REFERENCES interactions(id) ON DELETE CASCADE,
    oid TEXT NOT NULL,
    upn TEXT NOT NULL
);
CREATE INDEX targets_interaction ON interaction_targets(interaction_id);
CREATE INDEX targets_oid ON interaction_targets(oid);
CREATE INDEX targets_upn ON interaction_targets(upn);

CREATE TABLE interaction_participants (
    interaction_id INTEGER NOT NULL REFERENCES interactions(id) ON DELETE CASCADE,
    participant_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    display_name TEXT NOT NULL,
    upn TEXT NOT NULL,
    number TEXT NOT NULL,
    join_time TEXT,
    leave_time TEXT
);
CREATE INDEX participants_interaction ON interaction_participants(interaction_id);

CREATE TABLE tags (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    description TEXT NOT NULL DEFAULT ''
);
CREATE TABLE interaction_tags (
    interaction_id INTEGER NOT NULL REFERENCES interactions(id) ON DELETE CASCADE,
    tag_id INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    PRIMARY KEY (interaction_id, tag_id)
);
CREATE INDEX interaction_tags_tag ON interaction_tags(tag_id);

CREATE TABLE notes (
    id INTEGER PRIMARY KEY,
    interaction_id INTEGER NOT NULL REFERENCES interactions(id) ON DELETE CASCADE,
    author_oid TEXT NOT NULL,
    author_upn TEXT NOT NULL,
    created_at TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX notes_interaction ON notes(interaction_id);
CREATE VIRTUAL TABLE notes_fts USING fts5(text, content='notes', content_rowid='id');
CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN
    INSERT INTO notes_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER notes_ad AFTER DELETE ON notes BEGIN
    INSERT INTO notes_fts(notes_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;

CREATE TABLE users (
    oid TEXT PRIMARY KEY,
    upn TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    recording_profile TEXT,
    legal_hold INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX users_upn ON users(upn COLLATE NOCASE);
CREATE TABLE groups (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL DEFAULT ''
);
CREATE TABLE group_members (
    group_id TEXT NOT NULL,
    oid TEXT NOT NULL,
    PRIMARY KEY (group_id, oid)
);
CREATE INDEX group_members_oid ON group_members(oid);

CREATE TABLE access_profiles (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    body TEXT NOT NULL
);

CREATE TABLE saved_searches (
    id INTEGER PRIMARY KEY,
    owner_oid TEXT NOT NULL,
    name TEXT NOT NULL,
    query TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (owner_oid, name)
);

CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    user_oid TEXT NOT NULL,
    user_upn TEXT NOT NULL,
    action TEXT NOT NULL,
    item_type TEXT NOT NULL,
    item TEXT NOT NULL,
    description TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_at ON audit(at);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
"#,
    // Deletion requests: recorded now, executed by the retention cycle.
    r#"
CREATE TABLE deletion_requests (
    id INTEGER PRIMARY KEY,
    interaction_id INTEGER NOT NULL REFERENCES interactions(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    authorized_by TEXT NOT NULL,
    note TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    executed_at TEXT
);
CREATE UNIQUE INDEX deletion_pending ON deletion_requests(interaction_id) WHERE executed_at IS NULL;
"#,
    // The party "starts with" rule (`732*`) is a case-insensitive LIKE prefix: SQLite runs it
    // as an index range only on a NOCASE index.
    r#"
CREATE INDEX interactions_calling_key ON interactions(calling_party_key COLLATE NOCASE);
CREATE INDEX interactions_called_key ON interactions(called_party_key COLLATE NOCASE);
CREATE INDEX interactions_answered_key ON interactions(answered_by_key COLLATE NOCASE);
"#,
    // The party "contains" rule (`732`) as a substring search: FTS5 trigrams of the party keys,
    // kept by the store beside each interaction (rowid = interaction id).
    r#"
CREATE VIRTUAL TABLE party_trgm USING fts5(called, calling, answered, tokenize = 'trigram');
INSERT INTO party_trgm (rowid, called, calling, answered)
    SELECT id, called_party_key, calling_party_key, answered_by_key FROM interactions;
"#,
    // Recording profiles, edited through the API and served to bot-hosts.
    r#"
CREATE TABLE recording_profiles (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    body TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);
"#,
    // Alarms (one active row per name and source: raised once, cleared on recovery) and the
    // system activity log (docs/storage.md, "Alarms").
    r#"
CREATE TABLE alarms (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    oid TEXT NOT NULL,
    source TEXT NOT NULL,
    severity TEXT NOT NULL,
    text TEXT NOT NULL,
    corrective_action TEXT NOT NULL,
    raised_at TEXT NOT NULL,
    cleared_at TEXT
);
CREATE UNIQUE INDEX alarms_active ON alarms(name, source) WHERE cleared_at IS NULL;
CREATE TABLE system_activity (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    text TEXT NOT NULL,
    alarm_id INTEGER REFERENCES alarms(id)
);
"#,
    // Legal hold history (the retention rule needs when each hold began and ended) and the
    // expiration index the retention cycle walks. Users already on hold get an `on` event at
    // the epoch: their hold's real start is unknown, and the earliest start keeps the most.
    r#"
CREATE TABLE legal_hold_events (
    id INTEGER PRIMARY KEY,
    oid TEXT NOT NULL,
    hold_on INTEGER NOT NULL,
    at TEXT NOT NULL,
    by TEXT NOT NULL
);
CREATE INDEX legal_hold_events_oid ON legal_hold_events(oid, at);
INSERT INTO legal_hold_events (oid, hold_on, at, by)
    SELECT oid, 1, '1970-01-01T00:00:00.000Z', 'migration' FROM users WHERE legal_hold = 1;
CREATE INDEX interactions_expiration ON interactions(expiration);
"#,
    // The stored merge of a Pro call's two legs (docs/storage.md, "Merged recordings"):
    // '' (not applicable or not yet), 'pending' (both legs Available), 'done', 'failed'. The
    // merge task finds its work through the partial index, never by scanning every call.
    // Calls whose legs were both stored before this migration are queued too.
    r#"
ALTER TABLE interactions ADD COLUMN merge_state TEXT NOT NULL DEFAULT '';
ALTER TABLE interactions ADD COLUMN merged_path TEXT;
ALTER TABLE interactions ADD COLUMN merged_storage TEXT;
ALTER TABLE interactions ADD COLUMN merged_at TEXT;
ALTER TABLE interactions ADD COLUMN merge_error TEXT NOT NULL DEFAULT '';
CREATE INDEX interactions_merge_pending ON interactions(id) WHERE merge_state = 'pending';
UPDATE interactions SET merge_state = 'pending'
    WHERE media_status != 'Deleted'
      AND EXISTS (SELECT 1 FROM legs l WHERE l.interaction_id = interactions.id
                  AND l.bot_role = 'primary' AND l.media_status = 'Available')
      AND EXISTS (SELECT 1 FROM legs l WHERE l.interaction_id = interactions.id
                  AND l.bot_role = 'paired' AND l.media_status = 'Available');
"#,
    // The trigram index is written by every commit (one new FTS5 segment each), and merging
    // those segments was half of the ingest's time at a million calls (perf, docs/store.md
    // "Load"): merge 16 segments at a time instead of 4, so each byte is merged about half
    // as often; a "contains" search reads a few more segments.
    r#"
INSERT INTO party_trgm (party_trgm, rank) VALUES ('automerge', 16);
"#,
    // The trigram index keeps rowids only (detail=none, contentless): a fifth of the size of
    // the positions, columns and copy of the keys it held, and merging its segments was still
    // the largest part of ingest at a million calls (docs/store.md "Load"). Without
    // positions FTS5 cannot match a phrase or a column, so a "contains" search asks for every
    // trigram of the text in any party and checks the candidates' own column
    // (`party_rule`), which the index only narrows.
    r#"
DROP TABLE party_trgm;
CREATE VIRTUAL TABLE party_trgm USING fts5(called, calling, answered, tokenize = 'trigram',
    detail = none, content = '', contentless_delete = 1);
INSERT INTO party_trgm (party_trgm, rank) VALUES ('automerge', 16);
INSERT INTO party_trgm (rowid, called, calling, answered)
    SELECT id, called_party_key, calling_party_key, answered_by_key FROM interactions;
"#,
    // "Starts with" (`732*`) goes through the trigram index too, from three characters on
    // (`party_rule`): the three NOCASE indexes of the party keys were three of the ten
    // B-trees every new call wrote a random page of (docs/store.md "Load").
    r#"
DROP INDEX interactions_calling_key;
DROP INDEX interactions_called_key;
DROP INDEX interactions_answered_key;
"#,
];

/// Applies the migrations not yet applied, each in its own transaction.
pub fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let done: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if done > MIGRATIONS.len() {
        return Err(super::StoreError::Db(format!(
            "the database has schema version {done}, newer than this binary's {}",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_run_once_and_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut c = Connection::open(&path).unwrap();
        // A database left at the first version gets the later ones.
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        migrate(&mut c).unwrap();
        let v: usize = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len());
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM deletion_requests", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        migrate(&mut c).unwrap();
        c.pragma_update(None, "user_version", MIGRATIONS.len() + 1)
            .unwrap();
        assert!(migrate(&mut c).is_err());
    }
}
