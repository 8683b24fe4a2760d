//! Administration: tags, directory and users, access profiles, saved searches, the audit trail
//! and the caller's own view of their rights.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::params::{audit_query, search_query};
use super::{parse_id, ApiJson, AppError, AppState, Caller};
use crate::rbac::{AccessProfile, Permission};
use crate::store::DirectoryImport;

/// `GET /api/v1/me`: who the token says the caller is and what they may do.
pub async fn me(caller: Caller) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "oid": caller.claims.oid,
        "upn": caller.claims.upn,
        "groups": caller.groups,
        "effective": caller.effective,
    }))
}

/// A tag to create or change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagBody {
    /// Unique name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
}

impl TagBody {
    fn check(&self) -> Result<(), AppError> {
        if self.name.trim().is_empty() || self.name.chars().count() > 100 {
            return Err(AppError::bad_request("name must have 1..100 characters"));
        }
        if self.description.chars().count() > 1000 {
            return Err(AppError::bad_request(
                "description is limited to 1000 characters",
            ));
        }
        Ok(())
    }
}

/// `GET /api/v1/tags`: any signed-in user (to pick tags).
pub async fn list_tags(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Response, AppError> {
    Ok(Json(state.run(|s| s.tags()).await?).into_response())
}

/// `POST /api/v1/tags`.
pub async fn create_tag(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<TagBody>, AppError>,
) -> Result<Response, AppError> {
    caller.require(Permission::ManageTags)?;
    let ApiJson(b) = body?;
    b.check()?;
    let t = state
        .run(move |s| s.create_tag(b.name.trim(), &b.description))
        .await?;
    state
        .audit(caller.audit("add", "tag", t.id.to_string(), t.name.clone()))
        .await?;
    Ok((StatusCode::CREATED, Json(t)).into_response())
}

/// `PUT /api/v1/tags/{id}`.
pub async fn update_tag(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<ApiJson<TagBody>, AppError>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    caller.require(Permission::ManageTags)?;
    let ApiJson(b) = body?;
    b.check()?;
    let t = state
        .run(move |s| s.update_tag(id, b.name.trim(), &b.description))
        .await?;
    state
        .audit(caller.audit("modify", "tag", id.to_string(), t.name.clone()))
        .await?;
    Ok(Json(t).into_response())
}

/// `DELETE /api/v1/tags/{id}`.
pub async fn delete_tag(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    caller.require(Permission::ManageTags)?;
    state.run(move |s| s.delete_tag(id)).await?;
    state
        .audit(caller.audit("delete", "tag", id.to_string(), ""))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/directory/import`.
pub async fn import_directory(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<DirectoryImport>, AppError>,
) -> Result<Response, AppError> {
    caller.require(Permission::ConfigureSystem)?;
    let ApiJson(d) = body?;
    let bad = |s: &str| s.is_empty() || s.len() > 256;
    if d.users
        .iter()
        .any(|u| bad(&u.id) || bad(&u.user_principal_name))
        || d.groups
            .iter()
            .any(|g| bad(&g.id) || g.members.iter().any(|m| bad(&m.id)))
    {
        return Err(AppError::bad_request(
            "ids and UPNs must have 1..256 characters",
        ));
    }
    let (users, groups) = state.run(move |s| s.import_directory(&d)).await?;
    state
        .audit(caller.audit(
            "modify",
            "directory",
            "",
            format!("imported {users} users, {groups} groups"),
        ))
        .await?;
    Ok(Json(serde_json::json!({ "users": users, "groups": groups })).into_response())
}

/// `GET /api/v1/users`.
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, AppError> {
    caller.require(Permission::ConfigureSystem)?;
    let users = state.run(|s| s.users()).await?;
    state
        .audit(caller.audit("view", "user", "", format!("{} users", users.len())))
        .await?;
    Ok(Json(users).into_response())
}

/// Body of `PUT /api/v1/users/{oid}/legal-hold`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LegalHold {
    /// On or off.
    pub legal_hold: bool,
}

/// `PUT /api/v1/users/{oid}/legal-hold`.
pub async fn legal_hold(
    State(state): State<AppState>,
    caller: Caller,
    Path(oid): Path<String>,
    body: Result<ApiJson<LegalHold>, AppError>,
) -> Result<Response, AppError> {
    caller.require(Permission::ConfigureSystem)?;
    let ApiJson(b) = body?;
    let o = oid.clone();
    let by = caller.claims.upn.clone();
    state
        .run(move |s| s.set_legal_hold(&o, b.legal_hold, &by, chrono::Utc::now()))
        .await?;
    state
        .audit(caller.audit(
            "legal hold",
            "user",
            oid,
            if b.legal_hold { "on" } else { "off" },
        ))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn check_profile(p: &AccessProfile) -> Result<(), AppError> {
    if p.name.trim().is_empty() || p.name.chars().count() > 100 {
        return Err(AppError::bad_request("name must have 1..100 characters"));
    }
    if p.groups.len() > 1000 || p.call_access_groups.len() > 1000 {
        return Err(AppError::bad_request("at most 1000 groups"));
    }
    Ok(())
}

/// `GET /api/v1/access-profiles`.
pub async fn list_profiles(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, AppError> {
    caller.require(Permission::ManageAccessProfiles)?;
    Ok(Json(state.run(|s| s.access_profiles()).await?).into_response())
}

/// `POST /api/v1/access-profiles`.
pub async fn create_profile(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<AccessProfile>, AppError>,
) -> Result<Response, AppError> {
    caller.require(Permission::ManageAccessProfiles)?;
    let ApiJson(mut p) = body?;
    check_profile(&p)?;
    // Only a global administrator may create another.
    if p.global_admin && !caller.effective.global_admin {
        return Err(AppError::forbidden(
            "only a global administrator grants globalAdmin",
        ));
    }
    p.id = 0;
    let p = state.run(move |s| s.put_access_profile(&p)).await?;
    state
        .audit(caller.audit("add", "access profile", p.id.to_string(), p.name.clone()))
        .await?;
    Ok((StatusCode::CREATED, Json(p)).into_response())
}

/// `PUT /api/v1/access-profiles/{id}`.
pub async fn update_profile(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<ApiJson<AccessProfile>, AppError>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    caller.require(Permission::ManageAccessProfiles)?;
    let ApiJson(mut p) = body?;
    check_profile(&p)?;
    let existing = state.run(|s| s.access_profiles()).await?;
    let was_admin = existing.iter().any(|e| e.id == id && e.global_admin);
    if (p.global_admin || was_admin) && !caller.effective.global_admin {
        return Err(AppError::forbidden(
            "only a global administrator changes globalAdmin profiles",
        ));
    }
    p.id = id;
    let p = state.run(move |s| s.put_access_profile(&p)).await?;
    state
        .audit(caller.audit("modify", "access profile", id.to_string(), p.name.clone()))
        .await?;
    Ok(Json(p).into_response())
}

/// `DELETE /api/v1/access-profiles/{id}`.
pub async fn delete_profile(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    caller.require(Permission::ManageAccessProfiles)?;
    let existing = state.run(|s| s.access_profiles()).await?;
    if existing.iter().any(|e| e.id == id && e.global_admin) && !caller.effective.global_admin {
        return Err(AppError::forbidden(
            "only a global administrator deletes globalAdmin profiles",
        ));
    }
    state.run(move |s| s.delete_access_profile(id)).await?;
    state
        .audit(caller.audit("delete", "access profile", id.to_string(), ""))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Body of `POST /api/v1/saved-searches`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedBody {
    /// Name.
    pub name: String,
    /// The query string of `GET /api/v1/interactions` (checked now, so it runs later).
    pub query: String,
}

/// `GET /api/v1/saved-searches`: the caller's own.
pub async fn list_saved(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, AppError> {
    let oid = caller.claims.oid.clone();
    Ok(Json(state.run(move |s| s.saved_searches(&oid)).await?).into_response())
}

/// `POST /api/v1/saved-searches`.
pub async fn create_saved(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<SavedBody>, AppError>,
) -> Result<Response, AppError> {
    caller.require_calls()?;
    let ApiJson(b) = body?;
    if b.name.trim().is_empty() || b.name.chars().count() > 100 || b.query.len() > 4096 {
        return Err(AppError::bad_request(
            "name must have 1..100 characters, query at most 4096",
        ));
    }
    search_query(Some(&b.query))?;
    let oid = caller.claims.oid.clone();
    let saved = state
        .run(move |s| s.save_search(&oid, b.name.trim(), &b.query))
        .await?;
    state
        .audit(caller.audit(
            "add",
            "saved search",
            saved.id.to_string(),
            saved.name.clone(),
        ))
        .await?;
    Ok((StatusCode::CREATED, Json(saved)).into_response())
}

/// `DELETE /api/v1/saved-searches/{id}`.
pub async fn delete_saved(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let oid = caller.claims.oid.clone();
    state.run(move |s| s.delete_saved_search(&oid, id)).await?;
    state
        .audit(caller.audit("delete", "saved search", id.to_string(), ""))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/audit`.
pub async fn audit_search(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    caller.require(Permission::AuditTrail)?;
    let q = audit_query(raw.as_deref())?;
    let page = state.run(move |s| s.audit_search(&q)).await?;
    state
        .audit(caller.audit("view", "audit", "", raw.unwrap_or_default()))
        .await?;
    Ok(Json(page).into_response())
}
