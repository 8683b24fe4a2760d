//! The audit trail: append-only and tamper-evident. Each entry's hash covers the previous
//! entry's hash and the entry's own content, so an edit breaks the chain from that entry on
//! and a deletion in the middle breaks it at the gap. Deleting the newest entries would leave
//! a valid shorter chain, so the head (last id and hash) is also written to an anchor file
//! outside the database; `audit verify` compares the two. (An attacker who can rewrite both
//! the database and the anchor can forge a chain; shipping the anchor off-host is the cure and
//! is not done yet.)

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, as the product lists the actions.
pub const ACTIONS: &[&str] = &[
    "login",
    "view",
    "play",
    "download",
    "export",
    "add",
    "modify",
    "delete",
    "disable",
    "legal hold",
];

/// An entry to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAudit {
    /// Who (object id; `anonymous` for a refused token).
    pub user_oid: String,
    /// Who (UPN).
    pub user_upn: String,
    /// One of [`ACTIONS`].
    pub action: &'static str,
    /// Kind of item (`interaction`, `tag`, `note`, `search`, `token`, ...).
    pub item_type: &'static str,
    /// The item's id or name.
    pub item: String,
    /// Free text.
    pub description: String,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Sequence number, from 1, without gaps.
    pub id: i64,
    /// When (RFC 3339 UTC).
    pub at: String,
    /// Who (object id).
    pub user_oid: String,
    /// Who (UPN).
    pub user_upn: String,
    /// Action.
    pub action: String,
    /// Item type.
    pub item_type: String,
    /// Item.
    pub item: String,
    /// Description.
    pub description: String,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// SHA-256 of `prev_hash` and this entry's content.
    pub hash: String,
}

impl AuditEntry {
    /// The hash this entry must carry. The content is a JSON array, so no choice of field
    /// values can make two different entries serialize alike.
    pub fn compute_hash(&self) -> String {
        let content = serde_json::json!([
            self.id,
            self.at,
            self.user_oid,
            self.user_upn,
            self.action,
            self.item_type,
            self.item,
            self.description
        ]);
        let mut h = Sha256::new();
        h.update(self.prev_hash.as_bytes());
        h.update(b"\n");
        h.update(content.to_string().as_bytes());
        hex::encode(h.finalize())
    }
}

/// Filters of `GET /api/v1/audit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// At or after (RFC 3339).
    pub from: Option<String>,
    /// Before.
    pub to: Option<String>,
    /// User UPN or object id contains.
    pub name: Option<String>,
    /// Action equals.
    pub action: Option<String>,
    /// Item equals.
    pub item: Option<String>,
    /// Description contains.
    pub text: Option<String>,
    /// 1-based page.
    pub page: u32,
    /// Rows per page.
    pub page_size: u32,
}

/// The last entry as recorded outside the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// Last id.
    pub id: i64,
    /// Its hash.
    pub hash: String,
}

/// Writes the anchor atomically (temporary file, rename).
pub fn write_anchor(path: &Path, a: &Anchor) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(a).unwrap_or_default())?;
    std::fs::rename(tmp, path)
}

/// The heads written, by anchor file: an older head never overwrites a newer one when
/// requests and the retention cycle audit at once.
static ANCHOR_HEADS: std::sync::Mutex<Vec<(PathBuf, i64)>> = std::sync::Mutex::new(Vec::new());

/// Moves the anchor at `path` to `e` unless it already names a later entry (in this process or
/// on disk).
pub fn advance_anchor(path: &Path, e: &AuditEntry) -> std::io::Result<()> {
    let mut heads = ANCHOR_HEADS.lock().unwrap_or_else(|p| p.into_inner());
    let known = match heads.iter().find(|(p, _)| p == path) {
        Some((_, id)) => *id,
        // First write in this process: the file may hold a later head from an earlier one.
        None => std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Anchor>(&b).ok())
            .map(|a| a.id)
            .unwrap_or(0),
    };
    if e.id > known {
        write_anchor(
            path,
            &Anchor {
                id: e.id,
                hash: e.hash.clone(),
            },
        )?;
        heads.retain(|(p, _)| p != path);
        heads.push((path.to_path_buf(), e.id));
    }
    Ok(())
}

