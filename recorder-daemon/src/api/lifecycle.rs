//! Data lifecycle endpoints: users' deletion and export (issue 7) and an on-demand retention
//! cycle (issue 6). All of them are for administrators (`configureSystem`) and audited.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{AppError, AppState, Caller};
use crate::rbac::Permission;

fn check_oid(oid: &str) -> Result<(), AppError> {
    if oid.is_empty() || oid.len() > 256 || oid.chars().any(char::is_control) {
        return Err(AppError::bad_request("invalid user id"));
    }
    Ok(())
}

/// `DELETE /api/v1/users/{oid}`: removes the user from the directory; their calls stay until
/// their retention ends. Refused (409) while the user is on legal hold.
pub async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(oid): Path<String>,
) -> Result<Response, AppError> {
    caller.require(Permission::ConfigureSystem)?;
    check_oid(&oid)?;
    let o = oid.clone();
    state.run(move |s| s.delete_user(&o)).await?;
    state
        .audit(caller.audit(
            "delete",
            "user",
            oid,
            "removed from the directory; calls kept until their retention ends",
        ))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/users/{oid}/export`: the user and references to their data, as JSON.
pub async fn export_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(oid): Path<String>,
) -> Result<Response, AppError> {
    caller.require(Permission::ConfigureSystem)?;
    check_oid(&oid)?;
    let o = oid.clone();
    let export = state.run(move |s| s.export_user(&o)).await?;
    state
        .audit(caller.audit(
            "export",
            "user",
            oid,
            format!(
                "user data export: {} calls, {} notes",
                export.interactions.len(),
                export.notes.len()
            ),
        ))
        .await?;
    Ok(Json(export).into_response())
}

/// `POST /api/v1/retention/run`: runs a retention cycle now and returns its report.
pub async fn run_retention(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, AppError> {
    caller.require(Permission::ConfigureSystem)?;
    let Some(r) = state.retention.clone() else {
        return Err(AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the retention cycle is not running in this process",
        ));
    };
    state
        .audit(caller.audit(
            "modify",
            "retention",
            "",
            "retention cycle started on demand",
        ))
        .await?;
    let report = r
        .run_cycle(chrono::Utc::now())
        .await
        .map_err(|e| AppError::internal(format!("retention cycle: {e}")))?;
    Ok(Json(report).into_response())
}
