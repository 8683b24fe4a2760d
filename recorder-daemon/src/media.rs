//! Recording files: which file of an interaction to serve, and HTTP byte ranges (RFC 9110
//! §14) for seeking players.

use std::path::{Component, Path};

/// Which file of an interaction to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegChoice {
    /// The merged recording (until the leg merge of issue 6/7 stores one: the primary leg's
    /// mix, else the paired leg's).
    Merged,
    /// The primary bot's mix.
    Primary,
    /// The paired bot's mix.
    Paired,
}

impl LegChoice {
    /// Parses `merged|primary|paired`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "merged" => Some(Self::Merged),
            "primary" => Some(Self::Primary),
            "paired" => Some(Self::Paired),
            _ => None,
        }
    }
}

/// The mixed track's name in a sealed recording directory (docs/live.md, "Spool").
pub const MIXED_FILE: &str = "mixed.ogg";

/// Refuses anything but a plain relative path (no `..`, no root, no drive, no NUL).
pub fn check_relative(p: &str) -> Result<(), String> {
    if p.is_empty() || p.len() > 1024 || p.contains('\0') || p.contains('\\') {
        return Err("must be a relative path of 1..1024 characters".into());
    }
    for c in Path::new(p).components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            _ => return Err(format!("{p:?} is not a plain relative path")),
        }
    }
    Ok(())
}

/// The outcome of a `Range` header against a file of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeReq {
    /// No (usable) range: the whole file, 200.
    Full,
    /// Bytes `start..=end`, 206.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Interprets a `Range` header. Several ranges are answered with the whole file (allowed by
/// RFC 9110, and browsers seeking audio ask for one); a malformed header is ignored as the RFC
/// says.
pub fn parse_range(header: Option<&str>, len: u64) -> RangeReq {
    let Some(h) = header else {
        return RangeReq::Full;
    };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return RangeReq::Full;
    };
    if spec.contains(',') {
        return RangeReq::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    match (a.is_empty(), b.is_empty()) {
        (true, true) => RangeReq::Full,
        (true, false) => match parse(b) {
            // Suffix: the last n bytes.
            Some(0) => RangeReq::Unsatisfiable,
            Some(n) if len > 0 => RangeReq::Partial {
                start: len.saturating_sub(n),
                end: len - 1,
            },
            Some(_) => RangeReq::Unsatisfiable,
            None => RangeReq::Full,
        },
        (false, _) => {
            let Some(start) = parse(a) else {
                return RangeReq::Full;
            };
            if start >= len {
                // Also for an explicit end: no byte of the range exists.
                return if b.is_empty() || parse(b).is_some_and(|e| e >= start) {
                    RangeReq::Unsatisfiable
                } else {
                    RangeReq::Full
                };
            }
            let end = if b.is_empty() {
                Some(len.saturating_sub(1))
            } else {
                parse(b)
            };
            match end {
                None => RangeReq::Full,
                Some(end) if end < start => RangeReq::Full,
                Some(end) => RangeReq::Partial {
                    start,
                    end: end.min(len - 1),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeReq::*;
        let t = |h: &str| parse_range(Some(h), 1000);
        assert_eq!(parse_range(None, 1000), Full);
        assert_eq!(t("bytes=0-99"), Partial { start: 0, end: 99 });
        assert_eq!(
            t("bytes=900-"),
            Partial {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            t("bytes=-100"),
            Partial {
                start: 900,
                end: 999
            }
        );
        assert_eq!(t("bytes=-5000"), Partial { start: 0, end: 999 });
        assert_eq!(
            t("bytes=990-5000"),
            Partial {
                start: 990,
                end: 999
            }
        );
        assert_eq!(t("bytes=1000-"), Unsatisfiable);
        assert_eq!(t("bytes=-0"), Unsatisfiable);
        assert_eq!(t("bytes=5-1"), Full);
        assert_eq!(t("bytes=0-1,5-6"), Full);
        assert_eq!(t("items=0-1"), Full);
        assert_eq!(t("bytes=x-1"), Full);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
    }

    #[test]
    fn paths_stay_under_the_root() {
        assert!(check_relative("sealed/rec-1").is_ok());
        for bad in ["../x", "/etc", "a/../../b", "", "a\\..\\b", "a\0b"] {
            assert!(check_relative(bad).is_err(), "{bad:?}");
        }
    }
}
