//! Paged lists (`peers`, `rooms`): one page of entries in key order, bounded by a count and by
//! [`LIST_PAGE_BYTES_MAX`] bytes of JSON, so an answer always fits one frame however many
//! identities or rooms exist.
//!
//! A page is taken from entries already sorted by key and starting at the request's cursor;
//! the cursor of the next page is the key of the first entry left out. This file measures and
//! cuts; what a key is (and how a cursor reads) belongs to each list.

use serde::Serialize;

use crate::hub::core::error;
use crate::protocol::limits::LIST_PAGE_BYTES_MAX;
use crate::protocol::{ErrorCode, RpcError};

/// One page: its entries and where the next one starts (`None` on the last page).
pub(in crate::hub) struct Page<T> {
    pub(in crate::hub) entries: Vec<T>,
    pub(in crate::hub) next_cursor: Option<String>,
}

/// Takes entries (`(key, entry)` in key order, from the cursor on) until `limit` entries or
/// [`LIST_PAGE_BYTES_MAX`] bytes of their JSON (with separators); the key of the first one left
/// out is the next cursor. A page always holds at least one entry when any remains: each list
/// checks that its largest entry fits a page.
///
/// # Errors
/// `unexpected` when an entry does not encode as JSON (a bug: results always do).
pub(in crate::hub) fn take_page<T: Serialize>(
    entries: impl Iterator<Item = (String, T)>,
    limit: usize,
) -> Result<Page<T>, RpcError> {
    let mut page = Page {
        entries: Vec::new(),
        next_cursor: None,
    };
    let mut bytes = 0usize;
    for (key, entry) in entries {
        let entry_bytes = serde_json::to_vec(&entry)
            .map_err(|json| error(ErrorCode::Unexpected, json.to_string()))?
            .len()
            + 1;
        let full = page.entries.len() >= limit
            || (!page.entries.is_empty() && bytes + entry_bytes > LIST_PAGE_BYTES_MAX);
        if full {
            page.next_cursor = Some(key);
            break;
        }
        bytes += entry_bytes;
        page.entries.push(entry);
    }
    Ok(page)
}

/// The refusal of a cursor the hub did not make.
pub(in crate::hub) fn bad_cursor(cursor: &str) -> RpcError {
    error(
        ErrorCode::BadArguments,
        format!("cursor {cursor:?} is not a next_cursor this hub returned"),
    )
}
