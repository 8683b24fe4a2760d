//! CSV exports: interactions with the product's report header and columns, and the audit
//! trail.

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::params::{audit_query, search_query};
use super::{ApiJson, AppError, AppState, Caller};
use crate::model::InteractionSummary;
use crate::rbac::Permission;
use crate::store::SearchQuery;

/// The export's columns (DESIGN.md, "Metadata").
pub const COLUMNS: &[&str] = &[
    "Call Id",
    "Target Display Name",
    "Target Upn",
    "OnBehalfOf",
    "TransferredBy",
    "TransferredTo",
    "Called Party",
    "Calling Party",
    "Answered By",
    "Answered time",
    "Start Time",
    "Release Time",
    "SipCallId",
    "SysCallId",
    "Call Direction",
    "Call Type",
    "Release Cause",
    "Notes",
    "Participants",
    "Media Audio Status",
    "Expiration",
    "QueueName",
    "DoubleRecordingType",
    "PairedCall",
    "Tags",
    "Call Link",
];

/// The most rows one export holds.
const MAX_ROWS: u64 = 100_000;

/// A cell a spreadsheet would run as a formula gets a leading `'` (CSV injection).
fn cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

fn row(r: &InteractionSummary, base: &str) -> Vec<String> {
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    [
        r.call_id.clone(),
        r.target_display_name.clone(),
        r.target_upn.clone(),
        r.on_behalf_of.clone(),
        r.transferred_by.clone(),
        r.transferred_to.clone(),
        r.called_party.clone(),
        r.calling_party.clone(),
        r.answered_by.clone(),
        o(&r.answered_time),
        r.start_time.clone(),
        o(&r.release_time),
        r.sip_call_id.clone(),
        r.sys_call_id.clone(),
        r.direction.clone(),
        r.call_type.clone(),
        r.release_cause.clone(),
        r.notes.join(" | "),
        r.participants.join("; "),
        r.media_status.clone(),
        o(&r.expiration),
        r.queue_name.clone(),
        r.double_recording_type.clone(),
        r.paired_call.clone(),
        r.tags.join("; "),
        format!("{base}/api/v1/interactions/{}", r.id),
    ]
    .iter()
    .map(|s| cell(s))
    .collect()
}

fn csv_response(bytes: Vec<u8>, name: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

async fn export(
    state: AppState,
    caller: Caller,
    mut q: SearchQuery,
    criteria: String,
) -> Result<Response, AppError> {
    caller.require_calls()?;
    let scope = caller.scope(&state).await?;
    q.page_size = 1000;
    q.page = 1;
    let mut rows = Vec::new();
    loop {
        let (qq, sc) = (q.clone(), scope.clone());
        let page = state.run(move |s| s.search(&qq, &sc)).await?;
        // A broad search's total is only a lower bound (the store stops counting): the rows
        // read so far tell when it is too large.
        let at_least = page.total.max(rows.len() as u64 + page.items.len() as u64);
        if at_least > MAX_ROWS {
            let more = if page.total_is_lower_bound {
                "more than "
            } else {
                ""
            };
            return Err(AppError::bad_request(format!(
                "the search matches {more}{} calls; narrow it to at most {MAX_ROWS}",
                if page.total_is_lower_bound {
                    MAX_ROWS
                } else {
                    at_least
                }
            )));
        }
        let n = page.items.len();
        rows.extend(page.items);
        if n < q.page_size as usize
            || (!page.total_is_lower_bound && rows.len() as u64 >= page.total)
        {
            break;
        }
        q.page += 1;
    }
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    let created = crate::model::fmt_time(&chrono::Utc::now());
    let err = |e: csv::Error| AppError::internal(e.to_string());
    w.write_record(["Requested By", &cell(&caller.claims.upn)])
        .map_err(err)?;
    w.write_record(["Created At", &created]).map_err(err)?;
    w.write_record(["Search Criteria", &cell(&criteria)])
        .map_err(err)?;
    w.write_record(COLUMNS).map_err(err)?;
    for r in &rows {
        w.write_record(row(r, &state.public_url)).map_err(err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| AppError::internal(e.to_string()))?;
    state
        .audit(caller.audit(
            "export",
            "interaction",
            "",
            format!("{} calls: {criteria}", rows.len()),
        ))
        .await?;
    Ok(csv_response(bytes, "interactions.csv"))
}

/// `GET /api/v1/interactions/export`: the whole search (same filters as the search; paging
/// ignored).
pub async fn export_search(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    let q = search_query(raw.as_deref())?;
    export(state, caller, q, raw.unwrap_or_default()).await
}

/// Body of `POST /api/v1/interactions/export`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selection {
    /// The calls to export.
    pub interaction_ids: Vec<i64>,
}

/// `POST /api/v1/interactions/export`: a selection; calls the caller may not see are left
/// out (as in the search).
pub async fn export_selection(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<ApiJson<Selection>, AppError>,
) -> Result<Response, AppError> {
    let ApiJson(b) = body?;
    if b.interaction_ids.is_empty() || b.interaction_ids.len() > 10_000 {
        return Err(AppError::bad_request(
            "interactionIds must hold 1..10000 ids",
        ));
    }
    let mut q = search_query(None)?;
    let criteria = format!(
        "selection: {}",
        b.interaction_ids
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    q.ids = b.interaction_ids;
    export(state, caller, q, criteria).await
}

/// `GET /api/v1/audit/export`: the filtered audit trail as CSV.
pub async fn audit_export(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    caller.require(Permission::AuditTrail)?;
    let mut q = audit_query(raw.as_deref())?;
    q.page_size = 10_000;
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| AppError::internal(e.to_string());
    w.write_record([
        "Id",
        "Date",
        "User",
        "User Id",
        "Action",
        "Item Type",
        "Item",
        "Description",
        "Hash",
    ])
    .map_err(err)?;
    let mut n = 0u64;
    q.page = 1;
    loop {
        let qq = q.clone();
        let page = state.run(move |s| s.audit_search(&qq)).await?;
        for e in &page.items {
            w.write_record([
                e.id.to_string(),
                e.at.clone(),
                cell(&e.user_upn),
                cell(&e.user_oid),
                e.action.clone(),
                e.item_type.clone(),
                cell(&e.item),
                cell(&e.description),
                e.hash.clone(),
            ])
            .map_err(err)?;
        }
        n += page.items.len() as u64;
        if page.items.is_empty() || n >= page.total || n >= MAX_ROWS {
            break;
        }
        q.page += 1;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| AppError::internal(e.to_string()))?;
    state
        .audit(caller.audit(
            "export",
            "audit",
            "",
            format!("{n} entries: {}", raw.unwrap_or_default()),
        ))
        .await?;
    Ok(csv_response(bytes, "audit.csv"))
}
