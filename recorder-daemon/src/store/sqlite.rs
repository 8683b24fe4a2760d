//! The embedded store: SQLite (bundled), WAL. One connection writes, behind a mutex: short
//! transactions, and posted legs go through a writer thread that commits the posts waiting for
//! it together (group commit). Searches read through read-only connections of their own, and
//! checkpoints run on a thread of their own (docs/store.md).

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Transaction};

use super::retention;
use super::*;
use crate::audit::GENESIS;
use crate::model::{fmt_time, playable_legs, BotRole, Leg, MergeInfo, MergeState, Party};

/// API sort names and their SQL columns; nothing else reaches `ORDER BY`.
pub const SORT_COLUMNS: &[(&str, &str)] = &[
    ("id", "i.id"),
    ("callId", "i.call_id"),
    ("targetDisplayName", "i.target_display_name"),
    ("targetUpn", "i.target_upn"),
    ("onBehalfOf", "i.on_behalf_of"),
    ("transferredBy", "i.transferred_by"),
    ("transferredTo", "i.transferred_to"),
    ("calledParty", "i.called_party"),
    ("callingParty", "i.calling_party"),
    ("answeredBy", "i.answered_by"),
    ("answeredTime", "i.answered_time"),
    ("startTime", "i.start_time"),
    ("releaseTime", "i.release_time"),
    ("sipCallId", "i.sip_call_id"),
    ("sysCallId", "i.sys_call_id"),
    ("direction", "i.direction"),
    ("callType", "i.call_type"),
    ("releaseCause", "i.release_cause"),
    ("mediaStatus", "i.media_status"),
    ("expiration", "i.expiration"),
    ("queueName", "i.queue_name"),
    ("doubleRecordingType", "i.double_recording_type"),
    ("pairedCall", "i.paired_call"),
    ("profile", "i.profile"),
    ("waitTimeMs", "i.wait_time_ms"),
    ("holdTimeMs", "i.hold_time_ms"),
];

/// How far apart the start times of the two bots' legs of one call may be. Both bots are
/// invited by the same call within seconds; a transfer leg (same pairing key, same role) is
/// told apart by its role, a later call of the same chain by this window.
pub(super) const PAIR_WINDOW_SECS: i64 = 120;

pub(super) const SUMMARY_COLUMNS: &str =
    "i.id, i.pairing_key, i.call_id, i.target_display_name, i.target_upn, \
    i.on_behalf_of, i.transferred_by, i.transferred_to, i.called_party, i.calling_party, \
    i.answered_by, i.answered_time, i.start_time, i.release_time, i.sip_call_id, i.sys_call_id, \
    i.direction, i.call_type, i.release_cause, i.media_status, i.expiration, i.queue_name, \
    i.double_recording_type, i.paired_call, i.profile, i.wait_time_ms, i.hold_time_ms";

/// SQLite implementation of [`Store`].
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// Posts for the writer thread; `None` once dropped (the thread then ends).
    posts: Option<mpsc::Sender<Post>>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// The checkpoint thread of a store on disk, and what stops it.
    checkpointer: Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
    /// Read-only connections of a store on disk for searches and the audit trail, so that a
    /// supervisor's search does not wait behind the writer's commits (WAL readers see every
    /// committed post, and a post is answered only after its commit). Empty in memory: the
    /// writer's connection serves them.
    readers: Vec<Mutex<Connection>>,
    next_reader: std::sync::atomic::AtomicUsize,
}

/// Read connections of a store on disk: one per core of this machine's class.
const READERS: usize = 2;

/// How much of the database file reads map (SQLite caps it at its compile-time limit).
const MMAP_BYTES: i64 = 4 << 30;

/// How often the checkpoint thread copies committed WAL pages into the database.
const CHECKPOINT_EVERY: std::time::Duration =
    std::time::Duration::from_millis(if cfg!(test) { 5 } else { 250 });

/// WAL frames (pages) past which the checkpoint thread makes the next transaction restart the
/// WAL from its start (40 MiB): the file stays about this size, and its pages stay in memory.
const RESTART_FRAMES: i64 = if cfg!(test) { 200 } else { 10_000 };

/// The writer's own automatic checkpoint, a backstop should the checkpoint thread fall behind
/// or fail: the WAL then stops growing at about 400 MiB.
const WRITER_CHECKPOINT_FRAMES: i64 = 100_000;

/// Copies the WAL into the database on a connection and thread of its own, so that the copy
/// and its `fsync` overlap with ingest instead of stalling the writer between commits (they
/// were a third of the ingest's time at a million calls, perf, docs/store.md "Load").
///
/// Every [`CHECKPOINT_EVERY`] a PASSIVE checkpoint copies what is committed without blocking
/// anyone. That alone never lets the WAL restart under a steady ingest (a checkpoint must end
/// with nothing newer committed; the WAL grew to 15 GB in a run without more), so once it
/// holds [`RESTART_FRAMES`] a RESTART checkpoint holds the writer back while it copies the
/// little the last PASSIVE one left, and the next transaction writes the WAL from its start.
/// It holds the store's connection meanwhile: waiting for SQLite's write lock instead starved
/// (a busy writer takes the lock again at once, and the WAL reached 750 MB). A search running
/// on a read connection holds the RESTART (and so the writer) back until it ends. Ends when
/// the store is dropped.
fn checkpoint_loop(conn: Connection, store: Arc<Mutex<Connection>>, stop: mpsc::Receiver<()>) {
    let mut last_error = None;
    let checkpoint = |mode: &str| {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            r.get::<_, i64>(1)
        })
    };
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        let outcome = checkpoint("PASSIVE").and_then(|frames| {
            if frames >= RESTART_FRAMES {
                let _writer = store.lock().unwrap_or_else(|p| p.into_inner());
                checkpoint("RESTART")?;
            }
            Ok(())
        });
        // The WAL keeps every commit until a checkpoint succeeds: a failure costs disk, not
        // data. Said once per distinct error, not four times a second.
        let error = outcome.err().map(|e| e.to_string());
        if error.is_some() && error != last_error {
            eprintln!(
                "recorder-daemon: store checkpoint failed, retrying: {}",
                error.as_deref().unwrap_or_default()
            );
        }
        last_error = error;
    }
}

/// Most legs the writer commits in one transaction: a bound on the latency a post adds to the
/// others of its group.
const MAX_GROUP: usize = 1_000;

/// One post (`upsert_leg`) or batch (`upsert_legs`) waiting for the writer, and where its
/// result goes once its transaction is committed.
struct Post {
    legs: Vec<LegUpdate>,
    reply: mpsc::SyncSender<StoreResult<Vec<UpsertOutcome>>>,
}

/// The writer thread: takes a post, and with it every post already waiting (up to
/// [`MAX_GROUP`] legs), and commits them once: a busy ingest pays one commit for many posts
/// (a refused post leaves the others alone, [`commit_group`]). Each caller is
/// answered after the commit. Ends when the store is dropped.
fn write_loop(conn: Arc<Mutex<Connection>>, posts: mpsc::Receiver<Post>) {
    while let Ok(first) = posts.recv() {
        let mut n = first.legs.len();
        let mut group = vec![first];
        while n < MAX_GROUP {
            match posts.try_recv() {
                Ok(p) => {
                    n += p.legs.len();
                    group.push(p);
                }
                Err(_) => break,
            }
        }
        // A panic in one post must not end the writer (every later post would fail): its
        // transaction rolled back while unwinding, and the group is told.
        let results =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit_group(&conn, &group)))
                .unwrap_or_else(|_| {
                    group
                        .iter()
                        .map(|_| {
                            Err(StoreError::Db(
                                "the store failed on this batch of posts".into(),
                            ))
                        })
                        .collect()
                });
        for (p, r) in group.into_iter().zip(results) {
            // The caller may be gone (a cancelled request): its post is stored all the same.
            let _ = p.reply.send(r);
        }
    }
}

/// Applies the posts of a group in one transaction; the result of each. When one post is
/// refused the transaction is rolled back and each post of the group is applied again in a
/// transaction of its own, so a refused post leaves its neighbours alone.
///
/// Not savepoints: SQLite journals every page a post first touches under a savepoint, and
/// FTS5 writes its pending terms out as a new segment at each one, so a group in savepoints
/// cost more than the same posts committed one by one (perf, docs/store.md "Load"). Refusals
/// are rare (a leg posted under the other role, a post that breaks a constraint), so the
/// retry costs nothing on the common path.
fn commit_group(conn: &Mutex<Connection>, group: &[Post]) -> Vec<StoreResult<Vec<UpsertOutcome>>> {
    let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
    let apply = |tx: &Transaction<'_>, p: &Post| {
        p.legs
            .iter()
            .map(|l| upsert_in(tx, l))
            .collect::<StoreResult<Vec<_>>>()
    };
    let one_transaction = |conn: &mut Connection, posts: &[Post]| {
        let tx = conn.transaction()?;
        let mut out = Vec::with_capacity(posts.len());
        for p in posts {
            match apply(&tx, p) {
                Ok(r) => out.push(r),
                // Dropping `tx` rolls it back.
                Err(e) => return Ok(Err(e)),
            }
        }
        tx.commit()?;
        Ok::<_, rusqlite::Error>(Ok(out))
    };
    match one_transaction(&mut conn, group) {
        Ok(Ok(outcomes)) => outcomes.into_iter().map(Ok).collect(),
        Ok(Err(e)) if group.len() == 1 => vec![Err(e)],
        Err(e) if group.len() == 1 => vec![Err(e.into())],
        // Some post was refused, or the transaction failed: each post on its own.
        _ => group
            .iter()
            .map(
                |p| match one_transaction(&mut conn, std::slice::from_ref(p)) {
                    Ok(Ok(mut r)) => Ok(r.pop().unwrap_or_default()),
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(e.into()),
                },
            )
            .collect(),
    }
}

