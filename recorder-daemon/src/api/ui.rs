//! The web interface at `/ui/`: the files of `recorder-daemon/ui/` embedded in the binary (no
//! CDN, nothing fetched at run time), and the `access_token` query that lets an `<audio>`
//! element, which cannot send an `Authorization` header, stream a recording.

use axum::extract::{Path, Request};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use include_dir::{include_dir, Dir};

use super::{AppError, AppState};

static UI: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/ui");

/// The page every client-side route (`/ui/interactions/42`, `/ui/settings/tags`) loads.
const INDEX: &str = "index.html";

/// Only same-origin scripts, styles and media: the interface loads nothing from elsewhere, so
/// an injected `<script src>` or a leaked token sent to another host is refused by the browser.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     media-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'; form-action 'self'";

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, e)| e) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn file(path: &str) -> Response {
    // A last segment without a dot is a client-side route: the single page handles it.
    let last = path.rsplit('/').next().unwrap_or("");
    let path = if path.is_empty() || !last.contains('.') {
        INDEX
    } else {
        path
    };
    let Some(f) = UI.get_file(path) else {
        return AppError::not_found("no such file").into_response();
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type(path)),
            // The files change with the binary; revalidating costs little on a LAN.
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        f.contents(),
    )
        .into_response()
}

/// The routes of the interface (outside `/api/v1`, so not in the OpenAPI document).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(|| async { file("") }))
        .route(
            "/ui/{*path}",
            get(|Path(p): Path<String>| async move { file(&p) }),
        )
}

/// Moves `access_token` from the query of the media route into the `Authorization` header, so
/// the same verification, permission checks and audit (`play`/`download`) apply as with a
/// header. A header already present wins. The parameter is removed from the query either way,
/// and no other route accepts it (their query parsers refuse unknown keys).
pub async fn media_token(mut req: Request) -> Request {
    let Some(q) = req.uri().query() else {
        return req;
    };
    let mut token = None;
    let rest: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes())
        .filter_map(|(k, v)| {
            if k == "access_token" {
                token = Some(v.into_owned());
                None
            } else {
                Some((k.into_owned(), v.into_owned()))
            }
        })
        .collect();
    let Some(token) = token else {
        return req;
    };
    if !req.headers().contains_key(header::AUTHORIZATION) {
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
            req.headers_mut().insert(header::AUTHORIZATION, v);
        }
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(rest)
        .finish();
    let pq = if query.is_empty() {
        req.uri().path().to_string()
    } else {
        format!("{}?{query}", req.uri().path())
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(p) = pq.parse() {
        parts.path_and_query = Some(p);
        if let Ok(u) = Uri::from_parts(parts) {
            *req.uri_mut() = u;
        }
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_routes_load_the_page_and_files_keep_their_type() {
        assert!(UI.get_file(INDEX).is_some());
        let r = file("interactions/42");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(file("nope.js").status(), StatusCode::NOT_FOUND);
        assert_eq!(file("../Cargo.toml").status(), StatusCode::NOT_FOUND);
    }
}
