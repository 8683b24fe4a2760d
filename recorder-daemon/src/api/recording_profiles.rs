//! Recording profiles: kept by the store, edited by administrators one profile at a time,
//! served to bot-hosts as the profile file they load (docs/store.md, "Recording profiles").
//!
//! A change is checked against the whole set with bot-host's own profile parser before it is
//! stored, so the store never holds a set a bot would refuse: a user assigned to two profiles
//! is answered 409 with the list of users and profiles, as the product reports it.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bot_host::signaling::{ProfileError, Profiles};
use serde_json::{json, Value};

use super::{ApiJson, AppError, AppState, Caller};
use crate::rbac::Permission;
use crate::store::RecordingProfileRow;

/// Serialises edits: each one reads, checks and replaces the whole set.
static EDIT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Viewing needs either profile management or system configuration (the settings pages).
fn may_view(caller: &Caller) -> Result<(), AppError> {
    caller
        .require(Permission::ManageRecordingProfiles)
        .or_else(|_| caller.require(Permission::ConfigureSystem))
}

/// Checks `set` the way a bot-host will load it.
fn check_set(set: &[RecordingProfileRow]) -> Result<(), AppError> {
    if set.is_empty() {
        return Ok(()); // no profiles stored: bot-hosts keep their own file or the default
    }
    let file = json!({ "profile": set.iter().map(|r| &r.profile).collect::<Vec<_>>() });
    match Profiles::from_json_str(&file.to_string()) {
        Ok(_) => Ok(()),
        Err(e @ ProfileError::Conflict(_)) => {
            Err(AppError::new(StatusCode::CONFLICT, e.to_string()))
        }
        Err(e) => Err(AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.to_string(),
        )),
    }
}

/// `GET /api/v1/recording-profiles`.
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response, AppError> {
    may_view(&caller)?;
    Ok(Json(state.run(|s| s.recording_profiles()).await?).into_response())
}

/// `PUT /api/v1/recording-profiles/{name}`: creates or replaces one profile.
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Result<ApiJson<Value>, AppError>,
) -> Result<Response, AppError> {
    caller.require(Permission::ManageRecordingProfiles)?;
    let ApiJson(mut profile) = body?;
    if name.trim().is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::bad_request(
            "name must have 1..100 printable characters",
        ));
    }
    let Some(obj) = profile.as_object_mut() else {
        return Err(AppError::bad_request(
            "a recording profile is a JSON object",
        ));
    };
    match obj.get("name") {
        None => {
            obj.insert("name".into(), Value::String(name.clone()));
        }
        Some(Value::String(n)) if *n == name => {}
        Some(_) => {
            return Err(AppError::bad_request(
                "the body's name differs from the path's",
            ))
        }
    }
    let _edit = EDIT.lock().await;
    let mut set = state.run(|s| s.recording_profiles()).await?;
    let created = !set.iter().any(|r| r.name.eq_ignore_ascii_case(&name));
    set.retain(|r| !r.name.eq_ignore_ascii_case(&name));
    let row = RecordingProfileRow {
        name: name.clone(),
        profile,
        updated_at: crate::model::fmt_time(&chrono::Utc::now()),
        updated_by: caller.claims.upn.clone(),
    };
    set.push(row.clone());
    set.sort_by_key(|r| r.name.to_lowercase());
    check_set(&set)?;
    state
        .run(move |s| s.replace_recording_profiles(&set))
        .await?;
    state
        .audit(caller.audit(
            if created { "add" } else { "modify" },
            "recording profile",
            name,
            row.profile.to_string(),
        ))
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(row)).into_response())
}

/// `DELETE /api/v1/recording-profiles/{name}`.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    caller.require(Permission::ManageRecordingProfiles)?;
    let _edit = EDIT.lock().await;
    let mut set = state.run(|s| s.recording_profiles()).await?;
    let before = set.len();
    set.retain(|r| !r.name.eq_ignore_ascii_case(&name));
    if set.len() == before {
        return Err(AppError::not_found(format!(
            "no recording profile {name:?}"
        )));
    }
    state
        .run(move |s| s.replace_recording_profiles(&set))
        .await?;
    state
        .audit(caller.audit("delete", "recording profile", name, ""))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/recording-profiles/file`: the set as a bot-host profile file
/// (`{"profile": [...]}`), for bot-hosts: the ingest key, a service token with the ingest
/// role, or a global administrator (others read the list).
/// 404 while no profile is stored, so a bot keeps its own file or the embedded default.
pub async fn file(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    let who = super::interactions::ingest_allowed(&state, &headers, raw.as_deref()).await?;
    let set = state.run(|s| s.recording_profiles()).await?;
    if set.is_empty() {
        return Err(AppError::not_found("no recording profile is stored"));
    }
    state
        .audit(crate::audit::NewAudit {
            user_oid: who.clone(),
            user_upn: who,
            action: "view",
            item_type: "recording profile",
            item: String::new(),
            description: format!("profile file, {} profiles", set.len()),
        })
        .await?;
    Ok(
        Json(json!({ "profile": set.into_iter().map(|r| r.profile).collect::<Vec<_>>() }))
            .into_response(),
    )
}