impl SqliteStore {
    /// Opens (creating) the database at `path`, in WAL mode, and migrates it.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| StoreError::Db(e.to_string()))?;
        }
        let mut store = Self::init(Connection::open(path)?)?;
        let checkpoints = Connection::open(path)?;
        checkpoints.busy_timeout(std::time::Duration::from_secs(5))?;
        store
            .lock()?
            .pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_FRAMES)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("store-checkpoints".into())
            .spawn({
                let store = store.conn.clone();
                move || checkpoint_loop(checkpoints, store, stopped)
            })
            .map_err(|e| StoreError::Db(format!("starting the store's checkpoints: {e}")))?;
        store.checkpointer = Some((stop, thread));
        for _ in 0..READERS {
            let r = Connection::open(path)?;
            r.busy_timeout(std::time::Duration::from_secs(5))?;
            r.pragma_update(None, "query_only", true)?;
            r.pragma_update(None, "cache_size", -32768)?;
            r.pragma_update(None, "mmap_size", MMAP_BYTES)?;
            store.readers.push(Mutex::new(r));
        }
        Ok(store)
    }

    /// An in-memory database (tests).
    #[cfg(test)]
    pub fn in_memory() -> StoreResult<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> StoreResult<Self> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // 64 MiB of page cache: the default 2 MiB thrashes on the random-key indexes of a
        // store with a million calls.
        conn.pragma_update(None, "cache_size", -65536)?;
        // Checkpoint every 40 MiB of WAL instead of 4 MiB: an index page changed by many
        // commits is copied into the database once per checkpoint. A store on disk hands its
        // checkpoints to a thread of its own (`checkpoint_loop`). The WAL file is cut back to
        // 64 MiB after each.
        conn.pragma_update(None, "wal_autocheckpoint", RESTART_FRAMES)?;
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        // Pages read through a memory map instead of a read() copy each: a fifth of the
        // ingest's time was the kernel copying index pages into the page cache.
        conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Every transaction of this connection writes, or may: take the write lock at BEGIN,
        // where a busy lock is waited for. A deferred one that read first and then found the
        // checkpoint thread restarting the WAL would fail at once (SQLITE_BUSY_SNAPSHOT).
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        // The writer's statements look rows up by key, whatever the key: with STAT4 samples
        // SQLite recompiled them for every new bound value (about 5% of ingest, perf), which
        // the query planner stability guarantee turns off. Searches plan on the read
        // connections, by their values.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        schema::migrate(&mut conn)?;
        // Planner statistics for the tables that changed a lot since they were last gathered
        // (cheap when nothing did); without them a search may walk the start-time index
        // instead of a selective filter's.
        conn.execute_batch("PRAGMA optimize=0x10002;")?;
        let conn = Arc::new(Mutex::new(conn));
        let (posts, queue) = mpsc::channel();
        let writer = {
            let conn = conn.clone();
            std::thread::Builder::new()
                .name("store-writer".into())
                .spawn(move || write_loop(conn, queue))
                .map_err(|e| StoreError::Db(format!("starting the store's writer: {e}")))?
        };
        Ok(Self {
            conn,
            posts: Some(posts),
            writer: Some(writer),
            checkpointer: None,
            readers: Vec::new(),
            next_reader: Default::default(),
        })
    }

    /// Hands `legs` to the writer thread and waits until they are committed (or refused).
    fn post(&self, legs: Vec<LegUpdate>) -> StoreResult<Vec<UpsertOutcome>> {
        let (reply, answer) = mpsc::sync_channel(1);
        let stopped = || StoreError::Db("the store's writer has stopped".into());
        self.posts
            .as_ref()
            .ok_or_else(stopped)?
            .send(Post { legs, reply })
            .map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }

    /// A read connection: a free one if any, else the next in turn (the writer's connection
    /// in memory).
    fn read(&self) -> StoreResult<std::sync::MutexGuard<'_, Connection>> {
        let n = self.readers.len();
        if n == 0 {
            return self.lock();
        }
        let start = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for k in 0..n {
            if let Ok(c) = self.readers[(start + k) % n].try_lock() {
                return Ok(c);
            }
        }
        Ok(self.readers[start % n]
            .lock()
            .unwrap_or_else(|p| p.into_inner()))
    }

    fn lock(&self) -> StoreResult<std::sync::MutexGuard<'_, Connection>> {
        // A panic in one store call must not take every later call down with it: the
        // transaction it held was rolled back when it unwound, so the connection is sound.
        Ok(self.conn.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for SqliteStore {
    /// Lets the writer finish the posts it holds and closes the database before returning, so
    /// that the file can be reopened (or removed) right after.
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.checkpointer.take() {
            drop(stop);
            let _ = thread.join();
        }
        self.posts.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// Executes through the statement cache: the ingest path runs the same few statements for
/// every post, and compiling them each time costs more than running them.
fn exec(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(p)
}

pub(super) fn now() -> String {
    fmt_time(&Utc::now())
}

/// Escapes `%`, `_` and `\` for `LIKE ... ESCAPE '\'`.
pub(super) fn like_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

fn contains(s: &str) -> Value {
    Value::Text(format!("%{}%", like_escape(s)))
}

/// The party rules: `*Bill` a name containing Bill, `732*` a number starting with 732, `732`
/// a number containing 732. The number rules go through the trigram index from three
/// characters on; shorter ones read every call.
fn party_rule(label_col: &str, key_col: &str, rule: &str, params: &mut Vec<Value>) -> String {
    if let Some(name) = rule.strip_prefix('*') {
        params.push(contains(name));
        return format!("{label_col} LIKE ? ESCAPE '\\'");
    }
    let (text, pattern) = match rule.strip_suffix('*') {
        Some(prefix) => (prefix, Value::Text(format!("{}%", like_escape(prefix)))),
        None => (rule, contains(rule)),
    };
    let like = format!("{key_col} LIKE ? ESCAPE '\\'");
    match trigram_query(text) {
        // The index narrows to calls holding every trigram of the text in some party; the
        // column itself decides (the index has neither positions nor columns).
        Some(trigrams) => {
            params.push(Value::Text(trigrams));
            params.push(pattern);
            format!("i.id IN (SELECT rowid FROM party_trgm WHERE party_trgm MATCH ?) AND {like}")
        }
        None => {
            params.push(pattern);
            like
        }
    }
}

/// The FTS5 query for calls holding every trigram of `text` (`"abc" AND "bcd"`), or `None`
/// for text shorter than a trigram.
fn trigram_query(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut seen = BTreeSet::new();
    let terms: Vec<String> = chars
        .windows(3)
        .map(|w| w.iter().collect::<String>().to_lowercase())
        .filter(|t| seen.insert(t.clone()))
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" AND "))
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

/// An FTS5 query matching notes that hold every word of `text` as a whole word. Each word is
/// quoted, so FTS syntax in the input is only ever text.
pub fn fts_words(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{w}\""))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// Appends the `scope` restriction.
fn scope_clause(scope: &Scope, wh: &mut Vec<String>, params: &mut Vec<Value>) {
    match scope {
        Scope::All => {}
        Scope::Nothing => wh.push("0".into()),
        Scope::Users { oids, upns } => {
            let mut sel = Vec::new();
            if !oids.is_empty() {
                sel.push(format!(
                    "SELECT interaction_id FROM interaction_targets WHERE oid IN ({})",
                    placeholders(oids.len())
                ));
                params.extend(oids.iter().map(|s| Value::Text(s.clone())));
            }
            if !upns.is_empty() {
                sel.push(format!(
                    "SELECT interaction_id FROM interaction_targets WHERE upn IN ({})",
                    placeholders(upns.len())
                ));
                params.extend(upns.iter().map(|s| Value::Text(s.to_lowercase())));
            }
            if sel.is_empty() {
                wh.push("0".into());
            } else {
                wh.push(format!("i.id IN ({})", sel.join(" UNION ")));
            }
        }
    }
}

/// How the notes filter is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NotesForm {
    /// Usable as an index: the search starts from the matching notes.
    Driving,
    /// A membership test only (`+i.id`): the search starts elsewhere, usually the sort
    /// column's index, and tests each call against the matching set (built once).
    Membership,
}

/// How many notes a search's word must match before the page walks the sort index instead of
/// starting from the notes. At a million calls sorting 17 000 matches took 100 ms; walking
/// the start-time index finds 50 of them among the first few thousand entries.
const BROAD_NOTES: i64 = 2_000;

/// Whether the notes filter of `q` matches at least [`BROAD_NOTES`] notes (counted in the
/// full-text index alone, without reading a call).
fn notes_are_broad(conn: &Connection, q: &SearchQuery) -> StoreResult<bool> {
    let Some(m) = q.notes.as_deref().and_then(fts_words) else {
        return Ok(false);
    };
    let n: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM (SELECT 1 FROM notes_fts WHERE notes_fts MATCH ? LIMIT ?)",
        )?
        .query_row(params![m, BROAD_NOTES], |r| r.get(0))?;
    Ok(n >= BROAD_NOTES)
}

fn build_where(q: &SearchQuery, scope: &Scope) -> StoreResult<(String, Vec<Value>)> {
    build_where_with(q, scope, NotesForm::Driving)
}

