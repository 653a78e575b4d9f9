//! The shape of `src` cannot slip silently: no import cycle among its modules (the top ones,
//! and inside each module folder, test code included), and no file over 500 lines. A feature
//! that reaches up into `runtime`, or a file that keeps growing, fails here rather than in a
//! later review. (`../shared/tools/module-cycles` draws the same graph.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 500;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The names that follow `prefix` in `text` (`crate::upstream::pool` → `upstream` for
/// `crate::`).
fn names_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `xcrate::`, not a path
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

/// The modules directly in `dir` (files and folders, not `lib`, `main`, `mod`) and, for each,
/// the others it names through `prefixes`.
fn graph(dir: &Path, prefixes: &[String]) -> BTreeMap<String, BTreeSet<String>> {
    let mut mods = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let file = p.file_name().unwrap().to_string_lossy().into_owned();
        let name = file.trim_end_matches(".rs").to_owned();
        if ["main", "lib", "mod"].contains(&name.as_str()) {
            continue;
        }
        let files = if p.is_dir() {
            rust_files(&p)
        } else if file.ends_with(".rs") {
            vec![p]
        } else {
            continue;
        };
        let mut deps = BTreeSet::new();
        for f in files {
            let text = std::fs::read_to_string(f).unwrap();
            for prefix in prefixes {
                deps.extend(names_after(&text, prefix));
            }
        }
        mods.insert(name, deps);
    }
    let names: BTreeSet<String> = mods.keys().cloned().collect();
    mods.into_iter()
        .map(|(m, ds)| {
            let ds = ds
                .into_iter()
                .filter(|d| names.contains(d) && *d != m)
                .collect();
            (m, ds)
        })
        .collect()
}

/// The strongly connected components of more than one module (Tarjan).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    impl<'a> T<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on.insert(v);
            for w in &self.g[v] {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let l = self.low[v].min(self.low[w]);
                    self.low.insert(v, l);
                } else if self.on.contains(w) {
                    let l = self.low[v].min(self.index[w]);
                    self.low.insert(v, l);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    comp.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

#[test]
fn no_import_cycle_among_srcs_modules() {
    let src = src();
    let mut found = Vec::new();
    for c in cycles(&graph(&src, &["crate::".into()])) {
        found.push(format!("src: {}", c.join(", ")));
    }
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            let d = p.file_name().unwrap().to_string_lossy().into_owned();
            let g = graph(&p, &[format!("crate::{d}::"), "super::".into()]);
            for c in cycles(&g) {
                found.push(format!("src/{d}: {}", c.join(", ")));
            }
        }
    }
    assert!(
        found.is_empty(),
        "import cycles (a module that needs the whole state belongs to `runtime`, which calls down):\n{}",
        found.join("\n")
    );
}

#[test]
fn no_src_file_is_over_500_lines() {
    let long: Vec<String> = rust_files(&src())
        .into_iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(&f).unwrap().lines().count();
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines: give a concern its own file:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(cycles(&g), [["a", "b", "c"]]);
    assert_eq!(
        names_after("use crate::upstream::pool; xcrate::no; crate::x", "crate::"),
        ["upstream", "x"].into_iter().map(String::from).collect()
    );
}
