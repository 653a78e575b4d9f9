//! Configuration in three tiers: `file` (the TOML's shape) → `validate` (into `model`'s typed
//! [`Config`]) → `runtime::build` (the Snapshot). This module loads a file through the first
//! two and reports any error with file, line, column, key path and what is wrong.

pub mod adaptive;
pub mod canary;
pub mod cors;
pub mod file;
pub mod headers;
pub mod hedge;
pub mod mirror;
pub mod model;
pub mod pages;
pub mod resilience;
mod route;
pub mod sticky;
pub mod units;
pub mod validate;

pub use file::{PathNormalization, SetCookiePolicy};
pub use model::*;

use std::fmt;
use std::path::{Path, PathBuf};

/// A config that failed to load: where, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: cannot read: {source}")]
    Read {
        origin: String,
        source: std::io::Error,
    },
    #[error("{origin}:{line}:{column}: {path}{sep}{message}", sep = if path.is_empty() { "" } else { ": " })]
    Invalid {
        origin: String,
        line: usize,
        column: usize,
        path: String,
        message: String,
    },
}

/// A dotted key path with array indices, e.g. `upstream.api.backends[1].weight`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<Seg>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

impl KeyPath {
    pub fn root() -> Self {
        KeyPath(Vec::new())
    }
    pub fn key(&self, k: &str) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.to_owned()));
        KeyPath(v)
    }
    pub fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        KeyPath(v)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// The outcome of a successful load: the typed config and what it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// Stable hash of the file's bytes (FNV-1a 64, hex), exported as `brace_config_info{hash}`.
    pub hash: String,
    pub origin: String,
    /// The file's text.
    pub source: String,
}

impl Config {
    /// The files besides the config that a reload reads again (certificates, keys, CA
    /// bundles, htpasswd files): the file watcher reloads when one of them changes, so a
    /// renewed certificate is served without a signal.
    pub fn watched_files(&self) -> Vec<&Path> {
        let mut out: Vec<&Path> = Vec::new();
        for t in &self.server.tls {
            for ck in &t.certs {
                out.extend([ck.cert_file.as_path(), ck.key_file.as_path()]);
            }
            out.extend(t.client_ca.iter().map(|(f, _)| f.as_path()));
        }
        for u in self.upstreams.values() {
            let Some(t) = &u.tls else { continue };
            out.extend(t.ca.iter().map(|(f, _)| f.as_path()));
            if let Some(c) = &t.client {
                out.extend([c.cert_file.as_path(), c.key_file.as_path()]);
            }
        }
        for r in &self.routes {
            out.extend(r.access.basic_auth.iter().map(|b| b.file.as_path()));
            out.extend(r.error_pages.0.values().map(|p| p.file.as_path()));
        }
        out.extend(self.server.error_pages.0.values().map(|p| p.file.as_path()));
        out.sort();
        out.dedup();
        out
    }

    /// Settings that are allowed but unsafe: said at WARN on every load (start, reload) and
    /// by `brace check`.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self.upstreams
            .iter()
            .filter(|(_, u)| u.tls.as_ref().is_some_and(|t| !t.verify))
            .map(|(name, _)| {
                format!("upstream.{name}.tls: verify = false: backend certificates are not checked; anyone on the path can impersonate these backends")
            })
            .collect();
        // A listener certificate outside its validity is served as it is (clients refuse it),
        // as nginx does, so that a reload of other settings is not blocked by it.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        for (i, t) in self.server.tls.iter().enumerate() {
            for ck in &t.certs {
                let Some(Ok((_, leaf))) = ck
                    .chain
                    .first()
                    .map(|c| x509_parser::parse_x509_certificate(c))
                else {
                    continue;
                };
                let v = leaf.validity();
                let file = ck.cert_file.display();
                if v.not_after.timestamp() < now {
                    out.push(format!("server.tls[{i}]: {file} expired at {}; clients will refuse it (brace_tls_certificate_expiry_timestamp_seconds)", v.not_after));
                } else if v.not_before.timestamp() > now {
                    out.push(format!("server.tls[{i}]: {file} is not valid before {}; clients will refuse it until then", v.not_before));
                }
            }
        }
        out
    }
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        origin: origin.clone(),
        source,
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse(&text, &origin, &base)
}

/// Parses and validates config text; `origin` names it in errors, `base` anchors relative paths.
pub fn parse(text: &str, origin: &str, base: &Path) -> Result<Loaded, ConfigError> {
    let base: PathBuf = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base.to_path_buf()
    };
    let de = toml::Deserializer::new(text);
    let raw: file::FileConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let (line, column) = inner
            .span()
            .map(|s| line_col(text, s.start))
            .unwrap_or((1, 1));
        ConfigError::Invalid {
            origin: origin.to_owned(),
            line,
            column,
            path: if path == "." { String::new() } else { path },
            message: inner.message().trim().to_owned(),
        }
    })?;
    let config = Config::from_file(raw, &base).map_err(|(path, message)| {
        let (line, column) = locate(text, &path);
        ConfigError::Invalid {
            origin: origin.to_owned(),
            line,
            column,
            path: path.to_string(),
            message,
        }
    })?;
    Ok(Loaded {
        config,
        hash: fnv1a_hex(text.as_bytes()),
        origin: origin.to_owned(),
        source: text.to_owned(),
    })
}

/// Finds the line and column of the deepest part of `path` present in the document (a value
/// filled in by a default has no place of its own, so its parent table is named).
fn locate(text: &str, path: &KeyPath) -> (usize, usize) {
    let Ok(doc) = toml_edit::ImDocument::parse(text) else {
        return (1, 1);
    };
    let mut item = doc.as_item();
    let mut best = None;
    for seg in &path.0 {
        let next = match seg {
            Seg::Key(k) => item.get(k.as_str()),
            Seg::Index(i) => item.get(*i),
        };
        match next {
            Some(n) => {
                item = n;
                if let Some(s) = n.span() {
                    best = Some(s.start);
                }
            }
            None => break,
        }
    }
    best.map(|o| line_col(text, o)).unwrap_or((1, 1))
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// FNV-1a, 64 bit: a stable content hash (std's hasher may change between releases).
pub fn fnv1a_hex(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// The config text with secrets (the admin token) replaced by `"<redacted>"`.
pub fn redacted(text: &str) -> String {
    match text.parse::<toml_edit::DocumentMut>() {
        Ok(mut doc) => {
            if let Some(t) = doc.get_mut("admin").and_then(|a| a.get_mut("token")) {
                *t = toml_edit::value("<redacted>");
            }
            // A collector's headers carry its credentials.
            if let Some(h) = doc
                .get_mut("tracing")
                .and_then(|t| t.get_mut("headers"))
                .and_then(|h| h.as_table_like_mut())
            {
                for (_, v) in h.iter_mut() {
                    *v = toml_edit::value("<redacted>");
                }
            }
            doc.to_string()
        }
        Err(_) => String::new(),
    }
}

/// One hash over the config file and every file it names that a reload reads again
/// ([`Config::watched_files`]); `None` when the config file cannot be read.
pub fn inputs_hash(path: &std::path::Path, cfg: &Config) -> Option<String> {
    let mut all = std::fs::read(path).ok()?;
    for f in cfg.watched_files() {
        all.extend_from_slice(f.as_os_str().as_encoded_bytes());
        all.push(0);
        // A file that went missing hashes as empty: its return is a change too.
        all.extend(std::fs::read(f).unwrap_or_default());
        all.push(0);
    }
    Some(fnv1a_hex(&all))
}
