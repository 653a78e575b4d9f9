//! The raw shape of a `[[route]]` and its `cache` and `basic_auth` tables.

use super::*;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileRoute {
    pub name: String,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    pub upstream: String,
    #[serde(default)]
    pub strip_prefix: bool,
    #[serde(default = "default_route_timeout")]
    pub timeout: Dur,
    #[serde(default)]
    pub rate_limits: Vec<String>,
    #[serde(default)]
    pub cache: Option<FileRouteCache>,
    /// Client networks (CIDR or address) allowed; empty = any not denied.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Client networks refused with 403, whatever `allow` says.
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default)]
    pub basic_auth: Option<FileBasicAuth>,
    /// Send `Authorization` upstream although `basic_auth` checked it.
    #[serde(default)]
    pub forward_authorization: bool,
    /// Match `path_prefix` without regard to ASCII case.
    #[serde(default)]
    pub path_case_insensitive: bool,
    /// Refuse a path with `;` parameters in any segment (400).
    #[serde(default)]
    pub refuse_path_parameters: bool,
    /// Who is shed first when the pool is full.
    #[serde(default)]
    pub priority: FilePriority,
    /// A second attempt for a request the first has not answered in time.
    #[serde(default)]
    pub hedge: Option<FileHedge>,
    #[serde(default)]
    pub canary: Option<FileCanary>,
    #[serde(default)]
    pub mirror: Option<FileMirror>,
    /// The whole wait for a response header, every attempt and backoff included.
    #[serde(default)]
    pub deadline: Option<Dur>,
    #[serde(default)]
    pub cors: Option<FileCors>,
    /// Pages for brace's own 429, 502, 503, 504 on this route (over `[server]`'s).
    #[serde(default)]
    pub error_pages: BTreeMap<String, String>,
    /// Every request gets the maintenance answer (503), except from `maintenance_allow`.
    #[serde(default)]
    pub maintenance: bool,
    #[serde(default)]
    pub maintenance_allow: Vec<String>,
    /// Fields set and removed on the request before it is forwarded.
    #[serde(default)]
    pub request_headers: Option<FileHeaderRules>,
    /// Fields set and removed on the answer before it is sent.
    #[serde(default)]
    pub response_headers: Option<FileHeaderRules>,
}

/// `{ set = { NAME = "value" }, remove = ["NAME"] }`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileHeaderRules {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `[route.cors]`: brace answers CORS preflights and adds the response headers.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileCors {
    pub origins: Vec<String>,
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    #[serde(default)]
    pub headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub credentials: bool,
    #[serde(default)]
    pub max_age: Option<Dur>,
}

/// `basic_auth = { realm = "...", users = "path/to/htpasswd" }`
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileBasicAuth {
    #[serde(default = "default_realm")]
    pub realm: String,
    /// An htpasswd file (bcrypt or argon2 hashes), relative to the config file.
    pub users: String,
}

fn default_realm() -> String {
    "brace".into()
}

fn default_prefix() -> String {
    "/".into()
}
fn default_route_timeout() -> Dur {
    Dur(Duration::from_secs(30))
}

/// `[route.cache]`: this route's caching policy.
#[derive(Deserialize, Debug)]
#[serde(default, deny_unknown_fields)]
pub struct FileRouteCache {
    pub default_ttl: Dur,
    pub max_ttl: Dur,
    pub stale_while_revalidate: Dur,
    pub stale_if_error: Dur,
    pub key_query: FileKeyQuery,
    pub key_headers: Vec<String>,
    pub lock_timeout: Dur,
    pub status_header: bool,
    pub cache_set_cookie: SetCookiePolicy,
    pub heuristic: bool,
}

impl Default for FileRouteCache {
    fn default() -> Self {
        FileRouteCache {
            default_ttl: Dur(Duration::ZERO),
            max_ttl: Dur(Duration::from_secs(3600)),
            stale_while_revalidate: Dur(Duration::ZERO),
            stale_if_error: Dur(Duration::from_secs(300)),
            key_query: FileKeyQuery::default(),
            key_headers: Vec::new(),
            lock_timeout: Dur(Duration::from_secs(2)),
            status_header: true,
            cache_set_cookie: SetCookiePolicy::default(),
            heuristic: true,
        }
    }
}

/// `key_query`: `"all"`, `"none"`, or a list of parameter names to keep.
#[derive(Debug)]
pub enum FileKeyQuery {
    Word(String),
    Names(Vec<String>),
}

impl Default for FileKeyQuery {
    fn default() -> Self {
        FileKeyQuery::Word("all".into())
    }
}

impl<'de> Deserialize<'de> for FileKeyQuery {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FileKeyQuery;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"all\", \"none\" or a list of query parameter names")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FileKeyQuery, E> {
                Ok(FileKeyQuery::Word(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<FileKeyQuery, A::Error> {
                let mut names = Vec::new();
                while let Some(n) = a.next_element::<String>()? {
                    names.push(n);
                }
                Ok(FileKeyQuery::Names(names))
            }
        }
        d.deserialize_any(V)
    }
}
