//! The user docs keep up with the code: every metric family brace exports and every key of
//! the config file is named in the README (or a page under `docs/`), so a new one cannot ship
//! undocumented.

use std::collections::BTreeSet;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The README and every Markdown page under `docs/`.
fn user_docs() -> String {
    fn md(dir: &Path, out: &mut String) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                md(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push_str(&std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut text = std::fs::read_to_string(root().join("README.md")).unwrap();
    md(&root().join("docs"), &mut text);
    text
}

#[test]
fn every_metric_family_is_documented() {
    let docs = user_docs();
    let missing: Vec<String> = brace::metrics::Metrics::new()
        .families()
        .iter()
        .map(|f| f.name.clone())
        .filter(|n| !docs.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "metric families not in the docs: {missing:?}"
    );
}

/// The keys of the config file: the fields of the serde shapes in `src/config/file`
/// (`pub name: Type` inside a `struct File…`), as the TOML spells them.
fn config_keys() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for f in ["mod.rs", "upstream.rs"] {
        let text = std::fs::read_to_string(root().join("src/config/file").join(f)).unwrap();
        let mut in_file_struct = false;
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with("pub struct File") && t.ends_with('{') {
                in_file_struct = true;
            } else if line.starts_with('}') {
                in_file_struct = false;
            } else if in_file_struct {
                if let Some(rest) = t.strip_prefix("pub ") {
                    if let Some((name, _)) = rest.split_once(':') {
                        keys.insert(name.trim().trim_start_matches("r#").to_owned());
                    }
                }
            }
        }
    }
    keys
}

#[test]
fn every_config_key_is_documented() {
    let docs = user_docs();
    let keys = config_keys();
    assert!(keys.len() > 100, "the key scan found too few: {keys:?}");
    // Named in text (`key`), as a table (`[server]`, `[upstream.NAME.outlier]`), or set in an
    // example (`key = ...` on its own line or inside an inline table).
    let documented = |k: &str| {
        [
            format!("`{k}`"),
            format!("`{k} ="),
            format!("\n{k} ="),
            format!(" {k} = "),
            format!("[{k}]"),
            format!("[{k}."),
            format!(".{k}]"),
        ]
        .iter()
        .any(|p| docs.contains(p.as_str()))
    };
    let missing: Vec<&String> = keys.iter().filter(|k| !documented(k)).collect();
    assert!(
        missing.is_empty(),
        "config keys not in the docs: {missing:?}"
    );
}

/// A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown text's headings (outside code blocks).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut fence = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fence = !fence;
        } else if !fence && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// The targets of a Markdown text's links `[...](target)` (outside code blocks).
fn links(text: &str) -> Vec<String> {
    let mut fence = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fence = !fence;
            continue;
        }
        if fence {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            if let Some(end) = rest.find(')') {
                out.push(rest[..end].to_owned());
                rest = &rest[end..];
            }
        }
    }
    out
}

/// Every link between the README and the pages under `docs/` (and to files of the
/// repository) leads somewhere: the file exists and, with an `#anchor`, has that heading.
#[test]
fn the_docs_links_all_resolve() {
    let mut pages = vec![root().join("README.md")];
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            pages.push(p);
        }
    }
    assert!(pages.len() > 5, "the docs pages: {pages:?}");
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for link in links(&text) {
            if link.starts_with("http://") || link.starts_with("https://") {
                continue;
            }
            let (path, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if path.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(path)
            };
            let ok = target.exists()
                && (anchor.is_empty()
                    || target.is_dir()
                    || anchors(&std::fs::read_to_string(&target).unwrap_or_default())
                        .contains(anchor));
            if !ok {
                broken.push(format!("{}: {link}", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