fn build_where_with(
    q: &SearchQuery,
    scope: &Scope,
    notes_form: NotesForm,
) -> StoreResult<(String, Vec<Value>)> {
    let mut wh: Vec<String> = Vec::new();
    let mut p: Vec<Value> = Vec::new();
    scope_clause(scope, &mut wh, &mut p);
    let mut text_in = |col: &str, vals: Vec<&'static str>, wh: &mut Vec<String>| {
        if !vals.is_empty() {
            wh.push(format!("{col} IN ({})", placeholders(vals.len())));
            p.extend(vals.into_iter().map(|s| Value::Text(s.into())));
        }
    };
    text_in(
        "i.media_status",
        q.media_status.iter().map(|s| s.as_str()).collect(),
        &mut wh,
    );
    text_in(
        "i.direction",
        q.direction.iter().map(|s| s.as_str()).collect(),
        &mut wh,
    );
    text_in(
        "i.call_type",
        q.call_type.iter().map(|s| s.as_str()).collect(),
        &mut wh,
    );
    text_in(
        "i.release_cause",
        q.release_cause.iter().map(|s| s.as_str()).collect(),
        &mut wh,
    );
    if !q.ids.is_empty() {
        wh.push(format!("i.id IN ({})", placeholders(q.ids.len())));
        p.extend(q.ids.iter().map(|i| Value::Integer(*i)));
    }
    if !q.users.is_empty() {
        let n = placeholders(q.users.len());
        wh.push(format!(
            "i.id IN (SELECT interaction_id FROM interaction_targets WHERE oid IN ({n}) \
             UNION SELECT interaction_id FROM interaction_targets WHERE upn IN ({n}))"
        ));
        p.extend(q.users.iter().map(|s| Value::Text(s.clone())));
        p.extend(q.users.iter().map(|s| Value::Text(s.to_lowercase())));
    }
    if !q.groups.is_empty() {
        let n = placeholders(q.groups.len());
        wh.push(format!(
            "EXISTS (SELECT 1 FROM interaction_targets t WHERE t.interaction_id = i.id AND \
             (t.oid IN (SELECT oid FROM group_members WHERE group_id IN ({n})) OR \
              t.upn IN (SELECT lower(u.upn) FROM users u JOIN group_members gm ON gm.oid = u.oid WHERE gm.group_id IN ({n}))))"
        ));
        p.extend(q.groups.iter().map(|s| Value::Text(s.clone())));
        p.extend(q.groups.iter().map(|s| Value::Text(s.clone())));
    }
    if let Some(f) = &q.from {
        wh.push("i.start_time >= ?".into());
        p.push(Value::Text(fmt_time(f)));
    }
    if let Some(t) = &q.to {
        wh.push("i.start_time < ?".into());
        p.push(Value::Text(fmt_time(t)));
    }
    // Stored times are `YYYY-MM-DDTHH:MM:SS.sssZ`: characters 12..16 are the time of day.
    if let Some(t) = &q.time_from {
        wh.push("substr(i.start_time, 12, 5) >= ?".into());
        p.push(Value::Text(t.clone()));
    }
    if let Some(t) = &q.time_to {
        wh.push("substr(i.start_time, 12, 5) < ?".into());
        p.push(Value::Text(t.clone()));
    }
    if !q.tags.is_empty() {
        // Correlated on the (interaction, tag) key: ten times faster than a list of every
        // tagged call when another filter is selective, and no slower alone (measured at 1M).
        wh.push(format!(
            "EXISTS (SELECT 1 FROM interaction_tags it WHERE it.interaction_id = i.id AND \
             it.tag_id IN (SELECT id FROM tags WHERE name IN ({})))",
            placeholders(q.tags.len())
        ));
        p.extend(q.tags.iter().map(|s| Value::Text(s.clone())));
    }
    if let Some(r) = &q.called {
        wh.push(party_rule(
            "i.called_party",
            "i.called_party_key",
            r,
            &mut p,
        ));
    }
    if let Some(r) = &q.calling {
        wh.push(party_rule(
            "i.calling_party",
            "i.calling_party_key",
            r,
            &mut p,
        ));
    }
    if let Some(r) = &q.answered {
        wh.push(party_rule("i.answered_by", "i.answered_by_key", r, &mut p));
    }
    if let Some(s) = &q.participant {
        wh.push(
            "EXISTS (SELECT 1 FROM interaction_participants ip WHERE ip.interaction_id = i.id AND \
             (ip.display_name LIKE ? ESCAPE '\\' OR ip.upn LIKE ? ESCAPE '\\' OR ip.number LIKE ? ESCAPE '\\'))"
                .into(),
        );
        for _ in 0..3 {
            p.push(contains(s));
        }
    }
    if let Some(n) = &q.notes {
        let m =
            fts_words(n).ok_or_else(|| StoreError::Invalid("notes: no word to look for".into()))?;
        let id = match notes_form {
            NotesForm::Driving => "i.id",
            NotesForm::Membership => "+i.id",
        };
        wh.push(format!(
            "{id} IN (SELECT n.interaction_id FROM notes n JOIN notes_fts f ON f.rowid = n.id \
             WHERE notes_fts MATCH ?)"
        ));
        p.push(Value::Text(m));
    }
    let sql = if wh.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", wh.join(" AND "))
    };
    Ok((sql, p))
}

fn summary_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<InteractionSummary> {
    Ok(InteractionSummary {
        id: r.get(0)?,
        pairing_key: r.get(1)?,
        call_id: r.get(2)?,
        target_display_name: r.get(3)?,
        target_upn: r.get(4)?,
        on_behalf_of: r.get(5)?,
        transferred_by: r.get(6)?,
        transferred_to: r.get(7)?,
        called_party: r.get(8)?,
        calling_party: r.get(9)?,
        answered_by: r.get(10)?,
        answered_time: r.get(11)?,
        start_time: r.get(12)?,
        release_time: r.get(13)?,
        sip_call_id: r.get(14)?,
        sys_call_id: r.get(15)?,
        direction: r.get(16)?,
        call_type: r.get(17)?,
        release_cause: r.get(18)?,
        media_status: r.get(19)?,
        expiration: r.get(20)?,
        queue_name: r.get(21)?,
        double_recording_type: r.get(22)?,
        paired_call: r.get(23)?,
        profile: r.get(24)?,
        wait_time_ms: r.get(25)?,
        hold_time_ms: r.get(26)?,
        participants: Vec::new(),
        tags: Vec::new(),
        notes: Vec::new(),
    })
}

/// Fills participants, tags and notes of a page of rows.
fn fill_lists(conn: &Connection, rows: &mut [InteractionSummary]) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<Value> = rows.iter().map(|r| Value::Integer(r.id)).collect();
    let n = placeholders(ids.len());
    let index: HashMap<i64, usize> = rows.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
    let mut fill = |sql: String, which: u8| -> StoreResult<()> {
        let mut st = conn.prepare(&sql)?;
        let mut q = st.query(params_from_iter(ids.iter()))?;
        while let Some(r) = q.next()? {
            let id: i64 = r.get(0)?;
            let v: String = r.get(1)?;
            if let Some(&i) = index.get(&id) {
                match which {
                    0 => rows[i].participants.push(v),
                    1 => rows[i].tags.push(v),
                    _ => rows[i].notes.push(v),
                }
            }
        }
        Ok(())
    };
    fill(
        format!(
            "SELECT interaction_id, CASE WHEN display_name <> '' THEN display_name WHEN upn <> '' THEN upn ELSE number END \
             FROM interaction_participants WHERE interaction_id IN ({n}) ORDER BY rowid"
        ),
        0,
    )?;
    fill(
        format!(
            "SELECT it.interaction_id, t.name FROM interaction_tags it JOIN tags t ON t.id = it.tag_id \
             WHERE it.interaction_id IN ({n}) ORDER BY t.name"
        ),
        1,
    )?;
    fill(
        format!("SELECT interaction_id, text FROM notes WHERE interaction_id IN ({n}) ORDER BY id"),
        2,
    )?;
    Ok(())
}

pub(super) fn party_cols(p: &Option<Party>) -> (String, String) {
    p.as_ref().map(|p| (p.label(), p.key())).unwrap_or_default()
}

/// Media status of an interaction from its legs: recording while one leg records, available
/// when one leg has media, then the most hopeful of the rest.
pub(super) fn aggregate_status<L: Borrow<LegUpdate>>(legs: &[(BotRole, L)]) -> MediaStatus {
    use MediaStatus::*;
    for s in [Recording, Available, Pending, Failed, Unavailable, Deleted] {
        if legs.iter().any(|(_, l)| l.borrow().media_status == s) {
            return s;
        }
    }
    Unavailable
}

/// The interaction columns its legs decide, in the order [`derive`] gives their values.
const DERIVED_COLUMNS: [&str; 28] = [
    "call_id",
    "target_display_name",
    "target_upn",
    "on_behalf_of",
    "transferred_by",
    "transferred_to",
    "called_party",
    "called_party_key",
    "calling_party",
    "calling_party_key",
    "answered_by",
    "answered_by_key",
    "answered_time",
    "start_time",
    "release_time",
    "sip_call_id",
    "sys_call_id",
    "direction",
    "call_type",
    "release_cause",
    "media_status",
    "expiration",
    "queue_name",
    "double_recording_type",
    "paired_call",
    "profile",
    "wait_time_ms",
    "hold_time_ms",
];

/// Where the party keys sit in [`DERIVED_COLUMNS`] (called, calling, answered).
const PARTY_KEY_COLUMNS: [usize; 3] = [7, 9, 11];
const MEDIA_STATUS_COLUMN: usize = 20;

/// What an interaction's legs make of it: its columns, and the leg that represents it (the
/// primary's when there is one), whose targets and participants the interaction lists.
struct Derived<'a> {
    values: Vec<Value>,
    rep: &'a LegUpdate,
}

impl Derived<'_> {
    fn party_keys(&self) -> [&Value; 3] {
        PARTY_KEY_COLUMNS.map(|i| &self.values[i])
    }
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

