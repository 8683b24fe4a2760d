//! The PostgreSQL store (docs/postgres.md): the same [`Store`] as SQLite, for a deployment
//! where the metadata must outlive one machine or be shared by several daemons.
//!
//! Synchronous `postgres` client (the trait is sync and runs on the blocking pool) behind an
//! r2d2 pool. Every method is one pooled connection and, when it writes, one transaction:
//! [`PgStore::read`] and [`PgStore::write`] are the only ways in, so a new trait method is a
//! function in one of the submodules plus one delegating line here. Where SQLite relies on its
//! single connection for ordering (audit chain, pairing of legs), advisory locks do the same
//! across connections and daemons.

mod admin;
mod interactions;
mod lifecycle;
pub mod schema;
pub mod scratch;

use std::time::Duration;

use ::postgres::error::SqlState;
use ::postgres::types::ToSql;
use ::postgres::{Client, NoTls, Transaction};
use chrono::{DateTime, Utc};
use r2d2_postgres::PostgresConnectionManager;

use super::activity::{Activity, Alarm, NewAlarm};
use super::*;

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;

/// Connections per daemon: the HTTP layer's blocking pool, the uploader and the retention
/// cycle run a handful of queries at once; more would only queue inside PostgreSQL.
const POOL_SIZE: u32 = 8;

/// PostgreSQL implementation of [`Store`].
pub struct PgStore {
    /// Always `Some` until dropped (see `Drop`).
    pool: Option<Pool>,
    trigram: bool,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Closing a connection blocks on the client's runtime, which must not happen on an
        // async thread (the last `Arc` of the store may go anywhere).
        if let Some(pool) = self.pool.take() {
            let _ = blocking(move || {
                drop(pool);
                Ok(())
            });
        }
    }
}

/// Query parameters collected while a statement is built; `push` returns the placeholder, so
/// text from a request is only ever a parameter.
#[derive(Default)]
pub(crate) struct Args(Vec<Box<dyn ToSql + Sync + Send>>);

impl Args {
    /// Adds a parameter; returns its placeholder (`$n`).
    pub(crate) fn push<T: ToSql + Sync + Send + 'static>(&mut self, v: T) -> String {
        self.0.push(Box::new(v));
        format!("${}", self.0.len())
    }

    /// The parameters as the client takes them.
    pub(crate) fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// A unique constraint refused the row.
pub(crate) fn unique_violation(e: &::postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

fn pool_err(e: r2d2::Error) -> StoreError {
    StoreError::Db(format!("connection pool: {e}"))
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and migrates the
    /// schema. Fails when the server cannot be reached within ten seconds.
    pub fn connect(url: &str) -> StoreResult<Self> {
        let config: ::postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("database_url: {e}")))?;
        Self::connect_config(config)
    }

    /// Connects with a parsed configuration (see [`PgStore::connect`]).
    pub fn connect_config(mut config: ::postgres::Config) -> StoreResult<Self> {
        if config.get_application_name().is_none() {
            config.application_name("recorder-daemon");
        }
        config.connect_timeout(Duration::from_secs(10));
        let manager = PostgresConnectionManager::new(config, NoTls);
        // Built off any async thread: a failed build closes the connections it opened.
        let pool = blocking(move || {
            r2d2::Pool::builder()
                .max_size(POOL_SIZE)
                .min_idle(Some(1))
                .connection_timeout(Duration::from_secs(10))
                .build(manager)
                .map_err(pool_err)
        })?;
        let mut store = Self {
            pool: Some(pool),
            trigram: false,
        };
        store.trigram = store.read(schema::migrate)?;
        Ok(store)
    }

    /// Whether the `pg_trgm` extension (and so the substring indexes) is available.
    pub fn has_trigram_indexes(&self) -> bool {
        self.trigram
    }

    /// Gathers planner statistics now (after a bulk load; autovacuum does it otherwise).
    pub fn analyze(&self) -> StoreResult<()> {
        self.read(|c| Ok(c.batch_execute("ANALYZE")?))
    }

    fn conn(&self) -> StoreResult<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>> {
        self.pool
            .as_ref()
            .ok_or_else(|| StoreError::Db("the store is closed".into()))?
            .get()
            .map_err(pool_err)
    }

    /// Runs `f` on a pooled connection, outside any explicit transaction.
    fn read<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> StoreResult<T> + Send,
    ) -> StoreResult<T> {
        blocking(|| {
            let mut c = self.conn()?;
            f(&mut c)
        })
    }

    /// Runs `f` in a read-only repeatable-read transaction: the several statements of one
    /// answer (a page and its total, an interaction and its lists) see one snapshot, as they
    /// do behind SQLite's single connection.
    fn snapshot<T: Send>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> StoreResult<T> + Send,
    ) -> StoreResult<T> {
        blocking(|| {
            let mut c = self.conn()?;
            let mut tx = c
                .build_transaction()
                .isolation_level(::postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        })
    }

    /// Runs `f` in a transaction, committed when `f` succeeds and rolled back otherwise.
    fn write<T: Send>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> StoreResult<T> + Send,
    ) -> StoreResult<T> {
        blocking(|| {
            let mut c = self.conn()?;
            let mut tx = c.transaction()?;
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        })
    }
}

