//! The typed `error_pages` (server-wide in `[server]`, per route in `[[route]]`): the HTML a
//! browser sees instead of brace's plain-text line when brace itself answers 429, 502, 503
//! or 504. Read at load (and so at every reload).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ErrorPages(pub BTreeMap<u16, Page>);

#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub file: PathBuf,
    pub html: Arc<str>,
}

/// The statuses brace makes itself that a page may replace.
pub const STATUSES: [u16; 4] = [429, 502, 503, 504];
/// The largest page: it is held in memory and written whole.
pub const MAX_PAGE: u64 = 256 * 1024;

impl ErrorPages {
    pub fn get(&self, status: u16) -> Option<&Page> {
        self.0.get(&status)
    }
}