fn opt_text(s: Option<String>) -> Value {
    s.map(Value::Text).unwrap_or(Value::Null)
}

/// The leg that represents an interaction: the primary's when there is one.
fn representative<L: Borrow<LegUpdate>>(legs: &[(BotRole, L)]) -> Option<&LegUpdate> {
    legs.iter()
        .find(|(r, _)| *r == BotRole::Primary)
        .or(legs.first())
        .map(|(_, l)| l.borrow())
}

/// The interaction's columns from its legs and their `representative`; `deleted` when the
/// store already deleted it (a late update from a bot does not undo the store's decision).
fn derive<'a, L: Borrow<LegUpdate>>(
    rep: &'a LegUpdate,
    legs: &[(BotRole, L)],
    deleted: bool,
) -> Derived<'a> {
    let paired_call = legs
        .iter()
        .find(|(r, _)| *r == BotRole::Paired)
        .map(|(_, l)| l.borrow().call_id.clone())
        .unwrap_or_default();
    let status = if deleted {
        MediaStatus::Deleted
    } else {
        aggregate_status(legs)
    };
    let target = rep.targets.first().cloned().unwrap_or_default();
    let (called, called_key) = party_cols(&rep.called_party);
    let (calling, calling_key) = party_cols(&rep.calling_party);
    let (answered, answered_key) = party_cols(&rep.answered_by);
    // A recording made once for several users keeps the longest retention any leg carries
    // (each leg's explicit expiration, else its start plus its retention days); a leg without
    // either does not shorten the others'.
    let expiration = legs
        .iter()
        .filter_map(|(_, l)| l.borrow().expiry())
        .max()
        .map(|t| fmt_time(&t));
    let values = vec![
        text(rep.call_id.clone()),
        text(target.display_name.unwrap_or_default()),
        text(target.upn.unwrap_or_default()),
        text(party_cols(&rep.on_behalf_of).0),
        text(party_cols(&rep.transferred_by).0),
        text(party_cols(&rep.transferred_to).0),
        text(called),
        text(called_key),
        text(calling),
        text(calling_key),
        text(answered),
        text(answered_key),
        opt_text(rep.answered_time.as_ref().map(fmt_time)),
        text(fmt_time(&rep.start_time)),
        opt_text(rep.release_time.as_ref().map(fmt_time)),
        text(rep.sip_call_id.clone().unwrap_or_default()),
        text(rep.sys_call_id.clone().unwrap_or_default()),
        text(rep.direction.as_str()),
        text(rep.call_type.as_str()),
        text(rep.release_cause.map(|c| c.as_str()).unwrap_or("")),
        text(status.as_str()),
        opt_text(expiration),
        text(rep.queue_name.clone().unwrap_or_default()),
        text(rep.double_recording_type.clone()),
        text(paired_call),
        text(rep.profile.clone()),
        rep.wait_time_ms
            .map(|v| Value::Integer(v.min(i64::MAX as u64) as i64))
            .unwrap_or(Value::Null),
        Value::Integer(rep.hold_time_ms.min(i64::MAX as u64) as i64),
    ];
    debug_assert_eq!(values.len(), DERIVED_COLUMNS.len());
    Derived { values, rep }
}

/// Creates the interaction of a first leg with its final columns and lists: one write of each
/// row and index entry, where an insert followed by [`recompute`] wrote every index twice.
fn create_interaction(tx: &Transaction<'_>, leg: &LegUpdate) -> StoreResult<i64> {
    let d = derive(leg, &[(leg.bot_role, leg)], false);
    let t = now();
    let sql = format!(
        "INSERT INTO interactions (pairing_key, created_at, updated_at, {}) VALUES (?, ?, ?, {})",
        DERIVED_COLUMNS.join(", "),
        placeholders(DERIVED_COLUMNS.len())
    );
    let head = [text(leg.pairing_key.clone()), text(t.clone()), text(t)];
    exec(tx, &sql, params_from_iter(head.iter().chain(&d.values)))?;
    let id = tx.last_insert_rowid();
    index_parties(tx, id, d.party_keys())?;
    insert_lists(tx, id, d.rep)?;
    Ok(id)
}

/// Writes the party keys of interaction `id` into the trigram index.
fn index_parties(tx: &Transaction<'_>, id: i64, keys: [&Value; 3]) -> StoreResult<()> {
    exec(
        tx,
        "INSERT INTO party_trgm (rowid, called, calling, answered) VALUES (?, ?, ?, ?)",
        params![id, keys[0], keys[1], keys[2]],
    )?;
    Ok(())
}

/// The targets and participants rows of interaction `id`, from its representative leg.
fn insert_lists(tx: &Transaction<'_>, id: i64, rep: &LegUpdate) -> StoreResult<()> {
    for (oid, upn) in target_rows(rep) {
        exec(
            tx,
            "INSERT INTO interaction_targets (interaction_id, oid, upn) VALUES (?, ?, ?)",
            params![id, oid, upn],
        )?;
    }
    for p in &rep.participants {
        exec(tx,
            "INSERT INTO interaction_participants (interaction_id, participant_id, kind, display_name, upn, number, join_time, leave_time) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                id,
                p.participant_id,
                p.party.kind,
                p.party.display_name.clone().unwrap_or_default(),
                p.party.upn.clone().unwrap_or_default(),
                p.party.number.clone().unwrap_or_default(),
                p.join_time.as_ref().map(fmt_time),
                p.leave_time.as_ref().map(fmt_time),
            ],
        )?;
    }
    Ok(())
}

fn target_rows(rep: &LegUpdate) -> Vec<(String, String)> {
    rep.targets
        .iter()
        .map(|t| {
            (
                t.id.clone().unwrap_or_default(),
                t.upn.clone().unwrap_or_default().to_lowercase(),
            )
        })
        .collect()
}

/// Participants as the store compares them: what `insert_lists` writes of each.
type ParticipantRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

fn participant_rows(rep: &LegUpdate) -> Vec<ParticipantRow> {
    rep.participants
        .iter()
        .map(|p| {
            (
                p.participant_id.clone(),
                p.party.kind.clone(),
                p.party.display_name.clone().unwrap_or_default(),
                p.party.upn.clone().unwrap_or_default(),
                p.party.number.clone().unwrap_or_default(),
                p.join_time.as_ref().map(fmt_time),
                p.leave_time.as_ref().map(fmt_time),
            )
        })
        .collect()
}

/// Brings the interaction's columns, targets, participants and trigram entry up to date with
/// its legs, writing only what changed: most updates of a leg move its media status alone,
/// and rewriting every column rewrote every index of the table.
fn recompute(tx: &Transaction<'_>, id: i64) -> StoreResult<()> {
    let mut legs: Vec<(BotRole, LegUpdate)> = Vec::new();
    {
        let mut st =
            tx.prepare_cached("SELECT bot_role, body FROM legs WHERE interaction_id = ?")?;
        let mut rows = st.query([id])?;
        while let Some(r) = rows.next()? {
            let role: String = r.get(0)?;
            let body: String = r.get(1)?;
            let leg: LegUpdate =
                serde_json::from_str(&body).map_err(|e| StoreError::Db(e.to_string()))?;
            legs.push((BotRole::parse(&role).unwrap_or(BotRole::Primary), leg));
        }
    }
    let current: Vec<Value> = {
        let sql = format!(
            "SELECT {} FROM interactions WHERE id = ?",
            DERIVED_COLUMNS.join(", ")
        );
        tx.prepare_cached(&sql)?.query_row([id], |r| {
            (0..DERIVED_COLUMNS.len()).map(|i| r.get(i)).collect()
        })?
    };
    let deleted = current[MEDIA_STATUS_COLUMN] == Value::Text(MediaStatus::Deleted.as_str().into());
    let Some(rep) = representative(&legs) else {
        return Ok(());
    };
    let d = derive(rep, &legs, deleted);
    let changed: Vec<usize> = (0..DERIVED_COLUMNS.len())
        .filter(|&i| current[i] != d.values[i])
        .collect();
    if !changed.is_empty() {
        let set: Vec<String> = changed
            .iter()
            .map(|&i| format!("{} = ?", DERIVED_COLUMNS[i]))
            .collect();
        let sql = format!(
            "UPDATE interactions SET {}, updated_at = ? WHERE id = ?",
            set.join(", ")
        );
        let now = text(now());
        let id_value = Value::Integer(id);
        let values = changed.iter().map(|&i| &d.values[i]);
        exec(tx, &sql, params_from_iter(values.chain([&now, &id_value])))?;
    }
    // Both legs stored: queue the merge once (a later metadata update of a leg changes
    // nothing; a failed merge stays failed until an operator requeues it).
    let available = |role: BotRole| {
        legs.iter()
            .any(|(r, l)| *r == role && l.media_status == MediaStatus::Available)
    };
    if !deleted && available(BotRole::Primary) && available(BotRole::Paired) {
        exec(
            tx,
            "UPDATE interactions SET merge_state = 'pending' WHERE id = ? AND merge_state = ''",
            [id],
        )?;
    }
    if PARTY_KEY_COLUMNS.iter().any(|i| changed.contains(i)) {
        exec(tx, "DELETE FROM party_trgm WHERE rowid = ?", [id])?;
        index_parties(tx, id, d.party_keys())?;
    }
    let targets: Vec<(String, String)> = tx
        .prepare_cached(
            "SELECT oid, upn FROM interaction_targets WHERE interaction_id = ? ORDER BY rowid",
        )?
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let participants: Vec<ParticipantRow> = tx
        .prepare_cached(
            "SELECT participant_id, kind, display_name, upn, number, join_time, leave_time \
             FROM interaction_participants WHERE interaction_id = ? ORDER BY rowid",
        )?
        .query_map([id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    if targets != target_rows(d.rep) || participants != participant_rows(d.rep) {
        exec(
            tx,
            "DELETE FROM interaction_targets WHERE interaction_id = ?",
            [id],
        )?;
        exec(
            tx,
            "DELETE FROM interaction_participants WHERE interaction_id = ?",
            [id],
        )?;
        insert_lists(tx, id, d.rep)?;
    }
    Ok(())
}

fn visible(tx: &Connection, id: i64, scope: &Scope) -> StoreResult<bool> {
    let mut wh = vec!["i.id = ?".to_string()];
    let mut p = vec![Value::Integer(id)];
    scope_clause(scope, &mut wh, &mut p);
    let sql = format!("SELECT 1 FROM interactions i WHERE {}", wh.join(" AND "));
    Ok(tx
        .query_row(&sql, params_from_iter(p.iter()), |_| Ok(()))
        .optional()?
        .is_some())
}

fn note_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Note> {
    Ok(Note {
        id: r.get(0)?,
        interaction_id: r.get(1)?,
        author_oid: r.get(2)?,
        author_upn: r.get(3)?,
        created_at: r.get(4)?,
        text: r.get(5)?,
    })
}

fn audit_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        id: r.get(0)?,
        at: r.get(1)?,
        user_oid: r.get(2)?,
        user_upn: r.get(3)?,
        action: r.get(4)?,
        item_type: r.get(5)?,
        item: r.get(6)?,
        description: r.get(7)?,
        prev_hash: r.get(8)?,
        hash: r.get(9)?,
    })
}

