//! The uploader's durable journal: a SQLite file of its own (`upload-journal.db`, WAL,
//! `synchronous = FULL`, so each step is on disk before the next one starts), apart from the
//! store so that the uploader's steps never wait behind the store's writers.
//!
//! A recording moves `uploading` -> (one `copies` row per storage whose copy verified) ->
//! `indexed` (the store says Available) -> done (the spool copy is gone or kept aside; its rows
//! are deleted, so the journal holds only the work in progress).
//! After a crash the uploader resumes from the last step written: copies already verified are
//! not sent again, an indexed recording only has its spool copy moved. Every step is also
//! safe to repeat (idempotent puts to a key fixed by the recording, upsert by recording id),
//! so a crash between a step and its journal line repeats the step and duplicates nothing.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

/// Where a recording stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Copies are being made.
    Uploading,
    /// Every copy verified and the store updated; the spool copy remains to be moved.
    Indexed,
    /// Finished (the journal then forgets the recording).
    Done,
}

impl Step {
    fn as_str(self) -> &'static str {
        match self {
            Step::Uploading => "uploading",
            Step::Indexed => "indexed",
            Step::Done => "done",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "uploading" => Some(Step::Uploading),
            "indexed" => Some(Step::Indexed),
            "done" => Some(Step::Done),
            _ => None,
        }
    }
}

/// Journal errors.
#[derive(Debug, thiserror::Error)]
#[error("upload journal: {0}")]
pub struct JournalError(#[from] rusqlite::Error);

/// The journal.
pub struct Journal {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS uploads (
    recording_id TEXT PRIMARY KEY,
    spool TEXT NOT NULL,
    media_path TEXT NOT NULL,
    step TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS copies (
    recording_id TEXT NOT NULL,
    storage TEXT NOT NULL,
    files INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    verified_at TEXT NOT NULL,
    PRIMARY KEY (recording_id, storage)
);
"#;

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Journal {
    /// Opens (or creates) the journal at `path`.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a step acknowledged is a step on disk, whatever happens next.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back), so
        // a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The step of `recording_id`, `None` when never seen.
    pub fn step(&self, recording_id: &str) -> Result<Option<Step>, JournalError> {
        let s: Option<String> = self
            .lock()
            .prepare_cached("SELECT step FROM uploads WHERE recording_id = ?")?
            .query_row([recording_id], |r| r.get(0))
            .optional()?;
        Ok(s.as_deref().and_then(Step::parse))
    }

    /// Starts (or resumes) a recording; a recording further along keeps its step.
    pub fn begin(
        &self,
        recording_id: &str,
        spool: &Path,
        media_path: &str,
    ) -> Result<(), JournalError> {
        self.lock()
            .prepare_cached(
                "INSERT INTO uploads (recording_id, spool, media_path, step, updated_at) \
                 VALUES (?, ?, ?, 'uploading', ?) ON CONFLICT(recording_id) DO NOTHING",
            )?
            .execute(params![
                recording_id,
                spool.to_string_lossy(),
                media_path,
                now()
            ])?;
        Ok(())
    }

    /// The storages holding a verified copy of `recording_id`.
    pub fn copies(&self, recording_id: &str) -> Result<Vec<String>, JournalError> {
        let conn = self.lock();
        let mut st = conn.prepare_cached("SELECT storage FROM copies WHERE recording_id = ?")?;
        let rows = st.query_map([recording_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records the verified copy of `recording_id` in `storage`.
    pub fn copy_verified(
        &self,
        recording_id: &str,
        storage: &str,
        files: usize,
        bytes: u64,
    ) -> Result<(), JournalError> {
        self.lock()
            .prepare_cached(
                "INSERT OR REPLACE INTO copies (recording_id, storage, files, bytes, verified_at) \
                 VALUES (?, ?, ?, ?, ?)",
            )?
            .execute(params![
                recording_id,
                storage,
                files as i64,
                bytes as i64,
                now()
            ])?;
        Ok(())
    }

    /// Moves `recording_id` to `step`. `Done` forgets the recording: nothing is left to
    /// resume, and the journal stays as small as the work in progress.
    pub fn set_step(&self, recording_id: &str, step: Step) -> Result<(), JournalError> {
        let mut conn = self.lock();
        if step == Step::Done {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM copies WHERE recording_id = ?", [recording_id])?;
            tx.execute("DELETE FROM uploads WHERE recording_id = ?", [recording_id])?;
            tx.commit()?;
        } else {
            conn.prepare_cached(
                "UPDATE uploads SET step = ?, updated_at = ? WHERE recording_id = ?",
            )?
            .execute(params![step.as_str(), now(), recording_id])?;
        }
        Ok(())
    }

    /// Recordings indexed but not done (their spool copy was being moved at a crash).
    pub fn indexed(&self) -> Result<Vec<(String, String)>, JournalError> {
        let conn = self.lock();
        let mut st =
            conn.prepare_cached("SELECT recording_id, spool FROM uploads WHERE step = 'indexed'")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_survive_a_reopen_and_begin_does_not_rewind() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.db");
        {
            let j = Journal::open(&p).unwrap();
            assert_eq!(j.step("r1").unwrap(), None);
            j.begin("r1", Path::new("/spool"), "2026/11/26/r1").unwrap();
            j.copy_verified("r1", "local", 3, 100).unwrap();
            j.copy_verified("r1", "local", 3, 100).unwrap();
            j.set_step("r1", Step::Indexed).unwrap();
        }
        let j = Journal::open(&p).unwrap();
        j.begin("r1", Path::new("/spool"), "2026/11/26/r1").unwrap();
        assert_eq!(j.step("r1").unwrap(), Some(Step::Indexed));
        assert_eq!(j.copies("r1").unwrap(), ["local"]);
        assert_eq!(
            j.indexed().unwrap(),
            [("r1".to_string(), "/spool".to_string())]
        );
        j.set_step("r1", Step::Done).unwrap();
        assert!(j.indexed().unwrap().is_empty());
        assert_eq!(j.step("r1").unwrap(), None);
        assert!(j.copies("r1").unwrap().is_empty());
    }
}
