//! The HTTP API under `/api/v1`: one router built in [`app`], shared state, one error type
//! that every failure maps to (`{"error": "..."}` with a status), and the extractors that
//! authenticate callers.

mod admin;
mod export;
mod interactions;
mod lifecycle;
mod params;
mod recording_profiles;
mod strict;
mod system;
#[cfg(test)]
mod tests;
mod ui;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::{Json, Router};
use serde::de::DeserializeOwned;

use crate::audit::{advance_anchor, NewAudit};
use crate::auth::{AuthError, Claims, TokenKeys};
use crate::rbac::{CallAccess, Effective, Permission, Scope};
use crate::storage::local::LocalStorage;
use crate::storage::Storages;
use crate::store::{Actor, Store, StoreError, StoreResult};
use crate::upload::HealthBoard;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Token keys and tenant.
    pub keys: TokenKeys,
    /// The ingest key bot-host may present.
    pub ingest_key: Option<String>,
    /// Bootstrap global administrators (UPN or object id, lower case).
    pub global_admins: BTreeSet<String>,
    /// The storages downloads read from, by friendly name (a leg's `storage`).
    pub storages: Storages,
    /// Connection status of the storages (kept by the uploader).
    pub health: Arc<HealthBoard>,
    /// Where the audit anchor is written (`None`: not written, for tests of the store alone).
    pub audit_anchor: Option<PathBuf>,
    /// Base URL of `Call Link`.
    pub public_url: String,
    /// Largest request body.
    pub body_limit: usize,
    /// The retention cycle `POST /api/v1/retention/run` starts (`None`: not available).
    pub retention: Option<Arc<crate::retention::Retention>>,
    /// Hashes of tokens already audited as a login (bounded).
    seen_tokens: Arc<Mutex<BTreeSet<[u8; 32]>>>,
}

impl AppState {
    /// State over `store`, with one local storage `local` at `storage_root` (replace the
    /// storages with [`AppState::with_storages`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        keys: TokenKeys,
        ingest_key: Option<String>,
        global_admins: impl IntoIterator<Item = String>,
        storage_root: PathBuf,
        audit_anchor: Option<PathBuf>,
        public_url: String,
        body_limit: usize,
    ) -> Self {
        Self {
            store,
            keys,
            ingest_key,
            global_admins: global_admins
                .into_iter()
                .map(|s| s.to_lowercase())
                .collect(),
            storages: default_storages(&storage_root),
            health: Arc::new(HealthBoard::default()),
            audit_anchor,
            public_url,
            body_limit,
            retention: None,
            seen_tokens: Arc::new(Mutex::new(BTreeSet::new())),
        }
    }

    /// Uses `storages` (and the uploader's status board) instead of the default.
    pub fn with_storages(mut self, storages: Storages, health: Arc<HealthBoard>) -> Self {
        self.storages = storages;
        self.health = health;
        self
    }

    /// With the retention cycle the API may start.
    pub fn with_retention(mut self, r: Arc<crate::retention::Retention>) -> Self {
        self.retention = Some(r);
        self
    }

    /// Runs a store call on the blocking pool.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> StoreResult<T> + Send + 'static,
    ) -> Result<T, AppError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| AppError::internal(format!("store task: {e}")))?
            .map_err(AppError::from)
    }

    /// Appends to the audit trail and moves the anchor. A failure fails the request: an
    /// action that cannot be audited is not done silently.
    pub async fn audit(&self, e: NewAudit) -> Result<(), AppError> {
        let anchor = self.audit_anchor.clone();
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || -> Result<(), AppError> {
            let entry = store.audit_append(&e)?;
            if let Some(path) = anchor {
                advance_anchor(&path, &entry)
                    .map_err(|e| AppError::internal(format!("audit anchor: {e}")))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| AppError::internal(format!("audit task: {e}")))?
    }
}

/// One local storage named `local` at `root`; none (every download a 404, logged) when the
/// directory cannot be opened.
fn default_storages(root: &std::path::Path) -> Storages {
    let mut s = Storages::default();
    match LocalStorage::open("local", root, None) {
        Ok(l) => s.insert(Arc::new(l)),
        Err(e) => eprintln!("recorder-daemon: storage root {}: {e}", root.display()),
    }
    s
}

/// Every failure of the API: a status and a message, sent as `{"error": message}`.
#[derive(Debug)]
pub struct AppError {
    /// Status.
    pub status: StatusCode,
    /// Message.
    pub message: String,
}

impl AppError {
    /// With any status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    /// 400.
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, m)
    }
    /// 403.
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, m)
    }
    /// 404.
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, m)
    }
    /// 500; the details go to the log, not to the client.
    pub fn internal(m: impl Into<String>) -> Self {
        eprintln!("recorder-daemon: internal error: {}", m.into());
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => AppError::not_found(e.to_string()),
            StoreError::Conflict(m) => AppError::new(StatusCode::CONFLICT, m),
            StoreError::Invalid(m) => AppError::bad_request(m),
            StoreError::Db(m) => AppError::internal(m),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

/// A JSON body whose rejections (malformed, unknown field, an array where an object belongs,
/// too large, wrong content type) are [`AppError`]s.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(v) = Json::<serde_json::Value>::from_request(req, state)
            .await
            .map_err(|e| AppError::new(e.status(), e.body_text()))?;
        strict::from_value(v).map(ApiJson).map_err(|e| {
            AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("Failed to deserialize the JSON body: {e}"),
            )
        })
    }
}