/// The synchronous client drives its own small runtime, which cannot start on a thread that
/// is driving async tasks. The daemon calls the store from `spawn_blocking` (where this is a
/// plain call); a call from a worker of a multi-threaded runtime is moved off it with
/// `block_in_place`, and one under a current-thread runtime (tests) runs on a scoped thread,
/// because from there a blocking-pool thread and the runtime's own cannot be told apart.
pub(crate) fn blocking<T: Send>(f: impl FnOnce() -> StoreResult<T> + Send) -> StoreResult<T> {
    match tokio::runtime::Handle::try_current() {
        Err(_) => f(),
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        Ok(_) => std::thread::scope(|s| {
            s.spawn(f)
                .join()
                .unwrap_or_else(|_| Err(StoreError::Db("store thread panicked".into())))
        }),
    }
}

impl Store for PgStore {
    fn upsert_leg(&self, leg: &LegUpdate) -> StoreResult<UpsertOutcome> {
        self.write(|tx| {
            interactions::lock_pairing_keys(tx, [leg])?;
            interactions::upsert_in(tx, &mut Default::default(), leg)
        })
    }

    fn upsert_legs(&self, legs: &[LegUpdate]) -> StoreResult<Vec<UpsertOutcome>> {
        self.write(|tx| {
            interactions::lock_pairing_keys(tx, legs)?;
            let mut px = interactions::Prepared::default();
            legs.iter()
                .map(|l| interactions::upsert_in(tx, &mut px, l))
                .collect()
        })
    }

    fn search(&self, q: &SearchQuery, scope: &Scope) -> StoreResult<Page<InteractionSummary>> {
        self.snapshot(|tx| interactions::search(tx, q, scope))
    }

    fn get(&self, id: i64, scope: &Scope) -> StoreResult<Option<InteractionDetail>> {
        self.snapshot(|tx| interactions::get(tx, id, scope))
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
        self.write(|tx| {
            interactions::request_deletion(tx, id, scope, authorized_by, note, by, visible_to)
        })
    }

    fn tags(&self) -> StoreResult<Vec<Tag>> {
        self.read(interactions::tags)
    }

    fn create_tag(&self, name: &str, description: &str) -> StoreResult<Tag> {
        self.read(|c| interactions::create_tag(c, name, description))
    }

    fn update_tag(&self, id: i64, name: &str, description: &str) -> StoreResult<Tag> {
        self.read(|c| interactions::update_tag(c, id, name, description))
    }

    fn delete_tag(&self, id: i64) -> StoreResult<()> {
        self.read(|c| interactions::delete_tag(c, id))
    }

    fn set_tags(&self, ids: &[i64], tag_ids: &[i64], scope: &Scope) -> StoreResult<()> {
        self.write(|tx| interactions::set_tags(tx, ids, tag_ids, scope))
    }

    fn add_note(&self, id: i64, author: &Actor, text: &str, scope: &Scope) -> StoreResult<Note> {
        self.write(|tx| interactions::add_note(tx, id, author, text, scope))
    }

    fn note(&self, id: i64, note_id: i64, scope: &Scope) -> StoreResult<Option<Note>> {
        self.read(|c| interactions::note(c, id, note_id, scope))
    }

    fn delete_note(&self, id: i64, note_id: i64) -> StoreResult<()> {
        self.read(|c| interactions::delete_note(c, id, note_id))
    }

    fn import_directory(&self, d: &DirectoryImport) -> StoreResult<(usize, usize)> {
        self.write(|tx| admin::import_directory(tx, d))
    }

    fn users(&self) -> StoreResult<Vec<User>> {
        self.snapshot(|tx| admin::users(tx))
    }

    fn user_groups(&self, oid: &str) -> StoreResult<Vec<String>> {
        self.read(|c| admin::user_groups(c, oid))
    }

    fn group_members(&self, groups: &[String]) -> StoreResult<(Vec<String>, Vec<String>)> {
        self.read(|c| admin::group_members(c, groups))
    }

