//! WHIP's HTTP side (RFC 9725 §4): status codes, headers and CORS, on axum.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, OriginalUri, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;

use super::{WhipEndpoint, WhipError};

const SDP: &str = "application/sdp";
/// RFC 7807's `Accept-Post`, which WHIP uses to say which offer type it takes.
const ACCEPT_POST: HeaderName = HeaderName::from_static("accept-post");

pub(super) fn router(endpoint: Arc<WhipEndpoint>) -> Router {
    // Larger bodies get 413 before they are read into memory.
    let body_limit = DefaultBodyLimit::max(endpoint.inner.config.max_offer_bytes);
    Router::new()
        .route(
            "/whip",
            post(post_offer).options(preflight).fallback(not_allowed),
        )
        .route(
            "/whip/{id}",
            post(post_offer_for_call)
                .delete(delete_resource)
                .options(preflight)
                .fallback(not_allowed),
        )
        .layer(body_limit)
        .layer(map_response(cors))
        .with_state(endpoint)
}

#[derive(Deserialize)]
struct OfferQuery {
    participant: Option<String>,
}

async fn post_offer(
    State(endpoint): State<Arc<WhipEndpoint>>,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<OfferQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let base = uri.path().trim_end_matches('/').to_owned();
    create(&endpoint, base, None, query.participant, &headers, &body).await
}

async fn post_offer_for_call(
    State(endpoint): State<Arc<WhipEndpoint>>,
    OriginalUri(uri): OriginalUri,
    Path(call_id): Path<String>,
    Query(query): Query<OfferQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The resource lives beside the call segment: `.../whip/{call}` -> `.../whip/{resource}`.
    let path = uri.path().trim_end_matches('/');
    let base = path.rsplit_once('/').map_or("", |(b, _)| b).to_owned();
    create(
        &endpoint,
        base,
        Some(call_id),
        query.participant,
        &headers,
        &body,
    )
    .await
}

async fn create(
    endpoint: &WhipEndpoint,
    base: String,
    call_id: Option<String>,
    participant: Option<String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if !is_sdp(headers) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            [(ACCEPT_POST, SDP)],
            "WHIP offers must be sent as Content-Type: application/sdp\n",
        )
            .into_response();
    }
    let Ok(offer) = std::str::from_utf8(body) else {
        return error_response(WhipError::BadOffer("the body is not UTF-8".into()));
    };
    let participant = participant.filter(|p| !p.is_empty());
    match endpoint.create_session(call_id, participant, offer).await {
        Ok((resource_id, answer)) => {
            let location = format!("{base}/{resource_id}");
            let mut response = (StatusCode::CREATED, answer).into_response();
            let h = response.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
            // Resource ids are hex and the base came from a valid request path, so this
            // cannot fail; a 500 is still better than a panic if it ever did.
            match HeaderValue::from_str(&location) {
                Ok(v) => {
                    h.insert(header::LOCATION, v);
                }
                Err(_) => {
                    return error_response(WhipError::WebRtc(format!(
                        "unusable resource location {location:?}"
                    )))
                }
            }
            if let Ok(etag) = HeaderValue::from_str(&format!("\"{resource_id}\"")) {
                h.insert(header::ETAG, etag);
            }
            response
        }
        Err(e) => error_response(e),
    }
}

async fn delete_resource(
    State(endpoint): State<Arc<WhipEndpoint>>,
    Path(resource_id): Path<String>,
) -> Response {
    match endpoint.delete_session(&resource_id).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => error_response(e),
    }
}

/// Trickle ICE and ICE restarts (`PATCH`) are not supported: the answer carries every
/// candidate. RFC 9725 §4.3.1 lets a server answer 405 to them.
async fn not_allowed(method: Method) -> Response {
    let allow = HeaderValue::from_static("POST, DELETE, OPTIONS");
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, allow)],
        format!("{method} is not supported on WHIP resources here (no trickle ICE)\n"),
    )
        .into_response()
}

async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (ACCEPT_POST, SDP),
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                "POST, DELETE, PATCH, OPTIONS",
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Content-Type, Authorization, If-Match",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "86400"),
        ],
    )
        .into_response()
}

/// Every response, errors included, may be read by a page on another origin: WHIP senders in
/// browsers are usually served from elsewhere, and they need `Location` to DELETE later.
async fn cors(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, ETag, Link, Accept-Post"),
    );
    response
}

fn is_sdp(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case(SDP))
}

fn error_response(error: WhipError) -> Response {
    let status = match &error {
        WhipError::BadOffer(_) => StatusCode::BAD_REQUEST,
        WhipError::UnknownResource(_) => StatusCode::NOT_FOUND,
        WhipError::TooManySessions(_) | WhipError::NoFreePort { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        WhipError::Config(_) | WhipError::WebRtc(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status.is_server_error() {
        log::warn!("WHIP: {error}");
    }
    let mut response = (status, format!("{error}\n")).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_match_ignores_case_and_parameters() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
            is_sdp(&h)
        };
        assert!(with("application/sdp"));
        assert!(with("Application/SDP; charset=utf-8"));
        assert!(!with("text/plain"));
        assert!(!with("application/sdpx"));
        assert!(!is_sdp(&HeaderMap::new()));
    }
}