/// An authenticated user with what they may do.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Token claims.
    pub claims: Claims,
    /// Token groups and directory groups.
    pub groups: BTreeSet<String>,
    /// Resolved permissions.
    pub effective: Effective,
}

impl Caller {
    /// For notes and saved searches.
    pub fn actor(&self) -> Actor {
        Actor {
            oid: self.claims.oid.clone(),
            upn: self.claims.upn.clone(),
        }
    }

    /// 403 unless the caller has `p`.
    pub fn require(&self, p: Permission) -> Result<(), AppError> {
        if self.effective.can(p) {
            Ok(())
        } else {
            Err(AppError::forbidden(format!(
                "permission {} required",
                serde_json::to_value(p)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            )))
        }
    }

    /// 403 for a caller without any call access.
    pub fn require_calls(&self) -> Result<(), AppError> {
        if self.effective.access() == CallAccess::None {
            Err(AppError::forbidden("no call access"))
        } else {
            Ok(())
        }
    }

    /// The interactions the caller may see.
    pub async fn scope(&self, state: &AppState) -> Result<Scope, AppError> {
        let own = || {
            let mut upns = BTreeSet::new();
            if !self.claims.upn.is_empty() {
                upns.insert(self.claims.upn.to_lowercase());
            }
            (BTreeSet::from([self.claims.oid.clone()]), upns)
        };
        Ok(match self.effective.access() {
            CallAccess::None => Scope::Nothing,
            CallAccess::All => Scope::All,
            CallAccess::Own => {
                let (oids, upns) = own();
                Scope::Users { oids, upns }
            }
            CallAccess::OwnAndGroups => {
                let (mut oids, mut upns) = own();
                let groups: Vec<String> =
                    self.effective.call_access_groups.iter().cloned().collect();
                let (o, u) = state.run(move |s| s.group_members(&groups)).await?;
                oids.extend(o);
                upns.extend(u);
                Scope::Users { oids, upns }
            }
        })
    }

    /// An audit entry by this caller.
    pub fn audit(
        &self,
        action: &'static str,
        item_type: &'static str,
        item: impl Into<String>,
        description: impl Into<String>,
    ) -> NewAudit {
        NewAudit {
            user_oid: self.claims.oid.clone(),
            user_upn: self.claims.upn.clone(),
            action,
            item_type,
            item: item.into(),
            description: description.into(),
        }
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let claims = match bearer(parts)
            .ok_or(AuthError::Missing)
            .and_then(|t| state.keys.verify(t))
        {
            Ok(c) => c,
            Err(e) => {
                state
                    .audit(NewAudit {
                        user_oid: "anonymous".into(),
                        user_upn: String::new(),
                        action: "login",
                        item_type: "token",
                        item: String::new(),
                        description: format!(
                            "refused: {e} ({} {})",
                            parts.method,
                            parts.uri.path()
                        ),
                    })
                    .await?;
                return Err(AppError::new(StatusCode::UNAUTHORIZED, e.to_string()));
            }
        };
        let oid = claims.oid.clone();
        let (dir_groups, profiles) = state
            .run(move |s| Ok((s.user_groups(&oid)?, s.access_profiles()?)))
            .await?;
        let groups: BTreeSet<String> = claims.groups.iter().cloned().chain(dir_groups).collect();
        let admin = state.global_admins.contains(&claims.upn.to_lowercase())
            || state.global_admins.contains(&claims.oid.to_lowercase());
        let effective = Effective::resolve(&profiles, &groups, admin);
        let caller = Caller {
            claims,
            groups,
            effective,
        };
        // The first use of a token is the login; later requests with it are not.
        let digest: [u8; 32] = {
            use sha2::{Digest, Sha256};
            Sha256::digest(bearer(parts).unwrap_or_default().as_bytes()).into()
        };
        let first = {
            let mut seen = state
                .seen_tokens
                .lock()
                .map_err(|_| AppError::internal("token cache lock"))?;
            if seen.len() > 100_000 {
                seen.clear();
            }
            seen.insert(digest)
        };
        if first {
            state
                .audit(caller.audit("login", "user", caller.claims.upn.clone(), "token accepted"))
                .await?;
        }
        Ok(caller)
    }
}

