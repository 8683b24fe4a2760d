//! System administration views: active alarms, the system activity log and the storages'
//! status (docs/storage.md). All need `configureSystem`.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::params::pairs;
use super::{AppError, AppState, Caller};
use crate::rbac::Permission;

/// `GET /api/v1/alarms`: the active alarms, oldest first.
pub async fn alarms(State(state): State<AppState>, caller: Caller) -> Result<Response, AppError> {
    caller.require(Permission::ConfigureSystem)?;
    let items = state.run(|s| s.alarms_active()).await?;
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

/// `GET /api/v1/activity?page=&pageSize=`: the system activity log, newest first.
pub async fn activity(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    caller.require(Permission::ConfigureSystem)?;
    let (mut page, mut size) = (1u32, 100u32);
    for (k, v) in pairs(raw.as_deref(), &["page", "pageSize"])? {
        let max = if k == "page" { 1_000_000 } else { 1000 };
        let n: u32 = v
            .parse()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| AppError::bad_request(format!("{k} must be 1..{max}")))?;
        if k == "page" {
            page = n;
        } else {
            size = n;
        }
    }
    Ok(Json(state.run(move |s| s.activity(page, size)).await?).into_response())
}

/// `GET /api/v1/storages`: connection status, consumed bytes and waiting recordings.
pub async fn storages(State(state): State<AppState>, caller: Caller) -> Result<Response, AppError> {
    caller.require(Permission::ConfigureSystem)?;
    let items = state.health.status(&state.storages).await;
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}
