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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use http_body_util::BodyExt;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    use crate::api::{app, AppState};
    use crate::auth::{now_secs, Claims, TokenKeys};
    use crate::retention::{Retention, RetentionConfig};
    use crate::storage::memory::MemoryStorage;
    use crate::storage::Storages;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{Actor, DeletionScope, DirectoryImport, Store};

    async fn call(app: &axum::Router, m: Method, uri: &str, token: &str) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(m)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let r = app.clone().oneshot(req).await.unwrap();
        let status = r.status();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn users_delete_export_and_retention_run_for_administrators_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("store.db")).unwrap());
        let d: DirectoryImport = serde_json::from_value(json!({"users": [
            {"id": "oid-alice", "userPrincipalName": "alice@contoso.example"}
        ]}))
        .unwrap();
        store.import_directory(&d).unwrap();
        let leg = serde_json::from_value(json!({
            "callId": "c1", "recordingId": "rec-1", "botRole": "primary", "pairingKey": "k",
            "targets": [{"kind": "user", "id": "oid-alice"}], "startTime": "2026-05-01T10:00:00Z",
            "direction": "None", "callType": "Internal Meeting", "retentionDays": 3650,
            "storage": "local", "mediaStatus": "Available"
        }))
        .unwrap();
        let id = store.upsert_leg(&leg).unwrap().interaction_id;
        let mem = Arc::new(MemoryStorage::new("local"));
        mem.insert("2026/05/01/rec-1/mixed.ogg", &b"ogg"[..]);
        let mut storages = Storages::default();
        storages.insert(mem.clone());
        let anchor = dir.path().join("audit-head.json");
        let dyn_store: Arc<dyn Store> = store.clone();
        let retention = Retention::new(
            dyn_store.clone(),
            storages,
            Some(anchor.clone()),
            &RetentionConfig::default(),
        );
        let keys = TokenKeys::hs256(&[2; 32], "t");
        let state = AppState::new(
            dyn_store,
            keys.clone(),
            None,
            ["admin@contoso.example".to_string()],
            dir.path().join("storage"),
            Some(anchor.clone()),
            "http://test".into(),
            64 * 1024,
        )
        .with_retention(Arc::new(retention));
        let app = app(state);
        let token = |upn: &str| {
            keys.mint(&Claims {
                oid: format!("oid-{upn}"),
                upn: upn.into(),
                tid: "t".into(),
                groups: vec![],
                roles: vec![],
                exp: now_secs() + 600,
                iat: now_secs(),
            })
            .unwrap()
        };
        let (admin, nobody) = (token("admin@contoso.example"), token("eve@contoso.example"));
        for (m, uri) in [
            (Method::DELETE, "/api/v1/users/oid-alice"),
            (Method::GET, "/api/v1/users/oid-alice/export"),
            (Method::POST, "/api/v1/retention/run"),
        ] {
            assert_eq!(
                call(&app, m, uri, &nobody).await.0,
                StatusCode::FORBIDDEN,
                "{uri}"
            );
        }

        let (s, export) = call(&app, Method::GET, "/api/v1/users/oid-alice/export", &admin).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(export["user"]["upn"], "alice@contoso.example");
        assert_eq!(export["interactions"][0]["id"], id);
        assert_eq!(export["interactions"][0]["recordings"][0], "rec-1");
        assert_eq!(
            call(&app, Method::GET, "/api/v1/users/nobody/export", &admin)
                .await
                .0,
            StatusCode::NOT_FOUND
        );

        store
            .set_legal_hold(
                "oid-alice",
                true,
                "admin@contoso.example",
                chrono::Utc::now(),
            )
            .unwrap();
        let (s, e) = call(&app, Method::DELETE, "/api/v1/users/oid-alice", &admin).await;
        assert_eq!(s, StatusCode::CONFLICT, "{e}");
        store
            .set_legal_hold(
                "oid-alice",
                false,
                "admin@contoso.example",
                chrono::Utc::now(),
            )
            .unwrap();
        store
            .request_deletion(
                id,
                DeletionScope::MediaOnly,
                "DPO",
                "erasure",
                &Actor {
                    oid: "oid-admin".into(),
                    upn: "admin@contoso.example".into(),
                },
                &crate::rbac::Scope::All,
            )
            .unwrap();
        let (s, _) = call(&app, Method::DELETE, "/api/v1/users/oid-alice", &admin).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        assert!(store.users().unwrap().is_empty());
        // The call stays (until its retention ends or a deletion runs).
        assert!(store.get(id, &crate::rbac::Scope::All).unwrap().is_some());

        let (s, report) = call(&app, Method::POST, "/api/v1/retention/run", &admin).await;
        assert_eq!(s, StatusCode::OK, "{report}");
        assert_eq!(report["requestsExecuted"], 1);
        assert_eq!(report["objectsDeleted"], 1);
        assert!(mem.keys().is_empty());

        let entries = store.audit_all().unwrap();
        let has = |action: &str, item_type: &str| {
            entries
                .iter()
                .any(|e| e.action == action && e.item_type == item_type)
        };
        assert!(has("delete", "user") && has("export", "user") && has("delete", "interaction"));
        assert!(has("modify", "retention"));
        let a: crate::audit::Anchor =
            serde_json::from_slice(&std::fs::read(&anchor).unwrap()).unwrap();
        assert_eq!(a.id, entries.len() as i64, "the anchor is at the head");
        crate::audit::verify_chain(&entries, Some(&a)).unwrap();
    }
}
