//! Validation of `error_pages = { 503 = "errors/503.html", ... }`: known statuses, readable
//! UTF-8 files of at most 256 KiB, paths relative to the config file.

use super::*;
use crate::config::pages::{ErrorPages, Page, MAX_PAGE, STATUSES};

pub(super) fn validate_pages(
    pages: BTreeMap<String, String>,
    p: &KeyPath,
    base: &Path,
) -> VResult<ErrorPages> {
    let mut out = BTreeMap::new();
    for (status, file) in pages {
        let at = p.key(&status);
        let Some(code) = status.parse::<u16>().ok().filter(|c| STATUSES.contains(c)) else {
            return err(
                at,
                format!("\"{status}\": a page replaces brace's own 429, 502, 503 or 504"),
            );
        };
        let path = base.join(&file);
        let fail = |e: std::io::Error| (at.clone(), format!("{}: {e}", path.display()));
        let meta = std::fs::metadata(&path).map_err(fail)?;
        if meta.len() > MAX_PAGE {
            return err(
                at,
                format!("{}: {} bytes, at most 256 KiB", path.display(), meta.len()),
            );
        }
        let html = std::fs::read_to_string(&path).map_err(fail)?;
        out.insert(
            code,
            Page {
                file: path,
                html: html.into(),
            },
        );
    }
    Ok(ErrorPages(out))
}
