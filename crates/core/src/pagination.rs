//! Cursor pagination for list endpoints: newest first, keyed on `(created_at, id)` so pages
//! stay stable while rows are inserted.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use thiserror::Error;

/// Default and maximum page sizes.
pub const DEFAULT_LIMIT: u32 = 50;
/// Larger pages are refused rather than silently truncated.
pub const MAX_LIMIT: u32 = 200;

/// Position after which the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: i64,
    pub id: String,
}

/// Why a `cursor` or `limit` query parameter is unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PageError {
    #[error("cursor is not one this API issued")]
    BadCursor,
    #[error("limit must be a whole number from 1 to {MAX_LIMIT}")]
    BadLimit,
}

impl Cursor {
    /// Opaque string form handed to clients as `next_cursor`.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.created_at, self.id))
    }

    /// Parses a cursor from a client.
    pub fn decode(s: &str) -> Result<Self, PageError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| PageError::BadCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| PageError::BadCursor)?;
        let (at, id) = text.split_once(':').ok_or(PageError::BadCursor)?;
        let created_at = at.parse().map_err(|_| PageError::BadCursor)?;
        if id.is_empty() {
            return Err(PageError::BadCursor);
        }
        Ok(Cursor {
            created_at,
            id: id.to_owned(),
        })
    }
}

/// Parses the `limit` query parameter.
pub fn limit(param: Option<&str>) -> Result<u32, PageError> {
    match param {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(PageError::BadLimit),
        },
    }
}

/// Splits a result fetched with `limit + 1` rows into the page and the next cursor.
pub fn split_page<T>(
    mut rows: Vec<T>,
    limit: u32,
    key: impl Fn(&T) -> Cursor,
) -> (Vec<T>, Option<String>) {
    let limit = limit as usize;
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(|last| key(last).encode());
        (rows, next)
    } else {
        (rows, None)
    }
}

/// A list's time bound (`from`, `to`) is not an RFC 3339 instant with an offset.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0} must be RFC 3339 with an offset")]
pub struct InvalidTime(pub String);

/// Reads a list's time-bound query parameter `name` as epoch milliseconds; absent or empty is
/// no bound, anything but RFC 3339 with an offset is refused (a zone-less time is ambiguous).
pub fn time_bound(name: &str, value: Option<&str>) -> Result<Option<i64>, InvalidTime> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => chrono::DateTime::parse_from_rfc3339(v)
            .map(|t| Some(t.timestamp_millis()))
            .map_err(|_| InvalidTime(name.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            created_at: 1_700_000_000_123,
            id: "evt_abc:def".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn foreign_cursors_are_refused() {
        for bad in [
            "",
            "!!!",
            "bm9jb2xvbg",
            &URL_SAFE_NO_PAD.encode("x:y"),
            &URL_SAFE_NO_PAD.encode("5:"),
        ] {
            assert_eq!(Cursor::decode(bad), Err(PageError::BadCursor), "{bad}");
        }
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(limit(None), Ok(DEFAULT_LIMIT));
        assert_eq!(limit(Some("10")), Ok(10));
        assert_eq!(limit(Some("0")), Err(PageError::BadLimit));
        assert_eq!(limit(Some("201")), Err(PageError::BadLimit));
        assert_eq!(limit(Some("x")), Err(PageError::BadLimit));
    }

    #[test]
    fn split_page_sets_next_cursor_only_when_more_rows_exist() {
        let key = |n: &i64| Cursor {
            created_at: *n,
            id: n.to_string(),
        };
        let (page, next) = split_page(vec![5, 4, 3], 2, key);
        assert_eq!(page, [5, 4]);
        assert_eq!(Cursor::decode(&next.unwrap()).unwrap().created_at, 4);
        let (page, next) = split_page(vec![5, 4], 2, key);
        assert_eq!(page, [5, 4]);
        assert!(next.is_none());
    }

    #[test]
    fn time_bounds_need_an_offset() {
        assert_eq!(time_bound("from", None), Ok(None));
        assert_eq!(time_bound("from", Some("")), Ok(None));
        assert_eq!(
            time_bound("from", Some("2026-01-02T03:04:05.5+01:00")),
            Ok(Some(1_767_319_445_500))
        );
        for bad in ["2026-01-02T03:04:05", "yesterday", "2026-13-01T00:00:00Z"] {
            let err = time_bound("to", Some(bad)).unwrap_err();
            assert_eq!(
                err.to_string(),
                "to must be RFC 3339 with an offset",
                "{bad}"
            );
        }
    }
}