fn unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

pub(super) fn page_bounds(page: u32, page_size: u32) -> (u32, u32, i64) {
    let page = page.max(1);
    let size = page_size.clamp(1, 10_000);
    (page, size, (page as i64 - 1) * size as i64)
}

/// Creates or updates one leg inside `tx` (see [`Store::upsert_leg`]).
fn upsert_in(tx: &Transaction<'_>, leg: &LegUpdate) -> StoreResult<UpsertOutcome> {
    let existing: Option<(i64, String, Option<String>, String)> = tx
        .prepare_cached(
            "SELECT interaction_id, bot_role, media_path, media_status FROM legs WHERE recording_id = ?",
        )?
        .query_row([&leg.recording_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    // Media status only moves forward (MediaStatus::advance): the stored body says the status
    // in force, so that recompute() sees it too.
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
        exec(tx,
            "UPDATE legs SET call_id = ?, media_status = ?, media_path = ?, body = ?, updated_at = ? WHERE recording_id = ?",
            params![leg.call_id, leg.media_status.as_str(), path, body, now(), leg.recording_id],
        )?;
        UpsertOutcome {
            interaction_id: iid,
            created_interaction: false,
            created_leg: false,
        }
    } else {
        let mut best: Option<(i64, i64)> = None;
        {
            let mut st = tx.prepare_cached(
                "SELECT i.id, i.start_time FROM interactions i WHERE i.pairing_key = ? AND NOT EXISTS \
                 (SELECT 1 FROM legs l WHERE l.interaction_id = i.id AND l.bot_role = ?)",
            )?;
            let mut rows = st.query(params![leg.pairing_key, leg.bot_role.as_str()])?;
            while let Some(r) = rows.next()? {
                let id: i64 = r.get(0)?;
                let start: String = r.get(1)?;
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
        }
        let (iid, created) = match best {
            Some((id, _)) => (id, false),
            None => (create_interaction(tx, leg)?, true),
        };
        exec(tx,
            "INSERT INTO legs (interaction_id, recording_id, bot_role, call_id, media_status, media_path, body, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                iid,
                leg.recording_id,
                leg.bot_role.as_str(),
                leg.call_id,
                leg.media_status.as_str(),
                leg.media_path,
                body,
                now()
            ],
        )?;
        UpsertOutcome {
            interaction_id: iid,
            created_interaction: created,
            created_leg: true,
        }
    };
    // A new interaction was written whole from this leg; a leg joining or changing one
    // brings it up to date.
    if !outcome.created_interaction {
        recompute(tx, outcome.interaction_id)?;
    }
    Ok(outcome)
}

/// Appends `e` to the audit chain inside `tx` (see [`Store::audit_append`]).
fn append_audit(tx: &Transaction<'_>, e: &NewAudit) -> StoreResult<AuditEntry> {
    let last: Option<(i64, String)> = tx
        .query_row(
            "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (id, prev) = match last {
        Some((id, h)) => (id + 1, h),
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
        "INSERT INTO audit (id, at, user_oid, user_upn, action, item_type, item, description, prev_hash, hash) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params![
        entry.id,
        entry.at,
        entry.user_oid,
        entry.user_upn,
        entry.action,
        entry.item_type,
        entry.item,
        entry.description,
        entry.prev_hash,
        entry.hash
        ],
    )?;
    Ok(entry)
}

impl Store for SqliteStore {
    fn upsert_leg(&self, leg: &LegUpdate) -> StoreResult<UpsertOutcome> {
        self.post(vec![leg.clone()])?
            .pop()
            .ok_or_else(|| StoreError::Db("the writer answered without an outcome".into()))
    }

    fn upsert_legs(&self, legs: &[LegUpdate]) -> StoreResult<Vec<UpsertOutcome>> {
        if legs.is_empty() {
            return Ok(Vec::new());
        }
        self.post(legs.to_vec())
    }