/// Checks the chain and the anchor; `Ok(n)` with the number of entries, or a description of
/// the first problem.
pub fn verify_chain(entries: &[AuditEntry], anchor: Option<&Anchor>) -> Result<usize, String> {
    let mut prev = GENESIS.to_string();
    for (i, e) in entries.iter().enumerate() {
        let want_id = i as i64 + 1;
        if e.id != want_id {
            return Err(format!(
                "entry {want_id} is missing (found {} next): deleted",
                e.id
            ));
        }
        if e.prev_hash != prev {
            return Err(format!(
                "entry {}: previous hash does not match entry {}: the chain was altered",
                e.id,
                e.id - 1
            ));
        }
        if e.compute_hash() != e.hash {
            return Err(format!(
                "entry {}: content does not match its hash: edited",
                e.id
            ));
        }
        prev = e.hash.clone();
    }
    if let Some(a) = anchor {
        match entries.iter().find(|e| e.id == a.id) {
            None => {
                return Err(format!(
                    "the anchor names entry {} but the trail ends at {}: entries deleted",
                    a.id,
                    entries.len()
                ))
            }
            Some(e) if e.hash != a.hash => {
                return Err(format!(
                    "entry {} differs from the anchor: the chain was rewritten",
                    a.id
                ))
            }
            Some(_) => {}
        }
    }
    Ok(entries.len())
}

/// `recorder-daemon audit verify`: checks the whole chain of `store` against the anchor file
/// (when there is one) and says what it found; an error names the first broken entry.
pub fn verify_store(
    store: &dyn crate::store::Store,
    anchor_path: &std::path::Path,
) -> anyhow::Result<String> {
    use anyhow::Context;
    let entries = store.audit_all()?;
    let anchor: Option<Anchor> = match std::fs::read(anchor_path) {
        Ok(b) => Some(serde_json::from_slice(&b).context("parsing the audit anchor")?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).context("reading the audit anchor"),
    };
    match verify_chain(&entries, anchor.as_ref()) {
        Ok(n) => Ok(format!(
            "audit trail ok: {n} entries{}",
            if anchor.is_some() {
                ", anchor matches"
            } else {
                ", no anchor"
            }
        )),
        Err(e) => anyhow::bail!("audit trail FAILED: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<AuditEntry> {
        let mut prev = GENESIS.to_string();
        (1..=n as i64)
            .map(|id| {
                let mut e = AuditEntry {
                    id,
                    at: format!("2026-01-01T00:00:{id:02}.000Z"),
                    user_oid: "o".into(),
                    user_upn: "u".into(),
                    action: "view".into(),
                    item_type: "interaction".into(),
                    item: id.to_string(),
                    description: String::new(),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = e.compute_hash();
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    #[test]
    fn edits_and_deletions_are_found() {
        let c = chain(5);
        let anchor = Anchor {
            id: 5,
            hash: c[4].hash.clone(),
        };
        assert_eq!(verify_chain(&c, Some(&anchor)), Ok(5));

        let mut edited = c.clone();
        edited[2].description = "x".into();
        assert!(verify_chain(&edited, Some(&anchor))
            .unwrap_err()
            .contains("edited"));

        let mut middle = c.clone();
        middle.remove(1);
        assert!(verify_chain(&middle, None).unwrap_err().contains("missing"));

        let tail = c[..4].to_vec();
        assert_eq!(verify_chain(&tail, None), Ok(4));
        assert!(verify_chain(&tail, Some(&anchor))
            .unwrap_err()
            .contains("deleted"));

        // Rewritten from entry 3 on with valid hashes: only the anchor can tell.
        let mut rewritten = c.clone();
        rewritten[2].description = "x".into();
        for i in 2..5 {
            if i > 2 {
                rewritten[i].prev_hash = rewritten[i - 1].hash.clone();
            }
            rewritten[i].hash = rewritten[i].compute_hash();
        }
        assert_eq!(verify_chain(&rewritten, None), Ok(5));
        assert!(verify_chain(&rewritten, Some(&anchor)).is_err());
    }
}