    fn set_legal_hold(&self, oid: &str, on: bool, by: &str, at: DateTime<Utc>) -> StoreResult<()> {
        self.write(|tx| lifecycle::set_legal_hold(tx, oid, on, by, at))
    }

    fn delete_user(&self, oid: &str) -> StoreResult<()> {
        self.write(|tx| lifecycle::delete_user(tx, oid))
    }

    fn export_user(&self, oid: &str) -> StoreResult<UserExport> {
        self.snapshot(|tx| lifecycle::export_user(tx, oid))
    }

    fn pending_deletions(&self, after: i64, limit: u32) -> StoreResult<Vec<DeletionRequest>> {
        self.read(|c| lifecycle::pending_deletions(c, after, limit))
    }

    fn expired(
        &self,
        now: DateTime<Utc>,
        after: Option<&ExpiryCursor>,
        limit: u32,
        with_deleted_media: bool,
    ) -> StoreResult<Vec<ExpiryCursor>> {
        self.read(|c| lifecycle::expired(c, now, after, limit, with_deleted_media))
    }

    fn retention_item(&self, id: i64) -> StoreResult<Option<RetentionItem>> {
        self.snapshot(|tx| lifecycle::retention_item(tx, id))
    }

    fn retention_apply(
        &self,
        id: i64,
        change: RetentionChange,
        audit: &NewAudit,
    ) -> StoreResult<AuditEntry> {
        self.write(|tx| {
            lifecycle::apply(tx, id, change)?;
            admin::append_audit(tx, audit)
        })
    }

    fn access_profiles(&self) -> StoreResult<Vec<AccessProfile>> {
        self.read(admin::access_profiles)
    }

    fn put_access_profile(&self, p: &AccessProfile) -> StoreResult<AccessProfile> {
        self.read(|c| admin::put_access_profile(c, p))
    }

    fn delete_access_profile(&self, id: i64) -> StoreResult<()> {
        self.read(|c| admin::delete_access_profile(c, id))
    }

    fn merge_pending(&self, after: i64, limit: u32) -> StoreResult<Vec<i64>> {
        self.read(|c| interactions::merge_pending(c, after, limit))
    }

    fn merge_finish(&self, id: i64, outcome: &MergeOutcome) -> StoreResult<bool> {
        self.write(|tx| interactions::merge_finish(tx, id, outcome))
    }

    fn leg_status(&self, recording_id: &str) -> StoreResult<Option<(i64, MediaStatus)>> {
        self.read(|c| interactions::leg_status(c, recording_id))
    }

    fn recording_profiles(&self) -> StoreResult<Vec<RecordingProfileRow>> {
        self.read(admin::recording_profiles)
    }

    fn replace_recording_profiles(&self, set: &[RecordingProfileRow]) -> StoreResult<()> {
        self.write(|tx| admin::replace_recording_profiles(tx, set))
    }

    fn saved_searches(&self, owner: &str) -> StoreResult<Vec<SavedSearch>> {
        self.read(|c| admin::saved_searches(c, owner))
    }

    fn save_search(&self, owner: &str, name: &str, query: &str) -> StoreResult<SavedSearch> {
        self.read(|c| admin::save_search(c, owner, name, query))
    }

    fn delete_saved_search(&self, owner: &str, id: i64) -> StoreResult<()> {
        self.read(|c| admin::delete_saved_search(c, owner, id))
    }

    fn audit_append(&self, e: &NewAudit) -> StoreResult<AuditEntry> {
        self.write(|tx| admin::append_audit(tx, e))
    }

    fn audit_search(&self, q: &AuditQuery) -> StoreResult<Page<AuditEntry>> {
        self.snapshot(|tx| admin::audit_search(tx, q))
    }

    fn audit_all(&self) -> StoreResult<Vec<AuditEntry>> {
        self.read(admin::audit_all)
    }

    fn alarm_raise(&self, a: &NewAlarm) -> StoreResult<Option<Alarm>> {
        self.write(|tx| lifecycle::alarm_raise(tx, a))
    }

    fn alarm_clear(&self, name: &str, source: &str) -> StoreResult<Option<Alarm>> {
        self.write(|tx| lifecycle::alarm_clear(tx, name, source))
    }

    fn alarms_active(&self) -> StoreResult<Vec<Alarm>> {
        self.read(lifecycle::alarms_active)
    }

    fn activity_append(&self, kind: &str, source: &str, text: &str) -> StoreResult<()> {
        self.read(|c| lifecycle::activity_append(c, kind, source, text, None))
    }

    fn activity(&self, page: u32, page_size: u32) -> StoreResult<Page<Activity>> {
        self.snapshot(|tx| lifecycle::activity(tx, page, page_size))
    }
}