    fn search(&self, q: &SearchQuery, scope: &Scope) -> StoreResult<Page<InteractionSummary>> {
        let (wh, p) = build_where(q, scope)?;
        let col = SORT_COLUMNS
            .iter()
            .find(|(k, _)| *k == q.sort)
            .map(|(_, c)| *c)
            .ok_or_else(|| StoreError::Invalid(format!("cannot sort on {:?}", q.sort)))?;
        let dir = if q.descending { "DESC" } else { "ASC" };
        let (page, size, offset) = page_bounds(q.page, q.page_size);
        let conn = self.read()?;
        // Counting stops after the cap: the count is driven by the most selective filter, and
        // a broad one would otherwise read every matching row.
        let counted: i64 = conn.query_row(
            &format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM interactions i {wh} LIMIT {})",
                TOTAL_CAP + 1
            ),
            params_from_iter(p.iter()),
            |r| r.get(0),
        )?;
        // A word that many notes hold: the page walks the sort column's index and tests each
        // call against the set of matching calls, instead of reading and sorting all of them
        // (the planner would start from the notes, thinking them few).
        let (wh, p) = if q.notes.is_some() && notes_are_broad(&conn, q)? {
            build_where_with(q, scope, NotesForm::Membership)?
        } else {
            (wh, p)
        };
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM interactions i {wh} ORDER BY {col} {dir}, i.id {dir} LIMIT {size} OFFSET {offset}"
        );
        let mut st = conn.prepare(&sql)?;
        let mut items = st
            .query_map(params_from_iter(p.iter()), summary_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        fill_lists(&conn, &mut items)?;
        let (total, total_is_lower_bound) = capped_total(counted as u64, offset, items.len(), size);
        Ok(Page {
            total,
            total_is_lower_bound,
            page,
            page_size: size,
            items,
        })
    }

    fn get(&self, id: i64, scope: &Scope) -> StoreResult<Option<InteractionDetail>> {
        let conn = self.read()?;
        if !visible(&conn, id, scope)? {
            return Ok(None);
        }
        let mut summary = conn.query_row(
            &format!("SELECT {SUMMARY_COLUMNS} FROM interactions i WHERE i.id = ?"),
            [id],
            summary_from_row,
        )?;
        fill_lists(&conn, std::slice::from_mut(&mut summary))?;
        let mut legs = Vec::new();
        {
            let mut st = conn.prepare(
                "SELECT recording_id, bot_role, call_id, media_status, media_path, updated_at, body \
                 FROM legs WHERE interaction_id = ? ORDER BY bot_role DESC",
            )?;
            let mut rows = st.query([id])?;
            while let Some(r) = rows.next()? {
                let body: String = r.get(6)?;
                let metadata: LegUpdate =
                    serde_json::from_str(&body).map_err(|e| StoreError::Db(e.to_string()))?;
                let role: String = r.get(1)?;
                let status: String = r.get(3)?;
                legs.push(Leg {
                    recording_id: r.get(0)?,
                    bot_role: BotRole::parse(&role).unwrap_or(BotRole::Primary),
                    call_id: r.get(2)?,
                    media_status: MediaStatus::parse(&status).unwrap_or(MediaStatus::Unavailable),
                    media_path: r.get(4)?,
                    updated_at: r.get(5)?,
                    metadata,
                });
            }
        }
        let participant_details = legs
            .iter()
            .find(|l| l.bot_role == BotRole::Primary)
            .or(legs.first())
            .map(|l| l.metadata.participants.clone())
            .unwrap_or_default();
        let tag_details = conn
            .prepare(
                "SELECT t.id, t.name, t.description FROM interaction_tags it JOIN tags t ON t.id = it.tag_id \
                 WHERE it.interaction_id = ? ORDER BY t.name",
            )?
            .query_map([id], |r| {
                Ok(Tag {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    description: r.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let note_details = conn
            .prepare(
                "SELECT id, interaction_id, author_oid, author_upn, created_at, text FROM notes \
                 WHERE interaction_id = ? ORDER BY id",
            )?
            .query_map([id], note_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let merge = conn.query_row(
            "SELECT merge_state, merge_error, merged_at, merged_path, merged_storage \
             FROM interactions WHERE id = ?",
            [id],
            |r| {
                let state: String = r.get(0)?;
                Ok(MergeInfo {
                    state: MergeState::parse(&state).unwrap_or(MergeState::None),
                    error: r.get(1)?,
                    merged_at: r.get(2)?,
                    media_path: r.get(3)?,
                    storage: r.get(4)?,
                })
            },
        )?;
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

    fn request_deletion(
        &self,
        id: i64,
        scope: DeletionScope,
        authorized_by: &str,
        note: &str,
        by: &Actor,
        visible_to: &Scope,
    ) -> StoreResult<DeletionRequest> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        if !visible(&tx, id, visible_to)? {
            return Err(StoreError::NotFound(format!("interaction {id}")));
        }
        let held: Option<String> = tx
            .query_row(
                "SELECT u.upn FROM interaction_targets t JOIN users u \
                 ON (u.oid = t.oid OR lower(u.upn) = t.upn) \
                 WHERE t.interaction_id = ? AND u.legal_hold = 1 LIMIT 1",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(upn) = held {
            return Err(StoreError::Conflict(format!(
                "{upn} is on legal hold: the call cannot be deleted"
            )));
        }
        let at = now();
        match tx.execute(
            "INSERT INTO deletion_requests (interaction_id, scope, authorized_by, note, requested_by, requested_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
            params![id, scope.as_str(), authorized_by, note, by.upn, at],
        ) {
            Ok(_) => {}
            Err(e) if unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "a deletion of interaction {id} is already pending"
                )))
            }
            Err(e) => return Err(e.into()),
        }
        let rid = tx.last_insert_rowid();
        tx.commit()?;
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

    fn tags(&self) -> StoreResult<Vec<Tag>> {
        let conn = self.lock()?;
        let v = conn
            .prepare("SELECT id, name, description FROM tags ORDER BY name")?
            .query_map([], |r| {
                Ok(Tag {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    description: r.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(v)
    }

    fn create_tag(&self, name: &str, description: &str) -> StoreResult<Tag> {
        let conn = self.lock()?;
        match conn.execute(
            "INSERT INTO tags (name, description) VALUES (?, ?)",
            params![name, description],
        ) {
            Ok(_) => Ok(Tag {
                id: conn.last_insert_rowid(),
                name: name.into(),
                description: description.into(),
            }),
            Err(e) if unique_violation(&e) => {
                Err(StoreError::Conflict(format!("tag {name:?} exists")))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn update_tag(&self, id: i64, name: &str, description: &str) -> StoreResult<Tag> {
        let conn = self.lock()?;
        match conn.execute(
            "UPDATE tags SET name = ?, description = ? WHERE id = ?",
            params![name, description, id],
        ) {
            Ok(0) => Err(StoreError::NotFound(format!("tag {id}"))),
            Ok(_) => Ok(Tag {
                id,
                name: name.into(),
                description: description.into(),
            }),
            Err(e) if unique_violation(&e) => {
                Err(StoreError::Conflict(format!("tag {name:?} exists")))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn delete_tag(&self, id: i64) -> StoreResult<()> {
        let conn = self.lock()?;
        match conn.execute("DELETE FROM tags WHERE id = ?", [id])? {
            0 => Err(StoreError::NotFound(format!("tag {id}"))),
            _ => Ok(()),
        }
    }

    fn set_tags(&self, ids: &[i64], tag_ids: &[i64], scope: &Scope) -> StoreResult<()> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        for &t in tag_ids {
            let known = tx
                .query_row("SELECT 1 FROM tags WHERE id = ?", [t], |_| Ok(()))
                .optional()?;
            if known.is_none() {
                return Err(StoreError::NotFound(format!("tag {t}")));
            }
        }
        for &id in ids {
            if !visible(&tx, id, scope)? {
                return Err(StoreError::NotFound(format!("interaction {id}")));
            }
            tx.execute(
                "DELETE FROM interaction_tags WHERE interaction_id = ?",
                [id],
            )?;
            for &t in tag_ids {
                tx.execute(
                    "INSERT OR IGNORE INTO interaction_tags (interaction_id, tag_id) VALUES (?, ?)",
                    [id, t],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn add_note(&self, id: i64, author: &Actor, text: &str, scope: &Scope) -> StoreResult<Note> {
        let conn = self.lock()?;
        if !visible(&conn, id, scope)? {
            return Err(StoreError::NotFound(format!("interaction {id}")));
        }
        let at = now();
        conn.execute(
            "INSERT INTO notes (interaction_id, author_oid, author_upn, created_at, text) VALUES (?, ?, ?, ?, ?)",
            params![id, author.oid, author.upn, at, text],
        )?;
        Ok(Note {
            id: conn.last_insert_rowid(),
            interaction_id: id,
            author_oid: author.oid.clone(),
            author_upn: author.upn.clone(),
            created_at: at,
            text: text.into(),
        })
    }

    fn note(&self, id: i64, note_id: i64, scope: &Scope) -> StoreResult<Option<Note>> {
        let conn = self.lock()?;
        if !visible(&conn, id, scope)? {
            return Ok(None);
        }
        Ok(conn
            .query_row(
                "SELECT id, interaction_id, author_oid, author_upn, created_at, text FROM notes \
                 WHERE id = ? AND interaction_id = ?",
                [note_id, id],
                note_from_row,
            )
            .optional()?)
    }

    fn delete_note(&self, id: i64, note_id: i64) -> StoreResult<()> {
        let conn = self.lock()?;
        match conn.execute(
            "DELETE FROM notes WHERE id = ? AND interaction_id = ?",
            [note_id, id],
        )? {
            0 => Err(StoreError::NotFound(format!("note {note_id}"))),
            _ => Ok(()),
        }
    }

    fn import_directory(&self, d: &DirectoryImport) -> StoreResult<(usize, usize)> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        for u in &d.users {
            tx.execute(
                "INSERT INTO users (oid, upn, display_name, recording_profile) VALUES (?, ?, ?, ?) \
                 ON CONFLICT(oid) DO UPDATE SET upn = excluded.upn, display_name = excluded.display_name, \
                 recording_profile = excluded.recording_profile",
                params![
                    u.id,
                    u.user_principal_name,
                    u.display_name.clone().unwrap_or_default(),
                    u.recording_profile
                ],
            )?;
        }
        tx.execute("DELETE FROM group_members", [])?;
        tx.execute("DELETE FROM groups", [])?;
        for g in &d.groups {
            tx.execute(
                "INSERT OR REPLACE INTO groups (id, display_name) VALUES (?, ?)",
                params![g.id, g.display_name.clone().unwrap_or_default()],
            )?;
            for m in &g.members {
                tx.execute(
                    "INSERT OR IGNORE INTO group_members (group_id, oid) VALUES (?, ?)",
                    params![g.id, m.id],
                )?;
            }
        }
        tx.commit()?;
        Ok((d.users.len(), d.groups.len()))
    }

    fn users(&self) -> StoreResult<Vec<User>> {
        let conn = self.lock()?;
        let mut users = conn
            .prepare("SELECT oid, upn, display_name, recording_profile, legal_hold FROM users ORDER BY upn")?
            .query_map([], |r| {
                Ok(User {
                    oid: r.get(0)?,
                    upn: r.get(1)?,
                    display_name: r.get(2)?,
                    groups: Vec::new(),
                    recording_profile: r.get(3)?,
                    legal_hold: r.get::<_, i64>(4)? != 0,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut st = conn.prepare("SELECT oid, group_id FROM group_members ORDER BY group_id")?;
        let mut by_oid: HashMap<String, Vec<String>> = HashMap::new();
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            by_oid.entry(r.get(0)?).or_default().push(r.get(1)?);
        }
        for u in &mut users {
            u.groups = by_oid.remove(&u.oid).unwrap_or_default();
        }
        Ok(users)
    }

    fn user_groups(&self, oid: &str) -> StoreResult<Vec<String>> {
        let conn = self.lock()?;
        let v = conn
            .prepare("SELECT group_id FROM group_members WHERE oid = ?")?
            .query_map([oid], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(v)
    }

    fn group_members(&self, groups: &[String]) -> StoreResult<(Vec<String>, Vec<String>)> {
        if groups.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let conn = self.lock()?;
        let sql = format!(
            "SELECT gm.oid, COALESCE(u.upn, '') FROM group_members gm LEFT JOIN users u ON u.oid = gm.oid \
             WHERE gm.group_id IN ({})",
            placeholders(groups.len())
        );
        let mut oids = BTreeSet::new();
        let mut upns = BTreeSet::new();
        let mut st = conn.prepare(&sql)?;
        let mut rows = st.query(params_from_iter(groups.iter()))?;
        while let Some(r) = rows.next()? {
            oids.insert(r.get::<_, String>(0)?);
            let upn: String = r.get(1)?;
            if !upn.is_empty() {
                upns.insert(upn.to_lowercase());
            }
        }
        Ok((oids.into_iter().collect(), upns.into_iter().collect()))
    }

    fn set_legal_hold(&self, oid: &str, on: bool, by: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        retention::set_legal_hold(&tx, oid, on, by, at)?;
        tx.commit()?;
        Ok(())
    }

    fn delete_user(&self, oid: &str) -> StoreResult<()> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        retention::delete_user(&tx, oid)?;
        tx.commit()?;
        Ok(())
    }

    fn export_user(&self, oid: &str) -> StoreResult<UserExport> {
        retention::export_user(&*self.lock()?, oid)
    }

    fn pending_deletions(&self, after: i64, limit: u32) -> StoreResult<Vec<DeletionRequest>> {
        retention::pending_deletions(&*self.lock()?, after, limit)
    }

    fn expired(
        &self,
        now: DateTime<Utc>,
        after: Option<&ExpiryCursor>,
        limit: u32,
        with_deleted_media: bool,
    ) -> StoreResult<Vec<ExpiryCursor>> {
        retention::expired(&*self.lock()?, now, after, limit, with_deleted_media)
    }

    fn retention_item(&self, id: i64) -> StoreResult<Option<RetentionItem>> {
        retention::retention_item(&*self.lock()?, id)
    }

    fn retention_apply(
        &self,
        id: i64,
        change: RetentionChange,
        audit: &NewAudit,
    ) -> StoreResult<AuditEntry> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        retention::apply(&tx, id, change)?;
        let entry = append_audit(&tx, audit)?;
        tx.commit()?;
        Ok(entry)
    }

    fn merge_pending(&self, after: i64, limit: u32) -> StoreResult<Vec<i64>> {
        let conn = self.lock()?;
        let mut st = conn.prepare_cached(
            "SELECT id FROM interactions WHERE merge_state = 'pending' AND id > ? \
             AND media_status != 'Deleted' ORDER BY id LIMIT ?",
        )?;
        let ids = st
            .query_map(params![after, limit], |r| r.get(0))?
            .collect::<Result<Vec<i64>, _>>()?;
        Ok(ids)
    }

    fn merge_finish(&self, id: i64, outcome: &MergeOutcome) -> StoreResult<bool> {
        let conn = self.lock()?;
        let n = match outcome {
            MergeOutcome::Done {
                storage,
                media_path,
                at,
            } => exec(
                &conn,
                "UPDATE interactions SET merge_state = 'done', merged_path = ?, \
                 merged_storage = ?, merged_at = ?, merge_error = '' \
                 WHERE id = ? AND merge_state = 'pending' AND media_status != 'Deleted'",
                params![media_path, storage, fmt_time(at), id],
            )?,
            MergeOutcome::Failed { error } => exec(
                &conn,
                "UPDATE interactions SET merge_state = 'failed', merge_error = ? \
                 WHERE id = ? AND merge_state = 'pending' AND media_status != 'Deleted'",
                params![error, id],
            )?,
        };
        Ok(n == 1)
    }

    fn access_profiles(&self) -> StoreResult<Vec<AccessProfile>> {
        let conn = self.lock()?;
        let mut out = Vec::new();
        let mut st = conn.prepare("SELECT id, body FROM access_profiles ORDER BY name")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let body: String = r.get(1)?;
            let mut p: AccessProfile =
                serde_json::from_str(&body).map_err(|e| StoreError::Db(e.to_string()))?;
            p.id = r.get(0)?;
            out.push(p);
        }
        Ok(out)
    }

    fn put_access_profile(&self, p: &AccessProfile) -> StoreResult<AccessProfile> {
        let conn = self.lock()?;
        let body = serde_json::to_string(p).map_err(|e| StoreError::Db(e.to_string()))?;
        let r = if p.id == 0 {
            conn.execute(
                "INSERT INTO access_profiles (name, body) VALUES (?, ?)",
                params![p.name, body],
            )
        } else {
            conn.execute(
                "UPDATE access_profiles SET name = ?, body = ? WHERE id = ?",
                params![p.name, body, p.id],
            )
        };
        match r {
            Ok(0) => Err(StoreError::NotFound(format!("access profile {}", p.id))),
            Ok(_) => {
                let mut out = p.clone();
                if p.id == 0 {
                    out.id = conn.last_insert_rowid();
                }
                Ok(out)
            }
            Err(e) if unique_violation(&e) => Err(StoreError::Conflict(format!(
                "access profile {:?} exists",
                p.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    fn delete_access_profile(&self, id: i64) -> StoreResult<()> {
        let conn = self.lock()?;
        match conn.execute("DELETE FROM access_profiles WHERE id = ?", [id])? {
            0 => Err(StoreError::NotFound(format!("access profile {id}"))),
            _ => Ok(()),
        }
    }

    fn saved_searches(&self, owner: &str) -> StoreResult<Vec<SavedSearch>> {
        let conn = self.lock()?;
        let v = conn
            .prepare("SELECT id, name, query, created_at FROM saved_searches WHERE owner_oid = ? ORDER BY name")?
            .query_map([owner], |r| {
                Ok(SavedSearch {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    query: r.get(2)?,
                    created_at: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(v)
    }

    fn save_search(&self, owner: &str, name: &str, query: &str) -> StoreResult<SavedSearch> {
        let conn = self.lock()?;
        let at = now();
        match conn.execute(
            "INSERT INTO saved_searches (owner_oid, name, query, created_at) VALUES (?, ?, ?, ?)",
            params![owner, name, query, at],
        ) {
            Ok(_) => Ok(SavedSearch {
                id: conn.last_insert_rowid(),
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

    fn leg_status(&self, recording_id: &str) -> StoreResult<Option<(i64, MediaStatus)>> {
        let conn = self.lock()?;
        let row: Option<(i64, String)> = conn
            .prepare_cached("SELECT interaction_id, media_status FROM legs WHERE recording_id = ?")?
            .query_row([recording_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        row.map(|(id, st)| {
            MediaStatus::parse(&st)
                .map(|m| (id, m))
                .ok_or_else(|| StoreError::Db(format!("leg {recording_id}: media status {st:?}")))
        })
        .transpose()
    }

    fn recording_profiles(&self) -> StoreResult<Vec<RecordingProfileRow>> {
        let conn = self.lock()?;
        let mut st = conn.prepare(
            "SELECT name, body, updated_at, updated_by FROM recording_profiles ORDER BY name",
        )?;
        let mut rows = st.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let body: String = r.get(1)?;
            out.push(RecordingProfileRow {
                name: r.get(0)?,
                profile: serde_json::from_str(&body).map_err(|e| StoreError::Db(e.to_string()))?,
                updated_at: r.get(2)?,
                updated_by: r.get(3)?,
            });
        }
        Ok(out)
    }

    fn replace_recording_profiles(&self, set: &[RecordingProfileRow]) -> StoreResult<()> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM recording_profiles", [])?;
        for p in set {
            let body =
                serde_json::to_string(&p.profile).map_err(|e| StoreError::Db(e.to_string()))?;
            tx.execute(
                "INSERT INTO recording_profiles (name, body, updated_at, updated_by) VALUES (?, ?, ?, ?)",
                params![p.name, body, p.updated_at, p.updated_by],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn delete_saved_search(&self, owner: &str, id: i64) -> StoreResult<()> {
        let conn = self.lock()?;
        match conn.execute(
            "DELETE FROM saved_searches WHERE id = ? AND owner_oid = ?",
            params![id, owner],
        )? {
            0 => Err(StoreError::NotFound(format!("saved search {id}"))),
            _ => Ok(()),
        }
    }

    fn audit_append(&self, e: &NewAudit) -> StoreResult<AuditEntry> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let entry = append_audit(&tx, e)?;
        tx.commit()?;
        Ok(entry)
    }

    fn audit_search(&self, q: &AuditQuery) -> StoreResult<Page<AuditEntry>> {
        let mut wh = Vec::new();
        let mut p: Vec<Value> = Vec::new();
        if let Some(f) = &q.from {
            wh.push("at >= ?");
            p.push(Value::Text(f.clone()));
        }
        if let Some(t) = &q.to {
            wh.push("at < ?");
            p.push(Value::Text(t.clone()));
        }
        if let Some(n) = &q.name {
            wh.push("(user_upn LIKE ? ESCAPE '\\' OR user_oid LIKE ? ESCAPE '\\')");
            p.push(contains(n));
            p.push(contains(n));
        }
        if let Some(a) = &q.action {
            wh.push("action = ?");
            p.push(Value::Text(a.clone()));
        }
        if let Some(i) = &q.item {
            wh.push("item = ?");
            p.push(Value::Text(i.clone()));
        }
        if let Some(t) = &q.text {
            wh.push("description LIKE ? ESCAPE '\\'");
            p.push(contains(t));
        }
        let wh = if wh.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", wh.join(" AND "))
        };
        let (page, size, offset) = page_bounds(q.page, q.page_size);
        let conn = self.read()?;
        let total: i64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM audit {wh}"),
            params_from_iter(p.iter()),
            |r| r.get(0),
        )?;
        let items = conn
            .prepare(&format!(
                "SELECT id, at, user_oid, user_upn, action, item_type, item, description, prev_hash, hash \
                 FROM audit {wh} ORDER BY id DESC LIMIT {size} OFFSET {offset}"
            ))?
            .query_map(params_from_iter(p.iter()), audit_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            total: total as u64,
            total_is_lower_bound: false,
            page,
            page_size: size,
            items,
        })
    }

    fn audit_all(&self) -> StoreResult<Vec<AuditEntry>> {
        let conn = self.read()?;
        let v = conn
            .prepare(
                "SELECT id, at, user_oid, user_upn, action, item_type, item, description, prev_hash, hash \
                 FROM audit ORDER BY id",
            )?
            .query_map([], audit_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(v)
    }

    fn alarm_raise(
        &self,
        a: &super::activity::NewAlarm,
    ) -> StoreResult<Option<super::activity::Alarm>> {
        let mut conn = self.lock()?;
        super::activity::raise(&mut conn, a)
    }

    fn alarm_clear(&self, name: &str, source: &str) -> StoreResult<Option<super::activity::Alarm>> {
        let mut conn = self.lock()?;
        super::activity::clear(&mut conn, name, source)
    }

    fn alarms_active(&self) -> StoreResult<Vec<super::activity::Alarm>> {
        super::activity::active(&*self.lock()?)
    }

    fn activity_append(&self, kind: &str, source: &str, text: &str) -> StoreResult<()> {
        super::activity::append(&*self.lock()?, kind, source, text, None)
    }

    fn activity(&self, page: u32, page_size: u32) -> StoreResult<Page<super::activity::Activity>> {
        super::activity::page(&*self.lock()?, page, page_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(rec: &str, role: &str) -> LegUpdate {
        serde_json::from_value(serde_json::json!({
            "callId": format!("c-{rec}"), "recordingId": rec, "botRole": role, "pairingKey": "k",
            "startTime": "2026-01-01T00:00:00Z", "direction": "None", "callType": "Queue Call",
            "mediaStatus": "Pending"
        }))
        .unwrap()
    }

    /// Posters that never pause keep the writer in a transaction nearly all the time: the
    /// checkpoint thread must still get the WAL restarted (it once starved waiting for
    /// SQLite's write lock, and the WAL grew by every commit: 750 MB in a benchmark).
    #[test]
    fn a_steady_ingest_reuses_the_wal_instead_of_growing_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let s = Arc::new(SqliteStore::open(&db).unwrap());
        let wal = || std::fs::metadata(dir.path().join("s.db-wal")).map_or(0, |m| m.len());
        let mut largest = 0;
        std::thread::scope(|sc| {
            for t in 0..4 {
                let s = s.clone();
                sc.spawn(move || {
                    for i in 0..300 {
                        let legs: Vec<LegUpdate> = (0..20)
                            .map(|k| {
                                let mut l = leg(&format!("r-{t}-{i}-{k}"), "primary");
                                l.pairing_key = format!("k-{t}-{i}-{k}");
                                l
                            })
                            .collect();
                        s.upsert_legs(&legs).unwrap();
                    }
                });
            }
            while Arc::strong_count(&s) > 1 {
                largest = largest.max(wal());
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        let frames = largest / 4_120;
        // Restarted at RESTART_FRAMES (200 in tests), plus what commits while the checkpoint
        // thread sleeps (about 2 000 frames here); without restarts the WAL holds every
        // commit (about 20 000).
        assert!(frames < 5_000, "the WAL grew to {frames} frames");
        assert_eq!(
            s.search(
                &SearchQuery {
                    page: 1,
                    page_size: 1,
                    sort: "id".into(),
                    ..Default::default()
                },
                &Scope::All
            )
            .unwrap()
            .total,
            TOTAL_CAP
        );
    }

    /// Searches run on the read connections while posts are committed: each sees every post
    /// answered before it began, and never loses one it saw.
    #[test]
    fn searches_on_the_read_connections_follow_the_posts() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
        assert_eq!(s.readers.len(), READERS);
        let q = SearchQuery {
            page: 1,
            page_size: 1,
            sort: "id".into(),
            ..Default::default()
        };
        let answered = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|sc| {
            for t in 0..4 {
                let (s, answered) = (s.clone(), &answered);
                sc.spawn(move || {
                    for i in 0..100 {
                        let mut l = leg(&format!("r-{t}-{i}"), "primary");
                        l.pairing_key = format!("k-{t}-{i}");
                        s.upsert_leg(&l).unwrap();
                        answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
            let mut seen = 0;
            while answered.load(std::sync::atomic::Ordering::SeqCst) < 400 {
                let before = answered.load(std::sync::atomic::Ordering::SeqCst);
                let total = s.search(&q, &Scope::All).unwrap().total;
                assert!(
                    total >= before,
                    "a search saw {total} calls, {before} were answered"
                );
                assert!(total >= seen, "a search saw {total} calls after {seen}");
                seen = total;
            }
        });
        assert_eq!(s.search(&q, &Scope::All).unwrap().total, 400);
    }

    #[test]
    fn a_batch_is_all_or_nothing() {
        let s = SqliteStore::in_memory().unwrap();
        let out = s
            .upsert_legs(&[leg("a", "primary"), leg("b", "paired")])
            .unwrap();
        assert_eq!(out[0].interaction_id, out[1].interaction_id, "one Pro call");
        // The second item conflicts (same recording, other role): the first is not kept.
        let err = s.upsert_legs(&[leg("c", "primary"), leg("a", "paired")]);
        assert!(matches!(err, Err(StoreError::Conflict(_))));
        let q = SearchQuery {
            sort: "id".into(),
            page: 1,
            page_size: 10,
            ..Default::default()
        };
        assert_eq!(s.search(&q, &Scope::All).unwrap().total, 1);
        assert!(s.get(1, &Scope::All).unwrap().unwrap().legs.len() == 2);
    }

    #[test]
    fn the_merge_is_queued_once_both_legs_are_stored_and_recorded_once() {
        let s = SqliteStore::in_memory().unwrap();
        let stored = |rec: &str, role: &str| {
            let mut l = leg(rec, role);
            l.media_status = MediaStatus::Available;
            l.media_path = Some(format!("2026/01/01/{rec}"));
            l
        };
        let state = |s: &SqliteStore| s.get(1, &Scope::All).unwrap().unwrap().merge.state;
        s.upsert_leg(&stored("a", "primary")).unwrap();
        s.upsert_leg(&leg("b", "paired")).unwrap();
        assert_eq!(state(&s), MergeState::None, "one leg stored");
        assert!(s.merge_pending(0, 10).unwrap().is_empty());
        s.upsert_leg(&stored("b", "paired")).unwrap();
        assert_eq!(state(&s), MergeState::Pending);
        assert_eq!(s.merge_pending(0, 10).unwrap(), vec![1]);
        assert!(s.merge_pending(1, 10).unwrap().is_empty());
        let failed = MergeOutcome::Failed {
            error: "not the same call".into(),
        };
        assert!(s.merge_finish(1, &failed).unwrap());
        // Recorded once; a later leg update does not queue it again.
        assert!(!s.merge_finish(1, &failed).unwrap());
        s.upsert_leg(&stored("b", "paired")).unwrap();
        let d = s.get(1, &Scope::All).unwrap().unwrap();
        assert_eq!(
            (d.merge.state, d.merge.error.as_str()),
            (MergeState::Failed, "not the same call")
        );
        assert_eq!(d.playable_legs, vec!["primary", "paired"]);
        assert!(s.merge_pending(0, 10).unwrap().is_empty());
        // The query the merge task runs is an index lookup, not a scan.
        let conn = s.lock().unwrap();
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT id FROM interactions WHERE merge_state = 'pending' \
                 AND id > 0 AND media_status != 'Deleted' ORDER BY id LIMIT 64",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("interactions_merge_pending"), "{plan}");
    }

    /// A word in many notes: the page comes from walking the start-time index (membership
    /// form), and is the same page the notes-driven form gives.
    #[test]
    fn a_broad_notes_word_walks_the_sort_index_and_finds_the_same_page() {
        let s = SqliteStore::in_memory().unwrap();
        let n = BROAD_NOTES + 100;
        let legs: Vec<LegUpdate> = (0..n)
            .map(|i| {
                let mut l = leg(&format!("r{i}"), "primary");
                l.pairing_key = format!("k{i}");
                // Start times out of id order, so that the sort is not the id's.
                l.start_time += chrono::Duration::seconds((i * 7919) % n);
                l
            })
            .collect();
        let out = s.upsert_legs(&legs).unwrap();
        let author = Actor {
            oid: "o".into(),
            upn: "o@contoso.example".into(),
        };
        for (i, o) in out.iter().enumerate() {
            let text = if i % 3 == 0 { "alpha beta" } else { "alpha" };
            s.add_note(o.interaction_id, &author, text, &Scope::All)
                .unwrap();
        }
        let q = |word: &str, page: u32, descending: bool| SearchQuery {
            notes: Some(word.into()),
            sort: "startTime".into(),
            descending,
            page,
            page_size: 50,
            ..Default::default()
        };
        {
            let conn = s.lock().unwrap();
            assert!(notes_are_broad(&conn, &q("alpha", 1, true)).unwrap());
            assert!(!notes_are_broad(&conn, &q("beta", 1, true)).unwrap());
            let (wh, _) =
                build_where_with(&q("alpha", 1, true), &Scope::All, NotesForm::Membership).unwrap();
            let plan: String = conn
                .prepare(&format!(
                    "EXPLAIN QUERY PLAN SELECT i.id FROM interactions i {wh} \
                     ORDER BY i.start_time DESC, i.id DESC LIMIT 50"
                ))
                .unwrap()
                .query_map([Value::Text("\"alpha\"".into())], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
                .join("; ");
            assert!(plan.contains("interactions_start"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE FOR ORDER BY"), "{plan}");
        }
        // Expected: every call (alpha) or every third (beta), newest first.
        let mut by_start: Vec<(String, i64)> = legs
            .iter()
            .zip(&out)
            .map(|(l, o)| (fmt_time(&l.start_time), o.interaction_id))
            .collect();
        by_start.sort();
        by_start.reverse();
        let third: std::collections::HashSet<i64> =
            out.iter().step_by(3).map(|o| o.interaction_id).collect();
        for (word, page) in [("alpha", 1), ("alpha", 3), ("beta", 1), ("beta", 2)] {
            let want: Vec<i64> = by_start
                .iter()
                .map(|(_, id)| *id)
                .filter(|id| word == "alpha" || third.contains(id))
                .skip((page as usize - 1) * 50)
                .take(50)
                .collect();
            let got = s.search(&q(word, page, true), &Scope::All).unwrap();
            assert_eq!(got.items.iter().map(|i| i.id).collect::<Vec<_>>(), want);
            let exact = word == "beta";
            assert_eq!(got.total_is_lower_bound, !exact, "{word}");
            if exact {
                assert_eq!(got.total, third.len() as u64);
            }
        }
        let asc = s.search(&q("alpha", 1, false), &Scope::All).unwrap();
        assert_eq!(asc.items[0].id, by_start.last().unwrap().1);
    }
}
