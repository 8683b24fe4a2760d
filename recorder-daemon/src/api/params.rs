//! Query strings: repeated keys for list filters, unknown keys refused.

use chrono::{DateTime, Utc};

use super::AppError;
use crate::audit::AuditQuery;
use crate::model::{CallType, Direction, MediaStatus, ReleaseCause};
use crate::store::sqlite::SORT_COLUMNS;
use crate::store::{SearchQuery, DEFAULT_SORT};

/// Longest accepted text filter.
const MAX_TEXT: usize = 256;

/// The keys of the interaction search.
pub const SEARCH_KEYS: &[&str] = &[
    "mediaStatus",
    "user",
    "group",
    "from",
    "to",
    "timeFrom",
    "timeTo",
    "direction",
    "tag",
    "calledParty",
    "callingParty",
    "answeredBy",
    "participant",
    "callType",
    "releaseCause",
    "notes",
    "sort",
    "order",
    "page",
    "pageSize",
];

/// Splits a raw query string into pairs, refusing keys outside `allowed`.
pub fn pairs(raw: Option<&str>, allowed: &[&str]) -> Result<Vec<(String, String)>, AppError> {
    let v: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    for (k, _) in &v {
        if !allowed.contains(&k.as_str()) {
            return Err(AppError::bad_request(format!(
                "unknown query parameter {k:?}"
            )));
        }
    }
    Ok(v)
}

fn text(k: &str, v: &str) -> Result<String, AppError> {
    if v.is_empty() || v.chars().count() > MAX_TEXT {
        return Err(AppError::bad_request(format!(
            "{k} must have 1..{MAX_TEXT} characters"
        )));
    }
    // No party, name or note holds a control character, and SQLite's FTS5 query syntax
    // refuses a NUL (schemathesis found it as a 500 from the trigram index).
    if v.chars().any(char::is_control) {
        return Err(AppError::bad_request(format!(
            "{k} must not contain control characters"
        )));
    }
    Ok(v.to_string())
}

fn time(k: &str, v: &str) -> Result<DateTime<Utc>, AppError> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| AppError::bad_request(format!("{k} must be an RFC 3339 time")))
}

fn time_of_day(k: &str, v: &str) -> Result<String, AppError> {
    let ok = v.len() == 5
        && v.as_bytes()[2] == b':'
        && v[..2].parse::<u8>().is_ok_and(|h| h < 24)
        && v[3..].parse::<u8>().is_ok_and(|m| m < 60)
        && v.bytes()
            .enumerate()
            .all(|(i, b)| i == 2 || b.is_ascii_digit());
    if ok {
        Ok(v.to_string())
    } else {
        Err(AppError::bad_request(format!("{k} must be HH:MM (UTC)")))
    }
}

fn one_of<T: Copy>(
    k: &str,
    v: &str,
    parse: fn(&str) -> Option<T>,
    all: &[&str],
) -> Result<T, AppError> {
    parse(v).ok_or_else(|| AppError::bad_request(format!("{k} must be one of {}", all.join(", "))))
}

fn number(k: &str, v: &str, max: u32) -> Result<u32, AppError> {
    v.parse::<u32>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| AppError::bad_request(format!("{k} must be 1..{max}")))
}

/// Parses the interaction search.
pub fn search_query(raw: Option<&str>) -> Result<SearchQuery, AppError> {
    let mut q = SearchQuery {
        sort: DEFAULT_SORT.into(),
        descending: true,
        page: 1,
        page_size: 50,
        ..Default::default()
    };
    for (k, v) in pairs(raw, SEARCH_KEYS)? {
        match k.as_str() {
            "mediaStatus" => q.media_status.push(one_of(
                &k,
                &v,
                MediaStatus::parse,
                &MediaStatus::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>(),
            )?),
            "direction" => q.direction.push(one_of(
                &k,
                &v,
                Direction::parse,
                &Direction::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>(),
            )?),
            "callType" => q.call_type.push(one_of(
                &k,
                &v,
                CallType::parse,
                &CallType::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            )?),
            "releaseCause" => q.release_cause.push(one_of(
                &k,
                &v,
                ReleaseCause::parse,
                &ReleaseCause::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>(),
            )?),
            "user" => q.users.push(text(&k, &v)?),
            "group" => q.groups.push(text(&k, &v)?),
            "tag" => q.tags.push(text(&k, &v)?),
            "from" => q.from = Some(time(&k, &v)?),
            "to" => q.to = Some(time(&k, &v)?),
            "timeFrom" => q.time_from = Some(time_of_day(&k, &v)?),
            "timeTo" => q.time_to = Some(time_of_day(&k, &v)?),
            "calledParty" => q.called = Some(text(&k, &v)?),
            "callingParty" => q.calling = Some(text(&k, &v)?),
            "answeredBy" => q.answered = Some(text(&k, &v)?),
            "participant" => q.participant = Some(text(&k, &v)?),
            "notes" => {
                let t = text(&k, &v)?;
                if crate::store::sqlite::fts_words(&t).is_none() {
                    return Err(AppError::bad_request("notes: no word to look for"));
                }
                q.notes = Some(t)
            }
            "sort" => {
                if !SORT_COLUMNS.iter().any(|(c, _)| *c == v) {
                    return Err(AppError::bad_request(format!("cannot sort on {v:?}")));
                }
                q.sort = v;
            }
            "order" => {
                q.descending = match v.as_str() {
                    "asc" => false,
                    "desc" => true,
                    _ => return Err(AppError::bad_request("order must be asc or desc")),
                }
            }
            "page" => q.page = number(&k, &v, 1_000_000)?,
            "pageSize" => q.page_size = number(&k, &v, 500)?,
            _ => {
                return Err(AppError::bad_request(format!(
                    "unknown query parameter {k:?}"
                )))
            }
        }
    }
    Ok(q)
}

/// Parses the audit search.
pub fn audit_query(raw: Option<&str>) -> Result<AuditQuery, AppError> {
    let mut q = AuditQuery {
        page: 1,
        page_size: 50,
        ..Default::default()
    };
    let keys = [
        "from", "to", "name", "action", "item", "text", "page", "pageSize",
    ];
    for (k, v) in pairs(raw, &keys)? {
        match k.as_str() {
            "from" => q.from = Some(crate::model::fmt_time(&time(&k, &v)?)),
            "to" => q.to = Some(crate::model::fmt_time(&time(&k, &v)?)),
            "name" => q.name = Some(text(&k, &v)?),
            "action" => {
                if !crate::audit::ACTIONS.contains(&v.as_str()) {
                    return Err(AppError::bad_request(format!(
                        "action must be one of {}",
                        crate::audit::ACTIONS.join(", ")
                    )));
                }
                q.action = Some(v)
            }
            "item" => q.item = Some(text(&k, &v)?),
            "text" => q.text = Some(text(&k, &v)?),
            "page" => q.page = number(&k, &v, 1_000_000)?,
            "pageSize" => q.page_size = number(&k, &v, 500)?,
            _ => {
                return Err(AppError::bad_request(format!(
                    "unknown query parameter {k:?}"
                )))
            }
        }
    }
    Ok(q)
}

#[cfg(test)]
mod text_tests {
    use super::text;

    #[test]
    fn control_characters_are_refused() {
        assert!(text("callingParty", "4420").is_ok());
        assert!(text("callingParty", "\u{f4e76}\u{0}Ù").is_err());
        assert!(text("notes", "a\tb").is_err());
        assert!(text("notes", "").is_err());
    }
}
