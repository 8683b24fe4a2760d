//! Interactions: ingest from bot-host, search, detail, tags, notes, media.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;

use futures_util::StreamExt;

use super::params::{pairs, search_query};
use super::{parse_id, ApiJson, AppError, AppState, Caller};
use crate::auth::INGEST_ROLE;
use crate::media::{parse_range, LegChoice, RangeReq, MIXED_FILE};
use crate::model::{BotRole, LegUpdate, MediaStatus, MergeState};
use crate::rbac::Permission;
use crate::storage::{Storage, StorageError};

/// Compares without an early exit on the first different byte, so the ingest key cannot be
/// guessed byte by byte from response times.
fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Who may post interactions: the configured ingest key (`X-Ingest-Key` header, `Bearer`
/// with the key, or `?ingestKey=` on the URL, which lets bot-host's `store_url` carry it), or
/// a token with the `Interactions.Ingest` role or of a global administrator.
pub(super) async fn ingest_allowed(
    state: &AppState,
    headers: &HeaderMap,
    raw: Option<&str>,
) -> Result<String, AppError> {
    let q = pairs(raw, &["ingestKey"])?;
    let header_key = headers.get("x-ingest-key").and_then(|v| v.to_str().ok());
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    if let Some(key) = &state.ingest_key {
        let offered = q
            .iter()
            .map(|(_, v)| v.as_str())
            .chain(header_key)
            .chain(bearer);
        for o in offered {
            if same_key(o, key) {
                return Ok("ingest-key".into());
            }
        }
    }
    let why = match bearer.map(|t| state.keys.verify(t)) {
        Some(Ok(c)) => {
            let admin = state.global_admins.contains(&c.upn.to_lowercase())
                || state.global_admins.contains(&c.oid.to_lowercase());
            if c.roles.iter().any(|r| r == INGEST_ROLE) || admin {
                return Ok(c.upn);
            }
            format!("token of {} lacks the {INGEST_ROLE} role", c.upn)
        }
        Some(Err(e)) => e.to_string(),
        None if header_key.is_some() || !q.is_empty() => "wrong ingest key".into(),
        None => "no ingest key or token".into(),
    };
    state
        .audit(crate::audit::NewAudit {
            user_oid: "anonymous".into(),
            user_upn: String::new(),
            action: "login",
            item_type: "ingest",
            item: String::new(),
            description: format!("refused: {why}"),
        })
        .await?;
    Err(AppError::new(StatusCode::UNAUTHORIZED, why))
}

/// `POST /api/v1/interactions`: one leg's metadata, upserted by `recordingId`.
pub async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Result<ApiJson<LegUpdate>, AppError>,
) -> Result<Response, AppError> {
    // Authentication first: an unauthenticated caller learns nothing about the body's shape.
    let who = ingest_allowed(&state, &headers, raw.as_deref()).await?;
    let ApiJson(leg) = body?;
    leg.validate().map_err(AppError::bad_request)?;
    let l = leg.clone();
    let out = state.run(move |s| s.upsert_leg(&l)).await?;
    if out.created_leg {
        state
            .audit(crate::audit::NewAudit {
                user_oid: who.clone(),
                user_upn: who,
                action: "add",
                item_type: "interaction",
                item: out.interaction_id.to_string(),
                description: format!(
                    "{} leg {} of {}",
                    leg.bot_role.as_str(),
                    leg.recording_id,
                    leg.pairing_key
                ),
            })
            .await?;
    }
    let status = if out.created_leg {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(out)).into_response())
}

/// `GET /api/v1/interactions`.
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    caller.require_calls()?;
    let q = search_query(raw.as_deref())?;
    run_search(state, caller, q, raw.unwrap_or_default()).await
}

async fn run_search(
    state: AppState,
    caller: Caller,
    q: crate::store::SearchQuery,
    criteria: String,
) -> Result<Response, AppError> {
    let scope = caller.scope(&state).await?;
    let page = state.run(move |s| s.search(&q, &scope)).await?;
    state
        .audit(caller.audit(
            "view",
            "search",
            "",
            format!(
                "{criteria} ({}{} results)",
                page.total,
                if page.total_is_lower_bound { "+" } else { "" }
            ),
        ))
        .await?;
    Ok(Json(page).into_response())
}