/// The routes of the API: path, method, handler. The OpenAPI test checks this list against
/// the document.
pub fn routes() -> Vec<(&'static str, Method, MethodRouter<AppState>)> {
    use admin::*;
    use interactions::*;
    use lifecycle::*;
    vec![
        ("/api/v1/openapi.json", Method::GET, get(openapi)),
        ("/api/v1/me", Method::GET, get(me)),
        ("/api/v1/interactions", Method::POST, post(ingest)),
        ("/api/v1/interactions", Method::GET, get(search)),
        ("/api/v1/interactions/active", Method::GET, get(active)),
        (
            "/api/v1/interactions/export",
            Method::GET,
            get(export::export_search),
        ),
        (
            "/api/v1/interactions/export",
            Method::POST,
            post(export::export_selection),
        ),
        ("/api/v1/interactions/tags", Method::PUT, put(set_tags)),
        ("/api/v1/interactions/{id}", Method::GET, get(get_one)),
        (
            "/api/v1/interactions/{id}/media",
            Method::GET,
            get(media).layer(axum::middleware::map_request(ui::media_token)),
        ),
        (
            "/api/v1/interactions/{id}/segments",
            Method::GET,
            get(segments),
        ),
        (
            "/api/v1/interactions/{id}/deletion",
            Method::POST,
            post(request_deletion),
        ),
        (
            "/api/v1/interactions/{id}/notes",
            Method::POST,
            post(add_note),
        ),
        (
            "/api/v1/interactions/{id}/notes/{noteId}",
            Method::DELETE,
            delete(delete_note),
        ),
        ("/api/v1/tags", Method::GET, get(list_tags)),
        ("/api/v1/tags", Method::POST, post(create_tag)),
        ("/api/v1/tags/{id}", Method::PUT, put(update_tag)),
        ("/api/v1/tags/{id}", Method::DELETE, delete(delete_tag)),
        (
            "/api/v1/directory/import",
            Method::POST,
            post(import_directory),
        ),
        ("/api/v1/users", Method::GET, get(list_users)),
        (
            "/api/v1/users/{oid}/legal-hold",
            Method::PUT,
            put(legal_hold),
        ),
        ("/api/v1/users/{oid}", Method::DELETE, delete(delete_user)),
        ("/api/v1/users/{oid}/export", Method::GET, get(export_user)),
        ("/api/v1/retention/run", Method::POST, post(run_retention)),
        ("/api/v1/access-profiles", Method::GET, get(list_profiles)),
        (
            "/api/v1/access-profiles",
            Method::POST,
            post(create_profile),
        ),
        (
            "/api/v1/access-profiles/{id}",
            Method::PUT,
            put(update_profile),
        ),
        (
            "/api/v1/access-profiles/{id}",
            Method::DELETE,
            delete(delete_profile),
        ),
        (
            "/api/v1/recording-profiles",
            Method::GET,
            get(recording_profiles::list),
        ),
        (
            "/api/v1/recording-profiles/file",
            Method::GET,
            get(recording_profiles::file),
        ),
        (
            "/api/v1/recording-profiles/{name}",
            Method::PUT,
            put(recording_profiles::put),
        ),
        (
            "/api/v1/recording-profiles/{name}",
            Method::DELETE,
            delete(recording_profiles::delete),
        ),
        ("/api/v1/saved-searches", Method::GET, get(list_saved)),
        ("/api/v1/saved-searches", Method::POST, post(create_saved)),
        (
            "/api/v1/saved-searches/{id}",
            Method::DELETE,
            delete(delete_saved),
        ),
        ("/api/v1/audit", Method::GET, get(audit_search)),
        ("/api/v1/alarms", Method::GET, get(system::alarms)),
        ("/api/v1/activity", Method::GET, get(system::activity)),
        ("/api/v1/storages", Method::GET, get(system::storages)),
        (
            "/api/v1/audit/export",
            Method::GET,
            get(export::audit_export),
        ),
    ]
}

/// The application.
pub fn app(state: AppState) -> Router {
    let limit = state.body_limit;
    let mut r = Router::new();
    for (path, _, mr) in routes() {
        r = r.route(path, mr);
    }
    r.merge(ui::router())
        .fallback(|| async { AppError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            AppError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Fuzzing entry point: the hand-written parsers of request input (search and audit query
/// strings, the `Range` header, an ingested leg's JSON and its checks, a directory import);
/// must never panic, whatever the bytes.
#[doc(hidden)]
pub fn fuzz_request_input(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = params::search_query(Some(&text));
    let _ = params::audit_query(Some(&text));
    let len = data.len() as u64 * 1000;
    match crate::media::parse_range(Some(&text), len) {
        crate::media::RangeReq::Partial { start, end } => {
            assert!(start <= end && end < len, "range {start}-{end} of {len}");
        }
        crate::media::RangeReq::Full | crate::media::RangeReq::Unsatisfiable => {}
    }
    if let Ok(leg) = serde_json::from_slice::<crate::model::LegUpdate>(data) {
        let _ = leg.validate();
    }
    let _ = serde_json::from_slice::<crate::store::DirectoryImport>(data);
    let _ = serde_json::from_slice::<crate::rbac::AccessProfile>(data);
}

/// The OpenAPI document, as kept in `docs/api/openapi.json`.
pub const OPENAPI: &str = include_str!("../../../docs/api/openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Parses a numeric id from a path segment (so `../x` or `1;DROP` is a 400, never a lookup).
pub fn parse_id(s: &str) -> Result<i64, AppError> {
    s.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| AppError::bad_request(format!("invalid id {s:?}")))
}
