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