/// `GET /api/v1/interactions/active`: the calls being recorded now.
pub async fn active(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    caller.require_calls()?;
    let mut q = search_query(raw.as_deref())?;
    q.media_status = vec![MediaStatus::Recording];
    run_search(
        state,
        caller,
        q,
        format!("active {}", raw.unwrap_or_default()),
    )
    .await
}

/// `GET /api/v1/interactions/{id}`.
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    caller.require_calls()?;
    let scope = caller.scope(&state).await?;
    let d = state
        .run(move |s| s.get(id, &scope))
        .await?
        .ok_or_else(|| AppError::not_found(format!("interaction {id} not found")))?;
    state
        .audit(caller.audit("view", "interaction", id.to_string(), ""))
        .await?;
    Ok(Json(d).into_response())
}

/// Body of `PUT /api/v1/interactions/tags`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetTags {
    /// The calls.
    pub interaction_ids: Vec<i64>,
    /// Their new tags (replacing the old ones).
    pub tag_ids: Vec<i64>,
}

/// `PUT /api/v1/interactions/tags`: overwrite the tags of several calls.
pub async fn set_tags(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<SetTags>, AppError>,
) -> Result<Response, AppError> {
    caller.require(Permission::Tag)?;
    caller.require_calls()?;
    let ApiJson(b) = body?;
    if b.interaction_ids.is_empty() || b.interaction_ids.len() > 1000 || b.tag_ids.len() > 100 {
        return Err(AppError::bad_request(
            "interactionIds must hold 1..1000 ids, tagIds at most 100",
        ));
    }
    let scope = caller.scope(&state).await?;
    let (ids, tags) = (b.interaction_ids.clone(), b.tag_ids.clone());
    state.run(move |s| s.set_tags(&ids, &tags, &scope)).await?;
    state
        .audit(caller.audit(
            "modify",
            "interaction",
            format!("{:?}", b.interaction_ids),
            format!("tags set to {:?}", b.tag_ids),
        ))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Body of `POST /api/v1/interactions/{id}/notes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    /// The note.
    pub text: String,
}

/// `POST /api/v1/interactions/{id}/notes`.
pub async fn add_note(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<ApiJson<NewNote>, AppError>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    caller.require(Permission::AddNotes)?;
    caller.require_calls()?;
    let ApiJson(b) = body?;
    if b.text.trim().is_empty() || b.text.chars().count() > 10_000 {
        return Err(AppError::bad_request("text must have 1..10000 characters"));
    }
    let scope = caller.scope(&state).await?;
    let actor = caller.actor();
    let note = state
        .run(move |s| s.add_note(id, &actor, &b.text, &scope))
        .await?;
    state
        .audit(caller.audit(
            "add",
            "note",
            note.id.to_string(),
            format!("on interaction {id}"),
        ))
        .await?;
    Ok((StatusCode::CREATED, Json(note)).into_response())
}

/// `DELETE /api/v1/interactions/{id}/notes/{noteId}`: one's own note with `addNotes`,
/// another's with `deleteOthersNotes`.
pub async fn delete_note(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, note_id)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let (id, note_id) = (parse_id(&id)?, parse_id(&note_id)?);
    caller.require_calls()?;
    let scope = caller.scope(&state).await?;
    let note = state
        .run(move |s| s.note(id, note_id, &scope))
        .await?
        .ok_or_else(|| AppError::not_found(format!("note {note_id} not found")))?;
    if note.author_oid == caller.claims.oid {
        caller.require(Permission::AddNotes)?;
    } else {
        caller.require(Permission::DeleteOthersNotes)?;
    }
    state.run(move |s| s.delete_note(id, note_id)).await?;
    state
        .audit(caller.audit(
            "delete",
            "note",
            note_id.to_string(),
            format!("on interaction {id}, by {}", note.author_upn),
        ))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Body of `POST /api/v1/interactions/{id}/deletion`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeletionBody {
    /// `metadataAndMedia` or `mediaOnly`.
    pub scope: crate::store::DeletionScope,
    /// Who authorised the deletion.
    pub authorized_by: String,
    /// Why.
    pub note: String,
}

/// `POST /api/v1/interactions/{id}/deletion`: records the request (202); the retention cycle
/// executes it. Refused (409) while a recorded user is on legal hold.
pub async fn request_deletion(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<ApiJson<DeletionBody>, AppError>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    caller.require(Permission::DeleteCalls)?;
    caller.require_calls()?;
    let ApiJson(b) = body?;
    let bad = |s: &str| s.trim().is_empty() || s.chars().count() > 1000;
    if bad(&b.authorized_by) || bad(&b.note) {
        return Err(AppError::bad_request(
            "authorizedBy and note must have 1..1000 characters",
        ));
    }
    let scope = caller.scope(&state).await?;
    let actor = caller.actor();
    let what = b.scope;
    let r = state
        .run(move |s| s.request_deletion(id, what, &b.authorized_by, &b.note, &actor, &scope))
        .await;
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            // A refused deletion is worth a line in the trail too.
            if e.status == StatusCode::CONFLICT {
                state
                    .audit(caller.audit(
                        "delete",
                        "interaction",
                        id.to_string(),
                        format!("refused: {}", e.message),
                    ))
                    .await?;
            }
            return Err(e);
        }
    };
    state
        .audit(caller.audit(
            "delete",
            "interaction",
            id.to_string(),
            format!(
                "{} requested, authorized by {}: {}",
                r.scope.as_str(),
                r.authorized_by,
                r.note
            ),
        ))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(r)).into_response())
}

/// The recording a media or segments request is served from.
struct Served {
    /// Its storage.
    storage: Arc<dyn Storage>,
    /// Its media path (directory of `mixed.ogg`, `segments.json`, `meta.json`).
    dir: String,
    /// What is served: `merged`, `primary` or `paired` (`X-Recording-Leg`).
    leg: &'static str,
    /// The roster of the served recording (the primary leg's for the merge).
    participants: Vec<crate::model::Participant>,
}

impl Served {
    fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.dir.trim_end_matches('/'))
    }
}

/// The recording of the chosen leg, for a caller who may see the call. `merged` is the stored
/// merge when there is one, else the primary leg's recording, else the paired leg's (the
/// response's `X-Recording-Leg` says which). The leg's `storage` names the storage (empty:
/// `local`).
async fn served_recording(
    state: &AppState,
    caller: &Caller,
    id: i64,
    leg: LegChoice,
) -> Result<Served, AppError> {
    caller.require_calls()?;
    let scope = caller.scope(state).await?;
    let d = state
        .run(move |s| s.get(id, &scope))
        .await?
        .ok_or_else(|| AppError::not_found(format!("interaction {id} not found")))?;
    if d.summary.media_status == MediaStatus::Deleted.as_str() {
        return Err(AppError::new(StatusCode::GONE, "the media was deleted"));
    }
    let find = |r: BotRole| {
        d.legs
            .iter()
            .find(|l| l.bot_role == r && l.media_path.is_some())
    };
    let storage_of = |name: &str| {
        let name = if name.is_empty() { "local" } else { name };
        state.storages.get(name).cloned().ok_or_else(|| {
            eprintln!("recorder-daemon: interaction {id}: storage {name:?} is not configured");
            AppError::not_found("recording file not found")
        })
    };
    let primary_participants = d
        .legs
        .iter()
        .find(|l| l.bot_role == BotRole::Primary)
        .or(d.legs.first())
        .map(|l| l.metadata.participants.clone())
        .unwrap_or_default();
    if leg == LegChoice::Merged && d.merge.state == MergeState::Done {
        if let Some(path) = &d.merge.media_path {
            return Ok(Served {
                storage: storage_of(d.merge.storage.as_deref().unwrap_or(""))?,
                dir: path.clone(),
                leg: "merged",
                participants: primary_participants,
            });
        }
    }
    let chosen = match leg {
        LegChoice::Primary => find(BotRole::Primary),
        LegChoice::Paired => find(BotRole::Paired),
        LegChoice::Merged => find(BotRole::Primary).or(find(BotRole::Paired)),
    }
    .ok_or_else(|| AppError::not_found("no media stored for this leg yet"))?;
    Ok(Served {
        storage: storage_of(&chosen.metadata.storage)?,
        dir: chosen.media_path.clone().unwrap_or_default(),
        leg: match chosen.bot_role {
            BotRole::Primary => "primary",
            BotRole::Paired => "paired",
        },
        participants: chosen.metadata.participants.clone(),
    })
}

/// Maps a storage failure of a download: missing or refused keys are a 404 (logged), a storage
/// that is down a 503.
fn storage_error(id: i64, e: StorageError) -> AppError {
    eprintln!("recorder-daemon: interaction {id}: {e}");
    if e.is_storage_down() {
        AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the recording's storage is unavailable",
        )
    } else {
        AppError::not_found("recording file not found")
    }
}

fn leg_param(
    raw: Option<&str>,
    extra: &[&str],
) -> Result<(LegChoice, Vec<(String, String)>), AppError> {
    let mut keys = vec!["leg"];
    keys.extend_from_slice(extra);
    let mut leg = LegChoice::Merged;
    let mut rest = Vec::new();
    for (k, v) in pairs(raw, &keys)? {
        if k == "leg" {
            leg = LegChoice::parse(&v)
                .ok_or_else(|| AppError::bad_request("leg must be merged, primary or paired"))?;
        } else {
            rest.push((k, v));
        }
    }
    Ok((leg, rest))
}

/// One speech segment of `segments.json` (bot-host's spool format).
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpeechSegment {
    /// The participant (track name).
    pub participant: String,
    /// Start on the call's time line, ms.
    pub start_ms: f64,
    /// End (exclusive), ms.
    pub end_ms: f64,
}

/// Largest `segments.json` served; a longer one is not a file bot-host wrote.
const MAX_SEGMENTS_FILE: u64 = 16 << 20;

/// `GET /api/v1/interactions/{id}/segments?leg=...`: who spoke when, for the player's time
/// line (needs `play`).
pub async fn segments(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let (leg, _) = leg_param(raw.as_deref(), &[])?;
    caller.require(Permission::Play)?;
    let served = served_recording(&state, &caller, id, leg).await?;
    let key = served.key("segments.json");
    let bytes = read_small(id, &served.storage, &key, MAX_SEGMENTS_FILE).await?;
    let segs: Vec<SpeechSegment> =
        serde_json::from_slice(&bytes).map_err(|e| AppError::internal(format!("{key}: {e}")))?;
    state
        .audit(caller.audit(
            "view",
            "interaction",
            id.to_string(),
            format!("segments of the {} leg", served.leg),
        ))
        .await?;
    let mut r =
        Json(serde_json::json!({ "interactionId": id, "leg": served.leg, "segments": segs }))
            .into_response();
    r.headers_mut()
        .insert(LEG_HEADER, header::HeaderValue::from_static(served.leg));
    Ok(r)
}

/// The response header naming the recording served: `merged`, `primary` or `paired` (a
/// `?leg=merged` request answered with a leg's recording while no merge is stored says so).
pub const LEG_HEADER: &str = "x-recording-leg";

/// Largest `mixed.ogg` cut for `?participant=`: the cut happens in memory, and a call's mix is
/// far smaller (Opus at 32 kbit/s: about 14 MB an hour).
pub const MAX_CUT_SOURCE: u64 = 512 << 20;

/// Reads a small file of a recording whole (`segments.json`, `meta.json`).
async fn read_small(
    id: i64,
    storage: &Arc<dyn Storage>,
    key: &str,
    max: u64,
) -> Result<Vec<u8>, AppError> {
    let size = storage
        .head(key)
        .await
        .map_err(|e| storage_error(id, e))?
        .ok_or_else(|| {
            eprintln!("recorder-daemon: interaction {id}: {key} missing from its storage");
            AppError::not_found("recording file not found")
        })?
        .size;
    if size > max {
        return Err(AppError::internal(format!("{key}: too large")));
    }
    let mut stream = storage
        .get(key, None)
        .await
        .map_err(|e| storage_error(id, e))?;
    let mut bytes = Vec::with_capacity(size as usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| AppError::internal(format!("{key}: {e}")))?;
        if (bytes.len() + chunk.len()) as u64 > max {
            return Err(AppError::internal(format!("{key}: too large")));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A participant's window on the recording's time line, 48 kHz samples from its time 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    start_48k: u64,
    end_48k: u64,
}

/// The window of `p` on a recording whose time 0 is `origin` (`meta.json` `started_at`):
/// join to leave, a missing end open. `None`: the participant has neither time (the whole
/// recording). `Err`: the window lies before the recording.
fn participant_window(
    p: &crate::model::Participant,
    origin: chrono::DateTime<chrono::Utc>,
) -> Option<Result<Window, String>> {
    if p.join_time.is_none() && p.leave_time.is_none() {
        return None;
    }
    let rel = |t: chrono::DateTime<chrono::Utc>| {
        (t - origin)
            .num_microseconds()
            .unwrap_or(if t > origin { i64::MAX } else { i64::MIN })
    };
    let to_48k = |us: i64| (us.max(0) as u64).saturating_mul(48) / 1000;
    let start = p.join_time.map_or(0, |t| to_48k(rel(t)));
    let end = match p.leave_time {
        Some(t) if rel(t) <= 0 => {
            return Some(Err("the participant left before the recording began".into()))
        }
        Some(t) => to_48k(rel(t)),
        None => u64::MAX,
    };
    if end <= start {
        return Some(Err(
            "the participant's leave time is not after their join time".into(),
        ));
    }
    Some(Ok(Window {
        start_48k: start,
        end_48k: end,
    }))
}

/// The status and byte span of a request for `len` bytes; `None`: unsatisfiable (416).
fn byte_span(headers: &HeaderMap, len: u64) -> Option<(StatusCode, u64, u64)> {
    match parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        len,
    ) {
        RangeReq::Full => Some((StatusCode::OK, 0, len.saturating_sub(1))),
        RangeReq::Partial { start, end } => Some((StatusCode::PARTIAL_CONTENT, start, end)),
        RangeReq::Unsatisfiable => None,
    }
}

/// 416 with `Content-Range: bytes */len`.
fn unsatisfiable(len: u64) -> Response {
    let mut r =
        AppError::new(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable").into_response();
    if let Ok(v) = header::HeaderValue::from_str(&format!("bytes */{len}")) {
        r.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    r
}

/// `GET /api/v1/interactions/{id}/media?leg=merged|primary|paired&download=true|false
/// &participant=<participantId>`.
pub async fn media(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let (leg, rest) = leg_param(raw.as_deref(), &["download", "participant"])?;
    let mut download = false;
    let mut participant = None;
    for (k, v) in rest {
        if k == "participant" {
            if v.is_empty() || v.len() > 512 {
                return Err(AppError::bad_request(
                    "participant must be 1..512 characters",
                ));
            }
            participant = Some(v);
            continue;
        }
        download = match v.as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(AppError::bad_request("download must be true or false")),
        }
    }
    caller.require(if download {
        Permission::Download
    } else {
        Permission::Play
    })?;
    let served = served_recording(&state, &caller, id, leg).await?;
    let key = served.key(MIXED_FILE);
    let len = storage_len(id, &served.storage, &key).await?;

    let mut window = None;
    if let Some(pid) = &participant {
        let p = served
            .participants
            .iter()
            .find(|p| &p.participant_id == pid)
            .ok_or_else(|| {
                AppError::not_found(format!("participant {pid} is not in this recording"))
            })?;
        let meta = read_small(id, &served.storage, &served.key("meta.json"), 16 << 20).await?;
        let meta: serde_json::Value = serde_json::from_slice(&meta)
            .map_err(|e| AppError::internal(format!("meta.json of interaction {id}: {e}")))?;
        let origin = meta["started_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok_or_else(|| {
                AppError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "the recording has no time origin (meta.json started_at)",
                )
            })?;
        window = match participant_window(p, origin) {
            None => None,
            Some(Ok(w)) => Some(w),
            Some(Err(why)) => return Err(AppError::new(StatusCode::UNPROCESSABLE_ENTITY, why)),
        };
    }

    let what = match (&participant, window) {
        (Some(pid), Some(w)) => format!(
            "{} leg, participant {pid}: {:.3} s to {} of the recording",
            served.leg,
            w.start_48k as f64 / 48_000.0,
            if w.end_48k == u64::MAX {
                "the end".to_string()
            } else {
                format!("{:.3} s", w.end_48k as f64 / 48_000.0)
            }
        ),
        (Some(pid), None) => format!("{} leg, participant {pid}: whole recording", served.leg),
        (None, _) => format!("{} leg", served.leg),
    };
    let (body_len, cut) = match window {
        None => (len, None),
        Some(w) => {
            if len > MAX_CUT_SOURCE {
                return Err(AppError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "the recording is {len} bytes; a participant's cut is made of recordings \
                         up to {MAX_CUT_SOURCE} bytes"
                    ),
                ));
            }
            let bytes = read_small(id, &served.storage, &key, MAX_CUT_SOURCE).await?;
            let c = tokio::task::spawn_blocking(move || {
                media_core::window::cut(&bytes, w.start_48k, w.end_48k)
            })
            .await
            .map_err(|e| AppError::internal(e.to_string()))?
            .map_err(|e| AppError::internal(format!("cutting interaction {id}: {e}")))?;
            if c.samples_48k == 0 {
                return Err(AppError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "the participant joined after the recording ended",
                ));
            }
            (c.ogg.len() as u64, Some(bytes::Bytes::from(c.ogg)))
        }
    };
    let Some((status, start, end)) = byte_span(&headers, body_len) else {
        return Ok(unsatisfiable(body_len));
    };
    // A seeking player sends many range requests; the first one is the play/download.
    if start == 0 {
        state
            .audit(caller.audit(
                if download { "download" } else { "play" },
                "interaction",
                id.to_string(),
                what,
            ))
            .await?;
    }
    let count = if body_len == 0 { 0 } else { end - start + 1 };
    let body = match cut {
        _ if count == 0 => Body::empty(),
        Some(b) => Body::from(b.slice(start as usize..end as usize + 1)),
        // Streamed from the storage, never read whole.
        None => Body::from_stream(
            served
                .storage
                .get(&key, Some(start..end + 1))
                .await
                .map_err(|e| storage_error(id, e))?,
        ),
    };
    let suffix = match &participant {
        Some(pid) => format!(
            "-participant-{}",
            pid.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .take(64)
                .collect::<String>()
        ),
        None => String::new(),
    };
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "audio/ogg")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, count)
        .header(LEG_HEADER, served.leg)
        .header(
            header::CONTENT_DISPOSITION,
            format!(
                "{}; filename=\"interaction-{id}-{}{suffix}.ogg\"",
                if download { "attachment" } else { "inline" },
                served.leg
            ),
        );
    if status == StatusCode::PARTIAL_CONTENT {
        b = b.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{end}/{body_len}"),
        );
    }
    b.body(body).map_err(|e| AppError::internal(e.to_string()))
}

/// Size of `key`, 404 when the storage lacks it.
async fn storage_len(id: i64, storage: &Arc<dyn Storage>, key: &str) -> Result<u64, AppError> {
    Ok(storage
        .head(key)
        .await
        .map_err(|e| storage_error(id, e))?
        .ok_or_else(|| {
            eprintln!("recorder-daemon: interaction {id}: {key} missing from its storage");
            AppError::not_found("recording file not found")
        })?
        .size)
}
