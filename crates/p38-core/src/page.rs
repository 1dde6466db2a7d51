//! Keyset pagination. A cursor is the last id seen, opaque to clients;
//! the next page is `id < cursor`, so page 10,000 costs what page 1 costs.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Error, Result};

/// Default and largest page sizes.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page a client may ask for.
pub const MAX_LIMIT: u32 = 500;

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    /// Return items with ids below this one (newest first).
    pub before: Option<i64>,
    /// At most this many items.
    pub limit: u32,
}

impl PageRequest {
    /// The first page.
    pub fn first(limit: u32) -> Self {
        PageRequest {
            before: None,
            limit,
        }
    }

    /// Builds a request from query parameters, checking both.
    pub fn parse(cursor: Option<&str>, limit: Option<u32>) -> Result<Self> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(Error::validation(
                "limit",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let before = match cursor {
            None | Some("") => None,
            Some(c) => Some(decode_cursor(c)?),
        };
        Ok(PageRequest { before, limit })
    }
}

/// One page of items and the cursor of the next, if there is one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched rows: the extra row only
    /// tells that another page exists.
    pub fn from_rows(mut rows: Vec<T>, limit: u32, id: impl Fn(&T) -> i64) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| encode_cursor(id(r)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }

    /// Maps the items, keeping the cursor.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

fn encode_cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{id}"))
}

fn decode_cursor(c: &str) -> Result<i64> {
    let bad = || {
        Error::validation(
            "cursor",
            "cursor is not one this server issued; start again without it",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix("v1:")
        .and_then(|n| n.parse().ok())
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        let p = Page::from_rows(vec![9, 8, 7], 2, |x| *x);
        assert_eq!(p.items, vec![9, 8]);
        let req = PageRequest::parse(p.next_cursor.as_deref(), Some(2)).unwrap();
        assert_eq!(req.before, Some(8));
        assert!(PageRequest::parse(Some("garbage!"), None).is_err());
        assert!(PageRequest::parse(None, Some(0)).is_err());
        assert!(Page::from_rows(vec![1], 2, |x| *x).next_cursor.is_none());
    }
}
